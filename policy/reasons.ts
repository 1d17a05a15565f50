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

/**
 * The features of one row furthest above the population norm, as reason codes: the `top` largest
 * z-scores (x - mean) / std that reach `minZ`. Features with no spread (std 0) are skipped.
 */
export function featureReasons(
  row: ArrayLike<number>,
  names: readonly string[],
  norms: FeatureNorms,
  top = 3,
  minZ = 2,
): string[] {
  const best: { i: number; z: number }[] = [];
  for (let i = 0; i < names.length; i++) {
    const sd = norms.std[i]!;
    if (!(sd > 0)) continue;
    const z = (row[i]! - norms.mean[i]!) / sd;
    if (!(z >= minZ)) continue;
    if (best.length < top) best.push({ i, z });
    else if (z > best[best.length - 1]!.z) best[best.length - 1] = { i, z };
    else continue;
    best.sort((a, b) => b.z - a.z);
  }
  return best.map((b) => featureReason(names[b.i]!));
}
