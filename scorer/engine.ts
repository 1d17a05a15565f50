import type { Clock } from '../lib/clock.js';
import type { FeatureEngine } from '../features/index.js';
import type { ModelRunner, ModelScores } from '../models/index.js';
import type { Policy } from '../policy/index.js';
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
  /** Shadow model: scored on every event of the same batch, recorded, never acted on. */
  challenger?: ModelRunner;
  /** Called once per batch with the challenger's scores (metrics); a challenger error goes to onChallengerError. */
  onChallenger?: (scores: ModelScores, decisions: readonly Decision[]) => void;
  onChallengerError?: (err: unknown) => void;
}

export function createDecisionEngine(opts: DecisionEngineOptions): DecisionEngine {
  const { features, model, policy, clock, challenger } = opts;
  const includeFeatures = opts.includeFeatures ?? true;
  return {
    async decide(events, readAtMicros) {
      const fb = await features.computeBatch(events);
      // One model scores the whole batch (a swap never splits it); its version goes into the decisions.
      const [scored, shadow] = await Promise.all([
        model.score(fb.matrix, fb.rows),
        challenger?.score(fb.matrix, fb.rows).catch((e: unknown) => {
          opts.onChallengerError?.(e);
          return undefined;
        }),
      ]);
      const scores = scored.scores;
      const decidedAt = clock.now();
      const ready = clock.monoMicros();
      const cols = fb.cols;
      const decisions: Decision[] = new Array(events.length);
      for (let i = 0; i < events.length; i++) {
        const { type, event } = events[i]!;
        // Round through float32 -> double the way Avro and the model see it; clamp guards float noise.
        const score = Math.min(1, Math.max(0, scores[i]!));
        const verdict = policy.decide(type, score);
        decisions[i] = {
          event_id: event.event_id,
          event_type: type,
          account_id: event.account_id,
          event_time: event.event_time,
          amount_minor: event.amount_minor,
          currency: event.currency,
          outcome: verdict.outcome,
          score,
          model_version: scored.version,
          policy_version: policy.version,
          reasons: verdict.reasons.slice(),
          decided_at: decidedAt,
          latency_us: Number(ready - readAtMicros[i]!),
          feature_spec: features.specHash,
          features: includeFeatures ? Array.from(fb.matrix.subarray(i * cols, (i + 1) * cols)) : null,
          challenger_score: shadow ? Math.min(1, Math.max(0, shadow.scores[i]!)) : null,
          challenger_version: shadow ? shadow.version : null,
        };
      }
      if (shadow) opts.onChallenger?.(shadow, decisions);
      return { decisions, duplicate: fb.duplicate, late: fb.late, matrix: fb.matrix, cols };
    },
  };
}
