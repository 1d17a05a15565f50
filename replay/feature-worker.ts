/**
 * The worker of replay's feature thread (feature-thread.ts): computes each batch's features with the
 * production feature engine, in event order, applying the labels between batches exactly where a
 * one-thread replay applies them, and hands each matrix to the main thread.
 */
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { Cluster, Redis } from 'ioredis';
import { createFeatureEngine, type FeatureEngine } from '../features/index.js';
import { fail } from '../lib/errors.js';
import { toWire } from '../lib/threads.js';
import { createSchemaCatalog } from '../schemas/catalog.js';
import type { Label, ScoringEvent } from '../schemas/index.js';
import { STREAM_FILES } from '../simulator/index.js';
import type { FeatureThreadInput, FromWorker, RedisSpec, ToWorker } from './feature-thread.js';
import { countContainerRecords, readEventChunks } from './files.js';
import { repeatableFromBits, repeatableIn, scanRepeatableIds, type RepeatableIds } from './ids.js';

const input = workerData as FeatureThreadInput;
const port = parentPort!;
const post = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

/**
 * Connects as the caller's client is connected, but gives up instead of retrying for ever: a replay
 * that cannot reach its Redis fails with FS_ERR_FEATURE_STORE rather than wait.
 */
async function connect(spec: RedisSpec): Promise<Redis | Cluster> {
  const giveUp = (times: number) => (times > 3 ? null : 200 * times);
  const options = { ...spec.options, maxRetriesPerRequest: 2 };
  const client = spec.cluster
    ? new Cluster(spec.nodes, { lazyConnect: true, clusterRetryStrategy: giveUp, redisOptions: options })
    : new Redis({ ...options, lazyConnect: true, retryStrategy: giveUp });
  // Failures reach the replay through the connect or the command that meets them.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (e) {
    client.disconnect();
    const where = spec.cluster
      ? spec.nodes.map((n) => `${n.host}:${n.port}`).join(',')
      : (spec.options.path ?? `${spec.options.host ?? '127.0.0.1'}:${spec.options.port ?? 6379}`);
    fail('FEATURE_STORE', `replay's feature thread cannot reach Redis at ${where}: ${(e as Error).message}`);
  }
  return client;
}

let credits = input.ahead;
let wake: (() => void) | null = null;
port.on('message', (m: ToWorker) => {
  if (m.kind === 'credit') {
    credits++;
    wake?.();
  }
});

async function run(features: FeatureEngine): Promise<{ labelsApplied: number; events: number }> {
  let events = 0;
  const send = async (batch: ScoringEvent[]) => {
    if (batch.length === 0) return;
    const fb = await features.computeBatch(batch);
    events += batch.length;
    while (credits === 0) {
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
    credits--;
    post({ kind: 'batch', ...fb }, [
      fb.matrix.buffer as ArrayBuffer,
      fb.duplicate.buffer as ArrayBuffer,
      fb.late.buffer as ArrayBuffer,
    ]);
  };
  const source: AsyncIterable<ScoringEvent[]> | Iterable<ScoringEvent[]> =
    'dir' in input.source ? readEventChunks(input.source.dir, createSchemaCatalog()) : [input.source.events];
  const labels = input.labels;
  let labelsApplied = 0;
  let nextLabel = 0;
  let batch: ScoringEvent[] = [];
  for await (const chunk of source) {
    for (const e of chunk) {
      // A label counts for the events at or after its labelled_at: apply it between them.
      if (nextLabel < labels.length && labels[nextLabel]!.labelled_at <= e.event.event_time) {
        await send(batch);
        batch = [];
        const due: Label[] = [];
        while (nextLabel < labels.length && labels[nextLabel]!.labelled_at <= e.event.event_time)
          due.push(labels[nextLabel++]!);
        labelsApplied += (await features.applyLabels(due)).applied;
      }
      batch.push(e);
      if (batch.length >= input.batchSize) {
        await send(batch);
        batch = [];
      }
    }
  }
  await send(batch);
  return { labelsApplied, events };
}

let redis: Redis | Cluster | undefined;
let features: FeatureEngine | undefined;
try {
  redis = await connect(input.redis);
  // Dedupe records only for the ids that can repeat: the input is read once for them first.
  let repeatable: RepeatableIds | undefined;
  const src = input.source;
  if ('dir' in src) {
    const paths = [STREAM_FILES.payments, STREAM_FILES.withdrawals].map((f) => join(src.dir, f));
    const bits = scanRepeatableIds(
      paths,
      paths.map(countContainerRecords).reduce((a, b) => a + b, 0),
    );
    if (bits) repeatable = repeatableFromBits(bits);
  } else repeatable = repeatableIn(src.events);
  // Replay owns its namespace and has just cleared it: the states live in this thread (write-behind)
  // and nothing needs reading back. The arithmetic is the scorer's (features/core.ts).
  features = createFeatureEngine({
    redis,
    prefix: input.prefix,
    writeMode: 'behind',
    fresh: true,
    ...(input.maxCachedEntities !== undefined ? { maxCachedEntities: input.maxCachedEntities } : {}),
    // The labels are all known here: only their events need a label lookup held.
    labelledEvents: new Set(input.labels.filter((l) => l.label === 'FRAUD').map((l) => l.event_id)),
    ...(repeatable ? { repeatableEvents: repeatable } : {}),
  });
  const done = await run(features);
  // The namespace is about to be deleted: nothing to write back.
  const keysWritten = features.stats().writes;
  await features.close({ flush: false });
  features = undefined;
  post({ kind: 'done', ...done, keysWritten });
} catch (e) {
  post({ kind: 'error', ...toWire(e) });
  await features?.close({ flush: false }).catch(() => undefined);
} finally {
  redis?.disconnect();
  // Lets the thread end (what it posted is already on the main thread's queue).
  port.removeAllListeners('message');
  port.unref();
}
