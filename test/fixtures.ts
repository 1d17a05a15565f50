import type { PaymentEvent, WithdrawalEvent } from '../schemas/index.js';

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
