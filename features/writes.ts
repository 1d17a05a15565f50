/**
 * What a feature write sends to a single Redis: its operations (entity states, an account's held dedupe
 * rows and label lookups, consumed lookups) serialised into blobs that one Lua script call applies, and
 * the records' own formats (the sparse dedupe row, the label lookup).
 */
import type { ScoringEvent } from '../schemas/index.js';
import type { HeldRow } from './core.js';

/**
 * Writes `s` as UTF-8 into `b` at `at` and returns the bytes written. ASCII (ids, keys, codes, TTLs:
 * nearly always) byte by byte: a Buffer#write call costs more than one of these short strings. Any
 * other string goes through Buffer#write. Like it, writes nothing past the buffer's end.
 */
export function writeUtf8(b: Buffer, s: string, at: number): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return b.write(s, at, 'utf8');
    b[at + i] = c;
  }
  return n;
}

/**
 * One write of a flush: an entity state, an account's held dedupe rows and label lookups (taken from
 * it whole, to hold again if the write fails; copied into the write's blob), or a consumed
 * lookup.
 */
export type Op =
  | ['state', string, Buffer, number]
  | ['held', string, Map<string, HeldRow>, Map<string, unknown>]
  | ['del', string];

/** Keys an op writes. */
export const opKeys = (o: Op): number => (o[0] === 'held' ? o[2].size + o[3].size : 1);

/** A held label lookup: the event (its record is built when written) or the record itself. */
export type Lookup = ScoringEvent | string;

/**
 * A dedupe row's record: most features are 0 (two thirds on the simulated histories) and most of the
 * rest are whole numbers (counts, amounts in minor units, flags), so it is
 *   u8 0x10 | late flag | a bit per feature set when non-zero | per non-zero value, in column order:
 *   varint(2v) for a whole number 0 < v < 2^28, else 1 then the value as float32 LE
 * about 187 bytes on the simulated histories, against 279 for the float32-only record before it and 784
 * for the dense row. Both earlier forms are still read (decodeRow): their first byte is the bare late
 * flag (0 or 1). Exact: every value is a float32 of the matrix, whole ones below 2^28 are exact in a
 * varint. Written into `b` at `at` (room: rowMax); returns the end.
 */
export function encodeRowInto(
  m: Float32Array,
  o: number,
  late: number,
  cols: number,
  b: Buffer,
  at: number,
): number {
  const bm = (cols + 7) >> 3;
  b[at] = ROW_V3 | late;
  b.fill(0, at + 1, at + 1 + bm);
  let v0 = at + 1 + bm;
  for (let j = 0; j < cols; j++) {
    let v = m[o + j]!;
    if (v === 0) continue;
    const byte = at + 1 + (j >> 3);
    b[byte] = b[byte]! | (1 << (j & 7));
    if (v > 0 && v < WHOLE_MAX && v === Math.floor(v)) {
      v *= 2;
      while (v >= 128) {
        b[v0++] = (v & 127) | 128;
        v >>>= 7;
      }
      b[v0++] = v;
    } else {
      b[v0++] = 1;
      v0 = b.writeFloatLE(v, v0);
    }
  }
  return v0;
}

/** The row record's first byte, over the late flag; the earlier forms' first byte is the flag alone. */
const ROW_V3 = 0x10;
/** Whole values below this go as varints (2v fits 29 bits: at most 5 bytes, int32-safe shifts). */
const WHOLE_MAX = 2 ** 28;

/** The most bytes encodeRowInto writes. */
export const rowMax = (cols: number) => 1 + ((cols + 7) >> 3) + 5 * cols;

