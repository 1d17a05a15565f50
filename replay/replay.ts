import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import type { Clock } from '../lib/clock.js';
import { fail } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { createFeatureEngine } from '../features/index.js';
import type { ModelRunner } from '../models/index.js';
import type { Policy } from '../policy/index.js';
import { createDecisionEngine } from '../scorer/index.js';
import {
  createContainerWriter,
  readContainer,
  RecordNames,
  type Decision,
  type Label,
  type PaymentEvent,
  type SchemaCatalog,
  type ScoringEvent,
  type WithdrawalEvent,
} from '../schemas/index.js';
import { mergeByEventTime } from './merge.js';
import { prAuc, rocAuc } from './metrics.js';

export const INPUT_FILES = {
  payments: 'payments.avro',
  withdrawals: 'withdrawals.avro',
  labels: 'labels.avro',
} as const;

export interface ReplayOptions {
  inDir: string;
  outDir: string;
  redis: Redis | Cluster;
  catalog: SchemaCatalog;
  logger: Logger;
  clock: Clock;
  /** Redis namespace (key prefix without the colon); cleared before the run. */
  namespace: string;
  batchSize: number;
  /** Absent: features only (needs emitFeatures). */
  model?: ModelRunner;
  policy?: Policy;
  emitFeatures?: string;
  onProgress?: (events: number) => void;
}

export interface ReplayResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  metrics?: Record<string, unknown>;
}

/** Deletes every key of the namespace (SCAN + UNLINK), on each master of a cluster. */
export async function clearNamespace(redis: Redis | Cluster, namespace: string): Promise<number> {
  const nodes =
    'nodes' in redis && typeof redis.nodes === 'function'
      ? (redis as Cluster).nodes('master')
      : [redis as Redis];
  let n = 0;
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) {
        // One key per command: a cluster refuses multi-key commands across slots.
        const pipe = node.pipeline();
        for (const k of keys) pipe.unlink(k);
        for (const [, v] of (await pipe.exec()) ?? []) n += Number(v ?? 0);
      }
    } while (cursor !== '0');
  }
  return n;
}

/** Labels by event id (the last one of an event wins: the label known at the end of the history),
 * and all labels in labelled_at order, to feed the label-informed features as time passes. */
async function loadLabels(
  path: string,
  catalog: SchemaCatalog,
): Promise<{ byEvent: Map<string, Label>; inOrder: Label[] }> {
  const byEvent = new Map<string, Label>();
  const inOrder: Label[] = [];
  if (!existsSync(path)) return { byEvent, inOrder };
  for await (const l of readContainer<Label>(path, catalog.reader(RecordNames.Label))) {
    byEvent.set(l.event_id, l);
    inOrder.push(l);
  }
  inOrder.sort(
    (a, b) =>
      a.labelled_at - b.labelled_at || (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0),
  );
  return { byEvent, inOrder };
}

/**
 * Replays a folder of container files through the production feature engine, model runner and policy,
 * in event time, on an isolated Redis namespace.
 */
