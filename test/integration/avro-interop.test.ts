import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import {
  createContainerWriter,
  createSchemaCatalog,
  readContainer,
  RecordNames,
  type Decision,
  type PaymentEvent,
  type WithdrawalEvent,
} from '../../schemas/index.js';
import { samplePayment, sampleWithdrawal, T0 } from '../fixtures.js';

// Python's fastavro, from the pinned venv that `make venv` creates (make test depends on it).
const root = projectRoot();
const python = join(root, 'models', '.venv', 'bin', 'python');
const script = join(root, 'test', 'interop', 'fastavro_interop.py');
const catalog = createSchemaCatalog();

const payments: PaymentEvent[] = [
  samplePayment(),
  samplePayment({
    event_id: 'pay-2',
    channel: 'ECOM',
    device_id: 'dev-9',
    ip: '198.51.100.4',
    lat: null,
    lon: null,
    amount_minor: 9_007_199_254,
  }),
  samplePayment({
    event_id: 'pay-3',
    currency: 'JPY',
    country: 'JP',
    merchant_category: '5812',
    lat: -33.5,
    lon: 151.25,
  }),
];

describe('Avro container files interoperate with Python fastavro', () => {
  it('fastavro reads the files the project writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-interop-'));
    const path = join(dir, 'payments.avro');
    const w = createContainerWriter<PaymentEvent>(path, catalog.reader(RecordNames.PaymentEvent));
    for (const p of payments) await w.append(p);
    await w.close();
    const out = JSON.parse(execFileSync(python, [script, 'read', path], { encoding: 'utf8' })) as {
      schema: string;
      records: Record<string, unknown>[];
      writer_schema: { fields: { name: string; type: unknown }[] };
    };
    expect(out.schema).toBe(RecordNames.PaymentEvent);
    // The logical type survives into the file, so Python sees a timestamp, not a bare long.
    expect(out.writer_schema.fields.find((f) => f.name === 'event_time')!.type).toMatchObject({
      logicalType: 'timestamp-millis',
    });
    expect(out.records).toEqual(payments);
  });

  it('the project reads the files fastavro writes, Decision with a features array included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-interop-'));
    const wd: WithdrawalEvent[] = [
      sampleWithdrawal(),
      sampleWithdrawal({
        event_id: 'wd-2',
        method: 'CRYPTO',
        device_id: null,
        ip: null,
        lat: 1.5,
        lon: 2.25,
      }),
    ];
    const wdPath = join(dir, 'withdrawals.avro');
    execFileSync(python, [script, 'write', wdPath, join(root, 'schemas', 'WithdrawalEvent.avsc')], {
      input: JSON.stringify(wd),
    });
    const got: WithdrawalEvent[] = [];
    for await (const r of readContainer<WithdrawalEvent>(wdPath, catalog.reader(RecordNames.WithdrawalEvent)))
      got.push({ ...r });
    expect(got).toEqual(wd);

    const decision: Decision = {
      event_id: 'e1',
      event_type: 'PAYMENT',
      account_id: 'a1',
      event_time: T0,
      amount_minor: 100,
      currency: 'EUR',
      outcome: 'FLAG',
      score: 0.75,
      model_version: 'm@1',
      policy_version: 'p1',
      reasons: ['SCORE_ABOVE_THRESHOLD'],
      decided_at: T0 + 5,
      latency_us: 1234,
      feature_spec: 'sha256:x',
      features: [1.5, 0, 2.25],
      challenger_score: 0.5,
      challenger_version: 'm@2',
    };
    const plain = {
      ...decision,
      event_id: 'e2',
      features: null,
      challenger_score: null,
      challenger_version: null,
    };
    const dPath = join(dir, 'decisions.avro');
    execFileSync(python, [script, 'write', dPath, join(root, 'schemas', 'Decision.avsc')], {
      input: JSON.stringify([decision, plain]),
    });
    const ds: Decision[] = [];
    for await (const r of readContainer<Decision>(dPath, catalog.reader(RecordNames.Decision)))
      ds.push({ ...r });
    expect(ds).toEqual([decision, plain]);
  });

  it('refuses a file of another record type where payments are expected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-interop-'));
    const path = join(dir, 'x.avro');
    execFileSync(python, [script, 'write', path, join(root, 'schemas', 'WithdrawalEvent.avsc')], {
      input: JSON.stringify([sampleWithdrawal()]),
    });
    const read = async () => {
      for await (const _ of readContainer(path, catalog.reader(RecordNames.PaymentEvent))) void _;
    };
    await expect(read()).rejects.toMatchObject({ code: 'FS_ERR_BAD_INPUT_FILE' });
  });
});
