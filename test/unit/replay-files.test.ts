import { copyFileSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createProgress, formatProgress } from '../../cli/progress.js';
import { isFraudstreamError } from '../../lib/errors.js';
import { countContainerRecords, mergeChunksByEventTime, readEvents } from '../../replay/index.js';
import { createSchemaCatalog, readContainer, RecordNames, type ScoringEvent } from '../../schemas/index.js';
import { STREAM_FILES, writeSimulationFiles } from '../../simulator/index.js';

describe('container files: record count from block headers', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fs-count-'));
    await writeSimulationFiles(
      createSchemaCatalog(),
      { seed: 4, accounts: 400, days: 4, start: Date.UTC(2026, 0, 1), fraudRate: 0.02 },
      dir,
    );
  });

  it('equals the number of records decoded, for every stream', async () => {
    for (const f of Object.values(STREAM_FILES)) {
      let n = 0;
      for await (const _ of readContainer(join(dir, f))) n++;
      expect(countContainerRecords(join(dir, f)), f).toBe(n);
    }
  });

  it('writes a stream with no records as a valid file that reads as empty (a history without labels)', async () => {
    const { createContainerWriter, RecordNames } = await import('../../schemas/index.js');
    const catalog = createSchemaCatalog();
    const p = join(mkdtempSync(join(tmpdir(), 'fs-empty-')), STREAM_FILES.labels);
    await createContainerWriter(p, catalog.reader(RecordNames.Label)).close();
    expect(statSync(p).size).toBeGreaterThan(0);
    expect(countContainerRecords(p)).toBe(0);
    let n = 0;
    for await (const _ of readContainer(p, catalog.reader(RecordNames.Label))) n++;
    expect(n).toBe(0);
  });

  it('writes deflate at the level asked (replay: 1, the fastest), which reads back the same', async () => {
    const { createContainerWriter } = await import('../../schemas/index.js');
    const src = join(dir, STREAM_FILES.payments);
    const records: object[] = [];
    for await (const r of readContainer<object>(src)) records.push(r);
    const out = mkdtempSync(join(tmpdir(), 'fs-level-'));
    const sizes: number[] = [];
    for (const level of [1, 9]) {
      const p = join(out, `l${level}.avro`);
      const w = createContainerWriter<object>(p, createSchemaCatalog().reader(RecordNames.PaymentEvent), {
        deflateLevel: level,
      });
      await w.appendAll(records);
      await w.close();
      sizes.push(statSync(p).size);
      const back: object[] = [];
      for await (const r of readContainer<object>(p)) back.push(r);
      expect(back).toEqual(records);
    }
    expect(sizes[0]).toBeGreaterThan(sizes[1]!);
    let err: unknown;
    try {
      createContainerWriter(join(out, 'bad.avro'), createSchemaCatalog().reader(RecordNames.PaymentEvent), {
        deflateLevel: 0,
      });
    } catch (e) {
      err = e;
    }
    expect(isFraudstreamError(err, 'BAD_CONFIG')).toBe(true);
  });

  it('fails on a file cut inside a block or its sync marker, naming the file', () => {
    const src = join(dir, STREAM_FILES.payments);
    const size = statSync(src).size;
    for (const cut of [1, 8, 17, 1000, Math.floor(size / 2)]) {
      const p = join(dir, `cut-${cut}.avro`);
      copyFileSync(src, p);
      truncateSync(p, size - cut);
      let err: unknown;
      try {
        countContainerRecords(p);
      } catch (e) {
        err = e;
      }
      expect(isFraudstreamError(err, 'BAD_INPUT_FILE'), `cut ${cut}`).toBe(true);
      expect((err as Error).message).toContain(`cut-${cut}.avro`);
    }
  });

  it('fails, naming the file, on bytes garbled inside a block (which block headers cannot see)', async () => {
    const src = join(dir, STREAM_FILES.payments);
    const bytes = readFileSync(src);
    const mid = bytes.length >> 1;
    for (let i = mid; i < mid + 200; i++) bytes[i] = (bytes[i]! * 7 + 13) & 0xff;
    const bad = mkdtempSync(join(tmpdir(), 'fs-garbled-'));
    for (const f of [STREAM_FILES.payments, STREAM_FILES.withdrawals])
      copyFileSync(join(dir, f), join(bad, f));
    writeFileSync(join(bad, STREAM_FILES.payments), bytes);
    let n = 0;
    let err: unknown;
    try {
      for await (const _ of readEvents(bad, createSchemaCatalog())) n++;
    } catch (e) {
      err = e;
    }
    expect(isFraudstreamError(err, 'BAD_INPUT_FILE')).toBe(true);
    expect((err as Error).message).toContain(join(bad, STREAM_FILES.payments));
    // It read the records before the damage, then stopped there.
    expect(n).toBeGreaterThan(0);
  });

  it('stops reading when the reader stops early, and a new read starts from the first record', async () => {
    const catalog = createSchemaCatalog();
    const first: string[] = [];
    for await (const e of readEvents(dir, catalog)) {
      first.push(e.event.event_id);
      if (first.length === 10) break;
    }
    const again: string[] = [];
    for await (const e of readEvents(dir, catalog)) {
      again.push(e.event.event_id);
      if (again.length === 10) break;
    }
    expect(again).toEqual(first);
  });
});

