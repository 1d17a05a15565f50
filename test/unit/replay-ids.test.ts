import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashString } from '../../features/core.js';
import { repeatableFromBits, repeatableIn, scanRepeatableIds, type RepeatableIds } from '../../replay/ids.js';
import {
  createContainerWriter,
  createSchemaCatalog,
  RecordNames,
  type AvroType,
  type ScoringEvent,
} from '../../schemas/index.js';
import { samplePayment, sampleWithdrawal, T0 } from '../fixtures.js';

const catalog = createSchemaCatalog();

async function write(path: string, type: AvroType, records: object[], codec: 'null' | 'deflate' = 'deflate') {
  const w = createContainerWriter<object>(path, type, { codec });
  await w.appendAll(records);
  await w.close();
}

function scan(paths: string[], records: number): RepeatableIds | null {
  const bits = scanRepeatableIds(paths, records);
  return bits ? repeatableFromBits(bits) : null;
}

/** Ids, some repeated (within a file and across the two), ASCII or not. */
const idsArb = fc
  .array(
    fc.record({
      id: fc.oneof(
        fc.stringMatching(/^[a-z0-9-]{1,40}$/),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
      ),
      repeats: fc.constantFrom(1, 1, 1, 2, 3),
      withdrawal: fc.boolean(),
    }),
    { minLength: 1, maxLength: 120 },
  )
  .map((xs) => {
    const byId = new Map<string, (typeof xs)[number]>();
    for (const x of xs) byId.set(x.id, x);
    return [...byId.values()];
  });

