/**
 * Model benchmark (make bench): rows/s through the model runner at batch sizes 1, 64 and 512 against
 * a bare onnxruntime session with the same session options scoring the same rows in the same run.
 * Appends rows to bench/results.json.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { FEATURE_NAMES, specHash } from '../features/index.js';
import { projectRoot } from '../lib/paths.js';
import { createModelRunner, readManifest, SESSION_OPTIONS } from '../models/index.js';
import { writeRows, type BenchRow } from './results.js';

const ROUNDS = 5;

async function main() {
  const manifestPath = join(projectRoot(), 'models', 'default', 'manifest.json');
  const manifest = readManifest(manifestPath);
  const cols = FEATURE_NAMES.length;
  // Real feature rows (held-out events), tiled to 512.
  const parity = JSON.parse(readFileSync(join(dirname(manifestPath), 'parity.json'), 'utf8')) as {
    rows: number[][];
  };
  const matrix = new Float32Array(512 * cols);
  for (let i = 0; i < 512; i++) matrix.set(parity.rows[i % parity.rows.length]!, i * cols);

  const runner = await createModelRunner({
    manifestPath,
    featureNames: FEATURE_NAMES,
    featureSpec: specHash(),
  });
  const bare = await ort.InferenceSession.create(
    readFileSync(resolve(dirname(manifestPath), manifest.onnx)),
    SESSION_OPTIONS,
  );
  const input = bare.inputNames[0]!;

  const viaRunner = async (batch: number, rows: number) => {
    for (let done = 0; done < rows; done += batch)
      await runner.score(matrix.subarray(0, batch * cols), batch);
  };
  const viaBare = async (batch: number, rows: number) => {
    for (let done = 0; done < rows; done += batch) {
      const out = await bare.run(
        { [input]: new ort.Tensor('float32', matrix.subarray(0, batch * cols), [batch, cols]) },
        [manifest.output],
      );
      out[manifest.output]!.dispose();
    }
  };
  const rate = async (f: (b: number, n: number) => Promise<void>, batch: number, rows: number) => {
    const t0 = performance.now();
    await f(batch, rows);
    return rows / ((performance.now() - t0) / 1000);
  };
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;

  const result: BenchRow[] = [];
  for (const [batch, rows] of [
    [1, 3000],
    [64, 40_000],
    [512, 80_000],
  ] as const) {
    await viaRunner(batch, batch * 20); // warm both
    await viaBare(batch, batch * 20);
    // Interleaved rounds, median of each: the box is shared, so neither side gets the quiet moments.
    const r: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      r.push(await rate(viaRunner, batch, rows));
      b.push(await rate(viaBare, batch, rows));
    }
    const value = median(r);
    const baseline = median(b);
    result.push({
      name: `model rows/s, batch ${batch} (runner vs bare onnxruntime session)`,
      value,
      unit: 'rows/s',
      baseline,
      ratio: value / baseline,
    });
  }
  await runner.close();
  await bare.release();
  writeRows('model', result);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
