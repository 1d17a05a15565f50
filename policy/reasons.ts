import { featureReason } from './policy.js';

/** Population norms of the training data, aligned with the manifest's feature_names. */
export interface FeatureNorms {
  mean: readonly number[];
  std: readonly number[];
}

/** Reads `feature_norms` from a manifest object when it is there and well formed (else undefined). */
export function normsOf(manifest: unknown, width: number): FeatureNorms | undefined {
  const n = (manifest as { feature_norms?: { mean?: unknown; std?: unknown } } | undefined)?.feature_norms;
  const ok = (a: unknown): a is number[] =>
    Array.isArray(a) && a.length === width && a.every((x) => typeof x === 'number' && Number.isFinite(x));
  return n && ok(n.mean) && ok(n.std) ? { mean: n.mean, std: n.std } : undefined;
}

/** Reason strings by feature name, made once (a decision lists up to three per event). */
const reasonOf = new Map<string, string>();
const reasonFor = (name: string): string => {
  let r = reasonOf.get(name);
  if (r === undefined) reasonOf.set(name, (r = featureReason(name)));
  return r;
};
/** The best z-scores so far and their features, highest first (reused: no garbage per event). */
let topZ = new Float64Array(8);
let topI = new Int32Array(8);

/**
 * The features of one row furthest above the population norm, as reason codes: the `top` largest
 * z-scores (x - mean) / std that reach `minZ`, highest first (of equal ones, the earlier feature).
 * Features with no spread (std 0) are skipped. The row is `row[at]`, `row[at + 1]`, ...: a row of a
 * batch's matrix is read in place.
 */
export function featureReasons(
  row: ArrayLike<number>,
  names: readonly string[],
  norms: FeatureNorms,
  top = 3,
  minZ = 2,
  at = 0,
): string[] {
  if (topZ.length < top) {
    topZ = new Float64Array(top);
    topI = new Int32Array(top);
  }
  const mean = norms.mean;
  const std = norms.std;
  let n = 0;
  for (let i = 0; i < names.length; i++) {
    const sd = std[i]!;
    if (!(sd > 0)) continue;
    const z = (row[at + i]! - mean[i]!) / sd;
    if (!(z >= minZ)) continue;
    if (n === top && !(z > topZ[n - 1]!)) continue;
    // Insert after every kept z at least as high; the lowest falls off when full.
    let p = n < top ? n++ : n - 1;
    for (; p > 0 && topZ[p - 1]! < z; p--) {
      topZ[p] = topZ[p - 1]!;
      topI[p] = topI[p - 1]!;
    }
    topZ[p] = z;
    topI[p] = i;
  }
  const out = new Array<string>(n);
  for (let k = 0; k < n; k++) out[k] = reasonFor(names[topI[k]!]!);
  return out;
}
