import { randomBytes } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import type { Logger } from '../lib/logger.js';
import { RecordNames, type Decision, type Label, type Schemas } from '../schemas/index.js';
import type { CaseStore } from './store.js';

export interface ReviewConsumerOptions {
  kafka: Kafka;
  /** Prefix of the consumer group; each start uses a fresh group so the queue is rebuilt from offset 0. */
  groupPrefix: string;
  topics: { decisions: string; labels: string; payments: string; withdrawals: string };
  schemas: Schemas;
  store: CaseStore;
  logger: Logger;
}

export interface ReviewConsumer {
  start(): Promise<void>;
  stop(): Promise<void>;
  ready(): boolean;
}

/**
 * Builds the case store from Kafka: decisions open cases (FLAG), labels resolve them, input events are
 * kept for the case detail. It reads every topic from the beginning, so a restart rebuilds the queue.
 */
export function createReviewConsumer(opts: ReviewConsumerOptions): ReviewConsumer {
  const { topics, schemas, store } = opts;
  const log = opts.logger.child({ component: 'review' });
  let consumer: Consumer | undefined;
  let joined = false;
  return {
    async start() {
      consumer = opts.kafka.consumer({
        groupId: `${opts.groupPrefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
        allowAutoTopicCreation: false,
        maxWaitTimeInMs: 50,
      });
      consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
      consumer.on(consumer.events.CRASH, (e) => {
        joined = false;
        log.error({ err: e.payload.error }, 'review consumer crashed');
      });
      await consumer.connect();
      await consumer.subscribe({
        topics: [topics.decisions, topics.labels, topics.payments, topics.withdrawals],
        fromBeginning: true,
      });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const { topic, messages } = batch;
          for (const m of messages) {
            if (!m.value) continue;
            try {
              if (topic === topics.decisions)
                store.addDecision(
                  // The queue never reads the feature vector: skipped, not built.
                  schemas.codec.decode<Decision>(m.value, [RecordNames.Decision], { skip: ['features'] })
                    .value,
                );
              else if (topic === topics.labels)
                store.applyLabel(schemas.codec.decode<Label>(m.value, [RecordNames.Label]).value);
              else store.addEvent(schemas.decodeEvent(m.value, Date.now()));
            } catch (err) {
              // The scorer dead-letters bad input; here it is only skipped.
              log.debug({ topic, offset: m.offset, err: (err as Error).message }, 'skipped a record');
            }
          }
        },
      });
    },
    async stop() {
      joined = false;
      await consumer?.disconnect();
    },
    ready: () => joined,
  };
}
