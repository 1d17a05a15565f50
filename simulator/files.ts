import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createContainerWriter, RecordNames, type Label, type SchemaCatalog } from '../schemas/index.js';
import { createSimulation, type SimulationOptions } from './generate.js';
import { scenarioTagType, type ScenarioTag } from './scenarios.js';

export const STREAM_FILES = {
  payments: 'payments.avro',
  withdrawals: 'withdrawals.avro',
  labels: 'labels.avro',
  /** Ground truth for reports only (see scenarios.ts). */
  scenarios: 'scenarios.avro',
} as const;

export interface SimulationSummary {
  payments: number;
  withdrawals: number;
  fraudEvents: number;
  labels: number;
  byScenario: Record<string, number>;
}

/** Same seed -> same sync marker -> byte-identical files. */
const syncMarker = (seed: number, stream: string) =>
  createHash('sha256').update(`fraudstream:${seed}:${stream}`).digest().subarray(0, 16);

/** Writes the history as Avro container files (three streams and the scenario ground truth), streaming: memory holds about one day of events. */
export async function writeSimulationFiles(
  catalog: SchemaCatalog,
  opts: SimulationOptions,
  dir: string,
): Promise<SimulationSummary> {
  mkdirSync(dir, { recursive: true });
  const sim = createSimulation(opts);
  const pay = createContainerWriter(
    join(dir, STREAM_FILES.payments),
    catalog.reader(RecordNames.PaymentEvent),
    {
      syncMarker: syncMarker(opts.seed, 'payments'),
    },
  );
  const wd = createContainerWriter(
    join(dir, STREAM_FILES.withdrawals),
    catalog.reader(RecordNames.WithdrawalEvent),
    {
      syncMarker: syncMarker(opts.seed, 'withdrawals'),
    },
  );
  const tags = createContainerWriter<ScenarioTag>(join(dir, STREAM_FILES.scenarios), scenarioTagType(), {
    syncMarker: syncMarker(opts.seed, 'scenarios'),
  });
  const summary: SimulationSummary = {
    payments: 0,
    withdrawals: 0,
    fraudEvents: 0,
    labels: 0,
    byScenario: {},
  };
  for (const e of sim.events()) {
    if (e.type === 'PAYMENT') {
      summary.payments++;
      await pay.append(e.event);
    } else {
      summary.withdrawals++;
      await wd.append(e.event);
    }
    if (e.scenario) {
      summary.fraudEvents++;
      await tags.append({ event_id: e.event.event_id, scenario: e.scenario });
      summary.byScenario[e.scenario] = (summary.byScenario[e.scenario] ?? 0) + 1;
    }
  }
  await Promise.all([pay.close(), wd.close(), tags.close()]);
  const lab = createContainerWriter<Label>(
    join(dir, STREAM_FILES.labels),
    catalog.reader(RecordNames.Label),
    {
      syncMarker: syncMarker(opts.seed, 'labels'),
    },
  );
  for (const l of sim.labels()) {
    summary.labels++;
    await lab.append(l);
  }
  await lab.close();
  return summary;
}
