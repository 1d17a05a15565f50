import type { ScoringEvent } from '../schemas/index.js';

const before = (a: ScoringEvent, b: ScoringEvent) =>
  a.event.event_time < b.event.event_time ||
  (a.event.event_time === b.event.event_time && a.event.event_id < b.event.event_id);

/** Merge two streams (each already in event-time order) by event time, ties by event_id. */
export async function* mergeByEventTime(
  a: AsyncIterable<ScoringEvent>,
  b: AsyncIterable<ScoringEvent>,
): AsyncGenerator<ScoringEvent> {
  const ai = a[Symbol.asyncIterator]();
  const bi = b[Symbol.asyncIterator]();
  const next = async (it: AsyncIterator<ScoringEvent>) => {
    const r = await it.next();
    return r.done ? undefined : r.value;
  };
  let x = await next(ai);
  let y = await next(bi);
  while (x || y) {
    if (x && (!y || before(x, y))) {
      yield x;
      x = await next(ai);
    } else {
      yield y!;
      y = await next(bi);
    }
  }
}
