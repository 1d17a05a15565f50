/**
 * Replay benchmark (make bench): events/s of a full backtest (features + model + policy + decisions.avro +
 * report) over a simulated history of about a million events, against the bare read + merge of the same
 * container files (decode, order check, event-time merge; no features, no model) in the same run.
 * BENCH_REPLAY_EVENTS changes the size. Appends rows to bench/results.json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createFeatureEngine } from '../features/index.js';
import { systemClock } from '../lib/clock.js';
import { createSilentLogger } from '../lib/logger.js';
import { projectRoot } from '../lib/paths.js';
import { createModelRunner } from '../models/index.js';
import { createPolicy } from '../policy/index.js';
import { readEvents, runReplay } from '../replay/index.js';
import { createSchemas } from '../schemas/index.js';
import { writeSimulationFiles } from '../simulator/index.js';
import { writeRows } from './results.js';

const REDIS_URL =
  process.env.FRAUDSTREAM_REDIS_URL ?? `redis://127.0.0.1:${process.env.FRAUDSTREAM_REDIS_PORT ?? '16379'}`;
const TARGET = Number(process.env.BENCH_REPLAY_EVENTS ?? 1_000_000);

async function bareReadMerge(dir: string): Promise<number> {
  const { catalog } = createSchemas();
  // The same read replay makes (each of its two threads makes one), with nothing downstream.
  let n = 0;
  for await (const _ of readEvents(dir, catalog)) n++;
  return n;
}

async function main() {
  const schemas = createSchemas();
  const dir = mkdtempSync(join(tmpdir(), 'fs-bench-replay-'));
  const accounts = 8000;
  const days = Math.max(1, Math.ceil(TARGET / (accounts * 2.75)));
  const summary = await writeSimulationFiles(
    schemas.catalog,
    { seed: 42, accounts, days, start: Date.UTC(2026, 0, 1), fraudRate: 0.002 },
    dir,
  );
  const total = summary.payments + summary.withdrawals;

  let t0 = performance.now();
  const n = await bareReadMerge(dir);
  const baseline = n / ((performance.now() - t0) / 1000);

  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  const fe = createFeatureEngine({ redis, prefix: 'probe:' });
  const model = await createModelRunner({
    manifestPath: join(projectRoot(), 'models', 'default', 'manifest.json'),
    featureNames: fe.names,
    featureSpec: fe.specHash,
  });
  const threshold = model.manifest.threshold;
  t0 = performance.now();
  const res = await runReplay({
    inDir: dir,
    outDir: join(dir, 'out'),
    redis,
    catalog: schemas.catalog,
    logger: createSilentLogger(),
    clock: systemClock,
    namespace: 'bench-replay',
    batchSize: 512,
    champion: {
      model,
      policy: createPolicy({ version: 'bench', thresholds: { default: threshold } }),
      threshold,
    },
  });
  const value = res.events / ((performance.now() - t0) / 1000);
  await model.close();
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
  writeRows('replay', [
    {
      name: `replay events/s, full backtest of ${total} events (baseline: bare read + merge of the same files)`,
      value,
      unit: 'events/s',
      baseline,
      ratio: value / baseline,
    },
  ]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
