import { fail } from '../lib/errors.js';
import type { EventType, Outcome } from '../schemas/index.js';

/** Reason codes a decision can carry (docs/errors.md lists them with the error codes). */
export const Reasons = {
  /** The model's score reached the threshold for the event type. */
  SCORE_ABOVE_THRESHOLD: 'SCORE_ABOVE_THRESHOLD',
  /** The model's score stayed below the threshold. */
  SCORE_BELOW_THRESHOLD: 'SCORE_BELOW_THRESHOLD',
} as const;

export interface PolicyOptions {
  version: string;
  /** Flag when score >= threshold. One per event type; `default` covers a type not listed. */
  thresholds: { default: number } & Partial<Record<EventType, number>>;
}

export interface PolicyVerdict {
  outcome: Outcome;
  reasons: string[];
}

export interface Policy {
  readonly version: string;
  decide(eventType: EventType, score: number): PolicyVerdict;
}

export function createPolicy(opts: PolicyOptions): Policy {
  for (const [k, v] of Object.entries(opts.thresholds)) {
    if (typeof v !== 'number' || !(v >= 0 && v <= 1))
      fail('BAD_CONFIG', `policy threshold ${k}=${v} is not in [0, 1]`);
  }
  const flag: PolicyVerdict = Object.freeze({
    outcome: 'FLAG',
    reasons: [Reasons.SCORE_ABOVE_THRESHOLD],
  }) as PolicyVerdict;
  const approve: PolicyVerdict = Object.freeze({
    outcome: 'APPROVE',
    reasons: [Reasons.SCORE_BELOW_THRESHOLD],
  }) as PolicyVerdict;
  const thresholds = opts.thresholds;
  return {
    version: opts.version,
    decide(eventType, score) {
      const t = thresholds[eventType] ?? thresholds.default;
      return score >= t ? flag : approve;
    },
  };
}
