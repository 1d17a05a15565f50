import { type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../lib/logger.js';
import { createSchemas, RecordNames, type Decision, type Label } from '../../schemas/index.js';
import { startScoringService, type ScoringService } from '../../scorer/index.js';
import { samplePayment } from '../fixtures.js';
import { openRun, type RunStack, testServiceConfig, testTopics, uniq } from './stack.js';
import { collect, manifestWithNorms, until, writePolicy } from './helpers-review.js';

const schemas = createSchemas();
const run = uniq('review');
const topics = testTopics(run);
const ALICE = 'analyst-alice-key-0001';
const BOB = 'analyst-bob-key-000002';
const ADMIN = 'admin-ops-key-00000003';
const LEASE_MS = 60_000;
// The service's clock runs `skew` ms ahead of the wall clock: the test moves it to expire leases.
let skew = 0;
const clock = { now: () => Date.now() + skew, monoMicros: () => process.hrtime.bigint() / 1000n };

describe('inline scoring and the review API, on the real stack', () => {
  let producer: Producer;
  let stack: RunStack;
  let service: ScoringService;
  let url: string;
  const now = Date.now();
  const event = (id: string, over = {}) =>
    samplePayment({ event_id: `${run}-${id}`, account_id: `${run}-acct`, event_time: now - 60_000, ...over });
  const call = async (method: string, path: string, body?: unknown, key?: string, raw?: string) => {
    const headers: Record<string, string> = {};
    if (key) headers.authorization = `Bearer ${key}`;
    if (body !== undefined || raw !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url}${path}`, {
      method,
      headers,
      ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
  const metric = async (name: string) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
  };

  beforeAll(async () => {
    stack = await openRun(run);
    ({ producer } = stack);
    service = await startScoringService(
      testServiceConfig(run, {
        modelManifest: manifestWithNorms(),
        policyVersion: 'unused',
        policyFile: writePolicy({
          version: 'review-test-v3',
          thresholds: { default: 0.999 },
          block: { device: ['dev-stolen'] },
          amount_limits: { PAYMENT: 5_000_000 },
          degraded: { mode: 'fail-open', budget_ms: 2000 },
        }),
        apiKeys: [
          { role: 'analyst', name: 'alice', key: ALICE },
          { role: 'analyst', name: 'bob', key: BOB },
          { role: 'admin', name: 'ops', key: ADMIN },
        ],
        leaseMs: LEASE_MS,
        bodyLimit: 4096,
      }),
      createSilentLogger(),
      clock,
    );
    url = service.url;
  });

  afterAll(async () => {
    await service?.stop();
    await stack.close();
  });

  it('POST /v1/score decides with the policy, reasons and feature reasons, and publishes the decision', async () => {
    const decisions = await collect(topics.decisions);
    const res = await call('POST', '/v1/score', {
      type: 'PAYMENT',
      event: event('blocked', { device_id: 'dev-stolen', amount_minor: 6_000_000 }),
    });
    expect(res.status).toBe(200);
    const d = res.body as Decision;
    expect(d.outcome).toBe('FLAG');
    expect(d.policy_version).toBe('review-test-v3');
    expect(d.reasons.slice(0, 3)).toEqual([
      'BLOCK_LIST_DEVICE',
      'AMOUNT_OVER_LIMIT',
      'SCORE_BELOW_THRESHOLD',
    ]);
    // The norms are mean 0, std 1, so the largest feature values are named.
    expect(d.reasons.filter((x) => x.startsWith('FEATURE_HIGH:')).length).toBeGreaterThan(0);
    const onTopic = await until(() =>
      decisions.values
        .map((v) => schemas.codec.decode<Decision>(v, [RecordNames.Decision]).value)
        .find((x) => x.event_id === d.event_id),
    );
    expect(onTopic.reasons).toEqual(d.reasons);
    await decisions.stop();
  });

  it('400 with field-level errors, malformed JSON, oversized body and wrong media type', async () => {
    const bad = await call('POST', '/v1/score', {
      type: 'PAYMENT',
      event: { ...event('bad'), amount_minor: 'ten', channel: 'FAX', extra: 1, account_id: undefined },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('FS_ERR_BAD_REQUEST');
    const fields = (bad.body.error.problems as { field: string }[]).map((p) => p.field).sort();
    expect(fields).toEqual(['event.account_id', 'event.amount_minor', 'event.channel', 'event.extra']);
    const invalid = await call('POST', '/v1/score', {
      type: 'PAYMENT',
      event: event('cur', { currency: 'XYZ' }),
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.problems[0].field).toBe('event.currency');
    const type = await call('POST', '/v1/score', { type: 'REFUND', event: event('t') });
    expect(type.body.error.problems).toEqual([
      { field: 'type', problem: '"REFUND" is not PAYMENT or WITHDRAWAL' },
    ]);
    const malformed = await call('POST', '/v1/score', undefined, undefined, '{"type": "PAYMENT",');
    expect([malformed.status, malformed.body.error.code]).toEqual([400, 'FS_ERR_MALFORMED_JSON']);
    const big = await call('POST', '/v1/score', {
      type: 'PAYMENT',
      event: event('big'),
      pad: 'x'.repeat(5000),
    });
    expect([big.status, big.body.error.code]).toEqual([413, 'FS_ERR_BODY_TOO_LARGE']);
    const media = await fetch(`${url}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: 'hi',
    });
    expect(media.status).toBe(415);
    expect(((await media.json()) as { error: { code: string } }).error.code).toBe(
      'FS_ERR_UNSUPPORTED_MEDIA_TYPE',
    );
  });

  it('a later Kafka copy of an inline event is a recognised duplicate: same features, counted once', async () => {
    const ev = event('dup', { amount_minor: 4321 });
    const first = (await call('POST', '/v1/score', { type: 'PAYMENT', event: ev })).body as Decision;
    const before = await metric('fraudstream_duplicate_events_total');
    const decisions = await collect(topics.decisions);
    await producer.send({
      topic: topics.payments,
      messages: [{ key: ev.account_id, value: schemas.codec.encode(RecordNames.PaymentEvent, ev) }],
    });
    const copies = await until(() => {
      const all = decisions.values
        .map((v) => schemas.codec.decode<Decision>(v, [RecordNames.Decision]).value)
        .filter((x) => x.event_id === ev.event_id);
      return all.length >= 2 && all;
    });
    await decisions.stop();
    expect(copies[1]!.features).toEqual(first.features);
    expect(copies[1]!.score).toBe(first.score);
    expect(await metric('fraudstream_duplicate_events_total')).toBe(before + 1);
    // A third inline copy: still the first vector, and the account's 24 h count did not move.
    const again = (await call('POST', '/v1/score', { type: 'PAYMENT', event: ev })).body as Decision;
    expect(again.features).toEqual(first.features);
  });

  it('API keys: 401 without one (metric only), 403 for an analyst on the admin API; an admin reload swaps the model, a bad one keeps it', async () => {
    const before = await metric('fraudstream_http_unauthorized_total');
    expect((await call('GET', '/v1/cases')).status).toBe(401);
    const wrong = await call('GET', '/v1/cases', undefined, 'not-a-key-at-all-xxxx');
    expect([wrong.status, wrong.body.error.code]).toEqual([401, 'FS_ERR_UNAUTHORIZED']);
    expect(await metric('fraudstream_http_unauthorized_total')).toBe(before + 2);
    const forbidden = await call('POST', '/v1/admin/model/reload', {}, ALICE);
    expect([forbidden.status, forbidden.body.error.code]).toEqual([403, 'FS_ERR_FORBIDDEN']);
    // The hot swap behind the endpoint: the same manifest again, then one that does not exist.
    const again = await call('POST', '/v1/admin/model/reload', {}, ADMIN);
    expect(again.status).toBe(200);
    expect(again.body.model_version).toBe(service.model.version);
    const missing = await call(
      'POST',
      '/v1/admin/model/reload',
      { manifest: '/nonexistent/manifest.json' },
      ADMIN,
    );
    expect(missing.body.error.code).toBe('FS_ERR_MODEL_LOAD');
    expect(missing.status).toBeGreaterThanOrEqual(400);
    expect(service.model.version).toBe(again.body.model_version);
    const after = await call('POST', '/v1/score', { type: 'PAYMENT', event: event('after-bad-swap') });
    expect(after.status).toBe(200);
    expect((after.body as Decision).model_version).toBe(again.body.model_version);
  });

  it('flagged decisions become cases: list, claim with a lease, resolve -> Label, audit trail, bad input', async () => {
    const labels = await collect(topics.labels);
    const flagged = (
      await call('POST', '/v1/score', { type: 'PAYMENT', event: event('case1', { device_id: 'dev-stolen' }) })
    ).body as Decision;
    const id = flagged.event_id;
    let list: Record<string, any> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any
    for (let i = 0; i < 300; i++) {
      list = (await call('GET', `/v1/cases?status=OPEN&sort=age&limit=100`, undefined, ALICE)).body;
      if ((list.cases as { id: string }[]).some((c) => c.id === id)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect((list.cases as { id: string }[]).map((c) => c.id)).toContain(id);
    const q = await call('GET', '/v1/cases?sort=price&limit=-1', undefined, ALICE);
    expect(q.body.error.problems.map((p: { field: string }) => p.field)).toEqual(['sort', 'limit']);

    expect((await call('POST', `/v1/cases/nope/claim`, {}, ALICE)).body.error.code).toBe(
      'FS_ERR_CASE_NOT_FOUND',
    );
    const notClaimed = await call('POST', `/v1/cases/${id}/resolve`, { label: 'FRAUD' }, ALICE);
    expect([notClaimed.status, notClaimed.body.error.code]).toEqual([409, 'FS_ERR_CASE_NOT_CLAIMED']);
    const claim = await call('POST', `/v1/cases/${id}/claim`, {}, ALICE);
    expect(claim.status).toBe(200);
    expect(claim.body.status).toBe('CLAIMED');
    expect(claim.body.lease.analyst).toBe('alice');
    const stolen = await call('POST', `/v1/cases/${id}/claim`, {}, BOB);
    expect([stolen.status, stolen.body.error.code]).toEqual([409, 'FS_ERR_CASE_CLAIMED']);
    const byBob = await call('POST', `/v1/cases/${id}/resolve`, { label: 'LEGIT' }, BOB);
    expect(byBob.body.error.code).toBe('FS_ERR_CASE_CLAIMED');
    const badLabel = await call('POST', `/v1/cases/${id}/resolve`, { label: 'MAYBE', x: 1 }, ALICE);
    expect(badLabel.body.error.problems.map((p: { field: string }) => p.field)).toEqual(['label', 'x']);

    const resolved = await call(
      'POST',
      `/v1/cases/${id}/resolve`,
      { label: 'FRAUD', note: 'stolen phone' },
      ALICE,
    );
    expect(resolved.status).toBe(200);
    expect(resolved.body.status).toBe('RESOLVED');
    const again = await call('POST', `/v1/cases/${id}/resolve`, { label: 'LEGIT' }, ALICE);
    expect([again.status, again.body.error.code]).toEqual([409, 'FS_ERR_CASE_RESOLVED']);
    const label = await until(() =>
      labels.values
        .map((v) => schemas.codec.decode<Label>(v, [RecordNames.Label]).value)
        .find((l) => l.event_id === id),
    );
    expect(label).toMatchObject({
      label: 'FRAUD',
      source: 'ANALYST',
      analyst: 'alice',
      note: 'stolen phone',
    });
    await new Promise((res) => setTimeout(res, 500));
    // Exactly one label: the refused double resolve wrote nothing.
    expect(
      labels.values.filter((v) => schemas.codec.decode<Label>(v, [RecordNames.Label]).value.event_id === id),
    ).toHaveLength(1);
    await labels.stop();

    const detail = (await call('GET', `/v1/cases/${id}`, undefined, BOB)).body;
    expect(detail.audit.map((a: { action: string }) => a.action)).toEqual(['OPENED', 'CLAIMED', 'RESOLVED']);
    expect(detail.resolution).toMatchObject({ label: 'FRAUD', analyst: 'alice' });
    expect(detail.activity.map((d: Decision) => d.event_id)).toContain(id);
    expect(detail.decision.reasons).toContain('BLOCK_LIST_DEVICE');
  });

  it('an expired lease cannot resolve; another analyst may then claim', async () => {
    const id = (
      (
        await call('POST', '/v1/score', {
          type: 'PAYMENT',
          event: event('case2', { device_id: 'dev-stolen' }),
        })
      ).body as Decision
    ).event_id;
    let claimed = await call('POST', `/v1/cases/${id}/claim`, {}, ALICE);
    for (let i = 0; i < 300 && claimed.status === 404; i++) {
      await new Promise((res) => setTimeout(res, 100));
      claimed = await call('POST', `/v1/cases/${id}/claim`, {}, ALICE);
    }
    expect(claimed.status).toBe(200);
    skew += LEASE_MS + 1000;
    const late = await call('POST', `/v1/cases/${id}/resolve`, { label: 'LEGIT' }, ALICE);
    expect([late.status, late.body.error.code]).toEqual([409, 'FS_ERR_LEASE_EXPIRED']);
    expect((await call('GET', `/v1/cases/${id}`, undefined, ALICE)).body.status).toBe('OPEN');
    expect((await call('POST', `/v1/cases/${id}/claim`, {}, BOB)).status).toBe(200);
  });
});
