import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFraudstreamError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';
import { createPolicy, loadPolicyFile } from '../../policy/index.js';
import { createCaseStore } from '../../review/index.js';
import type { Decision } from '../../schemas/index.js';

const T = 1_764_000_000_000;
const decision = (id: string, score: number, at: number, over: Partial<Decision> = {}): Decision => ({
  event_id: id,
  event_type: 'PAYMENT',
  account_id: 'a1',
  event_time: at - 10,
  amount_minor: 100,
  currency: 'EUR',
  outcome: 'FLAG',
  score,
  model_version: 'm',
  policy_version: 'p',
  reasons: ['SCORE_ABOVE_THRESHOLD'],
  decided_at: at,
  latency_us: 1,
  feature_spec: 's',
  features: null,
  ...over,
});
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (isFraudstreamError(e)) return e.code;
    throw e;
  }
  return 'none';
};

describe('case store', () => {
  it('opens one case per flagged event_id; sorts by score or age; paginates; filters', () => {
    const s = createCaseStore();
    s.addDecision(decision('a', 0.7, T + 3));
    s.addDecision(decision('b', 0.9, T + 1));
    s.addDecision(decision('c', 0.8, T + 2, { account_id: 'a2' }));
    s.addDecision(decision('b', 0.9, T + 5)); // a repeat: no second case
    s.addDecision(decision('d', 0.1, T + 4, { outcome: 'APPROVE' })); // activity only
    expect(s.size()).toBe(3);
    expect(s.list({ sort: 'score' }, T).cases.map((c) => c.id)).toEqual(['b', 'c', 'a']);
    expect(s.list({ sort: 'age' }, T).cases.map((c) => c.id)).toEqual(['b', 'c', 'a']);
    expect(s.list({ sort: 'age', order: 'asc' }, T).cases.map((c) => c.id)).toEqual(['a', 'c', 'b']);
    const page = s.list({ sort: 'score', limit: 1, offset: 1 }, T);
    expect([page.total, page.cases.map((c) => c.id)]).toEqual([3, ['c']]);
    expect(s.list({ account_id: 'a2' }, T).cases.map((c) => c.id)).toEqual(['c']);
    expect(s.get('a', T).activity.map((d) => d.event_id)).toEqual(['d', 'a', 'b']);
  });

  it("keeps an account's latest decisions, newest event time first, each event once", () => {
    // The rule, as a list kept the slow way: a decision whose event is not among those kept joins
    // them; newest event time first (the later arrival first among equal times); the first `keep`.
    const expected = (ds: Decision[], keep: number) => {
      const kept: Decision[] = [];
      for (const d of ds) {
        if (kept.some((k) => k.event_id === d.event_id)) continue;
        kept.unshift(d);
        kept.sort((a, b) => b.event_time - a.event_time);
        kept.length = Math.min(kept.length, keep);
      }
      return kept.map((d) => d.event_id);
    };
    const arrival = fc.record({ id: fc.integer({ min: 0, max: 30 }), t: fc.integer({ min: 0, max: 8 }) });
    fc.assert(
      fc.property(fc.array(arrival, { maxLength: 60 }), fc.integer({ min: 1, max: 12 }), (xs, keep) => {
        const s = createCaseStore({ activityPerAccount: keep });
        const ds = xs.map(({ id, t }) => decision(`e${id}`, 0.5, T + t * 10, { outcome: 'APPROVE' }));
        ds.forEach((d) => s.addDecision(d));
        s.addDecision(decision('flag', 0.9, T - 1_000_000));
        // An approval still updates the activity the case detail shows, though it opens no case.
        const shown = s.get('flag', T).activity.map((d) => d.event_id);
        expect(shown).toEqual(expected([...ds, decision('flag', 0.9, T - 1_000_000)], keep));
      }),
      { numRuns: 300 },
    );
  });

  it('leases expire; a label resolves a case even when it arrives before the decision', () => {
    const s = createCaseStore({ leaseMs: 1000 });
    s.addDecision(decision('x', 0.9, T));
    s.claim('x', 'ann', T);
    expect(code(() => s.claim('x', 'bob', T + 999))).toBe('FS_ERR_CASE_CLAIMED');
    expect(code(() => s.reserveResolve('x', 'ann', T + 1000))).toBe('FS_ERR_LEASE_EXPIRED');
    expect(s.claim('x', 'bob', T + 1000).lease?.analyst).toBe('bob');
    const r = s.reserveResolve('x', 'bob', T + 1001);
    expect(code(() => s.reserveResolve('x', 'bob', T + 1002))).toBe('FS_ERR_CASE_RESOLVED');
    r.abort();
    expect(s.get('x', T + 1003).status).toBe('CLAIMED');
    s.applyLabel({
      event_id: 'y',
      account_id: 'a1',
      label: 'FRAUD',
      source: 'CHARGEBACK',
      labelled_at: T,
      analyst: null,
      note: null,
    });
    s.addDecision(decision('y', 0.9, T));
    expect(s.get('y', T).resolution?.source).toBe('CHARGEBACK');
    expect(code(() => s.get('nope', T))).toBe('FS_ERR_CASE_NOT_FOUND');
  });

  it('records a resolve once when its own Label comes back on the topic before the ack', () => {
    const s = createCaseStore({ leaseMs: 1000 });
    const label = (id: string) => ({
      event_id: id,
      account_id: 'a1',
      label: 'FRAUD' as const,
      source: 'ANALYST' as const,
      labelled_at: T + 10,
      analyst: 'ann',
      note: null,
    });
    s.addDecision(decision('r', 0.9, T));
    s.claim('r', 'ann', T);
    const r = s.reserveResolve('r', 'ann', T + 5);
    s.applyLabel(label('r')); // the echo, read back before the producer's ack
    r.commit({ label: 'FRAUD', source: 'ANALYST', analyst: 'ann', note: null, at: T + 10 });
    expect(s.get('r', T + 20).audit.map((a) => a.action)).toEqual(['OPENED', 'CLAIMED', 'RESOLVED']);
    // A resolve that aborts after a Label for the case came in: the Label still resolves it.
    s.addDecision(decision('q', 0.9, T));
    s.claim('q', 'ann', T);
    const q = s.reserveResolve('q', 'ann', T + 5);
    s.applyLabel({ ...label('q'), source: 'CHARGEBACK', analyst: null });
    q.abort();
    expect(s.get('q', T + 20).resolution?.source).toBe('CHARGEBACK');
    expect(s.get('q', T + 20).audit.map((a) => a.action)).toEqual(['OPENED', 'CLAIMED', 'RESOLVED']);
  });

  it('the example policy file loads', () => {
    const p = createPolicy(loadPolicyFile(join(projectRoot(), 'policy', 'example.json')));
    expect(p.version).toBe('policy-2026-11-24');
    expect(p.degraded).toEqual({ mode: 'fail-open', budgetMs: 200 });
  });
});
