/**
 * The feature engine's arithmetic: one entity's state and what one event or one label does to it.
 * Pure and synchronous — no I/O, no clock — so the scorer, inline scoring and replay (through
 * features/engine.ts) compute every feature with this one code. Semantics: docs/features.md; the
 * brute-force reference in test/reference.ts implements the same rules and property tests compare.
 *
 * Windows keep a running aggregate over the buckets [x-n+1, x] of the entity's newest bucket x, so an
 * in-order event reads its window in O(1) and a slide costs the buckets that leave it.
 */
import { DIMENSIONS, LABEL_WINDOW_INDEX, WINDOWS, type EntityDef } from './spec.js';
import type { EntityRaw } from './assemble.js';
import { writeUtf8 } from './writes.js';

export const DAY_MS = 86_400_000;

/** { bucket size (ms), buckets per window }: 1 min, 10 min, 1 h, 24 h, 7 d, 30 d (spec.ts WINDOWS). */
const G: readonly (readonly [number, number])[] = WINDOWS.map((w) => [w.bucketMs, w.buckets] as const);
/** The windows the label counts use (24 h, 7 d, 30 d), by index into G. */
const LG = LABEL_WINDOW_INDEX;
const NDIM = DIMENSIONS.length;
const floor = Math.floor;

/**
 * Doubles per ring slot: count, sum, max. A slot's bucket is not stored: an occupied slot s of a window
 * whose newest bucket is x holds the one bucket of [x-n+1, x] that is s mod n (bucketOf).
 */
const SLOT = 3;

/*
 * An entity's windows live in one Float64Array (no object per window: fewer objects for the GC to
 * trace and copy, and one contiguous block for applyEvent). Window i has a header at HDR * i:
 *   C count, S sum, Q sum of squares, M max over the buckets [x-n+1, x] (running aggregates);
 *   Y the bucket of the max (NaN: none); X the window's newest bucket (NaN: no event yet);
 *   K a bit per ring slot (n <= 31) holding a bucket of the current window: sums visit only those.
 * and a ring of n slots from RING_AT[i] (after the headers): bucket k in slot k mod n, occupied
 * while its K bit is set. Only the newest event's window [x-n+1, x] is kept (a slide clears the bits
 * of the buckets that leave it), so n slots always suffice and an occupied slot's bucket is implied.
 * The sums of squares (account, 30 d only) have a ring of their own at QRING, slot for slot.
 * Smaller is faster here: applyEvent's time is mostly waiting for these bytes from memory.
 */
const HDR = 7;
const C = 0;
const S_ = 1;
const Q = 2;
const M = 3;
const Y = 4;
const X = 5;
const K = 6;

/**
 * An account's values of one dimension, in three arrays in the order of when each was last seen,
 * oldest first: the distinct counts of a window are two binary searches on `t`, and a value is found by
 * comparing hashes (numbers side by side) before strings, newest first, where the next event's value
 * nearly always is. Forgetting drops a prefix. (Two maps per dimension before: a lookup and an update
 * per value and event, each reaching into memory the rest of the state does not share.)
 */
export interface DimValues {
  /** When each value was last seen, ascending. */
  t: number[];
  v: string[];
  /** hashString of each value. */
  h: number[];
}

/** A string's 32-bit hash: FNV-1a over its UTF-16 code units, then murmur3's finalizer. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** murmur3's 32-bit finalizer (FNV alone clusters on ids that differ in their last characters). */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export interface EntityState {
  /** Newest event time added; null before the first. */
  mx: number | null;
  /** The windows: headers and rings (layout above). */
  b: Float64Array;
  /**
   * Account: per dimension (instrument, merchant, device, destination, country), the values seen and
   * when each was last seen, oldest first (DimValues).
   */
  d: DimValues[] | null;
  /** Account: latest located event. */
  loc: [lat: number, lon: number, t: number] | null;
  /**
   * Label-informed entities: confirmed frauds per label-time bucket, for the 24 h, 7 d, 30 d windows;
   * null until the entity's first.
   */
  l: Map<number, number>[] | null;
  /** Account: event ids seen -> the account's newest event time when it was seen (the dedupe set). */
  ids: Map<string, number> | null;
  /**
   * rememberId's bookkeeping (not stored): the first id of `ids` in its order and its time, so a call
   * with nothing to forget does not start a walk; NaN: not known (walk once to learn it).
   */
  i0: number;
  k0: string | null;
  /** Last use, for the engine's cache (not stored). */
  used: number;
  /** The engine's bookkeeping (not stored): the state's key in the engine's cache ('' until cached). */
  k: string;
  /** The engine's bookkeeping (not stored): changed since the last flush. */
  dirty: boolean;
  /**
   * Account, the engine's (not stored with the state): dedupe rows by event id, and label lookups by
   * event id in insertion (event) order, held in the process until written (or for good: replay).
   */
  rows: Map<string, HeldRow> | null;
  lb: Map<string, unknown> | null;
}

