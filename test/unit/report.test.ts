import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createOutcomeCollector,
  modelReport,
  prAuc,
  prCurve,
  renderReportHtml,
  rocAuc,
  type OutcomeRow,
} from '../../replay/index.js';

const DAY = 86_400_000;

const rowArb = fc.record({
  score: fc.integer({ min: 0, max: 20 }).map((k) => k / 20),
  flagged: fc.boolean(),
  label: fc.constantFrom<0 | 1>(0, 1),
  amountMinor: fc.integer({ min: 1, max: 1_000_000 }),
  currency: fc.constantFrom('EUR', 'GBP', 'USD'),
  eventType: fc.constantFrom('PAYMENT', 'WITHDRAWAL'),
  eventTime: fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2026, 0, 1) + 9 * DAY }),
  scenario: fc.constantFrom<string | null>(null, null, 'card_testing', 'mule_cash_out'),
});

const collect = (rows: OutcomeRow[]) => {
  const c = createOutcomeCollector();
  for (const r of rows) c.push(r);
  return c.done();
};

const sum = (rows: OutcomeRow[]) => {
  const m: Record<string, number> = {};
  for (const r of rows) m[r.currency] = (m[r.currency] ?? 0) + r.amountMinor;
  return m;
};

/** Every figure of a slice, the obvious way. */
function bruteSlice(rows: OutcomeRow[], flag: (r: OutcomeRow) => boolean) {
  const fraud = rows.filter((r) => r.label === 1);
  const flagged = rows.filter(flag);
  const caught = flagged.filter((r) => r.label === 1);
  return {
    events: rows.length,
    fraud: fraud.length,
    flagged: flagged.length,
    flag_rate: rows.length ? flagged.length / rows.length : 0,
    precision: flagged.length ? caught.length / flagged.length : null,
    recall: fraud.length ? caught.length / fraud.length : null,
    money_fraud: sum(fraud),
    money_flagged: sum(flagged),
    money_caught: sum(caught),
  };
}

describe('backtest report figures', () => {
  it('match brute-force computations on random outcomes', () => {
    fc.assert(
      fc.property(
        fc.array(rowArb, { minLength: 1, maxLength: 120 }),
        fc.constantFrom(0.3, 0.5, 0.55),
        (rows, t) => {
          const rep = modelReport(collect(rows), { model_version: 'm', policy_version: 'p', threshold: t });
          const { roc_auc, pr_auc, ...overall } = rep.overall;
          expect(overall).toEqual(bruteSlice(rows, (r) => r.flagged));
          // Ranking figures: the slice's scores through rocAuc/prAuc (themselves brute-force tested).
          const ys = rows.map((r) => r.label);
          const ss = rows.map((r) => r.score);
          const both = ys.some((y) => y) && ys.some((y) => !y);
          expect(roc_auc).toBe(both ? rocAuc(ss, ys) : null);
          expect(pr_auc).toBe(ys.some((y) => y) ? prAuc(ss, ys) : null);
          for (const type of ['PAYMENT', 'WITHDRAWAL']) {
            const sub = rows.filter((r) => r.eventType === type);
            if (!sub.length) {
              expect(rep.by_event_type[type]).toBeUndefined();
              continue;
            }
            const { roc_auc: ra, pr_auc: _b, ...m } = rep.by_event_type[type]!;
            expect(m).toEqual(bruteSlice(sub, (r) => r.flagged));
            const sy = sub.map((r) => r.label);
            const sboth = sy.some((y) => y) && sy.some((y) => !y);
            expect(ra).toBe(
              sboth
                ? rocAuc(
                    sub.map((r) => r.score),
                    sy,
                  )
                : null,
            );
          }
          // The sweep flags score >= threshold and contains the policy threshold.
          expect(rep.sweep.some((s) => s.threshold === t)).toBe(true);
          for (const s of rep.sweep) {
            const b = bruteSlice(rows, (r) => r.score >= s.threshold);
            expect(s).toEqual({
              threshold: s.threshold,
              flagged: b.flagged,
              flag_rate: b.flag_rate,
              precision: b.precision,
              recall: b.recall,
              money_flagged: b.money_flagged,
              money_caught: b.money_caught,
            });
          }
          for (const sc of rep.by_scenario) {
            const sub = rows.filter((r) => r.scenario === sc.scenario);
            const caught = sub.filter((r) => r.flagged);
            expect(sc.events).toBe(sub.length);
            expect(sc.labelled).toBe(sub.filter((r) => r.label).length);
            expect(sc.flagged).toBe(caught.length);
            expect(sc.detection_rate).toBeCloseTo(caught.length / sub.length, 12);
            expect(sc.mean_score).toBeCloseTo(sub.reduce((a, r) => a + r.score, 0) / sub.length, 12);
            expect(sc.money).toEqual(sum(sub));
            expect(sc.money_caught).toEqual(sum(caught));
          }
          expect(rep.by_scenario.map((s) => s.scenario).sort()).toEqual(
            [...new Set(rows.map((r) => r.scenario).filter((s) => s !== null))].sort(),
          );
          for (const d of rep.by_day) {
            const sub = rows.filter((r) => new Date(r.eventTime).toISOString().slice(0, 10) === d.day);
            expect(d.events).toBe(sub.length);
            expect(d.flagged).toBe(sub.filter((r) => r.flagged).length);
            expect(d.fraud).toBe(sub.filter((r) => r.label).length);
          }
          expect(rep.by_day.reduce((a, d) => a + d.events, 0)).toBe(rows.length);
          for (let b = 0; b < 20; b++) {
            const inBin = (r: OutcomeRow) => Math.min(19, Math.floor(r.score * 20)) === b;
            expect(rep.histogram.fraud[b]).toBe(rows.filter((r) => r.label && inBin(r)).length);
            expect(rep.histogram.legit[b]).toBe(rows.filter((r) => !r.label && inBin(r)).length);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('puts on the PR curve, for each distinct score, the precision and recall of flagging score >= it', () => {
    fc.assert(
      fc.property(fc.array(rowArb, { minLength: 1, maxLength: 80 }), (rows) => {
        const pos = rows.filter((r) => r.label).length;
        const pts = prCurve(collect(rows), 1000);
        if (!pos) {
          expect(pts).toEqual([]);
          return;
        }
        const distinct = [...new Set(rows.map((r) => r.score))].sort((a, b) => b - a);
        expect(pts.map((p) => p.threshold)).toEqual(distinct);
        for (const p of pts) {
          const f = rows.filter((r) => r.score >= p.threshold);
          expect(p.recall).toBeCloseTo(f.filter((r) => r.label).length / pos, 12);
          expect(p.precision).toBeCloseTo(f.filter((r) => r.label).length / f.length, 12);
        }
      }),
    );
  });

  it('renders a self-contained page: no scripts, no external references, names escaped', () => {
    const rows = fc.sample(rowArb, { numRuns: 300, seed: 3 });
    const o = collect(rows);
    const html = renderReportHtml(
      [
        modelReport(o, { model_version: 'champ<1>', policy_version: 'p', threshold: 0.5 }),
        modelReport(o, { model_version: 'chall', policy_version: 'p', threshold: 0.3 }),
      ],
      { source: 'dir', events: rows.length, feature_spec: 'abc', generated_from: 'test' },
    );
    expect(html).not.toMatch(/<script|<link|src=|href=|url\(|@import/i);
    expect(html).toContain('champ&lt;1&gt;');
    expect(html.match(/<svg/g)!.length).toBe(4);
    expect(html).toContain('challenger: chall');
  });
});
