import { readFileSync } from 'node:fs';
import { fail } from '../lib/errors.js';

/** One period of the training split (ISO-8601 UTC bounds). */
export interface ManifestPeriod {
  from: string;
  to: string;
  events: number;
}

/** What models/train writes beside each .onnx file (docs/model.md). */
export interface ModelManifest {
  name: string;
  version: string;
  /** ONNX file name, relative to the manifest. */
  onnx: string;
  onnx_sha256: string;
  feature_names: string[];
  feature_spec: string;
  /** Mean and standard deviation of each feature over the training rows, aligned with feature_names. */
  feature_norms: { mean: number[]; std: number[] };
  /** Name of the output holding [N, 2] class probabilities (column 1 = fraud). */
  output: string;
  threshold: number;
  target_flag_rate?: number;
  trained_at: string;
  training_window: { from: string; to: string };
  /** How the history was split; written by models/train, informational. */
  split?: {
    label_cutoff: string;
    label_delay_days: number;
    gap_days: number;
    fit: ManifestPeriod;
    validation: ManifestPeriod;
    test: ManifestPeriod;
  };
  /** Hold-out (test period): roc_auc, pr_auc, precision_at_threshold, recall_at_threshold, ... */
  metrics: Record<string, number>;
}

const finiteArray = (v: unknown, n: number) =>
  Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number' && Number.isFinite(x));

/** Reads and checks a manifest; FS_ERR_MODEL_LOAD names every offending field. */
export function readManifest(path: string): ModelManifest {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail('MODEL_LOAD', `cannot read manifest ${path}: ${(e as Error).message}`, undefined, e);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    fail('MODEL_LOAD', `manifest ${path} is not valid JSON: ${(e as Error).message}`, undefined, e);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    fail('MODEL_LOAD', `manifest ${path} is not a JSON object`);
  const m = parsed as Partial<ModelManifest>;
  const problems: string[] = [];
  const str = (k: keyof ModelManifest) =>
    (typeof m[k] === 'string' && (m[k] as string).length > 0) ||
    problems.push(`${k} must be a non-empty string`);
  (['name', 'version', 'onnx', 'onnx_sha256', 'feature_spec', 'output', 'trained_at'] as const).forEach(str);
  const names = m.feature_names;
  const namesOk = Array.isArray(names) && names.length > 0 && names.every((n) => typeof n === 'string');
  if (!namesOk) problems.push('feature_names must be a non-empty array of strings');
  if (typeof m.threshold !== 'number' || !(m.threshold >= 0 && m.threshold <= 1))
    problems.push('threshold must be a number in [0, 1]');
  const norms = m.feature_norms as { mean?: unknown; std?: unknown } | undefined;
  if (typeof norms !== 'object' || norms === null) problems.push('feature_norms must be an object');
  else if (namesOk) {
    if (!finiteArray(norms.mean, names.length))
      problems.push(`feature_norms.mean must be ${names.length} finite numbers (one per feature_names)`);
    if (!finiteArray(norms.std, names.length) || (norms.std as number[]).some((s) => s < 0))
      problems.push(`feature_norms.std must be ${names.length} finite numbers >= 0 (one per feature_names)`);
  }
  const w = m.training_window;
  if (typeof w !== 'object' || w === null || typeof w.from !== 'string' || typeof w.to !== 'string')
    problems.push('training_window must be { from, to } strings');
  if (
    typeof m.metrics !== 'object' ||
    m.metrics === null ||
    Object.values(m.metrics).some((v) => typeof v !== 'number')
  )
    problems.push('metrics must be an object of numbers');
  if (problems.length) fail('MODEL_LOAD', `manifest ${path}: ${problems.join('; ')}`);
  return m as ModelManifest;
}
