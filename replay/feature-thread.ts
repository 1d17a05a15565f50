/**
 * Replay's second thread: the feature engine runs in a worker thread, batch after batch in event order
 * with the labels applied between batches, while the main thread reads the same input again, scores,
 * decides and writes. Only the feature matrices cross (transferred, not copied), so each batch's
 * features are exactly those a one-thread run computes: the same engine, the same batches, the same
 * labels at the same points. Why: the features alone took about half of a replay's time on one
 * thread (docs/replay.md, "Where the time goes").
 *
 * The worker reads its own copy of the input (a folder's container files, or the events replay read
 * from Kafka, copied to it once) and holds its own Redis connection, made from the caller's
 * connection settings: the engine reads and writes Redis only to evict states and read them back.
 */
import { Cluster, type Redis, type RedisOptions } from 'ioredis';
import { fail } from '../lib/errors.js';
import { fromWire, startWorker, type WireError } from '../lib/threads.js';
import type { FeatureBatch } from '../features/index.js';
import type { Label, ScoringEvent } from '../schemas/index.js';

/** A Redis connection's settings that a worker can rebuild it from (no functions, no sockets). */
export type RedisSpec =
  | { cluster: false; options: RedisOptions }
  | { cluster: true; nodes: { host: string; port: number }[]; options: RedisOptions };

const KEPT_OPTIONS = [
  'host',
  'port',
  'path',
  'family',
  'username',
  'password',
  'db',
  'tls',
  'connectTimeout',
] as const;

function pick(o: RedisOptions | undefined): RedisOptions {
  const out: Record<string, unknown> = {};
  for (const k of KEPT_OPTIONS) if (o?.[k] !== undefined) out[k] = o[k];
  try {
    return structuredClone(out) as RedisOptions;
  } catch (e) {
    fail(
      'BAD_CONFIG',
      `replay's feature thread cannot copy the Redis connection settings: ${(e as Error).message}`,
    );
  }
}

/** A cluster startup node as ioredis accepts it: { host, port }, "host:port", a URL or a port. */
function nodeOf(n: string | number | { host?: string; port?: number }): { host: string; port: number } {
  if (typeof n === 'number') return { host: '127.0.0.1', port: n };
  if (typeof n === 'string') {
    const u = new URL(n.includes('://') ? n : `redis://${n}`);
    return { host: u.hostname, port: Number(u.port || 6379) };
  }
  return { host: n.host ?? '127.0.0.1', port: n.port ?? 6379 };
}

/** The settings of `redis`, for the worker to connect with. */
export function redisSpecOf(redis: Redis | Cluster): RedisSpec {
  if (redis instanceof Cluster) {
    const nodes = (
      redis as unknown as { startupNodes: (string | number | { host?: string; port?: number })[] }
    ).startupNodes;
    return { cluster: true, nodes: nodes.map(nodeOf), options: pick(redis.options.redisOptions) };
  }
  return { cluster: false, options: pick(redis.options) };
}

/** What the worker is started with (structured-cloned to it). */
export interface FeatureThreadInput {
  /** The folder of container files, or the events themselves (already in event-time order). */
  source: { dir: string } | { events: ScoringEvent[] };
  /** In labelled_at order: applied between batches as their labelled_at passes. */
  labels: Label[];
  redis: RedisSpec;
  prefix: string;
  batchSize: number;
  maxCachedEntities?: number;
  /** Batches the worker may compute ahead of the main thread (memory: about 800 bytes per event each). */
  ahead: number;
}

/** Messages worker -> main. */
export type FromWorker =
  | ({ kind: 'batch' } & FeatureBatch)
  | { kind: 'done'; labelsApplied: number; events: number; keysWritten: number }
  | ({ kind: 'error' } & WireError);

/** Messages main -> worker: one credit per batch the main thread has finished with. */
export type ToWorker = { kind: 'credit' };

export interface FeatureThread {
  /** The batches' features in order; ends after the last batch (then `labelsApplied` is known). */
  batches(): AsyncGenerator<FeatureBatch>;
  /** The main thread is done with one batch: the worker may compute one more. */
  release(): void;
  readonly labelsApplied: number;
  /**
   * Keys the engine wrote to the namespace (states evicted from its cache), known after the last
   * batch; null before. None: the namespace holds nothing but what the start left (its lease is released).
   */
  readonly keysWritten: number | null;
  /** Stops the worker (at once, whatever it is doing) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * The feature thread's young generation (V8's default is 48 MB: 16 MB semi-spaces). Batches of decoded
 * events live just long enough to be copied by a scavenge, and new entity states and their dimension
 * values live for good: with room for more of the first to die young, the garbage collector's threads
 * used about a fifth less CPU on a million events, the replay ran 3–7 % faster and its peak RSS was
 * lower, since fewer short-lived objects reached the old generation (docs/replay.md).
 */
export const FEATURE_THREAD_YOUNG_MB = 192;

export function startFeatureThread(input: FeatureThreadInput): FeatureThread {
  const worker = startWorker(import.meta.url, 'feature-worker', input, {
    maxYoungGenerationSizeMb: FEATURE_THREAD_YOUNG_MB,
  });
  const queue: FromWorker[] = [];
  let wake: (() => void) | null = null;
  let exited = false;
  let exitError: Error | null = null;
  let labelsApplied = 0;
  let keysWritten: number | null = null;
  const push = (m: FromWorker) => {
    queue.push(m);
    wake?.();
  };
  worker.on('message', (m: FromWorker) => push(m));
  worker.on('error', (e) =>
    push({ kind: 'error', message: e.message, ...(e.stack ? { stack: e.stack } : {}) }),
  );
  worker.on('exit', (code) => {
    exited = true;
    if (code !== 0) exitError = new Error(`replay's feature thread exited with code ${code}`);
    wake?.();
  });
  return {
    async *batches() {
      for (;;) {
        const m = queue.shift();
        if (!m) {
          if (exited) throw exitError ?? new Error("replay's feature thread exited before its last batch");
          await new Promise<void>((r) => (wake = r));
          wake = null;
          continue;
        }
        if (m.kind === 'error') throw fromWire(m, "replay's feature thread");
        if (m.kind === 'done') {
          labelsApplied = m.labelsApplied;
          keysWritten = m.keysWritten;
          return;
        }
        yield m;
      }
    },
    release() {
      worker.postMessage({ kind: 'credit' } satisfies ToWorker);
    },
    get labelsApplied() {
      return labelsApplied;
    },
    get keysWritten() {
      return keysWritten;
    },
    async stop() {
      if (!exited) await worker.terminate();
    },
  };
}
