import avro from 'avsc';
import { fail, FraudstreamError } from '../lib/errors.js';
import type { SchemaCatalog } from './catalog.js';

/** Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body. */
export const MAGIC_BYTE = 0;
export const HEADER_BYTES = 5;

export interface Decoded<T> {
  schemaId: number;
  /** Full name of the writer's record, e.g. fraudstream.v1.PaymentEvent. */
  name: string;
  value: T;
}

export interface FramedCodec {
  /** Encode with the newest schema of `name`. Throws FS_ERR_ENCODE_FAILED when the value does not fit. */
  encode(name: string, value: unknown): Buffer;
  /**
   * Decode a framed payload, resolving the writer's schema (by id) against the reader's: the newest
   * schema of the same name, or of `expect` when given (FS_ERR_UNEXPECTED_SCHEMA if the writer's record
   * has another name).
   */
  decode<T = unknown>(buf: Buffer, expect?: readonly string[], opts?: DecodeOptions): Decoded<T>;
}

export interface DecodeOptions {
  /**
   * Top-level fields of the reader's record not to materialise (skipped in the body, absent from the
   * value): a consumer that never reads a decision's feature vector need not build 196 numbers.
   */
  skip?: readonly string[];
}

/**
 * How a record is encoded: runs of fields by avsc (each run a record type of those fields, whose
 * encoding is theirs end to end, as Avro's record encoding is its fields' in order), and float arrays
 * (a decision's feature vector, ~200 numbers) written here, four bytes each, where avsc writes them one
 * at a time through its generic array path (most of a decision's encoding time). The bytes are avsc's:
 * test/unit/framing.test.ts compares them on random records.
 */
type Part =
  | { kind: 'avro'; type: avro.Type }
  | { kind: 'floats'; field: string; nullBranch: number; arrayBranch: number };

/** A float array, or a union of null and one (either order), as `field`; else null. */
function floatsPart(field: { name: string; type: avro.Type }): Part | null {
  const t = field.type as avro.Type & { types?: avro.Type[]; itemsType?: avro.Type };
  const isFloats = (x: avro.Type & { itemsType?: avro.Type }) =>
    x.typeName === 'array' && x.itemsType?.typeName === 'float';
  if (isFloats(t)) return { kind: 'floats', field: field.name, nullBranch: -1, arrayBranch: -1 };
  const branches = t.types;
  if (!branches || branches.length !== 2) return null;
  const a = branches.findIndex((b) => isFloats(b));
  const n = branches.findIndex((b) => b.typeName === 'null');
  if (a < 0 || n < 0) return null;
  return { kind: 'floats', field: field.name, nullBranch: n, arrayBranch: a };
}

function planOf(type: avro.Type): Part[] {
  const fields = (type as avro.Type & { fields?: { name: string; type: avro.Type }[] }).fields;
  const floats = fields?.map(floatsPart);
  if (!fields || !floats!.some((p) => p !== null)) return [{ kind: 'avro', type }];
  // Defaults as the schema has them (JSON), for the runs' records to fill absent fields as the whole
  // record's type does.
  const json = (type.schema({ exportAttrs: true }) as { fields: { default?: unknown }[] }).fields;
  const parts: Part[] = [];
  let run: { name: string; type: avro.Type; default?: unknown }[] = [];
  const endRun = () => {
    if (!run.length) return;
    // Field types are passed as types: named types (enums) are reused, not defined again.
    const t = avro.Type.forSchema(
      { type: 'record', name: `Part${parts.length}`, fields: run } as unknown as avro.Schema,
      { registry: {} },
    );
    parts.push({ kind: 'avro', type: t });
    run = [];
  };
  fields.forEach((f, i) => {
    const p = floats![i];
    if (!p)
      run.push({
        name: f.name,
        type: f.type,
        ...('default' in json[i]! ? { default: json[i]!.default } : {}),
      });
    else {
      endRun();
      parts.push(p);
    }
  });
  endRun();
  return parts;
}

/** Where encode writes (grown as needed; one per process: encoding is synchronous). */
let scratch = Buffer.allocUnsafeSlow(64 * 1024);
let scratchF32 = new Float32Array(scratch.buffer, 0, scratch.length >> 2);
function grow(need: number) {
  const next = Buffer.allocUnsafeSlow(Math.max(need, scratch.length * 2));
  scratch.copy(next);
  scratch = next;
  scratchF32 = new Float32Array(scratch.buffer, 0, scratch.length >> 2);
}

