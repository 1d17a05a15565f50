import { Kafka, logLevel, type LogEntry } from 'kafkajs';
import { Redis } from 'ioredis';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { createFeatureEngine } from '../features/index.js';
import { createModelRunner, type ModelRunner } from '../models/index.js';
import { createPolicy } from '../policy/index.js';
import { createSchemas } from '../schemas/index.js';
import { createKafkaScorer, type Topics } from './consumer.js';
import { createDecisionEngine } from './engine.js';
import { createHttpServer } from './http.js';
import { createScorerMetrics } from './metrics.js';

export interface ScoringServiceConfig {
  brokers: string[];
  clientId?: string;
  groupId: string;
  topics: Topics;
  fromBeginning: boolean;
  maxBatch: number;
  redisUrl: string;
  featurePrefix: string;
  /** Default 24 h. */
  allowedLatenessMs?: number;
  modelManifest: string;
  /** Overrides the manifest's threshold. */
  threshold?: number;
  policyVersion: string;
  includeFeatures: boolean;
  http: { host: string; port: number };
}

export interface ScoringService {
  /** http://host:port of the HTTP server. */
  url: string;
  model: ModelRunner;
  /** Drain: finish the batch in hand, commit, leave the group, close everything. */
  stop(): Promise<void>;
}

/** Maps kafkajs's own log lines onto our structured logger. */
export function kafkaLogCreator(logger: Logger) {
  const log = logger.child({ component: 'kafkajs' });
  return () =>
    ({ level, log: entry }: LogEntry) => {
      const { message, ...rest } = entry;
      if (level === logLevel.ERROR) log.error(rest, message);
      else if (level === logLevel.WARN) log.warn(rest, message);
      else if (level === logLevel.INFO) log.debug(rest, message);
      else log.trace(rest, message);
    };
}

/** Builds every part from configuration and starts the Kafka scorer and the HTTP server. */
export async function startScoringService(
  cfg: ScoringServiceConfig,
  logger: Logger,
  clock: Clock = systemClock,
): Promise<ScoringService> {
  const schemas = createSchemas();
  const redis = new Redis(cfg.redisUrl, {
    lazyConnect: true,
    enableAutoPipelining: false,
    maxRetriesPerRequest: 2,
  });
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis error'));
  await redis.connect();
  const features = createFeatureEngine({
    redis,
    prefix: cfg.featurePrefix,
    ...(cfg.allowedLatenessMs !== undefined ? { allowedLatenessMs: cfg.allowedLatenessMs } : {}),
  });
  const model = await createModelRunner({
    manifestPath: cfg.modelManifest,
    featureNames: features.names,
    featureSpec: features.specHash,
  });
  const policy = createPolicy({
    version: cfg.policyVersion,
    thresholds: { default: cfg.threshold ?? model.manifest.threshold },
  });
  const engine = createDecisionEngine({
    features,
    model,
    policy,
    clock,
    includeFeatures: cfg.includeFeatures,
  });
  const metrics = createScorerMetrics();
  const kafka = new Kafka({
    clientId: cfg.clientId ?? 'fraudstream-scorer',
    brokers: cfg.brokers,
    logLevel: logLevel.INFO,
    logCreator: kafkaLogCreator(logger),
  });
  const scorer = createKafkaScorer({
    kafka,
    groupId: cfg.groupId,
    topics: cfg.topics,
    schemas,
    engine,
    applyLabels: (labels) => features.applyLabels(labels),
    metrics,
    logger,
    clock,
    maxBatch: cfg.maxBatch,
    fromBeginning: cfg.fromBeginning,
  });
  const http = createHttpServer({
    logger,
    metrics: metrics.registry,
    readiness: async () => ({ kafka: scorer.ready(), redis: redis.status === 'ready', model: true }),
  });
  const url = await http.listen({ host: cfg.http.host, port: cfg.http.port });
  logger.info(
    {
      url,
      model: model.version,
      threshold: cfg.threshold ?? model.manifest.threshold,
      spec: features.specHash,
    },
    'scoring service listening',
  );
  await scorer.start();
  let stopping: Promise<void> | undefined;
  return {
    url,
    model,
    stop() {
      stopping ??= (async () => {
        await scorer.stop();
        await http.close();
        await model.close();
        await redis.quit();
      })();
      return stopping;
    },
  };
}
