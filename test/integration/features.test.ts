import fc from 'fast-check';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFeatureEngine,
  decodeState,
  FEATURE_NAMES,
  NO_PREVIOUS_EVENT_S,
  type FeatureBatch,
  type FeatureEngine,
  type WriteMode,
} from '../../features/index.js';
import { clearNamespace } from '../../replay/index.js';
import type { Label, ScoringEvent } from '../../schemas/index.js';
import { samplePayment, sampleWithdrawal, T0 } from '../fixtures.js';
import { createReferenceEngine } from '../reference.js';
import { CLUSTER_NODES, redis, REDIS_URL, uniq } from './stack.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const col = (name: string) => {
  const i = FEATURE_NAMES.indexOf(name);
  if (i < 0) throw new Error(`no feature ${name}`);
  return i;
};
const pay = (
  id: string,
  t: number,
  amount: number,
  over: Partial<Parameters<typeof samplePayment>[0]> = {},
): ScoringEvent => ({
  type: 'PAYMENT',
  event: samplePayment({ event_id: id, event_time: t, amount_minor: amount, ...over }),
});
const wd = (
  id: string,
  t: number,
  amount: number,
  over: Partial<Parameters<typeof sampleWithdrawal>[0]> = {},
): ScoringEvent => ({
  type: 'WITHDRAWAL',
  event: sampleWithdrawal({ event_id: id, event_time: t, amount_minor: amount, ...over }),
});

/**
 * Random streams with repeats, ties, out-of-order and too-late events, and labels in between. `scale`
 * stretches every time step: 1 keeps a stream within days (the short windows slide and reset); 40
 * spreads it over months, so the 7 d and 30 d rings wrap and expire too.
 */
const streamArb = (scale: number) =>
  fc
    .array(
      fc.record({
        kind: fc.constantFrom('pay', 'pay', 'wd', 'dup', 'label'),
        dt: fc.integer({ min: -3 * HOUR, max: 2 * HOUR }),
        tie: fc.boolean(),
        account: fc.integer({ min: 0, max: 2 }),
        other: fc.integer({ min: 0, max: 2 }),
        device: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
        country: fc.constantFrom('DE', 'FR', 'GB'),
        amount: fc.integer({ min: 1, max: 500_000 }),
        located: fc.boolean(),
        lat: fc.double({ min: -60, max: 60, noNaN: true }),
        lon: fc.double({ min: -170, max: 170, noNaN: true }),
        pick: fc.nat(),
        cut: fc.boolean(),
      }),
      { minLength: 1, maxLength: 70 },
    )
    .map((steps) => {
      let t = T0;
      let n = 0;
      const batches: { events: ScoringEvent[]; labels: Label[] }[] = [{ events: [], labels: [] }];
      const all: ScoringEvent[] = [];
      for (const s of steps) {
        const cur = batches[batches.length - 1]!;
        const dt = s.dt * scale;
        if (!s.tie) t += Math.abs(dt) + 1;
        const at = s.dt < -2 * HOUR ? t + dt * 12 : s.dt < 0 ? t + dt : t; // out of order, some too late
        const common = {
          account_id: `acct-${s.account}`,
          device_id: s.device === null ? null : `dev-${s.device}`,
          ip: s.device === null ? null : `10.0.0.${s.device}`,
          country: s.country,
          lat: s.located ? s.lat : null,
          lon: s.located ? s.lon : null,
        };
        if (s.kind === 'dup' && all.length) {
          cur.events.push(all[s.pick % all.length]!);
        } else if (s.kind === 'label' && all.length) {
          const target = all[s.pick % all.length]!;
          cur.labels.push({
            event_id: target.event.event_id,
            account_id: target.event.account_id,
            label: 'FRAUD',
            source: 'CHARGEBACK',
            labelled_at: t,
            analyst: null,
            note: null,
          });
        } else {
          const ev =
            s.kind === 'wd'
              ? wd(`w${n++}`, at, s.amount, { ...common, destination_id: `ben-${s.other}` })
              : pay(`p${n++}`, at, s.amount, {
                  ...common,
                  merchant_id: `m-${s.other}`,
                  instrument_id: `card-${s.account}-${s.other % 2}`,
                });
          cur.events.push(ev);
          all.push(ev);
        }
        if (s.cut) batches.push({ events: [], labels: [] });
      }
      return batches;
    });

function expectRowsClose(got: Float32Array, want: Float32Array, context: string) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!(Math.abs(g - w) <= 1e-5 * Math.max(1, Math.abs(w)))) {
      throw new Error(
        `${context}: feature ${FEATURE_NAMES[i % FEATURE_NAMES.length]} of row ${Math.floor(i / FEATURE_NAMES.length)}: engine ${g}, reference ${w}`,
      );
    }
  }
}