function writeVarLong(n: number, at: number): number {
  // Zigzag of a non-negative count: 2n.
  let v = n * 2;
  while (v >= 128) {
    scratch[at++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  scratch[at++] = v;
  return at;
}

/** Encodes `value` by `parts` into the scratch from `at`; returns the end. Throws as avsc would. */
function encodeBody(parts: readonly Part[], value: Record<string, unknown>, at: number): number {
  for (const p of parts) {
    if (p.kind === 'avro') {
      let end = p.type.encode(value, scratch, at);
      if (end < 0) {
        // avsc answers minus the bytes it lacked.
        grow(scratch.length - end);
        end = p.type.encode(value, scratch, at);
      }
      at = end;
      continue;
    }
    const v = value[p.field];
    if (v === null && p.nullBranch >= 0) {
      if (scratch.length < at + 1) grow(at + 1);
      at = writeVarLong(p.nullBranch, at);
      continue;
    }
    if (!Array.isArray(v)) throw new Error(`${p.field}: not an array of floats`);
    const n = v.length;
    // Union branch, block count, n floats (aligned here to write them through a Float32Array), end.
    if (scratch.length < at + 24 + 4 * n) grow(at + 24 + 4 * n);
    if (p.arrayBranch >= 0) at = writeVarLong(p.arrayBranch, at);
    if (n) {
      at = writeVarLong(n, at);
      // The scratch owns its memory from byte 0 (allocUnsafeSlow): 4-aligned offsets index scratchF32.
      const pad = (4 - (at & 3)) & 3;
      const f0 = (at + pad) >> 2;
      for (let i = 0; i < n; i++) {
        const x = v[i] as unknown;
        if (typeof x !== 'number') throw new Error(`${p.field}[${i}]: not a float`);
        scratchF32[f0 + i] = x;
      }
      if (pad) scratch.copy(scratch, at, at + pad, at + pad + 4 * n);
      at += 4 * n;
    }
    scratch[at++] = 0;
  }
  return at;
}

export function createFramedCodec(catalog: SchemaCatalog): FramedCodec {
  const resolvers = new Map<
    number | string,
    { name: string; reader: avro.Type; resolver: avro.Resolver | null }
  >();

  const plans = new Map<number, Part[]>();
  const planFor = (id: number, type: avro.Type): Part[] => {
    let p = plans.get(id);
    if (!p) plans.set(id, (p = planOf(type)));
    return p;
  };

  const projected = new Map<string, avro.Type>();
  /** The newest schema of `name` without the `skip` fields. */
  const projection = (name: string, skip: readonly string[]): avro.Type => {
    const key = `${name}|${skip.join(',')}`;
    let t = projected.get(key);
    if (!t) {
      const schema = catalog.reader(name).schema() as avro.schema.RecordType;
      t = avro.Type.forSchema({ ...schema, fields: schema.fields.filter((f) => !skip.includes(f.name)) });
      projected.set(key, t);
    }
    return t;
  };

  const resolverFor = (schemaId: number, skip?: readonly string[]) => {
    const cacheKey = skip?.length ? `${schemaId}|${skip.join(',')}` : schemaId;
    let r = resolvers.get(cacheKey);
    if (r) return r;
    const writer = catalog.byId(schemaId);
    const name = writer.name as string;
    const reader = skip?.length ? projection(name, skip) : catalog.reader(name);
    let resolver: avro.Resolver | null = null;
    if (reader !== writer) {
      try {
        resolver = reader.createResolver(writer);
      } catch (e) {
        fail(
          'INCOMPATIBLE_SCHEMA',
          `schema id ${schemaId} (${name}): ${(e as Error).message}`,
          { schemaId },
          e,
        );
      }
    }
    r = { name, reader, resolver };
    resolvers.set(cacheKey, r);
    return r;
  };

  return {
    encode(name, value) {
      const id = catalog.idOf(name);
      const type = catalog.byId(id);
      let end: number;
      try {
        scratch[0] = MAGIC_BYTE;
        scratch.writeInt32BE(id, 1);
        end = encodeBody(planFor(id, type), value as Record<string, unknown>, HEADER_BYTES);
      } catch (e) {
        const paths: string[] = [];
        type.isValid(value, { errorHook: (p) => paths.push(p.join('.')) });
        fail(
          'ENCODE_FAILED',
          `${name}: ${paths.length ? `bad field(s) ${paths.join(', ')}` : (e as Error).message}`,
          undefined,
          e,
        );
      }
      // One copy out of the scratch (small payloads come from Node's shared pool).
      const out = Buffer.allocUnsafe(end);
      scratch.copy(out, 0, 0, end);
      return out;
    },

    decode<T>(buf: Buffer, expect?: readonly string[], opts?: DecodeOptions): Decoded<T> {
      if (buf.length === 0) fail('TRUNCATED_PAYLOAD', 'empty payload');
      if (buf[0] !== MAGIC_BYTE) fail('BAD_MAGIC_BYTE', `got 0x${buf[0]!.toString(16).padStart(2, '0')}`);
      if (buf.length < HEADER_BYTES)
        fail('TRUNCATED_PAYLOAD', `${buf.length} bytes, the header alone is ${HEADER_BYTES}`);
      const schemaId = buf.readInt32BE(1);
      const { name, reader, resolver } = resolverFor(schemaId, opts?.skip);
      if (expect && !expect.includes(name)) {
        fail('UNEXPECTED_SCHEMA', `got ${name} (id ${schemaId}), expected ${expect.join(' or ')}`, {
          schemaId,
        });
      }
      let res: { value: unknown; offset: number };
      try {
        res = resolver ? reader.decode(buf, HEADER_BYTES, resolver) : reader.decode(buf, HEADER_BYTES);
      } catch (e) {
        if (e instanceof FraudstreamError) throw e;
        // avsc throws on impossible values (negative lengths, bad union or enum index): a corrupt body.
        fail('CORRUPT_PAYLOAD', `corrupt Avro body for ${name}: ${(e as Error).message}`, { schemaId }, e);
      }
      if (res.offset < 0)
        fail('TRUNCATED_PAYLOAD', `${name} body ends early (${buf.length} bytes)`, { schemaId });
      if (res.offset !== buf.length) {
        fail('CORRUPT_PAYLOAD', `${buf.length - res.offset} trailing bytes after the ${name} body`, {
          schemaId,
        });
      }
      return { schemaId, name, value: res.value as T };
    },
  };
}
