import { execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFeatureEngine } from '../../features/index.js';
import { systemClock } from '../../lib/clock.js';
import { isFraudstreamError } from '../../lib/errors.js';
import { createSilentLogger } from '../../lib/logger.js';
import { projectRoot } from '../../lib/paths.js';
import { createModelRunner, type ModelRunner } from '../../models/index.js';
import { createPolicy } from '../../policy/index.js';
import {
  cleanMarker,
  clearNamespace,
  runReplay,
  type ReplayModel,
  type ReplayOptions,
} from '../../replay/index.js';
import {
  createContainerWriter,
  createSchemas,
  readContainer,
  RecordNames,
  type Decision,
  type Label,
  type PaymentEvent,
} from '../../schemas/index.js';
import { STREAM_FILES, writeSimulationFiles } from '../../simulator/index.js';
import { CLUSTER_NODES, redis, REDIS_URL, uniq } from './stack.js';

const schemas = createSchemas();
const logger = createSilentLogger();
const PY = join(projectRoot(), 'models', '.venv', 'bin', 'python');
const sim = { seed: 21, accounts: 300, days: 6, start: Date.UTC(2026, 0, 1), fraudRate: 0.01 };

async function decisions(path: string): Promise<Decision[]> {
  const out: Decision[] = [];
  for await (const d of readContainer<Decision>(path, schemas.catalog.reader(RecordNames.Decision)))
    out.push(d);
  return out;
}

