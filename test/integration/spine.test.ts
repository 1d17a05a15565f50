import type { Admin, Producer } from 'kafkajs';
import type { Redis } from 'ioredis';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createSilentLogger } from '../../lib/logger.js';
import { projectRoot } from '../../lib/paths.js';
import { clearNamespace } from '../../replay/index.js';
import { createSchemas, RecordNames, type Decision } from '../../schemas/index.js';
import { DeadLetterHeaders, startScoringService, type ScoringService } from '../../scorer/index.js';
import { createSimulation, type SimEvent } from '../../simulator/index.js';
import { FEATURE_NAMES } from '../../features/index.js';
import {
  BROKERS,
  openRun,
  readTopic,
  REDIS_URL,
  type RunStack,
  testServiceConfig,
  testTopics,
  uniq,
  waitForCommitted,
} from './stack.js';

const schemas = createSchemas();
const run = uniq('spine');
const topics = testTopics(run);

const serviceConfig = () => testServiceConfig(run);

const encode = (e: SimEvent) =>
  schemas.codec.encode(
    e.type === 'PAYMENT' ? RecordNames.PaymentEvent : RecordNames.WithdrawalEvent,
    e.event,
  );

describe('the spine: Avro events on Kafka -> decisions, on the real stack', () => {
  let admin: Admin;
  let producer: Producer;
  let r: Redis;
  let stack: RunStack;
  let service: ScoringService | undefined;
  const events: SimEvent[] = [];

  beforeAll(async () => {
    stack = await openRun(run);
    ({ admin, producer, redis: r } = stack);
    // A real slice of simulated history, with both event types.
    const sim = createSimulation({
      seed: 5,
      accounts: 50,
      days: 2,
      start: Date.UTC(2026, 0, 1),
      fraudRate: 0.05,
    });
    let pays = 0;
    let wds = 0;
    for (const e of sim.events()) {
      if (e.type === 'PAYMENT' && pays < 30) {
        pays++;
        events.push(e);
      }
      if (e.type === 'WITHDRAWAL' && wds < 9) {
        wds++;
        events.push(e);
      }
      if (pays >= 30 && wds >= 9) break;
    }
  });

  afterAll(async () => {
    await service?.stop();
    await stack.close();
  });

  it('N records with one malformed give exactly N-1 decisions and exactly one dead letter', async () => {
    const malformed = Buffer.from('{"event_id": "not avro"}');
    await producer.send({
      topic: topics.payments,
      messages: [
        ...events
          .filter((e) => e.type === 'PAYMENT')
          .map((e) => ({ key: e.event.account_id, value: encode(e) })),
        { key: 'acct-bad', value: malformed },
      ],
    });
    await producer.send({
      topic: topics.withdrawals,
      messages: events
        .filter((e) => e.type === 'WITHDRAWAL')
        .map((e) => ({ key: e.event.account_id, value: encode(e) })),
    });
    const n = events.length + 1;

    service = await startScoringService(serviceConfig(), createSilentLogger());

    // Once the scorer has committed past every input record, its output is final: count it exactly.
    await waitForCommitted(`${run}-scorer`, [topics.payments, topics.withdrawals]);
    const decisions = await readTopic(topics.decisions);
    expect(decisions).toHaveLength(n - 1);
    const byId = new Map<string, Decision>();
    for (const m of decisions) {
      const d = schemas.codec.decode<Decision>(m.value, [RecordNames.Decision]).value;
      expect(m.key).toBe(d.account_id);
      expect(d.score).toBeGreaterThanOrEqual(0);
      expect(d.score).toBeLessThanOrEqual(1);
      expect(['APPROVE', 'FLAG']).toContain(d.outcome);
      expect(d.model_version).toBe(service.model.version);
      expect(d.policy_version).toBe('test-policy');
      expect(d.features).toHaveLength(service.model.manifest.feature_names.length);
      expect(d.latency_us).toBeGreaterThan(0);
      byId.set(d.event_id, d);
    }
    expect([...byId.keys()].sort()).toEqual(events.map((e) => e.event.event_id).sort());
    for (const e of events) expect(byId.get(e.event.event_id)!.event_type).toBe(e.type);

    const dead = await readTopic(topics.deadLetter);
    expect(dead).toHaveLength(1);
    const h = (k: string) => dead[0]!.headers[k]?.toString();
    expect(h(DeadLetterHeaders.code)).toBe('FS_ERR_BAD_MAGIC_BYTE');
    expect(h(DeadLetterHeaders.topic)).toBe(topics.payments);
    expect(Number(h(DeadLetterHeaders.offset))).toBeGreaterThanOrEqual(0);
    expect(dead[0]!.value.equals(malformed)).toBe(true);
  });

  it('serves health, readiness and metrics that count what happened', async () => {
    const url = service!.url;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ready',
      checks: { kafka: true, redis: true, model: true },
    });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const total = [...metrics.matchAll(/^fraudstream_events_total\{[^}]*\} (\d+)$/gm)].reduce(
      (a, m) => a + Number(m[1]),
      0,
    );
    expect(total).toBe(events.length);
    expect(metrics).toMatch(
      /^fraudstream_dead_letter_total\{reason="FS_ERR_BAD_MAGIC_BYTE",topic="[^"]+"\} 1$/m,
    );
    expect(metrics).toMatch(/^fraudstream_decision_latency_seconds_count\{type="PAYMENT"\} \d+$/m);
  });

  it('commits offsets only past decided records, so a restarted scorer decides only new ones, and a replayed event_id gets its first decision', async () => {
    await service!.stop();
    service = undefined;
    const offsets = await admin.fetchOffsets({
      groupId: `${run}-scorer`,
      topics: [topics.payments, topics.withdrawals],
    });
    for (const t of offsets) {
      const high = await admin.fetchTopicOffsets(t.topic);
      for (const p of t.partitions)
        expect(p.offset).toBe(high.find((h) => h.partition === p.partition)!.high);
    }

    const first = (await readTopic(topics.decisions)).map(
      (m) => schemas.codec.decode<Decision>(m.value).value,
    );
    const repeat = events[3]!;
    await producer.send({
      topic: repeat.type === 'PAYMENT' ? topics.payments : topics.withdrawals,
      messages: [{ key: repeat.event.account_id, value: encode(repeat) }],
    });
    service = await startScoringService(serviceConfig(), createSilentLogger());

    await waitForCommitted(`${run}-scorer`, [topics.payments, topics.withdrawals]);
    const all = (await readTopic(topics.decisions)).map((m) => schemas.codec.decode<Decision>(m.value).value);
    expect(all).toHaveLength(events.length + 1);
    const copies = all.filter((d) => d.event_id === repeat.event.event_id);
    expect(copies).toHaveLength(2);
    const original = first.find((d) => d.event_id === repeat.event.event_id)!;
    for (const c of copies) {
      expect(c.score).toBe(original.score);
      expect(c.outcome).toBe(original.outcome);
      expect(c.features).toEqual(original.features);
    }
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(/^fraudstream_duplicate_events_total\{type="[A-Z]+"\} 1$/m);
  });

  it('consumes labels: a confirmed fraud raises the merchant risk of later payments; a bad label is dead-lettered', async () => {
    const target = events.find((e) => e.type === 'PAYMENT')!;
    if (target.type !== 'PAYMENT') throw new Error('unreachable');
    const label = {
      event_id: target.event.event_id,
      account_id: target.event.account_id,
      label: 'FRAUD',
      source: 'CHARGEBACK',
      labelled_at: target.event.event_time + 3_600_000,
      analyst: null,
      note: null,
    };
    await producer.send({
      topic: topics.labels,
      messages: [
        { key: label.account_id, value: schemas.codec.encode(RecordNames.Label, label) },
        {
          key: label.account_id,
          value: schemas.codec.encode(RecordNames.Decision, {
            ...(await firstDecision()),
            event_id: 'not-a-label',
          }),
        },
      ],
    });
    const deadline = Date.now() + 30_000;
    let metrics = '';
    while (Date.now() < deadline) {
      metrics = await (await fetch(`${service!.url}/metrics`)).text();
      if (/^fraudstream_labels_total\{label="FRAUD",applied="yes"\} 1$/m.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(metrics.split('\n').filter((l) => /labels_total|dead_letter_total\{/.test(l))).toContain(
      'fraudstream_labels_total{label="FRAUD",applied="yes"} 1',
    );
    expect(metrics).toMatch(
      /^fraudstream_dead_letter_total\{reason="FS_ERR_UNEXPECTED_SCHEMA",topic="[^"]+-labels"\} 1$/m,
    );

    const later = {
      ...target.event,
      event_id: `${target.event.event_id}-later`,
      event_time: label.labelled_at + 60_000,
    };
    await producer.send({
      topic: topics.payments,
      messages: [{ key: later.account_id, value: schemas.codec.encode(RecordNames.PaymentEvent, later) }],
    });
    await waitForCommitted(`${run}-scorer`, [topics.payments, topics.withdrawals]);
    const all = (await readTopic(topics.decisions)).map((m) => schemas.codec.decode<Decision>(m.value).value);
    const d = all.find((x) => x.event_id === later.event_id)!;
    expect(d.features![FEATURE_NAMES.indexOf('merchant_fraud_count_1d')]).toBe(1);
  });

  async function firstDecision(): Promise<Decision> {
    const [m] = await readTopic(topics.decisions, { atLeast: 1 });
    return schemas.codec.decode<Decision>(m!.value).value;
  }

  it('fraudstream score (the CLI) drains on SIGTERM: decides what it read, commits, exits 0', async () => {
    await service?.stop();
    service = undefined;
    const group = `${run}-cli`;
    const child = spawn(
      process.execPath,
      [
        join(projectRoot(), 'bin', 'fraudstream.js'),
        'score',
        '--brokers',
        BROKERS.join(','),
        '--redis-url',
        REDIS_URL,
        '--topic-payments',
        topics.payments,
        '--topic-withdrawals',
        topics.withdrawals,
        '--topic-labels',
        topics.labels,
        '--topic-decisions',
        topics.decisions,
        '--topic-dead-letter',
        topics.deadLetter,
        '--group-id',
        group,
        '--feature-prefix',
        `${run}-cli:`,
        '--http-port',
        '0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    // A failed expectation must not leave the scorer running after the suite.
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const deadline = Date.now() + 60_000;
    while (!/joined consumer group/.test(stderr) && Date.now() < deadline && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(stderr).toMatch(/joined consumer group/);
    // The group starts from the beginning: it re-decides every input record, then sits idle.
    const offsetsDone = async () => {
      const committed = await admin.fetchOffsets({
        groupId: group,
        topics: [topics.payments, topics.withdrawals],
      });
      for (const t of committed) {
        const high = await admin.fetchTopicOffsets(t.topic);
        for (const p of t.partitions)
          if (p.offset !== high.find((h) => h.partition === p.partition)!.high) return false;
      }
      return true;
    };
    while (!(await offsetsDone()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await offsetsDone()).toBe(true);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/stopped cleanly/);
    await clearNamespace(r, `${run}-cli`);
  });

  it('fraudstream score whose start fails half-way (an input topic missing) exits 1, closing what it opened', async () => {
    // The HTTP server, the Redis connection, the producer and the review thread are all up by the time
    // the consumer subscribes: each must be closed, or the process lingers with a port open.
    const missing = `${run}-missing`;
    const child = spawn(
      process.execPath,
      [
        join(projectRoot(), 'bin', 'fraudstream.js'),
        'score',
        ...['--brokers', BROKERS.join(','), '--redis-url', REDIS_URL],
        ...['--topic-payments', `${missing}-payments`, '--topic-withdrawals', topics.withdrawals],
        ...['--topic-labels', topics.labels, '--topic-decisions', topics.decisions],
        ...['--topic-dead-letter', topics.deadLetter, '--group-id', `${run}-failed-start`],
        ...['--feature-prefix', `${run}-failed:`, '--http-port', '0'],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const code = await new Promise<number | null>((res) => {
      child.on('exit', (c) => res(c));
      setTimeout(() => res(null), 30_000);
    });
    expect(stderr).toMatch(/scoring service listening/);
    expect(stderr).toMatch(/fraudstream score: .*topic/);
    expect(code).toBe(1);
  });
});
