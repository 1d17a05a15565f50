/**
 * The review queue on a thread of its own. Its consumer reads every decision and every input event
 * back from Kafka (about a third of the scoring process's CPU when it shared the scorer's event loop,
 * docs/review.md), and the store it fills holds up to 100,000 events and 50,000 accounts' activity:
 * here they cost the scorer neither event-loop time nor garbage-collection pauses. The HTTP routes
 * reach the store through messages; a store error comes back as the same FraudstreamError.
 */
import type { Worker } from 'node:worker_threads';
import { Errors, FraudstreamError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { fromWire, startWorker, type WireError } from '../lib/threads.js';
import type { Decision } from '../schemas/index.js';
import type { CaseDetail, CaseResolution, CaseView, ListQuery } from './store.js';

/** What the worker is started with (structured-cloned to it). */
export interface ReviewThreadInput {
  clientId: string;
  brokers: string[];
  groupPrefix: string;
  topics: { decisions: string; labels: string; payments: string; withdrawals: string };
  leaseMs: number;
  /** The caller's logger, as level and name: the worker logs as it does, to stderr. */
  log: { level: string; name: string };
}

/** The calls the worker answers, with their arguments and answers. */
export interface ReviewCalls {
  start: [[], void];
  stop: [[], void];
  list: [[q: ListQuery, now: number], { total: number; cases: CaseView[] }];
  get: [[id: string, now: number], CaseDetail];
  claim: [[id: string, analyst: string, now: number], CaseView];
  /** CaseStore.reserveResolve; the reservation waits in the worker for `commit` or `abort`. */
  reserve: [[id: string, analyst: string, now: number], Decision];
  commit: [[id: string, r: CaseResolution], CaseView];
  abort: [[id: string], void];
}
export type ReviewCall = {
  [M in keyof ReviewCalls]: { id: number; method: M; args: ReviewCalls[M][0] };
}[keyof ReviewCalls];
export type ReviewAnswer =
  { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

/** The case store as the HTTP routes use it, wherever it lives. */
export interface CaseStoreClient {
  list(q: ListQuery, now: number): Promise<{ total: number; cases: CaseView[] }>;
  get(id: string, now: number): Promise<CaseDetail>;
  claim(id: string, analyst: string, now: number): Promise<CaseView>;
  reserveResolve(
    id: string,
    analyst: string,
    now: number,
  ): Promise<{ decision: Decision; commit(r: CaseResolution): Promise<CaseView>; abort(): Promise<void> }>;
}

export interface ReviewThread {
  store: CaseStoreClient;
  /** Starts the consumer in the worker (it rebuilds the queue from the topics). */
  start(): Promise<void>;
  /** Stops the consumer and the worker. */
  stop(): Promise<void>;
}

export function startReviewThread(
  input: ReviewThreadInput,
  logger: Logger,
  /** Tests: the worker, to end it as a crash would. */
  hooks?: { onWorker?(w: Worker): void },
): ReviewThread {
  const worker: Worker = startWorker(import.meta.url, 'worker', input);
  hooks?.onWorker?.(worker);
  // The service's own handles keep the process up; a start that failed half-way must not hang it.
  worker.unref();
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let next = 0;
  let gone: Error | null = null;
  /** The queue is gone: calls in flight fail as later ones do, FS_ERR_UNAVAILABLE (HTTP 503). */
  const unavailable = () =>
    new FraudstreamError(Errors.UNAVAILABLE, `the review queue is not running: ${gone!.message}`, undefined, {
      cause: gone,
    });
  const failAll = (e: Error) => {
    gone ??= e;
    for (const p of pending.values()) p.reject(unavailable());
    pending.clear();
  };
  worker.on('message', (m: ReviewAnswer) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    else p.reject(fromWire(m.error, "the review queue's thread"));
  });
  worker.on('error', (e) => {
    logger.error({ err: e }, "the review queue's thread failed");
    failAll(e);
  });
  let terminating = false;
  worker.on('exit', (code) => {
    if (code !== 0 && !terminating) logger.error({ code }, "the review queue's thread exited");
    failAll(new Error(`the review queue's thread exited (code ${code})`));
  });
  const call = <M extends keyof ReviewCalls>(method: M, ...args: ReviewCalls[M][0]) =>
    new Promise<ReviewCalls[M][1]>((resolve, reject) => {
      // A throw here rejects the promise.
      if (gone) throw unavailable();
      const id = ++next;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ id, method, args } as ReviewCall);
    });
  let stopped: Promise<void> | undefined;
  return {
    store: {
      list: (q, now) => call('list', q, now),
      get: (id, now) => call('get', id, now),
      claim: (id, analyst, now) => call('claim', id, analyst, now),
      async reserveResolve(id, analyst, now) {
        const decision = await call('reserve', id, analyst, now);
        return { decision, commit: (r) => call('commit', id, r), abort: () => call('abort', id) };
      },
    },
    start: () => call('start'),
    stop() {
      stopped ??= (async () => {
        if (!gone) await call('stop').catch(() => undefined);
        terminating = true;
        if (!gone) await worker.terminate();
      })();
      return stopped;
    },
  };
}
