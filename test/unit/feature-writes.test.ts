import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HeldRow } from '../../features/core.js';
import {
  decodeRow,
  encodeOps,
  lblRecord,
  WRITE_CHUNK_BYTES,
  type Op,
  type RecordFormat,
} from '../../features/writes.js';
import { samplePayment } from '../fixtures.js';

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
const rowArb = fc.record({
  late: fc.constantFrom(0, 1),
  values: fc.array(fc.oneof(fc.constant(0), fc.float({ noNaN: true, noDefaultInfinity: true })), {
    minLength: COLS,
    maxLength: COLS,
  }),
});
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc
    .tuple(idArb, fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 1, max: 2 ** 40 }))
    .map(([k, n, ttl]): Op => ['state', `{x:${k}}:s`, Buffer.alloc(n, n & 255), ttl]),
  idArb.map((k): Op => ['del', `{a:${k}}:lbl:e`]),
  fc
    .tuple(
      idArb,
      fc.uniqueArray(fc.tuple(idArb, rowArb), { selector: (r) => r[0], maxLength: 6 }),
      fc.uniqueArray(fc.tuple(idArb, fc.oneof(idArb, fc.constant(null))), {
        selector: (l) => l[0],
        maxLength: 6,
      }),
    )
    .map(([acct, rows, lookups]): Op => {
      const m = new Float32Array(rows.length * COLS);
      const held = new Map<string, HeldRow>();
      rows.forEach(([id, r], i) => {
        m.set(r.values, i * COLS);
        held.set(id, { m, o: i * COLS, late: r.late });
      });
      const lb = new Map<string, unknown>();
      for (const [id, rec] of lookups)
        lb.set(id, rec ?? { type: 'PAYMENT', event: samplePayment({ event_id: id }) });
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
          value: Buffer.from(lblRecord(ev as Parameters<typeof lblRecord>[0])),
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
          const rows = ops.flatMap((o) => (o[0] === 'held' ? [...o[2].values()] : []));
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
});
