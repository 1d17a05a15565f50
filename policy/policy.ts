import { fail } from '../lib/errors.js';
import type { EventType, Outcome, ScoringEvent } from '../schemas/index.js';

/** Reason codes a decision can carry (docs/policy.md lists them). */
export const Reasons = {
  /** The model's score reached the threshold for the event type. */
  SCORE_ABOVE_THRESHOLD: 'SCORE_ABOVE_THRESHOLD',
  /** The model's score stayed below the threshold. */
  SCORE_BELOW_THRESHOLD: 'SCORE_BELOW_THRESHOLD',
  /** The amount is above the configured limit for the event type. */
  AMOUNT_OVER_LIMIT: 'AMOUNT_OVER_LIMIT',
  /** The feature store did not answer within the latency budget (or failed). */
  DEGRADED_FEATURES: 'DEGRADED_FEATURES',
  /** The model did not answer within the latency budget (or failed). */
  DEGRADED_MODEL: 'DEGRADED_MODEL',
} as const;

/** The entities a block or allow list can name. */
export const LIST_ENTITIES = ['instrument', 'device', 'ip', 'destination'] as const;
export type ListEntity = (typeof LIST_ENTITIES)[number];

/** `BLOCK_LIST_DEVICE`, `ALLOW_LIST_IP`, ... */
export const listReason = (kind: 'BLOCK' | 'ALLOW', entity: ListEntity) =>
  `${kind}_LIST_${entity.toUpperCase()}`;
/** `FEATURE_HIGH:<feature name>`: a feature far above the population norm drove the score. */
export const featureReason = (name: string) => `FEATURE_HIGH:${name}`;

export type DegradedMode = 'fail-open' | 'fail-closed';
export type Degradation = 'FEATURES' | 'MODEL';

export interface PolicyOptions {
  version: string;
  /** Flag when score >= threshold. One per event type; `default` covers a type not listed. */
  thresholds: { default: number } & Partial<Record<EventType, number>>;
  /** Any hit flags the event, whatever the score. */
  block?: Partial<Record<ListEntity, readonly string[]>>;
  /** Any hit approves the event unless a block list hits too. */
  allow?: Partial<Record<ListEntity, readonly string[]>>;
  /** Flag when amount_minor is above the limit of the event type (minor units). */
  amountLimits?: Partial<Record<EventType, number>>;
  /** What a degraded decision (features or model late or failed) is. Default fail-open, 200 ms. */
  degraded?: { mode: DegradedMode; budgetMs: number };
  /**
   * The score threshold is the one in the manifest of the model that scored the event (passed to
   * `evaluate`), so it follows a hot swap; `thresholds` is used when none is passed. Set when the
   * threshold was not given explicitly (no --threshold, no policy file).
   */
  thresholdFromModel?: boolean;
}

export interface PolicyVerdict {
  outcome: Outcome;
  reasons: string[];
}

export interface Policy {
  readonly version: string;
  readonly degraded: { mode: DegradedMode; budgetMs: number };
  /** Threshold-only verdict for a score. */
  decide(eventType: EventType, score: number): PolicyVerdict;
  /**
   * The full policy: hard rules (block list > allow list > amount limit) and the score threshold, or,
   * when `degraded` is set (no trustworthy score), the configured fail-open/fail-closed outcome.
   * Reasons list every rule that hit, in that order, then the score's reason.
   */
  evaluate(ev: ScoringEvent, score: number, degraded?: Degradation, modelThreshold?: number): PolicyVerdict;
}

function entityValues(ev: ScoringEvent): Record<ListEntity, string | null> {
  const e = ev.event;
  return {
    instrument: ev.type === 'PAYMENT' ? ev.event.instrument_id : null,
    device: e.device_id,
    ip: e.ip,
    destination: ev.type === 'WITHDRAWAL' ? ev.event.destination_id : null,
  };
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
  const toSets = (l: PolicyOptions['block']) =>
    LIST_ENTITIES.map((k) => [k, new Set(l?.[k] ?? [])] as const).filter(([, s]) => s.size > 0);
  const block = toSets(opts.block);
  const allow = toSets(opts.allow);
  const limits = opts.amountLimits ?? {};
  const hasRules = block.length > 0 || allow.length > 0 || Object.keys(limits).length > 0;
  const degraded = Object.freeze({ ...(opts.degraded ?? { mode: 'fail-open', budgetMs: 200 }) });
  const fromModel = opts.thresholdFromModel ?? false;
  const decide = (eventType: EventType, score: number, modelThreshold?: number) =>
    score >=
    (fromModel && modelThreshold !== undefined
      ? modelThreshold
      : (thresholds[eventType] ?? thresholds.default))
      ? flag
      : approve;
  return {
    version: opts.version,
    degraded,
    decide: (eventType, score) => decide(eventType, score),
    evaluate(ev, score, degradedBy, modelThreshold) {
      const base = degradedBy
        ? {
            outcome: (degraded.mode === 'fail-open' ? 'APPROVE' : 'FLAG') as Outcome,
            reasons: [degradedBy === 'FEATURES' ? Reasons.DEGRADED_FEATURES : Reasons.DEGRADED_MODEL],
          }
        : decide(ev.type, score, modelThreshold);
      if (!hasRules) return base;
      const values = entityValues(ev);
      const blocked: string[] = [];
      const allowed: string[] = [];
      for (const [k, s] of block)
        if (values[k] !== null && s.has(values[k]!)) blocked.push(listReason('BLOCK', k));
      for (const [k, s] of allow)
        if (values[k] !== null && s.has(values[k]!)) allowed.push(listReason('ALLOW', k));
      const limit = limits[ev.type];
      const over = limit !== undefined && ev.event.amount_minor > limit ? [Reasons.AMOUNT_OVER_LIMIT] : [];
      if (!blocked.length && !allowed.length && !over.length) return base;
      const outcome: Outcome = blocked.length ? 'FLAG' : allowed.length ? 'APPROVE' : 'FLAG';
      return { outcome, reasons: [...blocked, ...allowed, ...over, ...base.reasons] };
    },
  };
}
