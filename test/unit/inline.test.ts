import type { Producer, ProducerRecord } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { isFraudstreamError } from '../../lib/errors.js';
import { createSchemas, type Decision, type ScoringEvent } from '../../schemas/index.js';
import { createInlineScorer } from '../../scorer/inline.js';
import type { DecisionEngine } from '../../scorer/engine.js';
import { samplePayment, T0 } from '../fixtures.js';

const clock = { now: () => T0 + 60_000, monoMicros: () => process.hrtime.bigint() / 1000n };

/** Decides every event at once (no Redis, no model): the engine is not what these tests are about. */
const engine: DecisionEngine = {
  async decide(events: readonly ScoringEvent[]) {
    const decisions = events.map(({ type, event }): Decision => ({
      event_id: event.event_id,
      event_type: type,
      account_id: event.account_id,
      event_time: event.event_time,
      amount_minor: event.amount_minor,
      currency: event.currency,
      outcome: 'APPROVE',
      score: 0.1,
      model_version: 'm',
      policy_version: 'p',
      reasons: [],
      decided_at: T0,
      latency_us: 1,
      feature_spec: 'sha256:x',
      features: null,
      challenger_score: null,
      challenger_version: null,
    }));
    const n = events.length;
    return {
      decisions,
      duplicate: new Uint8Array(n),
      late: new Uint8Array(n),
      matrix: new Float32Array(0),
      cols: 0,
    };
  },
  decideComputed() {
    throw new Error('inline scoring computes its own features');
  },
};

/** A producer whose sends the test acknowledges (or fails) by hand, one at a time. */
function manualProducer() {
  const sends: { record: ProducerRecord; ack: () => void; fail: (e: Error) => void }[] = [];
  const producer = {
    send: (record: ProducerRecord) =>
      new Promise((resolve, reject) => {
        sends.push({ record, ack: () => resolve([]), fail: reject });
      }),
  } as unknown as Producer;
  return { producer, sends };
}

const body = (id: string) => ({ type: 'PAYMENT', event: samplePayment({ event_id: id }) });
const settle = () => new Promise((r) => setImmediate(r));
const tick = async (n = 5) => {
  for (let i = 0; i < n; i++) await settle();
};

describe('inline scoring publishes each decision before answering', () => {
  const schemas = createSchemas();
  const make = (producer: Producer) =>
    createInlineScorer({ engine, schemas, producer, decisionsTopic: 'decisions', clock });

  it('answers only once Kafka has acknowledged the decision (acks=all)', async () => {
    const { producer, sends } = manualProducer();
    let answered = false;
    const p = make(producer)
      .score(body('e-1'))
      .then((d) => ((answered = true), d));
    await tick();
    expect(sends).toHaveLength(1);
    expect(sends[0]!.record.acks).toBe(-1);
    expect(answered).toBe(false);
    sends[0]!.ack();
    expect((await p).event_id).toBe('e-1');
  });

  it('keeps one produce request in flight and sends every decision ready meanwhile in the next', async () => {
    const { producer, sends } = manualProducer();
    const scorer = make(producer);
    const first = scorer.score(body('e-1'));
    await tick();
    expect(sends).toHaveLength(1);
    // Three more requests while the first produce is unacknowledged: nothing is sent yet.
    const later = ['e-2', 'e-3', 'e-4'].map((id) => scorer.score(body(id)));
    await tick();
    expect(sends).toHaveLength(1);
    sends[0]!.ack();
    await first;
    await tick();
    expect(sends).toHaveLength(2);
    expect(sends[1]!.record.messages).toHaveLength(3);
    let answered = 0;
    for (const p of later) void p.then(() => answered++);
    await tick();
    expect(answered).toBe(0);
    sends[1]!.ack();
    expect((await Promise.all(later)).map((d) => d.event_id)).toEqual(['e-2', 'e-3', 'e-4']);
  });

  it('fails every request of a failed produce with FS_ERR_UNAVAILABLE, and the next ones go on', async () => {
    const { producer, sends } = manualProducer();
    const scorer = make(producer);
    const a = scorer.score(body('e-1')).catch((e: unknown) => e);
    await tick();
    sends[0]!.fail(new Error('broker down'));
    const err = await a;
    expect(isFraudstreamError(err, 'UNAVAILABLE')).toBe(true);
    const b = scorer.score(body('e-2'));
    await tick();
    expect(sends).toHaveLength(2);
    sends[1]!.ack();
    expect((await b).event_id).toBe('e-2');
  });

  it('reports how long each answer spent deciding and waiting for its acknowledgement', async () => {
    const { producer, sends } = manualProducer();
    const seen: { id: string; decideMs: number; publishMs: number }[] = [];
    const scorer = createInlineScorer({
      engine,
      schemas,
      producer,
      decisionsTopic: 'decisions',
      clock,
      onDecision: (d, _dup, phases) => seen.push({ id: d.event_id, ...phases }),
    });
    const p = scorer.score(body('e-1'));
    await tick();
    expect(seen).toHaveLength(0); // not before the acknowledgement
    await new Promise((r) => setTimeout(r, 40));
    sends[0]!.ack();
    await p;
    expect(seen).toHaveLength(1);
    expect(seen[0]!.id).toBe('e-1');
    // The 40 ms the ack was held count as publishing, not deciding.
    expect(seen[0]!.publishMs).toBeGreaterThanOrEqual(35);
    expect(seen[0]!.decideMs).toBeGreaterThanOrEqual(0);
    expect(seen[0]!.decideMs).toBeLessThan(seen[0]!.publishMs);
  });
});
