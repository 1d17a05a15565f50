/**
 * Streaming benchmark (make bench), on the local Kafka and Redis:
 *  1. throughput of one scorer process (decode, features, model, policy, produce, commit) against the
 *     bare kafkajs consume -> produce passthrough (same consumer and producer settings, no decode,
 *     no features, no model), both draining the same pre-loaded topics in the same run;
 *  2. read -> decision latency (the decisions' own latency_us) while `fraudstream simulate --live`
 *     offers 5,000 events/s from another process.
 * Both are timed by the consumer group's committed offsets: from the first commit seen to the commit
 * past the last record, the same clock for the scorer and the baseline.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, Partitioners, type Admin, type Message } from 'kafkajs';
import { Redis } from 'ioredis';
import { createSilentLogger } from '../lib/logger.js';
import { projectRoot } from '../lib/paths.js';
import { clearNamespace } from '../replay/index.js';
import { createSchemas, RecordNames, type Decision } from '../schemas/index.js';
import {
  ensureTopics,
  SCORER_CONSUMER_CONFIG,
  SCORER_PRODUCER_CONFIG,
  startScoringService,
} from '../scorer/index.js';
import { createSimulation } from '../simulator/index.js';
import { writeRows, type BenchRow } from './results.js';

const BROKERS = (
  process.env.FRAUDSTREAM_KAFKA_BROKERS ?? `127.0.0.1:${process.env.FRAUDSTREAM_KAFKA_PORT ?? '19092'}`
).split(',');
const REDIS_URL =
  process.env.FRAUDSTREAM_REDIS_URL ?? `redis://127.0.0.1:${process.env.FRAUDSTREAM_REDIS_PORT ?? '16379'}`;
const EVENTS = Number(process.env.BENCH_STREAM_EVENTS ?? 100_000);
const RATE = Number(process.env.BENCH_STREAM_RATE ?? 5_000);
const SECONDS = Number(process.env.BENCH_STREAM_SECONDS ?? 20);
const PARTITIONS = 3;
const run = `bench-s-${Date.now().toString(36)}`;
const schemas = createSchemas();
const kafka = new Kafka({ clientId: 'fraudstream-bench', brokers: BROKERS, logLevel: logLevel.NOTHING });

const topicsFor = (name: string) => ({
  payments: `${run}-${name}-payments`,
  withdrawals: `${run}-${name}-withdrawals`,
  labels: `${run}-${name}-labels`,
  decisions: `${run}-${name}-decisions`,
  deadLetter: `${run}-${name}-dlq`,
  /** The passthrough's output: not the decisions topic, which the scorer's review queue reads. */
  passthrough: `${run}-${name}-passthrough`,
});

/** Loads `n` simulated events (both types) onto the input topics. */
async function preload(topics: { payments: string; withdrawals: string }, n: number): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const sim = createSimulation({
    seed: 11,
    accounts: 10_000,
    days: 60,
    start: Date.UTC(2026, 0, 1),
    fraudRate: 0.002,
  });
  let pay: Message[] = [];
  let wd: Message[] = [];
  const flush = async () => {
    const topicMessages = [];
    if (pay.length) topicMessages.push({ topic: topics.payments, messages: pay });
    if (wd.length) topicMessages.push({ topic: topics.withdrawals, messages: wd });
    if (topicMessages.length) await producer.sendBatch({ topicMessages, acks: -1 });
    pay = [];
    wd = [];
  };
  let i = 0;
  for (const e of sim.events()) {
    if (i++ >= n) break;
    if (e.type === 'PAYMENT')
      pay.push({ key: e.event.account_id, value: schemas.codec.encode(RecordNames.PaymentEvent, e.event) });
    else
      wd.push({ key: e.event.account_id, value: schemas.codec.encode(RecordNames.WithdrawalEvent, e.event) });
    if (pay.length + wd.length >= 5000) await flush();
  }
  await flush();
  await producer.disconnect();
}

async function highTotal(admin: Admin, topics: string[]): Promise<number> {
  let n = 0;
  for (const t of topics)
    for (const p of await admin.fetchTopicOffsets(t)) n += Number(p.high) - Number(p.low);
  return n;
}

/** Events/s of a group draining `topics`: from the first commit seen to the commit past the end. */
async function timeGroup(admin: Admin, groupId: string, topics: string[], total: number): Promise<number> {
  let first: { t: number; n: number } | undefined;
  const deadline = performance.now() + 600_000;
  for (;;) {
    const committed = await admin.fetchOffsets({ groupId, topics });
    const n = committed
      .flatMap((t) => t.partitions)
      .reduce((a, p) => a + (p.offset === '-1' ? 0 : Number(p.offset)), 0);
    const t = performance.now();
    if (!first && n > 0) first = { t, n };
    if (first && n >= total) return (total - first.n) / ((t - first.t) / 1000);
    if (t > deadline) throw new Error(`${groupId} committed ${n} of ${total} in 10 minutes`);
    await sleep(25);
  }
}

