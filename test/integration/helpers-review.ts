import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Consumer } from 'kafkajs';
import { projectRoot } from '../../lib/paths.js';
import { kafka, uniq } from './stack.js';

/** A temp copy of the default model whose manifest carries feature_norms (mean 0, std 1: z = value). */
export function manifestWithNorms(): string {
  const src = join(projectRoot(), 'models', 'default');
  const d = mkdtempSync(join(tmpdir(), 'fs-norms-'));
  const m = JSON.parse(readFileSync(join(src, 'manifest.json'), 'utf8')) as {
    onnx: string;
    feature_names: string[];
  };
  copyFileSync(join(src, m.onnx), join(d, m.onnx));
  const n = m.feature_names.length;
  writeFileSync(
    join(d, 'manifest.json'),
    JSON.stringify({ ...m, feature_norms: { mean: new Array(n).fill(0), std: new Array(n).fill(1) } }),
  );
  return join(d, 'manifest.json');
}

export function writePolicy(policy: object): string {
  const p = join(mkdtempSync(join(tmpdir(), 'fs-policy-')), 'policy.json');
  writeFileSync(p, JSON.stringify(policy, null, 2));
  return p;
}

/** Collects every record of a topic from the beginning, until stopped. */
export async function collect(topic: string): Promise<{ values: Buffer[]; stop(): Promise<void> }> {
  const c: Consumer = kafka().consumer({ groupId: uniq('collect'), maxWaitTimeInMs: 100 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  const values: Buffer[] = [];
  await c.run({ eachMessage: async ({ message }) => void values.push(message.value!) });
  return { values, stop: () => c.disconnect() };
}

export async function until<T>(f: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}
