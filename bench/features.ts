/**
 * Feature-engine benchmark (make bench): events/s at batch sizes 1, 64 and 512 against a bare no-op
 * EVALSHA pipeline in the same run (one call per entity of each event: what the engine's first design,
 * a Lua script per entity, could at best reach), for each write mode: write-through (inline scoring,
 * every batch written before it resolves), checkpoint (the Kafka scorer: changes written once a second,
 * its offset-commit interval) and write-behind (replay); and Redis memory per active account after 30
 * simulated days. The scorer's mode runs again over a 40-day history (216,176 events), long enough
 * for checkpoints to overlap the batches. Each checkpoint run also reports its longest batch and the
 * event loop's longest stall, against the median batch. Appends rows to bench/results.json.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { createFeatureEngine, entityIds, type FeatureEngine } from '../features/index.js';
import { clearNamespace } from '../replay/index.js';
import { createSimulation, type SimEvent } from '../simulator/index.js';
import { writeRows, type BenchRow } from './results.js';

const REDIS_URL =
  process.env.FRAUDSTREAM_REDIS_URL ?? `redis://127.0.0.1:${process.env.FRAUDSTREAM_REDIS_PORT ?? '16379'}`;
const DAY = 86_400_000;

function history(accounts: number, days: number, seed: number): SimEvent[] {
  return [
    ...createSimulation({ seed, accounts, days, start: Date.UTC(2026, 0, 1), fraudRate: 0.002 }).events(),
  ];
}

/**
 * Feeds `slice` in batches; in checkpoint mode flushes as the scorer does (scorer/consumer.ts): at
 * most every second (--checkpoint-ms), one at a time, batches going on while Redis writes it. The last
 * changes reach Redis inside the measured time. Returns events/s and each computeBatch's time (ms).
 */
async function drive(fe: FeatureEngine, slice: SimEvent[], batch: number) {
  // The longest the event loop went unserved (a flush encoding, a batch computing, a GC pause): what an
  // inline answer or a Kafka heartbeat due meanwhile waits.
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const t0 = performance.now();
  let started = t0;
  let inFlight: Promise<void> | null = null;
  const took: number[] = [];
  for (let i = 0; i < slice.length; i += batch) {
    const b0 = performance.now();
    await fe.computeBatch(slice.slice(i, i + batch));
    took.push(performance.now() - b0);
    if (fe.writeMode === 'checkpoint' && !inFlight && performance.now() - started >= 1000) {
      started = performance.now();
      inFlight = fe.flush().finally(() => (inFlight = null));
    }
  }
  await fe.flush();
  const value = slice.length / ((performance.now() - t0) / 1000);
  delay.disable();
  return { value, took, stallMs: delay.max / 1e6 };
}

/** The longest batch against the median one: a batch whose entities are not all cached reads them behind whatever Redis is writing. */
function longest(took: number[], stallMs: number, what: string): BenchRow[] {
  const sorted = [...took].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1]!;
  const max = sorted[sorted.length - 1]!;
  return [
    {
      name: `features checkpoint mode: longest computeBatch of ${took.length} (${what}; baseline: the median batch)`,
      value: max,
      unit: 'ms',
      baseline: median,
      ratio: max / median,
    },
    {
      name: `features checkpoint mode: longest event-loop stall (${what}; baseline: the median batch)`,
      value: stallMs,
      unit: 'ms',
      baseline: median,
      ratio: stallMs / median,
    },
  ];
}

