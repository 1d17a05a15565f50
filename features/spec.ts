import { createHash } from 'node:crypto';

/**
 * The feature spec, declared once: entities × windows × aggregates, account extras, label-informed
 * risk and event fields. The engine, the reference implementation in the tests, the docs table
 * (docs/features.md) and the model manifest all read it from here.
 */

export type EntityName = 'account' | 'instrument' | 'device' | 'ip' | 'merchant' | 'destination';

export interface EntityDef {
  name: EntityName;
  /** Short tag inside the Redis hash tag: `<prefix>{<tag>:<id>}`. */
  tag: string;
  /** 'a': account extras; 'l': label-informed risk; 'p': windows only. */
  role: 'a' | 'l' | 'p';
  meaning: string;
}

export const ENTITIES: readonly EntityDef[] = [
  { name: 'account', tag: 'a', role: 'a', meaning: 'the account (payments and withdrawals)' },
  { name: 'instrument', tag: 'i', role: 'p', meaning: 'the card or wallet token (payments)' },
  { name: 'device', tag: 'd', role: 'l', meaning: 'the device (when the event has one)' },
  { name: 'ip', tag: 'ip', role: 'p', meaning: 'the IP address (when the event has one)' },
  { name: 'merchant', tag: 'm', role: 'l', meaning: 'the merchant (payments)' },
  { name: 'destination', tag: 'ds', role: 'l', meaning: 'the ATM or beneficiary (withdrawals)' },
];

export interface WindowDef {
  name: '1m' | '10m' | '1h' | '24h' | '7d' | '30d';
  ms: number;
  bucketMs: number;
  buckets: number;
}

/** Windows and their buckets (features/core.ts reads them from here). */
export const WINDOWS: readonly WindowDef[] = [
  { name: '1m', ms: 60_000, bucketMs: 10_000, buckets: 6 },
  { name: '10m', ms: 600_000, bucketMs: 60_000, buckets: 10 },
  { name: '1h', ms: 3_600_000, bucketMs: 300_000, buckets: 12 },
  { name: '24h', ms: 86_400_000, bucketMs: 3_600_000, buckets: 24 },
  { name: '7d', ms: 604_800_000, bucketMs: 21_600_000, buckets: 28 },
  { name: '30d', ms: 2_592_000_000, bucketMs: 86_400_000, buckets: 30 },
];

/** Account dimensions with distinct counts, in the order features/core.ts keeps them. */
export const DIMENSIONS = ['instrument', 'merchant', 'device', 'destination', 'country'] as const;
/** Windows of the distinct counts (indices into WINDOWS): 24 h and 30 d. */
export const DISTINCT_WINDOWS = [3, 5] as const;
export const LABEL_WINDOW_NAMES = ['1d', '7d', '30d'] as const;
/** Indices into WINDOWS of the label windows. */
export const LABEL_WINDOW_INDEX = [3, 4, 5] as const;

/** `*_since_last_s` when the entity has no earlier event; also the cap. */
export const NO_PREVIOUS_EVENT_S = 30 * 86_400;

export interface FeatureDef {
  name: string;
  entity: EntityName | 'event';
  window: WindowDef['name'] | '1d' | 'none';
  aggregate: string;
  meaning: string;
}

const CHANNELS = ['POS', 'ECOM', 'IN_APP', 'MOTO'] as const;

/** The per-entity window aggregates, in vector order (must match the order assembleRow writes). */
const WINDOW_AGGREGATES: readonly [string, (entity: string, window: string) => string][] = [
  ['count', (e, w) => `${e}'s events in the ${w} window`],
  ['sum', () => 'sum of amount_minor of those events'],
  ['mean', () => 'mean amount_minor of those events (0 when none)'],
  ['max', () => 'largest amount_minor of those events (0 when none)'],
];
const METHODS = ['ATM', 'BANK_TRANSFER', 'WALLET', 'CRYPTO'] as const;

