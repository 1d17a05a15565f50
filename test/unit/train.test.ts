import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import type { ModelManifest } from '../../models/index.js';

// models/train/train.py in the pinned venv (make test depends on make venv), on small contract-shaped
// Arrow files that test/interop/train_fixture.py writes.
const root = projectRoot();
const python = join(root, 'models', '.venv', 'bin', 'python');
const fixture = (mode: string) => {
  const path = join(mkdtempSync(join(tmpdir(), 'fs-train-')), 'features.arrow');
  const expected = JSON.parse(
    execFileSync(python, [join(root, 'test', 'interop', 'train_fixture.py'), path, mode], {
      encoding: 'utf8',
    }),
  ) as { fit_fraud_known: number; fit_fraud_all: number };
  return { path, expected };
};
/** `hashSeed`: Python's string-hash seed, which decides set order: runs must not depend on it. */
const train = (features: string, out: string, hashSeed = '0') =>
  spawnSync(
    python,
    [
      join(root, 'models', 'train', 'train.py'),
      ...['--features', features, '--out', out, '--name', 'fixture'],
      ...['--test-days', '7', '--gap-days', '4', '--label-delay-days', '4', '--valid-days', '4'],
    ],
    { encoding: 'utf8', env: { ...process.env, PYTHONHASHSEED: hashSeed } },
  );

describe('models/train/train.py', { timeout: 180_000 }, () => {
  it('trains on labels known at the cutoff only, with the gap, norms and hold-out metrics in the manifest; deterministic', () => {
    const { path, expected } = fixture('ok');
    const a = mkdtempSync(join(tmpdir(), 'fs-train-out-'));
    const b = mkdtempSync(join(tmpdir(), 'fs-train-out-'));
    const ra = train(path, a, '0');
    expect(ra.stderr).toBe('');
    expect(ra.status).toBe(0);
    expect(train(path, b, '20').status).toBe(0); // 0 and 20 order onnxmltools' opset set differently
    for (const f of ['model.onnx', 'manifest.json', 'parity.json'])
      expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f)))).toBe(true);

    const m = JSON.parse(readFileSync(join(a, 'manifest.json'), 'utf8')) as ModelManifest;
    // A quarter of the labels arrive 40 days late: those fit rows were trained as not fraud.
    expect(expected.fit_fraud_known).toBeLessThan(expected.fit_fraud_all);
    expect((m.split!.fit as unknown as { fraud_known: number }).fraud_known).toBe(expected.fit_fraud_known);
    expect(m.split!.gap_days).toBe(4);
    expect(Date.parse(m.split!.test.from) - Date.parse(m.split!.validation.to)).toBe(4 * 86_400_000);
    expect(m.trained_at).toBe(m.split!.test.from);
    expect(m.feature_names).toEqual(['f_signal', 'f_noise_a', 'f_noise_b', 'f_noise_c']);
    expect(m.feature_spec).toBe('sha256:fixture');
    expect(m.feature_norms.mean).toHaveLength(4);
    expect(m.feature_norms.std[0]).toBeCloseTo(1, 1);
    expect(m.metrics['roc_auc']).toBeGreaterThan(0.8);
    for (const k of ['pr_auc', 'precision_at_threshold', 'recall_at_threshold'])
      expect(m.metrics[k]).toBeGreaterThan(0);
    const parity = JSON.parse(readFileSync(join(a, 'parity.json'), 'utf8')) as { rows: number[][] };
    expect(parity.rows[0]).toHaveLength(4);
  });

  it('never uses a label that arrived after the cutoff', () => {
    const { path, expected } = fixture('late');
    expect(expected.fit_fraud_all).toBeGreaterThan(0);
    const r = train(path, mkdtempSync(join(tmpdir(), 'fs-train-out-')));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('the fit period has no known fraud label');
  });

  it('refuses a file of another shape, naming the column', () => {
    const r = train(fixture('badcol').path, mkdtempSync(join(tmpdir(), 'fs-train-out-')));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('column 4 must be labelled_at, got labeled_at');
  });
});
