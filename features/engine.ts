import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { fail, FraudstreamError } from '../lib/errors.js';
import type { Label, ScoringEvent } from '../schemas/index.js';
import { assembleRow, entityIdsInto, type EntityRaw } from './assemble.js';
import {
  applyEvent,
  applyFraudLabel,
  decodeState,
  encodeState,
  keepMs,
  newRaw,
  newState,
  rememberId,
  seenBefore,
  type EngineLimits,
  type EntityState,
  type EventInput,
  type HeldRow,
} from './core.js';
import { ENTITIES, FEATURE_NAMES, specHash } from './spec.js';
import {
  decodeRow,
  encodeOps,
  encodeRowInto,
  lblRecord,
  opBytes,
  opKeys,
  RECORD_CHUNK_BYTES,
  rowMax,
  WRITE_CHUNK_BYTES,
  WRITE_CMD,
  WRITE_LUA,
  type Lookup,
  type Op,
  type RecordFormat,
} from './writes.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** How long a flush encodes before it lets the event loop serve others (ms). */
const SLICE_MS = 2;
/** Records encoded and sent per slice of a big write (opBytes' estimate: about a thousand rows). */
const RECORD_SLICE_BYTES = 256 * 1024;
const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * When the engine writes to Redis (docs/features.md, "Durability"):
 * - `through`: every computeBatch/applyLabels, before it resolves;
 * - `checkpoint`: only on flush() (and computeBatch/applyLabels called with `{ flush: true }`); the
 *   caller makes a flush its commit point (the Kafka scorer: before it commits offsets);
 * - `behind`: on flush() and close(), states only; dedupe and label-lookup records stay in the process.
 */
export type WriteMode = 'through' | 'checkpoint' | 'behind';

/** Per call: `flush` overrides the mode's default (true for `through`, else false). */
export interface WriteOptions {
  flush?: boolean;
}

export interface FeatureEngineOptions {
  redis: Redis | Cluster;
  /** Key prefix, e.g. `fs:` live or `replay:` for replay. No braces: the hash tag follows it. */
  prefix?: string;
  /** How late (event time, behind the entity's newest event) an event may be and still update. Default 24 h. */
  allowedLatenessMs?: number;
  /** How long (the account's event time) a repeated event_id is recognised. Default 7 days. */
  dedupeHorizonMs?: number;
  /** How long after an event a label for it can still be applied. Default 90 days. */
  labelHorizonMs?: number;
  /**
   * `through` (default): every computeBatch/applyLabels writes what it changed (entity states, dedupe
   * and label-lookup records) to Redis in one atomic call before it resolves, so a crash loses nothing
   * that was answered (inline scoring asks for this per call). `checkpoint`: the same writes, made only
   * by flush() — the Kafka scorer flushes before it commits offsets, so a crash re-reads exactly the
   * events whose changes were not written, and an entity changed by many events of a checkpoint is
   * written once. `behind`: states are written back on flush() and close(); dedupe and label-lookup
   * records stay in this process (replay: one pass, one owner).
   */
  writeMode?: WriteMode;
  /** The namespace is known to be empty (replay clears it first): nothing is read back from Redis. */
  fresh?: boolean;
  /**
   * The only event ids a FRAUD label can arrive for (replay knows its labels in advance): other events
   * keep no label lookup. Unset: every event keeps one (live, where labels are not known ahead).
   */
  labelledEvents?: ReadonlySet<string>;
  /**
   * The event ids that may be seen more than once (replay reads its whole input first): a superset is
   * fine, a missing one is not. Other events keep no dedupe record (id and row): none can repeat them.
   * Only with `fresh` (a stored state may have seen any id). Unset: every event keeps one (live).
   */
  repeatableEvents?: { has(eventId: string): boolean };
  /** Entity states kept in this process (least recently used are dropped first). Default 200,000. */
  maxCachedEntities?: number;
  /**
   * Single Redis: the connection a write too big for one call sends its dedupe rows and label lookups
   * on (docs/features.md, the write modes). Default: one made from `redis` on first use, closed by close();
   * one passed here is the caller's to close.
   */
  recordsRedis?: Redis;
  /** How long the namespace lease lasts without renewal (ms). Default 10 s; renewed every third of it. */
  leaseMs?: number;
}

export interface FeatureBatch {
  /** rows × cols, row-major, in spec order. */
  matrix: Float32Array;
  rows: number;
  cols: number;
  /** 1 where the event id had been seen before (its first vector is returned, nothing changes). */
  duplicate: Uint8Array;
  /** 1 where the event was later than the allowed lateness for its account: scored, not added. */
  late: Uint8Array;
}

