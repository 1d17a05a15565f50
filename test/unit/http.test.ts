import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { fail } from '../../lib/errors.js';
import { createSilentLogger } from '../../lib/logger.js';
import { createHttpServer, type HttpServerOptions } from '../../scorer/index.js';

const ADMIN = 'admin-key-0123456789';
const ANALYST = 'analyst-key-0123456789';

function server(extra: Partial<HttpServerOptions> = {}) {
  return createHttpServer({
    logger: createSilentLogger(),
    metrics: new Registry(),
    readiness: async () => ({ ok: true }),
    apiKeys: [
      { role: 'admin', name: 'ops', key: ADMIN },
      { role: 'analyst', name: 'ann', key: ANALYST },
    ],
    ...extra,
  });
}

describe('POST /v1/admin/model/reload', () => {
  it('calls reloadModel with the manifest path and returns the new version', async () => {
    const calls: (string | undefined)[] = [];
    const app = server({
      reloadModel: async (p) => {
        calls.push(p);
        return { model_version: 'v2' };
      },
    });
    const r = await app.inject({
      method: 'POST',
      url: '/v1/admin/model/reload',
      headers: { 'x-api-key': ADMIN },
      payload: { manifest: '/models/v2/manifest.json' },
    });
    expect([r.statusCode, r.json()]).toEqual([200, { model_version: 'v2' }]);
    const bare = await app.inject({
      method: 'POST',
      url: '/v1/admin/model/reload',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(bare.statusCode).toBe(200);
    expect(calls).toEqual(['/models/v2/manifest.json', undefined]);
  });

  it("answers a failed reload with the error's stable code and status", async () => {
    const app = server({ reloadModel: async () => fail('MODEL_MISMATCH', 'feature_spec abc != def') });
    const r = await app.inject({
      method: 'POST',
      url: '/v1/admin/model/reload',
      headers: { 'x-api-key': ADMIN },
      payload: {},
    });
    expect(r.statusCode).toBe(500);
    expect(r.json().error.code).toBe('FS_ERR_MODEL_MISMATCH');
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/admin/model/reload',
      headers: { 'x-api-key': ADMIN },
      payload: { manifest: 7 },
    });
    expect([bad.statusCode, bad.json().error.code]).toEqual([400, 'FS_ERR_BAD_REQUEST']);
  });

  it('401 without a key, 403 for an analyst, 501 when no reload function was given', async () => {
    const app = server();
    const no = await app.inject({ method: 'POST', url: '/v1/admin/model/reload' });
    expect([no.statusCode, no.json().error.code]).toEqual([401, 'FS_ERR_UNAUTHORIZED']);
    const an = await app.inject({
      method: 'POST',
      url: '/v1/admin/model/reload',
      headers: { 'x-api-key': ANALYST },
    });
    expect([an.statusCode, an.json().error.code]).toEqual([403, 'FS_ERR_FORBIDDEN']);
    const none = await app.inject({
      method: 'POST',
      url: '/v1/admin/model/reload',
      headers: { 'x-api-key': ADMIN },
    });
    expect([none.statusCode, none.json().error.code]).toEqual([501, 'FS_ERR_NOT_IMPLEMENTED']);
  });

  it('unknown routes get a stable 404 code', async () => {
    const r = await server().inject({ method: 'GET', url: '/v1/nothing' });
    expect([r.statusCode, r.json().error.code]).toEqual([404, 'FS_ERR_NOT_FOUND']);
  });
});
