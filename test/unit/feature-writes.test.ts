import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HeldRow } from '../../features/core.js';
import {
  decodeRow,
  encodeOps,
  encodeRowInto,
  rowMax,
  lblRecord,
  WRITE_CHUNK_BYTES,
  type Lookup,
  type Op,
  type RecordFormat,
} from '../../features/writes.js';
import { entityIds } from '../../features/assemble.js';
import type { ScoringEvent } from '../../schemas/index.js';
import { samplePayment, sampleWithdrawal } from '../fixtures.js';

/**
 * A label lookup's record the slow, obvious way (entityIds: merchant, device, destination), which the
 * encoder writes field by field and lblRecord builds as a string.
 */
function lookupRecord(ev: Lookup): string {
  if (typeof ev === 'string') return ev;
  const ids = entityIds(ev);
  return `${ids[4] ?? ''}\t${ids[2] ?? ''}\t${ids[5] ?? ''}\t${ev.event.event_time}`;
}

/** Held lookups of every shape: payments and withdrawals, with and without a device, non-ASCII ids. */
const lookupEventArb = (id: string): fc.Arbitrary<ScoringEvent> =>
  fc
    .record({
      withdrawal: fc.boolean(),
      device: fc.constantFrom(null, '', 'dev-1', 'appareil-é-☃'),
      other: fc.constantFrom('', 'm-42', 'bénéficiaire-✓'),
      t: fc.integer({ min: 946_684_800_000, max: 4_102_444_800_000 }),
    })
    .map(({ withdrawal, device, other, t }) =>
      withdrawal
        ? {
            type: 'WITHDRAWAL',
            event: sampleWithdrawal({
              event_id: id,
              device_id: device,
              destination_id: other,
              event_time: t,
            }),
          }
        : {
            type: 'PAYMENT',
            event: samplePayment({ event_id: id, device_id: device, merchant_id: other, event_time: t }),
          },
    );

/** One operation of a blob as WRITE_LUA reads it: kind, key, and for a SET the value and the TTL. */
interface Parsed {
  kind: 'del' | 'set';
  key: string;
  value?: Buffer;
  ttl?: string;
}

/** Reads a blob the way WRITE_LUA does (struct.unpack '<BI4', then '<I4', then a length-prefixed TTL). */
function parseBlob(b: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let pos = 0;
  while (pos < b.length) {
    const kind = b[pos]!;
    const kl = b.readUInt32LE(pos + 1);
    pos += 5;
    const key = b.toString('utf8', pos, pos + kl);
    pos += kl;
    if (kind === 0) {
      out.push({ kind: 'del', key });
      continue;
    }
    expect(kind).toBe(1);
    const vl = b.readUInt32LE(pos);
    pos += 4;
    const value = b.subarray(pos, pos + vl);
    pos += vl;
    const tl = b[pos]!;
    const ttl = b.toString('latin1', pos + 1, pos + 1 + tl);
    pos += 1 + tl;
    out.push({ kind: 'set', key, value, ttl });
  }
  expect(pos).toBe(b.length);
  return out;
}

const COLS = 13;
// Ids as Kafka keys may carry them: ASCII, Latin-1, three-byte and four-byte UTF-8.
const idArb = fc
  .array(fc.constantFrom('a', 'Z', '7', '-', ':', 'ü', 'ß', '€', '中', '😀'), { minLength: 1, maxLength: 24 })
  .map((cs) => cs.join(''));