/** Makes every pipeline of `recs` run `after` once Redis has answered, before its caller hears of it. */
function afterExec(recs: Redis, after: () => unknown) {
  const pipeline = recs.pipeline.bind(recs);
  recs.pipeline = ((...a: Parameters<typeof pipeline>) => {
    const p = pipeline(...a);
    const exec = p.exec.bind(p);
    p.exec = (async (...b: Parameters<typeof exec>) => {
      const res = await exec(...b);
      await after();
      return res;
    }) as typeof p.exec;
    return p;
  }) as typeof recs.pipeline;
}

/** Runs the same random streams through the Redis engine and the reference; every feature must agree. */
async function propertyAgainstReference(
  client: Redis | Cluster,
  ns: string,
  runs: number,
  scale = 1,
  opts: {
    restartEachBatch?: boolean;
    writeMode?: WriteMode;
    maxCachedEntities?: number;
    /** Tell the engine which events will be labelled FRAUD (as replay does). */
    knownLabels?: boolean;
    /** Tell the engine which event ids occur more than once (as replay does; a fresh namespace). */
    knownRepeats?: boolean;
  } = {},
) {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(streamArb(scale), async (batches) => {
      const lateness = 2 * HOUR * scale;
      const prefix = `${ns}:r${run++}:`;
      const seen = new Set<string>();
      const repeats = new Set<string>();
      for (const b of batches)
        for (const e of b.events) (seen.has(e.event.event_id) ? repeats : seen).add(e.event.event_id);
      const open = () =>
        createFeatureEngine({
          redis: client,
          prefix,
          allowedLatenessMs: lateness,
          writeMode: opts.writeMode,
          maxCachedEntities: opts.maxCachedEntities,
          labelledEvents: opts.knownLabels
            ? new Set(
                batches.flatMap((b) => b.labels.filter((l) => l.label === 'FRAUD').map((l) => l.event_id)),
              )
            : undefined,
          ...(opts.knownRepeats ? { repeatableEvents: repeats, fresh: true } : {}),
        });
      let engine = open();
      const ref = createReferenceEngine({ allowedLatenessMs: lateness });
      for (const b of batches) {
        if (opts.restartEachBatch) {
          await engine.close();
          engine = open();
        }
        const got = await engine.computeBatch(b.events);
        const want = ref.computeBatch(b.events);
        for (const v of got.matrix) expect(Number.isFinite(v)).toBe(true);
        expectRowsClose(got.matrix, want.matrix, `batch of ${b.events.length}`);
        expect(Array.from(got.duplicate)).toEqual(Array.from(want.duplicate));
        expect(Array.from(got.late)).toEqual(Array.from(want.late));
        expect(await engine.applyLabels(b.labels)).toEqual(ref.applyLabels(b.labels));
      }
      await engine.close();
    }),
    { numRuns: runs },
  );
}

