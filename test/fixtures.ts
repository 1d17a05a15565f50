import type { Decision, PaymentEvent, WithdrawalEvent } from '../schemas/index.js';

export const T0 = Date.UTC(2026, 0, 15, 12);

export function samplePayment(over: Partial<PaymentEvent> = {}): PaymentEvent {
  return {
    event_id: 'pay-1',
    event_time: T0,
    account_id: 'acct-1',
    instrument_id: 'card-1',
    amount_minor: 1999,
    currency: 'EUR',
    merchant_id: 'm-1',
    merchant_category: '5411',
    channel: 'POS',
    device_id: null,
    ip: null,
    country: 'DE',
    lat: 52.52,
    lon: 13.405,
    ...over,
  };
}

export function sampleWithdrawal(over: Partial<WithdrawalEvent> = {}): WithdrawalEvent {
  return {
    event_id: 'wd-1',
    event_time: T0 + 60_000,
    account_id: 'acct-1',
    amount_minor: 20000,
    currency: 'EUR',
    method: 'ATM',
    destination_id: 'atm-1',
    device_id: 'dev-1',
    ip: '203.0.113.7',
    country: 'DE',
    lat: null,
    lon: null,
    ...over,
  };
}

export function sampleDecision(over: Partial<Decision> = {}): Decision {
  return {
    event_id: 'e1',
    event_type: 'PAYMENT',
    account_id: 'a1',
    event_time: 1_764_000_000_000,
    amount_minor: 100,
    currency: 'EUR',
    outcome: 'FLAG',
    score: 0.5,
    model_version: 'm',
    policy_version: 'p',
    reasons: ['SCORE_ABOVE_THRESHOLD'],
    decided_at: 1_764_000_000_010,
    latency_us: 1,
    feature_spec: 's',
    features: [0.25, 0, 3],
    challenger_score: null,
    challenger_version: null,
    ...over,
  };
}