describe("replay's read of which event ids can repeat", () => {
  it('finds every id that occurs more than once, in either file, from the bytes alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-ids-'));
    await fc.assert(
      fc.asyncProperty(idsArb, fc.constantFrom<'null' | 'deflate'>('null', 'deflate'), async (xs, codec) => {
        const pays: object[] = [];
        const wds: object[] = [];
        let t = T0;
        for (const x of xs)
          for (let k = 0; k < x.repeats; k++) {
            // A repeat may land in the other file: the set is over both.
            const inWd = k === 1 ? !x.withdrawal : x.withdrawal;
            if (inWd) wds.push(sampleWithdrawal({ event_id: x.id, event_time: t++, device_id: 'd' }));
            else pays.push(samplePayment({ event_id: x.id, event_time: t++, ip: x.id.slice(0, 3) }));
          }
        const p = join(dir, 'p.avro');
        const w = join(dir, 'w.avro');
        await write(p, catalog.reader(RecordNames.PaymentEvent), pays, codec);
        await write(w, catalog.reader(RecordNames.WithdrawalEvent), wds, codec);
        const bits = scanRepeatableIds([p, w], pays.length + wds.length)!;
        expect(bits).not.toBeNull();
        const got = repeatableFromBits(bits);
        for (const x of xs) if (x.repeats > 1) expect(got.has(x.id), x.id).toBe(true);
        // An id seen once is taken for a repeated one only when its hash meets another id's. (A bound
        // on how often, here, failed now and then: one meeting makes two such ids. The rate is below.)
        const slot = (id: string) => hashString(id) & bits.mask;
        for (const x of xs)
          if (x.repeats === 1 && got.has(x.id))
            expect(
              xs.some((y) => y.id !== x.id && slot(y.id) === slot(x.id)),
              x.id,
            ).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('takes an id seen once for a repeated one about as rarely as its size promises (1.5 %)', async () => {
    // 50,000 ids seen once, ASCII and not, none repeated: every id it answers for is a false one.
    const ids = Array.from({ length: 50_000 }, (_, i) => (i % 5 ? `evt-${i}-${i * 7919}` : `évt-${i}`));
    const p = join(mkdtempSync(join(tmpdir(), 'fs-ids-')), 'p.avro');
    await write(
      p,
      catalog.reader(RecordNames.PaymentEvent),
      ids.map((id, i) => samplePayment({ event_id: id, event_time: T0 + i })),
    );
    const got = scan([p], ids.length)!;
    const rate = ids.filter((id) => got.has(id)).length / ids.length;
    expect(rate).toBeLessThan(0.02);
  });

  it('skips any field the writer schema has, before or after the id', async () => {
    const type = avro.Type.forSchema({
      type: 'record',
      name: 'Other',
      namespace: 'x.y',
      fields: [
        { name: 'tags', type: { type: 'array', items: 'string' } },
        { name: 'attrs', type: { type: 'map', values: ['null', 'double'] } },
        {
          name: 'inner',
          type: {
            type: 'record',
            name: 'Inner',
            fields: [
              { name: 'f', type: 'float' },
              { name: 'b', type: 'boolean' },
              { name: 'h', type: { type: 'fixed', name: 'H', size: 3 } },
            ],
          },
        },
        { name: 'again', type: ['null', 'Inner'] },
        { name: 'kind', type: { type: 'enum', name: 'Kind', symbols: ['A', 'B'] } },
        { name: 'event_id', type: { type: 'string' } },
        { name: 'raw', type: 'bytes' },
        { name: 'kind2', type: 'Kind' },
        { name: 'n', type: 'int' },
      ],
    }) as unknown as AvroType;
    const rec = (id: string, i: number) => ({
      tags: Array.from({ length: i % 4 }, (_, k) => `t${k}`),
      attrs: Object.fromEntries(Array.from({ length: i % 3 }, (_, k) => [`k${k}`, k % 2 ? k * 1.5 : null])),
      inner: { f: i / 3, b: i % 2 === 0, h: Buffer.from([i, 1, 2]) },
      again: i % 2 ? null : { f: 1, b: true, h: Buffer.from([0, 0, 0]) },
      kind: i % 2 ? 'A' : 'B',
      event_id: id,
      raw: Buffer.alloc(i % 5, 7),
      kind2: 'B',
      n: -i,
    });
    const ids = Array.from({ length: 300 }, (_, i) => `id-${i}`);
    const records = [...ids.map(rec), ...ids.filter((_, i) => i % 7 === 0).map(rec)];
    const p = join(mkdtempSync(join(tmpdir(), 'fs-ids-')), 'other.avro');
    await write(p, type, records);
    const got = scan([p], records.length)!;
    expect(got).not.toBeNull();
    ids.forEach((id, i) => {
      if (i % 7 === 0) expect(got.has(id), id).toBe(true);
    });
    expect(ids.filter((id, i) => i % 7 !== 0 && got.has(id)).length).toBeLessThanOrEqual(3);
  });

  it('gives no answer, and does not throw, for what it cannot read: every event then keeps its record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-ids-'));
    const p = join(dir, 'p.avro');
    const pays = Array.from({ length: 2000 }, (_, i) =>
      samplePayment({ event_id: `e${i}`, event_time: T0 + i }),
    );
    await write(p, catalog.reader(RecordNames.PaymentEvent), pays);
    expect(scan([p], pays.length)).not.toBeNull();
    const bytes = readFileSync(p);
    // Garbled inside a block, cut short, not Avro at all, missing.
    const garbled = Buffer.from(bytes);
    for (let i = garbled.length >> 1; i < (garbled.length >> 1) + 100; i++) garbled[i] = garbled[i]! ^ 0x5a;
    writeFileSync(join(dir, 'garbled.avro'), garbled);
    writeFileSync(join(dir, 'cut.avro'), bytes.subarray(0, bytes.length - 40));
    writeFileSync(join(dir, 'text.avro'), 'not avro at all\n');
    for (const f of ['garbled.avro', 'cut.avro', 'text.avro', 'missing.avro'])
      expect(scan([join(dir, f)], pays.length), f).toBeNull();
    // Records without a string event_id.
    const noId = avro.Type.forSchema({
      type: 'record',
      name: 'NoId',
      fields: [{ name: 'event_id', type: 'long' }],
    }) as unknown as AvroType;
    await write(join(dir, 'noid.avro'), noId, [{ event_id: 1 }, { event_id: 1 }]);
    expect(scan([join(dir, 'noid.avro')], 2)).toBeNull();
  });

  it('answers exactly for events already in memory (replay from Kafka)', () => {
    const ev = (id: string): ScoringEvent => ({ type: 'PAYMENT', event: samplePayment({ event_id: id }) });
    const got = repeatableIn(['a', 'b', 'a', 'c', 'c', 'c'].map(ev));
    expect(['a', 'b', 'c', 'd'].map((id) => got.has(id))).toEqual([true, false, true, false]);
  });
});
