import type { Message, Producer } from 'kafkajs';
import type { Clock } from '../lib/clock.js';
import { Errors, fail, FraudstreamError, isFraudstreamError } from '../lib/errors.js';
import {
  RecordNames,
  validatePayment,
  validateWithdrawal,
  type Decision,
  type PaymentEvent,
  type Schemas,
  type ScoringEvent,
  type WithdrawalEvent,
} from '../schemas/index.js';
import type { DecisionEngine } from './engine.js';

/** One field-level problem of an inline request. */
export interface FieldProblem {
  field: string;
  problem: string;
}

export interface InlineScorer {
  /** Validates `{ type, event }`, decides it with the shared engine and publishes the decision. */
  score(body: unknown): Promise<Decision>;
}

export interface InlineScorerOptions {
  engine: DecisionEngine;
  schemas: Schemas;
  producer: Producer;
  decisionsTopic: string;
  clock: Clock;
  /**
   * Called per inline decision (metrics), with how long its two phases took (ms): deciding it (its turn
   * in a batch, features, model, policy) and publishing it (until Kafka acknowledged it).
   */
  onDecision?: (d: Decision, duplicate: boolean, phases: { decideMs: number; publishMs: number }) => void;
}

const badRequest = (message: string, problems: FieldProblem[]): never =>
  fail('BAD_REQUEST', message, { problems });

const typeName = (t: unknown): string => {
  const x = t as { typeName?: string; name?: string; types?: { typeName?: string; name?: string }[] };
  if (x.types) return x.types.map((u) => u.name ?? u.typeName).join(' or ');
  return x.name ?? x.typeName ?? 'value';
};

/** Field names per record type, built once (a Set per request was measurable garbage). */
const knownFields = new WeakMap<object, Set<string>>();

/** Checks a JSON value against the record's Avro schema, naming every field that does not fit. */
export function avroProblems(schemas: Schemas, name: string, value: unknown): FieldProblem[] {
  const type = schemas.catalog.reader(name);
  const problems: FieldProblem[] = [];
  let known = knownFields.get(type);
  if (!known) {
    const fields = (type as unknown as { fields?: { name: string }[] }).fields ?? [];
    known = new Set(fields.map((f) => f.name));
    knownFields.set(type, known);
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const k of Object.keys(value))
      if (!known.has(k)) problems.push({ field: k, problem: 'unknown field' });
  }
  // The plain check is avsc's fast path; the hooked one, which names each problem, runs only on failure.
  if (type.isValid(value)) return problems;
  type.isValid(value, {
    errorHook(path: string[], v: unknown, t: unknown) {
      problems.push({
        field: path.join('.') || '(event)',
        problem: v === undefined ? 'missing' : `${JSON.stringify(v)} is not a valid ${typeName(t)}`,
      });
    },
  });
  return problems;
}

/** Most decisions in one produce request: about 1 KiB each, well under the broker's 1 MiB batch limit. */
const MAX_PUBLISH_BATCH = 500;

/**
 * Publishes decisions to the decisions topic with one produce request in flight at a time (acks=all);
 * each caller learns when its own decision is acknowledged. Decisions queued in the same turn of the
 * event loop, or while a request is in flight, all go in the next request. The producer keeps one
 * request in flight anyway (idempotent, order kept), so a send per turn would only queue behind it:
 * when the broker stalls for a few milliseconds, a backlog of small requests then drains one round
 * trip each, and every request costs the client and the broker its own encoding and bookkeeping.
 * Coalescing drains any backlog in one round trip.
 */
function createPublisher(producer: Producer, topic: string, schemas: Schemas) {
  type Pending = { msg: Message; done: (err?: unknown) => void };
  let queue: Pending[] = [];
  let running = false;
  const drain = async () => {
    while (queue.length) {
      const batch = queue.length > MAX_PUBLISH_BATCH ? queue.splice(0, MAX_PUBLISH_BATCH) : queue;
      if (batch === queue) queue = [];
      try {
        await producer.send({ topic, acks: -1, messages: batch.map((b) => b.msg) });
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.done(err);
      }
    }
    running = false;
  };
  return (d: Decision) =>
    new Promise<void>((resolve, reject) => {
      queue.push({
        msg: { key: d.account_id, value: schemas.codec.encode(RecordNames.Decision, d) },
        done: (err) => (err ? reject(err as Error) : resolve()),
      });
      if (!running) {
        running = true;
        // The rest of this turn's decisions join the first request.
        setImmediate(() => void drain());
      }
    });
}

