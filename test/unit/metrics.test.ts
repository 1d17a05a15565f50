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

describe('ranking metrics', () => {
  it('ROC-AUC equals the pairwise definition on random inputs with ties', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.boolean()), { minLength: 2, maxLength: 60 }),
        (rows) => {
          const s = rows.map((r) => r[0] / 20);
          const y: number[] = rows.map((r) => (r[1] ? 1 : 0));
          const pos = y.reduce((a, b) => a + b, 0);
          fc.pre(pos > 0 && pos < y.length);
          expect(rocAuc(s, y)).toBeCloseTo(rocBrute(s, y), 12);
        },
      ),
    );
  });

  it('PR-AUC is 1 for a perfect ranking and the base rate for a constant score', () => {
    expect(prAuc([0.9, 0.8, 0.1, 0.05], [1, 1, 0, 0])).toBe(1);
    expect(prAuc([0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0])).toBeCloseTo(0.25, 12);
  });
});