describe('merging two streams of chunks in event time', () => {
  /** A stream's events cut into chunks at the given sizes (empty chunks included). */
  async function* chunked(events: ScoringEvent[], sizes: number[]): AsyncGenerator<ScoringEvent[]> {
    let at = 0;
    for (const n of sizes) {
      yield events.slice(at, at + n);
      at += n;
    }
    if (at < events.length) yield events.slice(at);
  }
  const ev = (t: number, id: string, src: string) =>
    ({ type: 'PAYMENT', event: { event_time: t, event_id: id, src } }) as unknown as ScoringEvent;
  const stream = (src: string) =>
    fc
      .array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.constantFrom('a', 'b', 'c')), { maxLength: 30 })
      .map((xs) =>
        xs.map(([t, id]) => ev(t, id, src)).sort((x, y) => x.event.event_time - y.event.event_time),
      );
  const sizes = fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 12 });

  it('equals a one-event-at-a-time merge, however the streams are cut', async () => {
    await fc.assert(
      fc.asyncProperty(stream('a'), stream('b'), sizes, sizes, async (a, b, sa, sb) => {
        // The reference: take a's next unless b's is earlier, or equal in time and event_id or smaller.
        const want: ScoringEvent[] = [];
        let i = 0;
        let j = 0;
        while (i < a.length || j < b.length) {
          const x = a[i];
          const y = b[j];
          const takeA =
            x !== undefined &&
            (y === undefined ||
              x.event.event_time < y.event.event_time ||
              (x.event.event_time === y.event.event_time && x.event.event_id < y.event.event_id));
          want.push(takeA ? a[i++]! : b[j++]!);
        }
        const got: ScoringEvent[] = [];
        for await (const c of mergeChunksByEventTime(chunked(a, sa), chunked(b, sb))) {
          expect(c.length).toBeGreaterThan(0);
          got.push(...c);
        }
        expect(got).toEqual(want);
        // Same objects, in the same order (not copies).
        got.forEach((e, k) => expect(e).toBe(want[k]));
      }),
      { numRuns: 300 },
    );
  });
});

describe('progress line', () => {
  it('shows the share done, the rate and the ETA', () => {
    expect(formatProgress(250_000, 1_000_000, 50_000, 10)).toBe(
      '[###.......] 25.0% 250,000/1,000,000 50,000 ev/s ETA 0:15',
    );
    expect(formatProgress(1200, null, 600)).toBe('1,200 events 600 ev/s');
    expect(formatProgress(1200, null, null)).toBe('1,200 events ? ev/s');
    expect(formatProgress(0, 10, null, 10)).toBe('[..........] 0.0% 0/10 ? ev/s ETA ?');
    // 59.6 s is a minute, not "0:60".
    expect(formatProgress(404, 1000, 10, 10)).toBe('[####......] 40.4% 404/1,000 10 ev/s ETA 1:00');
    expect(formatProgress(1000, 1000, 10, 10)).toBe('[##########] 100.0% 1,000/1,000 10 ev/s ETA 0:00');
  });

  it('takes its rate from the last seconds of progress, not from the start', () => {
    const lines: string[] = [];
    let now = 0;
    const p = createProgress({ isTTY: true, write: (s: string) => lines.push(s) > 0 }, () => now);
    // Three seconds of start-up before the first batch, then 50,000 events/s for 20 s, then 10,000.
    now = 3000;
    p.update(500, 2_000_000);
    expect(lines.at(-1)).toContain('500/2,000,000 ? ev/s ETA ?');
    let done = 500;
    const run = (steps: number, perStep: number) => {
      for (let i = 0; i < steps; i++) {
        p.update((done += perStep), 2_000_000);
        now += 100;
      }
    };
    run(200, 5000);
    expect(lines.at(-1)).toContain(' 50,000 ev/s ETA 0:20\x1b[K');
    run(100, 1000);
    // The window (5 s) has only the slower progress in it now.
    expect(lines.at(-1)).toContain(' 10,000 ev/s ETA 1:30\x1b[K');
    // At most one line per 200 ms, and the last one always.
    expect(lines.length).toBeLessThanOrEqual(1 + 300 / 2 + 1);
    p.update(2_000_000, 2_000_000);
    expect(lines.at(-1)).toContain('2,000,000/2,000,000');
    p.end();
    expect(lines.at(-1)).toBe('\n');
  });

  it('writes nothing when its stream is not a terminal', () => {
    const lines: string[] = [];
    const p = createProgress({ isTTY: false, write: (s: string) => lines.push(s) > 0 }, () => 0);
    p.update(1, 2);
    p.end();
    expect(lines).toEqual([]);
  });
});
