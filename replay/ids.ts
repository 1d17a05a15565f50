/**
 * Which event ids of a replay's input can repeat, found before the replay starts, so that the feature
 * engine keeps dedupe records (the id and the row, held for the dedupe horizon) only for those
 * (FeatureEngineOptions.repeatableEvents). Keeping one for every event was a quarter of the feature
 * thread's time, for histories where next to no id repeats.
 *
 * A folder's files are read from their bytes: each block is inflated, each record's event_id is hashed
 * where it lies and the rest of the record is skipped by the file's own (writer) schema; no record is
 * decoded. The answer is a set of hashes: an id whose hash was seen twice may repeat. Two ids of the
 * same hash make both "may repeat", which costs their dedupe records and changes no feature; an id
 * that repeats is always in it. Anything this reader does not take (a codec other than null or
 * deflate, a schema without a string event_id, bytes that do not parse) gives no answer, and every
 * event keeps its record as before (the replay's own read reports a damaged file).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { fmix32, hashString } from '../features/core.js';
import type { ScoringEvent } from '../schemas/index.js';

/** What the feature engine asks (FeatureEngineOptions.repeatableEvents). */
export interface RepeatableIds {
  has(eventId: string): boolean;
}

/** The hash set: bit (hash & mask) of `bits` set for every hash seen at least twice. */
export interface RepeatBits {
  bits: Uint32Array;
  mask: number;
}

export function repeatableFromBits({ bits, mask }: RepeatBits): RepeatableIds {
  return {
    has(id) {
      const h = hashString(id) & mask;
      return (bits[h >>> 5]! & (1 << (h & 31))) !== 0;
    },
  };
}

/** The exact answer for events already in memory (replay from Kafka). */
export function repeatableIn(events: readonly ScoringEvent[]): RepeatableIds {
  const once = new Set<string>();
  const twice = new Set<string>();
  for (const e of events) {
    const id = e.event.event_id;
    if (once.has(id)) twice.add(id);
    else once.add(id);
  }
  return twice;
}

// --- Reading container files from their bytes. ----------------------------------------------------

/** Thrown inside the scan for anything it does not take; the scan then answers null. */
class NoAnswer extends Error {}

/** A file read a window at a time, with the position `p` inside the window. */
class Input {
  b = Buffer.alloc(0);
  p = 0;
  /** File offset of b[0]. */
  private base = 0;
  private readonly fd: number;
  constructor(path: string) {
    this.fd = openSync(path, 'r');
  }
  close() {
    closeSync(this.fd);
  }
  /** Makes n bytes from p available in b; false at the end of the file. */
  ensure(n: number): boolean {
    if (this.p + n <= this.b.length) return true;
    const keep = this.b.subarray(this.p);
    const size = Math.max(n, 1 << 20);
    const nb = Buffer.allocUnsafe(size);
    keep.copy(nb);
    const got = readSync(this.fd, nb, keep.length, size - keep.length, this.base + this.p + keep.length);
    this.base += this.p;
    this.b = nb.subarray(0, keep.length + got);
    this.p = 0;
    return n <= this.b.length;
  }
  /** A zig-zag varint long (exact below 2^53). */
  long(): number {
    if (!this.ensure(10) && this.p >= this.b.length) throw new NoAnswer('end of file in a varint');
    const v = readLong(this.b, this.p, this.b.length);
    this.p = at;
    return v;
  }
  take(n: number): Buffer {
    if (n < 0 || !this.ensure(n)) throw new NoAnswer('end of file');
    const v = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return v;
  }
}

/** Where readLong stopped (a module variable: no tuple per number). */
let at = 0;

