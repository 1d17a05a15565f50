/**
 * Inline scoring benchmark (make bench): POST /v1/score at 1,000 requests/s against the full scoring
 * service (features in Redis, the ONNX model, the policy, the decision produced to Kafka and
 * acknowledged), beside a bare route on the same fastify server returning a constant at the same rate.
 *
 * The load is open-loop and evenly paced: loadtest (`requestsPerSecond`) sends a request every
 * millisecond whether or not earlier ones have answered, as independent clients do, and opens another
 * keep-alive connection when all are busy. autocannon's rate limit is not that: each connection sends
 * back to back until it has used its share of the second, then waits for the next second
 * (mcollina/autocannon#174), so 16 connections at 1,000 req/s put most of each second's requests into
 * its first ~400 ms at ~3,000 req/s with 16 in flight, and the p99 it reports is that burst's. It is
 * kept as a second, labelled row (closed-loop bursts), beside its own bare baseline.
 *
 * The load generator runs in this process, the service in a forked child; this process keeps only the
 * request bodies it needs, so its own garbage collection stays small.
 * Rows: p50/p99 latency, achieved rate and the service process's CPU time per request, each with the bare
 * route as baseline; the same paced load while the service's Kafka scorer consumes FEED_RATE events/s
 * fed by a third process (mixed traffic, as in production: baseline the run without); and the floor
 * under the target: the p99 of the Kafka acknowledgement an answer waits for, measured alone at the
 * same rate (bareAck).
 */
import autocannon from 'autocannon';
import { fork } from 'node:child_process';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import * as loadtest from 'loadtest';
import { Redis } from 'ioredis';
import { createLogger } from '../lib/logger.js';
import { projectRoot } from '../lib/paths.js';
import { clearNamespace } from '../replay/index.js';
import { ensureTopics, SCORER_PRODUCER_CONFIG, startScoringService } from '../scorer/index.js';
import { createSchemas } from '../schemas/index.js';
import { createSimulation, produceLive } from '../simulator/index.js';
import { writeRows, type BenchRow } from './results.js';

const env = process.env;
const BROKERS = (env.FRAUDSTREAM_KAFKA_BROKERS ?? `127.0.0.1:${env.FRAUDSTREAM_KAFKA_PORT ?? '19092'}`).split(
  ',',
);
const REDIS_URL = env.FRAUDSTREAM_REDIS_URL ?? `redis://127.0.0.1:${env.FRAUDSTREAM_REDIS_PORT ?? '16379'}`;
const RATE = 1000;
const SECONDS = 15;
const WARMUP_SECONDS = 3;
/** Events per second produced to the scorer's input topics during the mixed-traffic run. */
const FEED_RATE = 2000;

interface Measured {
  p50: number;
  p99: number;
  rate: number;
  problems: number;
  /** The service process's CPU time per answered request (ms), and its event-loop utilisation. */
  cpuMsPerRequest?: number;
  elu?: number;
  gc?: GcStats;
}

/** The service's GC pauses over a run: young-generation scavenges and full mark-compacts. */
interface GcStats {
  scavenges: number;
  scavengeMs: number;
  markCompacts: number;
  markCompactMs: number;
  maxPauseMs: number;
}

/** loadtest 8's promise API (its bundled typings describe the older callback one). */
type LoadTestFn = (o: Record<string, unknown>) => Promise<{
  totalRequests: number;
  totalErrors: number;
  effectiveRps: number;
  percentiles: Record<number, number>;
}>;
const loadTest = (loadtest as unknown as { loadTest: LoadTestFn }).loadTest;

/** Cumulative bucket counts of a Prometheus histogram by one label, from the service's /metrics. */
async function histogram(
  url: string,
  metric: string,
  label: string,
): Promise<Map<string, Map<number, number>>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, Map<number, number>>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}_bucket{`)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    const key = new RegExp(`${label}="([^"]+)"`).exec(line)?.[1] ?? '';
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    const m = out.get(key) ?? new Map<number, number>();
    m.set(bound, Number(line.slice(line.lastIndexOf(' ') + 1)));
    out.set(key, m);
  }
  return out;
}

