import { createHash } from 'node:crypto';

/** One feature: a stable name, the entity it describes, its window and its aggregate. */
export interface FeatureDef {
  name: string;
  entity: 'event' | 'account';
  window: '1h' | '24h' | 'none';
  aggregate: string;
  meaning: string;
}

/**
 * The feature spec, in vector order. The model manifest lists these names in this order and records
 * the spec hash; the model runner refuses a model built for another spec.
 */
export const FEATURES: readonly FeatureDef[] = Object.freeze([
  {
    name: 'event_is_withdrawal',
    entity: 'event',
    window: 'none',
    aggregate: 'flag',
    meaning: '1 for a withdrawal, 0 for a payment',
  },
  {
    name: 'event_amount_log',
    entity: 'event',
    window: 'none',
    aggregate: 'value',
    meaning: 'ln(1 + amount_minor)',
  },
  {
    name: 'account_count_1h',
    entity: 'account',
    window: '1h',
    aggregate: 'count',
    meaning: "account's events in [t-1h, t)",
  },
  {
    name: 'account_sum_1h_log',
    entity: 'account',
    window: '1h',
    aggregate: 'sum',
    meaning: 'ln(1 + sum of amount_minor in [t-1h, t))',
  },
  {
    name: 'account_count_24h',
    entity: 'account',
    window: '24h',
    aggregate: 'count',
    meaning: "account's events in [t-24h, t)",
  },
  {
    name: 'account_sum_24h_log',
    entity: 'account',
    window: '24h',
    aggregate: 'sum',
    meaning: 'ln(1 + sum of amount_minor in [t-24h, t))',
  },
  {
    name: 'account_since_last_s',
    entity: 'account',
    window: 'none',
    aggregate: 'time_since_last',
    meaning: "seconds since the account's latest event before t; 30 days (2592000) when none is known",
  },
]);

export const FEATURE_NAMES: readonly string[] = Object.freeze(FEATURES.map((f) => f.name));

/** Bumped whenever the computation behind an unchanged name changes. */
export const ENGINE_SEMANTICS_VERSION = 1;

export function specHash(features: readonly FeatureDef[] = FEATURES): string {
  const canonical = JSON.stringify({
    v: ENGINE_SEMANTICS_VERSION,
    f: features.map((f) => [f.name, f.entity, f.window, f.aggregate]),
  });
  return 'sha256:' + createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}