/** The baseline: consume -> produce the same bytes -> commit, as the scorer does, doing nothing else. */
async function passthrough(admin: Admin, topics: ReturnType<typeof topicsFor>, total: number) {
  const producer = kafka.producer({ ...SCORER_PRODUCER_CONFIG });
  await producer.connect();
  const groupId = `${run}-passthrough`;
  const consumer = kafka.consumer({ groupId, ...SCORER_CONSUMER_CONFIG });
  await consumer.connect();
  await consumer.subscribe({ topics: [topics.payments, topics.withdrawals], fromBeginning: true });
  await consumer.run({
    eachBatchAutoResolve: false,
    autoCommit: true,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat }) => {
      for (let s = 0; s < batch.messages.length; s += 512) {
        const chunk = batch.messages.slice(s, s + 512);
        await producer.sendBatch({
          topicMessages: [
            { topic: topics.passthrough, messages: chunk.map((m) => ({ key: m.key, value: m.value })) },
          ],
          acks: -1,
        });
        resolveOffset(chunk[chunk.length - 1]!.offset);
        await commitOffsetsIfNecessary();
        await heartbeat();
      }
    },
  });
  const rate = await timeGroup(admin, groupId, [topics.payments, topics.withdrawals], total);
  await consumer.disconnect();
  await producer.disconnect();
  return rate;
}

function service(topics: ReturnType<typeof topicsFor>, name: string) {
  return startScoringService(
    {
      brokers: BROKERS,
      groupId: `${run}-${name}`,
      topics,
      fromBeginning: true,
      maxBatch: 512,
      redisUrl: REDIS_URL,
      featurePrefix: `${run}-${name}:`,
      modelManifest: join(projectRoot(), 'models', 'default', 'manifest.json'),
      policyVersion: 'bench',
      includeFeatures: true,
      http: { host: '127.0.0.1', port: 0 },
    },
    createSilentLogger(),
  );
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  const rows: BenchRow[] = [];
  const all: string[] = [];
  try {
    // 1. Throughput against the passthrough, on the same records.
    const t = topicsFor('tp');
    all.push(...Object.values(t));
    await ensureTopics(admin, Object.values(t), PARTITIONS);
    await preload(t, EVENTS);
    const total = await highTotal(admin, [t.payments, t.withdrawals]);
    const baseline = await passthrough(admin, t, total);
    const svc = await service(t, 'scorer');
    const value = await timeGroup(admin, `${run}-scorer`, [t.payments, t.withdrawals], total);
    await svc.stop();
    rows.push({
      name: `scorer events/s, ${total} pre-loaded events (baseline: consume -> produce passthrough)`,
      value,
      unit: 'events/s',
      baseline,
      ratio: value / baseline,
    });

    // 2. Latency at a steady offered rate, the producer in another process.
    const l = topicsFor('lat');
    all.push(...Object.values(l));
    await ensureTopics(admin, Object.values(l), PARTITIONS);
    const svc2 = await service(l, 'latency');
    const child = spawn(
      process.execPath,
      [
        join(projectRoot(), 'bin', 'fraudstream.js'),
        'simulate',
        '--live',
        '--rate',
        String(RATE),
        '--duration',
        String(SECONDS),
        '--accounts',
        '10000',
        '--days',
        '30',
        '--seed',
        '12',
        '--brokers',
        BROKERS.join(','),
        '--topic-payments',
        l.payments,
        '--topic-withdrawals',
        l.withdrawals,
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const code = await new Promise<number | null>((res) => child.on('exit', res));
    if (code !== 0) throw new Error(`simulate --live exited ${code}`);
    const offered = await highTotal(admin, [l.payments, l.withdrawals]);
    await timeGroup(admin, `${run}-latency`, [l.payments, l.withdrawals], offered);
    await svc2.stop();
    const decisions = await readDecisions(l.decisions, offered);
    // Leave the first 3 s out: connection set-up and the first model runs.
    const start = Math.min(...decisions.map((d) => d.decided_at)) + 3000;
    const lat = decisions
      .filter((d) => d.decided_at >= start)
      .map((d) => d.latency_us / 1000)
      .sort((a, b) => a - b);
    const achieved = offered / SECONDS;
    rows.push({
      name: `offered rate (simulate --live ${RATE}/s)`,
      value: achieved,
      unit: 'events/s',
      baseline: null,
      ratio: null,
    });
    for (const p of [50, 99])
      rows.push({
        name: `latency read -> decision ready, p${p}, at ${RATE} events/s (${lat.length} decisions after 3 s)`,
        value: pct(lat, p),
        unit: 'ms',
        baseline: null,
        ratio: null,
      });
  } finally {
    await admin.deleteTopics({ topics: all }).catch(() => undefined);
    for (const n of ['scorer', 'latency']) await clearNamespace(redis, `${run}-${n}`).catch(() => 0);
    redis.disconnect();
    await admin.disconnect();
  }
  writeRows('stream', rows);
}

/** Every decision on the topic (exactly `n` of them are expected). */
async function readDecisions(topic: string, n: number): Promise<Decision[]> {
  const consumer = kafka.consumer({ groupId: `${run}-reader`, maxWaitTimeInMs: 100 });
  const got = new Map<string, Decision>();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      got.set(`${partition}:${message.offset}`, schemas.codec.decode<Decision>(message.value!).value);
    },
  });
  const deadline = Date.now() + 120_000;
  while (got.size < n && Date.now() < deadline) await sleep(100);
  await consumer.disconnect();
  if (got.size < n) throw new Error(`read ${got.size} of ${n} decisions`);
  return [...got.values()];
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
