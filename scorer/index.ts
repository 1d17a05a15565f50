export {
  createDecisionEngine,
  type DecisionEngine,
  type DecisionEngineOptions,
  type DecidedBatch,
} from './engine.js';
export {
  createKafkaScorer,
  DeadLetterHeaders,
  SCORER_CONSUMER_CONFIG,
  SCORER_PRODUCER_CONFIG,
  type KafkaScorer,
  type KafkaScorerOptions,
  type Topics,
} from './consumer.js';
export { createScorerMetrics, type ScorerMetrics } from './metrics.js';
export {
  createHttpServer,
  type HttpServerOptions,
  type ApiKey,
  type ApiRole,
  type ReviewRoutes,
} from './http.js';
export { createInlineScorer, avroProblems, type InlineScorer, type FieldProblem } from './inline.js';
export { createApiMetrics, type ApiMetrics } from './api-metrics.js';
export { ensureTopics } from './topics.js';
export {
  startScoringService,
  kafkaLogCreator,
  type ScoringServiceConfig,
  type ScoringService,
} from './service.js';
