import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../lib/logger.js';

export interface HttpServerOptions {
  logger: Logger;
  metrics: Registry;
  /** Each named dependency and whether it is ready now. */
  readiness: () => Promise<Record<string, boolean>>;
}

/** /healthz (the process answers), /readyz (Kafka, Redis and the model are), /metrics (Prometheus). */
export function createHttpServer(opts: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'http' }) as FastifyBaseLogger,
    disableRequestLogging: true,
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const checks = await opts.readiness();
    const ready = Object.values(checks).every(Boolean);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });
  app.get('/metrics', async (_req, reply) => {
    const body = await opts.metrics.metrics();
    return reply.header('content-type', opts.metrics.contentType).send(body);
  });
  return app;
}