/**
 * Natural batching of engine calls: a request arriving while a batch is being decided waits for the
 * next one, which takes every request queued meanwhile (one Redis round trip, one model run). An idle
 * engine starts at once, so batching adds no delay at low load.
 */
function createBatcher(engine: DecisionEngine, maxBatch: number) {
  type Item = { ev: ScoringEvent; readAt: bigint; done: (r: { d: Decision; dup: boolean } | Error) => void };
  let queue: Item[] = [];
  let busy = false;
  const pump = async () => {
    busy = true;
    while (queue.length) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        // An answer is a commit point: the features it changed are in Redis before it is given.
        const { decisions, duplicate } = await engine.decide(
          batch.map((b) => b.ev),
          batch.map((b) => b.readAt),
          { flush: true },
        );
        batch.forEach((b, i) => b.done({ d: decisions[i]!, dup: duplicate[i] === 1 }));
      } catch (err) {
        for (const b of batch) b.done(err as Error);
      }
    }
    busy = false;
  };
  return (ev: ScoringEvent, readAt: bigint) =>
    new Promise<{ d: Decision; dup: boolean }>((resolve, reject) => {
      queue.push({ ev, readAt, done: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      if (!busy) void pump();
    });
}

export function createInlineScorer(opts: InlineScorerOptions): InlineScorer {
  const { engine, schemas, clock } = opts;
  const publish = createPublisher(opts.producer, opts.decisionsTopic, schemas);
  const decide = createBatcher(engine, 256);
  return {
    async score(body) {
      const readAt = clock.monoMicros();
      if (body === null || typeof body !== 'object' || Array.isArray(body))
        badRequest('the body must be a JSON object { type, event }', [
          { field: '(body)', problem: 'not an object' },
        ]);
      const { type, event, ...rest } = body as Record<string, unknown>;
      const extra = Object.keys(rest).map((k) => ({ field: k, problem: 'unknown field' }));
      if (type !== 'PAYMENT' && type !== 'WITHDRAWAL')
        badRequest('type must be PAYMENT or WITHDRAWAL', [
          ...extra,
          { field: 'type', problem: `${JSON.stringify(type ?? null)} is not PAYMENT or WITHDRAWAL` },
        ]);
      const name = type === 'PAYMENT' ? RecordNames.PaymentEvent : RecordNames.WithdrawalEvent;
      const problems = [
        ...extra,
        ...avroProblems(schemas, name, event).map((p) => ({ ...p, field: `event.${p.field}` })),
      ];
      if (problems.length) badRequest(`the ${type} does not match its Avro schema`, problems);
      let ev: ScoringEvent;
      try {
        ev =
          type === 'PAYMENT'
            ? { type: 'PAYMENT', event: validatePayment(event as PaymentEvent, { now: clock.now() }) }
            : {
                type: 'WITHDRAWAL',
                event: validateWithdrawal(event as WithdrawalEvent, { now: clock.now() }),
              };
      } catch (err) {
        if (!isFraudstreamError(err, 'INVALID_EVENT')) throw err;
        const list = (err.detail?.problems as string[] | undefined) ?? [err.message];
        return badRequest(
          err.message,
          list.map((p) => ({ field: `event.${p.split(' ')[0]}`, problem: p })),
        );
      }
      const t0 = performance.now();
      const { d, dup } = await decide(ev, readAt);
      const t1 = performance.now();
      try {
        await publish(d);
      } catch (err) {
        throw new FraudstreamError(
          Errors.UNAVAILABLE,
          `the decision could not be published: ${(err as Error).message}`,
          undefined,
          { cause: err },
        );
      }
      opts.onDecision?.(d, dup, { decideMs: t1 - t0, publishMs: performance.now() - t1 });
      return d;
    },
  };
}
