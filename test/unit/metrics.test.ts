import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { prAuc, rocAuc } from '../../replay/index.js';

/** ROC-AUC the slow, obvious way: the share of (positive, negative) pairs ranked right, ties half. */
function rocBrute(s: number[], y: number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < s.length; i++) {
    for (let j = 0; j < s.length; j++) {
      if (y[i] === 1 && y[j] === 0) {
        den++;
        num += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
      }
    }
  }
  return num / den;
}

/** Average precision the slow way: at each distinct threshold, the recall gained times the precision. */
function apBrute(s: number[], y: number[]): number {
  const pos = y.filter((v) => v === 1).length;
  let ap = 0;
  let recall = 0;
  for (const t of [...new Set(s)].sort((a, b) => b - a)) {
    const flagged = s.map((v, i) => i).filter((i) => s[i]! >= t);
    const tp = flagged.filter((i) => y[i] === 1).length;
    ap += (tp / pos - recall) * (tp / flagged.length);
    recall = tp / pos;
  }
  return ap;
}

const rowsArb = fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.boolean()), {
  minLength: 2,
  maxLength: 60,
});

describe('ranking metrics', () => {
  it('ROC-AUC equals the pairwise definition on random inputs with ties', () => {
    fc.assert(
      fc.property(rowsArb, (rows) => {
        const s = rows.map((r) => r[0] / 20);
        const y: number[] = rows.map((r) => (r[1] ? 1 : 0));
        const pos = y.reduce((a, b) => a + b, 0);
        fc.pre(pos > 0 && pos < y.length);
        expect(rocAuc(s, y)).toBeCloseTo(rocBrute(s, y), 12);
      }),
    );
  });

  it('PR-AUC equals the step-wise definition on random inputs with ties', () => {
    fc.assert(
      fc.property(rowsArb, (rows) => {
        const s = rows.map((r) => r[0] / 20);
        const y: number[] = rows.map((r) => (r[1] ? 1 : 0));
        fc.pre(y.some((v) => v === 1));
        expect(prAuc(s, y)).toBeCloseTo(apBrute(s, y), 12);
      }),
    );
  });

  it('are NaN without both classes, and a NaN score ends the walk instead of stalling it', () => {
    expect(rocAuc([0.1, 0.2], [1, 1])).toBeNaN();
    expect(rocAuc([0.1, 0.2], [0, 0])).toBeNaN();
    expect(prAuc([0.1, 0.2], [0, 0])).toBeNaN();
    // A NaN score ranks as one group above every number (the typed arrays' sort puts it last).
    expect(rocAuc([NaN, 0.9, 0.1], [0, 1, 0])).toBe(0.5);
    expect(Number.isFinite(prAuc([NaN, NaN, 0.2], [1, 0, 1]))).toBe(true);
  });

  it('PR-AUC is 1 for a perfect ranking and the base rate for a constant score', () => {
    expect(prAuc([0.9, 0.8, 0.1, 0.05], [1, 1, 0, 0])).toBe(1);
    expect(prAuc([0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0])).toBeCloseTo(0.25, 12);
  });
});
