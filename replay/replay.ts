import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import type { Clock } from '../lib/clock.js';
import { fail } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { createFeatureEngine, type FeatureBatch } from '../features/index.js';
import type { ModelRunner } from '../models/index.js';
import type { Policy } from '../policy/index.js';
import { createDecisionEngine } from '../scorer/index.js';
import {
  createContainerWriter,
  readContainer,
  RecordNames,
  type Decision,
  type Label,
  type SchemaCatalog,
  type ScoringEvent,
} from '../schemas/index.js';
import { scenarioTagType, STREAM_FILES, type ScenarioTag } from '../simulator/index.js';
import { createFeatureFileWriter, type FeatureFileWriter } from './arrow.js';
import { redisSpecOf, startFeatureThread, type FeatureThread } from './feature-thread.js';
import { countContainerRecords, readEventChunks } from './files.js';
import { renderReportHtml } from './html.js';
import { readKafkaRange, type KafkaRangeOptions } from './kafka.js';
import {
  createOutcomeCollector,
  modelReport,
  type ModelReport,
  type OutcomeCollector,
  type OutcomeRow,
} from './report.js';

export const INPUT_FILES = STREAM_FILES;

export interface ReplayModel {
  model: ModelRunner;
  policy: Policy;
  /** The policy's threshold, for the report's "at the policy threshold" rows and the sweep. */
  threshold: number;
}

