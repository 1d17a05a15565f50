import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { Errors, fail, FraudstreamError, isFraudstreamError } from '../lib/errors.js';
import { readManifest, type ModelManifest } from './manifest.js';

export interface ModelRunnerOptions {
  /** Path of the model's manifest.json; the .onnx file is found beside it. */
  manifestPath: string;
  /** What the feature engine produces: the model must expect exactly these, in this order. */
  featureNames: readonly string[];
  featureSpec: string;
}

/** The scores of one batch and the one model that produced them all. */
export interface ModelScores {
  /** P(fraud) per row. */
  scores: Float32Array;
  /** `name@version` of the model that scored the batch. */
  version: string;
  manifest: ModelManifest;
}

export interface ModelRunner {
  /** The model serving now (changes on `swap`). */
  readonly manifest: ModelManifest;
  /** `name@version` of the model serving now, as written in decisions. */
  readonly version: string;
  /** Manifest path of the model serving now. */
  readonly manifestPath: string;
  /**
   * P(fraud) of each row of a rows × cols row-major matrix: one onnxruntime `run` for the batch, on the
   * model serving when the call starts; a concurrent swap never splits a batch between two models.
   */
  score(matrix: Float32Array, rows: number): Promise<ModelScores>;
  /**
   * Loads the manifest at `manifestPath` (default: the current one, re-read) with every check of a first
   * load, then makes it the serving model between two runs. The old session is released once no run
   * uses it. On any error the current model keeps serving and the error is thrown. Swaps are serialised.
   */
  swap(manifestPath?: string): Promise<{ model_version: string }>;
  close(): Promise<void>;
}

/** Session options for a 2-core box shared with Kafka and Redis: one thread, no busy-waiting. */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
};

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

/** One loaded model: its session, and how many runs use it right now. */
interface Loaded {
  manifestPath: string;
  manifest: ModelManifest;
  version: string;
  session: ort.InferenceSession;
  input: string;
  /** Columns of the probability output (2: not fraud, fraud). */
  classes: number;
  /** Reusable output buffers. */
  outputs: Float32Array[];
  inflight: number;
  retired: boolean;
  released?: Promise<void>;
}

function release(m: Loaded): Promise<void> {
  m.released ??= m.session.release();
  return m.released;
}

async function runOn(m: Loaded, cols: number, matrix: Float32Array, rows: number): Promise<Float32Array> {
  if (rows === 0) return new Float32Array(0);
  const data = matrix.length === rows * cols ? matrix : matrix.subarray(0, rows * cols);
  // onnxruntime writes the probabilities into a buffer of ours (no output allocation per run); a run
  // takes one from the pool and gives it back, so concurrent runs never share one.
  let buf = m.outputs.pop();
  if (!buf || buf.length < rows * m.classes) buf = new Float32Array(Math.max(rows, 64) * m.classes);
  try {
    const fetch = new ort.Tensor('float32', buf.subarray(0, rows * m.classes), [rows, m.classes]);
    await m.session.run(
      { [m.input]: new ort.Tensor('float32', data, [rows, cols]) },
      {
        [m.manifest.output]: fetch,
      },
    );
    const result = new Float32Array(rows);
    const last = m.classes - 1;
    for (let i = 0; i < rows; i++) result[i] = buf[i * m.classes + last]!;
    return result;
  } finally {
    m.outputs.push(buf);
  }
}

/** Reads, checks and loads a model; throws FS_ERR_MODEL_LOAD / FS_ERR_MODEL_MISMATCH naming the problem. */
async function load(manifestPath: string, opts: ModelRunnerOptions): Promise<Loaded> {
  const manifest = readManifest(manifestPath);
  const why = mismatch(manifest, opts);
  if (why) fail('MODEL_MISMATCH', `${manifest.name}@${manifest.version}: ${why}`);

  const onnxPath = resolve(dirname(manifestPath), manifest.onnx);
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
    session = await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  } catch (e) {
    fail('MODEL_LOAD', `${onnxPath} is not a loadable ONNX model: ${(e as Error).message}`, undefined, e);
  }
  const input = session.inputNames[0];
  if (!input || !session.outputNames.includes(manifest.output)) {
    await session.release();
    fail(
      'MODEL_MISMATCH',
      `${onnxPath} has outputs ${session.outputNames.join(', ')}; the manifest names ${manifest.output}`,
    );
  }
  const m: Loaded = {
    manifestPath,
    manifest,
    version: `${manifest.name}@${manifest.version}`,
    session,
    input,
    classes: 2,
    outputs: [],
    inflight: 0,
    retired: false,
  };
  const cols = opts.featureNames.length;
  // Prove the model takes this width now, not on the first live batch.
  try {
    const zero = new Float32Array(cols);
    const plain = await session.run({ [input]: new ort.Tensor('float32', zero, [1, cols]) }, [
      manifest.output,
    ]);
    m.classes = plain[manifest.output]!.data.length;
    plain[manifest.output]!.dispose();
    if (m.classes < 1 || m.classes > 2)
      fail('MODEL_MISMATCH', `${onnxPath} gives ${m.classes} columns in ${manifest.output}, not 1 or 2`);
    const probe = await runOn(m, cols, zero, 1);
    if (!(probe[0]! >= 0 && probe[0]! <= 1))
      fail('MODEL_MISMATCH', `${onnxPath} returned ${probe[0]} for a zero row, not a probability`);
  } catch (e) {
    await release(m);
    if (isFraudstreamError(e)) throw e;
    fail(
      'MODEL_MISMATCH',
      `${onnxPath} does not accept a [1, ${cols}] float input: ${(e as Error).message}`,
      undefined,
      e,
    );
  }
  return m;
}

const closedError = () => new FraudstreamError(Errors.MODEL_LOAD, 'the model runner is closed');

export async function createModelRunner(opts: ModelRunnerOptions): Promise<ModelRunner> {
  const cols = opts.featureNames.length;
  let current = await load(opts.manifestPath, opts);
  let swaps: Promise<unknown> = Promise.resolve();
  let closed = false;

  const retire = async (m: Loaded) => {
    m.retired = true;
    if (m.inflight === 0) await release(m);
  };

  return {
    get manifest() {
      return current.manifest;
    },
    get version() {
      return current.version;
    },
    get manifestPath() {
      return current.manifestPath;
    },
    score(matrix, rows) {
      if (closed) return Promise.reject(closedError());
      const m = current;
      m.inflight++;
      const done = () => {
        m.inflight--;
        if (m.retired && m.inflight === 0) void release(m);
      };
      // No async wrapper of our own: at batch 1 every extra promise hop shows in the bench.
      return runOn(m, cols, matrix, rows).then(
        (scores) => {
          done();
          return { scores, version: m.version, manifest: m.manifest };
        },
        (e: unknown) => {
          done();
          throw e;
        },
      );
    },
    swap(manifestPath) {
      const next = swaps.then(async () => {
        if (closed) fail('MODEL_LOAD', 'the model runner is closed');
        const loaded = await load(manifestPath ?? current.manifestPath, opts);
        const old = current;
        current = loaded;
        await retire(old);
        return { model_version: loaded.version };
      });
      swaps = next.catch(() => undefined);
      return next;
    },
    async close() {
      if (closed) return;
      closed = true;
      await swaps;
      await retire(current);
    },
  };
}
