import type { Producer } from 'kafkajs';
import type { Worker } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { isFraudstreamError } from '../../lib/errors.js';
import { createSilentLogger } from '../../lib/logger.js';
import { createReviewApi, startReviewThread } from '../../review/index.js';
import { createSchemas } from '../../schemas/index.js';
import { createHttpServer } from '../../scorer/index.js';

const ANALYST = 'analyst-key-0123456789';

/** A review thread that is never started: no Kafka is needed for its store's calls. */
function thread() {
  let worker!: Worker;
  const t = startReviewThread(
    {
      clientId: 'unit-review-thread',
      brokers: ['127.0.0.1:1'],
      groupPrefix: 'unit',
      topics: { decisions: 'd', labels: 'l', payments: 'p', withdrawals: 'w' },
      leaseMs: 60_000,
      log: { level: 'silent', name: 'unit' },
    },
    createSilentLogger(),
    { onWorker: (w) => (worker = w) },
  );
  onTestFinished(() => worker.terminate().then(() => undefined));
  return { t, worker };
}

describe('the review queue when its thread dies', () => {
  it('fails the calls in flight and every later one with FS_ERR_UNAVAILABLE', async () => {
    const { t, worker } = thread();
    expect(await t.store.list({}, Date.now())).toEqual({ total: 0, cases: [] });
    // A call the thread will never answer, then the thread ends as a crash would. The thread would
    // answer this one (case not found) if it ran before the end, so its answer is dropped on the
    // way back: without that the test raced the thread (it failed once in CI).
    worker.removeAllListeners('message');
    const inFlight = t.store.get('e-1', Date.now()).catch((e: unknown) => e);
    await worker.terminate();
    const err = await inFlight;
    expect(isFraudstreamError(err, 'UNAVAILABLE')).toBe(true);
    const later = await t.store.list({}, Date.now()).catch((e: unknown) => e);
    expect(isFraudstreamError(later, 'UNAVAILABLE')).toBe(true);
    expect((later as Error).message).toMatch(/review queue is not running/);
  });

  it('answers the review routes 503 with the error code, and nothing else changes', async () => {
    const { t, worker } = thread();
    const app = createHttpServer({
      logger: createSilentLogger(),
      metrics: new Registry(),
      readiness: async () => ({ ok: true }),
      apiKeys: [{ role: 'analyst', name: 'ann', key: ANALYST }],
      review: createReviewApi({
        store: t.store,
        producer: {} as Producer, // not reached: nothing can be resolved without the store
        labelsTopic: 'l',
        schemas: createSchemas(),
        clock: { now: () => Date.now(), monoMicros: () => process.hrtime.bigint() / 1000n },
      }),
    });
    onTestFinished(() => app.close());
    const get = (url: string) => app.inject({ method: 'GET', url, headers: { 'x-api-key': ANALYST } });
    expect((await get('/v1/cases')).statusCode).toBe(200);
    await worker.terminate();
    for (const r of [
      await get('/v1/cases'),
      await get('/v1/cases/e-1'),
      await app.inject({
        method: 'POST',
        url: '/v1/cases/e-1/claim',
        headers: { 'x-api-key': ANALYST },
        payload: {},
      }),
    ]) {
      expect(r.statusCode).toBe(503);
      expect(r.json().error.code).toBe('FS_ERR_UNAVAILABLE');
    }
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
