import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FEATURE_NAMES, specHash } from '../../features/index.js';
import { isFraudstreamError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';
import { createModelRunner, type ModelManifest } from '../../models/index.js';

const dir = join(projectRoot(), 'models', 'default');
const manifestPath = join(dir, 'manifest.json');
const opts = { manifestPath, featureNames: FEATURE_NAMES, featureSpec: specHash() };

/** A copy of the default model in a temp folder, with the manifest changed by `edit`. */
function variant(edit: (m: ModelManifest) => void, onnx?: Buffer): string {
  const d = mkdtempSync(join(tmpdir(), 'fs-model-'));
  const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as ModelManifest;
  edit(m);
  if (onnx) writeFileSync(join(d, m.onnx), onnx);
  else copyFileSync(join(dir, m.onnx), join(d, m.onnx));
  writeFileSync(join(d, 'manifest.json'), JSON.stringify(m));
  return join(d, 'manifest.json');
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isFraudstreamError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
  throw new Error('expected an error');
}

describe('model runner', () => {
  it('gives the probabilities LightGBM gave in Python on the same rows (within 1e-5), in one batch', async () => {
    const parity = JSON.parse(readFileSync(join(dir, 'parity.json'), 'utf8')) as {
      rows: number[][];
      probabilities: number[];
    };
    const runner = await createModelRunner(opts);
    const cols = FEATURE_NAMES.length;
    const matrix = new Float32Array(parity.rows.length * cols);
    parity.rows.forEach((r, i) => matrix.set(r, i * cols));
    const { scores: p, version } = await runner.score(matrix, parity.rows.length);
    expect(version).toBe(runner.version);
    expect(p.length).toBe(parity.rows.length);
    expect(parity.probabilities.some((x) => x > 0.5)).toBe(true);
    for (let i = 0; i < p.length; i++) expect(Math.abs(p[i]! - parity.probabilities[i]!)).toBeLessThan(1e-5);
    await runner.close();
  });

  it('refuses a manifest whose feature spec differs, naming both hashes', async () => {
    const msg = await codeOf(
      createModelRunner({ ...opts, manifestPath: variant((m) => (m.feature_spec = 'sha256:0000')) }),
    );
    expect(msg).toMatch(/^FS_ERR_MODEL_MISMATCH/);
    expect(msg).toContain('sha256:0000');
    expect(msg).toContain(specHash());
  });

  it('refuses features in another order, naming the first difference', async () => {
    const swapped = [...FEATURE_NAMES];
    [swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!];
    const msg = await codeOf(
      createModelRunner({ ...opts, manifestPath: variant((m) => (m.feature_names = swapped)) }),
    );
    expect(msg).toMatch(/^FS_ERR_MODEL_MISMATCH: .*feature 2/);
  });

  it('refuses an ONNX file whose sha256 is not the manifest one', async () => {
    const bytes = readFileSync(join(dir, 'model.onnx'));
    const tampered = Buffer.from(bytes);
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    const msg = await codeOf(createModelRunner({ ...opts, manifestPath: variant(() => {}, tampered) }));
    expect(msg).toMatch(/^FS_ERR_MODEL_MISMATCH: .*sha256 of .*model.onnx/);
  });

  it('refuses a manifest without a field it relies on, naming the field', async () => {
    const noNorms = await codeOf(
      createModelRunner({
        ...opts,
        manifestPath: variant((m) => delete (m as Partial<ModelManifest>).feature_norms),
      }),
    );
    expect(noNorms).toMatch(/^FS_ERR_MODEL_LOAD: .*feature_norms must be an object/);
    const shortStd = await codeOf(
      createModelRunner({ ...opts, manifestPath: variant((m) => m.feature_norms.std.pop()) }),
    );
    expect(shortStd).toMatch(/feature_norms\.std must be \d+ finite numbers/);
    const badThreshold = await codeOf(
      createModelRunner({ ...opts, manifestPath: variant((m) => (m.threshold = 2)) }),
    );
    expect(badThreshold).toMatch(/threshold must be a number in \[0, 1\]/);
  });

  it('the committed manifest carries norms, the split and the hold-out metrics', () => {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as ModelManifest;
    expect(m.feature_norms.mean).toHaveLength(m.feature_names.length);
    expect(m.feature_norms.std).toHaveLength(m.feature_names.length);
    for (const k of ['roc_auc', 'pr_auc', 'precision_at_threshold', 'recall_at_threshold'])
      expect(m.metrics[k]).toBeGreaterThan(0);
    expect(m.split!.gap_days).toBeGreaterThanOrEqual(m.split!.label_delay_days);
    // Trained before the test period starts, on events that end a gap earlier.
    expect(Date.parse(m.split!.fit.to)).toBeLessThanOrEqual(Date.parse(m.split!.validation.from));
    expect(Date.parse(m.split!.test.from) - Date.parse(m.split!.validation.to)).toBeGreaterThanOrEqual(
      m.split!.gap_days * 86_400_000 - 1000,
    );
  });

  it('refuses a foreign or truncated ONNX file and a manifest that does not parse', async () => {
    const junk = Buffer.from('not an onnx model at all');
    const sha = (await import('node:crypto')).createHash('sha256').update(junk).digest('hex');
    expect(
      await codeOf(createModelRunner({ ...opts, manifestPath: variant((m) => (m.onnx_sha256 = sha), junk) })),
    ).toMatch(/^FS_ERR_MODEL_LOAD/);
    const d = mkdtempSync(join(tmpdir(), 'fs-model-'));
    writeFileSync(join(d, 'manifest.json'), '{ not json');
    expect(await codeOf(createModelRunner({ ...opts, manifestPath: join(d, 'manifest.json') }))).toMatch(
      /^FS_ERR_MODEL_LOAD: .*not valid JSON/,
    );
    expect(await codeOf(createModelRunner({ ...opts, manifestPath: join(d, 'missing.json') }))).toMatch(
      /^FS_ERR_MODEL_LOAD: .*cannot read/,
    );
  });
});

describe('model hot swap', () => {
  const cols = FEATURE_NAMES.length;
  const parity = JSON.parse(readFileSync(join(dir, 'parity.json'), 'utf8')) as { rows: number[][] };
  const matrix = new Float32Array(parity.rows.length * cols);
  parity.rows.forEach((r, i) => matrix.set(r, i * cols));
  const rows = parity.rows.length;

  it('serves the new model from the next run; a run in flight finishes on the model it started on', async () => {
    const v2 = variant((m) => (m.version = '2'));
    const runner = await createModelRunner(opts);
    const v1 = runner.version;
    const inFlight = runner.score(matrix, rows);
    const swapped = runner.swap(v2);
    const after = await swapped.then(() => runner.score(matrix, rows));
    expect((await inFlight).version).toBe(v1);
    expect(await swapped).toEqual({ model_version: v1.replace(/@1$/, '@2') });
    expect(after.version).toBe(runner.version);
    expect(runner.version).toMatch(/@2$/);
    expect(runner.manifestPath).toBe(v2);
    expect(Array.from(after.scores)).toEqual(Array.from((await inFlight).scores));
    // No argument: re-read the serving manifest.
    expect(await runner.swap()).toEqual({ model_version: runner.version });
    await runner.close();
  });

  it('keeps the old model serving when a swap fails, with an error naming the problem', async () => {
    const runner = await createModelRunner(opts);
    const before = runner.version;
    const d = mkdtempSync(join(tmpdir(), 'fs-model-'));
    writeFileSync(join(d, 'manifest.json'), '{ "name": ');
    const truncated = readFileSync(join(dir, 'model.onnx')).subarray(0, 5000);
    const sha = (await import('node:crypto')).createHash('sha256').update(truncated).digest('hex');
    const bad = [
      [join(d, 'manifest.json'), /^FS_ERR_MODEL_LOAD: .*not valid JSON/],
      [join(d, 'nope.json'), /^FS_ERR_MODEL_LOAD: .*cannot read manifest/],
      [variant((m) => (m.onnx_sha256 = sha), truncated), /^FS_ERR_MODEL_LOAD: .*not a loadable ONNX model/],
      [variant((m) => (m.feature_spec = 'sha256:ffff')), /^FS_ERR_MODEL_MISMATCH: .*sha256:ffff/],
    ] as const;
    for (const [path, want] of bad) {
      expect(await codeOf(runner.swap(path))).toMatch(want);
      expect(runner.version).toBe(before);
      const { scores, version } = await runner.score(matrix, rows);
      expect(version).toBe(before);
      expect(scores.length).toBe(rows);
    }
    await runner.close();
  });

  it('refuses a model whose input width is not the engine width, at load and at swap', async () => {
    // An engine with one feature fewer: the manifest agrees with it, the ONNX graph does not.
    const fewer = FEATURE_NAMES.slice(0, -1);
    const narrow = variant((m) => {
      m.feature_names = m.feature_names.slice(0, -1);
      m.feature_norms.mean.pop();
      m.feature_norms.std.pop();
    });
    const msg = await codeOf(createModelRunner({ ...opts, featureNames: fewer, manifestPath: narrow }));
    expect(msg).toMatch(
      new RegExp(`^FS_ERR_MODEL_MISMATCH: .*does not accept a \\[1, ${fewer.length}\\] float input`),
    );
    const runner = await createModelRunner(opts);
    expect(await codeOf(runner.swap(narrow))).toMatch(
      /^FS_ERR_MODEL_MISMATCH: .*manifest lists 195 features/,
    );
    await runner.close();
  });

  it('swaps 50 times without growing resident memory (old sessions are released)', async () => {
    const runner = await createModelRunner(opts);
    const paths = [variant((m) => (m.version = 'a')), variant((m) => (m.version = 'b'))];
    for (let i = 0; i < 5; i++) {
      await runner.swap(paths[i % 2]);
      await runner.score(matrix, rows);
    }
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 50; i++) {
      await runner.swap(paths[i % 2]);
      await runner.score(matrix, rows);
    }
    const grownMb = (process.memoryUsage().rss - rss0) / 1e6;
    // A leaked session of this model holds about 0.7 MB; 50 of them would pass this bound.
    expect(grownMb).toBeLessThan(25);
    await runner.close();
    await expect(runner.score(matrix, rows)).rejects.toThrow(/closed/);
  });
});