describe('feature engine on a real Redis', () => {
  let r: Redis;
  const ns = uniq('features');
  beforeAll(async () => {
    r = await redis();
  });
  afterAll(async () => {
    await clearNamespace(r, ns);
    r.disconnect();
  });

  /**
   * What a new engine gives `probe` reading `prefix` back from Redis, and what it gives it on `clean`
   * after `batches` went through there in one clean pass.
   */
  async function probeAgainstCleanPass(
    prefix: string,
    clean: string,
    batches: ScoringEvent[][],
    probe: ScoringEvent[],
  ): Promise<Float32Array[]> {
    const c = createFeatureEngine({ redis: r, prefix: clean, writeMode: 'checkpoint' });
    for (const b of batches) await c.computeBatch(b);
    await c.close();
    const vecs: Float32Array[] = [];
    for (const p of [prefix, clean]) {
      const e = createFeatureEngine({ redis: r, prefix: p });
      vecs.push((await e.computeBatch(probe)).matrix);
      await e.close();
    }
    return vecs;
  }

  it('windows the account history on event time and adds the event after reading', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:a:` });
    const events = [
      pay('e1', T0, 1000),
      pay('e2', T0 + 10 * MIN, 2000),
      wd('e3', T0 + 65 * MIN, 8000),
      pay('e4', T0 + 25 * HOUR, 500),
    ];
    const b = await fe.computeBatch(events);
    const get = (row: number, name: string) => b.matrix[row * b.cols + col(name)]!;
    expect(get(0, 'account_count_24h')).toBe(0);
    expect(get(0, 'account_since_last_s')).toBe(NO_PREVIOUS_EVENT_S);
    expect(get(0, 'account_amount_ratio_30d')).toBe(1);
    expect(get(1, 'account_count_10m')).toBe(0); // e1 is 10 min back: outside [B-9, B] of 1-min buckets
    expect(get(1, 'account_count_1h')).toBe(1);
    expect(get(1, 'account_since_last_s')).toBe(600);
    expect(get(1, 'account_amount_ratio_30d')).toBe(2);
    // e3 at +65 min: 1 h window = 5-min buckets [B-11, B] = [+10 min, +65 min]: e2 only.
    expect(get(2, 'account_count_1h')).toBe(1);
    expect(get(2, 'account_sum_1h')).toBe(2000);
    expect(get(2, 'account_count_24h')).toBe(2);
    expect(get(2, 'account_max_24h')).toBe(2000);
    expect(get(2, 'account_mean_24h')).toBe(1500);
    expect(get(2, 'event_is_withdrawal')).toBe(1);
    expect(get(2, 'account_new_destination')).toBe(1);
    expect(get(2, 'merchant_count_24h')).toBe(0); // a withdrawal has no merchant
    // e4 at +25 h: the 24 h window is 1-h buckets [+2 h, +25 h]: nothing; 7 d holds all three.
    expect(get(3, 'account_count_24h')).toBe(0);
    expect(get(3, 'account_count_7d')).toBe(3);
    expect(get(3, 'account_sum_7d')).toBe(11000);
    expect(get(3, 'merchant_count_7d')).toBe(2);
  });

  it('first-seen flags, distinct counts and geo-velocity of the account', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:b:` });
    const b = await fe.computeBatch([
      pay('g1', T0, 100, { device_id: 'd1', lat: 52.52, lon: 13.405, merchant_id: 'm1' }),
      pay('g2', T0 + HOUR, 100, {
        device_id: 'd1',
        lat: 48.857,
        lon: 2.352,
        merchant_id: 'm2',
        country: 'FR',
      }),
      pay('g3', T0 + 2 * HOUR, 100, { device_id: 'd2', lat: null, lon: null, merchant_id: 'm2' }),
    ]);
    const get = (row: number, name: string) => b.matrix[row * b.cols + col(name)]!;
    expect(get(0, 'account_new_device')).toBe(1);
    expect(get(1, 'account_new_device')).toBe(0);
    expect(get(1, 'account_new_country')).toBe(1);
    expect(get(2, 'account_new_device')).toBe(1);
    expect(get(2, 'account_distinct_merchants_24h')).toBe(2);
    expect(get(2, 'account_distinct_countrys_24h')).toBe(2);
    // Berlin -> Paris is about 878 km in one hour.
    expect(get(1, 'account_geo_velocity_kmh')).toBeGreaterThan(860);
    expect(get(1, 'account_geo_velocity_kmh')).toBeLessThan(890);
    expect(get(2, 'account_geo_velocity_kmh')).toBe(0);
  });

  it('is idempotent: a repeated event_id changes no aggregate and returns its first vector', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:c:` });
    const first = await fe.computeBatch([pay('d1', T0, 100), pay('d2', T0 + MIN, 200)]);
    const again = await fe.computeBatch([pay('d2', T0 + MIN, 200)]);
    expect(again.duplicate[0]).toBe(1);
    expect(Array.from(again.matrix)).toEqual(Array.from(first.matrix.subarray(first.cols, 2 * first.cols)));
    const next = await fe.computeBatch([pay('d3', T0 + 2 * MIN, 300)]);
    expect(next.matrix[col('account_count_1h')]).toBe(2);
  });

  it('keeps dedupe records only for the ids it is told can repeat', async () => {
    // Replay tells the engine which ids occur more than once: the others keep no record. The hint must
    // hold every repeated id: here it holds none, so the repeat goes through as a new event.
    await expect(async () =>
      createFeatureEngine({ redis: r, prefix: `${ns}:rp0:`, repeatableEvents: new Set() }),
    ).rejects.toMatchObject({ code: 'FS_ERR_BAD_CONFIG' });
    const opts = { redis: r, writeMode: 'behind' as const, fresh: true };
    const told = createFeatureEngine({ ...opts, prefix: `${ns}:rp1:`, repeatableEvents: new Set(['d2']) });
    const untold = createFeatureEngine({ ...opts, prefix: `${ns}:rp2:`, repeatableEvents: new Set() });
    for (const fe of [told, untold]) await fe.computeBatch([pay('d1', T0, 100), pay('d2', T0 + MIN, 200)]);
    const a = await told.computeBatch([pay('d2', T0 + MIN, 200)]);
    const b = await untold.computeBatch([pay('d2', T0 + MIN, 200)]);
    expect([a.duplicate[0], b.duplicate[0]]).toEqual([1, 0]);
    expect(a.matrix[col('account_count_1h')]).toBe(1); // d1, as d2 first saw it
    expect(b.matrix[col('account_count_1h')]).toBe(2); // d1 and d2: counted again
    await told.close({ flush: false });
    await untold.close({ flush: false });
  });

  it('scores a too-late event without adding it, and flags it', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:d:`, allowedLatenessMs: HOUR });
    await fe.computeBatch([pay('l1', T0 + 5 * HOUR, 100)]);
    const late = await fe.computeBatch([pay('l0', T0, 100)]);
    expect(late.late[0]).toBe(1);
    const after = await fe.computeBatch([pay('l2', T0 + 5 * HOUR + MIN, 100)]);
    expect(after.late[0]).toBe(0);
    expect(after.matrix[col('account_count_24h')]).toBe(1);
  });

  it('counts confirmed fraud on the merchant by label time, once per label', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:e:` });
    await fe.computeBatch([
      pay('f1', T0, 100, { merchant_id: 'mx', account_id: 'a1' }),
      pay('f2', T0 + MIN, 100, { merchant_id: 'mx', account_id: 'a2' }),
    ]);
    const label: Label = {
      event_id: 'f1',
      account_id: 'a1',
      label: 'FRAUD',
      source: 'CHARGEBACK',
      labelled_at: T0 + 2 * HOUR,
      analyst: null,
      note: null,
    };
    expect(await fe.applyLabels([label, label])).toEqual({ applied: 1 });
    expect(await fe.applyLabels([label])).toEqual({ applied: 0 });
    const before = await fe.computeBatch([
      pay('f3', T0 + HOUR, 100, { merchant_id: 'mx', account_id: 'a3' }),
    ]);
    expect(before.matrix[col('merchant_fraud_count_1d')]).toBe(0); // the label was not known by then
    const after = await fe.computeBatch([
      pay('f4', T0 + 3 * HOUR, 100, { merchant_id: 'mx', account_id: 'a3' }),
    ]);
    expect(after.matrix[col('merchant_fraud_count_1d')]).toBe(1);
    expect(after.matrix[col('merchant_fraud_rate_1d')]).toBeCloseTo(1 / 3, 6);
  });

  it('reads what it has not cached in one round trip and writes each batch back in one atomic call', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:f:` });
    // What the server received: MONITOR, filtered to this engine's connection (the Redis may be shared).
    const monitor = await r.monitor();
    const seen: { cmd: string; args: string[]; source: string }[] = [];
    let markerSeen = false;
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      seen.push({ cmd: args[0]!.toLowerCase(), args: args.slice(1), source });
      if (args[0]?.toLowerCase() === 'get' && args[1] === `${ns}:f:marker`) markerSeen = true;
    });
    const batch = (from: number) =>
      Array.from({ length: 64 }, (_, i) =>
        pay(`rt${from + i}`, T0 + (from + i) * MIN, 100 + i, { device_id: `d${i}`, ip: `10.1.0.${i}` }),
      );
    try {
      await fe.computeBatch(batch(0));
      const cold = fe.stats();
      await fe.computeBatch(batch(64));
      const warm = fe.stats();
      // MONITOR lines arrive asynchronously: a marker command sent after the batches ends the wait.
      await r.get(`${ns}:f:marker`);
      for (let i = 0; i < 300 && !markerSeen; i++) await new Promise((res) => setTimeout(res, 10));
      expect(markerSeen).toBe(true);
      // Cold: one read of the 1 account + 1 instrument + 64 devices + 64 IPs + 1 merchant, one write.
      expect(cold.roundTrips).toBe(2);
      expect(cold.reads).toBe(131);
      // Warm: nothing read, one write.
      expect(warm.roundTrips - cold.roundTrips).toBe(1);
      expect(warm.reads).toBe(cold.reads);
    } finally {
      monitor.disconnect();
    }
    const mine = seen.filter((c) => c.args.some((a) => a.startsWith(`${ns}:f:{`)));
    const source = mine[0]!.source;
    const conn = seen.filter((c) => c.source === source && c.cmd !== 'get');
    const mgets = conn.filter((c) => c.cmd === 'mget');
    expect(mgets).toHaveLength(1);
    expect(mgets[0]!.args).toHaveLength(131);
    // Per batch one script call (EVAL, or EVALSHA once Redis has the script) carrying one blob of
    // operations, and no SET or MULTI of its own; inside the script (MONITOR shows them as from
    // "lua"): the 131 states, and per event a dedupe row and a label-lookup record.
    const calls = conn.filter((c) => c.cmd === 'evalsha' || c.cmd === 'eval');
    expect(calls.map((c) => [c.args.length, c.args[1]])).toEqual([
      [3, '0'],
      [3, '0'],
    ]);
    const own = conn.filter((c) => ['set', 'multi', 'exec'].includes(c.cmd) && c.args[0] !== `${ns}:f:owner`);
    expect(own).toHaveLength(0);
    const sets = seen.filter(
      (c) => c.source === 'lua' && c.cmd === 'set' && c.args[0]!.startsWith(`${ns}:f:{`),
    );
    expect(sets).toHaveLength(2 * (131 + 64 + 64));
  });

  it('writes a big flush as its records, in small calls on a second connection, then its states in one MULTI', async () => {
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:big:`, writeMode: 'checkpoint' });
    const monitor = await r.monitor();
    const seen: { cmd: string; source: string }[] = [];
    let markerSeen = false;
    let source = '';
    monitor.on('monitor', (_time: string, args: string[], from: string) => {
      seen.push({ cmd: args[0]!.toLowerCase(), source: from });
      if (args[0]?.toLowerCase() === 'get' && args[1] === `${ns}:big:marker`) {
        markerSeen = true;
        source = from; // the engine's connection (it uses this client): the Redis may be shared
      }
    });
    // 3,000 events of distinct accounts, devices and IPs: about 2.5 MB of states, rows and lookups.
    const events = Array.from({ length: 3000 }, (_, i) =>
      pay(`big${i}`, T0 + i * 1000, 100 + i, {
        account_id: `ba${i}`,
        device_id: `bd${i}`,
        ip: `10.2.${i >> 8}.${i & 255}`,
      }),
    );
    try {
      await fe.computeBatch(events);
      expect(fe.stats().writes).toBe(0); // checkpoint mode: nothing written until flush()
      await fe.flush();
      await r.get(`${ns}:big:marker`);
      for (let i = 0; i < 300 && !markerSeen; i++) await new Promise((res) => setTimeout(res, 10));
    } finally {
      monitor.disconnect();
      await fe.close();
    }
    const calls = seen.filter(
      (c) => ['multi', 'evalsha', 'eval', 'exec'].includes(c.cmd) && c.source !== 'lua',
    );
    // The states: one MULTI of several calls, on the engine's connection.
    const main = calls.filter((c) => c.source === source);
    expect(main.length).toBeGreaterThan(3);
    expect(main.map((c) => c.cmd)).toEqual(['multi', ...main.slice(1, -1).map(() => 'evalsha'), 'exec']);
    // The dedupe rows and lookups: calls of their own (no MULTI) on another connection, all before it.
    const recs = calls.filter((c) => c.source !== source);
    expect(recs.length).toBeGreaterThan(4);
    expect(new Set(recs.map((c) => c.source)).size).toBe(1);
    expect(recs.every((c) => c.cmd === 'evalsha' || c.cmd === 'eval')).toBe(true);
    expect(calls.indexOf(recs.at(-1)!)).toBeLessThan(calls.indexOf(main[0]!));
    // Everything arrived: each account's state, dedupe row and label lookup.
    const keys = await r.keys(`${ns}:big:{a:*`);
    expect(keys).toHaveLength(3 * events.length);
  });

  it("decides every event again, counted once, after a crash between a big write's records and its states", async () => {
    const prefix = `${ns}:half:`;
    // The engine's connection, cut once Redis has the records: the states' MULTI never arrives, as if
    // the process had died between the two.
    const main = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null });
    await main.connect();
    const recs = new Redis(REDIS_URL, { lazyConnect: true });
    await recs.connect();
    afterExec(recs, () => main.disconnect());
    // 5,000 events on 40 accounts, 20 merchants: more than one call's worth of rows and lookups.
    const events = Array.from({ length: 5000 }, (_, i) =>
      pay(`half${i}`, T0 + i * 7000, 100 + (i % 97), {
        account_id: `ha${i % 40}`,
        merchant_id: `hm${i % 20}`,
      }),
    );
    const fe = createFeatureEngine({
      redis: main,
      recordsRedis: recs,
      prefix,
      writeMode: 'checkpoint',
      leaseMs: 500,
    });
    let first: Float32Array;
    try {
      first = (await fe.computeBatch(events)).matrix;
      await expect(fe.flush()).rejects.toThrow();
    } finally {
      await fe.close({ flush: false }).catch(() => undefined);
      recs.disconnect();
    }
    // Redis has every row and lookup, and no state.
    expect(await r.keys(`${prefix}*:s`)).toHaveLength(0);
    expect(await r.keys(`${prefix}*:q:*`)).toHaveLength(events.length);
    expect(await r.keys(`${prefix}*:lbl:*`)).toHaveLength(events.length);
    // Restarted: nothing is a duplicate, and every vector is the one first decided.
    const again = createFeatureEngine({ redis: r, prefix, writeMode: 'checkpoint' });
    const second = await again.computeBatch(events);
    await again.close();
    expect(second.duplicate.every((d) => d === 0)).toBe(true);
    expect(second.matrix).toEqual(first);
    // Counted once: the next event sees the same windows as after one clean pass.
    const next = [pay('half-next', T0 + 5000 * 7000, 555, { account_id: 'ha1', merchant_id: 'hm1' })];
    const [got, want] = await probeAgainstCleanPass(prefix, `${ns}:halfclean:`, [events], next);
    expect(got).toEqual(want);
  });

  it("keeps a later write's states when it is sent while a big write's records are in flight", async () => {
    const prefix = `${ns}:order:`;
    // The records connection answers only when let go: the big write waits between its two steps.
    const recs = new Redis(REDIS_URL, { lazyConnect: true });
    await recs.connect();
    let letGo!: () => void;
    const gate = new Promise<void>((res) => (letGo = res));
    let held = 0;
    let waited = 0;
    afterExec(recs, () => (held++, gate));
    // 3,000 events at one merchant: a write too big for one call, with the merchant's state in it;
    // then one more event there, written in one call while the big write is still in flight.
    const big = Array.from({ length: 3000 }, (_, i) =>
      pay(`ob${i}`, T0 + i * 1000, 100 + i, { account_id: `oa${i}`, merchant_id: 'om' }),
    );
    const later = [pay('ol', T0 + 3000 * 1000, 999, { account_id: 'oa-later', merchant_id: 'om' })];
    const fe = createFeatureEngine({ redis: r, recordsRedis: recs, prefix, writeMode: 'checkpoint' });
    try {
      await fe.computeBatch(big);
      const first = fe.flush();
      await fe.computeBatch(later);
      const second = fe.flush();
      // The big write's records answered: it now waits between its two steps.
      for (const end = Date.now() + 10_000; held === 0 && Date.now() < end;)
        await new Promise((res) => setTimeout(res, 10));
      waited = held;
      await new Promise((res) => setTimeout(res, 100)); // time for the second to reach Redis, if sent
      letGo();
      await Promise.all([first, second]);
    } finally {
      letGo();
      await fe.close();
      recs.disconnect();
    }
    expect(waited).toBeGreaterThan(0); // it did go in two steps
    // Redis holds the merchant's newest state: a new engine sees what one clean pass sees.
    const probe = [pay('oprobe', T0 + 3001 * 1000, 5, { account_id: 'oa-probe', merchant_id: 'om' })];
    const [got, want] = await probeAgainstCleanPass(prefix, `${ns}:orderclean:`, [big, later], probe);
    expect(got![col('merchant_count_30d')]).toBe(3001);
    expect(got).toEqual(want);
  });

  /**
   * Computes `big`, flushes it, and runs `meanwhile` while that flush is under way; closes the engine
   * without writing what `meanwhile` changed.
   */
  async function duringFlush(fe: FeatureEngine, big: ScoringEvent[], meanwhile: () => Promise<void>) {
    let flushed = false;
    try {
      await fe.computeBatch(big);
      const first = fe.flush().then(() => (flushed = true));
      await meanwhile();
      expect(flushed).toBe(false); // it ran while the flush was under way
      await first;
    } finally {
      await fe.close({ flush: false });
    }
  }

  it("writes a checkpoint's states as they were when it was called, though a batch changes them as it encodes", async () => {
    const prefix = `${ns}:snap:`;
    // Enough new entities that the flush encodes their states over many turns of the event loop; the
    // batch computed meanwhile changes the last account, instrument and merchant, whose states are
    // still waiting to be encoded.
    const n = 20_000;
    const big = Array.from({ length: n }, (_, i) =>
      pay(`sb${i}`, T0 + i, 100 + i, {
        account_id: `sa${i}`,
        instrument_id: `si${i}`,
        merchant_id: `sm${i}`,
      }),
    );
    const last = { account_id: `sa${n - 1}`, instrument_id: `si${n - 1}`, merchant_id: `sm${n - 1}` };
    const during = [pay('sd', T0 + n + MIN, 777, last)];
    const fe = createFeatureEngine({ redis: r, prefix, writeMode: 'checkpoint' });
    await duringFlush(fe, big, async () => void (await fe.computeBatch(during)));
    // Redis holds the states as the flush found them: a new engine sees what a clean pass over `big` sees.
    const probe = [pay('sprobe', T0 + n + 3 * MIN, 5, last)];
    const [got, want] = await probeAgainstCleanPass(prefix, `${ns}:snapclean:`, [big], probe);
    expect(got![col('account_count_30d')]).toBe(1);
    expect(got![col('merchant_count_30d')]).toBe(1);
    expect(got).toEqual(want);
  });

  it("writes a write-behind flush's states as they were when it was called, though a label changes one as it encodes", async () => {
    // Write-behind holds label lookups past a flush, so a label can reach a state the flush has taken
    // without a batch touching it first.
    const prefix = `${ns}:snapb:`;
    const n = 20_000;
    const big = Array.from({ length: n }, (_, i) =>
      pay(`sbb${i}`, T0 + i, 100 + i, { account_id: `sba${i}`, merchant_id: `sbm${i}` }),
    );
    const last = { account_id: `sba${n - 1}`, merchant_id: `sbm${n - 1}` };
    const label: Label = {
      event_id: `sbb${n - 1}`,
      account_id: last.account_id,
      label: 'FRAUD',
      source: 'CHARGEBACK',
      labelled_at: T0 + n + MIN,
      analyst: null,
      note: null,
    };
    const fe = createFeatureEngine({ redis: r, prefix, writeMode: 'behind', fresh: true });
    await duringFlush(fe, big, async () => expect(await fe.applyLabels([label])).toEqual({ applied: 1 }));
    const probe = [pay('sbprobe', T0 + n + 2 * MIN, 5, last)];
    const [got, want] = await probeAgainstCleanPass(prefix, `${ns}:snapbclean:`, [big], probe);
    expect(got![col('merchant_count_30d')]).toBe(1);
    expect(got![col('merchant_fraud_count_1d')]).toBe(0);
    expect(got).toEqual(want);
  });

  it('fails a flush that waited on a write which then failed, and writes those changes with the next', async () => {
    // The engine's own connection, cut while a write is in flight (no reconnect, so nothing is
    // resent): that write fails.
    const c = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null });
    await c.connect();
    const fe = createFeatureEngine({ redis: c, prefix: `${ns}:fail:`, writeMode: 'checkpoint' });
    const events = [pay('f1', T0, 500, { account_id: 'fa' }), pay('f2', T0 + MIN, 700, { account_id: 'fa' })];
    try {
      const want = (await fe.computeBatch(events)).matrix;
      const first = fe.flush(); // takes every change
      const second = fe.flush(); // nothing left to take: it waits on the first
      c.stream.destroy();
      await expect(first).rejects.toThrow();
      // Resolving here would let a checkpoint commit offsets whose changes are not in Redis.
      await expect(second).rejects.toThrow(/an earlier feature write failed/);
      await c.connect();
      await fe.flush(); // the changes the failed write had taken
      // A new engine reads them back: the same events are duplicates with their first rows.
      await fe.close();
      const again = createFeatureEngine({ redis: r, prefix: `${ns}:fail:` });
      const back = await again.computeBatch(events);
      await again.close();
      expect(Array.from(back.duplicate)).toEqual([1, 1]);
      expect(back.matrix).toEqual(want);
    } finally {
      await fe.close().catch(() => undefined);
      c.disconnect();
    }
  });

  it('equals the reference when every batch is read back from Redis by a new engine', async () => {
    await propertyAgainstReference(r, `${ns}:reload`, Number(process.env.FS_PROPERTY_RUNS ?? 40), 40, {
      restartEachBatch: true,
    });
  });

  it('equals the reference in checkpoint mode (the scorer), read back from Redis after every flush', async () => {
    // close() is the flush here: every batch goes through a new engine that reads the last one's writes.
    await propertyAgainstReference(r, `${ns}:ckpt`, Number(process.env.FS_PROPERTY_RUNS ?? 40), 40, {
      writeMode: 'checkpoint',
      restartEachBatch: true,
    });
  });

  it('equals the reference in write-behind mode (replay), and writes the states on flush', async () => {
    await propertyAgainstReference(r, `${ns}:behind`, Number(process.env.FS_PROPERTY_RUNS ?? 40), 1, {
      writeMode: 'behind',
    });
    // As replay runs it: the labels and the repeated ids known in advance, lookups kept for the
    // labelled events only and dedupe records for the repeated ids only.
    await propertyAgainstReference(r, `${ns}:known`, Number(process.env.FS_PROPERTY_RUNS ?? 40), 1, {
      writeMode: 'behind',
      knownLabels: true,
      knownRepeats: true,
    });
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:wb:`, writeMode: 'behind', fresh: true });
    await fe.computeBatch([pay('wb1', T0, 100), pay('wb2', T0 + MIN, 200)]);
    expect(await r.exists(`${ns}:wb:{a:acct-1}:s`)).toBe(0);
    await fe.close();
    const stored = await r.getBuffer(`${ns}:wb:{a:${samplePayment().account_id}}:s`);
    expect(decodeState(stored!, 'a').mx).toBe(T0 + MIN);
  });

  it('equals the reference in write-behind mode when the cache is too small to hold every entity', async () => {
    // Evicted accounts take their held dedupe rows and label lookups to Redis, where later
    // duplicates and labels find them.
    await propertyAgainstReference(r, `${ns}:evict`, Number(process.env.FS_PROPERTY_RUNS ?? 40), 1, {
      writeMode: 'behind',
      maxCachedEntities: 3,
    });
    // And as replay runs it, with dedupe records for the repeated ids only.
    await propertyAgainstReference(r, `${ns}:evict2`, Number(process.env.FS_PROPERTY_RUNS ?? 40), 1, {
      writeMode: 'behind',
      maxCachedEntities: 3,
      knownLabels: true,
      knownRepeats: true,
    });
  });

  it('computes calls that overlap one after another, in call order, even while it evicts and reads back', async () => {
    // Replay hands the next batch over while the one before is still being computed or scored.
    const events = Array.from({ length: 600 }, (_, i) =>
      pay(`o${i}`, T0 + i * 5 * MIN, 100 + (i % 97), {
        account_id: `acct-${(i * 7) % 41}`,
        merchant_id: `m-${i % 13}`,
        device_id: `d-${(i * 3) % 29}`,
      }),
    );
    const batches = Array.from({ length: 30 }, (_, k) => events.slice(k * 20, k * 20 + 20));
    const opts = { redis: r, writeMode: 'behind' as const, fresh: true, maxCachedEntities: 8 };
    const one = createFeatureEngine({ ...opts, prefix: `${ns}:seq:` });
    const sequential: number[][] = [];
    for (const b of batches) sequential.push(Array.from((await one.computeBatch(b)).matrix));
    const other = createFeatureEngine({ ...opts, prefix: `${ns}:par:` });
    // Each call starts while the one before waits on Redis (a read back, an eviction's write).
    const calls: Promise<FeatureBatch>[] = [];
    for (const b of batches) {
      calls.push(other.computeBatch(b));
      await new Promise((res) => setImmediate(res));
    }
    const overlapping = await Promise.all(calls);
    expect(overlapping.map((x) => Array.from(x.matrix))).toEqual(sequential);
    await one.close({ flush: false });
    await other.close({ flush: false });
  });

  it('refuses a corrupt stored state with an error naming the key, and writes nothing', async () => {
    const key = `${ns}:bad:{a:${samplePayment().account_id}}:s`;
    await r.set(key, '{"v":99}');
    const fe = createFeatureEngine({ redis: r, prefix: `${ns}:bad:` });
    await expect(fe.computeBatch([pay('bad1', T0, 100)])).rejects.toMatchObject({
      code: 'FS_ERR_FEATURE_STORE',
      message: expect.stringContaining(key),
    });
    await fe.close();
    expect(await r.get(key)).toBe('{"v":99}');
    expect(await r.keys(`${ns}:bad:*:q:*`)).toHaveLength(0);
  });

  it("returns a duplicate's stored row after a restart, and refuses a malformed one by key", async () => {
    const prefix = `${ns}:row:`;
    const first = createFeatureEngine({ redis: r, prefix });
    const a = await first.computeBatch([pay('row1', T0, 100), pay('row2', T0 + MIN, 250)]);
    await first.close();
    const again = createFeatureEngine({ redis: r, prefix });
    const b = await again.computeBatch([pay('row2', T0 + MIN, 250)]);
    expect(b.duplicate[0]).toBe(1);
    expect(Array.from(b.matrix)).toEqual(Array.from(a.matrix.subarray(a.cols, 2 * a.cols)));
    const key = `${prefix}{a:${samplePayment().account_id}}:q:row1`;
    await r.set(key, Buffer.from([0, 1, 2]));
    await again.close();
    const third = createFeatureEngine({ redis: r, prefix });
    await expect(third.computeBatch([pay('row1', T0, 100)])).rejects.toMatchObject({
      code: 'FS_ERR_FEATURE_STORE',
      message: expect.stringContaining(key),
    });
    await third.close();
  });

  it('lets one process at a time compute a namespace, and hands it over on close', async () => {
    const a = createFeatureEngine({ redis: r, prefix: `${ns}:lease:`, leaseMs: 1000 });
    const b = createFeatureEngine({ redis: r, prefix: `${ns}:lease:`, leaseMs: 1000 });
    await a.computeBatch([pay('ls1', T0, 100)]);
    await expect(b.computeBatch([pay('ls2', T0 + MIN, 100)])).rejects.toMatchObject({
      code: 'FS_ERR_FEATURE_STORE',
      message: expect.stringMatching(/in use by/),
    });
    await a.close();
    const got = await b.computeBatch([pay('ls2', T0 + MIN, 100)]);
    expect(got.matrix[col('account_count_1h')]).toBe(1); // a's event, read back from Redis
    await b.close();
  });

  it('equals the reference implementation on random streams (duplicates, ties, out-of-order, late, labels)', async () => {
    await propertyAgainstReference(r, `${ns}:prop`, Number(process.env.FS_PROPERTY_RUNS ?? 40));
  });

  it('equals the reference on streams stretched over months (the 7 d and 30 d rings wrap and expire)', async () => {
    await propertyAgainstReference(r, `${ns}:long`, Number(process.env.FS_PROPERTY_RUNS ?? 40), 40);
  });
});