/** A feature value: 0 (most), any float32, or a whole number (counts, amounts), across the varint's edges. */
const valueArb = fc.oneof(
  fc.constant(0),
  fc.float({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -3, max: 2 ** 29 }).map(Math.fround),
  fc.constantFrom(1, 63, 64, 127, 128, 2 ** 14, 2 ** 21, 2 ** 28 - 16, 2 ** 28, 0.5, -1, -0),
);
const rowArb = fc.record({
  late: fc.constantFrom(0, 1),
  values: fc.array(valueArb, {
    minLength: COLS,
    maxLength: COLS,
  }),
});
/** The rows behind each generated held map, to check what the encoder wrote against. */
const rowsOf = new WeakMap<Map<string, HeldRow>, { m: Float32Array; late: number[] }>();

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc
    .tuple(idArb, fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 1, max: 2 ** 40 }))
    .map(([k, n, ttl]): Op => ['state', `{x:${k}}:s`, Buffer.alloc(n, n & 255), ttl]),
  idArb.map((k): Op => ['del', `{a:${k}}:lbl:e`]),
  fc
    .tuple(
      idArb,
      fc.uniqueArray(fc.tuple(idArb, rowArb), { selector: (r) => r[0], maxLength: 6 }),
      fc.uniqueArray(
        idArb.chain((id) =>
          fc.tuple(fc.constant(id), fc.oneof(idArb, lookupEventArb(id)) as fc.Arbitrary<Lookup>),
        ),
        { selector: (l) => l[0], maxLength: 6 },
      ),
    )
    .map(([acct, rows, lookups]): Op => {
      // Held as the engine holds them: each row's record, one after another in a slab.
      const m = new Float32Array(rows.length * COLS);
      const slab = Buffer.alloc(rows.length * rowMax(COLS) + 3, 0xee);
      const held = new Map<string, HeldRow>();
      let at = 3; // not at the slab's start
      rows.forEach(([id, r], i) => {
        m.set(r.values, i * COLS);
        const end = encodeRowInto(m, i * COLS, r.late, COLS, slab, at);
        held.set(id, { b: slab, o: at, n: end - at });
        at = end;
      });
      rowsOf.set(held, { m, late: rows.map(([, r]) => r.late) });
      const lb = new Map<string, unknown>();
      for (const [id, rec] of lookups) lb.set(id, rec);
      return ['held', `{a:${acct}}`, held, lb];
    }),
);

/** What each op should come out as, in order. */
function expected(ops: Op[], f: RecordFormat): Parsed[] {
  const out: Parsed[] = [];
  for (const o of ops) {
    if (o[0] === 'del') out.push({ kind: 'del', key: o[1] });
    else if (o[0] === 'state') out.push({ kind: 'set', key: o[1], value: o[2], ttl: String(o[3]) });
    else {
      for (const id of o[2].keys()) out.push({ kind: 'set', key: `${o[1]}:q:${id}`, ttl: f.rowTtl });
      for (const [id, ev] of o[3])
        out.push({
          kind: 'set',
          key: `${o[1]}:lbl:${id}`,
          value: Buffer.from(lookupRecord(ev as Lookup)),
          ttl: f.lblTtl,
        });
    }
  }
  return out;
}

describe('the write format (features/writes.ts)', () => {
  it('serialises every op exactly, whatever the keys and sizes, across chunks and scratch growth', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 25 }),
        fc.integer({ min: 1, max: 400 }),
        fc.constantFrom(64, 300, 2048, WRITE_CHUNK_BYTES),
        (ops, scratchBytes, chunk) => {
          // A small scratch, so the encoder grows it often, at every offset.
          const f: RecordFormat = {
            rowTtl: '604800000',
            lblTtl: '7776000000',
            cols: COLS,
            scratch: Buffer.alloc(scratchBytes, 0xee),
          };
          const blobs = encodeOps(ops, f, chunk);
          const got = blobs.flatMap(parseBlob);
          const want = expected(ops, f);
          expect(got.map(({ kind, key, ttl }) => ({ kind, key, ttl }))).toEqual(
            want.map(({ kind, key, ttl }) => ({ kind, key, ttl })),
          );
          // Values: states and lookups byte for byte; rows decode to the row and its late flag.
          const rows = ops.flatMap((o) =>
            o[0] === 'held'
              ? [...o[2].keys()].map((_, i) => ({
                  m: rowsOf.get(o[2])!.m,
                  o: i * COLS,
                  late: rowsOf.get(o[2])!.late[i]!,
                }))
              : [],
          );
          let r = 0;
          got.forEach((g, i) => {
            if (g.kind === 'del') return;
            if (want[i]!.value) {
              expect(g.value!.equals(want[i]!.value!)).toBe(true);
              return;
            }
            const h = rows[r++]!;
            const back = new Float32Array(COLS);
            expect(decodeRow(g.value!, back, 0, COLS)).toBe(h.late);
            // -0 is stored as 0 (a row keeps only its non-zero values).
            expect(Array.from(back)).toEqual(Array.from(h.m.subarray(h.o, h.o + COLS), (v) => v || 0));
          });
          expect(r).toBe(rows.length);
          // A blob holds about `chunk` bytes: it only goes over with a single record.
          for (const b of blobs) if (b.length > chunk) expect(parseBlob(b)).toHaveLength(1);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('builds a label lookup record as entityIds names the event, for every kind of event', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 8 }).chain(lookupEventArb), (ev) => {
        expect(lblRecord(ev)).toBe(lookupRecord(ev));
      }),
    );
    expect(lblRecord('m\td\t\t1')).toBe('m\td\t\t1');
  });
});