/** Writes a dedupe record's row into `out` at `o`; returns its late flag, or null if malformed. */
export function decodeRow(b: Buffer, out: Float32Array, o: number, cols: number): number | null {
  const bm = (cols + 7) >> 3;
  if (b.length >= 1 + bm && (b[0]! & 0xf0) === ROW_V3) {
    const late = b[0]! & 0x0f;
    if (late > 1) return null;
    let at = 1 + bm;
    for (let j = 0; j < cols; j++) {
      if ((b[1 + (j >> 3)]! & (1 << (j & 7))) === 0) {
        out[o + j] = 0;
        continue;
      }
      if (at >= b.length) return null;
      let u = 0;
      let mul = 1;
      for (;;) {
        if (at >= b.length || mul > 2 ** 28) return null;
        const x = b[at++]!;
        u += (x & 127) * mul;
        mul *= 128;
        if (x < 128) break;
      }
      if (u === 1) {
        if (at + 4 > b.length) return null;
        out[o + j] = b.readFloatLE(at);
        at += 4;
      } else {
        if (u % 2 !== 0 || u === 0) return null;
        out[o + j] = u / 2;
      }
    }
    return at === b.length ? late : null;
  }
  if (b.length === 4 + cols * 4) {
    for (let j = 0; j < cols; j++) out[o + j] = b.readFloatLE(4 + 4 * j);
    return b[0]!;
  }
  if (b.length < 1 + bm) return null;
  let at = 1 + bm;
  for (let j = 0; j < cols; j++) {
    if ((b[1 + (j >> 3)]! & (1 << (j & 7))) === 0) {
      out[o + j] = 0;
      continue;
    }
    if (at + 4 > b.length) return null;
    out[o + j] = b.readFloatLE(at);
    at += 4;
  }
  return at === b.length ? b[0]! : null;
}

/**
 * The ids a label lookup records (merchant, device, destination; '' for none), as entityIds gives
 * them, read straight from the event: entityIds builds an array of all six per call.
 */
const lookupMerchant = (ev: ScoringEvent) => (ev.type === 'PAYMENT' ? ev.event.merchant_id || '' : '');
const lookupDestination = (ev: ScoringEvent) =>
  ev.type === 'WITHDRAWAL' ? ev.event.destination_id || '' : '';

/** The label-lookup record of an event: merchant, device, destination, event time. */
export function lblRecord(ev: Lookup): string {
  if (typeof ev === 'string') return ev;
  return `${lookupMerchant(ev)}\t${ev.event.device_id || ''}\t${lookupDestination(ev)}\t${ev.event.event_time}`;
}

/**
 * A write on a single Redis: one blob of operations per call, parsed by the script, because ioredis
 * spends microseconds on each argument of a command and a checkpoint writes over 100,000 keys. Per op:
 * u8 kind (0 DEL, 1 SET), u32 LE key length, key; for SET also u32 LE value length, value, u8 TTL
 * length, TTL (ms, ASCII). A write is one call, atomic; a bigger one writes its dedupe rows and label
 * lookups first, then its states and deletions in one MULTI (write() in engine.ts).
 */
export const WRITE_LUA = `local b = ARGV[1]
local pos, n, len = 1, 0, #b
while pos <= len do
  local kind, kl
  kind, kl, pos = struct.unpack('<BI4', b, pos)
  local key = string.sub(b, pos, pos + kl - 1)
  pos = pos + kl
  if kind == 0 then
    redis.call('DEL', key)
  else
    local vl
    vl, pos = struct.unpack('<I4', b, pos)
    local val = string.sub(b, pos, pos + vl - 1)
    pos = pos + vl
    local tl = string.byte(b, pos)
    redis.call('SET', key, val, 'PX', string.sub(b, pos + 1, pos + tl))
    pos = pos + 1 + tl
  end
  n = n + 1
end
return n`;
export const WRITE_CMD = 'fraudstreamWriteBlob';
/** Bytes per call: Redis runs one call at a time, so a checkpoint is cut into calls of about this. */
export const WRITE_CHUNK_BYTES = 1 << 20;

/**
 * Per-event records (dedupe rows, label lookups) of a write too big for one call go first, in calls of
 * about this many bytes that are not atomic together: Redis runs other clients' commands (the next
 * batch's reads) between them, where one MULTI of a whole checkpoint held them for its full length.
 */
export const RECORD_CHUNK_BYTES = 64 * 1024;

/** What encodeOps needs besides the ops: the records' TTLs (ms, ASCII) and the row width. */
export interface RecordFormat {
  rowTtl: string;
  lblTtl: string;
  cols: number;
  /** Where encodeOps builds a blob: grown when too small, and kept for the next write. */
  scratch: Buffer;
}

/** About the bytes encodeOps writes for `o`, to choose between one call and two steps. */
export function opBytes(o: Op): number {
  if (o[0] === 'del') return 5 + o[1].length;
  if (o[0] === 'state') return 16 + o[1].length + o[2].length;
  const key = 20 + o[1].length; // key, ":q:"/":lbl:", kind, lengths, TTL
  let n = 0;
  // forEach, not for-of with [id, h]: no entry array per record (a checkpoint has one per event).
  o[2].forEach((h, id) => (n += key + id.length + h.n));
  o[3].forEach((ev, id) => (n += key + id.length + (typeof ev === 'string' ? ev.length : 80)));
  return n;
}

