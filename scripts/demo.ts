/**
 * The local demo (make demo): on a running stack, creates the topics, starts the scorer, streams a
 * simulated history at a steady rate, shows live progress, and on Ctrl-C or after DEMO_SECONDS prints a
 * summary and stops what it started. It prints the analyst page's address and key; flagged decisions
 * fill its queue as the demo runs. Settings: DEMO_SECONDS, DEMO_RATE, DEMO_ACCOUNTS, DEMO_DAYS,
 * DEMO_SEED, DEMO_API_KEY (README, "Environment variables").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { projectRoot } from '../lib/paths.js';
import { clearNamespace } from '../replay/index.js';
import { createSchemas, RecordNames, type Decision } from '../schemas/index.js';
import { ensureTopics } from '../scorer/index.js';

const env = process.env;
const int = (name: string, dflt: number): number => {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`demo: ${name}=${v} is not a non-negative number`);
    process.exit(2);
  }
  return n;
};

const seconds = int('DEMO_SECONDS', 0);
const rate = int('DEMO_RATE', 400);
const accounts = int('DEMO_ACCOUNTS', 2000);
const days = int('DEMO_DAYS', 14);
const run = Date.now().toString(36);
const seed = int('DEMO_SEED', Date.now() % 1_000_000);
const kafkaPort = env.FRAUDSTREAM_KAFKA_PORT ?? '19092';
const redisPort = env.FRAUDSTREAM_REDIS_PORT ?? '16379';
const httpPort = env.FRAUDSTREAM_HTTP_PORT ?? '18080';
const brokers = env.FRAUDSTREAM_KAFKA_BROKERS ?? `127.0.0.1:${kafkaPort}`;
const redisUrl = env.FRAUDSTREAM_REDIS_URL ?? `redis://127.0.0.1:${redisPort}`;
const topics = {
  payments: 'payments',
  withdrawals: 'withdrawals',
  decisions: 'decisions',
  deadLetter: 'dead-letter',
};
const namespace = `demo-${run}`;
// A fresh analyst key per run, for the review page (README: "The analyst page").
const analystKey = env.DEMO_API_KEY ?? `demo-${randomBytes(12).toString('hex')}`;
const root = projectRoot();
const logDir = join(root, '.stack', 'demo');
mkdirSync(logDir, { recursive: true });

function child(name: string, args: string[]): ChildProcess & { done: Promise<number> } {
  const log = createWriteStream(join(logDir, `${name}.log`));
  const p = spawn(process.execPath, [join(root, 'bin', 'fraudstream.js'), ...args], {
    env: {
      ...env,
      FRAUDSTREAM_KAFKA_BROKERS: brokers,
      FRAUDSTREAM_REDIS_URL: redisUrl,
      FRAUDSTREAM_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  p.stdout!.pipe(log);
  p.stderr!.pipe(log);
  const done = new Promise<number>((res) => p.on('exit', (code, sig) => res(code ?? (sig ? 128 : 1))));
  return Object.assign(p, { done });
}

const pct = (sorted: number[], q: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN;
const ms = (us: number) => (Number.isFinite(us) ? `${(us / 1000).toFixed(2)} ms` : 'n/a');

async function main(): Promise<number> {
  const schemas = createSchemas();
  const kafka = new Kafka({ clientId: 'fraudstream-demo', brokers: [brokers], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, Object.values(topics).concat('labels'), 3);
  await admin.disconnect();

  const url = `http://127.0.0.1:${httpPort}`;
  const scorer = child('scorer', [
    'score',
    '--group-id',
    `demo-${run}`,
    '--no-from-beginning',
    '--feature-prefix',
    `${namespace}:`,
    '--http-port',
    httpPort,
    '--api-keys',
    `analyst:demo:${analystKey},admin:demo-admin:${analystKey}-admin`,
  ]);
  let stopping = false;
  const ready = async () => {
    for (let i = 0; i < 240; i++) {
      if (scorer.exitCode !== null) return false;
      const ok = await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return true;
      await sleep(250);
    }
    return false;
  };
  if (!(await ready())) {
    console.error(`demo: the scorer did not become ready; see ${join(logDir, 'scorer.log')}`);
    scorer.kill('SIGTERM');
    await scorer.done;
    return 1;
  }

  // Watch decisions and dead letters from now on.
  const watch = kafka.consumer({ groupId: `demo-watch-${run}`, maxWaitTimeInMs: 100 });
  await watch.connect();
  await watch.subscribe({ topics: [topics.decisions, topics.deadLetter], fromBeginning: false });
  const latencies: number[] = [];
  /** Latencies of decisions that arrived after the first 5 s (JIT and connection warm-up). */
  const steady: number[] = [];
  let warmUntil = Infinity;
  let approve = 0;
  let flag = 0;
  let dead = 0;
  const types = { PAYMENT: 0, WITHDRAWAL: 0 };
  let joined = false;
  watch.on(watch.events.GROUP_JOIN, () => (joined = true));
  await watch.run({
    eachMessage: async ({ topic, message }) => {
      if (topic === topics.deadLetter) {
        dead++;
        return;
      }
      const d = schemas.codec.decode<Decision>(message.value!, [RecordNames.Decision]).value;
      if (!d.event_id) return;
      latencies.push(d.latency_us);
      if (performance.now() > warmUntil) steady.push(d.latency_us);
      types[d.event_type]++;
      if (d.outcome === 'FLAG') flag++;
      else approve++;
    },
  });
  for (let i = 0; i < 100 && !joined; i++) await sleep(100);

  console.log(
    `demo: scorer ready at ${url} (/metrics, /readyz); streaming ${rate} events/s from ${accounts} accounts (seed ${seed})`,
  );
  console.log(`demo: review queue (analyst page) at ${url}/review/  API key: ${analystKey}`);
  console.log(`demo: ${seconds ? `running for ${seconds} s` : 'press Ctrl-C to stop'}; logs in ${logDir}`);
  const sim = child('simulate', [
    'simulate',
    '--live',
    '--rate',
    String(rate),
    '--accounts',
    String(accounts),
    '--days',
    String(days),
    '--seed',
    String(seed),
  ]);
  let simSent = -1;
  sim.stdout!.on('data', (b: Buffer) => {
    const m = /"sent":(\d+)/.exec(b.toString());
    if (m) simSent = Number(m[1]);
  });

  const started = performance.now();
  warmUntil = started + 5000;
  const stop = new Promise<string>((res) => {
    process.once('SIGINT', () => res('Ctrl-C'));
    process.once('SIGTERM', () => res('SIGTERM'));
    if (seconds > 0) setTimeout(() => res(`${seconds} s elapsed`), seconds * 1000).unref();
    void sim.done.then(() => res('the simulated history ended'));
  });
  const tty = process.stdout.isTTY;
  let lastCount = 0;
  let lastT = started;
  let tick = 0;
  const progress = setInterval(() => {
    const now = performance.now();
    const count = approve + flag;
    const evs = ((count - lastCount) * 1000) / (now - lastT);
    lastCount = count;
    lastT = now;
    const recent = latencies.slice(-20_000).sort((a, b) => a - b);
    const line =
      `[${((now - started) / 1000).toFixed(0).padStart(4)} s] ${evs.toFixed(0).padStart(6)} events/s | ` +
      `decided ${count} | flagged ${count ? ((100 * flag) / count).toFixed(2) : '0.00'}% | ` +
      `p50 ${ms(pct(recent, 0.5))} p99 ${ms(pct(recent, 0.99))} | dead-letter ${dead} | cases ${flag}`;
    if (tty) process.stdout.write(`\r${line}\x1b[K`);
    else if (++tick % 5 === 0) console.log(line);
  }, 1000);

  const why = await stop;
  stopping = true;
  clearInterval(progress);
  if (tty) process.stdout.write('\n');
  console.log(`demo: stopping (${why})`);
  if (sim.exitCode === null) sim.kill('SIGTERM');
  await sim.done;
  const producingSeconds = (performance.now() - started) / 1000;
  // Let the scorer finish what was produced.
  for (let still = 0, prev = -1; still < 20 && (simSent < 0 || approve + flag < simSent);) {
    await sleep(250);
    const c = approve + flag;
    still = c === prev ? still + 1 : 0;
    prev = c;
  }
  const queue = await fetch(`${url}/v1/cases?status=OPEN&limit=1`, {
    headers: { authorization: `Bearer ${analystKey}` },
  }).then(
    async (r) => ((await r.json()) as { total?: number }).total ?? -1,
    () => -1,
  );
  scorer.kill('SIGTERM');
  const scorerCode = await scorer.done;
  await watch.disconnect();
  const redis = new Redis(redisUrl, { lazyConnect: true });
  await redis.connect();
  await clearNamespace(redis, namespace);
  redis.disconnect();

  const all = latencies.sort((a, b) => a - b);
  const n = approve + flag;
  console.log('');
  console.log('== fraudstream demo summary ==');
  console.log(`events produced     ${simSent < 0 ? 'unknown' : simSent}`);
  console.log(`decisions           ${n} (payments ${types.PAYMENT}, withdrawals ${types.WITHDRAWAL})`);
  console.log(
    `outcomes            APPROVE ${approve}, FLAG ${flag} (flag rate ${n ? ((100 * flag) / n).toFixed(2) : '0.00'}%)`,
  );
  console.log(`dead-letter         ${dead}`);
  console.log(`review queue        ${queue < 0 ? 'unknown' : `${queue} open cases`} (${url}/review/)`);
  console.log(
    `throughput          ${(n / producingSeconds).toFixed(0)} events/s over ${producingSeconds.toFixed(1)} s (offered ${rate}/s)`,
  );
  console.log(
    `latency read->ready p50 ${ms(pct(all, 0.5))}, p95 ${ms(pct(all, 0.95))}, p99 ${ms(pct(all, 0.99))}, max ${ms(all[all.length - 1] ?? NaN)}`,
  );
  const st = steady.sort((a, b) => a - b);
  console.log(
    `  after 5 s warm-up  p50 ${ms(pct(st, 0.5))}, p95 ${ms(pct(st, 0.95))}, p99 ${ms(pct(st, 0.99))} (${st.length} decisions)`,
  );
  console.log(
    `scorer exit         ${scorerCode === 0 ? 'clean (drained and committed)' : `code ${scorerCode}; see ${join(logDir, 'scorer.log')}`}`,
  );
  void stopping;
  return scorerCode === 0 && n > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('demo failed:', err);
    process.exit(1);
  },
);
