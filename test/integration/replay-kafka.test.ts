import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC, type Table } from 'apache-arrow';
import type { Redis } from 'ioredis';
import { Partitioners, type Admin, type Consumer, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFeatureEngine } from '../../features/index.js';
import { systemClock } from '../../lib/clock.js';
import { createSilentLogger } from '../../lib/logger.js';
import { projectRoot } from '../../lib/paths.js';
import { createModelRunner, type ModelRunner } from '../../models/index.js';
import { createPolicy } from '../../policy/index.js';
import { clearNamespace, readKafkaRange, runReplay } from '../../replay/index.js';
import { createSchemas, readContainer, RecordNames, type Decision, type Label } from '../../schemas/index.js';
import { startScoringService, type ScoringService } from '../../scorer/index.js';
import { createSimulation, type SimEvent } from '../../simulator/index.js';
import { kafka, redis, testServiceConfig, testTopics, uniq } from './stack.js';

const schemas = createSchemas();
const logger = createSilentLogger();
const run = uniq('rpk');
const topics = testTopics(run);
const manifestPath = join(projectRoot(), 'models', 'default', 'manifest.json');

const encode = (e: SimEvent) =>
  schemas.codec.encode(
    e.type === 'PAYMENT' ? RecordNames.PaymentEvent : RecordNames.WithdrawalEvent,
    e.event,
  );

const rowsById = (t: Table) => {
  const ids = t.getChild('event_id')!.toArray() as string[];
  const m = new Map<string, number>();
  ids.forEach((id, i) => m.set(id, i));
  return m;
};