export interface ReplayOptions {
  /** Folder of container files (payments.avro, withdrawals.avro, labels.avro, optional scenarios.avro). */
  inDir?: string;
  /** Or: Kafka topics between two timestamps. */
  kafka?: KafkaRangeOptions;
  outDir: string;
  redis: Redis | Cluster;
  catalog: SchemaCatalog;
  logger: Logger;
  clock: Clock;
  /** Redis namespace (key prefix without the colon); cleared before and after the run. */
  namespace: string;
  batchSize: number;
  /** Entity states kept in memory; past it the least recently used are written to Redis. Default 200,000. */
  maxCachedEntities?: number;
  /** Absent: features only (needs emitFeatures). */
  champion?: ReplayModel;
  /** Scored on the same feature vectors, recorded in the report side by side, never in decisions.avro. */
  challenger?: ReplayModel;
  /** Arrow IPC file of every event's feature vector and final label (training data). */
  emitFeatures?: string;
  /** Called after each batch with the events done and the total when known. */
  onProgress?: (done: number, total: number | null) => void;
  /**
   * Stops the replay between batches (`FS_ERR_INTERRUPTED`): like any failure, it leaves no output and
   * clears the namespace. Once the outputs are being committed the run completes instead.
   */
  signal?: AbortSignal;
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

/**
 * Set when a replay leaves its namespace empty, taken (deleted) when the next one starts: a namespace
 * whose marker is there needs no walk of the keyspace to be cleared, which costs seconds on a Redis
 * holding millions of other keys. Outside the namespace, so a cleared namespace holds no key at all.
 * Only a successful run sets it (a failed one may have writes in flight when it clears); a run that
 * starts without it clears as before.
 */
export const cleanMarker = (namespace: string) => `fraudstream-replay-clean:${namespace}`;

const byLabelledAt = (a: Label, b: Label) =>
  a.labelled_at - b.labelled_at || (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0);

interface Input {
  /** The events in chunks (files), or all of them (Kafka, read whole already). */
  events: AsyncIterable<ScoringEvent[]> | ScoringEvent[];
  /** In labelled_at order. */
  labels: Label[];
  /** Ground truth of fraud events, when the input has it (simulated histories). */
  scenarios: Map<string, string> | null;
  total: number | null;
  source: string;
}

async function fileInput(dir: string, catalog: SchemaCatalog, logger: Logger): Promise<Input> {
  const path = (f: string) => join(dir, f);
  for (const f of [INPUT_FILES.payments, INPUT_FILES.withdrawals]) {
    if (!existsSync(path(f))) fail('BAD_INPUT_FILE', `${path(f)} does not exist`);
  }
  // A backtest without labels would report zero fraud as if it were the truth: refuse instead.
  if (!existsSync(path(INPUT_FILES.labels)))
    fail(
      'BAD_INPUT_FILE',
      `${path(INPUT_FILES.labels)} does not exist; a history with no labels needs an empty labels.avro`,
    );
  // Block headers only: fails fast on a truncated file, before any output, and gives the ETA its total.
  const total =
    countContainerRecords(path(INPUT_FILES.payments)) + countContainerRecords(path(INPUT_FILES.withdrawals));
  const labels: Label[] = [];
  for await (const l of readContainer<Label>(path(INPUT_FILES.labels), catalog.reader(RecordNames.Label)))
    labels.push(l);
  labels.sort(byLabelledAt); // stable: among equal labelled_at, file order
  let scenarios: Map<string, string> | null = null;
  if (existsSync(path(INPUT_FILES.scenarios))) {
    countContainerRecords(path(INPUT_FILES.scenarios));
    scenarios = new Map();
    for await (const t of readContainer<ScenarioTag>(path(INPUT_FILES.scenarios), scenarioTagType()))
      scenarios.set(t.event_id, t.scenario);
  } else logger.info({ dir }, 'no scenarios.avro: the report has no per-scenario figures');
  return { events: readEventChunks(dir, catalog), labels, scenarios, total, source: dir };
}

/** Writes to `path.partial` and renames on success, so a failed run never leaves a plausible file. */
function staged(path: string) {
  const tmp = `${path}.partial`;
  rmSync(tmp, { force: true });
  return { tmp, commit: () => renameSync(tmp, path), abort: () => rmSync(tmp, { force: true }) };
}

/**
 * Replays a history through the production feature engine, model runner and policy (the scorer's
 * decision engine), in event time, on an isolated Redis namespace. Labels are applied to the
 * label-informed features as their labelled_at passes. Writes decisions.avro, metrics.json and
 * report.html (with a model), and the training-data file (with emitFeatures).
 */
export async function runReplay(opts: ReplayOptions): Promise<ReplayResult> {
  const { catalog, logger } = opts;
  if (/[{}:]/.test(opts.namespace) || !opts.namespace)
    fail(
      'BAD_CONFIG',
      `namespace ${JSON.stringify(opts.namespace)} must be non-empty, without braces or colons`,
    );
  if (opts.namespace === 'fs') fail('BAD_CONFIG', 'namespace "fs" is the live feature store');
  if (!opts.champion && !opts.emitFeatures)
    fail('BAD_CONFIG', 'replay without a model needs --emit-features');
  if (!opts.champion && opts.challenger) fail('BAD_CONFIG', 'a challenger needs a champion model');
  if (!!opts.inDir === !!opts.kafka)
    fail('BAD_CONFIG', 'replay reads either a folder (--in) or Kafka (--from/--to)');

  const stopIfAborted = () => {
    if (opts.signal?.aborted)
      fail('INTERRUPTED', `replay stopped after ${events} events; no output was written`);
  };
  let events = 0;
  let input: Input;
  if (opts.inDir) input = await fileInput(opts.inDir, catalog, logger);
  else {
    const r = await readKafkaRange(opts.kafka!);
    input = {
      events: r.events,
      labels: r.labels,
      scenarios: null,
      total: r.events.length,
      source: `kafka ${opts.kafka!.topics.payments},${opts.kafka!.topics.withdrawals} [${new Date(opts.kafka!.from).toISOString()}, ${new Date(opts.kafka!.to).toISOString()})`,
    };
    if (r.invalid) logger.warn({ invalid: r.invalid }, 'replay skipped invalid records');
  }
  stopIfAborted();
  const finalLabel = new Map<string, Label>();
  for (const l of input.labels) finalLabel.set(l.event_id, l); // the last one (by labelled_at) wins

  mkdirSync(opts.outDir, { recursive: true });
  // Taken whether or not it is there: from here the namespace is this run's, until it sets it again.
  const knownClean = (await opts.redis.del(cleanMarker(opts.namespace))) === 1;
  const cleared = knownClean ? 0 : await clearNamespace(opts.redis, opts.namespace);
  logger.info(
    { namespace: opts.namespace, cleared, walked: !knownClean },
    knownClean ? 'replay namespace clean since the last run' : 'replay namespace cleared',
  );

  // The features are computed on a second thread (feature-thread.ts); this engine is never run, it
  // names the columns and the spec for the decisions and the training file.
  const features = createFeatureEngine({ redis: opts.redis, prefix: `${opts.namespace}:` });
  const champ = opts.champion;
  const engine = champ
    ? createDecisionEngine({
        features,
        model: champ.model,
        policy: champ.policy,
        clock: opts.clock,
        includeFeatures: false,
      })
    : undefined;

  const decisionsPath = join(opts.outDir, 'decisions.avro');
  const decStage = engine ? staged(decisionsPath) : undefined;
  const featStage = opts.emitFeatures ? staged(opts.emitFeatures) : undefined;
  let decisionsOut: ReturnType<typeof createContainerWriter<Decision>> | undefined;
  let thread: FeatureThread | undefined;
  /** This thread's read of the input (closed on failure: the file readers go with it). */
  let it: AsyncIterator<ScoringEvent[]> | Iterator<ScoringEvent[]> | undefined;
  let featOut: FeatureFileWriter | undefined;
  const outcomes: OutcomeCollector[] = [];
  let labelsApplied = 0;
  /** Keys the feature thread wrote to the namespace (null: not known, clear it). */
  let keysWritten: number | null = null;
  const started = performance.now();
  try {
    decisionsOut = decStage
      ? createContainerWriter<Decision>(decStage.tmp, catalog.reader(RecordNames.Decision), {
          // The fastest deflate: a quarter bigger, and about 1 µs of CPU per event less than zlib's
          // default, on two cores the feature thread shares (docs/replay.md).
          deflateLevel: 1,
        })
      : undefined;
    featOut = featStage
      ? createFeatureFileWriter(featStage.tmp, features.names, {
          specHash: features.specHash,
          source: input.source,
        })
      : undefined;
    if (champ) outcomes.push(createOutcomeCollector());
    if (opts.challenger) outcomes.push(createOutcomeCollector());

    interface Computed {
      matrix: Float32Array;
      decisions?: Decision[];
      challenger?: Float32Array;
    }
    // Scores a batch on the features the feature thread computed for it.
    const compute = async (batch: ScoringEvent[], fb: FeatureBatch): Promise<Computed> => {
      if (!engine) return { matrix: fb.matrix };
      const readAt = opts.clock.monoMicros();
      const res = await engine.decideComputed(
        batch,
        batch.map(() => readAt),
        fb,
      );
      const ch = opts.challenger
        ? (await opts.challenger.model.score(res.matrix, batch.length)).scores
        : undefined;
      return { matrix: res.matrix, decisions: res.decisions, ...(ch ? { challenger: ch } : {}) };
    };

    const outcomeRow: OutcomeRow = {
      score: 0,
      flagged: false,
      label: 0,
      amountMinor: 0,
      currency: '',
      eventType: '',
      eventTime: 0,
      scenario: null,
    };
    const write = async (batch: ScoringEvent[], c: Computed) => {
      const { matrix } = c;
      if (c.decisions) {
        const ch = c.challenger;
        await decisionsOut!.appendAll(c.decisions);
        for (let i = 0; i < batch.length; i++) {
          const d = c.decisions[i]!;
          const e = batch[i]!;
          // One row object, refilled per event (push copies it into columns).
          const row = outcomeRow;
          row.label = finalLabel.get(d.event_id)?.label === 'FRAUD' ? 1 : 0;
          row.amountMinor = e.event.amount_minor;
          row.currency = e.event.currency;
          row.eventType = e.type;
          row.eventTime = e.event.event_time;
          row.scenario = input.scenarios?.get(d.event_id) ?? null;
          row.score = d.score;
          row.flagged = d.outcome === 'FLAG';
          outcomes[0]!.push(row);
          if (ch) {
            const s = Math.min(1, Math.max(0, ch[i]!));
            row.score = s;
            row.flagged = opts.challenger!.policy.decide(e.type, s).outcome === 'FLAG';
            outcomes[1]!.push(row);
          }
        }
      }
      if (featOut) {
        const labelledAt: (number | null)[] = new Array(batch.length);
        const labels = new Int8Array(batch.length);
        for (let i = 0; i < batch.length; i++) {
          const l = finalLabel.get(batch[i]!.event.event_id);
          labelledAt[i] = l ? l.labelled_at : null;
          labels[i] = l?.label === 'FRAUD' ? 1 : 0;
        }
        await featOut.append({
          eventIds: batch.map((e) => e.event.event_id),
          eventTimes: batch.map((e) => e.event.event_time),
          eventTypes: batch.map((e) => e.type),
          labels,
          labelledAt,
          matrix,
        });
      }
      events += batch.length;
      opts.onProgress?.(events, input.total);
    };

    // The feature thread computes the batches in order (labels applied between them) and may run a
    // few batches ahead; this thread reads the same events again, scores and writes each batch, so
    // every feature and score is that of a one-thread, one-batch-at-a-time run.
    thread = startFeatureThread({
      source: Array.isArray(input.events) ? { events: input.events } : { dir: opts.inDir! },
      labels: input.labels,
      redis: redisSpecOf(opts.redis),
      prefix: `${opts.namespace}:`,
      batchSize: opts.batchSize,
      ...(opts.maxCachedEntities !== undefined ? { maxCachedEntities: opts.maxCachedEntities } : {}),
      ahead: 4,
    });
    const source = input.events;
    it = Array.isArray(source) ? [source][Symbol.iterator]() : source[Symbol.asyncIterator]();
    /** This thread's read position: a chunk of the input and the next event in it. */
    let chunk: ScoringEvent[] = [];
    let at = 0;
    /** Whether there is an event at the read position, reading the next chunk when needed. */
    const more = async (): Promise<boolean> => {
      while (at === chunk.length) {
        const r = await it!.next();
        if (r.done) return false;
        chunk = r.value;
        at = 0;
      }
      return true;
    };
    for await (const fb of thread.batches()) {
      stopIfAborted();
      const batch: ScoringEvent[] = new Array(fb.rows);
      for (let i = 0; i < fb.rows; i++) {
        if (at === chunk.length && !(await more()))
          throw new Error(`replay's feature thread computed more events than the input has (${events + i})`);
        batch[i] = chunk[at++]!;
      }
      await write(batch, await compute(batch, fb));
      thread.release();
    }
    if (await more())
      throw new Error(`replay's feature thread stopped after ${events} events, before the input's end`);
    labelsApplied = thread.labelsApplied;
    keysWritten = thread.keysWritten;
    await decisionsOut?.close();
    await featOut?.close();
    stopIfAborted();
  } catch (e) {
    await thread?.stop();
    await Promise.resolve(it?.return?.()).catch(() => undefined);
    await decisionsOut?.close().catch(() => undefined);
    await featOut?.close().catch(() => undefined);
    decStage?.abort();
    featStage?.abort();
    await clearNamespace(opts.redis, opts.namespace);
    throw e;
  }
  await thread.stop();
  decStage?.commit();
  featStage?.commit();
  const seconds = (performance.now() - started) / 1000;
  const result: ReplayResult = { events, seconds, eventsPerSecond: events / seconds };
  if (champ) {
    const models = [champ, ...(opts.challenger ? [opts.challenger] : [])];
    const reports: ModelReport[] = models.map((m, k) =>
      modelReport(outcomes[k]!.done(), {
        model_version: m.model.version,
        policy_version: m.policy.version,
        threshold: m.threshold,
      }),
    );
    const metrics = {
      source: input.source,
      events,
      labels_applied: labelsApplied,
      feature_spec: features.specHash,
      events_per_second: result.eventsPerSecond,
      champion: reports[0],
      ...(reports[1] ? { challenger: reports[1] } : {}),
    };
    writeFileSync(join(opts.outDir, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
    writeFileSync(
      join(opts.outDir, 'report.html'),
      renderReportHtml(reports, {
        source: input.source,
        events,
        feature_spec: features.specHash,
        generated_from: 'fraudstream replay',
      }),
    );
    result.metrics = metrics;
  }
  // The namespace was cleared at the start and only the feature thread wrote to it since. When its
  // cache held every entity it wrote nothing (its lease is released): no walk of the keyspace, which
  // costs seconds on a Redis holding millions of other keys (docs/replay.md).
  if (keysWritten !== 0) await clearNamespace(opts.redis, opts.namespace);
  await opts.redis.set(cleanMarker(opts.namespace), String(Date.now()));
  return result;
}