export interface FeatureEngine {
  readonly names: readonly string[];
  readonly specHash: string;
  readonly cols: number;
  readonly prefix: string;
  readonly writeMode: WriteMode;
  /**
   * Features of each event from the history before it, then adds it. Entity states are computed in
   * this process (features/core.ts) from a cache of Redis; entities not cached are read in one
   * pipelined round trip, and (write-through) the changes go back in one atomic call: a warm batch is one
   * round trip. Calls that overlap (and applyLabels calls) are computed one at a time, in call order.
   */
  computeBatch(events: readonly ScoringEvent[], opts?: WriteOptions): Promise<FeatureBatch>;
  /** Counts confirmed-fraud labels on the labelled events' merchant, device and destination. */
  applyLabels(labels: readonly Label[], opts?: WriteOptions): Promise<{ applied: number }>;
  /** Writes every change not yet in Redis; resolves when Redis has it. */
  flush(): Promise<void>;
  /**
   * Flushes (unless `flush: false`: the caller is about to delete the namespace), then gives up the
   * namespace lease.
   */
  close(opts?: { flush?: boolean }): Promise<void>;
  /** Counters for metrics and benchmarks. */
  stats(): { cached: number; reads: number; writes: number; roundTrips: number };
}

const RENEW_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

function storeError(e: unknown): never {
  if (e instanceof FraudstreamError) throw e;
  fail('FEATURE_STORE', (e as Error).message, undefined, e);
}

