import { Kafka, logLevel, type LogEntry } from 'kafkajs';
import { Counter, Histogram, type Registry } from 'prom-client';
import { Redis } from 'ioredis';
import { systemClock, type Clock } from '../lib/clock.js';
import { isFraudstreamError } from '../lib/errors.js';
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
  /** Manifest of a shadow model scored on every event, recorded, never acted on. */
  challengerManifest?: string;
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
  const challenger = cfg.challengerManifest
    ? await createModelRunner({
        manifestPath: cfg.challengerManifest,
        featureNames: features.names,
        featureSpec: features.specHash,
      })
    : undefined;
  const policy = createPolicy({
    version: cfg.policyVersion,
    thresholds: { default: cfg.threshold ?? model.manifest.threshold },
  });
  const metrics = createScorerMetrics();
  const shadow = challenger ? challengerMetrics(metrics.registry) : undefined;
  const engine = createDecisionEngine({
    features,
    model,
    policy,
    clock,
    includeFeatures: cfg.includeFeatures,
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
    fromBeginning: cfg.fromBeginning,
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
  // A variable, not a literal: the HTTP server registers POST /v1/admin/model/reload when given reloadModel.
  const httpOptions = {
    logger,
    metrics: metrics.registry,
    readiness: async () => ({ kafka: scorer.ready(), redis: redis.status === 'ready', model: true }),
    reloadModel,
  };
  const http = createHttpServer(httpOptions);
  const url = await http.listen({ host: cfg.http.host, port: cfg.http.port });
  logger.info(
    {
      url,
      model: model.version,
      challenger: challenger?.version,
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
    ...(challenger ? { challenger } : {}),
    reloadModel,
    stop() {
      stopping ??= (async () => {
        await scorer.stop();
        await http.close();
        await reloads;
        await model.close();
        await challenger?.close();
        await redis.quit();
      })();
      return stopping;
    },
  };
}