/**
 * The q-quantile of what a histogram counted between two scrapes, as the upper bound of the bucket it
 * falls in (ms): coarse, but it says where an answer's time goes.
 */
function bucketQuantile(
  before: Map<number, number> | undefined,
  after: Map<number, number>,
  q: number,
): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = after.get(Infinity)! - (before?.get(Infinity) ?? 0);
  for (const b of bounds) if (after.get(b)! - (before?.get(b) ?? 0) >= q * total) return b * 1000;
  return Infinity;
}

/** Open-loop: RATE requests/s evenly spaced, whatever the answers' latency. */
async function paced(url: string, body: (() => string) | undefined, seconds: number): Promise<Measured> {
  const r = await loadTest({
    url,
    method: body ? 'POST' : 'GET',
    requestsPerSecond: RATE,
    maxSeconds: seconds,
    agentKeepAlive: true,
    quiet: true,
    ...(body ? { contentType: 'application/json', body } : {}),
  });
  return { p50: r.percentiles[50]!, p99: r.percentiles[99]!, rate: r.effectiveRps, problems: r.totalErrors };
}

/** Closed-loop bursts: autocannon, 16 connections, each with its share of RATE per second. */
async function bursts(url: string, body: (() => string) | undefined, seconds: number): Promise<Measured> {
  const r = await autocannon({
    url,
    method: body ? 'POST' : 'GET',
    connections: 16,
    overallRate: RATE,
    duration: seconds,
    headers: { 'content-type': 'application/json' },
    ...(body ? { requests: [{ setupRequest: (req) => ({ ...req, body: body() }) }] } : {}),
  });
  return {
    p50: r.latency.p50,
    p99: r.latency.p99,
    rate: r.requests.average,
    problems: r.errors + r.non2xx + r.timeouts,
  };
}

/**
 * The floor under the inline target: what the acknowledgement an inline answer waits for costs alone.
 * A producer configured as the service's (idempotent, acks=all, one request in flight) sends RATE
 * decision-sized messages per second, evenly paced, each message queued while a request is in flight
 * going in the next request, as the service's publisher does; latency is enqueue -> ack. No HTTP, no
 * features, no model.
 */
