import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFeatureEngine } from '../../features/index.js';
import { createSilentLogger } from '../../lib/logger.js';
import { projectRoot } from '../../lib/paths.js';
import { clearNamespace } from '../../replay/index.js';
import { createSchemas, RecordNames, type Decision, type PaymentEvent } from '../../schemas/index.js';
import { startScoringService, type ScoringService } from '../../scorer/index.js';
import { createSimulation, type SimEvent } from '../../simulator/index.js';
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

/*
 * The scorer writes feature changes at checkpoints and commits offsets only after them
 * (docs/features.md, "Durability"). This kills a scorer between checkpoints and proves the restart
 * neither loses nor double-counts anything: events whose changes were written (by an inline answer,
 * which writes everything pending) come back as duplicates with their first vectors; events whose
 * changes were lost are decided again from scratch; every vector equals one clean pass.
 */
const schemas = createSchemas();
const run = uniq('ckpt');
const topics = testTopics(run);
const group = `${run}-scorer`;

describe('checkpoints: a scorer killed between checkpoints loses and double-counts nothing', () => {
  let stack: RunStack;
  let service: ScoringService | undefined;
  // Payments only, all on partition 0: one total order, so one clean pass is the reference.
  const pays: SimEvent[] = [];

  beforeAll(async () => {
    stack = await openRun(run);
    const sim = createSimulation({
      seed: 11,
      accounts: 12,
      days: 3,
      start: Date.UTC(2026, 0, 1),
      fraudRate: 0.05,
    });
    for (const e of sim.events()) {
      if (e.type === 'PAYMENT') pays.push(e);
      if (pays.length === 100) break;
    }
  });

  afterAll(async () => {
    await service?.stop();
    await stack.close();
  });

  const produce = (evs: SimEvent[]) =>
    stack.producer.send({
      topic: topics.payments,
      messages: evs.map((e) => ({
        key: e.event.account_id,
        partition: 0,
        value: schemas.codec.encode(RecordNames.PaymentEvent, e.event),
      })),
    });
  const decisions = async (atLeast: number) =>
    (await readTopic(topics.decisions, { atLeast })).map(
      (m) => schemas.codec.decode<Decision>(m.value).value,
    );

  it('re-reads what was not committed; written changes come back as duplicates, lost ones are redone', async () => {
    const flushed = pays.slice(0, 60);
    const lost = pays.slice(60, 80);
    const after = pays.slice(80);

    const child = spawn(
      process.execPath,
      [
        join(projectRoot(), 'bin', 'fraudstream.js'),
        'score',
        ...['--brokers', BROKERS.join(','), '--redis-url', REDIS_URL],
        ...['--topic-payments', topics.payments, '--topic-withdrawals', topics.withdrawals],
        ...['--topic-labels', topics.labels, '--topic-decisions', topics.decisions],
        ...['--topic-dead-letter', topics.deadLetter, '--group-id', group],
        ...['--feature-prefix', `${run}:`, '--http-port', '0', '--max-batch', '16'],
        // No checkpoint during the test: nothing is committed until the kill.
        ...['--checkpoint-ms', '600000'],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<void>((res) => child.on('exit', () => res()));
    try {
      const deadline = Date.now() + 60_000;
      while (!/joined consumer group/.test(stderr) && Date.now() < deadline && child.exitCode === null)
        await new Promise((r) => setTimeout(r, 100));
      expect(stderr).toMatch(/joined consumer group/);
      const url = /"url":"(http:\/\/[^"]+)"/.exec(stderr)![1]!;

      await produce(flushed);
      expect(await decisions(flushed.length)).toHaveLength(flushed.length);
      // An inline answer is a commit point: it writes every pending change, the Kafka ones included.
      const inline: PaymentEvent = {
        ...(flushed[0]!.event as PaymentEvent),
        event_id: `${run}-inline`,
        account_id: `${run}-acct`,
        instrument_id: `${run}-card`,
        merchant_id: `${run}-shop`,
        device_id: `${run}-dev`,
        ip: '192.0.2.77',
      };
      const res = await fetch(`${url}/v1/score`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'PAYMENT', event: inline }),
      });
      expect(res.status).toBe(200);
      await produce(lost);
      expect(await decisions(flushed.length + 1 + lost.length)).toHaveLength(
        flushed.length + 1 + lost.length,
      );
      // Decided and published, but no checkpoint yet: not one offset committed.
      const committed = await stack.admin.fetchOffsets({ groupId: group, topics: [topics.payments] });
      expect(committed[0]!.partitions.every((p) => p.offset === '-1')).toBe(true);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }

    // The restart waits out the dead process's lease on the namespace, then reads from offset 0.
    service = await startScoringService(
      testServiceConfig(run, { checkpointMs: 0, maxBatch: 16 }),
      createSilentLogger(),
    );
    await produce(after);
    await waitForCommitted(group, [topics.payments], 90_000);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    await service.stop();
    service = undefined;

    const all = await decisions(0);
    const byId = new Map<string, Decision[]>();
    for (const d of all) byId.set(d.event_id, [...(byId.get(d.event_id) ?? []), d]);
    // At least once: what was read before the kill is decided twice, the rest once.
    for (const e of [...flushed, ...lost]) expect(byId.get(e.event.event_id)).toHaveLength(2);
    for (const e of after) expect(byId.get(e.event.event_id)).toHaveLength(1);
    // Exactly the written ones were recognised.
    expect(metrics).toMatch(
      new RegExp(`^fraudstream_duplicate_events_total\\{type="PAYMENT"\\} ${flushed.length}$`, 'm'),
    );

    // One clean pass over the same events in the same order is the reference for every vector.
    const ref = createFeatureEngine({ redis: stack.redis, prefix: `${run}-ref:` });
    try {
      const fb = await ref.computeBatch(pays);
      pays.forEach((e, i) => {
        const want = Array.from(fb.matrix.subarray(i * fb.cols, (i + 1) * fb.cols));
        for (const d of byId.get(e.event.event_id)!) expect(d.features).toEqual(want);
      });
    } finally {
      await ref.close();
      await clearNamespace(stack.redis, `${run}-ref`);
    }
  }, 180_000);
});
