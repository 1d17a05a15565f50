import { Kafka, logLevel } from 'kafkajs';
import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { Redis } from 'ioredis';
import { systemClock, type Clock } from '../lib/clock.js';
import { isFraudstreamError } from '../lib/errors.js';
import { kafkaLogCreator, type Logger } from '../lib/logger.js';
import { createFeatureEngine } from '../features/index.js';
import { createModelRunner, type ModelRunner } from '../models/index.js';
import { createPolicy, loadPolicyFile } from '../policy/index.js';
import { createReviewApi, startReviewThread, webRoot } from '../review/index.js';
import { createApiMetrics } from './api-metrics.js';
import { createInlineScorer } from './inline.js';
import { createSchemas } from '../schemas/index.js';
import { createKafkaScorer, SCORER_PRODUCER_CONFIG, type Topics } from './consumer.js';
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
  /** Input partitions decided at the same time. Default 3 (the Kafka scorer's). */
  partitionsConcurrently?: number;
  redisUrl: string;
  featurePrefix: string;
  /** Default 24 h. */
  allowedLatenessMs?: number;
  /** Entity states the feature engine keeps in memory. Default 200,000 (the engine's). */
  maxCachedEntities?: number;
  /** Least time between two checkpoints of the Kafka scorer (feature flush, then offset commit), ms. */
  checkpointMs?: number;
  modelManifest: string;
  /** Manifest of a shadow model scored on every event, recorded, never acted on. */
  challengerManifest?: string;
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

export { kafkaLogCreator };

export interface ScoringService {
  /** http://host:port of the HTTP server. */
  url: string;
  model: ModelRunner;
  challenger?: ModelRunner;
  /**
   * Hot swap: load the manifest at `manifestPath` (default: the serving one, re-read), check it like a
   * first load and serve it from the next batch on. On failure the old model keeps serving, the error
   * is logged with its code and thrown. SIGHUP and POST /v1/admin/model/reload call this.
   */
  reloadModel(manifestPath?: string): Promise<{ model_version: string }>;
  /** Drain: finish the batch in hand, commit, leave the group, close everything. */
  stop(): Promise<void>;
}

/** Shadow metrics: the challenger's scores, and where its own threshold would have decided otherwise. */
function challengerMetrics(registry: Registry) {
  const registers = [registry];
  return {
    score: new Histogram({
      name: 'fraudstream_challenger_score',
      help: "Challenger (shadow) model's scores, by the challenger's model_version",
      labelNames: ['model_version'] as const,
      buckets: [0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99],
      registers,
    }),
    disagreements: new Counter({
      name: 'fraudstream_challenger_disagreements_total',
      help: 'Events where the challenger at its own manifest threshold would have decided otherwise than the served outcome',
      labelNames: ['model_version'] as const,
      registers,
    }),
    errors: new Counter({
      name: 'fraudstream_challenger_errors_total',
      help: 'Batches the challenger failed to score (decisions carry a null challenger_score)',
      registers,
    }),
  };
}

/** Builds every part from configuration and starts the Kafka scorer and the HTTP server. */
export async function startScoringService(
  cfg: ScoringServiceConfig,
  logger: Logger,
  clock: Clock = systemClock,
): Promise<ScoringService> {
  // What the start has opened, closed in reverse when a later step fails: a service whose start
  // failed must let its process exit, not keep a port, connections and a consumer group open.
  const opened: (() => Promise<unknown>)[] = [];
  try {
    return await openScoringService(cfg, logger, clock, opened);
  } catch (e) {
    for (const close of opened.reverse()) await close().catch(() => undefined);
    throw e;
  }
}

