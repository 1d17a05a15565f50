import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyEvent,
  applyFraudLabel,
  decodeState,
  encodeState,
  newRaw,
  newState,
  rememberId,
  windowOf,
  type EngineLimits,
} from '../../features/core.js';

const DAY = 86_400_000;
const lim: EngineLimits = { allowedLatenessMs: DAY, dedupeHorizonMs: 7 * DAY };
const T0 = Date.UTC(2026, 0, 1);

const eventArb = fc.record({
  dt: fc.integer({ min: -2 * DAY, max: 3 * DAY }),
  // Large amounts make sums of squares beyond 2^52: the record falls back to doubles for those.
  amount: fc.oneof(fc.integer({ min: 0, max: 5_000_000 }), fc.integer({ min: 0, max: 2_000_000_000 })),
  dims: fc.array(fc.option(fc.string({ unit: 'grapheme', maxLength: 12 }), { nil: null }), {
    minLength: 5,
    maxLength: 5,
  }),
  located: fc.boolean(),
  id: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  label: fc.boolean(),
});

describe('feature state storage form (v2 binary)', () => {
  it('round-trips any state: same bytes again, and the same features for the next event', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('a', 'l', 'p' as const),
        fc.array(eventArb, { maxLength: 60 }),
        eventArb,
        (role, evs, next) => {
          const S = newState(role);
          let t = T0;
          for (const e of evs) {
            t = Math.max(T0, t + e.dt);
            const input = {
              t,
              amount: e.amount,
              dims: e.dims,
              loc: e.located ? ([51.5, -0.12] as const) : null,
            };
            applyEvent(S, role, input, lim);
            if (role === 'a') rememberId(S, e.id, lim);
            if (role === 'l' && e.label) applyFraudLabel(S, t + DAY, lim.allowedLatenessMs);
          }
          const bytes = encodeState(S);
          const back = decodeState(bytes, role);
          expect(Buffer.compare(encodeState(back), bytes)).toBe(0);
          const input = { t: t + next.dt, amount: next.amount, dims: next.dims, loc: null };
          const a = newRaw();
          const b = newRaw();
          expect(applyEvent(back, role, input, lim, b)).toBe(applyEvent(S, role, input, lim, a));
          expect(b).toEqual(a);
          expect(Buffer.compare(encodeState(back), encodeState(S))).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('still reads the v1 JSON form, and refuses unknown or truncated records', () => {
    const v1 = JSON.stringify({
      v: 1,
      mx: T0,
      w: [0, 1, 2, 3, 4, 5].map(() => [1, 250, 0, 250, 0, 0, [0, 1, 250, 250, 0]]),
      ids: [['e1', T0]],
    });
    const S = decodeState(v1, 'a');
    expect(S.mx).toBe(T0);
    expect(windowOf(S, 5).s).toBe(250);
    expect(S.ids!.get('e1')).toBe(T0);
    expect(() => decodeState(Buffer.from([9, 0, 0]), 'a')).toThrow(/unknown feature state format/);
    const bytes = encodeState(S);
    expect(() => decodeState(bytes.subarray(0, bytes.length - 3), 'a')).toThrow(/truncated/);
    expect(() => decodeState(Buffer.concat([bytes, Buffer.from([0])]), 'a')).toThrow(/after its end/);
  });
});

describe("an account's dimension values", () => {
  it('are read in any stored order, and count and find values as when kept in order', () => {
    // Writers before DimValues stored a dimension's values in first-seen order, not by time.
    const HOUR = 3_600_000;
    const v1 = JSON.stringify({
      v: 1,
      mx: T0 + 3 * HOUR,
      w: [0, 1, 2, 3, 4, 5].map(() => [0, 0, 0, 0, null, null, []]),
      d: [
        [],
        [
          ['m-late', T0 + 3 * HOUR],
          ['m-old', T0 - 40 * HOUR],
          ['m-mid', T0 + HOUR],
        ],
        [],
        [],
        [],
      ],
    });
    const S = decodeState(v1, 'a');
    const raw = newRaw();
    const at = (t: number, merchant: string) => {
      applyEvent(S, 'a', { t, amount: 1, dims: [null, merchant, null, null, null] }, lim, raw);
      return [raw.distinct24![1], raw.distinct30![1]];
    };
    // 24 h back from T0 + 4 h: m-late and m-mid; 30 days: all three.
    expect(at(T0 + 4 * HOUR, 'm-old')).toEqual([2, 3]);
    // m-old was found and moved to now (not added again); a new merchant counts from the next event.
    expect(at(T0 + 5 * HOUR, 'm-new')).toEqual([3, 3]);
    expect(at(T0 + 6 * HOUR, 'm-new')).toEqual([4, 4]);
    const back = decodeState(encodeState(S), 'a');
    expect(back.d![1]!.v).toEqual(['m-mid', 'm-late', 'm-old', 'm-new']);
    expect(back.d![1]!.t).toEqual([T0 + HOUR, T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 6 * HOUR]);
  });
});

describe('the dedupe set', () => {
  it('forgets exactly what a walk from its first id forgets, across re-used ids and a store round trip', () => {
    // The walk rememberId made on every call before it learnt to skip it: the reference.
    const walk = (ids: Map<string, number>, id: string, now: number): string[] => {
      ids.set(id, now);
      const gone: string[] = [];
      for (const [k, at] of ids) {
        if (at >= now - lim.dedupeHorizonMs) break;
        ids.delete(k);
        gone.push(k);
      }
      return gone;
    };
    const step = fc.record({
      dt: fc.integer({ min: 0, max: 3 * DAY }),
      id: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
      store: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        let S = newState('a');
        const ref = new Map<string, number>();
        let t = T0;
        for (const s of steps) {
          t += s.dt;
          S.mx = t;
          const want = walk(ref, s.id, t);
          expect(rememberId(S, s.id, lim)).toEqual(want);
          expect([...S.ids!]).toEqual([...ref]);
          // A state read back from its stored form does not know its first id: it walks once.
          if (s.store) S = decodeState(encodeState(S), 'a');
        }
      }),
      { numRuns: 500 },
    );
  });
});
