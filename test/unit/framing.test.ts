import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createFramedCodec,
  createSchemaCatalog,
  createSchemas,
  HEADER_BYTES,
  RecordNames,
  type PaymentEvent,
} from '../../schemas/index.js';
import { isFraudstreamError } from '../../lib/errors.js';
import { sampleDecision, samplePayment, sampleWithdrawal } from '../fixtures.js';

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (isFraudstreamError(e)) return e.code;
    throw e;
  }
  throw new Error('expected an error');
};

describe('Confluent framing', () => {
  const { codec, catalog } = createSchemas();

  it('round-trips every record type with magic byte 0 and the catalog id', () => {
    const p = samplePayment();
    const buf = codec.encode(RecordNames.PaymentEvent, p);
    expect(buf[0]).toBe(0);
    expect(buf.readInt32BE(1)).toBe(catalog.idOf(RecordNames.PaymentEvent));
    const d = codec.decode<PaymentEvent>(buf);
    expect(d.name).toBe(RecordNames.PaymentEvent);
    expect({ ...d.value }).toEqual(p);
    const w = sampleWithdrawal();
    expect({ ...codec.decode<object>(codec.encode(RecordNames.WithdrawalEvent, w)).value }).toEqual(w);
  });

  it('rejects a bad magic byte, an unknown schema id and truncated payloads with stable codes', () => {
    const buf = codec.encode(RecordNames.PaymentEvent, samplePayment());
    const bad = Buffer.from(buf);
    bad[0] = 1;
    expect(codeOf(() => codec.decode(bad))).toBe('FS_ERR_BAD_MAGIC_BYTE');
    const unknown = Buffer.from(buf);
    unknown.writeInt32BE(9999, 1);
    expect(codeOf(() => codec.decode(unknown))).toBe('FS_ERR_UNKNOWN_SCHEMA_ID');
    expect(codeOf(() => codec.decode(Buffer.alloc(0)))).toBe('FS_ERR_TRUNCATED_PAYLOAD');
    expect(codeOf(() => codec.decode(buf.subarray(0, 3)))).toBe('FS_ERR_TRUNCATED_PAYLOAD');
    for (const cut of [6, 20, buf.length - 1]) {
      expect(['FS_ERR_TRUNCATED_PAYLOAD', 'FS_ERR_CORRUPT_PAYLOAD']).toContain(
        codeOf(() => codec.decode(buf.subarray(0, cut))),
      );
    }
    expect(codeOf(() => codec.decode(Buffer.concat([buf, Buffer.from([1, 2])])))).toBe(
      'FS_ERR_CORRUPT_PAYLOAD',
    );
  });

  it('skips fields a consumer does not read, and decodes the rest unchanged', () => {
    const d = sampleDecision();
    const buf = codec.encode(RecordNames.Decision, d);
    const full = { ...codec.decode<object>(buf, [RecordNames.Decision]).value };
    expect(full).toEqual(d);
    const lean = { ...codec.decode<object>(buf, [RecordNames.Decision], { skip: ['features'] }).value };
    const { features: _, ...rest } = d;
    expect(lean).toEqual(rest);
    // The cache keeps the full and the projected readers apart.
    expect({ ...codec.decode<object>(buf, [RecordNames.Decision]).value }).toEqual(d);
  });

  it("writes avsc's bytes when it encodes a float array itself (random decisions and records)", () => {
    // Float arrays are written by the codec, the other fields by avsc (schemas/framing.ts): every byte
    // must be what avsc writes for the whole record, wherever the array starts (string lengths move it
    // across 4-byte boundaries) and however long it is (past the 64 KiB scratch: it grows).
    const framed = (name: string, v: unknown) => {
      const id = catalog.idOf(name);
      const body = catalog.byId(id).toBuffer(v);
      const head = Buffer.alloc(HEADER_BYTES);
      head.writeInt32BE(id, 1);
      return Buffer.concat([head, body]);
    };
    const float = fc.oneof(
      fc.float(),
      fc.constantFrom(0, -0, 1, 2 ** 28, NaN, Infinity, -Infinity),
      fc.integer({ min: 0, max: 1000 }),
    );
    const decision = fc.record({
      event_id: fc.string({ maxLength: 40 }),
      event_type: fc.constantFrom('PAYMENT', 'WITHDRAWAL'),
      account_id: fc.string({ unit: 'grapheme', maxLength: 12 }),
      event_time: fc.integer({ min: 0, max: 2 ** 44 }),
      amount_minor: fc.integer({ min: 0, max: 2 ** 40 }),
      currency: fc.constantFrom('EUR', 'USD'),
      outcome: fc.constantFrom('APPROVE', 'FLAG'),
      score: fc.double({ min: 0, max: 1, noNaN: true }),
      model_version: fc.string({ maxLength: 7 }),
      policy_version: fc.string({ maxLength: 5 }),
      reasons: fc.array(fc.string({ maxLength: 9 }), { maxLength: 4 }),
      decided_at: fc.integer({ min: 0, max: 2 ** 44 }),
      latency_us: fc.integer({ min: 0, max: 2 ** 40 }),
      feature_spec: fc.string({ maxLength: 3 }),
      features: fc.oneof(
        fc.constant(null),
        fc.array(float, { maxLength: 300 }),
        fc.array(float, { minLength: 17_000, maxLength: 17_010 }),
      ),
      challenger_score: fc.option(fc.double({ min: 0, max: 1, noNaN: true })),
      challenger_version: fc.option(fc.string({ maxLength: 6 })),
    });
    fc.assert(
      fc.property(decision, fc.boolean(), fc.boolean(), (full, dropScore, dropVersion) => {
        // Fields with a default may be absent: avsc writes the default.
        const d: Record<string, unknown> = { ...full };
        if (dropScore) delete d['challenger_score'];
        if (dropVersion) delete d['challenger_version'];
        expect(codec.encode(RecordNames.Decision, d).equals(framed(RecordNames.Decision, d))).toBe(true);
      }),
      { numRuns: 300 },
    );
    // Fields avsc writes that overflow the scratch (it grows, and the run is written again).
    for (const over of [{ model_version: 'm'.repeat(300_000) }, { reasons: Array(20_000).fill('R1') }]) {
      const big = sampleDecision(over);
      expect(codec.encode(RecordNames.Decision, big).equals(framed(RecordNames.Decision, big))).toBe(true);
    }
    // A record with no float array goes through avsc whole, with the same framing.
    const p = samplePayment();
    expect(codec.encode(RecordNames.PaymentEvent, p).equals(framed(RecordNames.PaymentEvent, p))).toBe(true);
  });

  it('refuses a feature vector that is not an array of numbers, naming the field', () => {
    const d = sampleDecision({ reasons: [] });
    for (const features of [[0.5, 'x'], 'x', undefined])
      expect(codeOf(() => codec.encode(RecordNames.Decision, { ...d, features }))).toBe(
        'FS_ERR_ENCODE_FAILED',
      );
    expect(() => codec.encode(RecordNames.Decision, { ...d, features: [1, 'x'] })).toThrow(/features/);
    // What was written before the failure does not leak into the next record.
    const ok = codec.decode<object>(codec.encode(RecordNames.Decision, { ...d, features: [2] })).value;
    expect({ ...ok }).toEqual({ ...d, features: [2] });
  });

  it('refuses a record of another type where one type is expected', () => {
    const buf = codec.encode(RecordNames.WithdrawalEvent, sampleWithdrawal());
    expect(codeOf(() => codec.decode(buf, [RecordNames.PaymentEvent]))).toBe('FS_ERR_UNEXPECTED_SCHEMA');
  });

  it('refuses to encode a value that does not fit its schema, naming the field', () => {
    const p = { ...samplePayment(), amount_minor: 'ten' };
    expect(() => codec.encode(RecordNames.PaymentEvent, p)).toThrow(/amount_minor/);
  });

  it("resolves an older writer's schema against a reader that adds a nullable field with a default", () => {
    const v1 = {
      type: 'record',
      name: 'Probe',
      namespace: 'fraudstream.v1',
      fields: [
        { name: 'event_id', type: 'string' },
        { name: 'amount_minor', type: 'long' },
      ],
    };
    const v2 = {
      ...v1,
      fields: [...v1.fields, { name: 'merchant_risk', type: ['null', 'double'], default: null }],
    };
    const writerCat = createSchemaCatalog({ entries: [{ id: 101, schema: v1 }] });
    const readerCat = createSchemaCatalog({
      entries: [
        { id: 101, schema: v1 },
        { id: 102, schema: v2 },
      ],
    });
    const old = createFramedCodec(writerCat).encode('fraudstream.v1.Probe', {
      event_id: 'e1',
      amount_minor: 1234,
    });
    const d = createFramedCodec(readerCat).decode<{
      event_id: string;
      amount_minor: number;
      merchant_risk: number | null;
    }>(old);
    expect(d.schemaId).toBe(101);
    expect({ ...d.value }).toEqual({ event_id: 'e1', amount_minor: 1234, merchant_risk: null });
  });

  it('reports an incompatible writer schema instead of decoding garbage', () => {
    const v1 = {
      type: 'record',
      name: 'Probe',
      namespace: 'fraudstream.v1',
      fields: [{ name: 'a', type: 'string' }],
    };
    const v2 = {
      ...v1,
      fields: [
        { name: 'a', type: 'string' },
        { name: 'b', type: 'long' },
      ],
    };
    const cat = createSchemaCatalog({
      entries: [
        { id: 1, schema: v1 },
        { id: 2, schema: v2 },
      ],
    });
    const buf = createFramedCodec(createSchemaCatalog({ entries: [{ id: 1, schema: v1 }] })).encode(
      'fraudstream.v1.Probe',
      { a: 'x' },
    );
    expect(codeOf(() => createFramedCodec(cat).decode(buf))).toBe('FS_ERR_INCOMPATIBLE_SCHEMA');
  });
});

