import type { Clock } from '../lib/clock.js';
import type { FeatureBatch, FeatureEngine, WriteOptions } from '../features/index.js';
import type { ModelRunner, ModelScores } from '../models/index.js';
import { featureReasons, normsOf, type Degradation, type Policy } from '../policy/index.js';
import type { Decision, ScoringEvent } from '../schemas/index.js';

/**
 * Features -> model -> policy for a batch of events. The one path that the Kafka scorer, inline HTTP
 * scoring and replay all call, so none of them can drift from the others.
 */
export interface DecisionEngine {
  /**
   * Decide a batch. `readAtMicros[i]` is when event i was read (Clock.monoMicros), the start of its
   * latency. One feature round trip and one model run for the whole batch. `write` goes to the feature
   * engine: `{ flush: true }` makes the batch's feature changes durable before the decisions are
   * (inline scoring, when the engine writes at checkpoints).
   */
  decide(
    events: readonly ScoringEvent[],
    readAtMicros: readonly bigint[],
    write?: WriteOptions,
  ): Promise<DecidedBatch>;
  /**
   * Decide a batch whose features were computed elsewhere by the same feature engine (replay computes
   * them on a second thread): the model and policy part of decide(), on `features`.
   */
  decideComputed(
    events: readonly ScoringEvent[],
    readAtMicros: readonly bigint[],
    features: FeatureBatch,
  ): Promise<DecidedBatch>;
}

export interface DecidedBatch {
  decisions: Decision[];
  /** 1 where the event id had been seen before (the decision repeats the first one). */
  duplicate: Uint8Array;
  /** 1 where the event was later than the allowed lateness: scored, not added to the windows. */
  late: Uint8Array;
  matrix: Float32Array;
  cols: number;
}

export interface DecisionEngineOptions {
  features: FeatureEngine;
  model: ModelRunner;
  policy: Policy;
  clock: Clock;
  /** Put the feature vector into each decision (provenance). Default true. */
  includeFeatures?: boolean;
  /** Shadow model: scored on every event of the same batch, recorded, never acted on. */
  challenger?: ModelRunner;
  /** Called once per batch with the challenger's scores (metrics); a challenger error goes to onChallengerError. */
  onChallenger?: (scores: ModelScores, decisions: readonly Decision[]) => void;
  onChallengerError?: (err: unknown) => void;
  /**
   * Latency budget (ms) of the feature store and of the model, each, per batch: past it the batch is
   * decided in degraded mode by the policy. Unset: no budget (replay waits for every answer).
   */
  budgetMs?: number;
  /** Called once per batch decided in degraded mode (a metric). */
  onDegraded?: (by: Degradation, events: number) => void;
}

/**
 * Row `r` of the feature matrix as a plain array of doubles (the Decision's `features`). A counted loop:
 * Array.from on a typed array goes through the iterator protocol, about 10x slower here and ~12 KB of
 * garbage per row (an iterator result and a boxed number per feature), a tenth of all the bytes an
 * inline request allocated.
 */
function rowOf(matrix: Float32Array, r: number, cols: number): number[] {
  const out = new Array<number>(cols);
  for (let j = 0, o = r * cols; j < cols; j++) out[j] = matrix[o + j]!;
  return out;
}

/** Rejects when `p` has not settled within `ms` (the work itself carries on and is ignored). */
function withinBudget<T>(p: Promise<T>, ms: number | undefined): Promise<T> {
  if (ms === undefined) return p;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`over the ${ms} ms budget`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function emptyBatch(rows: number, cols: number) {
  return {
    rows,
    cols,
    matrix: new Float32Array(rows * cols),
    duplicate: new Uint8Array(rows),
    late: new Uint8Array(rows),
  };
}

export function createDecisionEngine(opts: DecisionEngineOptions): DecisionEngine {
  const { features, model, policy, clock, challenger } = opts;
  const includeFeatures = opts.includeFeatures ?? true;
  const onDegraded = opts.onDegraded;
  const decideOn = async (
    events: readonly ScoringEvent[],
    readAtMicros: readonly bigint[],
    fb: FeatureBatch,
    degradedBy: Degradation | undefined,
  ): Promise<DecidedBatch> => {
    const budget = opts.budgetMs;
    let degraded = degradedBy;
    // One model scores the whole batch (a swap never splits it); its version goes into the decisions.
    // The shadow challenger runs beside it, under the same budget, and never holds a decision up.
    let scored: ModelScores | undefined;
    let shadow: ModelScores | undefined;
    if (!degraded) {
      [scored, shadow] = await Promise.all([
        withinBudget(model.score(fb.matrix, fb.rows), budget).catch(() => {
          degraded = 'MODEL';
          return undefined;
        }),
        challenger
          ? withinBudget(challenger.score(fb.matrix, fb.rows), budget).catch((e: unknown) => {
              opts.onChallengerError?.(e);
              return undefined;
            })
          : undefined,
      ]);
    }
    if (degraded) shadow = undefined;
    const scores = scored?.scores ?? new Float32Array(events.length);
    if (degraded) onDegraded?.(degraded, events.length);
    // The norms of the model that scored this batch: a hot swap brings its own.
    const norms = scored && !degraded ? normsOf(scored.manifest, fb.cols) : undefined;
    const decidedAt = clock.now();
    const ready = clock.monoMicros();
    const cols = fb.cols;
    const decisions: Decision[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const { type, event } = events[i]!;
      // Round through float32 -> double the way Avro and the model see it; clamp guards float noise.
      const score = Math.min(1, Math.max(0, scores[i]!));
      const verdict = policy.evaluate(events[i]!, score, degraded, scored?.manifest.threshold);
      const reasons = norms
        ? verdict.reasons.concat(featureReasons(fb.matrix, features.names, norms, 3, 2, i * cols))
        : verdict.reasons.slice();
      decisions[i] = {
        event_id: event.event_id,
        event_type: type,
        account_id: event.account_id,
        event_time: event.event_time,
        amount_minor: event.amount_minor,
        currency: event.currency,
        outcome: verdict.outcome,
        score,
        model_version: scored?.version ?? model.version,
        policy_version: policy.version,
        reasons,
        decided_at: decidedAt,
        latency_us: Number(ready - readAtMicros[i]!),
        feature_spec: features.specHash,
        features: includeFeatures && !degraded ? rowOf(fb.matrix, i, cols) : null,
        challenger_score: shadow ? Math.min(1, Math.max(0, shadow.scores[i]!)) : null,
        challenger_version: shadow ? shadow.version : null,
      };
    }
    if (shadow) opts.onChallenger?.(shadow, decisions);
    return { decisions, duplicate: fb.duplicate, late: fb.late, matrix: fb.matrix, cols };
  };
  return {
    async decide(events, readAtMicros, write) {
      // Degraded mode (docs/policy.md): the feature store or the model missing the policy's latency
      // budget (or failing) yields the configured fail-open/fail-closed verdict, never a hang.
      let degraded: Degradation | undefined;
      const fb = await withinBudget(features.computeBatch(events, write), opts.budgetMs).catch(() => {
        degraded = 'FEATURES';
        return emptyBatch(events.length, features.names.length);
      });
      return decideOn(events, readAtMicros, fb, degraded);
    },
    async decideComputed(events, readAtMicros, fb) {
      // A mismatch is a bug in the caller: a rejection, as every other failure of a decide.
      if (fb.rows !== events.length || fb.cols !== features.names.length)
        throw new Error(
          `decideComputed: ${fb.rows} x ${fb.cols} features for ${events.length} events of ${features.names.length} columns`,
        );
      return decideOn(events, readAtMicros, fb, undefined);
    },
  };
}