export async function runReplay(opts: ReplayOptions): Promise<ReplayResult> {
  const { catalog, logger } = opts;
  if (/[{}:]/.test(opts.namespace) || !opts.namespace)
    fail(
      'BAD_CONFIG',
      `namespace ${JSON.stringify(opts.namespace)} must be non-empty, without braces or colons`,
    );
  if (opts.namespace === 'fs') fail('BAD_CONFIG', 'namespace "fs" is the live feature store');
  if (!opts.model && !opts.emitFeatures) fail('BAD_CONFIG', 'replay without a model needs --emit-features');
  for (const f of [INPUT_FILES.payments, INPUT_FILES.withdrawals]) {
    if (!existsSync(join(opts.inDir, f))) fail('BAD_INPUT_FILE', `${join(opts.inDir, f)} does not exist`);
  }
  mkdirSync(opts.outDir, { recursive: true });
  const cleared = await clearNamespace(opts.redis, opts.namespace);
  logger.info({ namespace: opts.namespace, cleared }, 'replay namespace cleared');

  const { byEvent: labels, inOrder: labelStream } = await loadLabels(
    join(opts.inDir, INPUT_FILES.labels),
    catalog,
  );
  const features = createFeatureEngine({ redis: opts.redis, prefix: `${opts.namespace}:` });
  const engine =
    opts.model && opts.policy
      ? createDecisionEngine({
          features,
          model: opts.model,
          policy: opts.policy,
          clock: opts.clock,
          includeFeatures: false,
        })
      : undefined;

  const decisionsOut = engine
    ? createContainerWriter<Decision>(
        join(opts.outDir, 'decisions.avro'),
        catalog.reader(RecordNames.Decision),
      )
    : undefined;
  const csv = opts.emitFeatures ? createWriteStream(opts.emitFeatures) : undefined;
  if (opts.emitFeatures) {
    // Sidecar read by models/train: which spec produced these columns.
    writeFileSync(
      `${opts.emitFeatures}.meta.json`,
      JSON.stringify(
        { feature_spec: features.specHash, feature_names: features.names, source: opts.inDir },
        null,
        2,
      ) + '\n',
    );
  }
  const write = async (s: string) => {
    if (csv && !csv.write(s)) await once(csv, 'drain');
  };
  await write(['event_id', 'event_time', 'event_type', 'label', ...features.names].join(',') + '\n');

  const scores: number[] = [];
  const truth: number[] = [];
  let flagged = 0;
  let flaggedFraud = 0;
  let events = 0;
  const started = performance.now();

  const flush = async (batch: ScoringEvent[]) => {
    if (batch.length === 0) return;
    let matrix: Float32Array;
    const cols = features.cols;
    if (engine) {
      const readAt = opts.clock.monoMicros();
      const res = await engine.decide(
        batch,
        batch.map(() => readAt),
      );
      matrix = res.matrix;
      for (const d of res.decisions) {
        await decisionsOut!.append(d);
        scores.push(d.score);
        truth.push(labels.get(d.event_id)?.label === 'FRAUD' ? 1 : 0);
        if (d.outcome === 'FLAG') {
          flagged++;
          if (truth[truth.length - 1]) flaggedFraud++;
        }
      }
    } else {
      matrix = (await features.computeBatch(batch)).matrix;
    }
    if (csv) {
      let chunk = '';
      for (let i = 0; i < batch.length; i++) {
        const e = batch[i]!;
        const label = labels.get(e.event.event_id)?.label === 'FRAUD' ? 1 : 0;
        chunk += `${e.event.event_id},${e.event.event_time},${e.type},${label}`;
        for (let j = 0; j < cols; j++) chunk += ',' + matrix[i * cols + j]!;
        chunk += '\n';
      }
      await write(chunk);
    }
    events += batch.length;
    opts.onProgress?.(events);
  };

  let batch: ScoringEvent[] = [];
  const stream = mergeByEventTime(
    readContainer<PaymentEvent>(
      join(opts.inDir, INPUT_FILES.payments),
      catalog.reader(RecordNames.PaymentEvent),
    ),
    readContainer<WithdrawalEvent>(
      join(opts.inDir, INPUT_FILES.withdrawals),
      catalog.reader(RecordNames.WithdrawalEvent),
    ),
  );
  let nextLabel = 0;
  let labelsApplied = 0;
  for await (const e of stream) {
    // A label counts for the events at or after its labelled_at: apply it between them.
    if (nextLabel < labelStream.length && labelStream[nextLabel]!.labelled_at <= e.event.event_time) {
      await flush(batch);
      batch = [];
      const due: Label[] = [];
      while (nextLabel < labelStream.length && labelStream[nextLabel]!.labelled_at <= e.event.event_time)
        due.push(labelStream[nextLabel++]!);
      labelsApplied += (await features.applyLabels(due)).applied;
    }
    batch.push(e);
    if (batch.length >= opts.batchSize) {
      await flush(batch);
      batch = [];
    }
  }
  await flush(batch);
  await decisionsOut?.close();
  if (csv) {
    csv.end();
    await once(csv, 'finish');
  }
  const seconds = (performance.now() - started) / 1000;
  const result: ReplayResult = { events, seconds, eventsPerSecond: events / seconds };
  if (engine) {
    const positives = truth.reduce((a, b) => a + b, 0);
    const metrics = {
      events,
      labelled_fraud: positives,
      flagged,
      flag_rate: events ? flagged / events : 0,
      precision: flagged ? flaggedFraud / flagged : 0,
      recall: positives ? flaggedFraud / positives : 0,
      roc_auc: rocAuc(scores, truth),
      pr_auc: prAuc(scores, truth),
      labels_applied: labelsApplied,
      model_version: opts.model!.version,
      policy_version: opts.policy!.version,
      events_per_second: result.eventsPerSecond,
    };
    writeFileSync(join(opts.outDir, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
    result.metrics = metrics;
  }
  await clearNamespace(opts.redis, opts.namespace);
  return result;
}
