import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { fail, isFraudstreamError } from '../lib/errors.js';
import { readManifest, type ModelManifest } from './manifest.js';

export interface ModelRunnerOptions {
  /** Path of the model's manifest.json; the .onnx file is found beside it. */
  manifestPath: string;
  /** What the feature engine produces: the model must expect exactly these, in this order. */
  featureNames: readonly string[];
  featureSpec: string;
}

export interface ModelRunner {
  readonly manifest: ModelManifest;
  /** `name@version`, as written in decisions. */
  readonly version: string;
  /** P(fraud) of each row of a rows × cols row-major matrix: one onnxruntime `run` for the batch. */
  score(matrix: Float32Array, rows: number): Promise<Float32Array>;
  close(): Promise<void>;
}

function mismatch(manifest: ModelManifest, opts: ModelRunnerOptions): string | undefined {
  const want = opts.featureNames;
  const got = manifest.feature_names;
  if (manifest.feature_spec !== opts.featureSpec) {
    return `feature spec ${manifest.feature_spec} in the manifest, ${opts.featureSpec} in the engine`;
  }
  if (got.length !== want.length)
    return `manifest lists ${got.length} features, the engine computes ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i])
      return `feature ${i} is ${JSON.stringify(got[i])} in the manifest, ${JSON.stringify(want[i])} in the engine`;
  }
  return undefined;
}

export async function createModelRunner(opts: ModelRunnerOptions): Promise<ModelRunner> {
  const manifest = readManifest(opts.manifestPath);
  const why = mismatch(manifest, opts);
  if (why) fail('MODEL_MISMATCH', `${manifest.name}@${manifest.version}: ${why}`);

  const onnxPath = resolve(dirname(opts.manifestPath), manifest.onnx);
  let bytes: Buffer;
  try {
    bytes = readFileSync(onnxPath);
  } catch (e) {
    fail('MODEL_LOAD', `cannot read ${onnxPath}: ${(e as Error).message}`, undefined, e);
  }
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== manifest.onnx_sha256)
    fail('MODEL_MISMATCH', `sha256 of ${onnxPath} is ${sha}, the manifest says ${manifest.onnx_sha256}`);

  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      // A 2-core box shares its cores with Kafka and Redis: one thread, no busy-waiting.
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
  } catch (e) {
    fail('MODEL_LOAD', `${onnxPath} is not a loadable ONNX model: ${(e as Error).message}`, undefined, e);
  }
  const cols = opts.featureNames.length;
  const input = session.inputNames[0];
  if (!input || !session.outputNames.includes(manifest.output)) {
    await session.release();
    fail(
      'MODEL_MISMATCH',
      `${onnxPath} has outputs ${session.outputNames.join(', ')}; the manifest names ${manifest.output}`,
    );
  }

  const score = async (matrix: Float32Array, rows: number): Promise<Float32Array> => {
    if (rows === 0) return new Float32Array(0);
    const data = matrix.length === rows * cols ? matrix : matrix.subarray(0, rows * cols);
    const feeds = { [input]: new ort.Tensor('float32', data, [rows, cols]) };
    const out = await session.run(feeds, [manifest.output]);
    const probs = out[manifest.output]!;
    const p = probs.data as Float32Array;
    const classes = p.length / rows;
    const result = new Float32Array(rows);
    for (let i = 0; i < rows; i++) result[i] = p[i * classes + classes - 1]!;
    probs.dispose();
    return result;
  };

  // Prove the model takes this width now, not on the first live batch.
  try {
    const probe = await score(new Float32Array(cols), 1);
    if (!(probe[0]! >= 0 && probe[0]! <= 1))
      fail('MODEL_MISMATCH', `${onnxPath} returned ${probe[0]} for a zero row, not a probability`);
  } catch (e) {
    await session.release();
    if (isFraudstreamError(e)) throw e;
    fail(
      'MODEL_MISMATCH',
      `${onnxPath} does not accept a [1, ${cols}] float input: ${(e as Error).message}`,
      undefined,
      e,
    );
  }

  return {
    manifest,
    version: `${manifest.name}@${manifest.version}`,
    score,
    close: () => session.release(),
  };
}
