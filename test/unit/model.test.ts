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
    const p = await runner.score(matrix, parity.rows.length);
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
