import type { ScoringEvent } from '../schemas/index.js';

const before = (a: ScoringEvent, b: ScoringEvent) =>
  a.event.event_time < b.event.event_time ||
  (a.event.event_time === b.event.event_time && a.event.event_id < b.event.event_id);

/**
 * Merges two streams of chunks (each stream in event-time order) by event time, ties by event_id
 * (of equal ones, b's first). Yields chunks: what can be merged before either side needs its next
 * chunk, so a chunk costs one await, not one per event.
 */
export async function* mergeChunksByEventTime(
  a: AsyncIterable<ScoringEvent[]>,
  b: AsyncIterable<ScoringEvent[]>,
): AsyncGenerator<ScoringEvent[]> {
  const ai = a[Symbol.asyncIterator]();
  const bi = b[Symbol.asyncIterator]();
  /** The next non-empty chunk, or null at the end. */
  const next = async (it: AsyncIterator<ScoringEvent[]>): Promise<ScoringEvent[] | null> => {
    for (;;) {
      const r = await it.next();
      if (r.done) return null;
      if (r.value.length) return r.value;
    }
  };
  let xs = await next(ai);
  let ys = await next(bi);
  let i = 0;
  let j = 0;
  try {
    while (xs || ys) {
      if (!ys) {
        yield i === 0 ? xs! : xs!.slice(i);
        xs = await next(ai);
        i = 0;
        continue;
      }
      if (!xs) {
        yield j === 0 ? ys : ys.slice(j);
        ys = await next(bi);
        j = 0;
        continue;
      }
      const out: ScoringEvent[] = [];
      while (i < xs.length && j < ys.length) out.push(before(xs[i]!, ys[j]!) ? xs[i++]! : ys[j++]!);
      if (out.length) yield out;
      if (i === xs.length) {
        xs = await next(ai);
        i = 0;
      }
      if (j === ys.length) {
        ys = await next(bi);
        j = 0;
      }
    }
  } finally {
    await ai.return?.();
    await bi.return?.();
  }
}
