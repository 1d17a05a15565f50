import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ScorerMetrics {
  registry: Registry;
  events: Counter<'type' | 'outcome'>;
  latency: Histogram<'type'>;
  deadLetters: Counter<'reason' | 'topic'>;
  duplicates: Counter<'type'>;
  late: Counter<'type'>;
  labels: Counter<'label' | 'applied'>;
  batchSize: Histogram<string>;
  batchRetries: Counter<string>;
  checkpointFailures: Counter<string>;
}

/** Prometheus metrics of one scorer process, on a registry of its own (no global state). */
export function createScorerMetrics(opts: { defaultMetrics?: boolean } = {}): ScorerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'fraudstream_' });
  const registers = [registry];
  return {
    registry,
    events: new Counter({
      name: 'fraudstream_events_total',
      help: 'Events decided, by event type and outcome',
      labelNames: ['type', 'outcome'],
      registers,
    }),
    latency: new Histogram({
      name: 'fraudstream_decision_latency_seconds',
      help: 'From the event being read to its decision being ready',
      labelNames: ['type'],
      buckets: [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    deadLetters: new Counter({
      name: 'fraudstream_dead_letter_total',
      help: 'Input records sent to the dead-letter topic, by error code and source topic',
      labelNames: ['reason', 'topic'],
      registers,
    }),
    duplicates: new Counter({
      name: 'fraudstream_duplicate_events_total',
      help: 'Events whose event_id had been seen before (aggregates unchanged, first decision repeated)',
      labelNames: ['type'],
      registers,
    }),
    late: new Counter({
      name: 'fraudstream_late_events_total',
      help: 'Events later than the allowed lateness: scored, not added to the windows',
      labelNames: ['type'],
      registers,
    }),
    labels: new Counter({
      name: 'fraudstream_labels_total',
      help: 'Labels consumed, by label and whether they changed a risk feature (a FRAUD label seen for the first time)',
      labelNames: ['label', 'applied'],
      registers,
    }),
    batchSize: new Histogram({
      name: 'fraudstream_batch_size',
      help: 'Records per processed batch',
      buckets: [1, 4, 16, 64, 128, 256, 512, 1024],
      registers,
    }),
    batchRetries: new Counter({
      name: 'fraudstream_batch_failures_total',
      help: 'Batches that failed with a retriable error and will be read again',
      registers,
    }),
    checkpointFailures: new Counter({
      name: 'fraudstream_checkpoint_failures_total',
      help: 'Checkpoints (feature flush, then offset commit) that failed; the next one retries',
      registers,
    }),
  };
}
