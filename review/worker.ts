/**
 * The review queue's worker (review/thread.ts): the case store and the consumer that fills it from
 * Kafka, answering the HTTP routes' calls one message at a time, in the order they come.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Kafka, logLevel } from 'kafkajs';
import { createLogger, createSilentLogger, kafkaLogCreator } from '../lib/logger.js';
import { toWire } from '../lib/threads.js';
import { createSchemas } from '../schemas/index.js';
import { createReviewConsumer } from './consumer.js';
import { createCaseStore } from './store.js';
import type { ReviewAnswer, ReviewCall, ReviewThreadInput } from './thread.js';

const input = workerData as ReviewThreadInput;
const port = parentPort!;
const logger =
  input.log.level === 'silent'
    ? createSilentLogger()
    : createLogger({ level: input.log.level, name: input.log.name });
const kafka = new Kafka({
  clientId: input.clientId,
  brokers: input.brokers,
  logLevel: logLevel.INFO,
  logCreator: kafkaLogCreator(logger),
});
const store = createCaseStore({ leaseMs: input.leaseMs });
const consumer = createReviewConsumer({
  kafka,
  groupPrefix: input.groupPrefix,
  topics: input.topics,
  schemas: createSchemas(),
  store,
  logger,
});
/** Resolves reserved and not yet committed or aborted, by case id (the store allows one at a time). */
const reserved = new Map<string, ReturnType<typeof store.reserveResolve>>();

async function answer(m: ReviewCall): Promise<unknown> {
  switch (m.method) {
    case 'start':
      return consumer.start();
    case 'stop':
      return consumer.stop();
    case 'list':
      return store.list(...m.args);
    case 'get':
      return store.get(...m.args);
    case 'claim':
      return store.claim(...m.args);
    case 'reserve': {
      const r = store.reserveResolve(...m.args);
      reserved.set(m.args[0], r);
      return r.decision;
    }
    case 'commit': {
      const r = reserved.get(m.args[0]);
      reserved.delete(m.args[0]);
      if (!r) throw new Error(`no resolve of case ${m.args[0]} is reserved`);
      return r.commit(m.args[1]);
    }
    case 'abort': {
      const r = reserved.get(m.args[0]);
      reserved.delete(m.args[0]);
      return r?.abort();
    }
  }
}

port.on('message', (m: ReviewCall) => {
  answer(m).then(
    (value) => port.postMessage({ id: m.id, ok: true, value } satisfies ReviewAnswer),
    (e: unknown) => port.postMessage({ id: m.id, ok: false, error: toWire(e) } satisfies ReviewAnswer),
  );
});