describe('replay from Kafka between two timestamps, against the live scorer', () => {
  let admin: Admin;
  let producer: Producer;
  let consumer: Consumer;
  let r: Redis;
  let service: ScoringService | undefined;
  let runner: ModelRunner;
  const events: SimEvent[] = [];
  let labels: Label[] = [];
  const decided = new Map<string, Decision>();
  const namespaces: string[] = [];

  beforeAll(async () => {
    r = await redis();
    admin = kafka().admin();
    await admin.connect();
    // Event-time timestamps lie months back: keep them past the default 7-day retention.
    await admin.createTopics({
      topics: Object.values(topics).map((topic) => ({
        topic,
        numPartitions: 1,
        replicationFactor: 1,
        configEntries: [{ name: 'retention.ms', value: '-1' }],
      })),
      waitForLeaders: true,
    });
    producer = kafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const sim = createSimulation({
      seed: 9,
      accounts: 60,
      days: 3,
      start: Date.UTC(2026, 0, 1),
      fraudRate: 0.05,
    });
    for (const e of sim.events()) events.push(e);
    labels = sim.labels();
    consumer = kafka().consumer({ groupId: uniq('decisions'), maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: topics.decisions, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const d = schemas.codec.decode<Decision>(message.value!, [RecordNames.Decision]).value;
        decided.set(d.event_id, d);
      },
    });
    const fe = createFeatureEngine({ redis: r, prefix: 'probe:' });
    runner = await createModelRunner({ manifestPath, featureNames: fe.names, featureSpec: fe.specHash });
  });

  afterAll(async () => {
    await service?.stop();
    await consumer.disconnect();
    await producer.disconnect();
    await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => undefined);
    await admin.disconnect();
    await runner.close();
    for (const n of [run, ...namespaces]) await clearNamespace(r, n);
    r.disconnect();
  });

  const replayOut = async (from: number, to: number, withModel: boolean) => {
    const outDir = mkdtempSync(join(tmpdir(), 'fs-rpk-'));
    const namespace = uniq('rpk-ns');
    namespaces.push(namespace);
    const file = join(outDir, 'features.arrow');
    const threshold = runner.manifest.threshold;
    const res = await runReplay({
      kafka: { kafka: kafka('replay'), schemas, logger, topics, from, to },
      outDir,
      redis: r,
      catalog: schemas.catalog,
      logger,
      clock: systemClock,
      namespace,
      batchSize: 64,
      emitFeatures: file,
      ...(withModel
        ? {
            champion: {
              model: runner,
              policy: createPolicy({ version: 'test', thresholds: { default: threshold } }),
              threshold,
            },
          }
        : {}),
    });
    return { res, table: tableFromIPC(readFileSync(file)), outDir };
  };

  it('emits for training exactly the feature vectors the live scorer computed for the same events', async () => {
    service = await startScoringService(
      testServiceConfig(run, {
        allowedLatenessMs: 86_400_000,
        modelManifest: manifestPath,
        policyVersion: 'test',
      }),
      logger,
    );
    // The scorer reads two topics; to see the events in event-time order as replay does, each run of one
    // type is produced only once everything before it is decided.
    let i = 0;
    while (i < events.length) {
      let j = i;
      while (j < events.length && events[j]!.type === events[i]!.type) j++;
      await producer.send({
        topic: events[i]!.type === 'PAYMENT' ? topics.payments : topics.withdrawals,
        acks: -1,
        messages: events.slice(i, j).map((e) => ({
          key: e.event.account_id,
          value: encode(e),
          timestamp: String(e.event.event_time),
        })),
      });
      const deadline = Date.now() + 30_000;
      while (decided.size < j && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      expect(decided.size).toBe(j);
      i = j;
    }
    await service.stop();
    service = undefined;

    const first = events[0]!.event.event_time;
    const last = events[events.length - 1]!.event.event_time;
    const { res, table, outDir } = await replayOut(first, last + 1, true);
    expect(res.events).toBe(events.length);
    const names = createFeatureEngine({ redis: r, prefix: 'probe:' }).names;
    const row = rowsById(table);
    const cols = names.map((n) => table.getChild(n)!);
    let compared = 0;
    for (const [id, d] of decided) {
      const k = row.get(id);
      expect(k, id).toBeDefined();
      const emitted = cols.map((c) => c.get(k!) as number);
      expect(emitted, id).toEqual(d.features!.map((x) => Math.fround(x)));
      compared++;
    }
    expect(compared).toBe(events.length);
    // And the replayed decisions score them as the scorer did.
    let n = 0;
    for await (const d of readContainer<Decision>(
      join(outDir, 'decisions.avro'),
      schemas.catalog.reader(RecordNames.Decision),
    )) {
      expect(d.score, d.event_id).toBe(decided.get(d.event_id)!.score);
      n++;
    }
    expect(n).toBe(events.length);
  });

  it('replays only the records between the two timestamps, labelled with every label on the topic', async () => {
    // Labels on their topic, with labelled_at as the record timestamp (most lie after the range).
    await producer.send({
      topic: topics.labels,
      acks: -1,
      messages: labels.map((l) => ({
        key: l.account_id,
        value: schemas.codec.encode(RecordNames.Label, l),
        timestamp: String(l.labelled_at),
      })),
    });
    const from = events[0]!.event.event_time + 86_400_000;
    const to = from + 86_400_000;
    const want = events.filter((e) => e.event.event_time >= from && e.event.event_time < to);
    expect(want.length).toBeGreaterThan(20);
    expect(want.length).toBeLessThan(events.length);
    const { res, table } = await replayOut(from, to, false);
    expect(res.events).toBe(want.length);
    const ids = table.getChild('event_id')!.toArray() as string[];
    expect(ids).toEqual(want.map((e) => e.event.event_id));
    const fraud = new Map(labels.map((l) => [l.event_id, l.labelled_at]));
    const got = table.getChild('label')!.toArray() as Int8Array;
    const at = table.getChild('labelled_at')!;
    let positives = 0;
    ids.forEach((id, k) => {
      expect(got[k], id).toBe(fraud.has(id) ? 1 : 0);
      const v = at.get(k) as bigint | null;
      expect(v === null ? null : Number(v), id).toBe(fraud.get(id) ?? null);
      positives += got[k]!;
    });
    expect(positives).toBeGreaterThan(0);
  });

  it('refuses a missing topic or a backwards range, quickly and with its code', async () => {
    const opts = { kafka: kafka('replay'), schemas, logger, topics };
    const t0 = Date.now();
    await expect(
      readKafkaRange({ ...opts, topics: { ...topics, payments: `${run}-absent` }, from: 0, to: 1 }),
    ).rejects.toMatchObject({
      code: 'FS_ERR_BAD_KAFKA_RANGE',
      message: expect.stringContaining('-absent does not exist'),
    });
    await expect(readKafkaRange({ ...opts, from: 10, to: 10 })).rejects.toMatchObject({
      code: 'FS_ERR_BAD_KAFKA_RANGE',
    });
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
