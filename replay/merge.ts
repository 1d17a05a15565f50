import type { PaymentEvent, ScoringEvent, WithdrawalEvent } from '../schemas/index.js';

const before = (a: ScoringEvent, b: ScoringEvent) =>
  a.event.event_time < b.event.event_time ||
  (a.event.event_time === b.event.event_time && a.event.event_id < b.event.event_id);

/** Merge the payment and withdrawal streams (each in file order) by event time, ties by event_id. */
export async function* mergeByEventTime(
  payments: AsyncIterable<PaymentEvent>,
  withdrawals: AsyncIterable<WithdrawalEvent>,
): AsyncGenerator<ScoringEvent> {
  const pi = payments[Symbol.asyncIterator]();
  const wi = withdrawals[Symbol.asyncIterator]();
  const nextP = async (): Promise<ScoringEvent | undefined> => {
    const r = await pi.next();
    return r.done ? undefined : { type: 'PAYMENT', event: r.value };
  };
  const nextW = async (): Promise<ScoringEvent | undefined> => {
    const r = await wi.next();
    return r.done ? undefined : { type: 'WITHDRAWAL', event: r.value };
  };
  let p = await nextP();
  let w = await nextW();
  while (p || w) {
    if (p && (!w || before(p, w))) {
      yield p;
      p = await nextP();
    } else {
      yield w!;
      w = await nextW();
    }
  }
}
