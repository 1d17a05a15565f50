import { fail } from '../lib/errors.js';
import type { PaymentEvent, WithdrawalEvent } from './types.js';

/** Earliest event time accepted: 2000-01-01T00:00:00Z. */
export const MIN_EVENT_TIME = Date.UTC(2000, 0, 1);
/** The largest amount accepted, in minor units (10^13: 100 billion in a 2-decimal currency). */
export const MAX_AMOUNT_MINOR = 10_000_000_000_000;

const CURRENCIES = new Set<string>(Intl.supportedValuesOf('currency'));
const COUNTRY = /^[A-Z]{2}$/;
const MCC = /^\d{4}$/;
const MAX_ID = 128;

export interface ValidateOptions {
  /** Wall clock now (epoch ms), for the future bound. */
  now: number;
  /** How far ahead of the wall clock an event time may be. Default 24 h. */
  maxFutureMs?: number;
}

function id(field: string, v: string, problems: string[]): void {
  if (v.length === 0) problems.push(`${field} is empty`);
  else if (v.length > MAX_ID) problems.push(`${field} is longer than ${MAX_ID} characters`);
}

function common(e: PaymentEvent | WithdrawalEvent, opts: ValidateOptions, problems: string[]): void {
  id('event_id', e.event_id, problems);
  id('account_id', e.account_id, problems);
  if (!Number.isSafeInteger(e.event_time) || e.event_time < MIN_EVENT_TIME) {
    problems.push(`event_time ${e.event_time} is before 2000-01-01`);
  } else if (e.event_time > opts.now + (opts.maxFutureMs ?? 86_400_000)) {
    problems.push(`event_time ${new Date(e.event_time).toISOString()} is in the future`);
  }
  if (!Number.isSafeInteger(e.amount_minor) || e.amount_minor <= 0) {
    problems.push(`amount_minor ${e.amount_minor} is not a positive integer`);
  } else if (e.amount_minor > MAX_AMOUNT_MINOR) {
    problems.push(`amount_minor ${e.amount_minor} exceeds ${MAX_AMOUNT_MINOR}`);
  }
  if (!CURRENCIES.has(e.currency))
    problems.push(`currency ${JSON.stringify(e.currency)} is not an ISO 4217 code`);
  if (!COUNTRY.test(e.country))
    problems.push(`country ${JSON.stringify(e.country)} is not ISO 3166-1 alpha-2`);
  if ((e.lat === null) !== (e.lon === null)) problems.push('lat and lon must be both set or both null');
  if (e.lat !== null && !(e.lat >= -90 && e.lat <= 90)) problems.push(`lat ${e.lat} is outside [-90, 90]`);
  if (e.lon !== null && !(e.lon >= -180 && e.lon <= 180))
    problems.push(`lon ${e.lon} is outside [-180, 180]`);
}

/** Throws FS_ERR_INVALID_EVENT listing every problem at once. */
export function validatePayment(e: PaymentEvent, opts: ValidateOptions): PaymentEvent {
  const problems: string[] = [];
  common(e, opts, problems);
  id('instrument_id', e.instrument_id, problems);
  id('merchant_id', e.merchant_id, problems);
  if (!MCC.test(e.merchant_category))
    problems.push(`merchant_category ${JSON.stringify(e.merchant_category)} is not a 4-digit MCC`);
  if (problems.length)
    fail('INVALID_EVENT', `PaymentEvent ${e.event_id}: ${problems.join('; ')}`, { problems });
  return e;
}

export function validateWithdrawal(e: WithdrawalEvent, opts: ValidateOptions): WithdrawalEvent {
  const problems: string[] = [];
  common(e, opts, problems);
  id('destination_id', e.destination_id, problems);
  if (problems.length)
    fail('INVALID_EVENT', `WithdrawalEvent ${e.event_id}: ${problems.join('; ')}`, { problems });
  return e;
}
