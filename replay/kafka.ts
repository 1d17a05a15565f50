import type { Kafka } from 'kafkajs';
import { fail, isFraudstreamError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { RecordNames, type Label, type Schemas, type ScoringEvent } from '../schemas/index.js';

export interface KafkaRangeOptions {
  kafka: Kafka;
  schemas: Schemas;
  logger: Logger;
  topics: { payments: string; withdrawals: string; labels: string };
  /** Epoch ms, inclusive (Kafka record timestamps). */
  from: number;
  /** Epoch ms, exclusive. */
  to: number;
}

export interface KafkaRange {
  /** Merged in event time (ties by event_id). */
  events: ScoringEvent[];
  /** In labelled_at order. */
  labels: Label[];
  /** Records that could not be decoded or failed validation (skipped, as the scorer dead-letters them). */
  invalid: number;
}

interface PartitionRange {
  partition: number;
  start: number;
  end: number;
}

/** Per partition, the first offset at or after `from` and the first at or after `to` (exclusive end). */
async function offsetsBetween(
  kafka: Kafka,
  topic: string,
  from: number,
  to: number | null,
): Promise<PartitionRange[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    // A missing topic would have kafkajs retry for a long time: check first.
    if (!(await admin.listTopics()).includes(topic)) fail('BAD_KAFKA_RANGE', `topic ${topic} does not exist`);
    const starts = await admin.fetchTopicOffsetsByTimestamp(topic, from);
    const ends = to === null ? [] : await admin.fetchTopicOffsetsByTimestamp(topic, to);
    const highs = await admin.fetchTopicOffsets(topic);
    const high = new Map(highs.map((h) => [h.partition, Number(h.high)]));
    const end = new Map(ends.map((e) => [e.partition, Number(e.offset)]));
    return starts.map((s) => {
      const hi = high.get(s.partition) ?? 0;
      // -1: no record at or after the timestamp, i.e. the end of the partition.
      const st = Number(s.offset) < 0 ? hi : Number(s.offset);
      const en = (end.get(s.partition) ?? -1) < 0 ? hi : end.get(s.partition)!;
      return { partition: s.partition, start: st, end: Math.max(st, en) };
    });
  } catch (e) {
    if (isFraudstreamError(e)) throw e;
    return fail('BAD_KAFKA_RANGE', `${topic}: ${(e as Error).message}`, undefined, e);
  } finally {
    await admin.disconnect();
  }
}

/** Reads [start, end) of every partition of a topic, then stops. */
async function readRange(
  kafka: Kafka,
  topic: string,
  ranges: PartitionRange[],
  onValue: (value: Buffer) => void,
): Promise<void> {
  const todo = ranges.filter((r) => r.end > r.start);
  if (todo.length === 0) return;
  const remaining = new Map(todo.map((r) => [r.partition, r]));
  const consumer = kafka.consumer({
    groupId: `fraudstream-replay-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    allowAutoTopicCreation: false,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          eachBatch: async ({ batch, resolveOffset }) => {
            const r = remaining.get(batch.partition);
            if (!r) return;
            for (const m of batch.messages) {
              const off = Number(m.offset);
              if (off >= r.end) break;
              if (off >= r.start && m.value) onValue(m.value);
              resolveOffset(m.offset);
              if (off + 1 >= r.end) remaining.delete(batch.partition);
            }
            if (remaining.size === 0) resolve();
          },
        })
        .catch(reject);
      for (const r of todo) consumer.seek({ topic, partition: r.partition, offset: String(r.start) });
    });
  } finally {
    await consumer.disconnect();
  }
}

const before = (a: ScoringEvent, b: ScoringEvent) =>
  a.event.event_time - b.event.event_time ||
  (a.event.event_id < b.event.event_id ? -1 : a.event.event_id > b.event.event_id ? 1 : 0);

/**
 * The input topics between two timestamps, found with offsetsForTimes (fetchTopicOffsetsByTimestamp),
 * decoded and validated as the scorer does, then merged in event time. The range is held in memory
 * (about 300 bytes an event): for histories larger than RAM, export to container files first.
 */
export async function readKafkaRange(opts: KafkaRangeOptions): Promise<KafkaRange> {
  if (!(opts.to > opts.from))
    fail('BAD_KAFKA_RANGE', `--to (${opts.to}) must be after --from (${opts.from})`);
  const events: ScoringEvent[] = [];
  const labels: Label[] = [];
  let invalid = 0;
  const now = Date.now();
  for (const topic of [opts.topics.payments, opts.topics.withdrawals]) {
    const ranges = await offsetsBetween(opts.kafka, topic, opts.from, opts.to);
    await readRange(opts.kafka, topic, ranges, (v) => {
      try {
        events.push(opts.schemas.decodeEvent(v, now));
      } catch (e) {
        invalid++;
        opts.logger.warn({ topic, err: (e as Error).message }, 'replay: skipping an invalid record');
      }
    });
  }
  // Labels known now: the whole labels topic. A backtest of a past window is judged with every
  // chargeback since; the features still see a label only from its labelled_at on.
  const labelRanges = await offsetsBetween(opts.kafka, opts.topics.labels, 0, null);
  await readRange(opts.kafka, opts.topics.labels, labelRanges, (v) => {
    try {
      labels.push(opts.schemas.codec.decode<Label>(v, [RecordNames.Label]).value);
    } catch (e) {
      invalid++;
      opts.logger.warn(
        { topic: opts.topics.labels, err: (e as Error).message },
        'replay: skipping an invalid label',
      );
    }
  });
  events.sort(before);
  labels.sort(
    (a, b) =>
      a.labelled_at - b.labelled_at || (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0),
  );
  return { events, labels, invalid };
}