describe('feature engine on a 3-master Redis Cluster', () => {
  let cluster: Cluster;
  let single: Redis;
  const ns = uniq('cluster');
  beforeAll(async () => {
    cluster = new Cluster(CLUSTER_NODES, { enableAutoPipelining: true, lazyConnect: true });
    await cluster.connect();
    single = await redis();
  });
  afterAll(async () => {
    await clearNamespace(cluster, ns);
    await clearNamespace(single, ns);
    cluster.disconnect();
    single.disconnect();
  });

  it('runs on three masters and gives exactly the single-Redis results', async () => {
    expect(cluster.nodes('master')).toHaveLength(3);
    const a: FeatureEngine = createFeatureEngine({ redis: cluster, prefix: `${ns}:x:` });
    const b: FeatureEngine = createFeatureEngine({ redis: single, prefix: `${ns}:x:` });
    const events = Array.from({ length: 200 }, (_, i) =>
      i % 3 === 0
        ? wd(`c${i}`, T0 + i * 7 * MIN, 1000 + i, {
            account_id: `acct-${i % 17}`,
            destination_id: `ben-${i % 5}`,
          })
        : pay(`c${i}`, T0 + i * 7 * MIN, 100 + i, {
            account_id: `acct-${i % 17}`,
            merchant_id: `m-${i % 11}`,
            device_id: `d-${i % 13}`,
          }),
    );
    for (let i = 0; i < events.length; i += 50) {
      const x = await a.computeBatch(events.slice(i, i + 50));
      const y = await b.computeBatch(events.slice(i, i + 50));
      expect(Array.from(x.matrix)).toEqual(Array.from(y.matrix));
    }
    // Keys of different accounts spread over the masters.
    const perMaster = await Promise.all(cluster.nodes('master').map((n) => n.dbsize()));
    expect(perMaster.filter((n) => n > 0)).toHaveLength(3);
  });

  it('equals the reference implementation on random streams', async () => {
    await propertyAgainstReference(cluster, `${ns}:prop`, 15);
    await propertyAgainstReference(cluster, `${ns}:long`, 15, 40);
  });
});