async function bareAck(run: string, seconds: number): Promise<{ p50: number; p99: number }> {
  const kafka = new Kafka({ clientId: 'bench-inline-ack', brokers: BROKERS, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `${run}-ack-probe`;
  await ensureTopics(admin, [topic], 3);
  const producer = kafka.producer({ ...SCORER_PRODUCER_CONFIG });
  await producer.connect();
  const value = randomBytes(1000); // about a Decision with its feature vector
  const lat: number[] = [];
  let queued: { at: number; key: string }[] = [];
  let busy = false;
  let failed: unknown;
  const flush = () => {
    if (busy || failed !== undefined || !queued.length) return;
    busy = true;
    const batch = queued;
    queued = [];
    void producer.send({ topic, acks: -1, messages: batch.map((m) => ({ key: m.key, value })) }).then(
      () => {
        const now = performance.now();
        for (const m of batch) lat.push(now - m.at);
        busy = false;
        flush();
      },
      (err: unknown) => (failed = err),
    );
  };
  try {
    let sent = 0;
    const t0 = performance.now();
    await new Promise<void>((done) => {
      const tick = () => {
        const now = performance.now();
        const due = Math.min(RATE * seconds, Math.floor(((now - t0) * RATE) / 1000));
        for (; sent < due; sent++) queued.push({ at: now, key: `acct-${sent % 3000}` });
        flush();
        if (sent < RATE * seconds) setTimeout(tick, 1);
        else settle();
      };
      // Every message acknowledged (or a failure), within 30 s of the last one.
      const until = () => performance.now() - t0 > (seconds + 30) * 1000;
      const settle = () =>
        lat.length >= RATE * seconds || failed !== undefined || until() ? done() : setTimeout(settle, 10);
      tick();
    });
    if (failed !== undefined) throw new Error(`the bare acks=all probe failed: ${(failed as Error).message}`);
    if (lat.length < RATE * seconds)
      throw new Error(`the bare acks=all probe got ${lat.length} of ${RATE * seconds} acks`);
    lat.sort((a, b) => a - b);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
    return { p50: q(0.5), p99: q(0.99) };
  } finally {
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  }
}

/**
 * Child process: simulated payments and withdrawals produced to the scorer's input topics at FEED_RATE
 * (the simulator's live mode, what `make demo` feeds the scorer with) until told to stop, so inline
 * answers are measured while the Kafka scorer computes, checkpoints and produces beside them.
 */
async function feed(run: string) {
  const kafka = new Kafka({ clientId: 'bench-inline-feed', brokers: BROKERS, logLevel: logLevel.NOTHING });
  const ac = new AbortController();
  process.once('message', () => ac.abort());
  const { sent } = await produceLive({
    kafka,
    codec: createSchemas().codec,
    logger: createLogger({ level: 'warn', name: 'bench-inline-feed' }),
    topics: { payments: `${run}-payments`, withdrawals: `${run}-withdrawals` },
    sim: { seed: 12, accounts: 3000, days: 60, start: Date.now() - 61 * 86_400_000, fraudRate: 0.002 },
    rate: FEED_RATE,
    durationS: 0,
    signal: ac.signal,
  });
  process.send!({ sent });
}

/** Events of `topics` the consumer group has committed, over all partitions. */
async function committed(run: string, topics: string[]): Promise<number> {
  const admin = new Kafka({
    clientId: 'bench-inline-lag',
    brokers: BROKERS,
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    let n = 0;
    for (const t of await admin.fetchOffsets({ groupId: `${run}-scorer`, topics }))
      for (const p of t.partitions) n += Math.max(0, Number(p.offset));
    return n;
  } finally {
    await admin.disconnect();
  }
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
  // 'cpu' answers the process's CPU time (ms) and event-loop utilisation since the previous 'cpu'.
  let cpu = process.cpuUsage();
  let elu = performance.eventLoopUtilization();
  const fresh = (): GcStats => ({
    scavenges: 0,
    scavengeMs: 0,
    markCompacts: 0,
    markCompactMs: 0,
    maxPauseMs: 0,
  });
  let gc = fresh();
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        gc.scavenges++;
        gc.scavengeMs += e.duration;
      } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.markCompacts++;
        gc.markCompactMs += e.duration;
      }
      if (e.duration > gc.maxPauseMs) gc.maxPauseMs = e.duration;
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  for (;;) {
    const m = await new Promise((res) => process.once('message', res));
    if (m !== 'cpu') break;
    const used = process.cpuUsage(cpu);
    const loop = performance.eventLoopUtilization(elu);
    process.send!({ cpuMs: (used.user + used.system) / 1000, elu: loop.utilization, gc });
    cpu = process.cpuUsage();
    elu = performance.eventLoopUtilization();
    gc = fresh();
  }
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
  // Real simulated traffic (3,000 accounts), each request a fresh event in time order: the events of
  // the history's first day or so, as many as the runs send, and no more kept in memory.
  const needed = RATE * (WARMUP_SECONDS + 3 * SECONDS) * 1.2;
  const events: { type: string; event: object }[] = [];
  for (const e of createSimulation({
    seed: 11,
    accounts: 3000,
    days: 60,
    start: Date.now() - 61 * 86_400_000,
    fraudRate: 0.002,
  }).events()) {
    events.push({ type: e.type, event: e.event });
    if (events.length >= needed) break;
  }
  let next = 0;
  const body = () => {
    const e = events[next++ % events.length]!;
    return JSON.stringify({ type: e.type, event: { ...e.event, event_id: `${run}-${next}` } });
  };
  const rows: BenchRow[] = [];
  try {
    // The service's CPU over a run: what latency on a shared 2-core machine hides, and what it costs.
    const serviceCpu = () =>
      new Promise<{ cpuMs: number; elu: number; gc: GcStats }>((res) => {
        child.once('message', (m) => res(m as { cpuMs: number; elu: number; gc: GcStats }));
        child.send('cpu');
      });
    const withCpu = async (run: Promise<Measured>): Promise<Measured> => {
      await serviceCpu();
      const r = await run;
      const { cpuMs, elu, gc } = await serviceCpu();
      return { ...r, cpuMsPerRequest: cpuMs / (r.rate * SECONDS), elu, gc };
    };
    await paced(`${url}/v1/score`, body, WARMUP_SECONDS); // JIT, connections, Redis scripts
    // Where the paced answers' time went: the service's own phase histogram, scraped around the run.
    const PHASE = 'fraudstream_inline_phase_seconds';
    let phases: { decide: number; publish: number } | undefined;
    const phased = async (run: Promise<Measured>): Promise<Measured> => {
      const before = await histogram(url, PHASE, 'phase');
      const r = await run;
      const after = await histogram(url, PHASE, 'phase');
      const p99 = (k: string) => bucketQuantile(before.get(k), after.get(k)!, 0.99);
      phases = { decide: p99('decide'), publish: p99('publish') };
      return r;
    };
    const runs = [
      ['bare route, paced', await withCpu(paced(`${url}/bench/constant`, undefined, SECONDS))],
      ['POST /v1/score, paced', await phased(withCpu(paced(`${url}/v1/score`, body, SECONDS)))],
      ['bare route, bursts', await bursts(`${url}/bench/constant`, undefined, SECONDS)],
      ['POST /v1/score, bursts', await bursts(`${url}/v1/score`, body, SECONDS)],
    ] as const;
    for (const [what, r] of runs) if (r.problems) throw new Error(`${what}: ${r.problems} failed requests`);

    // Mixed traffic: the same paced inline load while the Kafka scorer in the same process consumes
    // FEED_RATE events/s (its batches, checkpoints and decisions share the event loop, Redis and the
    // broker with the answers).
    const inputTopics = [`${run}-payments`, `${run}-withdrawals`];
    const before = await committed(run, inputTopics);
    const feeder = fork(fileURLToPath(import.meta.url), ['feed', run], { stdio: 'inherit' });
    const fed = new Promise<number>((res, rej) => {
      feeder.once('message', (m) => res((m as { sent: number }).sent));
      feeder.once('exit', (code) => rej(new Error(`the Kafka feed exited (${code}) before reporting`)));
    });
    let mixed: Measured;
    let sent: number;
    try {
      await new Promise((r) => setTimeout(r, 2000)); // the consumer reaches the feed's rate
      mixed = await withCpu(paced(`${url}/v1/score`, body, SECONDS));
    } finally {
      feeder.send('stop');
      sent = await fed;
    }
    if (mixed.problems)
      throw new Error(`POST /v1/score with Kafka traffic: ${mixed.problems} failed requests`);
    // The scorer really consumed the feed: what it committed by now (it commits every second).
    await new Promise((r) => setTimeout(r, 3000));
    const consumed = (await committed(run, inputTopics)) - before;
    if (consumed < sent * 0.9)
      throw new Error(`the Kafka scorer committed ${consumed} of the ${sent} events fed to it`);

    const ack = await bareAck(run, SECONDS);
    const [[, bare], [, score], [, bareBurst], [, scoreBurst]] = runs;
    const row = (name: string, value: number, baseline: number, unit: string) =>
      // No ratio to a zero baseline (the bare route may see no mark-compact at all).
      rows.push({ name, value, unit, baseline, ratio: baseline > 0 ? value / baseline : null });
    row(
      `inline scoring p99 at ${RATE} req/s, open-loop paced (bare fastify route as baseline)`,
      score.p99,
      bare.p99,
      'ms',
    );
    row(`inline scoring p50 at ${RATE} req/s, open-loop paced`, score.p50, bare.p50, 'ms');
    row(`inline scoring achieved rate (offered ${RATE} req/s)`, score.rate, bare.rate, 'req/s');
    row(
      `inline scoring service CPU per request at ${RATE} req/s (process CPU time)`,
      score.cpuMsPerRequest!,
      bare.cpuMsPerRequest!,
      'ms',
    );
    const g = score.gc!;
    row(
      `inline scoring service GC pause per second at ${RATE} req/s (scavenges + mark-compacts; baseline: bare route)`,
      (g.scavengeMs + g.markCompactMs) / SECONDS,
      (bare.gc!.scavengeMs + bare.gc!.markCompactMs) / SECONDS,
      'ms/s',
    );
    row(
      `inline scoring service mark-compacts per second at ${RATE} req/s (baseline: bare route)`,
      g.markCompacts / SECONDS,
      bare.gc!.markCompacts / SECONDS,
      '1/s',
    );
    row(
      `inline scoring p99, closed-loop bursts (autocannon, 16 connections, ${RATE} req/s quota)`,
      scoreBurst.p99,
      bareBurst.p99,
      'ms',
    );
    row(
      `inline scoring p99 at ${RATE} req/s paced while the Kafka scorer consumes ${FEED_RATE} events/s (baseline: without Kafka traffic)`,
      mixed.p99,
      score.p99,
      'ms',
    );
    for (const [phase, what] of [
      ['decide', 'batch turn, features, model, policy'],
      ['publish', 'until Kafka acknowledged the decision'],
    ] as const) {
      row(
        `inline scoring ${phase} phase p99 at ${RATE} req/s paced (${what}; its histogram bucket's upper bound; baseline: the whole answer's p99)`,
        phases![phase],
        score.p99,
        'ms',
      );
    }
    rows.push({
      name: `Kafka acks=all produce p99 alone at ${RATE} msg/s, paced, one request in flight (the ack an inline answer waits for; baseline: its p50)`,
      value: ack.p99,
      unit: 'ms',
      baseline: ack.p50,
      ratio: ack.p99 / ack.p50,
    });
    writeRows('inline', rows);
    console.log(
      `\ninline: p99 ${score.p99} ms, p50 ${score.p50} ms at ${RATE} req/s paced (target <= 5 ms); ` +
        `decide phase p99 <= ${phases!.decide} ms, publish phase p99 <= ${phases!.publish} ms; ` +
        `bare route p99 ${bare.p99} ms; closed-loop bursts p99 ${scoreBurst.p99} ms (bare ${bareBurst.p99} ms); ` +
        `service CPU ${score.cpuMsPerRequest!.toFixed(3)} ms/request, event loop ${(score.elu! * 100).toFixed(0)} % busy; ` +
        `GC ${g.scavenges} scavenges ${g.scavengeMs.toFixed(0)} ms, ${g.markCompacts} mark-compacts ${g.markCompactMs.toFixed(0)} ms, longest pause ${g.maxPauseMs.toFixed(1)} ms in ${SECONDS} s; ` +
        `Kafka acks=all alone p99 ${ack.p99.toFixed(2)} ms (p50 ${ack.p50.toFixed(2)} ms); ` +
        `with the scorer consuming ${FEED_RATE} events/s (${consumed} of ${sent} fed, committed): p99 ${mixed.p99} ms, p50 ${mixed.p50} ms, ` +
        `event loop ${(mixed.elu! * 100).toFixed(0)} % busy`,
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
else if (process.argv[2] === 'feed')
  feed(process.argv[3]!).catch((e) => {
    console.error(e);
    process.exit(1);
  });
else
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
