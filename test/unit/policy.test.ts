import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFeatureEngine, FEATURE_NAMES } from '../../features/index.js';
import { isFraudstreamError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';
import type { ModelRunner } from '../../models/index.js';
import {
  createPolicy,
  featureReasons,
  loadPolicyFile,
  normsOf,
  type PolicyOptions,
} from '../../policy/index.js';
import type { ScoringEvent } from '../../schemas/index.js';
import { createDecisionEngine } from '../../scorer/index.js';
import { samplePayment, sampleWithdrawal } from '../fixtures.js';

const pay = (over = {}): ScoringEvent => ({ type: 'PAYMENT', event: samplePayment(over) });
const wd = (over = {}): ScoringEvent => ({ type: 'WITHDRAWAL', event: sampleWithdrawal(over) });

function policyFile(text: string): string {
  const p = join(mkdtempSync(join(tmpdir(), 'fs-policy-')), 'policy.json');
  writeFileSync(p, text);
  return p;
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isFraudstreamError(e)) return `${e.code} ${e.message}`;
    throw e;
  }
  throw new Error('expected an error');
}

describe('policy rules', () => {
  const opts: PolicyOptions = {
    version: 'p1',
    thresholds: { default: 0.5, WITHDRAWAL: 0.3 },
    block: { device: ['dev-bad'], destination: ['atm-bad'] },
    allow: { instrument: ['card-vip'], ip: ['10.0.0.1'] },
    amountLimits: { PAYMENT: 100_000 },
  };
  const p = createPolicy(opts);

  it('uses the threshold of the event type, else the default', () => {
    expect(p.evaluate(pay(), 0.4)).toEqual({ outcome: 'APPROVE', reasons: ['SCORE_BELOW_THRESHOLD'] });
    expect(p.evaluate(wd(), 0.4)).toEqual({ outcome: 'FLAG', reasons: ['SCORE_ABOVE_THRESHOLD'] });
  });

  it('takes the scoring model threshold only when told to (no explicit threshold), so it follows a swap', () => {
    // An explicit threshold ignores the model's.
    expect(p.evaluate(pay(), 0.4, undefined, 0.1).outcome).toBe('APPROVE');
    const follow = createPolicy({ version: 'p', thresholds: { default: 0.5 }, thresholdFromModel: true });
    expect(follow.evaluate(pay(), 0.4, undefined, 0.1).outcome).toBe('FLAG');
    expect(follow.evaluate(pay(), 0.4, undefined, 0.9).outcome).toBe('APPROVE');
    // No model threshold passed (e.g. degraded, or a caller without one): the configured one.
    expect(follow.evaluate(pay(), 0.6).outcome).toBe('FLAG');
  });

  it('block list flags whatever the score; allow list approves; amount limit flags', () => {
    expect(p.evaluate(wd({ destination_id: 'atm-bad' }), 0)).toEqual({
      outcome: 'FLAG',
      reasons: ['BLOCK_LIST_DESTINATION', 'SCORE_BELOW_THRESHOLD'],
    });
    expect(p.evaluate(pay({ instrument_id: 'card-vip' }), 0.99)).toEqual({
      outcome: 'APPROVE',
      reasons: ['ALLOW_LIST_INSTRUMENT', 'SCORE_ABOVE_THRESHOLD'],
    });
    expect(p.evaluate(pay({ amount_minor: 100_001 }), 0.1).outcome).toBe('FLAG');
    expect(p.evaluate(pay({ amount_minor: 100_000 }), 0.1).outcome).toBe('APPROVE');
  });

  it('a block hit wins over an allow hit, and every hit is listed', () => {
    const v = p.evaluate(pay({ device_id: 'dev-bad', ip: '10.0.0.1', amount_minor: 200_000 }), 0.1);
    expect(v).toEqual({
      outcome: 'FLAG',
      reasons: ['BLOCK_LIST_DEVICE', 'ALLOW_LIST_IP', 'AMOUNT_OVER_LIMIT', 'SCORE_BELOW_THRESHOLD'],
    });
  });

  it('degraded: fail-open approves, fail-closed flags, and hard rules still apply', () => {
    const open = createPolicy({ ...opts, degraded: { mode: 'fail-open', budgetMs: 5 } });
    const closed = createPolicy({ ...opts, degraded: { mode: 'fail-closed', budgetMs: 5 } });
    expect(open.evaluate(pay(), 0, 'FEATURES')).toEqual({
      outcome: 'APPROVE',
      reasons: ['DEGRADED_FEATURES'],
    });
    expect(closed.evaluate(pay(), 0, 'MODEL')).toEqual({ outcome: 'FLAG', reasons: ['DEGRADED_MODEL'] });
    expect(open.evaluate(pay({ device_id: 'dev-bad' }), 0, 'MODEL').outcome).toBe('FLAG');
  });
});

