/**
 * Feature-engine benchmark (make bench): events/s at batch sizes 1, 64 and 512 against a bare no-op
 * EVALSHA pipeline in the same run (one call per entity of each event: what the engine's first design,
 * a Lua script per entity, could at best reach), for each write mode: write-through (inline scoring,
 * every batch written before it resolves), checkpoint (the Kafka scorer: changes written once a second,
 * its offset-commit interval) and write-behind (replay); and Redis memory per active account after 30
 * simulated days. Appends rows to bench/results.json.
 */
import { Redis } from 'ioredis';
import { createFeatureEngine, entityIds } from '../features/index.js';
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

async function main() {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  const rows: BenchRow[] = [];
  const events = history(2000, 12, 3);
  const noop = (await redis.script('LOAD', 'return 0')) as string;

  for (const [batch, n] of [
    [1, 1500],
    [64, 12_000],
    [512, 60_000],
  ] as const) {
    const ns = `bench-f${batch}`;
    await clearNamespace(redis, ns);
    const slice = events.slice(0, n);
    // Baseline: the same number of EVALSHA calls per batch, to a script that does nothing.
    let t0 = performance.now();
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
      t0 = performance.now();
      let started = t0;
      let inFlight: Promise<void> | null = null;
      for (let i = 0; i < slice.length; i += batch) {
        await fe.computeBatch(slice.slice(i, i + batch));
        // The scorer's checkpoint (scorer/consumer.ts): one at most every second (--checkpoint-ms),
        // one at a time, and batches go on while Redis writes it.
        if (writeMode === 'checkpoint' && !inFlight && performance.now() - started >= 1000) {
          started = performance.now();
          inFlight = fe.flush().finally(() => (inFlight = null));
        }
      }
      await fe.flush(); // checkpoint, write-behind: the last changes reach Redis inside the measured time
      const value = slice.length / ((performance.now() - t0) / 1000);
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
    }
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
