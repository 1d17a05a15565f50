import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFeatureEngine, FEATURE_NAMES, NO_PREVIOUS_EVENT_S } from '../../features/index.js';
import { clearNamespace } from '../../replay/index.js';
import type { ScoringEvent } from '../../schemas/index.js';
import { samplePayment, sampleWithdrawal, T0 } from '../fixtures.js';
import { redis, uniq } from './stack.js';

const MIN = 60_000;
const col = (name: string) => FEATURE_NAMES.indexOf(name);
const pay = (id: string, t: number, amount: number, account = 'acct-1'): ScoringEvent => ({
  type: 'PAYMENT',
  event: samplePayment({ event_id: id, event_time: t, amount_minor: amount, account_id: account }),
});

describe('feature engine on a real Redis', () => {
  let r: Redis;
  const ns = uniq('features');
  beforeAll(async () => {
    r = await redis();
  });
  afterAll(async () => {
    await clearNamespace(r, ns);
    r.disconnect();
  });

  it('counts and sums the account history strictly before each event, on event time', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:a:` });
    const events = [
      pay('e1', T0, 1000),
      pay('e2', T0 + 10 * MIN, 2000),
      pay('e3', T0 + 10 * MIN, 4000), // same time as e2: e2 is not "before" e3
      {
        type: 'WITHDRAWAL',
        event: sampleWithdrawal({ event_id: 'e4', event_time: T0 + 65 * MIN, amount_minor: 8000 }),
      } as ScoringEvent,
      pay('e5', T0 + 25 * 60 * MIN, 500),
    ];
    const b = await fe.computeBatch(events);
    const get = (row: number, name: string) => b.matrix[row * b.cols + col(name)]!;
    expect(b.rows).toBe(5);
    expect(get(0, 'account_count_24h')).toBe(0);
    expect(get(0, 'account_since_last_s')).toBe(NO_PREVIOUS_EVENT_S);
    expect(get(1, 'account_count_1h')).toBe(1);
    expect(get(1, 'account_since_last_s')).toBe(600);
    expect(get(2, 'account_count_1h')).toBe(1);
    expect(get(2, 'account_sum_1h_log')).toBeCloseTo(Math.log1p(1000), 5);
    // e4 at +65 min: e1 (at 0) left the 1 h window [+5, +65), e2 and e3 (at +10) are inside.
    expect(get(3, 'account_count_1h')).toBe(2);
    expect(get(3, 'account_sum_1h_log')).toBeCloseTo(Math.log1p(6000), 5);
    expect(get(3, 'account_count_24h')).toBe(3);
    expect(get(3, 'event_is_withdrawal')).toBe(1);
    // e5 at +25 h: e1 (at 0) and e2, e3 (at +10 min) are past 24 h; e4 (at +65 min) is inside.
    expect(get(4, 'account_count_24h')).toBe(1);
    expect(get(4, 'account_sum_24h_log')).toBeCloseTo(Math.log1p(8000), 5);
    expect(get(4, 'account_since_last_s')).toBe(25 * 3600 - 65 * 60);
    for (const v of b.matrix) expect(Number.isFinite(v)).toBe(true);
  });

  it('puts a late event in its place: it sees only earlier events, and later events see it', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:b:` });
    await fe.computeBatch([pay('x1', T0, 100), pay('x3', T0 + 30 * MIN, 300)]);
    const late = await fe.computeBatch([pay('x2', T0 + 10 * MIN, 200)]);
    expect(late.matrix[col('account_count_1h')]).toBe(1);
    expect(late.matrix[col('account_since_last_s')]).toBe(600);
    const after = await fe.computeBatch([pay('x4', T0 + 40 * MIN, 400)]);
    expect(after.matrix[col('account_count_1h')]).toBe(3);
  });

  it('is idempotent: a repeated event_id changes no aggregate and returns its first vector', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:c:` });
    const first = await fe.computeBatch([pay('d1', T0, 100), pay('d2', T0 + MIN, 200)]);
    const again = await fe.computeBatch([pay('d2', T0 + MIN, 200)]);
    expect(again.duplicate[0]).toBe(1);
    expect(Array.from(again.matrix)).toEqual(Array.from(first.matrix.subarray(first.cols, 2 * first.cols)));
    const next = await fe.computeBatch([pay('d3', T0 + 2 * MIN, 300)]);
    expect(next.matrix[col('account_count_1h')]).toBe(2);
  });

  it('keeps accounts apart and keys them with a hash tag per account', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:d:` });
    await fe.computeBatch([pay('k1', T0, 100, 'acct-A'), pay('k2', T0 + MIN, 100, 'acct-B')]);
    const b = await fe.computeBatch([pay('k3', T0 + 2 * MIN, 100, 'acct-A')]);
    expect(b.matrix[col('account_count_1h')]).toBe(1);
    const keys = await r.keys(`${ns}:d:*`);
    expect(keys.some((k) => k.startsWith(`${ns}:d:{a:acct-A}:`))).toBe(true);
    for (const k of keys) expect(k).toMatch(/^[^{]*\{a:acct-[AB]\}:/);
  });
});
