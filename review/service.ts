import type { Producer } from 'kafkajs';
import type { Clock } from '../lib/clock.js';
import { fail } from '../lib/errors.js';
import { RecordNames, type Label, type LabelValue, type Schemas } from '../schemas/index.js';
import type { CaseDetail, CaseView, ListQuery } from './store.js';
import type { CaseStoreClient } from './thread.js';

/** What the HTTP routes call: the case store plus the Label producer. */
export interface ReviewApi {
  list(q: ListQuery): Promise<{ total: number; cases: CaseView[] }>;
  get(id: string): Promise<CaseDetail>;
  claim(id: string, analyst: string): Promise<CaseView>;
  /** Produces the Label (acks=all) and only then records the resolution: nothing is half-written. */
  resolve(id: string, analyst: string, label: LabelValue, note: string | null): Promise<CaseView>;
}

export interface ReviewApiOptions {
  store: CaseStoreClient;
  producer: Producer;
  labelsTopic: string;
  schemas: Schemas;
  clock: Clock;
}

export function createReviewApi(opts: ReviewApiOptions): ReviewApi {
  const { store, producer, schemas, clock } = opts;
  return {
    list: (q) => store.list(q, clock.now()),
    get: (id) => store.get(id, clock.now()),
    claim: (id, analyst) => store.claim(id, analyst, clock.now()),
    async resolve(id, analyst, label, note) {
      const r = await store.reserveResolve(id, analyst, clock.now());
      const at = clock.now();
      const value: Label = {
        event_id: id,
        account_id: r.decision.account_id,
        label,
        source: 'ANALYST',
        labelled_at: at,
        analyst,
        note,
      };
      try {
        await producer.send({
          topic: opts.labelsTopic,
          acks: -1,
          messages: [{ key: value.account_id, value: schemas.codec.encode(RecordNames.Label, value) }],
        });
      } catch (err) {
        // The reservation goes with the thread if that is what failed.
        await r.abort().catch(() => undefined);
        return fail(
          'UNAVAILABLE',
          `the label could not be written: ${(err as Error).message}`,
          undefined,
          err,
        );
      }
      return r.commit({ label, source: 'ANALYST', analyst, note, at });
    },
  };
}
