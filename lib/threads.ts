/**
 * What the project's worker threads share: starting one from its compiled JavaScript or, when the
 * caller runs from the TypeScript sources (vitest), through tsx; and errors sent across as plain data
 * and rebuilt on the other side as the errors they were (same code, message and detail), so a caller
 * handles a worker's failure as it would its own.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { Errors, FraudstreamError, isFraudstreamError, type ErrorSpec } from './errors.js';

/**
 * Starts the worker `name` (a module beside the caller, without extension): the .js next to it when
 * the caller is compiled (dist/: the CLI, benchmarks), or the .ts loaded through tsx when the caller
 * runs from the sources, as the tests load everything else (a worker takes no `--import` hooks).
 */
export function startWorker(
  callerUrl: string,
  name: string,
  workerData: unknown,
  resourceLimits?: ResourceLimits,
): Worker {
  const limits = resourceLimits ? { resourceLimits } : {};
  if (!callerUrl.endsWith('.ts'))
    return new Worker(new URL(`./${name}.js`, callerUrl), { workerData, ...limits });
  const ts = new URL(`./${name}.ts`, callerUrl).href;
  const api = pathToFileURL(createRequire(callerUrl).resolve('tsx/esm/api')).href.replace(/\.cjs$/, '.mjs');
  const boot = `import(${JSON.stringify(api)}).then(({ tsImport }) => tsImport(${JSON.stringify(ts)}, ${JSON.stringify(callerUrl)}))`;
  return new Worker(boot, { eval: true, workerData, ...limits });
}

/** An error as data a thread can post. */
export interface WireError {
  code?: string;
  message: string;
  stack?: string;
  detail?: Record<string, unknown>;
}

export function toWire(e: unknown): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  let detail: Record<string, unknown> | undefined;
  if (isFraudstreamError(err) && err.detail) {
    try {
      detail = structuredClone(err.detail);
    } catch {
      detail = undefined;
    }
  }
  return {
    message: err.message,
    ...(isFraudstreamError(err) ? { code: err.code } : {}),
    ...(err.stack ? { stack: err.stack } : {}),
    ...(detail ? { detail } : {}),
  };
}

/** The error `w` was (a FraudstreamError of the same code when it was one); `where` names the thread. */
export function fromWire(w: WireError, where: string): Error {
  const spec = Object.values(Errors).find((s: ErrorSpec) => s.code === w.code);
  const e = spec ? new FraudstreamError(spec, undefined, w.detail) : new Error(w.message);
  e.message = w.message;
  if (w.stack) e.stack = `${w.message}\n    (in ${where})\n${w.stack.split('\n').slice(1).join('\n')}`;
  return e;
}
