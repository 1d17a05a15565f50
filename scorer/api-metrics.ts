import { Counter, Histogram, type Registry } from 'prom-client';

/** Metrics of the HTTP API and of degraded decisions, registered on the scorer's registry. */
export interface ApiMetrics {
  unauthorized: Counter<'route'>;
  degraded: Counter<'by'>;
  inline: Histogram<'outcome'>;
  inlinePhase: Histogram<'phase'>;
}

/** Inline answers' buckets (seconds): fine around the 5 ms target, coarse in the tail. */
const INLINE_BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1];

export function createApiMetrics(registry: Registry): ApiMetrics {
  const registers = [registry];
  return {
    unauthorized: new Counter({
      name: 'fraudstream_http_unauthorized_total',
      help: 'Requests refused for a missing or unknown API key (nothing else about them is recorded)',
      labelNames: ['route'],
      registers,
    }),
    degraded: new Counter({
      name: 'fraudstream_degraded_decisions_total',
      help: 'Decisions taken in degraded mode, by what missed the latency budget (FEATURES, MODEL)',
      labelNames: ['by'],
      registers,
    }),
    inline: new Histogram({
      name: 'fraudstream_inline_seconds',
      help: 'POST /v1/score: from the body being parsed to the decision being published',
      labelNames: ['outcome'],
      buckets: INLINE_BUCKETS,
      registers,
    }),
    inlinePhase: new Histogram({
      name: 'fraudstream_inline_phase_seconds',
      help:
        'POST /v1/score, by phase: decide (waiting for a batch turn, features in Redis, model, policy) ' +
        'and publish (the decision acknowledged by Kafka)',
      labelNames: ['phase'],
      buckets: INLINE_BUCKETS,
      registers,
    }),
  };
}
