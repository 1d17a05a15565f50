import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSchemaCatalog, readContainer, RecordNames, type Label } from '../../schemas/index.js';
import {
  createSimulation,
  scenarioTagType,
  SCENARIOS,
  STREAM_FILES,
  writeSimulationFiles,
  type ScenarioTag,
} from '../../simulator/index.js';

const opts = { seed: 11, accounts: 300, days: 5, start: Date.UTC(2026, 0, 1), fraudRate: 0.02 };
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe('simulator', () => {
  it('writes byte-identical files for the same seed, and different ones for another seed', async () => {
    const catalog = createSchemaCatalog();
    const [a, b, c] = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'fs-sim-')));
    await writeSimulationFiles(catalog, opts, a!);
    await writeSimulationFiles(catalog, opts, b!);
    await writeSimulationFiles(catalog, { ...opts, seed: 12 }, c!);
    for (const f of Object.values(STREAM_FILES)) {
      expect(sha(join(a!, f))).toBe(sha(join(b!, f)));
      expect(sha(join(a!, f))).not.toBe(sha(join(c!, f)));
    }
  });

  it('yields events in event-time order with every fraud scenario, and labels that come later', () => {
    const sim = createSimulation({ ...opts, accounts: 1500, days: 20, fraudRate: 0.005 });
    let last = -Infinity;
    const scenarios = new Set<string>();
    const times = new Map<string, number>();
    let n = 0;
    for (const e of sim.events()) {
      expect(e.event.event_time).toBeGreaterThanOrEqual(last);
      last = e.event.event_time;
      if (e.scenario) scenarios.add(e.scenario);
      times.set(e.event.event_id, e.event.event_time);
      n++;
    }
    expect(n).toBeGreaterThan(1000);
    expect([...scenarios].sort()).toEqual([...SCENARIOS].sort());
    const labels = sim.labels();
    expect(labels.length).toBeGreaterThan(0);
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i]!;
      expect(l.labelled_at).toBeGreaterThan(times.get(l.event_id)!);
      if (i) expect(l.labelled_at).toBeGreaterThanOrEqual(labels[i - 1]!.labelled_at);
    }
  });

  it('writes container files that read back as the records it generated', async () => {
    const catalog = createSchemaCatalog();
    const d = mkdtempSync(join(tmpdir(), 'fs-sim-'));
    const summary = await writeSimulationFiles(catalog, opts, d);
    let labels = 0;
    for await (const l of readContainer<Label>(
      join(d, STREAM_FILES.labels),
      catalog.reader(RecordNames.Label),
    )) {
      expect(l.label).toBe('FRAUD');
      labels++;
    }
    expect(labels).toBe(summary.labels);
    let pays = 0;
    for await (const _ of readContainer(
      join(d, STREAM_FILES.payments),
      catalog.reader(RecordNames.PaymentEvent),
    ))
      pays++;
    expect(pays).toBe(summary.payments);
  });

  it('writes the scenario of every fraud event to scenarios.avro, and none into labels', async () => {
    const catalog = createSchemaCatalog();
    const d = mkdtempSync(join(tmpdir(), 'fs-sim-'));
    const summary = await writeSimulationFiles(catalog, opts, d);
    const expected = new Map<string, string>();
    for (const e of createSimulation(opts).events())
      if (e.scenario) expected.set(e.event.event_id, e.scenario);
    const got = new Map<string, string>();
    for await (const t of readContainer<ScenarioTag>(join(d, STREAM_FILES.scenarios), scenarioTagType()))
      got.set(t.event_id, t.scenario);
    expect(got).toEqual(expected);
    expect(got.size).toBe(summary.fraudEvents);
    let labelled = 0;
    for await (const l of readContainer<Label>(
      join(d, STREAM_FILES.labels),
      catalog.reader(RecordNames.Label),
    )) {
      expect(l.note).toBeNull();
      expect(got.has(l.event_id)).toBe(true);
      labelled++;
    }
    // Some fraud is never labelled.
    expect(labelled).toBeLessThan(got.size);
  });
});
