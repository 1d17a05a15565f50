import type { Clock } from '../lib/clock.js';
import type { FeatureEngine } from '../features/index.js';
import type { ModelRunner } from '../models/index.js';
import { featureReasons, normsOf, type Degradation, type Policy } from '../policy/index.js';
import type { Decision, ScoringEvent } from '../schemas/index.js';

/**
 * Features -> model -> policy for a batch of events. The one path that the Kafka scorer, inline HTTP
 * scoring and replay all call, so none of them can drift from the others.
 */
export interface DecisionEngine {
  /**
   * Decide a batch. `readAtMicros[i]` is when event i was read (Clock.monoMicros), the start of its
   * latency. One feature round trip and one model run for the whole batch.
   */
  decide(events: readonly ScoringEvent[], readAtMicros: readonly bigint[]): Promise<DecidedBatch>;
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
  /**
   * Latency budget (ms) of the feature store and of the model, each, per batch: past it the batch is
   * decided in degraded mode by the policy. Unset: no budget (replay waits for every answer).
   */
  budgetMs?: number;
  /** Called once per batch decided in degraded mode (a metric). */
  onDegraded?: (by: Degradation, events: number) => void;
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
  const { features, model, policy, clock } = opts;
  const includeFeatures = opts.includeFeatures ?? true;
  const onDegraded = opts.onDegraded;
  return {
    async decide(events, readAtMicros) {
      // Degraded mode (docs/policy.md): the feature store or the model missing the policy's latency
      // budget (or failing) yields the configured fail-open/fail-closed verdict, never a hang.
      const budget = opts.budgetMs;
      let degraded: Degradation | undefined;
      const fb = await withinBudget(features.computeBatch(events), budget).catch(() => {
        degraded = 'FEATURES';
        return emptyBatch(events.length, features.names.length);
      });
      const scores = degraded
        ? new Float32Array(events.length)
        : await withinBudget(model.score(fb.matrix, fb.rows), budget).catch(() => {
            degraded = 'MODEL';
            return new Float32Array(events.length);
          });
      if (degraded) onDegraded?.(degraded, events.length);
      const norms = degraded ? undefined : normsOf(model.manifest, fb.cols);
      const decidedAt = clock.now();
      const ready = clock.monoMicros();
      const cols = fb.cols;
      const decisions: Decision[] = new Array(events.length);
      for (let i = 0; i < events.length; i++) {
        const { type, event } = events[i]!;
        // Round through float32 -> double the way Avro and the model see it; clamp guards float noise.
        const score = Math.min(1, Math.max(0, scores[i]!));
        const verdict = policy.evaluate(events[i]!, score, degraded);
        const reasons = norms
          ? verdict.reasons.concat(
              featureReasons(fb.matrix.subarray(i * cols, (i + 1) * cols), features.names, norms),
            )
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
          model_version: model.version,
          policy_version: policy.version,
          reasons,
          decided_at: decidedAt,
          latency_us: Number(ready - readAtMicros[i]!),
          feature_spec: features.specHash,
          features:
            includeFeatures && !degraded ? Array.from(fb.matrix.subarray(i * cols, (i + 1) * cols)) : null,
        };
      }
      return { decisions, duplicate: fb.duplicate, late: fb.late, matrix: fb.matrix, cols };
    },
  };
}