describe('replay over container files, on the real Redis', () => {
  let r: Redis;
  let inDir: string;
  let runner: ModelRunner;
  let champion: ReplayModel;
  const namespaces: string[] = [];
  const ns = () => {
    const n = uniq('replay');
    namespaces.push(n);
    return n;
  };
  const base = (outDir: string): ReplayOptions => ({
    outDir,
    redis: r,
    catalog: schemas.catalog,
    logger,
    clock: systemClock,
    namespace: ns(),
    batchSize: 128,
  });

  beforeAll(async () => {
    r = await redis();
    inDir = mkdtempSync(join(tmpdir(), 'fs-replay-in-'));
    await writeSimulationFiles(schemas.catalog, sim, inDir);
    const fe = createFeatureEngine({ redis: r, prefix: 'probe:' });
    runner = await createModelRunner({
      manifestPath: join(projectRoot(), 'models', 'default', 'manifest.json'),
      featureNames: fe.names,
      featureSpec: fe.specHash,
    });
    const threshold = runner.manifest.threshold;
    champion = {
      model: runner,
      policy: createPolicy({ version: 'test', thresholds: { default: threshold } }),
      threshold,
    };
  });

  afterAll(async () => {
    for (const n of namespaces) await clearNamespace(r, n);
    await runner.close();
    r.disconnect();
  });

  it('gives identical scores on two replays of the same input (any batch or cache size), and a report with every section', async () => {
    const [a, b] = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'fs-replay-out-')));
    const ra = await runReplay({ ...base(a!), inDir, champion });
    // Other batches, and a cache far too small for the history: states go to Redis and come back.
    const rb = await runReplay({ ...base(b!), inDir, champion, batchSize: 37, maxCachedEntities: 300 });
    expect(ra.events).toBeGreaterThan(2000);
    expect(rb.events).toBe(ra.events);
    const da = await decisions(join(a!, 'decisions.avro'));
    const db = await decisions(join(b!, 'decisions.avro'));
    expect(da.length).toBe(ra.events);
    expect(db.map((d) => [d.event_id, d.score, d.outcome])).toEqual(
      da.map((d) => [d.event_id, d.score, d.outcome]),
    );
    // Decisions come out in event time.
    for (let i = 1; i < da.length; i++)
      expect(da[i]!.event_time).toBeGreaterThanOrEqual(da[i - 1]!.event_time);

    const m = JSON.parse(readFileSync(join(a!, 'metrics.json'), 'utf8'));
    expect(m.champion.overall.events).toBe(ra.events);
    expect(m.champion.overall.fraud).toBeGreaterThan(0);
    expect(m.champion.overall.roc_auc).toBeGreaterThan(0.5);
    expect(Object.keys(m.champion.by_event_type).sort()).toEqual(['PAYMENT', 'WITHDRAWAL']);
    expect(m.champion.by_scenario.length).toBeGreaterThanOrEqual(3);
    // Per-scenario counts come from scenarios.avro: labelled or not.
    const fraudEvents = m.champion.by_scenario.reduce((s: number, x: { events: number }) => s + x.events, 0);
    let tags = 0;
    for await (const _ of readContainer(join(inDir, STREAM_FILES.scenarios))) tags++;
    expect(fraudEvents).toBe(tags);
    expect(m.champion.by_day.length).toBe(sim.days);
    const html = readFileSync(join(a!, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|src=|href=/);
  });

  it('decides a re-sent event as its first, and every other event as in the history without it', async () => {
    // Replay reads which ids its input repeats before it starts, and keeps dedupe records for those
    // only: a re-sent event must still be found, and must change nothing after it.
    const dir = mkdtempSync(join(tmpdir(), 'fs-replay-dup-'));
    for (const f of [STREAM_FILES.labels, STREAM_FILES.scenarios, STREAM_FILES.withdrawals])
      copyFileSync(join(inDir, f), join(dir, f));
    const type = schemas.catalog.reader(RecordNames.PaymentEvent);
    const pays: PaymentEvent[] = [];
    for await (const p of readContainer<PaymentEvent>(join(inDir, STREAM_FILES.payments), type)) pays.push(p);
    const w = createContainerWriter<PaymentEvent>(join(dir, STREAM_FILES.payments), type);
    let resent = 0;
    for (let i = 0; i < pays.length; i++) {
      await w.append(pays[i]!);
      if (i % 40 === 0) {
        await w.append(pays[i]!); // the same event again, straight after: the file stays in order
        resent++;
      }
    }
    await w.close();
    const [clean, dup] = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'fs-replay-out-')));
    await runReplay({ ...base(clean!), inDir, champion });
    await runReplay({ ...base(dup!), inDir: dir, champion });
    const dc = await decisions(join(clean!, 'decisions.avro'));
    const dd = await decisions(join(dup!, 'decisions.avro'));
    expect(resent).toBeGreaterThan(50);
    expect(dd.length).toBe(dc.length + resent);
    const again = (i: number) => i > 0 && dd[i]!.event_id === dd[i - 1]!.event_id;
    let repeats = 0;
    dd.forEach((d, i) => {
      if (!again(i)) return;
      repeats++;
      expect([d.score, d.outcome]).toEqual([dd[i - 1]!.score, dd[i - 1]!.outcome]);
    });
    expect(repeats).toBe(resent);
    const key = (d: Decision) => [d.event_id, d.score, d.outcome];
    expect(dd.filter((_, i) => !again(i)).map(key)).toEqual(dc.map(key));
  });

  it('walks the keyspace only where it must: not after a clean run, once at the start otherwise, again when it evicted states', async () => {
    // Counts the namespace clears it is asked for: a SCAN from cursor 0 starts one.
    const counting = new Redis(REDIS_URL, { lazyConnect: true });
    await counting.connect();
    let clears = 0;
    type Scan = (...a: unknown[]) => unknown;
    const scan = (counting.scan as unknown as Scan).bind(counting);
    (counting as unknown as { scan: Scan }).scan = (...a) => {
      if (String(a[0]) === '0') clears++;
      return scan(...a);
    };
    try {
      const keysOf = async (n: string) => (await counting.keys(`${n}:*`)).length;
      const whole = {
        ...base(mkdtempSync(join(tmpdir(), 'fs-replay-out-'))),
        redis: counting,
        inDir,
        champion,
      };
      await runReplay(whole);
      expect(clears).toBe(1); // at the start only (a namespace never replayed into has no marker)
      expect(await keysOf(whole.namespace)).toBe(0); // and nothing is left: the lease is released
      expect(await counting.exists(cleanMarker(whole.namespace))).toBe(1);
      // The same namespace again: the last run left it clean, so nothing is walked at all.
      clears = 0;
      await runReplay(whole);
      expect(clears).toBe(0);
      clears = 0;
      const small = { ...whole, namespace: ns(), maxCachedEntities: 300 };
      await runReplay(small);
      expect(clears).toBe(2); // the evicted states are deleted at the end
      expect(await keysOf(small.namespace)).toBe(0);
      // Keys under a namespace without its marker (a run that failed, or an older version's): cleared.
      await counting.set(`${small.namespace}:{a:stale}:s`, 'x');
      await counting.del(cleanMarker(small.namespace));
      clears = 0;
      await runReplay(small);
      expect(clears).toBe(2);
      expect(await keysOf(small.namespace)).toBe(0);
      // A run that fails once it has taken the namespace leaves no marker: the next one walks.
      const stop = new AbortController();
      await expect(
        runReplay({ ...whole, signal: stop.signal, onProgress: () => stop.abort() }),
      ).rejects.toMatchObject({ code: 'FS_ERR_INTERRUPTED' });
      expect(await counting.exists(cleanMarker(whole.namespace))).toBe(0);
      clears = 0;
      await runReplay(whole);
      expect(clears).toBe(1);
    } finally {
      counting.disconnect();
    }
  });

  it('gives the same scores on a Redis Cluster, where its feature thread connects from the client settings', async () => {
    const cluster = new Cluster(CLUSTER_NODES, { lazyConnect: true });
    await cluster.connect();
    const [a, b] = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'fs-replay-out-')));
    // A cache too small for the history: the feature thread evicts states to the cluster and reads them back.
    const small = { inDir, champion, maxCachedEntities: 300 };
    const nsb = ns();
    try {
      const ra = await runReplay({ ...base(a!), ...small });
      const rb = await runReplay({ ...base(b!), ...small, redis: cluster, namespace: nsb });
      expect(rb.events).toBe(ra.events);
      const da = await decisions(join(a!, 'decisions.avro'));
      const db = await decisions(join(b!, 'decisions.avro'));
      expect(db.map((d) => [d.event_id, d.score, d.outcome])).toEqual(
        da.map((d) => [d.event_id, d.score, d.outcome]),
      );
      // The namespace is gone from every master afterwards.
      for (const node of cluster.nodes('master')) expect(await node.keys(`${nsb}:*`)).toEqual([]);
    } finally {
      await clearNamespace(cluster, nsb);
      cluster.disconnect();
    }
  });

  it('replays a history with no fraud at all: its empty labels and scenarios files are valid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-replay-clean-'));
    await writeSimulationFiles(schemas.catalog, { ...sim, accounts: 60, days: 2, fraudRate: 0 }, dir);
    const out = mkdtempSync(join(tmpdir(), 'fs-replay-out-'));
    const res = await runReplay({ ...base(out), inDir: dir, champion });
    expect(res.events).toBeGreaterThan(0);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.labels_applied).toBe(0);
    expect(m.champion.overall.fraud).toBe(0);
    expect((await decisions(join(out, 'decisions.avro'))).length).toBe(res.events);
  });

  it('reports a challenger side by side from the same pass', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fs-replay-out-'));
    const lower = champion.threshold / 2;
    const challenger = {
      ...champion,
      policy: createPolicy({ version: 'test', thresholds: { default: lower } }),
      threshold: lower,
    };
    await runReplay({ ...base(out), inDir, champion, challenger });
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    // Same model, so the same ranking; a lower threshold flags at least as much.
    expect(m.challenger.overall.roc_auc).toBeCloseTo(m.champion.overall.roc_auc, 9);
    expect(m.challenger.overall.flagged).toBeGreaterThanOrEqual(m.champion.overall.flagged);
    expect(m.challenger.threshold).toBe(lower);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('challenger:');
  });

  it('emits an Arrow IPC file that pyarrow reads with typed columns, labels and the spec metadata', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fs-replay-out-'));
    const file = join(out, 'features.arrow');
    const res = await runReplay({ ...base(out), inDir, emitFeatures: file });
    expect(existsSync(join(out, 'decisions.avro'))).toBe(false);
    const final = new Map<string, Label>();
    const all: Label[] = [];
    for await (const l of readContainer<Label>(
      join(inDir, STREAM_FILES.labels),
      schemas.catalog.reader(RecordNames.Label),
    ))
      all.push(l);
    all.sort((x, y) => x.labelled_at - y.labelled_at);
    for (const l of all) final.set(l.event_id, l);
    const fe = createFeatureEngine({ redis: r, prefix: 'probe:' });
    const script = `
import json, sys
import pyarrow as pa, pyarrow.ipc as ipc, pyarrow.feather as feather
t = ipc.open_file(sys.argv[1]).read_all()
assert feather.read_table(sys.argv[1]).equals(t)
md = t.schema.metadata
print(json.dumps({
  "rows": t.num_rows,
  "names": t.column_names,
  "types": [str(x) for x in t.schema.types],
  "nullable": [f.nullable for f in t.schema],
  "spec": md[b"feature_spec"].decode(),
  "feature_names": json.loads(md[b"feature_names"]),
  "source": md[b"source"].decode(),
  "labels": {k: [int(l), la] for k, l, la in zip(t.column("event_id").to_pylist(), t.column("label").to_pylist(), t.column("labelled_at").to_pylist()) if l or la is not None},
  "first": {k: t.column(k)[0].as_py() for k in t.column_names[:7]},
}))`;
    const py = JSON.parse(execFileSync(PY, ['-c', script, file], { encoding: 'utf8' }));
    expect(py.rows).toBe(res.events);
    expect(py.names).toEqual(['event_id', 'event_time', 'event_type', 'label', 'labelled_at', ...fe.names]);
    expect(py.types.slice(0, 5)).toEqual(['string', 'int64', 'string', 'int8', 'int64']);
    expect(new Set(py.types.slice(5))).toEqual(new Set(['float']));
    expect(py.nullable[4]).toBe(true);
    expect(py.spec).toBe(fe.specHash);
    expect(py.feature_names).toEqual(fe.names);
    expect(py.source).toBe(inDir);
    const expected: Record<string, [number, number]> = {};
    for (const [id, l] of final) expected[id] = [l.label === 'FRAUD' ? 1 : 0, l.labelled_at];
    expect(py.labels).toEqual(expected);
    expect(typeof py.first.event_time).toBe('number');
    expect(['PAYMENT', 'WITHDRAWAL']).toContain(py.first.event_type);
  });

  /** Keys of a namespace (SCAN). */
  const keysOf = async (namespace: string) => {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  };

  it('stops between batches when its signal aborts: no output, the namespace cleared', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fs-replay-stop-'));
    const opts = {
      ...base(out),
      inDir,
      champion,
      emitFeatures: join(out, 'f.arrow'),
      maxCachedEntities: 100,
    };
    const stop = new AbortController();
    let keysBefore = -1;
    let doneAtAbort = 0;
    let done = 0;
    let total = 0;
    // From the first batch on, look at Redis until it holds the run's states (a 100-entity cache writes
    // them out early), then abort.
    let looking = false;
    let settled = false;
    const lookThenAbort = async () => {
      while (!stop.signal.aborted && !settled) {
        const n = await keysOf(opts.namespace);
        if (n > 0) {
          keysBefore = n;
          doneAtAbort = done;
          stop.abort();
        }
      }
    };
    const err = await runReplay({
      ...opts,
      signal: stop.signal,
      onProgress: (d, t) => {
        done = d;
        total = t ?? 0;
        if (!looking) {
          looking = true;
          void lookThenAbort();
        }
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    settled = true;
    expect(isFraudstreamError(err, 'INTERRUPTED'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/replay stopped after \d+ events; no output was written/);
    expect(doneAtAbort).toBeLessThan(total);
    expect(keysBefore).toBeGreaterThan(0);
    expect(await keysOf(opts.namespace)).toBe(0);
    expect(readdirSync(out)).toEqual([]);
  });

  it('fraudstream replay exits 130 on SIGINT, after cleaning up as any failure does', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fs-replay-sigint-'));
    const namespace = ns();
    // Small batches and a small cache: slow enough to be interrupted mid-run, writing states as it goes.
    const child = spawn(
      process.execPath,
      [
        join(projectRoot(), 'bin', 'fraudstream.js'),
        'replay',
        '--in',
        inDir,
        '--out',
        out,
        '--namespace',
        namespace,
        '--batch-size',
        '16',
        '--max-cached-entities',
        '50',
        '--redis-url',
        REDIS_URL,
        '--log-level',
        'info',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let keysBefore = -1;
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    // Once the namespace is cleared and then holds the run's states, interrupt.
    const deadline = Date.now() + 30_000;
    while (!stderr.includes('replay namespace cleared') || (keysBefore = await keysOf(namespace)) === 0) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`replay ran out: ${stderr}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/SIGINT: stopping after the current batch/);
    expect(stderr).toMatch(/replay stopped after \d+ events; no output was written \[FS_ERR_INTERRUPTED\]/);
    expect(keysBefore).toBeGreaterThan(0);
    expect(await keysOf(namespace)).toBe(0);
    expect(readdirSync(out)).toEqual([]);
  });

  describe('bad input fails with a clear error and leaves no output', () => {
    const copyIn = () => {
      const d = mkdtempSync(join(tmpdir(), 'fs-replay-bad-'));
      for (const f of readdirSync(inDir)) copyFileSync(join(inDir, f), join(d, f));
      return d;
    };
    const expectFail = async (dir: string, code: Parameters<typeof isFraudstreamError>[1], text: RegExp) => {
      const out = mkdtempSync(join(tmpdir(), 'fs-replay-out-'));
      const feat = join(out, 'f.arrow');
      const err = await runReplay({ ...base(out), inDir: dir, champion, emitFeatures: feat }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isFraudstreamError(err, code), String(err)).toBe(true);
      expect((err as Error).message).toMatch(text);
      expect(readdirSync(out)).toEqual([]);
    };

    it('a truncated container file', async () => {
      const d = copyIn();
      const p = join(d, STREAM_FILES.withdrawals);
      truncateSync(p, statSync(p).size - 100);
      await expectFail(d, 'BAD_INPUT_FILE', /withdrawals\.avro is truncated/);
    });

    it('a file with another schema', async () => {
      const d = copyIn();
      copyFileSync(join(d, STREAM_FILES.labels), join(d, STREAM_FILES.payments));
      await expectFail(d, 'BAD_INPUT_FILE', /payments\.avro/);
    });

    it('a file that is not Avro at all', async () => {
      const d = copyIn();
      writeFileSync(join(d, STREAM_FILES.payments), 'event_id,event_time\n');
      await expectFail(d, 'BAD_INPUT_FILE', /not an Avro container file/);
    });

    it('events out of order inside a file', async () => {
      const d = copyIn();
      const p = join(d, STREAM_FILES.payments);
      const pays: PaymentEvent[] = [];
      for await (const e of readContainer<PaymentEvent>(p, schemas.catalog.reader(RecordNames.PaymentEvent)))
        pays.push(e);
      [pays[1000], pays[1001]] = [pays[1001]!, pays[1000]!];
      pays[1000] = { ...pays[1000]!, event_time: pays[1001]!.event_time + 60_000 };
      const w = createContainerWriter<PaymentEvent>(p, schemas.catalog.reader(RecordNames.PaymentEvent));
      for (const e of pays) await w.append(e);
      await w.close();
      await expectFail(d, 'INPUT_OUT_OF_ORDER', /payments\.avro: record 1001/);
    });

    it('a missing labels file', async () => {
      const d = copyIn();
      rmSync(join(d, STREAM_FILES.labels));
      await expectFail(d, 'BAD_INPUT_FILE', /labels\.avro does not exist/);
    });
  });
});