describe('policy file', () => {
  it('loads a valid file', () => {
    const f = policyFile(
      JSON.stringify({
        version: 'policy-2026-11',
        thresholds: { default: 0.6, PAYMENT: 0.5 },
        block: { ip: ['198.51.100.9'] },
        amount_limits: { WITHDRAWAL: 500_000 },
        degraded: { mode: 'fail-closed', budget_ms: 20 },
      }),
    );
    const o = loadPolicyFile(f);
    expect(o.version).toBe('policy-2026-11');
    expect(o.thresholds).toEqual({ default: 0.6, PAYMENT: 0.5 });
    expect(o.degraded).toEqual({ mode: 'fail-closed', budgetMs: 20 });
    expect(createPolicy(o).evaluate(wd({ amount_minor: 600_000 }), 0).reasons).toContain('AMOUNT_OVER_LIMIT');
  });

  it('names the file, the line and what is wrong', () => {
    const f = policyFile(
      [
        '{',
        '  "version": "v1",',
        '  "thresholds": { "default": 0.5 },',
        '  "block": {',
        '    "ip": ["1.2.3.4", 7]',
        '  },',
        '  "degraded": { "mode": "fail-sideways" }',
        '}',
      ].join('\n'),
    );
    const msg = errorOf(() => loadPolicyFile(f));
    expect(msg).toMatch(/^FS_ERR_BAD_POLICY/);
    expect(msg).toContain(`${f}:5: block.ip: must be an array of non-empty strings`);
    expect(msg).toContain(`${f}:7: degraded.mode: must be "fail-open" or "fail-closed"`);
  });

  it('reports a JSON syntax error with its line, and unknown keys', () => {
    const f = policyFile('{\n  "version": "v1",\n  "thresholds": { "default": 0.5 },,\n}');
    expect(errorOf(() => loadPolicyFile(f))).toContain(`${f}:3: not valid JSON`);
    const g = policyFile('{\n  "version": "v1",\n  "thresholds": { "default": 1.5 },\n  "treshold": 1\n}');
    const msg = errorOf(() => loadPolicyFile(g));
    expect(msg).toContain(`${g}:3: thresholds.default: must be a number in [0, 1]`);
    expect(msg).toContain(`${g}:4: treshold: unknown key`);
  });
});

