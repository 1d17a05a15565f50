import type { Producer } from 'kafkajs';
import type { Redis } from 'ioredis';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../lib/logger.js';
import { isFraudstreamError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';
import type { ModelManifest } from '../../models/index.js';
import { clearNamespace } from '../../replay/index.js';
import { createSchemas, RecordNames, type Decision } from '../../schemas/index.js';
import { startScoringService, type ScoringService } from '../../scorer/index.js';
import { createSimulation, type SimEvent } from '../../simulator/index.js';
import {
  BROKERS,
  openRun,
  readTopic,
  REDIS_URL,
  type RunStack,
  testServiceConfig,
  testTopics,
  uniq,
  waitForCommitted,
} from './stack.js';

const schemas = createSchemas();
const run = uniq('swap');
const topics = testTopics(run);
const defaultDir = join(projectRoot(), 'models', 'default');

/** The default model under another version, in a folder of its own; returns its manifest path. */
function modelVersion(version: string, dir = mkdtempSync(join(tmpdir(), 'fs-swap-'))): string {
  const m = JSON.parse(readFileSync(join(defaultDir, 'manifest.json'), 'utf8')) as ModelManifest;
  m.version = version;
  copyFileSync(join(defaultDir, m.onnx), join(dir, m.onnx));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
  return join(dir, 'manifest.json');
}

const encode = (e: SimEvent) =>
  schemas.codec.encode(
    e.type === 'PAYMENT' ? RecordNames.PaymentEvent : RecordNames.WithdrawalEvent,
    e.event,
  );

/** Every decision on the topic, once the scorer has committed past every input record. */
async function readDecisions(): Promise<Decision[]> {
  await waitForCommitted(`${run}-scorer`, [topics.payments, topics.withdrawals], 90_000);
  return (await readTopic(topics.decisions)).map(
    (m) => schemas.codec.decode<Decision>(m.value, [RecordNames.Decision]).value,
  );
}

describe('model hot swap on the real Kafka scorer', () => {
  let producer: Producer;
  let r: Redis;
  let stack: RunStack;
  let service: ScoringService | undefined;
  const events: SimEvent[] = [];

  beforeAll(async () => {
    stack = await openRun(run);
    ({ producer, redis: r } = stack);
    const sim = createSimulation({
      seed: 9,
      accounts: 200,
      days: 3,
      start: Date.UTC(2026, 0, 1),
      fraudRate: 0.02,
    });
    for (const e of sim.events()) {
      events.push(e);
      if (events.length === 1200) break;
    }
  });

  afterAll(async () => {
    await service?.stop();
    await stack.close();
  });

  it('swaps while events flow: every event decided exactly once, each by one model, with the challenger beside it', async () => {
    const shadow = modelVersion('shadow');
    service = await startScoringService(
      testServiceConfig(run, {
        maxBatch: 16,
        modelManifest: modelVersion('1'),
        challengerManifest: shadow,
        includeFeatures: false,
      }),
      createSilentLogger(),
    );
    const versions = ['2', '3', '4', '5', '6', '7', '8'].map((v) => modelVersion(v));
    const broken = mkdtempSync(join(tmpdir(), 'fs-swap-'));
    writeFileSync(join(broken, 'manifest.json'), '{"name": "half a manifest"');

    // Produce in small chunks and swap between (and during) them.
    let swaps = 0;
    let failed = '';
    const swapping = (async () => {
      for (const [i, path] of versions.entries()) {
        await new Promise((res) => setTimeout(res, 150));
        await service!.reloadModel(path);
        swaps++;
        if (i === 3) {
          await service!.reloadModel(join(broken, 'manifest.json')).catch((e: unknown) => {
            failed = isFraudstreamError(e) ? `${e.code}: ${e.message}` : String(e);
          });
        }
      }
    })();
    for (let i = 0; i < events.length; i += 40) {
      const chunk = events.slice(i, i + 40);
      const messages = (type: SimEvent['type']) =>
        chunk.filter((e) => e.type === type).map((e) => ({ key: e.event.account_id, value: encode(e) }));
      await producer.sendBatch({
        topicMessages: [
          { topic: topics.payments, messages: messages('PAYMENT') },
          { topic: topics.withdrawals, messages: messages('WITHDRAWAL') },
        ].filter((t) => t.messages.length > 0),
      });
      await new Promise((res) => setTimeout(res, 30));
    }
    await swapping;
    expect(swaps).toBe(versions.length);
    expect(failed).toMatch(/^FS_ERR_MODEL_LOAD: .*not valid JSON/);
    expect(service.model.version).toBe('fraudstream-lgbm@8');

    const decisions = await readDecisions();
    expect(decisions).toHaveLength(events.length);
    const ids = decisions.map((d) => d.event_id).sort();
    expect(new Set(ids).size).toBe(events.length);
    expect(ids).toEqual(events.map((e) => e.event.event_id).sort());
    const seen = new Set(decisions.map((d) => d.model_version));
    // Decided by several of the models the swaps put in, each decision naming one of them.
    expect(seen.size).toBeGreaterThanOrEqual(2);
    for (const v of seen) expect(v).toMatch(/^fraudstream-lgbm@[1-8]$/);
    for (const d of decisions) {
      expect(d.challenger_version).toBe('fraudstream-lgbm@shadow');
      // Same ONNX as the champion: the shadow score is the served score.
      expect(d.challenger_score).toBeCloseTo(d.score, 6);
    }
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toContain(
      `fraudstream_challenger_score_count{model_version="fraudstream-lgbm@shadow"} ${events.length}`,
    );
    expect(metrics).not.toMatch(/^fraudstream_challenger_disagreements_total\{[^}]*\} [1-9]/m);
  });

  it('fraudstream score swaps on SIGHUP, and keeps serving the old model when the new one is bad', async () => {
    await service?.stop();
    service = undefined;
    const dir = mkdtempSync(join(tmpdir(), 'fs-hup-'));
    const manifest = modelVersion('1', dir);
    const child = spawn(
      process.execPath,
      [
        join(projectRoot(), 'bin', 'fraudstream.js'),
        'score',
        ...['--brokers', BROKERS.join(','), '--redis-url', REDIS_URL],
        ...['--topic-payments', topics.payments, '--topic-withdrawals', topics.withdrawals],
        ...['--topic-labels', topics.labels, '--topic-decisions', topics.decisions],
        ...['--topic-dead-letter', topics.deadLetter, '--group-id', `${run}-hup`],
        ...['--feature-prefix', `${run}-hup:`, '--http-port', '0', '--model', manifest],
        ...['--from-beginning', 'false'],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const waitFor = async (re: RegExp) => {
      const deadline = Date.now() + 30_000;
      while (!re.test(stderr) && Date.now() < deadline && child.exitCode === null && !child.signalCode)
        await new Promise((res) => setTimeout(res, 100));
      expect(child.signalCode, stderr.slice(-2000)).toBeNull();
      expect(re.test(stderr), stderr.slice(-4000)).toBe(true);
    };
    // Sent as early as the service can take it: a SIGHUP during start-up must not kill the process.
    await waitFor(/"msg":"scoring service listening"/);
    child.kill('SIGHUP');
    await waitFor(/"msg":"scoring service up/);
    await waitFor(/"to":"fraudstream-lgbm@1".*"msg":"model swapped"/);

    modelVersion('2', dir); // replace the files in place, then signal
    child.kill('SIGHUP');
    await waitFor(/"to":"fraudstream-lgbm@2".*"msg":"model swapped"/);

    writeFileSync(manifest, JSON.stringify({ name: 'x', version: '3' }));
    child.kill('SIGHUP');
    await waitFor(/model swap failed/);
    const failure = stderr.split('\n').find((l) => l.includes('model swap failed'))!;
    expect(failure).toContain('"code":"FS_ERR_MODEL_LOAD"');
    expect(failure).toContain('"serving":"fraudstream-lgbm@2"');
    expect(failure).toContain('onnx_sha256 must be a non-empty string');

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await clearNamespace(r, `${run}-hup`);
  });
});
