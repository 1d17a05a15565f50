/**
 * Inline scoring benchmark (make bench): POST /v1/score at 1,000 requests/s from autocannon, a real HTTP
 * load generator, against the full scoring service (features in Redis, the ONNX model, the policy, the
 * decision produced to Kafka), beside a bare route on the same fastify server returning a constant at
 * the same rate. Rows: p50/p99 latency and achieved rate, with the bare route as baseline.
 */
import autocannon from 'autocannon';
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { createLogger } from '../lib/logger.js';
import { projectRoot } from '../lib/paths.js';
import { clearNamespace } from '../replay/index.js';
import { ensureTopics, startScoringService } from '../scorer/index.js';
import { createSimulation } from '../simulator/index.js';
import { writeRows, type BenchRow } from './results.js';

const env = process.env;
const BROKERS = (env.FRAUDSTREAM_KAFKA_BROKERS ?? `127.0.0.1:${env.FRAUDSTREAM_KAFKA_PORT ?? '19092'}`).split(
  ',',
);
const REDIS_URL = env.FRAUDSTREAM_REDIS_URL ?? `redis://127.0.0.1:${env.FRAUDSTREAM_REDIS_PORT ?? '16379'}`;
const RATE = 1000;
const SECONDS = 15;

async function load(url: string, bodies: (() => string) | undefined, seconds: number) {
  return autocannon({
    url,
    method: bodies ? 'POST' : 'GET',
    connections: 16,
    overallRate: RATE,
    duration: seconds,
    headers: { 'content-type': 'application/json' },
    ...(bodies ? { requests: [{ setupRequest: (req) => ({ ...req, body: bodies() }) }] } : {}),
  });
}

/** Child process: the scoring service plus the bare route; the load generator runs in the parent. */
async function serve(run: string) {
  const topics = {
    payments: `${run}-payments`,
    withdrawals: `${run}-withdrawals`,
    labels: `${run}-labels`,
    decisions: `${run}-decisions`,
    deadLetter: `${run}-dlq`,
  };
  const kafka = new Kafka({ clientId: 'bench-inline', brokers: BROKERS, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, Object.values(topics), 3);
  const service = await startScoringService(
    {
      brokers: BROKERS,
      groupId: `${run}-scorer`,
      topics,
      fromBeginning: true,
      maxBatch: 512,
      redisUrl: REDIS_URL,
      featurePrefix: `${run}:`,
      modelManifest: join(projectRoot(), 'models', 'default', 'manifest.json'),
      policyVersion: 'bench',
      includeFeatures: true,
      http: { host: '127.0.0.1', port: 0 },
      review: false,
      extraRoutes: (app) => app.get('/bench/constant', async () => ({ outcome: 'APPROVE', score: 0.01 })),
    },
    createLogger({ level: 'warn', name: 'bench-inline' }),
  );
  process.send!({ url: service.url });
  await new Promise((res) => process.once('message', res));
  await service.stop();
  await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => undefined);
  await admin.disconnect();
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  await clearNamespace(redis, run);
  redis.disconnect();
}

async function main() {
  const run = `bench-inline-${Date.now().toString(36)}-${randomBytes(2).toString('hex')}`;
  const child = fork(fileURLToPath(import.meta.url), ['serve', run], { stdio: 'inherit' });
  const exited = new Promise<number>((res) => child.on('exit', (code) => res(code ?? 1)));
  const url = await new Promise<string>((res, rej) => {
    child.once('message', (m) => res((m as { url: string }).url));
    child.once('exit', () => rej(new Error('the scoring service did not start')));
  });
  // Real simulated traffic: 60 days of 3,000 accounts, each request a fresh event in time order.
  const events = [
    ...createSimulation({
      seed: 11,
      accounts: 3000,
      days: 60,
      start: Date.now() - 61 * 86_400_000,
      fraudRate: 0.002,
    }).events(),
  ];
  let next = 0;
  const body = () => {
    const e = events[next++ % events.length]!;
    return JSON.stringify({ type: e.type, event: { ...e.event, event_id: `${run}-${next}` } });
  };
  const rows: BenchRow[] = [];
  try {
    await load(`${url}/v1/score`, body, 3); // warm-up: JIT, connections, Redis scripts
    const bare = await load(`${url}/bench/constant`, undefined, SECONDS);
    const score = await load(`${url}/v1/score`, body, SECONDS);
    for (const [r, what] of [
      [bare, 'bare route'],
      [score, 'POST /v1/score'],
    ] as const) {
      if (r.errors || r.non2xx || r.timeouts)
        throw new Error(`${what}: ${r.errors} errors, ${r.non2xx} non-2xx, ${r.timeouts} timeouts`);
    }
    const row = (name: string, value: number, baseline: number, unit: string) =>
      rows.push({ name, value, unit, baseline, ratio: value / baseline });
    row(
      `inline scoring p99 at ${RATE} req/s (bare fastify route as baseline)`,
      score.latency.p99,
      bare.latency.p99,
      'ms',
    );
    row(`inline scoring p50 at ${RATE} req/s`, score.latency.p50, bare.latency.p50, 'ms');
    row(
      `inline scoring achieved rate (offered ${RATE} req/s)`,
      score.requests.average,
      bare.requests.average,
      'req/s',
    );
    writeRows('inline', rows);
    console.log(
      `\ninline: ${score.requests.total} scored requests, p99 ${score.latency.p99} ms (target <= 5 ms)`,
    );
  } finally {
    child.send('stop');
    await exited;
  }
}

if (process.argv[2] === 'serve')
  serve(process.argv[3]!).catch((e) => {
    console.error(e);
    process.exit(1);
  });
else
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
