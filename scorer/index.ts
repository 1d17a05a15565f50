export {
  createDecisionEngine,
  type DecisionEngine,
  type DecisionEngineOptions,
  type DecidedBatch,
} from './engine.js';
export {
  createKafkaScorer,
  DeadLetterHeaders,
  type KafkaScorer,
  type KafkaScorerOptions,
  type Topics,
} from './consumer.js';
export { createScorerMetrics, type ScorerMetrics } from './metrics.js';
export { createHttpServer, type HttpServerOptions } from './http.js';
export { ensureTopics } from './topics.js';
export {
  startScoringService,
  kafkaLogCreator,
  type ScoringServiceConfig,
  type ScoringService,
} from './service.js';
