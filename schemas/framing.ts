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

export function createFramedCodec(catalog: SchemaCatalog): FramedCodec {
  const resolvers = new Map<
    number | string,
    { name: string; reader: avro.Type; resolver: avro.Resolver | null }
  >();

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
      let body: Buffer;
      try {
        body = type.toBuffer(value);
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
      const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
      out[0] = MAGIC_BYTE;
      out.writeInt32BE(id, 1);
      body.copy(out, HEADER_BYTES);
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