async function openScoringService(
  cfg: ScoringServiceConfig,
  logger: Logger,
  clock: Clock,
  opened: (() => Promise<unknown>)[],
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
  opened.push(() => redis.quit());
  // Kafka batches write their feature changes at checkpoints, just before their offsets are committed;
  // an inline answer writes its own (and whatever is pending) before it is given (docs/features.md).
  const features = createFeatureEngine({
    redis,
    prefix: cfg.featurePrefix,
    writeMode: 'checkpoint',
    ...(cfg.allowedLatenessMs !== undefined ? { allowedLatenessMs: cfg.allowedLatenessMs } : {}),
    ...(cfg.maxCachedEntities !== undefined ? { maxCachedEntities: cfg.maxCachedEntities } : {}),
  });
  opened.push(() => features.close());
  const model = await createModelRunner({
    manifestPath: cfg.modelManifest,
    featureNames: features.names,
    featureSpec: features.specHash,
  });
  opened.push(() => model.close());
  const challenger = cfg.challengerManifest
    ? await createModelRunner({
        manifestPath: cfg.challengerManifest,
        featureNames: features.names,
        featureSpec: features.specHash,
      })
    : undefined;
  if (challenger) opened.push(() => challenger.close());
  const policy = createPolicy(
    policyOptions ?? {
      version: cfg.policyVersion,
      thresholds: { default: cfg.threshold ?? model.manifest.threshold },
      // No explicit threshold: the scoring model's own, which follows a hot swap.
      thresholdFromModel: cfg.threshold === undefined,
    },
  );
  const metrics = createScorerMetrics();
  const apiMetrics = createApiMetrics(metrics.registry);
  const shadow = challenger ? challengerMetrics(metrics.registry) : undefined;
  const engine = createDecisionEngine({
    features,
    model,
    policy,
    clock,
    includeFeatures: cfg.includeFeatures,
    budgetMs: policy.degraded.budgetMs,
    onDegraded: (by, n) => apiMetrics.degraded.inc({ by }, n),
    ...(challenger && shadow
      ? {
          challenger,
          onChallenger: (scored, decisions) => {
            const t = scored.manifest.threshold;
            for (const d of decisions) {
              const c = d.challenger_score!;
              shadow.score.observe({ model_version: scored.version }, c);
              if (c >= t !== (d.outcome === 'FLAG'))
                shadow.disagreements.inc({ model_version: scored.version });
            }
          },
          onChallengerError: (err: unknown) => {
            shadow.errors.inc();
            logger.warn({ err, code: isFraudstreamError(err) ? err.code : undefined }, 'challenger failed');
          },
        }
      : {}),
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
    ...(cfg.partitionsConcurrently !== undefined
      ? { partitionsConcurrently: cfg.partitionsConcurrently }
      : {}),
    fromBeginning: cfg.fromBeginning,
    flushFeatures: () => features.flush(),
    ...(cfg.checkpointMs !== undefined ? { checkpointMs: cfg.checkpointMs } : {}),
  });
  let reloads: Promise<unknown> = Promise.resolve();
  const reloadModel = (manifestPath?: string) => {
    const next = reloads.then(async () => {
      const from = model.version;
      try {
        const res = await model.swap(manifestPath);
        logger.info({ from, to: res.model_version, manifest: model.manifestPath }, 'model swapped');
        return res;
      } catch (err) {
        logger.error(
          { err, code: isFraudstreamError(err) ? err.code : undefined, serving: model.version },
          'model swap failed; the old model keeps serving',
        );
        throw err;
      }
    });
    reloads = next.catch(() => undefined);
    return next;
  };
  // One producer for inline decisions and analyst labels (the Kafka scorer has its own).
  const producer = kafka.producer({ ...SCORER_PRODUCER_CONFIG });
  await producer.connect();
  opened.push(() => producer.disconnect());
  const inline = createInlineScorer({
    engine,
    schemas,
    producer,
    decisionsTopic: cfg.topics.decisions,
    clock,
    onDecision: (d, dup, phases) => {
      apiMetrics.inlinePhase.observe({ phase: 'decide' }, phases.decideMs / 1000);
      apiMetrics.inlinePhase.observe({ phase: 'publish' }, phases.publishMs / 1000);
      metrics.events.inc({ type: d.event_type, outcome: d.outcome });
      metrics.latency.observe({ type: d.event_type }, d.latency_us / 1e6);
      if (dup) metrics.duplicates.inc({ type: d.event_type });
    },
  });
  // The review queue reads every decision and input event back: on its own thread (review/thread.ts).
  const reviewThread =
    cfg.review === false
      ? undefined
      : startReviewThread(
          {
            clientId: `${cfg.clientId ?? 'fraudstream-scorer'}-review`,
            brokers: cfg.brokers,
            groupPrefix: `${cfg.groupId}-review`,
            topics: cfg.topics,
            leaseMs: cfg.leaseMs ?? 300_000,
            log: { level: logger.level, name: String(logger.bindings().name ?? 'fraudstream') },
          },
          logger,
        );
  if (reviewThread) opened.push(() => reviewThread.stop());
  const store = reviewThread?.store;
  const http = createHttpServer({
    logger,
    metrics: metrics.registry,
    apiMetrics,
    // Readiness is about scoring: a review consumer still catching up does not take traffic away.
    readiness: async () => ({ kafka: scorer.ready(), redis: redis.status === 'ready', model: true }),
    reloadModel,
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
  opened.push(() => http.close());
  logger.info(
    {
      url,
      model: model.version,
      challenger: challenger?.version,
      policy: policy.version,
      degraded: policy.degraded,
      spec: features.specHash,
    },
    'scoring service listening',
  );
  opened.push(() => scorer.stop());
  await scorer.start();
  await reviewThread?.start();
  let stopping: Promise<void> | undefined;
  return {
    url,
    model,
    ...(challenger ? { challenger } : {}),
    reloadModel,
    stop() {
      stopping ??= (async () => {
        await scorer.stop();
        await http.close();
        await reloads;
        await reviewThread?.stop();
        await producer.disconnect();
        await model.close();
        await challenger?.close();
        await features.close();
        await redis.quit();
      })();
      return stopping;
    },
  };
}
