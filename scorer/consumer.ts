import {
  Partitioners,
  type Consumer,
  type EachBatchPayload,
  type Kafka,
  type Message,
  type Producer,
} from 'kafkajs';
import type { Clock } from '../lib/clock.js';
import { Errors, FraudstreamError, isFraudstreamError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import {
  RecordNames,
  type EventType,
  type Label,
  type Schemas,
  type ScoringEvent,
} from '../schemas/index.js';
import type { DecisionEngine } from './engine.js';
import type { ScorerMetrics } from './metrics.js';

export interface Topics {
  payments: string;
  withdrawals: string;
  /** Labels (analyst verdicts, chargebacks): they feed the label-informed risk features. */
  labels: string;
  decisions: string;
  deadLetter: string;
}

export interface KafkaScorerOptions {
  kafka: Kafka;
  groupId: string;
  topics: Topics;
  schemas: Schemas;
  engine: DecisionEngine;
  /** Applies labels to the feature store (FeatureEngine.applyLabels). */
  applyLabels: (labels: Label[]) => Promise<{ applied: number }>;
  metrics: ScorerMetrics;
  logger: Logger;
  clock: Clock;
  /** Largest number of records decided (and produced) together. Default 512. */
  maxBatch?: number;
  /**
   * Partitions whose batches are decided at the same time (kafkajs partitionsConsumedConcurrently).
   * One partition's records are still decided and committed in order. Default 3.
   */
  partitionsConcurrently?: number;
  /** Start a new consumer group at the earliest offsets (true) or the latest (false). Default true. */
  fromBeginning?: boolean;
  /**
   * Makes the feature changes of every event decided so far durable (FeatureEngine.flush, the engine
   * in `checkpoint` mode). Offsets are committed only after it resolves, so a crash re-reads exactly
   * the events whose changes may be lost. Unset: the engine writes through, nothing to do.
   */
  flushFeatures?: () => Promise<void>;
  /** Least time between two checkpoints (flush, then commit), ms. 0: after every batch. Default 1000. */
  checkpointMs?: number;
}

export interface KafkaScorer {
  start(): Promise<void>;
  /** Finish the batch in hand, commit, leave the group, close the producer. */
  stop(): Promise<void>;
  /** In the group, with partitions, and not crashed. */
  ready(): boolean;
}

/**
 * How the scorer's producers write: idempotent, one request in flight (order kept across retries),
 * the default partitioner (key = account_id), never creating topics. Shared with the inline/label
 * producer and with the passthrough baseline of bench/stream.ts, which must write the same way.
 */
export const SCORER_PRODUCER_CONFIG = Object.freeze({
  idempotent: true,
  maxInFlightRequests: 1,
  createPartitioner: Partitioners.DefaultPartitioner,
  allowAutoTopicCreation: false,
});

/** How the scorer's consumer reads (plus its groupId); the passthrough baseline reads the same way. */
export const SCORER_CONSUMER_CONFIG = Object.freeze({ allowAutoTopicCreation: false, maxWaitTimeInMs: 50 });

/** Headers on a dead-letter record: why it failed and where it came from. */
export const DeadLetterHeaders = {
  code: 'fs-error-code',
  message: 'fs-error-message',
  topic: 'fs-source-topic',
  partition: 'fs-source-partition',
  offset: 'fs-source-offset',
  timestamp: 'fs-source-timestamp',
} as const;

export function createKafkaScorer(opts: KafkaScorerOptions): KafkaScorer {
  const { kafka, topics, schemas, engine, metrics, clock } = opts;
  const log = opts.logger.child({ component: 'scorer' });
  const maxBatch = opts.maxBatch ?? 512;
  const concurrently = opts.partitionsConcurrently ?? 3;
  const topicType = new Map<string, EventType>([
    [topics.payments, 'PAYMENT'],
    [topics.withdrawals, 'WITHDRAWAL'],
  ]);
  const decisionName = RecordNames.Decision;
  const flushFeatures = opts.flushFeatures ?? (() => Promise.resolve());
  const checkpointMs = opts.checkpointMs ?? 1000;

  let consumer: Consumer | undefined;
  let producer: Producer | undefined;
  let joined = false;
  let crashed = false;
  let stopping = false;
  /** The eachBatch calls in progress (one per partition at most), for stop() to wait on. */
  const inflight = new Set<Promise<void>>();

  // --- Checkpoints: the only place offsets are committed. ------------------------------------------
  // Every processed chunk gets a sequence number and leaves its partition's next offset pending. A
  // checkpoint notes the newest sequence, flushes the feature store (which then holds every change of
  // every chunk up to it), and commits the pending offsets of those chunks. Offsets are resolved per
  // chunk (that is kafkajs's fetch position) but never committed by kafkajs (autoCommit off).
  let seq = 0;
  const pending = new Map<string, { topic: string; partition: number; offset: string; seq: number }>();
  let lastCheckpoint = performance.now();
  let running: Promise<void> | null = null;
  const runCheckpoint = async () => {
    lastCheckpoint = performance.now();
    const upTo = seq;
    if (![...pending.values()].some((p) => p.seq <= upTo)) return;
    await flushFeatures();
    const due = [...pending.values()].filter((p) => p.seq <= upTo);
    const c = consumer;
    if (!c || !due.length) return;
    await c.commitOffsets(due.map(({ topic, partition, offset }) => ({ topic, partition, offset })));
    // A newer chunk of the partition may have come meanwhile: it stays pending.
    for (const p of due) {
      const key = `${p.topic}:${p.partition}`;
      if (pending.get(key) === p) pending.delete(key);
    }
  };
  /**
   * One checkpoint at a time; asked for while one runs, it runs after it. A failure is logged and
   * counted, and the next checkpoint retries. Batches do not wait for it: the flush snapshots the
   * changes when it starts, and reading on while Redis writes them is what makes it cheap.
   */
  const checkpoint = (): Promise<void> => {
    if (running) return running.then(checkpoint);
    running = runCheckpoint()
      .catch((err: unknown) => {
        metrics.checkpointFailures.inc();
        log.error({ err }, 'checkpoint failed: offsets stay uncommitted until the next one');
      })
      .finally(() => {
        running = null;
      });
    return running;
  };
  let timer: NodeJS.Timeout | null = null;

  const deadLetter = (
    topic: string,
    partition: number,
    m: EachBatchPayload['batch']['messages'][number],
    err: unknown,
  ): Message => {
    const fe = isFraudstreamError(err) ? err : undefined;
    const code = fe?.code ?? 'FS_ERR_UNEXPECTED';
    metrics.deadLetters.inc({ reason: code, topic });
    log.warn(
      { topic, partition, offset: m.offset, code, err: (err as Error).message },
      'dead-lettered input record',
    );
    return {
      key: m.key,
      value: m.value ?? Buffer.alloc(0),
      headers: {
        [DeadLetterHeaders.code]: code,
        [DeadLetterHeaders.message]: (err as Error).message.slice(0, 1024),
        [DeadLetterHeaders.topic]: topic,
        [DeadLetterHeaders.partition]: String(partition),
        [DeadLetterHeaders.offset]: m.offset,
        [DeadLetterHeaders.timestamp]: m.timestamp,
      },
    };
  };

  const processLabels = async (
    topic: string,
    partition: number,
    msgs: EachBatchPayload['batch']['messages'],
  ) => {
    const labels: Label[] = [];
    const dead: Message[] = [];
    for (const m of msgs) {
      try {
        labels.push(schemas.codec.decode<Label>(m.value ?? Buffer.alloc(0), [RecordNames.Label]).value);
      } catch (err) {
        if (isFraudstreamError(err) && err.retriable) throw err;
        dead.push(deadLetter(topic, partition, m, err));
      }
    }
    const { applied } = await opts.applyLabels(labels);
    if (dead.length)
      await producer!.sendBatch({ topicMessages: [{ topic: topics.deadLetter, messages: dead }], acks: -1 });
    const fraud = labels.filter((l) => l.label === 'FRAUD').length;
    metrics.labels.inc({ label: 'FRAUD', applied: 'yes' }, applied);
    if (fraud > applied) metrics.labels.inc({ label: 'FRAUD', applied: 'no' }, fraud - applied);
    if (labels.length > fraud) metrics.labels.inc({ label: 'LEGIT', applied: 'no' }, labels.length - fraud);
  };

  const processChunk = async (
    topic: string,
    partition: number,
    msgs: EachBatchPayload['batch']['messages'],
  ) => {
    if (topic === topics.labels) return processLabels(topic, partition, msgs);
    const readAt = clock.monoMicros();
    const now = clock.now();
    const events: ScoringEvent[] = [];
    const readAts: bigint[] = [];
    const dead: Message[] = [];
    const want = topicType.get(topic);
    for (const m of msgs) {
      try {
        const ev = schemas.decodeEvent(m.value ?? Buffer.alloc(0), now);
        if (want && ev.type !== want) {
          throw new FraudstreamError(Errors.UNEXPECTED_SCHEMA, `a ${ev.type} record on ${topic}`);
        }
        events.push(ev);
        readAts.push(readAt);
      } catch (err) {
        if (isFraudstreamError(err) && err.retriable) throw err;
        dead.push(deadLetter(topic, partition, m, err));
      }
    }
    const { decisions, duplicate, late } = await engine.decide(events, readAts);
    const out: { topic: string; messages: Message[] }[] = [];
    if (decisions.length) {
      out.push({
        topic: topics.decisions,
        messages: decisions.map((d) => ({ key: d.account_id, value: schemas.codec.encode(decisionName, d) })),
      });
    }
    if (dead.length) out.push({ topic: topics.deadLetter, messages: dead });
    if (out.length) await producer!.sendBatch({ topicMessages: out, acks: -1 });
    for (let i = 0; i < decisions.length; i++) {
      const d = decisions[i]!;
      metrics.events.inc({ type: d.event_type, outcome: d.outcome });
      metrics.latency.observe({ type: d.event_type }, d.latency_us / 1e6);
      if (duplicate[i]) metrics.duplicates.inc({ type: d.event_type });
      if (late[i]) metrics.late.inc({ type: d.event_type });
    }
    metrics.batchSize.observe(msgs.length);
  };

  const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
    const { topic, partition, messages } = batch;
    let done!: () => void;
    const call = new Promise<void>((r) => (done = r));
    inflight.add(call);
    try {
      for (let start = 0; start < messages.length; start += maxBatch) {
        if (stopping || !isRunning() || isStale()) return;
        const chunk = messages.slice(start, start + maxBatch);
        try {
          await processChunk(topic, partition, chunk);
        } catch (err) {
          metrics.batchRetries.inc();
          log.error(
            { topic, partition, offset: chunk[0]!.offset, err },
            'batch failed; it will be read again',
          );
          throw err;
        }
        // The chunk's decisions and dead letters are acknowledged: read on. Its offset is committed by
        // the first checkpoint after it, once its feature changes are in Redis (at least once).
        const last = chunk[chunk.length - 1]!.offset;
        resolveOffset(last);
        pending.set(`${topic}:${partition}`, {
          topic,
          partition,
          offset: (BigInt(last) + 1n).toString(),
          seq: ++seq,
        });
        if (stopping) await checkpoint();
        else if (!running && performance.now() - lastCheckpoint >= checkpointMs) void checkpoint();
        await heartbeat();
      }
    } finally {
      inflight.delete(call);
      done();
    }
  };

  return {
    async start() {
      producer = kafka.producer({ ...SCORER_PRODUCER_CONFIG });
      await producer.connect();
      consumer = kafka.consumer({ groupId: opts.groupId, ...SCORER_CONSUMER_CONFIG });
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        joined = true;
        crashed = false;
        // A new generation reads on from the committed offsets: what was pending is read again (and
        // recognised as duplicates by the feature store), and the old generation cannot commit it.
        pending.clear();
        log.info({ memberAssignment: e.payload.memberAssignment }, 'joined consumer group');
      });
      consumer.on(consumer.events.CRASH, (e) => {
        crashed = !e.payload.restart;
        joined = false;
        log.error({ err: e.payload.error, restart: e.payload.restart }, 'consumer crashed');
      });
      await consumer.connect();
      await consumer.subscribe({
        topics: [topics.payments, topics.withdrawals, topics.labels],
        fromBeginning: opts.fromBeginning ?? true,
      });
      // Several partitions at once: while one batch waits for its decisions' acknowledgement (or the
      // feature engine's turn), another decodes and decides. A checkpoint commits a partition's offset
      // only past batches that finished before it flushed, so at-least-once holds as with one.
      await consumer.run({
        eachBatchAutoResolve: false,
        autoCommit: false,
        partitionsConsumedConcurrently: concurrently,
        eachBatch,
      });
      // Quiet partitions: what they decided last is committed within about a checkpoint interval.
      timer = setInterval(
        () => {
          if (!running) void checkpoint();
        },
        Math.max(checkpointMs, 100),
      );
      timer.unref();
    },
    async stop() {
      stopping = true;
      if (timer) clearInterval(timer);
      timer = null;
      // Finish the chunk in hand, then make everything decided durable and commit it before leaving.
      await Promise.all(inflight);
      await checkpoint();
      joined = false;
      await consumer?.disconnect();
      await producer?.disconnect();
    },
    ready: () => joined && !crashed,
  };
}
