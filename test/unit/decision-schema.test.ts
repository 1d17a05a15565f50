import { describe, expect, it } from 'vitest';
import { createSchemas, RecordNames, type Decision } from '../../schemas/index.js';

const base: Decision = {
  event_id: 'e-1',
  event_type: 'PAYMENT',
  account_id: 'a-1',
  event_time: 1_767_225_600_000,
  amount_minor: 1234,
  currency: 'EUR',
  outcome: 'APPROVE',
  score: 0.25,
  model_version: 'fraudstream-lgbm@1',
  policy_version: 'p',
  reasons: ['SCORE_BELOW_THRESHOLD'],
  decided_at: 1_767_225_600_100,
  latency_us: 900,
  feature_spec: 'sha256:abcd',
  features: [1, 2.5],
};

describe('Decision schema v2 (challenger fields)', () => {
  const { codec, catalog } = createSchemas();
  const v1 = catalog.byId(3);

  it('is a new catalog id; the old one stays and still decodes, with the challenger fields null', () => {
    expect(catalog.idOf(RecordNames.Decision)).toBe(5);
    expect(v1.name).toBe(RecordNames.Decision);
    // An old record as a v1 writer framed it.
    const body = v1.toBuffer(base);
    const old = Buffer.concat([Buffer.from([0, 0, 0, 0, 3]), body]);
    const d = codec.decode<Decision>(old);
    expect(d.schemaId).toBe(3);
    expect({ ...d.value }).toEqual({ ...base, challenger_score: null, challenger_version: null });
  });

  it('writes and reads the challenger score and version; absent fields encode as null', () => {
    const withShadow = { ...base, challenger_score: 0.75, challenger_version: 'fraudstream-lgbm@2' };
    const buf = codec.encode(RecordNames.Decision, withShadow);
    expect(buf.readInt32BE(1)).toBe(5);
    expect({ ...codec.decode<Decision>(buf).value }).toEqual(withShadow);
    const plain = codec.decode<Decision>(codec.encode(RecordNames.Decision, base)).value;
    expect(plain.challenger_score).toBeNull();
    expect(plain.challenger_version).toBeNull();
  });

  it('a reader with the old schema reads new records (the new fields are skipped)', () => {
    const v2 = catalog.byId(5);
    const withShadow = { ...base, challenger_score: 0.75, challenger_version: 'x@2' };
    const resolver = v1.createResolver(v2);
    expect({ ...(v1.fromBuffer(v2.toBuffer(withShadow), resolver) as object) }).toEqual(base);
  });
});
