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
  /** Start a new consumer group at the earliest offsets (true) or the latest (false). Default true. */
  fromBeginning?: boolean;
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
  const topicType = new Map<string, EventType>([
    [topics.payments, 'PAYMENT'],
    [topics.withdrawals, 'WITHDRAWAL'],
  ]);
  const decisionName = RecordNames.Decision;

  let consumer: Consumer | undefined;
  let producer: Producer | undefined;
  let joined = false;
  let crashed = false;

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

  const eachBatch = async ({
    batch,
    resolveOffset,
    heartbeat,
    commitOffsetsIfNecessary,
    isRunning,
    isStale,
  }: EachBatchPayload) => {
    const { topic, partition, messages } = batch;
    for (let start = 0; start < messages.length; start += maxBatch) {
      if (!isRunning() || isStale()) return;
      const chunk = messages.slice(start, start + maxBatch);
      try {
        await processChunk(topic, partition, chunk);
      } catch (err) {
        metrics.batchRetries.inc();
        log.error({ topic, partition, offset: chunk[0]!.offset, err }, 'batch failed; it will be read again');
        throw err;
      }
      // Offsets move only once the chunk's decisions and dead letters are acknowledged (at least once).
      resolveOffset(chunk[chunk.length - 1]!.offset);
      await commitOffsetsIfNecessary();
      await heartbeat();
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
      await consumer.run({ eachBatchAutoResolve: false, autoCommit: true, eachBatch });
    },
    async stop() {
      joined = false;
      await consumer?.disconnect();
      await producer?.disconnect();
    },
    ready: () => joined && !crashed,
  };
}
