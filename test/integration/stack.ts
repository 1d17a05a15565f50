import { randomBytes } from 'node:crypto';
import {
  Kafka,
  logLevel,
  Partitioners,
  type Admin,
  type Consumer,
  type IHeaders,
  type Producer,
} from 'kafkajs';
import { Redis } from 'ioredis';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';
import { clearNamespace } from '../../replay/index.js';
import { ensureTopics, type ScoringServiceConfig, type Topics } from '../../scorer/index.js';

/** The stack that scripts/stack.sh starts (make test starts it); each test names its own topics and keys. */
export const BROKERS = (
  process.env.FRAUDSTREAM_KAFKA_BROKERS ?? `127.0.0.1:${process.env.FRAUDSTREAM_KAFKA_PORT ?? '19092'}`
).split(',');
export const REDIS_URL =
  process.env.FRAUDSTREAM_REDIS_URL ?? `redis://127.0.0.1:${process.env.FRAUDSTREAM_REDIS_PORT ?? '16379'}`;

export const uniq = (what: string) =>
  `t-${what}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

export function kafka(clientId = 'fraudstream-test'): Kafka {
  return new Kafka({ clientId, brokers: BROKERS, logLevel: logLevel.NOTHING });
}

export async function redis(): Promise<Redis> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  return r;
}

/** The 3-master Redis Cluster that scripts/stack.sh starts beside the single Redis. */
const clusterBase = Number(process.env.FRAUDSTREAM_REDIS_CLUSTER_PORT ?? '17001');
export const CLUSTER_NODES = [0, 1, 2].map((i) => ({ host: '127.0.0.1', port: clusterBase + i }));

export interface TopicRecord {
  key: string;
  value: Buffer;
  headers: IHeaders;
  partition: number;
  offset: string;
}

/**
 * Every record of `topic` up to its high-water marks, read from the beginning with a fresh consumer
 * group. Records are keyed by partition and offset, so a rebalance of the reader (which redelivers
 * what it had not committed) never makes one record count twice. Waits for at least `atLeast` records
 * (default 0), then reads up to the high-water marks as they are at that moment: call it once the
 * producer is done (see waitForCommitted) and the count is exactly what the topic holds.
 */
export async function readTopic(
  topic: string,
  opts: { atLeast?: number; timeoutMs?: number } = {},
): Promise<TopicRecord[]> {
  const atLeast = opts.atLeast ?? 0;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const admin = kafka().admin();
  await admin.connect();
  const c: Consumer = kafka().consumer({ groupId: uniq('reader'), maxWaitTimeInMs: 100 });
  const got = new Map<string, TopicRecord>();
  const next = new Map<number, bigint>();
  try {
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      eachMessage: async ({ message, partition }) => {
        got.set(`${partition}:${message.offset}`, {
          key: message.key?.toString() ?? '',
          value: message.value ?? Buffer.alloc(0),
          headers: message.headers ?? {},
          partition,
          offset: message.offset,
        });
        const n = BigInt(message.offset) + 1n;
        if (n > (next.get(partition) ?? 0n)) next.set(partition, n);
      },
    });
    const sleep = () => new Promise((r) => setTimeout(r, 50));
    while (got.size < atLeast && Date.now() < deadline) await sleep();
    // Control records (transaction markers) take offsets too: done when every partition's position
    // is at its high-water mark, not when a count is reached.
    const high = await admin.fetchTopicOffsets(topic);
    const reached = () =>
      high.every(
        (h) => BigInt(h.high) === BigInt(h.low) || (next.get(h.partition) ?? 0n) >= BigInt(h.high) - 1n,
      );
    while (!reached() && Date.now() < deadline) await sleep();
    // A trailing control record has no message: give the position a moment to pass it.
    if (!high.every((h) => (next.get(h.partition) ?? BigInt(h.low)) >= BigInt(h.high))) await sleep();
  } finally {
    await c.disconnect();
    await admin.disconnect();
  }
  return [...got.values()].sort(
    (a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)),
  );
}

/** Waits until `groupId` has committed past every record of `topics` (its output is then final). */
export async function waitForCommitted(groupId: string, topics: string[], timeoutMs = 60_000): Promise<void> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const committed = await admin.fetchOffsets({ groupId, topics });
      let done = true;
      for (const t of committed) {
        const high = await admin.fetchTopicOffsets(t.topic);
        for (const h of high) {
          const p = t.partitions.find((x) => x.partition === h.partition);
          const at = p && p.offset !== '-1' ? BigInt(p.offset) : BigInt(h.low);
          if (at < BigInt(h.high)) done = false;
        }
      }
      if (done) return;
      if (Date.now() > deadline)
        throw new Error(
          `group ${groupId} did not commit past the end of ${topics.join(', ')} in ${timeoutMs} ms`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}

/** The topics of one test run: its own names, so concurrent runs never see each other's records. */
export function testTopics(run: string): Topics {
  return {
    payments: `${run}-payments`,
    withdrawals: `${run}-withdrawals`,
    labels: `${run}-labels`,
    decisions: `${run}-decisions`,
    deadLetter: `${run}-dlq`,
  };
}

/** A scoring service on the local stack for one test run: its topics, group and key prefix. */
export function testServiceConfig(
  run: string,
  over: Partial<ScoringServiceConfig> = {},
): ScoringServiceConfig {
  return {
    brokers: BROKERS,
    groupId: `${run}-scorer`,
    topics: testTopics(run),
    fromBeginning: true,
    maxBatch: 64,
    redisUrl: REDIS_URL,
    featurePrefix: `${run}:`,
    modelManifest: join(projectRoot(), 'models', 'default', 'manifest.json'),
    policyVersion: 'test-policy',
    includeFeatures: true,
    http: { host: '127.0.0.1', port: 0 },
    ...over,
  };
}

/** What a test run holds on the stack: its topics created, a producer, a Redis; close() undoes it. */
export interface RunStack {
  admin: Admin;
  producer: Producer;
  redis: Redis;
  /** Disconnects, deletes the run's topics and its Redis keys (`<run>:*`). */
  close(): Promise<void>;
}

export async function openRun(run: string): Promise<RunStack> {
  const topics = Object.values(testTopics(run));
  const admin = kafka().admin();
  await admin.connect();
  await ensureTopics(admin, topics, 3);
  const producer = kafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const r = await redis();
  return {
    admin,
    producer,
    redis: r,
    async close() {
      await producer.disconnect();
      await admin.deleteTopics({ topics }).catch(() => undefined);
      await admin.disconnect();
      await clearNamespace(r, run);
      r.disconnect();
    },
  };
}