async function main() {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  const rows: BenchRow[] = [];
  const events = history(2000, 12, 3);
  const noop = (await redis.script('LOAD', 'return 0')) as string;
  let noop512 = 0;

  for (const [batch, n] of [
    [1, 1500],
    [64, 12_000],
    [512, 60_000],
  ] as const) {
    const ns = `bench-f${batch}`;
    await clearNamespace(redis, ns);
    const slice = events.slice(0, n);
    // Baseline: the same number of EVALSHA calls per batch, to a script that does nothing.
    const t0 = performance.now();
    for (let i = 0; i < slice.length; i += batch) {
      const pipe = redis.pipeline();
      for (const ev of slice.slice(i, i + batch)) {
        for (const id of entityIds(ev)) if (id !== null) pipe.evalsha(noop, 1, `${ns}:noop:{${id}}`);
      }
      await pipe.exec();
    }
    const baseline = slice.length / ((performance.now() - t0) / 1000);
    for (const writeMode of ['through', 'checkpoint', 'behind'] as const) {
      if (writeMode !== 'through' && batch !== 512) continue;
      await clearNamespace(redis, ns);
      const fe = createFeatureEngine({ redis, prefix: `${ns}:`, writeMode, fresh: writeMode === 'behind' });
      const { value, took, stallMs } = await drive(fe, slice, batch);
      await fe.close();
      rows.push({
        name: `features events/s, batch ${batch} (${
          {
            through: 'write-through: inline scoring',
            checkpoint: 'checkpoint every 1 s: the Kafka scorer',
            behind: 'write-behind: replay',
          }[writeMode]
        }, ${slice.length} events)`,
        value,
        unit: 'events/s',
        baseline,
        ratio: value / baseline,
      });
      if (writeMode === 'checkpoint') rows.push(...longest(took, stallMs, `${slice.length} events`));
      if (batch === 512) noop512 = baseline;
    }
    await clearNamespace(redis, ns);
  }

  // The scorer's mode over long enough for several checkpoints to overlap the batches (the 60,000
  // events above take about two seconds: one checkpoint, then the last flush, which nothing overlaps).
  {
    const ns = 'bench-fsteady';
    await clearNamespace(redis, ns);
    const slice = history(2000, 40, 3).slice(0, 240_000);
    const fe = createFeatureEngine({ redis, prefix: `${ns}:`, writeMode: 'checkpoint' });
    const { value, took, stallMs } = await drive(fe, slice, 512);
    await fe.close();
    rows.push({
      name: `features events/s, batch 512 (checkpoint every 1 s, ${slice.length} events of a 40-day history; baseline: the no-op at batch 512)`,
      value,
      unit: 'events/s',
      baseline: noop512,
      ratio: value / noop512,
    });
    rows.push(...longest(took, stallMs, `${slice.length} events`));
    await clearNamespace(redis, ns);
  }

  // Memory per active account after 30 days of history (all entities' state included).
  const ns = 'bench-mem';
  await clearNamespace(redis, ns);
  const month = history(500, 30, 5);
  const before = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  const fe = createFeatureEngine({ redis, prefix: `${ns}:` });
  for (let i = 0; i < month.length; i += 512) await fe.computeBatch(month.slice(i, i + 512));
  await fe.close();
  const after = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  const accounts = new Set(
    month
      .filter((e) => e.event.event_time >= month[month.length - 1]!.event.event_time - 30 * DAY)
      .map((e) => e.event.account_id),
  ).size;
  const keys = await redis.keys(`${ns}:*`);
  const perAccount = (after - before) / accounts;
  rows.push({
    name: `redis bytes per active account, all keys (30 days, ${accounts} accounts, ${month.length} events, ${keys.length} keys)`,
    value: perAccount,
    unit: 'bytes',
    baseline: null,
    ratio: null,
  });
  // The entity state alone, without the per-event dedupe and label-lookup records (their TTLs are
  // wall-clock, so a replay that takes seconds keeps every one of them; live, they expire).
  let stateBytes = 0;
  const stateKeys = keys.filter((k) => k.endsWith(':s'));
  for (let i = 0; i < stateKeys.length; i += 500) {
    const pipe = redis.pipeline();
    for (const k of stateKeys.slice(i, i + 500)) pipe.memory('USAGE', k);
    for (const [, v] of (await pipe.exec()) ?? []) stateBytes += Number(v ?? 0);
  }
  rows.push({
    name: `redis bytes per active account, entity state only (${stateKeys.length} entities)`,
    value: stateBytes / accounts,
    unit: 'bytes',
    baseline: null,
    ratio: null,
  });
  await clearNamespace(redis, ns);
  redis.disconnect();
  writeRows('features', rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