function build(): FeatureDef[] {
  const f: FeatureDef[] = [];
  const add = (
    name: string,
    entity: FeatureDef['entity'],
    window: FeatureDef['window'],
    aggregate: string,
    meaning: string,
  ) => f.push({ name, entity, window, aggregate, meaning });

  add('event_is_withdrawal', 'event', 'none', 'flag', '1 for a withdrawal, 0 for a payment');
  add('event_amount_log', 'event', 'none', 'value', 'ln(1 + amount_minor)');
  add('event_is_located', 'event', 'none', 'flag', '1 when the event has lat and lon');
  add('event_has_device', 'event', 'none', 'flag', '1 when the event has a device_id');
  for (const c of CHANNELS)
    add(`event_channel_${c.toLowerCase()}`, 'event', 'none', 'flag', `1 for a payment on channel ${c}`);
  for (const m of METHODS)
    add(`event_method_${m.toLowerCase()}`, 'event', 'none', 'flag', `1 for a withdrawal by ${m}`);

  for (const e of ENTITIES) {
    add(
      `${e.name}_since_last_s`,
      e.name,
      'none',
      'time_since_last',
      `seconds since the ${e.name}'s latest earlier event (0 if that is not earlier in event time; ${NO_PREVIOUS_EVENT_S} when none, also the cap)`,
    );
    for (const w of WINDOWS) {
      for (const [agg, meaning] of WINDOW_AGGREGATES) {
        add(`${e.name}_${agg}_${w.name}`, e.name, w.name, agg, meaning(e.name, w.name));
      }
    }
  }
  for (const wi of DISTINCT_WINDOWS) {
    const w = WINDOWS[wi]!;
    for (const d of DIMENSIONS) {
      add(
        `account_distinct_${d}s_${w.name}`,
        'account',
        w.name,
        'distinct',
        `distinct ${d}s the account used whose latest use is in the ${w.name} window`,
      );
    }
  }
  add(
    'account_new_device',
    'account',
    'none',
    'first_seen',
    "1 when the event's device was never seen on the account (within 31 d + lateness)",
  );
  add(
    'account_new_destination',
    'account',
    'none',
    'first_seen',
    "1 when the event's destination is new for the account",
  );
  add(
    'account_new_country',
    'account',
    'none',
    'first_seen',
    "1 when the event's country is new for the account",
  );
  add(
    'account_amount_ratio_30d',
    'account',
    '30d',
    'ratio',
    "amount_minor ÷ the account's 30 d mean (1 when no history)",
  );
  add(
    'account_amount_z_30d',
    'account',
    '30d',
    'zscore',
    '(amount_minor − 30 d mean) ÷ 30 d standard deviation (0 with fewer than 2 events or no spread; clamped to ±50)',
  );
  add(
    'account_geo_velocity_kmh',
    'account',
    'none',
    'geo_velocity',
    'km/h between the latest earlier located event and this one (0 when either is not located; time floor 1 min; capped at 20000)',
  );
  for (const e of ENTITIES.filter((x) => x.role === 'l')) {
    LABEL_WINDOW_NAMES.forEach((wn, k) => {
      add(
        `${e.name}_fraud_count_${wn}`,
        e.name,
        wn,
        'label_count',
        `confirmed-fraud labels on the ${e.name}'s events, by labelled_at, in the ${WINDOWS[LABEL_WINDOW_INDEX[k]!]!.name} window`,
      );
    });
    LABEL_WINDOW_NAMES.forEach((wn, k) => {
      add(
        `${e.name}_fraud_rate_${wn}`,
        e.name,
        wn,
        'label_rate',
        `${e.name}_fraud_count_${wn} ÷ max(1, ${e.name}_count_${WINDOWS[LABEL_WINDOW_INDEX[k]!]!.name})`,
      );
    });
  }
  return f;
}

export const FEATURES: readonly FeatureDef[] = Object.freeze(build());
export const FEATURE_NAMES: readonly string[] = Object.freeze(FEATURES.map((f) => f.name));

/** Bumped whenever the computation behind an unchanged name changes. */
export const ENGINE_SEMANTICS_VERSION = 2;

export function specHash(features: readonly FeatureDef[] = FEATURES): string {
  const canonical = JSON.stringify({
    v: ENGINE_SEMANTICS_VERSION,
    w: WINDOWS.map((w) => [w.name, w.bucketMs, w.buckets]),
    f: features.map((f) => [f.name, f.entity, f.window, f.aggregate]),
  });
  return 'sha256:' + createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** The docs table of the catalogue (docs/features.md is checked against it by a unit test). */
export function featureTableMarkdown(): string {
  const rows = FEATURES.map(
    (f, i) =>
      `| ${i} | \`${f.name}\` | ${f.entity} | ${f.window === 'none' ? '–' : f.window} | ${f.meaning} |`,
  );
  return ['| # | name | entity | window | meaning |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