describe('decodeEvent', () => {
  const schemas = createSchemas();
  const now = Date.UTC(2026, 5, 1);

  it('decodes and validates payments and withdrawals', () => {
    const p = schemas.decodeEvent(schemas.codec.encode(RecordNames.PaymentEvent, samplePayment()), now);
    expect(p.type).toBe('PAYMENT');
    const w = schemas.decodeEvent(schemas.codec.encode(RecordNames.WithdrawalEvent, sampleWithdrawal()), now);
    expect(w.type).toBe('WITHDRAWAL');
  });

  it('rejects a Decision or Label where an input event is expected', () => {
    const label = schemas.codec.encode(RecordNames.Label, {
      event_id: 'e',
      account_id: 'a',
      label: 'FRAUD',
      source: 'ANALYST',
      labelled_at: now,
      analyst: null,
      note: null,
    });
    expect(codeOf(() => schemas.decodeEvent(label, now))).toBe('FS_ERR_UNEXPECTED_SCHEMA');
  });

  it('rejects invalid events listing every problem', () => {
    const bad = {
      ...samplePayment(),
      amount_minor: -5,
      currency: 'XYZ',
      country: 'gb',
      event_time: Date.UTC(1999, 0, 1),
    };
    const buf = schemas.codec.encode(RecordNames.PaymentEvent, bad);
    try {
      schemas.decodeEvent(buf, now);
      expect.unreachable();
    } catch (e) {
      expect(isFraudstreamError(e, 'INVALID_EVENT')).toBe(true);
      const msg = (e as Error).message;
      for (const word of ['amount_minor', 'currency', 'country', 'event_time']) expect(msg).toContain(word);
    }
  });
});