function readLong(b: Buffer, p: number, end: number): number {
  let n = 0;
  let mul = 1;
  for (;;) {
    if (p >= end || mul > 2 ** 49) throw new NoAnswer('malformed varint');
    const x = b[p++]!;
    n += (x & 127) * mul;
    if (x < 128) break;
    mul *= 128;
  }
  at = p;
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/** Skips one value at `at` in b (up to end), moving `at`. */
type Skip = (b: Buffer, end: number) => void;

type Schema = string | { type: unknown; [k: string]: unknown } | Schema[];

const PRIMITIVE: Record<string, Skip> = {
  null: () => undefined,
  boolean: () => void (at += 1),
  int: (b, end) => void readLong(b, at, end),
  long: (b, end) => void readLong(b, at, end),
  float: () => void (at += 4),
  double: () => void (at += 8),
  bytes: (b, end) => {
    const n = readLong(b, at, end);
    if (n < 0) throw new NoAnswer('negative length');
    at += n;
  },
};
PRIMITIVE.string = PRIMITIVE.bytes!;

/** Compiles a skip for an Avro schema (names resolved as the spec says, against `names`). */
function compile(s: Schema, ns: string | undefined, names: Map<string, Skip>): Skip {
  if (typeof s === 'string') {
    const p = PRIMITIVE[s];
    if (p) return p;
    const full = s.includes('.') || !ns ? s : `${ns}.${s}`;
    const named = names.get(full) ?? names.get(s);
    if (!named) throw new NoAnswer(`unknown type ${s}`);
    // Recursive types: look the skip up when called (it is registered before its fields compile).
    return (b, end) => named(b, end);
  }
  if (Array.isArray(s)) {
    const branches = s.map((x) => compile(x, ns, names));
    return (b, end) => {
      const i = readLong(b, at, end);
      const br = branches[i];
      if (!br) throw new NoAnswer('union branch out of range');
      br(b, end);
    };
  }
  const t = s.type;
  if (typeof t !== 'string') return compile(t as Schema, ns, names);
  const name = typeof s.name === 'string' ? s.name : undefined;
  const space = name?.includes('.')
    ? name.slice(0, name.lastIndexOf('.'))
    : typeof s.namespace === 'string'
      ? s.namespace
      : ns;
  const full = name ? (name.includes('.') || !space ? name : `${space}.${name}`) : undefined;
  switch (t) {
    case 'record':
    case 'error': {
      const skips: Skip[] = [];
      const rec: Skip = (b, end) => {
        for (let i = 0; i < skips.length; i++) skips[i]!(b, end);
      };
      if (full) names.set(full, rec);
      for (const f of (s.fields as { type: Schema }[] | undefined) ?? [])
        skips.push(compile(f.type, space, names));
      return rec;
    }
    case 'enum': {
      const e: Skip = (b, end) => void readLong(b, at, end);
      if (full) names.set(full, e);
      return e;
    }
    case 'fixed': {
      const size = Number(s.size);
      if (!Number.isInteger(size) || size < 0) throw new NoAnswer('bad fixed size');
      const f: Skip = () => void (at += size);
      if (full) names.set(full, f);
      return f;
    }
    case 'array':
    case 'map': {
      const item = compile(s[t === 'array' ? 'items' : 'values'] as Schema, ns, names);
      const key = t === 'map' ? PRIMITIVE.string! : null;
      return (b, end) => {
        for (;;) {
          let n = readLong(b, at, end);
          if (n === 0) return;
          if (n < 0) {
            // A block with its size in bytes: skipped whole.
            n = readLong(b, at, end);
            if (n < 0) throw new NoAnswer('negative block size');
            at += n;
            continue;
          }
          for (; n > 0; n--) {
            key?.(b, end);
            item(b, end);
          }
        }
      };
    }
    default: {
      const p = PRIMITIVE[t];
      if (!p) throw new NoAnswer(`unknown type ${t}`);
      return p;
    }
  }
}

// A record's fields as a small program (op, argument), run by one loop: a closure call per field was
// most of the scan's time. Unions of simple types choose their branch's op from BRANCHES; anything
// else (arrays, maps, nested records) is a compiled Skip (CALL).
const NOP = 0;
const ADV = 1; // skip `arg` bytes
const VARINT = 2; // int, long, enum
const LEN = 3; // string, bytes: a length, then that many bytes
const UNION = 4; // arg: where the union's branches start in the branch table (count, then op, arg pairs)
const ID = 5; // the event_id
const CALL = 6; // arg: index of a compiled Skip

/** The op of a type that needs no program of its own (null: compile it). */
function simpleOp(s: Schema): [number, number] | null {
  const t = typeof s === 'object' && !Array.isArray(s) && typeof s.type === 'string' ? s.type : s;
  switch (t) {
    case 'null':
      return [NOP, 0];
    case 'boolean':
      return [ADV, 1];
    case 'float':
      return [ADV, 4];
    case 'double':
      return [ADV, 8];
    case 'int':
    case 'long':
      return [VARINT, 0];
    case 'string':
    case 'bytes':
      return [LEN, 0];
    default:
      return null;
  }
}

/**
 * Per record of `schema` (a record with a string event_id), calls `onId` with the id's bytes [a, b)
 * and moves `at` past the record.
 */
function compileIdReader(schema: Schema, onId: (b: Buffer, a: number, z: number) => void): Skip {
  if (typeof schema !== 'object' || Array.isArray(schema) || schema.type !== 'record')
    throw new NoAnswer('not a record');
  const fields = (schema.fields as { name: string; type: Schema }[] | undefined) ?? [];
  const k = fields.findIndex((f) => f.name === 'event_id');
  if (k < 0 || simpleOp(fields[k]!.type)?.[0] !== LEN || fields[k]!.type === 'bytes')
    throw new NoAnswer('no string event_id');
  const names = new Map<string, Skip>();
  const ns =
    typeof schema.name === 'string' && schema.name.includes('.')
      ? schema.name.slice(0, schema.name.lastIndexOf('.'))
      : (schema.namespace as string | undefined);
  const ops: number[] = [];
  const branches: number[] = [];
  const calls: Skip[] = [];
  const call = (t: Schema): [number, number] => [CALL, calls.push(compile(t, ns, names)) - 1];
  fields.forEach((f, i) => {
    if (i === k) {
      ops.push(ID, 0);
      return;
    }
    const t = f.type;
    const simple = simpleOp(t);
    if (simple) ops.push(...simple);
    else if (Array.isArray(t) && t.every((x) => simpleOp(x) !== null)) {
      ops.push(UNION, branches.length);
      branches.push(t.length);
      for (const x of t) branches.push(...simpleOp(x)!);
    } else {
      const c = call(t);
      // An enum is a varint (compiled all the same: that registers its name for later references).
      const isEnum = typeof t === 'object' && !Array.isArray(t) && t.type === 'enum';
      ops.push(...(isEnum ? [VARINT, 0] : c));
    }
  });
  const OP = Int32Array.from(ops);
  const BR = Int32Array.from(branches);
  const n = OP.length;
  return (b, end) => {
    let p = at;
    for (let f = 0; f < n; f += 2) {
      let op = OP[f]!;
      let arg = OP[f + 1]!;
      if (op === UNION) {
        let i: number;
        if (p < end && b[p]! < 128) i = (b[p]! >>> 1) ^ -(b[p++]! & 1);
        else {
          i = readLong(b, p, end);
          p = at;
        }
        if (i < 0 || i >= BR[arg]!) throw new NoAnswer('union branch out of range');
        op = BR[arg + 1 + 2 * i]!;
        arg = BR[arg + 2 + 2 * i]!;
      }
      if (op === ADV) p += arg;
      else if (op === VARINT) {
        while (p < end && b[p]! >= 128) p++;
        if (p++ >= end) throw new NoAnswer('malformed varint');
      } else if (op === LEN || op === ID) {
        // Lengths are small: one or two varint bytes, in int32.
        let len: number;
        const x = b[p]!;
        if (x < 128 && p < end) {
          len = (x >>> 1) ^ -(x & 1);
          p++;
        } else {
          len = readLong(b, p, end);
          p = at;
        }
        if (len < 0 || p + len > end) throw new NoAnswer('bad length');
        if (op === ID) onId(b, p, p + len);
        p += len;
      } else if (op === CALL) {
        at = p;
        calls[arg]!(b, end);
        p = at;
      }
    }
    at = p;
  };
}

const MAGIC = 'Obj\x01';

/** Calls `onId` for every record's event_id bytes in a container file. */
function scanFile(path: string, onId: (b: Buffer, a: number, z: number) => void): void {
  const f = new Input(path);
  try {
    if (f.take(4).toString('latin1') !== MAGIC) throw new NoAnswer('not a container file');
    const meta = new Map<string, Buffer>();
    for (let n = f.long(); n !== 0; n = f.long()) {
      if (n < 0) {
        f.long();
        n = -n;
      }
      for (; n > 0; n--) {
        const key = f.take(f.long()).toString('utf8');
        meta.set(key, Buffer.from(f.take(f.long())));
      }
    }
    const sync = Buffer.from(f.take(16));
    const codec = meta.get('avro.codec')?.toString('utf8') ?? 'null';
    if (codec !== 'null' && codec !== 'deflate') throw new NoAnswer(`codec ${codec}`);
    const schemaText = meta.get('avro.schema')?.toString('utf8');
    if (!schemaText) throw new NoAnswer('no schema');
    const read = compileIdReader(JSON.parse(schemaText) as Schema, onId);
    while (f.ensure(1)) {
      const count = f.long();
      const size = f.long();
      if (count < 0 || size < 0) throw new NoAnswer('negative block header');
      const raw = f.take(size);
      const data = codec === 'deflate' ? inflateRawSync(raw) : raw;
      at = 0;
      for (let i = 0; i < count; i++) read(data, data.length);
      if (at !== data.length) throw new NoAnswer('a block whose records do not fill it');
      if (!f.take(16).equals(sync)) throw new NoAnswer('sync marker');
    }
  } finally {
    f.close();
  }
}

/**
 * The hashes of the event ids seen twice or more in the files, or null when a file is not one this
 * reader takes (see the top of this file). `records`: how many there are (the set is sized by it).
 */
export function scanRepeatableIds(paths: readonly string[], records: number): RepeatBits | null {
  // About 64 bits per record (a unique id is taken for a repeated one about 1.5 % of the time), at
  // most 2^29 (64 MiB for each of the two sets).
  let size = 1 << 16;
  while (size < records * 64 && size < 1 << 29) size *= 2;
  const mask = size - 1;
  const once = new Uint32Array(size >>> 5);
  const twice = new Uint32Array(size >>> 5);
  const onId = (b: Buffer, a: number, z: number) => {
    let h = 0x811c9dc5;
    let ascii = true;
    for (let i = a; i < z; i++) {
      const c = b[i]!;
      if (c >= 128) {
        ascii = false;
        break;
      }
      h = Math.imul(h ^ c, 0x01000193);
    }
    // Not ASCII: hash the string itself (UTF-16 code units), as has() does.
    const m = (ascii ? fmix32(h) : hashString(b.toString('utf8', a, z))) & mask;
    const w = m >>> 5;
    const bit = 1 << (m & 31);
    if ((once[w]! & bit) !== 0) twice[w] = twice[w]! | bit;
    else once[w] = once[w]! | bit;
  };
  try {
    for (const p of paths) scanFile(p, onId);
  } catch (e) {
    if (e instanceof NoAnswer || e instanceof SyntaxError) return null;
    // A file that cannot be opened or inflated: the replay's own read reports it.
    if ((e as { code?: string }).code !== undefined) return null;
    throw e;
  }
  return { bits: twice, mask };
}