/**
 * A dedupe row held in the process: its record (features/writes.ts, encodeRowInto), the bytes
 * [o, o + n) of a slab the engine fills row after row; the late flag is in the record.
 */
export interface HeldRow {
  b: Buffer;
  o: number;
  n: number;
}

export interface EngineLimits {
  allowedLatenessMs: number;
  dedupeHorizonMs: number;
}

/** How long an entity's state outlives its newest event (also its Redis TTL): 30 d + lateness + 1 d. */
export const keepMs = (latenessMs: number) => 30 * DAY_MS + latenessMs + DAY_MS;

/** Ring offsets of each window, after the headers, inside the entity's buffer. */
const RING_AT: number[] = [];
const RING0 = G.length * HDR;
const QRING = G.reduce((at, [, n]) => (RING_AT.push(at), at + n * SLOT), RING0);
/** The window whose buckets keep a sum of squares (the account's 30 d: mean and z-score). */
const QW = G.length - 1;
const BUF_LEN = QRING + G[QW]![1];
/** Ring slots over all windows. */
const NSLOTS = G.reduce((t, [, n]) => t + n, 0);

/**
 * The bucket an occupied slot holds, in a window of n buckets whose newest is x. Buckets are whole
 * numbers below 2^31 (the finest, 10 s, reaches it in the year 2650): int32 arithmetic, not a
 * floating-point remainder.
 */
const bucketOf = (x: number, slot: number, n: number) => x - (((((x | 0) - slot) % n) + n) % n);
/** A fresh buffer: every window without an event (X, Y NaN); ring slots are zero and unoccupied. */
const EMPTY = new Float64Array(BUF_LEN);
for (let i = 0; i < G.length; i++) EMPTY[i * HDR + X] = EMPTY[i * HDR + Y] = NaN;
const newBuf = () => EMPTY.slice();

/** A window's header, as numbers (tests and tools; the engine reads the buffer). */
export function windowOf(S: EntityState, i: number) {
  const h = i * HDR;
  const b = S.b;
  const nul = (v: number) => (Number.isNaN(v) ? null : v);
  return {
    c: b[h + C]!,
    s: b[h + S_]!,
    q: b[h + Q]!,
    m: b[h + M]!,
    y: nul(b[h + Y]!),
    x: nul(b[h + X]!),
    k: b[h + K]! | 0,
  };
}

export function newState(role: EntityDef['role']): EntityState {
  return {
    mx: null,
    b: newBuf(),
    d: role === 'a' ? Array.from({ length: NDIM }, newDim) : null,
    loc: null,
    l: null,
    ids: role === 'a' ? new Map() : null,
    i0: NaN,
    k0: null,
    used: 0,
    k: '',
    dirty: false,
    rows: role === 'a' ? new Map() : null,
    lb: role === 'a' ? new Map() : null,
  };
}

/** The event as the engine needs it. */
export interface EventInput {
  t: number;
  amount: number;
  /** Account only: instrument, merchant, device, destination, country (null: none). */
  dims?: readonly (string | null | undefined)[];
  /** Account only: [lat, lon] when located. */
  loc?: readonly [number, number] | null;
}

/** An EntityRaw to fill again and again (applyEvent writes every field its role reads). */
export function newRaw(): EntityRaw {
  return {
    duplicate: false,
    late: false,
    sinceMs: -1,
    windows: G.map(() => [0, 0, 0] as [number, number, number]),
    q30: 0,
    distinct24: new Array<number>(NDIM).fill(0),
    distinct30: new Array<number>(NDIM).fill(0),
    firstSeen: [0, 0, 0],
    prevLocation: null,
    fraud: [0, 0, 0],
  };
}