describe('fraudstream score with a bad policy file (the compiled build)', () => {
  it('stops start-up at once with the file, the line and what is wrong', () => {
    const f = policyFile('{\n  "version": "v1",\n  "thresholds": { "default": 2 }\n}\n');
    const r = spawnSync(
      process.execPath,
      [join(projectRoot(), 'bin', 'fraudstream.js'), 'score', '--policy', f, '--log-level', 'silent'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `${f}:3: thresholds.default: must be a number in [0, 1], got 2 [FS_ERR_BAD_POLICY]`,
    );
  });
});

describe('feature reasons', () => {
  it('names the features furthest above the norm, largest first, at z >= 2', () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const norms = { mean: [0, 10, 0, 0, 5], std: [1, 2, 0, 1, 1] };
    expect(featureReasons([3, 20, 99, 1.9, 100], names, norms)).toEqual([
      'FEATURE_HIGH:e',
      'FEATURE_HIGH:b',
      'FEATURE_HIGH:a',
    ]);
    expect(featureReasons([0, 10, 0, 0, 5], names, norms)).toEqual([]);
  });

  it('equals a sort of every z-score at or above the floor, ties to the earlier feature, read in place', () => {
    // Values from a few levels, so equal z-scores are common; some features have no spread.
    const level = fc.constantFrom(0, 1, 2, 3, 5, 8, -4);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }).chain((w) =>
          fc.record({
            row: fc.array(level, { minLength: w, maxLength: w }),
            mean: fc.array(fc.constantFrom(0, 1, 2), { minLength: w, maxLength: w }),
            std: fc.array(fc.constantFrom(0, 0.5, 1, 2), { minLength: w, maxLength: w }),
            top: fc.integer({ min: 1, max: 10 }),
            pad: fc.integer({ min: 0, max: 5 }),
          }),
        ),
        ({ row, mean, std, top, pad }) => {
          const names = row.map((_, i) => `f${i}`);
          const expected = row
            .map((x, i) => ({ i, z: std[i]! > 0 ? (x - mean[i]!) / std[i]! : NaN }))
            .filter((c) => c.z >= 2)
            .sort((a, b) => b.z - a.z || a.i - b.i)
            .slice(0, top)
            .map((c) => `FEATURE_HIGH:f${c.i}`);
          const padded = [...new Array<number>(pad).fill(99), ...row, 99];
          expect(featureReasons(padded, names, { mean, std }, top, 2, pad)).toEqual(expected);
          expect(featureReasons(row, names, { mean, std }, top)).toEqual(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('reads norms only when present and aligned', () => {
    expect(normsOf({}, 2)).toBeUndefined();
    expect(normsOf({ feature_norms: { mean: [0], std: [1] } }, 2)).toBeUndefined();
    expect(normsOf({ feature_norms: { mean: [0, 1], std: [1, 1] } }, 2)).toEqual({
      mean: [0, 1],
      std: [1, 1],
    });
  });
});

describe('degraded mode in the decision engine', () => {
  // A TCP server that accepts connections and never answers: a Redis that misses every budget.
  let server: Server;
  let port = 0;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  const clock = { now: () => Date.now(), monoMicros: () => process.hrtime.bigint() / 1000n };
  const model = (score: (rows: number) => Promise<Float32Array>): ModelRunner =>
    ({
      version: 'm1',
      manifest: {},
      score: (_m: Float32Array, rows: number) => score(rows),
    }) as unknown as ModelRunner;

  for (const mode of ['fail-open', 'fail-closed'] as const) {
    it(`${mode}: Redis silent past the budget -> ${mode === 'fail-open' ? 'APPROVE' : 'FLAG'} DEGRADED_FEATURES, no hang`, async () => {
      // Commands queue on the connection and no answer ever comes.
      const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0 });
      let degraded = 0;
      const engine = createDecisionEngine({
        features: createFeatureEngine({ redis, prefix: 'never:' }),
        model: model(async (rows) => new Float32Array(rows)),
        policy: createPolicy({
          version: 'p',
          thresholds: { default: 0.5 },
          degraded: { mode, budgetMs: 50 },
        }),
        clock,
        budgetMs: 50,
        onDegraded: (_by, n) => (degraded += n),
      });
      const t0 = performance.now();
      const { decisions } = await engine.decide([pay(), wd()], [clock.monoMicros(), clock.monoMicros()]);
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(decisions.map((d) => d.outcome)).toEqual(
        mode === 'fail-open' ? ['APPROVE', 'APPROVE'] : ['FLAG', 'FLAG'],
      );
      expect(decisions[0]!.reasons).toEqual(['DEGRADED_FEATURES']);
      expect(decisions[0]!.features).toBeNull();
      expect(degraded).toBe(2);
      redis.disconnect();
    });

    it(`${mode}: model past the budget -> DEGRADED_MODEL`, async () => {
      const features = {
        names: FEATURE_NAMES,
        specHash: 'x',
        cols: FEATURE_NAMES.length,
        prefix: 'p:',
        computeBatch: async (evs: readonly ScoringEvent[]) => ({
          matrix: new Float32Array(evs.length * FEATURE_NAMES.length),
          rows: evs.length,
          cols: FEATURE_NAMES.length,
          duplicate: new Uint8Array(evs.length),
          late: new Uint8Array(evs.length),
        }),
      } as unknown as ReturnType<typeof createFeatureEngine>;
      const engine = createDecisionEngine({
        features,
        model: model(() => new Promise(() => undefined)),
        policy: createPolicy({
          version: 'p',
          thresholds: { default: 0.5 },
          degraded: { mode, budgetMs: 30 },
        }),
        clock,
        budgetMs: 30,
      });
      const { decisions } = await engine.decide([pay()], [clock.monoMicros()]);
      expect(decisions[0]!.outcome).toBe(mode === 'fail-open' ? 'APPROVE' : 'FLAG');
      expect(decisions[0]!.reasons).toEqual(['DEGRADED_MODEL']);
    });
  }
});
