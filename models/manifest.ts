import { readFileSync } from 'node:fs';
import { fail } from '../lib/errors.js';

/** What models/train writes beside each .onnx file (docs/model-manifest.md). */
export interface ModelManifest {
  name: string;
  version: string;
  /** ONNX file name, relative to the manifest. */
  onnx: string;
  onnx_sha256: string;
  feature_names: string[];
  feature_spec: string;
  /** Name of the output holding [N, 2] class probabilities (column 1 = fraud). */
  output: string;
  threshold: number;
  trained_at: string;
  training_window: { from: string; to: string };
  metrics: Record<string, number>;
}

export function readManifest(path: string): ModelManifest {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail('MODEL_LOAD', `cannot read manifest ${path}: ${(e as Error).message}`, undefined, e);
  }
  let m: Partial<ModelManifest>;
  try {
    m = JSON.parse(text) as Partial<ModelManifest>;
  } catch (e) {
    fail('MODEL_LOAD', `manifest ${path} is not valid JSON: ${(e as Error).message}`, undefined, e);
  }
  const problems: string[] = [];
  const str = (k: keyof ModelManifest) =>
    (typeof m[k] === 'string' && (m[k] as string).length > 0) ||
    problems.push(`${k} must be a non-empty string`);
  (['name', 'version', 'onnx', 'onnx_sha256', 'feature_spec', 'output'] as const).forEach(str);
  if (!Array.isArray(m.feature_names) || m.feature_names.some((n) => typeof n !== 'string'))
    problems.push('feature_names must be an array of strings');
  if (typeof m.threshold !== 'number' || !(m.threshold >= 0 && m.threshold <= 1))
    problems.push('threshold must be a number in [0, 1]');
  if (problems.length) fail('MODEL_LOAD', `manifest ${path}: ${problems.join('; ')}`);
  return m as ModelManifest;
}