/** sumBuckets' result: count, sum, max, bucket of the max (NaN: none), sum of squares. */
const acc = new Float64Array(5);
/** applyEvent's scratch: each window's bucket of the event. */
const Bs = new Float64Array(G.length);
/** applyEvent's scratch: per account dimension, where the event's value is in DimValues (-1: not there). */
const seenAt = new Int32Array(NDIM);
/** applyEvent's scratch: per account dimension, the hash of the event's value. */
const hashes = new Float64Array(NDIM);

/** The index of the first time in ascending `ts` at or after `v` (ts.length: none). */
function lowerBound(ts: readonly number[], v: number): number {
  let lo = 0;
  let hi = ts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ts[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const newDim = (): DimValues => ({ t: [], v: [], h: [] });

/** Adds a value last seen at `t`, keeping the order (in event order: at the end). */
function insertDim(D: DimValues, t: number, v: string, h: number): void {
  const T = D.t;
  const V = D.v;
  const H = D.h;
  let k = T.length;
  T.push(t);
  V.push(v);
  H.push(h);
  for (; k > 0 && T[k - 1]! > t; k--) {
    T[k] = T[k - 1]!;
    V[k] = V[k - 1]!;
    H[k] = H[k - 1]!;
  }
  T[k] = t;
  V[k] = v;
  H[k] = h;
}

/** Moves value j to its new, later time `t`, keeping the order. */
function moveDim(D: DimValues, j: number, t: number): void {
  const T = D.t;
  const V = D.v;
  const H = D.h;
  const v = V[j]!;
  const h = H[j]!;
  let k = j;
  for (; k + 1 < T.length && T[k + 1]! <= t; k++) {
    T[k] = T[k + 1]!;
    V[k] = V[k + 1]!;
    H[k] = H[k + 1]!;
  }
  T[k] = t;
  V[k] = v;
  H[k] = h;
}

/** Forgets the values last seen before `t`. */
function dropDimBefore(D: DimValues, t: number): void {
  const T = D.t;
  const p = lowerBound(T, t);
  if (p === 0) return;
  for (const a of [T, D.v, D.h] as unknown[][]) {
    for (let k = p; k < a.length; k++) a[k - p] = a[k];
    a.length -= p;
  }
}

/** DimValues from (value, time) pairs in any order (a stored state), oldest first. */
function dimFrom(pairs: readonly (readonly [string, number])[]): DimValues {
  const sorted = pairs.slice().sort((a, b) => a[1] - b[1]);
  return { t: sorted.map((p) => p[1]), v: sorted.map((p) => p[0]), h: sorted.map((p) => hashString(p[0])) };
}

/**
 * Count, sum, max (and its bucket), sum of squares over the window's buckets in [lo, hi], into `acc`.
 * Visits the occupied slots only; of equal maxima the lowest bucket wins (as an ascending scan would).
 */
function sumBuckets(b: Float64Array, i: number, lo: number, hi: number): Float64Array {
  let c = 0;
  let s = 0;
  let mx = 0;
  let my = NaN;
  let q = 0;
  const ra = RING_AT[i]!;
  const n = G[i]![1];
  const x = b[i * HDR + X]!;
  let bits = b[i * HDR + K]! | 0;
  while (bits !== 0) {
    const bit = bits & -bits;
    bits ^= bit;
    const slot = 31 - Math.clz32(bit);
    const k = bucketOf(x, slot, n);
    if (k < lo || k > hi) continue;
    const o = ra + slot * SLOT;
    c += b[o]!;
    s += b[o + 1]!;
    const v = b[o + 2]!;
    if (v > mx || (v === mx && v > 0 && k < my)) {
      mx = v;
      my = k;
    }
    if (i === QW) q += b[QRING + slot]!;
  }
  acc[0] = c;
  acc[1] = s;
  acc[2] = mx;
  acc[3] = my;
  acc[4] = q;
  return acc;
}

/**
 * Reads the entity's features for an event from the history before it into `raw` (reused by the
 * caller: no allocation per event), then adds the event unless it is later than the allowed lateness.
 * Returns whether the state changed.
 */
export function applyEvent(
  S: EntityState,
  role: EntityDef['role'],
  ev: EventInput,
  lim: EngineLimits,
  raw: EntityRaw = newRaw(),
): boolean {
  const t = ev.t;
  const amt = ev.amount;
  const lateness = lim.allowedLatenessMs;
  const maxT = S.mx;
  const late = maxT !== null && t < maxT - lateness;
  const newMax = maxT !== null && maxT > t ? maxT : t;
  raw.duplicate = false;
  raw.late = late;
  raw.sinceMs = maxT === null ? -1 : t - maxT < 0 ? 0 : t - maxT;
  const out = raw.windows;

  let q30 = 0;
  const b = S.b;
  for (let i = 0; i < G.length; i++) {
    const bs = G[i]![0];
    const n = G[i]![1];
    const h = i * HDR;
    const B = floor(t / bs);
    let fc: number, fs: number, fm: number, fq: number;
    const x = b[h + X]!;
    // NaN (no event yet) fails every comparison: it takes the first branch.
    if (!(B - x < n)) {
      // Nothing yet, or everything expired: the window starts empty at B.
      b[h + C] = 0;
      b[h + S_] = 0;
      b[h + M] = 0;
      b[h + Q] = 0;
      b[h + Y] = NaN;
      b[h + X] = B;
      b[h + K] = 0;
      fc = fs = fm = fq = 0;
    } else if (B > x) {
      // Slide: drop buckets [x-n+1, B-n] from the running aggregate. Bucket k can only be in slot
      // k mod n (and an occupied slot holds it: it is inside [x-n+1, x]), so the B-x (< n) leaving
      // buckets are looked up directly.
      const ra = RING_AT[i]!;
      let bits = b[h + K]! | 0;
      for (let k = x - n + 1; k <= B - n; k++) {
        const slot = k % n;
        const bit = 1 << slot;
        if ((bits & bit) === 0) continue;
        const o = ra + slot * SLOT;
        b[h + C] = b[h + C]! - b[o]!;
        b[h + S_] = b[h + S_]! - b[o + 1]!;
        if (i === QW) b[h + Q] = b[h + Q]! - b[QRING + slot]!;
        bits &= ~bit;
      }
      b[h + K] = bits;
      if (b[h + Y]! <= B - n) {
        const a = sumBuckets(b, i, B - n + 1, x);
        b[h + M] = a[2]!;
        b[h + Y] = a[3]!;
      }
      b[h + X] = B;
      fc = b[h + C]!;
      fs = b[h + S_]!;
      fm = b[h + M]!;
      fq = b[h + Q]!;
    } else if (B === x) {
      fc = b[h + C]!;
      fs = b[h + S_]!;
      fm = b[h + M]!;
      fq = b[h + Q]!;
    } else {
      // Out of order: its own window, summed explicitly (only kept buckets count, those within the
      // newest event's window).
      let lo = B - n + 1;
      const p = floor(newMax / bs) - n + 1;
      if (lo < p) lo = p;
      const a = sumBuckets(b, i, lo, B);
      fc = a[0]!;
      fs = a[1]!;
      fm = a[2]!;
      fq = a[4]!;
    }
    Bs[i] = B;
    const o = out[i]!;
    o[0] = fc;
    o[1] = fs;
    o[2] = fm;
    if (i === QW) q30 = fq;
  }

  const dims = ev.dims;
  if (role === 'a') {
    raw.q30 = q30;
    const start24 = (floor(t / G[3]![0]) - G[3]![1] + 1) * G[3]![0];
    const start30 = (floor(t / G[5]![0]) - G[5]![1] + 1) * G[5]![0];
    const d24 = raw.distinct24!;
    const d30 = raw.distinct30!;
    const fsn = raw.firstSeen!;
    for (let i = 0; i < NDIM; i++) {
      const D = S.d![i]!;
      const ts = D.t;
      d24[i] = ts.length - lowerBound(ts, start24);
      d30[i] = ts.length - lowerBound(ts, start30);
      // One search per value, newest first, its place kept for the update below (-1: not seen).
      const v = dims?.[i];
      let j = -1;
      if (v) {
        const h = hashString(v);
        hashes[i] = h;
        const H = D.h;
        for (let k = H.length - 1; k >= 0; k--)
          if (H[k] === h && D.v[k] === v) {
            j = k;
            break;
          }
      }
      seenAt[i] = j;
      // New device, destination, country (dimensions 2, 3, 4).
      if (i >= 2) fsn[i - 2] = v && j < 0 ? 1 : 0;
    }
    const pl = S.loc;
    if (pl) {
      const p = (raw.prevLocation ??= { lat: 0, lon: 0, t: 0 });
      p.lat = pl[0];
      p.lon = pl[1];
      p.t = pl[2];
    } else raw.prevLocation = null;
  } else if (role === 'l') {
    const f = raw.fraud!;
    const L = S.l;
    // Most entities never have a confirmed fraud: no label maps until the first (applyFraudLabel).
    if (L === null) f[0] = f[1] = f[2] = 0;
    else
      for (let j = 0; j < 3; j++) {
        const g = G[LG[j]!]!;
        const n = g[1];
        const B = floor(t / g[0]);
        const lb = L[j]!;
        let sum = 0;
        if (lb.size !== 0) {
          if (n <= lb.size) {
            for (let k = B - n + 1; k <= B; k++) sum += lb.get(k) ?? 0;
          } else {
            for (const [k, c] of lb) if (k >= B - n + 1 && k <= B) sum += c;
          }
        }
        f[j] = sum;
      }
  }

  if (late) return false;

  const withQ = role === 'a';
  for (let i = 0; i < G.length; i++) {
    const n = G[i]![1];
    const h = i * HDR;
    const B = Bs[i]!;
    // A bucket older than the newest event's window is never read again: nothing to keep.
    if (B <= b[h + X]! - n) continue;
    const slot = (B | 0) % n;
    const o = RING_AT[i]! + slot * SLOT;
    const bits = b[h + K]! | 0;
    // B is inside [x-n+1, x]: an occupied slot s holds it, a free one starts it.
    if ((bits & (1 << slot)) === 0) {
      b[h + K] = bits | (1 << slot);
      b[o] = b[o + 1] = b[o + 2] = 0;
      if (i === QW) b[QRING + slot] = 0;
    }
    b[o] = b[o]! + 1;
    b[o + 1] = b[o + 1]! + amt;
    if (amt > b[o + 2]!) b[o + 2] = amt;
    // The sum of squares is kept for the account's 30 d window only.
    const q = withQ && i === QW;
    if (q) b[QRING + slot] = b[QRING + slot]! + amt * amt;
    // The running aggregate covers [x-n+1, x], and the bucket is inside it.
    b[h + C] = b[h + C]! + 1;
    b[h + S_] = b[h + S_]! + amt;
    if (q) b[h + Q] = b[h + Q]! + amt * amt;
    if (amt > b[h + M]! || Number.isNaN(b[h + Y]!)) {
      b[h + M] = amt;
      b[h + Y] = B;
    }
  }
  S.mx = newMax;
  if (role === 'a') {
    const forget = newMax - keepMs(lateness);
    for (let i = 0; i < NDIM; i++) {
      const D = S.d![i]!;
      const v = dims?.[i];
      if (v) {
        const j = seenAt[i]!;
        if (j < 0) insertDim(D, t, v, hashes[i]!);
        else if (t > D.t[j]!) moveDim(D, j, t);
      }
      // Forget values not seen for longer than the longest window plus the lateness.
      if (D.t.length !== 0 && D.t[0]! < forget) dropDimBefore(D, forget);
    }
    const loc = ev.loc;
    if (loc && (!S.loc || t >= S.loc[2])) {
      if (S.loc) {
        S.loc[0] = loc[0];
        S.loc[1] = loc[1];
        S.loc[2] = t;
      } else S.loc = [loc[0], loc[1], t];
    }
  }
  return true;
}

/** rememberId's answer when nothing is forgotten (most calls): no array per call. */
const NONE: string[] = [];

/** Whether the account has seen this event id within the dedupe horizon (of its own event time). */
export function seenBefore(S: EntityState, eventId: string, lim: EngineLimits): boolean {
  const at = S.ids?.get(eventId);
  return at !== undefined && (S.mx ?? at) - at <= lim.dedupeHorizonMs;
}

/**
 * Records an event id in the account's dedupe set, and forgets the ids older than the horizon.
 * Returns the ids forgotten (their stored rows can go too).
 */
export function rememberId(S: EntityState, eventId: string, lim: EngineLimits): string[] {
  const now = S.mx ?? 0;
  const ids = S.ids!;
  if (ids.size === 0) {
    S.k0 = eventId;
    S.i0 = now;
  } else if (eventId === S.k0) S.i0 = now;
  ids.set(eventId, now);
  const before = now - lim.dedupeHorizonMs;
  // The walk below would stop at the first id: nothing to forget, no walk.
  if (S.i0 >= before) return NONE;
  let gone: string[] = NONE;
  for (const [id, at] of ids) {
    // Insertion order is mostly time order: stop at the first id still inside the horizon.
    if (at >= before) {
      S.k0 = id;
      S.i0 = at;
      break;
    }
    ids.delete(id);
    if (gone === NONE) gone = [];
    gone.push(id);
  }
  return gone;
}

/** Counts one confirmed fraud on a label-informed entity, in the label-time buckets of each window. */
export function applyFraudLabel(S: EntityState, labelledAt: number, latenessMs: number): void {
  if (!S.l) S.l = [new Map(), new Map(), new Map()];
  for (let j = 0; j < 3; j++) {
    const [b, n] = G[LG[j]!]!;
    const lb = S.l[j]!;
    const B = floor(labelledAt / b);
    lb.set(B, (lb.get(B) ?? 0) + 1);
    // Drop buckets no window can reach any more.
    const oldest = B - n - Math.ceil(latenessMs / b);
    for (const k of lb.keys()) if (k < oldest) lb.delete(k);
  }
}

// --- Storage form, what Redis holds under `<base>:s`. ------------------------------------------------
//
// v2 (written): a compact binary record. Its size, not its field count, is what a write costs (the
// bytes go through the client, the write script and Redis's allocator), so numbers are varints:
//   num(v): a safe non-negative integer below 2^52 as varint(2v); anything else varint(1), then f64 LE
//   time(t): zigzag varint of (mx - t), mx the entity's newest time (0 when none)
//   bucket(k) in a window: zigzag varint of (x - k), x the window's newest bucket
//   u8 2 | u8 flags (1 mx, 2 dims, 4 location, 8 label buckets, 16 ids) | [f64 mx]
//   per window: varint(x + 1) (0: none) | num c, s, q, m | varint y: 0 none, else bucket(y) + 1 |
//     varint occupied-slot bits | per set bit, low first: bucket(key), num count, sum, max, sumsq
//   dims: per dimension varint n | n × (varint byte length, utf-8 value, time), oldest first (read in
//     any order: earlier writers kept first-seen order)
//   location: f64 lat, f64 lon, time
//   label buckets: per label window varint n | n × (zigzag varint bucket, num count)
//   ids: varint n | n × (varint byte length, utf-8 id, time of the account's newest event when seen)
// v1 (still read): compact JSON arrays, starting with `{`.

const V2 = 2;
let scratch = Buffer.allocUnsafe(1 << 16);

/** Upper bound of a v2 record's size: 9 bytes per num (or 10 + 8 for a double), utf-8 ≤ 3 bytes per unit. */
function v2Bound(S: EntityState): number {
  let n = 2 + 8 + G.length * (10 + 5 * 18 + 6) + NSLOTS * (10 + 4 * 18) + 30;
  const str = (m: Map<string, number>) => {
    n += 10;
    for (const k of m.keys()) n += 10 + 3 * k.length + 10;
  };
  if (S.d)
    for (const D of S.d) {
      n += 10;
      for (const k of D.v) n += 10 + 3 * k.length + 10;
    }
  if (S.l) for (const m of S.l) n += 10 + m.size * 28;
  if (S.ids) str(S.ids);
  return n;
}

const TWO52 = 2 ** 52;
const zz = (v: number) => (v >= 0 ? 2 * v : -2 * v - 1);
const unzz = (u: number) => (u % 2 === 0 ? u / 2 : -(u + 1) / 2);

/** Encodes into a scratch buffer; `o` is the write offset. */
class Writer {
  b: Buffer;
  o = 0;
  constructor(b: Buffer) {
    this.b = b;
  }
  u8(v: number) {
    this.b[this.o++] = v;
  }
  varint(v: number) {
    const b = this.b;
    // Above int32 (sums, times as doubles) in floating point; the rest, nearly all, in int32.
    while (v >= 2147483648) {
      b[this.o++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    let u = v | 0;
    while (u >= 128) {
      b[this.o++] = (u & 127) | 128;
      u >>>= 7;
    }
    b[this.o++] = u;
  }
  zigzag(v: number) {
    this.varint(zz(v));
  }
  f64(v: number) {
    this.o = this.b.writeDoubleLE(v, this.o);
  }
  num(v: number) {
    if (v >= 0 && v < TWO52 && Number.isInteger(v)) this.varint(2 * v);
    else {
      this.u8(1);
      this.f64(v);
    }
  }
  str(v: string) {
    // A varint length of at most 2 bytes is reserved; ids are validated to 128 characters.
    const len = writeUtf8(this.b, v, this.o + 2);
    if (len >= 1 << 14) throw new Error(`a feature state value is ${len} bytes long`);
    this.b[this.o] = (len % 128) | 128;
    this.b[this.o + 1] = Math.floor(len / 128);
    this.o += 2 + len;
  }
}

class Reader {
  o = 0;
  constructor(readonly b: Buffer) {}
  private need(n: number) {
    if (this.o + n > this.b.length) throw new Error(`truncated feature state (${this.b.length} bytes)`);
  }
  u8(): number {
    this.need(1);
    return this.b[this.o++]!;
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; ; i++) {
      if (i > 8) throw new Error('malformed feature state (varint too long)');
      const x = this.u8();
      v += (x & 127) * mul;
      if (x < 128) return v;
      mul *= 128;
    }
  }
  zigzag(): number {
    return unzz(this.varint());
  }
  f64(): number {
    this.need(8);
    const v = this.b.readDoubleLE(this.o);
    this.o += 8;
    return v;
  }
  num(): number {
    const u = this.varint();
    if (u === 1) return this.f64();
    if (u % 2 !== 0) throw new Error('malformed feature state (number)');
    return u / 2;
  }
  str(): string {
    const len = this.varint();
    this.need(len);
    const v = this.b.toString('utf8', this.o, this.o + len);
    this.o += len;
    return v;
  }
}

export function encodeState(S: EntityState): Buffer {
  const need = v2Bound(S);
  if (scratch.length < need) scratch = Buffer.allocUnsafe(Math.max(need, scratch.length * 2));
  const w = new Writer(scratch);
  const mx = S.mx ?? 0;
  w.u8(V2);
  w.u8((S.mx !== null ? 1 : 0) | (S.d ? 2 : 0) | (S.loc ? 4 : 0) | (S.l ? 8 : 0) | (S.ids ? 16 : 0));
  if (S.mx !== null) w.f64(S.mx);
  const b = S.b;
  for (let i = 0; i < G.length; i++) {
    const h = i * HDR;
    const x = b[h + X]!;
    if (Number.isNaN(x)) {
      w.varint(0);
      continue;
    }
    w.varint(x + 1);
    w.num(b[h + C]!);
    w.num(b[h + S_]!);
    w.num(b[h + Q]!);
    w.num(b[h + M]!);
    const y = b[h + Y]!;
    w.varint(Number.isNaN(y) ? 0 : zz(x - y) + 1);
    let bits = b[h + K]! | 0;
    w.varint(bits >>> 0);
    const ra = RING_AT[i]!;
    const n = G[i]![1];
    while (bits !== 0) {
      const bit = bits & -bits;
      bits ^= bit;
      const slot = 31 - Math.clz32(bit);
      const at = ra + slot * SLOT;
      w.zigzag(x - bucketOf(x, slot, n));
      w.num(b[at]!);
      w.num(b[at + 1]!);
      w.num(b[at + 2]!);
      w.num(i === QW ? b[QRING + slot]! : 0);
    }
  }
  const strMap = (m: Map<string, number>) => {
    w.varint(m.size);
    for (const [k, t] of m) {
      w.str(k);
      w.zigzag(mx - t);
    }
  };
  if (S.d)
    for (const D of S.d) {
      w.varint(D.t.length);
      for (let k = 0; k < D.t.length; k++) {
        w.str(D.v[k]!);
        w.zigzag(mx - D.t[k]!);
      }
    }
  if (S.loc) {
    w.f64(S.loc[0]);
    w.f64(S.loc[1]);
    w.zigzag(mx - S.loc[2]);
  }
  if (S.l)
    for (const m of S.l) {
      w.varint(m.size);
      for (const [k, c] of m) {
        w.zigzag(k);
        w.num(c);
      }
    }
  if (S.ids) strMap(S.ids);
  return Buffer.from(scratch.subarray(0, w.o));
}

export function decodeState(data: Buffer | string, role: EntityDef['role']): EntityState {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  if (b[0] === 0x7b) return decodeStateV1(b.toString('utf8'), role);
  if (b[0] !== V2) throw new Error(`unknown feature state format (first byte ${b[0] ?? 'none'})`);
  const S = newState(role);
  const rd = new Reader(b);
  rd.u8();
  const flags = rd.u8();
  S.mx = flags & 1 ? rd.f64() : null;
  const mx = S.mx ?? 0;
  const wb = S.b;
  for (let i = 0; i < G.length; i++) {
    const h = i * HDR;
    const x1 = rd.varint();
    if (x1 === 0) continue;
    const x = x1 - 1;
    wb[h + X] = x;
    wb[h + C] = rd.num();
    wb[h + S_] = rd.num();
    wb[h + Q] = rd.num();
    wb[h + M] = rd.num();
    const y1 = rd.varint();
    wb[h + Y] = y1 === 0 ? NaN : x - unzz(y1 - 1);
    let bits = rd.varint() | 0;
    wb[h + K] = bits;
    const ra = RING_AT[i]!;
    const n = G[i]![1];
    while (bits !== 0) {
      const bit = bits & -bits;
      bits ^= bit;
      const slot = 31 - Math.clz32(bit);
      if (x - rd.zigzag() !== bucketOf(x, slot, n))
        throw new Error('malformed feature state (a bucket outside its window or slot)');
      const at = ra + slot * SLOT;
      wb[at] = rd.num();
      wb[at + 1] = rd.num();
      wb[at + 2] = rd.num();
      const q = rd.num();
      if (i === QW) wb[QRING + slot] = q;
    }
  }
  const strMap = () => {
    const m = new Map<string, number>();
    for (let n = rd.varint(); n > 0; n--) {
      const k = rd.str();
      m.set(k, mx - rd.zigzag());
    }
    return m;
  };
  if (flags & 2) {
    const dm = Array.from({ length: NDIM }, () => dimFrom([...strMap()]));
    if (S.d) S.d = dm;
  }
  if (flags & 4) {
    const lat = rd.f64();
    const lon = rd.f64();
    S.loc = [lat, lon, mx - rd.zigzag()];
  }
  if (flags & 8) {
    S.l = [];
    for (let j = 0; j < 3; j++) {
      const m = new Map<number, number>();
      for (let n = rd.varint(); n > 0; n--) {
        const k = rd.zigzag();
        m.set(k, rd.num());
      }
      S.l.push(m);
    }
  }
  if (flags & 16) {
    const ids = strMap();
    if (S.ids) S.ids = ids;
  }
  if (rd.o !== b.length) throw new Error(`feature state has ${b.length - rd.o} bytes after its end`);
  return S;
}

// v1: compact JSON (arrays, no field names), read only.

type WinJson = [c: number, s: number, q: number, m: number, y: number | null, x: number | null, b: number[]];
interface StateJson {
  v: 1;
  mx: number | null;
  w: WinJson[];
  d?: [string, number][][];
  loc?: [number, number, number] | null;
  l?: [number, number][][];
  ids?: [string, number][];
}

function decodeStateV1(text: string, role: EntityDef['role']): EntityState {
  const j = JSON.parse(text) as StateJson;
  if (j.v !== 1 || !Array.isArray(j.w) || j.w.length !== G.length)
    throw new Error(`unknown feature state format (v=${String(j.v)})`);
  const S = newState(role);
  S.mx = j.mx;
  const b = S.b;
  j.w.forEach(([c, s, q, m, y, x, flat], i) => {
    const n = G[i]![1];
    const h = i * HDR;
    const ra = RING_AT[i]!;
    let k = 0;
    // v1 slots: bucket, count, sum, max, sum of squares. Only the window's own buckets are kept.
    for (let f = 0; f < flat.length; f += 5) {
      const key = flat[f]!;
      if (x === null || key > x || key <= x - n) continue;
      const slot = key % n;
      b.set(flat.slice(f + 1, f + 4), ra + slot * SLOT);
      if (i === QW) b[QRING + slot] = flat[f + 4]!;
      k |= 1 << slot;
    }
    b[h + C] = c;
    b[h + S_] = s;
    b[h + Q] = q;
    b[h + M] = m;
    b[h + Y] = y ?? NaN;
    b[h + X] = x ?? NaN;
    b[h + K] = k;
  });
  if (j.d && S.d) S.d = j.d.map(dimFrom);
  S.loc = j.loc ?? null;
  if (j.l) S.l = j.l.map((pairs) => new Map(pairs));
  if (j.ids && S.ids) S.ids = new Map(j.ids);
  return S;
}
