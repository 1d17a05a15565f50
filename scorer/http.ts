import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Registry } from 'prom-client';
import { Errors, FraudstreamError, fail, isFraudstreamError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { Decision } from '../schemas/index.js';
import { createApiMetrics, type ApiMetrics } from './api-metrics.js';

/** The roles an API key can carry: admin may do everything an analyst may. */
export type ApiRole = 'analyst' | 'admin';
export interface ApiKey {
  role: ApiRole;
  /** Who the key belongs to: the `analyst` written on labels and audit entries. */
  name: string;
  key: string;
}

/** The review routes' backend (review/ implements it). */
export interface ReviewRoutes {
  list(q: Record<string, unknown>): unknown;
  get(id: string): unknown;
  claim(id: string, analyst: string): unknown;
  resolve(id: string, analyst: string, label: 'FRAUD' | 'LEGIT', note: string | null): Promise<unknown>;
}

export interface HttpServerOptions {
  logger: Logger;
  metrics: Registry;
  /** HTTP metrics on that registry; created when absent. */
  apiMetrics?: ApiMetrics;
  /** Each named dependency and whether it is ready now. */
  readiness: () => Promise<Record<string, boolean>>;
  /** Analyst and admin keys. None: every analyst/admin route answers 401. */
  apiKeys?: readonly ApiKey[];
  /** POST /v1/score (inline scoring); absent: 501. */
  score?: (body: unknown) => Promise<Decision>;
  /** /v1/cases routes; absent: 501. */
  review?: ReviewRoutes;
  /** POST /v1/admin/model/reload; absent: 501. */
  reloadModel?: (manifestPath?: string) => Promise<{ model_version: string }>;
  /** Folder of the analyst page (index.html, app.js, style.css); absent: no page. */
  webRoot?: string;
  /** Largest request body in bytes. Default 64 KiB. */
  bodyLimit?: number;
  /** Adds routes before the server listens (benchmarks). */
  extraRoutes?: (app: FastifyInstance) => void;
}

interface ErrorBody {
  error: { code: string; message: string; problems?: unknown };
}

const errorBody = (code: string, message: string, problems?: unknown): ErrorBody => ({
  error: problems === undefined ? { code, message } : { code, message, problems },
});

const sha = (s: string) => createHash('sha256').update(s).digest();

/**
 * /healthz, /readyz, /metrics; POST /v1/score; the review API (/v1/cases...); the admin API; the analyst
 * page under /review/. docs/http-api.md documents every route and error code.
 */
export function createHttpServer(opts: HttpServerOptions): FastifyInstance {
  const log = opts.logger.child({ component: 'http' });
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 64 * 1024,
  });
  const apiMetrics = opts.apiMetrics ?? createApiMetrics(opts.metrics);
  // Keys are compared by their SHA-256, in constant time; the keys themselves are never logged.
  const keys = (opts.apiKeys ?? []).map((k) => ({ role: k.role, name: k.name, hash: sha(k.key) }));

  const principal = (req: FastifyRequest, need: ApiRole): { name: string; role: ApiRole } => {
    const auth = req.headers.authorization;
    const raw =
      typeof auth === 'string' && /^Bearer /i.test(auth) ? auth.slice(7).trim() : req.headers['x-api-key'];
    const given = typeof raw === 'string' && raw.length > 0 ? sha(raw) : undefined;
    const hit = given && keys.find((k) => timingSafeEqual(k.hash, given));
    if (!hit) {
      apiMetrics.unauthorized.inc({ route: req.routeOptions.url ?? 'unknown' });
      fail('UNAUTHORIZED');
    }
    if (need === 'admin' && hit.role !== 'admin') fail('FORBIDDEN', `${need} only`);
    return hit;
  };

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    if (isFraudstreamError(err)) {
      if (err.httpStatus >= 500) log.error({ err, url: req.url }, 'request failed');
      return reply
        .code(err.httpStatus)
        .send(errorBody(err.code, err.message, err.detail?.problems as unknown));
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return reply.code(413).send(errorBody(Errors.BODY_TOO_LARGE.code, err.message));
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.code(415).send(errorBody(Errors.UNSUPPORTED_MEDIA_TYPE.code, err.message));
    if (
      err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
      err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
      (err.statusCode === 400 && err instanceof SyntaxError)
    )
      return reply.code(400).send(errorBody(Errors.MALFORMED_JSON.code, err.message));
    if (err.statusCode && err.statusCode < 500)
      return reply.code(err.statusCode).send(errorBody(Errors.BAD_REQUEST.code, err.message));
    log.error({ err, url: req.url }, 'request failed');
    return reply.code(500).send(errorBody('FS_ERR_UNEXPECTED', 'Internal error'));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(errorBody(Errors.NOT_FOUND.code, `${req.method} ${req.url.split('?')[0]}`)),
  );

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

  const notOffered = (what: string): never => {
    throw new FraudstreamError(Errors.NOT_IMPLEMENTED, what);
  };

  app.post('/v1/score', async (req) => {
    if (!opts.score) return notOffered('inline scoring is not configured');
    const t0 = performance.now();
    const d = await opts.score(req.body);
    apiMetrics.inline.observe({ outcome: d.outcome }, (performance.now() - t0) / 1000);
    return d;
  });

  const review = () => opts.review ?? notOffered('the review queue is off (--review false)');
  const body = (req: FastifyRequest): Record<string, unknown> => {
    const b = req.body;
    if (b === undefined || b === null) return {};
    if (typeof b !== 'object' || Array.isArray(b))
      fail('BAD_REQUEST', 'the body must be a JSON object', {
        problems: [{ field: '(body)', problem: 'not an object' }],
      });
    return b as Record<string, unknown>;
  };

  const STATUSES = ['OPEN', 'CLAIMED', 'RESOLVED', 'ALL'];
  app.get('/v1/cases', async (req) => {
    principal(req, 'analyst');
    const q = req.query as Record<string, string | undefined>;
    const problems: { field: string; problem: string }[] = [];
    const int = (k: string, dflt: number, max: number) => {
      const v = q[k];
      if (v === undefined) return dflt;
      const n = Number(v);
      if (!/^\d+$/.test(v) || n > max)
        problems.push({ field: k, problem: `must be a whole number 0..${max}` });
      return n;
    };
    const oneOf = (k: string, allowed: string[]) => {
      const v = q[k];
      if (v !== undefined && !allowed.includes(v))
        problems.push({ field: k, problem: `must be one of ${allowed.join(', ')}` });
      return v;
    };
    const query = {
      status: oneOf('status', STATUSES),
      sort: oneOf('sort', ['score', 'age']),
      order: oneOf('order', ['asc', 'desc']),
      event_type: oneOf('event_type', ['PAYMENT', 'WITHDRAWAL']),
      account_id: q.account_id,
      limit: int('limit', 50, 500),
      offset: int('offset', 0, 1_000_000_000),
    };
    if (problems.length) fail('BAD_REQUEST', 'invalid query', { problems });
    const r = review();
    return r.list(Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)));
  });
  app.get<{ Params: { id: string } }>('/v1/cases/:id', async (req) => {
    principal(req, 'analyst');
    return review().get(req.params.id);
  });
  app.post<{ Params: { id: string } }>('/v1/cases/:id/claim', async (req) => {
    const who = principal(req, 'analyst');
    body(req);
    return review().claim(req.params.id, who.name);
  });
  app.post<{ Params: { id: string } }>('/v1/cases/:id/resolve', async (req) => {
    const who = principal(req, 'analyst');
    const b = body(req);
    const problems: { field: string; problem: string }[] = [];
    if (b.label !== 'FRAUD' && b.label !== 'LEGIT')
      problems.push({ field: 'label', problem: 'must be FRAUD or LEGIT' });
    if (b.note !== undefined && b.note !== null && (typeof b.note !== 'string' || b.note.length > 2000))
      problems.push({ field: 'note', problem: 'must be a string of at most 2000 characters' });
    for (const k of Object.keys(b))
      if (k !== 'label' && k !== 'note') problems.push({ field: k, problem: 'unknown field' });
    if (problems.length) fail('BAD_REQUEST', 'invalid resolution', { problems });
    const note = typeof b.note === 'string' && b.note.trim() ? b.note.trim() : null;
    return review().resolve(req.params.id, who.name, b.label as 'FRAUD' | 'LEGIT', note);
  });

  app.post('/v1/admin/model/reload', async (req) => {
    principal(req, 'admin');
    const b = body(req);
    if (b.manifest !== undefined && (typeof b.manifest !== 'string' || !b.manifest))
      fail('BAD_REQUEST', 'manifest must be a non-empty path', {
        problems: [{ field: 'manifest', problem: 'must be a non-empty string' }],
      });
    if (!opts.reloadModel) return notOffered('model reload is not available in this process');
    const r = await opts.reloadModel(b.manifest as string | undefined);
    log.info({ model: r.model_version }, 'model reloaded through the admin API');
    return { model_version: r.model_version };
  });

  if (opts.webRoot) {
    const files: Record<string, { type: string; body: Buffer }> = {};
    for (const [name, type] of [
      ['index.html', 'text/html; charset=utf-8'],
      ['app.js', 'text/javascript; charset=utf-8'],
      ['style.css', 'text/css; charset=utf-8'],
    ] as const)
      files[name] = { type, body: readFileSync(join(opts.webRoot, name)) };
    const send = (reply: FastifyReply, name: string) =>
      reply
        .header('content-type', files[name]!.type)
        .header('cache-control', 'no-cache')
        .header('content-security-policy', "default-src 'self'")
        .send(files[name]!.body);
    app.get('/review', async (_req, reply) => reply.redirect('/review/'));
    app.get('/review/', async (_req, reply) => send(reply, 'index.html'));
    app.get<{ Params: { file: string } }>('/review/:file', async (req, reply) =>
      files[req.params.file] ? send(reply, req.params.file) : fail('NOT_FOUND', req.url),
    );
  }
  opts.extraRoutes?.(app);
  return app;
}