export function createFeatureEngine(opts: FeatureEngineOptions): FeatureEngine {
  const prefix = opts.prefix ?? 'fs:';
  if (/[{}]/.test(prefix))
    fail('BAD_CONFIG', `feature key prefix ${JSON.stringify(prefix)} must not contain braces`);
  const lim: EngineLimits = {
    allowedLatenessMs: opts.allowedLatenessMs ?? DAY,
    dedupeHorizonMs: opts.dedupeHorizonMs ?? 7 * DAY,
  };
  const lateness = lim.allowedLatenessMs;
  const labelHorizon = opts.labelHorizonMs ?? 90 * DAY;
  const keep = keepMs(lateness);
  const mode: WriteMode = opts.writeMode ?? 'through';
  const maxCached = opts.maxCachedEntities ?? 200_000;
  const leaseMs = opts.leaseMs ?? 10_000;
  const redis = opts.redis;
  const isCluster = redis instanceof Cluster;
  const cols = FEATURE_NAMES.length;
  const base = (k: number, id: string) => `${prefix}{${ENTITIES[k]!.tag}:${id}}`;

  const cache = new Map<string, EntityState>();
  /**
   * The cache again, per entity kind by the event's own id: a batch finds its cached entities without
   * building their keys (a string per entity and event) or searching one map of every kind.
   * Kept with `cache` by cachePut and cacheDrop.
   */
  const byId: Map<string, EntityState>[] = ENTITIES.map(() => new Map());
  const cachePut = (key: string, kind: number, id: string, s: EntityState) => {
    s.k = key;
    cache.set(key, s);
    byId[kind]!.set(id, s);
  };
  /** `<prefix>{<tag>:<id>}` -> [kind, id] (tags hold no colon; ids may). */
  const tagKind = new Map(ENTITIES.map((d, k) => [d.tag, k]));
  const cacheDrop = (key: string) => {
    cache.delete(key);
    const inner = key.slice(prefix.length + 1, -1);
    const c = inner.indexOf(':');
    byId[tagKind.get(inner.slice(0, c))!]!.delete(inner.slice(c + 1));
  };
  let fresh = opts.fresh ?? false;
  const labelled = opts.labelledEvents;
  const repeatable = opts.repeatableEvents;
  if (repeatable && !fresh)
    fail('BAD_CONFIG', 'repeatableEvents needs a fresh namespace: a stored state may have seen any id');
  /** Entity keys changed since the last flush (each once: its state's `dirty` flag is set). */
  let dirty: string[] = [];
  const markDirty = (key: string, s: EntityState) => {
    if (s.dirty) return;
    s.dirty = true;
    dirty.push(key);
  };
  /*
   * Dedupe rows and label lookups live on the account's cached state (EntityState.rows and .lb, by
   * event id): not yet written (write-through), or held (behind). A row is its record, encoded when
   * computed into the engine's slabs (holdRow); a lookup is the event itself.
   */
  /** Accounts holding rows or lookups not yet written (write-through). */
  let dirtyAccounts: string[] = [];
  /** Label lookups consumed by a label, to delete from Redis with the next write (write-through). */
  const lblDeletes = new Set<string>();
  let watermark = 0;
  const counters = { reads: 0, writes: 0, roundTrips: 0 };

  // --- Namespace lease: one writer per namespace, because the states are computed here. -------------
  const owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const leaseKey = `${prefix}owner`;
  let leased: Promise<void> | null = null;
  let renewTimer: NodeJS.Timeout | null = null;
  let lost: string | null = null;

  async function acquire(): Promise<void> {
    const deadline = Date.now() + leaseMs + 2000;
    for (;;) {
      const ok = await redis.set(leaseKey, owner, 'PX', leaseMs, 'NX');
      if (ok === 'OK') break;
      const holder = await redis.get(leaseKey);
      if (holder === owner) break;
      // A crashed owner's lease runs out by itself; a live one keeps renewing it.
      if (Date.now() > deadline)
        fail(
          'FEATURE_STORE',
          `the feature namespace ${JSON.stringify(prefix)} is in use by ${holder ?? 'another process'}: ` +
            `one process computes a namespace's features (give each scorer or replay its own prefix)`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
    renewTimer = setInterval(
      () => {
        void (redis.eval(RENEW_LUA, 1, leaseKey, owner, leaseMs) as Promise<number>).then(
          (n) => {
            if (Number(n) !== 1)
              lost = `the lease on ${JSON.stringify(prefix)} was lost (held by someone else)`;
          },
          () => undefined, // Redis unreachable: the next renewal or write will tell.
        );
      },
      Math.max(100, Math.floor(leaseMs / 3)),
    );
    renewTimer.unref();
  }

  const ready = () => {
    if (lost) fail('FEATURE_STORE', lost);
    leased ??= acquire().catch((e) => {
      leased = null;
      storeError(e);
    });
    return leased;
  };

  // --- Redis I/O: one round trip per call. ---------------------------------------------------------
  async function readStates(keys: string[]): Promise<(Buffer | null)[]> {
    counters.reads += keys.length;
    counters.roundTrips++;
    try {
      if (isCluster) return await Promise.all(keys.map((k) => redis.getBuffer(`${k}:s`)));
      return await (redis as Redis).mgetBuffer(keys.map((k) => `${k}:s`));
    } catch (e) {
      storeError(e);
    }
  }

  async function readBuffers(keys: string[]): Promise<(Buffer | null)[]> {
    counters.reads += keys.length;
    counters.roundTrips++;
    try {
      if (isCluster) return await Promise.all(keys.map((k) => redis.getBuffer(k)));
      return await (redis as Redis).mgetBuffer(keys);
    } catch (e) {
      storeError(e);
    }
  }

  type Writer = { [WRITE_CMD]: (blob: Buffer) => unknown };
  /**
   * The connection a big write's records go on (single Redis, made on first use): its calls are all
   * sent at once, and Redis runs the engine's reads, on the main connection, between them.
   */
  let records: Redis | null = opts.recordsRedis ?? null;
  let ownRecords = false;
  const recordConn = (): Redis => {
    if (!records) {
      records = (redis as Redis).duplicate();
      // Its failures reach the write that used it; without a listener ioredis would print each one.
      records.on('error', () => undefined);
      ownRecords = true;
    }
    if (typeof (records as unknown as Writer)[WRITE_CMD] !== 'function')
      records.defineCommand(WRITE_CMD, { lua: WRITE_LUA, numberOfKeys: 0 });
    return records;
  };
  const fmt: RecordFormat = {
    rowTtl: String(lim.dedupeHorizonMs),
    lblTtl: String(labelHorizon),
    cols,
    // Reused across writes (an inline answer's write is a few hundred bytes; a checkpoint's, megabytes).
    scratch: Buffer.allocUnsafe(64 * 1024),
  };
  /**
   * Settles once the latest write's call on the engine's connection has been sent (or it has none to
   * send). Each write sends its call there only after the write before it sent its own: Redis runs one
   * connection's calls in order, so a state never lands over a newer one. Without it, a write started
   * while a big write waits between its two steps (an inline answer during a checkpoint) would land
   * first, and the big write's older states over it.
   */
  let mainTurn: Promise<void> = Promise.resolve();
  /**
   * Writes `ops` and the flush's `pending` states (encoded here, a slice at a time, unless a batch
   * encoded one first). The write's turn is taken at the call, before anything awaits: a later write
   * may hold newer states of the same entities, so writes send in call order.
   */
  async function write(ops: Op[], pending: readonly Pending[] = []): Promise<void> {
    if (!ops.length && !pending.length) return;
    let keys = pending.length;
    for (const o of ops) keys += opKeys(o);
    counters.writes += keys;
    counters.roundTrips++;
    const before = mainTurn;
    let sent!: () => void;
    mainTurn = new Promise<void>((res) => (sent = res));
    try {
      if (pending.length) {
        await encodeInSlices(pending);
        // States first, as takeOps used to list them.
        ops = [...pending.map((p): Op => ['state', `${p.k}:s`, p.buf!, keep]), ...ops];
      }
      if (isCluster) {
        // Auto-pipelined per master, in parallel; a cluster has no MULTI across slots. Each SET is
        // sent when called, so calling them in turn keeps a newer state behind an older one.
        await before;
        const sets: Promise<unknown>[] = [];
        for (const o of ops) {
          if (o[0] === 'del') sets.push(redis.del(o[1]));
          else if (o[0] === 'state') sets.push(redis.set(o[1], o[2], 'PX', o[3]));
          else {
            for (const [id, h] of o[2]) {
              sets.push(redis.set(rowKey(o[1], id), h.b.subarray(h.o, h.o + h.n), 'PX', fmt.rowTtl));
            }
            for (const [id, ev] of o[3])
              sets.push(redis.set(lblKey(o[1], id), lblRecord(ev as Lookup), 'PX', fmt.lblTtl));
          }
        }
        sent();
        await Promise.all(sets);
        return;
      }
      const single = redis as Redis;
      if (typeof (single as unknown as Writer)[WRITE_CMD] !== 'function')
        single.defineCommand(WRITE_CMD, { lua: WRITE_LUA, numberOfKeys: 0 });
      const send = async (blobs: Buffer[], atomic: boolean, conn = single): Promise<number> => {
        const tx = atomic && blobs.length > 1 ? conn.multi() : conn.pipeline();
        for (const blob of blobs) (tx as unknown as Writer)[WRITE_CMD](blob);
        const res = (await tx.exec()) ?? [];
        let stored = 0;
        for (const [err, n] of res) {
          if (err) storeError(err);
          stored += Number(n);
        }
        return stored;
      };
      let bytes = 0;
      for (const o of ops) bytes += opBytes(o);
      /** Sends the call once the turn comes (exec writes to the socket at once), and gives the turn on. */
      const inTurn = async (blobs: Buffer[]): Promise<number> => {
        await before;
        const p = send(blobs, true);
        sent();
        return p;
      };
      let stored = 0;
      try {
        if (bytes <= WRITE_CHUNK_BYTES) {
          // One call (an inline answer's write, a small checkpoint): atomic by itself.
          stored = await inTurn(encodeOps(ops, fmt));
        } else {
          // Too big for one call (a checkpoint, write-behind's last flush). The dedupe rows and label
          // lookups go first, in small calls sent together on the records connection: one without its
          // account's state is harmless (the event is not in the account's dedupe set, so it is decided
          // again and its record rewritten), and between calls Redis serves the next batch's reads.
          // Then the states and deletions in one MULTI: a crash of this process mid-write leaves them as
          // before it.
          // The records are encoded and sent a slice at a time, the event loop served between slices.
          const held = ops.filter((o) => o[0] === 'held');
          if (held.length) {
            counters.roundTrips++;
            const conn = recordConn();
            const sends: Promise<number>[] = [];
            let from = 0;
            let slice = performance.now();
            while (from < held.length) {
              let to = from;
              for (let b = 0; to < held.length && b < RECORD_SLICE_BYTES; to++) b += opBytes(held[to]!);
              const p = send(encodeOps(held.slice(from, to), fmt, RECORD_CHUNK_BYTES), false, conn);
              p.catch(() => undefined); // awaited below, with the others
              sends.push(p);
              from = to;
              if (from < held.length && performance.now() - slice >= SLICE_MS) {
                await breathe();
                slice = performance.now();
              }
            }
            for (const n of await Promise.all(sends)) stored += n;
          }
          const rest = held.length ? ops.filter((o) => o[0] !== 'held') : ops;
          if (rest.length) stored += await inTurn(encodeOps(rest, fmt));
        }
      } finally {
        sent(); // nothing (more) to send on the engine's connection: the next write may go
      }
      if (stored !== keys) fail('FEATURE_STORE', `the write stored ${stored} of ${keys} keys`);
    } catch (e) {
      storeError(e);
    } finally {
      sent();
    }
  }

  /*
   * A flush takes its states at the call, as one point in time with the rows it takes, but encodes
   * them later, a slice at a time (a checkpoint of a busy second held the event loop for 0.2-0.3 s
   * when it encoded them all at once). Until then a state is pending: a batch or a label about to
   * change it encodes it first, so what is written is the state as it was when the flush was called.
   */
  interface Pending {
    k: string;
    s: EntityState;
    buf: Buffer | null;
  }
  const pendingOf = new Map<EntityState, Pending>();
  /** Encodes a pending state now (once), before anything changes it. */
  const settle = (s: EntityState) => {
    const p = pendingOf.get(s);
    if (!p) return;
    pendingOf.delete(s);
    p.buf = encodeState(s);
  };
  async function encodeInSlices(pending: readonly Pending[]): Promise<void> {
    let slice = performance.now();
    for (let i = 0; i < pending.length; i++) {
      if (pending[i]!.buf === null) settle(pending[i]!.s);
      if ((i & 63) === 63 && performance.now() - slice >= SLICE_MS) {
        await breathe();
        slice = performance.now();
      }
    }
  }

  /**
   * The states of the given entity keys (distinct), from the cache or, for those not cached, read from
   * Redis in one round trip; in the keys' order, each marked used.
   */
  const loading = new Map<string, Promise<void>>();
  let tick = 0;
  async function load(
    keys: readonly string[],
    kinds: readonly number[],
    ids: readonly string[],
  ): Promise<EntityState[]> {
    const roleOf = (i: number) => ENTITIES[kinds[i]!]!.role;
    const out: EntityState[] = new Array(keys.length);
    const missing: number[] = [];
    const waits: Promise<void>[] = [];
    let waited: number[] | undefined;
    for (let i = 0; i < keys.length; i++) {
      const s = cache.get(keys[i]!);
      if (s) {
        out[i] = s;
        continue;
      }
      const p = loading.get(keys[i]!);
      if (p) {
        waits.push(p);
        (waited ??= []).push(i);
      } else missing.push(i);
    }
    if (missing.length) {
      if (fresh) {
        for (const i of missing) cachePut(keys[i]!, kinds[i]!, ids[i]!, (out[i] = newState(roleOf(i))));
      } else {
        const ks = missing.map((i) => keys[i]!);
        const p = readStates(ks).then((vals) => {
          vals.forEach((v, j) => {
            const i = missing[j]!;
            const k = ks[j]!;
            const had = cache.get(k);
            if (had) {
              out[i] = had;
              return;
            }
            try {
              cachePut(k, kinds[i]!, ids[i]!, (out[i] = v ? decodeState(v, roleOf(i)) : newState(roleOf(i))));
            } catch (e) {
              fail('FEATURE_STORE', `${k}:s: ${(e as Error).message}`);
            }
          });
        });
        for (const k of ks) loading.set(k, p);
        try {
          await p;
        } finally {
          for (const k of ks) loading.delete(k);
        }
      }
    }
    if (waits.length) {
      await Promise.all(waits);
      for (const i of waited!) out[i] = cache.get(keys[i]!)!;
    }
    for (const s of out) s.used = ++tick;
    return out;
  }

  function touch(key: string): EntityState {
    const s = cache.get(key)!;
    s.used = ++tick;
    return s;
  }

  /*
   * Dedupe rows are encoded as they are computed, one after another into slabs: a held row costs its
   * record (about 200 bytes on the simulated histories) instead of keeping its batch's whole matrix
   * (512 rows of 4-byte features) alive until written, or, in replay, for the dedupe horizon; and the
   * caller gets the batch's matrix itself, not a copy.
   */
  const SLAB_BYTES = 1 << 20;
  let slab = Buffer.allocUnsafeSlow(0);
  let slabAt = 0;
  function holdRow(m: Float32Array, o: number, late: number): HeldRow {
    if (slabAt + rowMax(cols) > slab.length) {
      slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      slabAt = 0;
    }
    const start = slabAt;
    slabAt = encodeRowInto(m, o, late, cols, slab, start);
    return { b: slab, o: start, n: slabAt - start };
  }

  // --- Flushing. -------------------------------------------------------------------------------
  let lastFlush: Promise<void> = Promise.resolve();
  function takeOps(): [Op[], Pending[]] {
    const ops: Op[] = [];
    const pending: Pending[] = [];
    for (const k of dirty) {
      const s = cache.get(k);
      if (!s?.dirty) continue;
      s.dirty = false;
      const p: Pending = { k, s, buf: null };
      pendingOf.set(s, p);
      pending.push(p);
    }
    dirty = [];
    if (mode !== 'behind') {
      for (const k of dirtyAccounts) {
        const s = cache.get(k);
        if (s) heldOps(k, s, ops);
      }
      dirtyAccounts = [];
      for (const k of lblDeletes) ops.push(['del', k]);
      lblDeletes.clear();
    }
    return [ops, pending];
  }
  /** Moves an account's held dedupe rows and label lookups into a write op (whole: no copy). */
  function heldOps(k: string, s: EntityState, ops: Op[]): void {
    ops.push(['held', k, s.rows!, s.lb!]);
    s.rows = new Map();
    s.lb = new Map();
  }
  /** Writes that failed so far: their changes were taken back (marked to write again) on failure. */
  let failures = 0;
  /**
   * Resolves once everything changed before the call is in Redis. A write still in flight from an
   * earlier flush (or an inline answer's) is waited for; if it fails after this flush took its own
   * changes, those it had taken are not in this one, so this flush fails too (the checkpoint that
   * called it must not commit offsets), and the next flush writes them.
   */
  function flush(): Promise<void> {
    const failuresBefore = failures;
    const [ops, pending] = takeOps();
    const earlierOk = () => {
      if (failures !== failuresBefore)
        fail('FEATURE_STORE', 'an earlier feature write failed; its changes go with the next flush');
    };
    if (!ops.length && !pending.length) return lastFlush.then(earlierOk);
    const before = lastFlush;
    const p = write(ops, pending).then(
      () => before.then(earlierOk),
      (e: unknown) => {
        // Not in Redis: keep it all to write with the next flush (states are the cached ones).
        for (const { k, s } of pending) {
          pendingOf.delete(s);
          const cached = cache.get(k);
          if (cached) markDirty(k, cached);
        }
        // A flush's ops are records and deletions only: its states travel as `pending`, above.
        for (const o of ops) {
          if (o[0] === 'del') lblDeletes.add(o[1]);
          else if (o[0] === 'held') {
            // Held again on the account (still cached: it is dirty, and dirty states are kept).
            const s = cache.get(o[1]);
            if (!s) continue;
            if (!dirtyAccounts.includes(o[1])) dirtyAccounts.push(o[1]);
            for (const [id, h] of o[2]) if (!s.rows!.has(id)) s.rows!.set(id, h);
            for (const [id, ev] of o[3])
              if (!s.lb!.has(id) && !lblDeletes.has(lblKey(o[1], id))) s.lb!.set(id, ev);
          }
        }
        failures++;
        throw e;
      },
    );
    lastFlush = p.catch(() => undefined);
    return p;
  }

  /**
   * Runs the calls that change the engine's state (computeBatch, applyLabels) one at a time, in call
   * order: each reads and writes the cache across awaits (entity reads, a trim's write), so two that
   * overlapped could compute against each other's half-done state or evict what the other just
   * changed. A call's turn ends when its state is computed; the write it started (`[, flushing]`) is
   * awaited after, so the next call computes while Redis writes.
   */
  let turn: Promise<void> = Promise.resolve();
  async function exclusive<T>(body: () => Promise<[T, Promise<void> | undefined]>): Promise<T> {
    const prev = turn;
    let release!: () => void;
    turn = new Promise<void>((r) => (release = r));
    await prev;
    let out: [T, Promise<void> | undefined];
    try {
      out = await body();
    } finally {
      release();
    }
    if (out[1]) await out[1];
    return out[0];
  }

  /** Keeps the cache within its bound: flushes, then drops the least recently used states. */
  async function trim(): Promise<void> {
    if (cache.size <= maxCached) return;
    // A state is dropped only once Redis has it: a write in flight sends its states last.
    if (dirty.length) await flush();
    else await lastFlush;
    // States written out can be read back; after this the namespace is no longer known to be empty.
    fresh = false;
    // Least recently used first, down to 90 % of the bound.
    const byUse = [...cache].filter(([, s]) => !s.dirty).sort((a, b) => a[1].used - b[1].used);
    const gone: string[] = [];
    const ops: Op[] = [];
    for (const [k, s] of byUse) {
      if (cache.size - gone.length <= maxCached * 0.9) break;
      gone.push(k);
      // Behind: what the account holds goes to Redis with it, where lookups find it from now on.
      if (s.rows && (s.rows.size || s.lb!.size)) heldOps(k, s, ops);
    }
    if (ops.length) await write(ops);
    for (const k of gone) cacheDrop(k);
  }

  /**
   * Behind: an account's label lookups older than the label horizon can never be used again (a day
   * of lateness as margin: labels are merged by labelled_at, the watermark is event time).
   */
  function pruneLookups(lb: Map<string, unknown>) {
    for (const [id, ev] of lb) {
      if (
        typeof ev !== 'string' &&
        (ev as ScoringEvent).event.event_time >= watermark - labelHorizon - lateness
      )
        break;
      lb.delete(id);
    }
  }

  /** One reusable EntityRaw per entity kind, and the event input: applyEvent fills them per event. */
  const rawScratch = ENTITIES.map(() => newRaw());
  const input: EventInput = { t: 0, amount: 0 };
  const dims: (string | null | undefined)[] = [null, null, null, null, null];
  const locScratch: [number, number] = [0, 0];

  const rowKey = (acctBase: string, eventId: string) => `${acctBase}:q:${eventId}`;
  const lblKey = (acctBase: string, eventId: string) => `${acctBase}:lbl:${eventId}`;

  return {
    names: FEATURE_NAMES,
    specHash: specHash(),
    cols,
    prefix,
    writeMode: mode,

    computeBatch(events, wo) {
      return exclusive(async () => {
        await ready();
        const n = events.length;
        // The batch's matrix, handed to the caller: the dedupe rows are held encoded, not as views of it.
        const own = new Float32Array(n * cols);
        const duplicate = new Uint8Array(n);
        const late = new Uint8Array(n);
        // Per event and entity kind, the index of its state in `states` (-1: the event has none).
        // Cached states are found by kind and id; the others are read (or made) once each, by key.
        const E = ENTITIES.length;
        const at = new Int32Array(n * E);
        /** Per event and entity kind, its id (null: none). */
        const idsOf = new Array<string | null>(n * E);
        const states: EntityState[] = [];
        const missKeys: string[] = [];
        const missKinds: number[] = [];
        const missIds: string[] = [];
        const missAt: number[] = [];
        let missIndex: Map<string, number> | undefined;
        for (let r = 0; r < n; r++) {
          entityIdsInto(events[r]!, idsOf, r * E);
          for (let k = 0; k < E; k++) {
            const id = idsOf[r * E + k];
            if (id === null || id === undefined) {
              at[r * E + k] = -1;
              continue;
            }
            const s = byId[k]!.get(id);
            if (s) {
              s.used = ++tick;
              at[r * E + k] = states.length;
              states.push(s);
              continue;
            }
            const key = base(k, id);
            missIndex ??= new Map();
            let i = missIndex.get(key);
            if (i === undefined) {
              i = states.length;
              missIndex.set(key, i);
              states.push(undefined as unknown as EntityState); // filled below
              missKeys.push(key);
              missKinds.push(k);
              missIds.push(id);
              missAt.push(i);
            }
            at[r * E + k] = i;
          }
        }
        if (missKeys.length) {
          const got = await load(missKeys, missKinds, missIds);
          for (let j = 0; j < got.length; j++) states[missAt[j]!] = got[j]!;
        }

        // From here to the end of the loop nothing awaits: the batch is computed against one state.
        const fetch: [row: number, key: string][] = [];
        const raws: (EntityRaw | null)[] = new Array(ENTITIES.length);
        const scratch = rawScratch;
        for (let r = 0; r < n; r++) {
          const ev = events[r]!;
          const e = ev.event;
          const ib = r * E;
          const acct = states[at[r * E]!]!;
          const acctKey = acct.k;
          const eid = e.event_id;
          // An id that cannot repeat needs no dedupe record: not looked up, not remembered, no row.
          const track = repeatable === undefined || repeatable.has(eid);
          if (track && seenBefore(acct, eid, lim)) {
            duplicate[r] = 1;
            const held = acct.rows!.get(eid);
            if (held) {
              late[r] = decodeRow(held.b.subarray(held.o, held.o + held.n), own, r * cols, cols)!;
            } else fetch.push([r, rowKey(acctKey, eid)]);
            continue;
          }
          if (e.event_time > watermark) watermark = e.event_time;
          // Account dimensions: instrument, merchant, device, destination, country (reused per event).
          dims[0] = idsOf[ib + 1];
          dims[1] = idsOf[ib + 4];
          dims[2] = idsOf[ib + 2];
          dims[3] = idsOf[ib + 5];
          dims[4] = e.country;
          let loc: [number, number] | null = null;
          if (e.lat !== null && e.lon !== null) {
            loc = locScratch;
            loc[0] = e.lat;
            loc[1] = e.lon;
          }
          for (let k = 0; k < E; k++) {
            const i = at[r * E + k]!;
            if (i < 0) {
              raws[k] = null;
              continue;
            }
            const s = states[i]!;
            const role = ENTITIES[k]!.role;
            const raw = scratch[k]!;
            input.t = e.event_time;
            input.amount = e.amount_minor;
            input.dims = role === 'a' ? dims : undefined;
            input.loc = loc;
            if (pendingOf.size !== 0) settle(s);
            if (applyEvent(s, role, input, lim, raw)) markDirty(s.k, s);
            raws[k] = raw;
          }
          const isLate = raws[0]!.late;
          late[r] = isLate ? 1 : 0;
          assembleRow(ev, raws, own, r * cols);
          // The dedupe record: the late flag and the row, returned unchanged for a repeated event_id.
          const rows = acct.rows!;
          // Write-through holds only what is not yet written: older rows are in Redis, with a TTL.
          if (track) for (const g of rememberId(acct, eid, lim)) rows.delete(g);
          const lookup = !isLate && (labelled === undefined || labelled.has(eid));
          // Nothing held yet since the last write: the account joins the next write's list.
          if (mode !== 'behind' && (track || lookup) && rows.size === 0 && acct.lb!.size === 0)
            dirtyAccounts.push(acctKey);
          markDirty(acctKey, acct);
          if (track) rows.set(eid, holdRow(own, r * cols, late[r]!));
          if (lookup) {
            acct.lb!.set(eid, ev);
            if (mode === 'behind') pruneLookups(acct.lb!);
          }
        }

        if (fetch.length) {
          // A row taken by a write still in flight may not be sent yet: read after that write.
          await lastFlush;
          const got = await readBuffers(fetch.map(([, k]) => k));
          got.forEach((buf, i) => {
            const [r, k] = fetch[i]!;
            const l = buf ? decodeRow(buf, own, r * cols, cols) : null;
            if (l === null) fail('FEATURE_STORE', `the dedupe record ${k} is missing or malformed`);
            late[r] = l;
          });
        }
        const flushing = (wo?.flush ?? mode === 'through') ? flush() : undefined;
        try {
          await trim();
        } catch (e) {
          flushing?.catch(() => undefined);
          throw e;
        }
        return [{ matrix: own, rows: n, cols, duplicate, late }, flushing];
      });
    },

    applyLabels(labels, wo) {
      return exclusive(async () => {
        await ready();
        const fraud = labels.filter((l) => l.label === 'FRAUD');
        if (!fraud.length) return [{ applied: 0 }, undefined];
        const keys = fraud.map((l) => lblKey(base(0, l.account_id), l.event_id));
        const heldOf = (i: number) => cache.get(base(0, fraud[i]!.account_id))?.lb?.get(fraud[i]!.event_id);
        // Lookups not held here (write-through holds none after a flush) are read from Redis.
        const unknown = [...new Set(keys.filter((k, i) => heldOf(i) === undefined && !lblDeletes.has(k)))];
        const fetched = new Map<string, string | null>();
        if (unknown.length && !fresh) {
          await lastFlush; // as for dedupe rows: a lookup taken by a write in flight is read after it
          const got = await readBuffers(unknown);
          unknown.forEach((k, i) => fetched.set(k, got[i] ? got[i]!.toString('utf8') : null));
        }
        // Entities to load for the labels found.
        const targets: [label: number, key: string][] = [];
        const toLoad = new Map<string, [kind: number, id: string]>();
        const found = new Map<string, string>();
        for (let i = 0; i < fraud.length; i++) {
          const k = keys[i]!;
          const held = heldOf(i) as Lookup | undefined;
          const rec =
            held !== undefined ? lblRecord(held) : ((lblDeletes.has(k) ? null : fetched.get(k)) ?? null);
          if (rec === null || found.has(k)) continue;
          const [merchant, device, destination, at] = rec.split('\t');
          // A label for an event older than the label horizon changes nothing.
          if (fraud[i]!.labelled_at - Number(at) > labelHorizon) continue;
          found.set(k, rec);
          for (const [e, id] of [
            [4, merchant],
            [2, device],
            [5, destination],
          ] as const) {
            if (!id) continue;
            const key = base(e, id);
            toLoad.set(key, [e, id]);
            targets.push([i, key]);
          }
        }
        const loads = [...toLoad.values()];
        await load(
          [...toLoad.keys()],
          loads.map((l) => l[0]),
          loads.map((l) => l[1]),
        );
        // Applied once: a lookup record is consumed by the first label that finds it.
        let applied = 0;
        const consumed = new Set<string>();
        for (let i = 0; i < fraud.length; i++) {
          const k = keys[i]!;
          if (!found.has(k) || consumed.has(k) || lblDeletes.has(k)) continue;
          const acct = cache.get(base(0, fraud[i]!.account_id));
          const isHeld = acct?.lb?.has(fraud[i]!.event_id) ?? false;
          if (!isHeld && fetched.get(k) == null) continue;
          consumed.add(k);
          applied++;
          if (isHeld) acct!.lb!.delete(fraud[i]!.event_id);
          // What Redis holds (written already, or by a trim) is deleted with the next write.
          if (mode !== 'behind' || !isHeld) lblDeletes.add(k);
          for (const [li, key] of targets) {
            if (li !== i) continue;
            const s = touch(key);
            if (pendingOf.size !== 0) settle(s);
            applyFraudLabel(s, fraud[i]!.labelled_at, lateness);
            markDirty(key, s);
          }
        }
        return [{ applied }, (wo?.flush ?? mode === 'through') ? flush() : undefined];
      });
    },

    flush,

    async close(o) {
      try {
        if (o?.flush !== false) await flush();
      } finally {
        if (renewTimer) clearInterval(renewTimer);
        if (ownRecords) {
          records?.disconnect();
          records = null;
          ownRecords = false;
        }
        renewTimer = null;
        if (leased) {
          leased = null;
          await redis.eval(RELEASE_LUA, 1, leaseKey, owner).catch(() => undefined);
        }
      }
    },

    stats: () => ({ cached: cache.size, ...counters }),
  };
}
