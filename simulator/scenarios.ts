import avro from 'avsc';
import type { AvroType } from '../schemas/index.js';

/**
 * Ground truth for reports: which fraud scenario produced an event. It lives in its own container file
 * (scenarios.avro) beside the streams, one record per fraud event (labelled or not), in event-time
 * order, and never in the events or labels the feature engine reads.
 */
export interface ScenarioTag {
  event_id: string;
  scenario: string;
}

export const SCENARIO_TAG_SCHEMA = {
  type: 'record',
  name: 'ScenarioTag',
  namespace: 'fraudstream.v1',
  doc: 'Simulator ground truth: the fraud scenario of one event. Never an input of the scorer.',
  fields: [
    { name: 'event_id', type: 'string' },
    { name: 'scenario', type: 'string' },
  ],
} as const;

export const scenarioTagType = (): AvroType =>
  avro.Type.forSchema(SCENARIO_TAG_SCHEMA as unknown as avro.Schema, { registry: {} });