/** The dedupe record written before the varint form (float32 values), still found in Redis for a week. */
function sparseFloatRow(m: Float32Array, late: number): Buffer {
  const bm = (COLS + 7) >> 3;
  const b = Buffer.alloc(1 + bm + 4 * COLS);
  b[0] = late;
  let at = 1 + bm;
  for (let j = 0; j < COLS; j++) {
    if (m[j] === 0) continue;
    b[1 + (j >> 3)] = b[1 + (j >> 3)]! | (1 << (j & 7));
    at = b.writeFloatLE(m[j]!, at);
  }
  return b.subarray(0, at);
}

describe('the dedupe row record', () => {
  const matrixOf = (values: number[]) => Float32Array.from(values);
  const encode = (m: Float32Array, late: number) => {
    const b = Buffer.alloc(rowMax(COLS) + 8, 0xee);
    return b.subarray(0, encodeRowInto(m, 0, late, COLS, b, 0));
  };

  it('gives back every value exactly, within rowMax bytes, and reads the two earlier forms', () => {
    fc.assert(
      fc.property(rowArb, ({ late, values }) => {
        const m = matrixOf(values);
        const want = Array.from(m, (v) => v || 0); // -0 is kept as 0
        const rec = encode(m, late);
        expect(rec.length).toBeLessThanOrEqual(rowMax(COLS));
        const dense = Buffer.concat([Buffer.from([late, 0, 0, 0]), Buffer.from(m.buffer)]);
        for (const [form, expected] of [
          [rec, want],
          [sparseFloatRow(m, late), want],
          [dense, Array.from(m)], // the dense form keeps -0
        ] as const) {
          const back = new Float32Array(COLS).fill(7);
          expect(decodeRow(form, back, 0, COLS)).toBe(late);
          expect(Array.from(back)).toEqual(expected);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('is smaller than the float32 form when values are whole numbers', () => {
    const m = matrixOf([3, 0, 0, 120, 4500, 0, 1, 0, 0, 0, 250_000, 0, 2]);
    expect(encode(m, 0).length).toBeLessThan(sparseFloatRow(m, 0).length - 10);
  });

  it('refuses a cut, padded or corrupt record rather than misread it', () => {
    fc.assert(
      fc.property(rowArb, fc.nat(), ({ late, values }, cut) => {
        const rec = encode(matrixOf(values), late);
        const out = new Float32Array(COLS);
        const bm = (COLS + 7) >> 3;
        if (rec.length > 1 + bm)
          expect(decodeRow(rec.subarray(0, 1 + bm + (cut % (rec.length - 1 - bm))), out, 0, COLS)).toBeNull();
        expect(decodeRow(Buffer.concat([rec, Buffer.from([0])]), out, 0, COLS)).toBeNull();
        const badFlag = Buffer.from(rec);
        badFlag[0] = 0x12;
        expect(decodeRow(badFlag, out, 0, COLS)).toBeNull();
      }),
      { numRuns: 500 },
    );
  });
});
