import { describe, expect, it } from 'vitest';
import { isFraudstreamError } from '../../lib/errors.js';
import { validatePayment, validateWithdrawal } from '../../schemas/index.js';
import { samplePayment, sampleWithdrawal, T0 } from '../fixtures.js';

const now = T0 + 60_000;
const problemsOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (isFraudstreamError(e, 'INVALID_EVENT')) return e.message;
    throw e;
  }
  return '';
};

describe('event validation', () => {
  it('accepts good events', () => {
    expect(problemsOf(() => validatePayment(samplePayment(), { now }))).toBe('');
    expect(problemsOf(() => validateWithdrawal(sampleWithdrawal(), { now }))).toBe('');
  });

  it.each([
    ['a negative amount', { amount_minor: -1 }, 'amount_minor'],
    ['a zero amount', { amount_minor: 0 }, 'amount_minor'],
    ['a NaN amount', { amount_minor: NaN }, 'amount_minor'],
    ['a fractional amount', { amount_minor: 10.5 }, 'amount_minor'],
    ['an absurd amount', { amount_minor: 1e15 }, 'exceeds'],
    ['an unknown currency', { currency: 'ZZZ' }, 'currency'],
    ['a time before 2000', { event_time: Date.UTC(1999, 11, 31) }, 'before 2000'],
    ['a time days ahead of now', { event_time: now + 3 * 86_400_000 }, 'future'],
    ['a bad country', { country: 'Germany' }, 'country'],
    ['a bad MCC', { merchant_category: '54' }, 'merchant_category'],
    ['lat without lon', { lon: null }, 'lat and lon'],
    ['an empty event_id', { event_id: '' }, 'event_id'],
    ['an oversized event_id', { event_id: 'x'.repeat(10_000) }, 'longer than 128'],
    ['an oversized merchant_id', { merchant_id: 'm'.repeat(129) }, 'merchant_id'],
  ])('rejects %s with FS_ERR_INVALID_EVENT naming the field', (_what, over, word) => {
    expect(problemsOf(() => validatePayment(samplePayment(over), { now }))).toContain(word);
  });

  it('rejects an empty destination on a withdrawal', () => {
    expect(problemsOf(() => validateWithdrawal(sampleWithdrawal({ destination_id: '' }), { now }))).toContain(
      'destination_id',
    );
  });
});
