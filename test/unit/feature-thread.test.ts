import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { isFraudstreamError } from '../../lib/errors.js';
import { redisSpecOf } from '../../replay/feature-thread.js';

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
