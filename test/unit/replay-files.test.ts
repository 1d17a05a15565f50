import { copyFileSync, mkdtempSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatProgress } from '../../cli/progress.js';
import { isFraudstreamError } from '../../lib/errors.js';
import { countContainerRecords } from '../../replay/index.js';
import { createSchemaCatalog, readContainer } from '../../schemas/index.js';
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
});

describe('progress line', () => {
  it('shows the share done, the rate and the ETA', () => {
    expect(formatProgress(250_000, 1_000_000, 5, 10)).toBe(
      '[###.......] 25.0% 250,000/1,000,000 50,000 ev/s ETA 0:15',
    );
    expect(formatProgress(1200, null, 2)).toBe('1,200 events 600 ev/s');
  });
});
