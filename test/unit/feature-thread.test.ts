import { createServer } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { isFraudstreamError } from '../../lib/errors.js';
import { redisSpecOf, startFeatureThread, type RedisSpec } from '../../replay/feature-thread.js';

describe("replay's feature thread: the Redis settings it connects with", () => {
  it('keeps a single connection’s address, credentials and database, and nothing a worker cannot take', () => {
    const r = new Redis({
      host: '127.0.0.2',
      port: 16400,
      db: 3,
      username: 'u',
      password: 'p',
      lazyConnect: true,
      retryStrategy: () => null,
    });
    const spec = redisSpecOf(r);
    expect(spec).toEqual({
      cluster: false,
      options: expect.objectContaining({
        host: '127.0.0.2',
        port: 16400,
        db: 3,
        username: 'u',
        password: 'p',
      }),
    });
    expect(Object.values(spec.options).some((v) => typeof v === 'function')).toBe(false);
    expect(() => structuredClone(spec)).not.toThrow();
    r.disconnect();
  });

  it('names every startup node of a cluster, however ioredis was given them', () => {
    const c = new Cluster([{ host: '127.0.0.1', port: 17001 }, '127.0.0.1:17002', 17003], {
      lazyConnect: true,
      redisOptions: { password: 'pw' },
    });
    const spec = redisSpecOf(c);
    expect(spec).toEqual({
      cluster: true,
      nodes: [
        { host: '127.0.0.1', port: 17001 },
        { host: '127.0.0.1', port: 17002 },
        { host: '127.0.0.1', port: 17003 },
      ],
      options: { password: 'pw' },
    });
    c.disconnect();
  });

  it('refuses settings a worker cannot be given, with a clear error', () => {
    const r = new Redis({ lazyConnect: true, tls: { checkServerIdentity: () => undefined } });
    let err: unknown;
    try {
      redisSpecOf(r);
    } catch (e) {
      err = e;
    }
    expect(isFraudstreamError(err, 'BAD_CONFIG'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/feature thread cannot copy the Redis connection settings/);
    r.disconnect();
  });
});

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe("replay's feature thread: a Redis it cannot reach", () => {
  for (const kind of ['single', 'cluster'] as const) {
    it(`fails the replay with FS_ERR_FEATURE_STORE instead of retrying for ever (${kind})`, async () => {
      const port = await closedPort();
      const redis: RedisSpec =
        kind === 'single'
          ? { cluster: false, options: { host: '127.0.0.1', port } }
          : { cluster: true, nodes: [{ host: '127.0.0.1', port }], options: {} };
      const thread = startFeatureThread({
        source: { events: [] },
        labels: [],
        redis,
        prefix: 'unreachable:',
        batchSize: 8,
        ahead: 1,
      });
      const started = Date.now();
      let err: unknown;
      try {
        for await (const _ of thread.batches()) throw new Error('no batch expected');
      } catch (e) {
        err = e;
      } finally {
        await thread.stop();
      }
      expect(isFraudstreamError(err, 'FEATURE_STORE'), String(err)).toBe(true);
      expect((err as Error).message).toContain(`cannot reach Redis at 127.0.0.1:${port}`);
      expect(Date.now() - started).toBeLessThan(20_000);
    }, 30_000);
  }
});
