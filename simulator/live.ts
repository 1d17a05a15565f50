import { setTimeout as sleep } from 'node:timers/promises';
import { Partitioners, type Kafka, type Message } from 'kafkajs';
import type { Logger } from '../lib/logger.js';
import { RecordNames, type FramedCodec } from '../schemas/index.js';
import { createSimulation, type SimulationOptions } from './generate.js';

export interface LiveOptions {
  kafka: Kafka;
  codec: FramedCodec;
  logger: Logger;
  topics: { payments: string; withdrawals: string };
  sim: SimulationOptions;
  /** Events per second. */
  rate: number;
  /** Stop after this many seconds; 0 = when the history ends. */
  durationS: number;
  signal?: AbortSignal;
}

/**
 * Streams a simulated history to Kafka at a steady rate, in event-time order. Event times are those of
 * the history (which ends now), so the features match what the model was trained on.
 */
export async function produceLive(opts: LiveOptions): Promise<{ sent: number }> {
  const producer = opts.kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const sim = createSimulation(opts.sim);
  const it = sim.events();
  const tickMs = 20;
  const started = performance.now();
  const deadline = opts.durationS > 0 ? started + opts.durationS * 1000 : Infinity;
  let sent = 0;
  let done = false;
  try {
    while (!done && !opts.signal?.aborted && performance.now() < deadline) {
      const due = Math.floor(((performance.now() - started) / 1000) * opts.rate);
      const pay: Message[] = [];
      const wd: Message[] = [];
      while (sent + pay.length + wd.length < due) {
        const n = it.next();
        if (n.done) {
          done = true;
          break;
        }
        const e = n.value;
        if (e.type === 'PAYMENT')
          pay.push({ key: e.event.account_id, value: opts.codec.encode(RecordNames.PaymentEvent, e.event) });
        else
          wd.push({
            key: e.event.account_id,
            value: opts.codec.encode(RecordNames.WithdrawalEvent, e.event),
          });
      }
      const topicMessages = [];
      if (pay.length) topicMessages.push({ topic: opts.topics.payments, messages: pay });
      if (wd.length) topicMessages.push({ topic: opts.topics.withdrawals, messages: wd });
      if (topicMessages.length) await producer.sendBatch({ topicMessages, acks: -1 });
      sent += pay.length + wd.length;
      await sleep(tickMs);
    }
  } finally {
    await producer.disconnect();
  }
  opts.logger.info({ sent }, 'live simulation stopped');
  return { sent };
}