/**
 * Serialises ops into blobs of about `chunk` bytes (a single record may exceed it; an account's held
 * records may be cut between blobs). Rows are held encoded already: their bytes are copied.
 */
export function encodeOps(ops: readonly Op[], f: RecordFormat, chunk = WRITE_CHUNK_BYTES): Buffer[] {
  const out: Buffer[] = [];
  let b = f.scratch;
  let o = 0;
  const cut = () => {
    out.push(Buffer.from(b.subarray(0, o)));
    o = 0;
  };
  /** Room for `need` more bytes, in this blob or (when it is full) the next. */
  const room = (need: number) => {
    if (o > 0 && o + need > chunk) cut();
    if (o + need > b.length) {
      const bigger = Buffer.allocUnsafe(Math.max(b.length * 2, o + need));
      b.copy(bigger, 0, 0, o);
      b = f.scratch = bigger;
    }
  };
  /** Kind, key length and key (`a` + `c` + `d`): returns where the value's length goes. */
  const head = (kind: number, a: string, c: string, d: string) => {
    let kl = writeUtf8(b, a, o + 5);
    if (c) kl += writeUtf8(b, c, o + 5 + kl);
    if (d) kl += writeUtf8(b, d, o + 5 + kl);
    b[o] = kind;
    b.writeUInt32LE(kl, o + 1);
    o += 5 + kl;
  };
  const ttl = (t: string) => {
    // A TTL is ASCII digits: its length in bytes is its length.
    b[o] = writeUtf8(b, t, o + 1);
    o += 1 + t.length;
  };
  for (const op of ops) {
    // Room for the most bytes each record can take (a UTF-16 unit of a key is up to 3 UTF-8 bytes):
    // Buffer#write cuts a string short, without a word, where the buffer ends.
    if (op[0] === 'del') {
      room(5 + 3 * op[1].length);
      head(0, op[1], '', '');
      continue;
    }
    if (op[0] === 'state') {
      const t = String(op[3]);
      room(5 + 3 * op[1].length + 4 + op[2].length + 1 + t.length);
      head(1, op[1], '', '');
      b.writeUInt32LE(op[2].length, o);
      o += 4 + op[2].copy(b, o + 4);
      ttl(t);
      continue;
    }
    const acct = op[1];
    // Kind and key length (5), ":q:" or ":lbl:" (5 at most), value length (4), TTL length (1).
    const keyMax = 15 + 3 * acct.length;
    op[2].forEach((h, id) => {
      room(keyMax + 3 * id.length + 4 + h.n + 1 + f.rowTtl.length);
      head(1, acct, ':q:', id);
      b.writeUInt32LE(h.n, o);
      o += 4 + h.b.copy(b, o + 4, h.o, h.o + h.n);
      ttl(f.rowTtl);
    });
    op[3].forEach((ev, id) => {
      if (typeof ev === 'string') {
        room(keyMax + 3 * id.length + 3 * ev.length + 4 + f.lblTtl.length);
        head(1, acct, ':lbl:', id);
        const vl = writeUtf8(b, ev, o + 4);
        b.writeUInt32LE(vl, o);
        o += 4 + vl;
      } else {
        // lblRecord's fields written in place: no record string to build, then flatten, per event.
        const e = ev as ScoringEvent;
        const m = lookupMerchant(e);
        const d = e.event.device_id || '';
        const ds = lookupDestination(e);
        const t = String(e.event.event_time);
        room(
          keyMax + 3 * id.length + 3 * (m.length + d.length + ds.length) + 3 + t.length + 4 + f.lblTtl.length,
        );
        head(1, acct, ':lbl:', id);
        let v = o + 4;
        v += writeUtf8(b, m, v);
        b[v++] = 9;
        v += writeUtf8(b, d, v);
        b[v++] = 9;
        v += writeUtf8(b, ds, v);
        b[v++] = 9;
        v += writeUtf8(b, t, v);
        b.writeUInt32LE(v - o - 4, o);
        o = v;
      }
      ttl(f.lblTtl);
    });
  }
  if (o > 0) cut();
  return out;
}
