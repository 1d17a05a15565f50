import { Kafka, Partitioners, logLevel, type LogEntry } from 'kafkajs';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { createFeatureEngine } from '../features/index.js';
import { createModelRunner, type ModelRunner } from '../models/index.js';
import { createPolicy, loadPolicyFile } from '../policy/index.js';
import { createCaseStore, createReviewApi, createReviewConsumer, webRoot } from '../review/index.js';
import { createApiMetrics } from './api-metrics.js';
import { createInlineScorer } from './inline.js';
import { createSchemas } from '../schemas/index.js';
import { createKafkaScorer, type Topics } from './consumer.js';
import { createDecisionEngine } from './engine.js';
import { createHttpServer, type ApiKey } from './http.js';
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
  /** Policy file (docs/policy.md): thresholds, lists, amount limits, degraded mode, its version. */
  policyFile?: string;
  /** Analyst and admin API keys. */
  apiKeys?: ApiKey[];
  /** Build the review queue from the decisions topic and serve it. Default true. */
  review?: boolean;
  /** Lease of a claimed case. Default 5 min. */
  leaseMs?: number;
  /** Largest HTTP request body in bytes. Default 64 KiB. */
  bodyLimit?: number;
  /** Extra HTTP routes added before listening (benchmarks). */
  extraRoutes?: (app: FastifyInstance) => void;
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
  // A policy file replaces --policy-version and --threshold (its own version and thresholds win). It
  // is read before anything connects, so a bad file stops start-up at once and leaves nothing open.
  const policyOptions = cfg.policyFile ? loadPolicyFile(cfg.policyFile) : undefined;
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
  const policy = createPolicy(
    policyOptions ?? {
      version: cfg.policyVersion,
      thresholds: { default: cfg.threshold ?? model.manifest.threshold },
    },
  );
  const metrics = createScorerMetrics();
  const apiMetrics = createApiMetrics(metrics.registry);
  const engine = createDecisionEngine({
    features,
    model,
    policy,
    clock,
    includeFeatures: cfg.includeFeatures,
    budgetMs: policy.degraded.budgetMs,
    onDegraded: (by, n) => apiMetrics.degraded.inc({ by }, n),
  });
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
  // One producer for inline decisions and analyst labels (the Kafka scorer has its own).
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const inline = createInlineScorer({
    engine,
    schemas,
    producer,
    decisionsTopic: cfg.topics.decisions,
    clock,
    onDecision: (d, dup) => {
      metrics.events.inc({ type: d.event_type, outcome: d.outcome });
      metrics.latency.observe({ type: d.event_type }, d.latency_us / 1e6);
      if (dup) metrics.duplicates.inc({ type: d.event_type });
    },
  });
  const store = cfg.review === false ? undefined : createCaseStore({ leaseMs: cfg.leaseMs ?? 300_000 });
  const reviewConsumer = store
    ? createReviewConsumer({
        kafka,
        groupPrefix: `${cfg.groupId}-review`,
        topics: cfg.topics,
        schemas,
        store,
        logger,
      })
    : undefined;
  const http = createHttpServer({
    logger,
    metrics: metrics.registry,
    apiMetrics,
    // Readiness is about scoring: a review consumer still catching up does not take traffic away.
    readiness: async () => ({ kafka: scorer.ready(), redis: redis.status === 'ready', model: true }),
    apiKeys: cfg.apiKeys ?? [],
    score: (body) => inline.score(body),
    ...(store
      ? {
          review: createReviewApi({ store, producer, labelsTopic: cfg.topics.labels, schemas, clock }),
          webRoot: webRoot(),
        }
      : {}),
    ...(cfg.bodyLimit !== undefined ? { bodyLimit: cfg.bodyLimit } : {}),
    ...(cfg.extraRoutes ? { extraRoutes: cfg.extraRoutes } : {}),
  });
  const url = await http.listen({ host: cfg.http.host, port: cfg.http.port });
  logger.info(
    {
      url,
      model: model.version,
      policy: policy.version,
      degraded: policy.degraded,
      spec: features.specHash,
    },
    'scoring service listening',
  );
  await scorer.start();
  await reviewConsumer?.start();
  let stopping: Promise<void> | undefined;
  return {
    url,
    model,
    stop() {
      stopping ??= (async () => {
        await scorer.stop();
        await http.close();
        await reviewConsumer?.stop();
        await producer.disconnect();
        await model.close();
        await redis.quit();
      })();
      return stopping;
    },
  };
}
