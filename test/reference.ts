/**
 * The feature semantics of docs/features.md, the slow and obvious way: plain arrays, no Redis, no
 * buckets stored. Used only by tests, which compare it with the Redis engine on random streams.
 * Dedupe is by account: a repeated event_id is recognised while the account's newest event time has
 * moved less than the dedupe horizon past the newest time when it was first seen. The account's
 * dimension values are forgotten as docs/features.md says: 31 days plus the lateness after their
 * latest use, behind the newest event. A label applies when labelled_at is within the label horizon
 * of the event's time.
 */
import {
  assembleRow,
  DIMENSIONS,
  ENTITIES,
  entityIds,
  FEATURE_NAMES,
  LABEL_WINDOW_INDEX,
  WINDOWS,
  type EntityRaw,
} from '../features/index.js';
import type { Label, ScoringEvent } from '../schemas/index.js';

const DAY = 86_400_000;

interface Added {
  t: number;
  amount: number;
}

interface EntityState {
  added: Added[];
  maxT: number | undefined;
  /** account: event_id -> the first appearance's values of every entity, and the account's newest time then. */
  seen: Map<string, { at: number; raws: (EntityRaw | null)[] }>;
  dims: Map<string, number>[];
  prevLocation: { lat: number; lon: number; t: number } | null;
  /** account: event_id -> [merchant, device, destination] for label application. */
  lbl: Map<string, [string, string, string, number]>;
  /** Label buckets per label window (index into LABEL_WINDOW_INDEX), mirroring label_apply.lua. */
  labelBuckets: Map<number, number>[];
}

const floor = Math.floor;

export interface ReferenceOptions {
  allowedLatenessMs: number;
  dedupeHorizonMs?: number;
  labelHorizonMs?: number;
}

export function createReferenceEngine(opts: ReferenceOptions) {
  const lateness = opts.allowedLatenessMs;
  const dedupeHorizon = opts.dedupeHorizonMs ?? 7 * DAY;
  const labelHorizon = opts.labelHorizonMs ?? 90 * DAY;
  const states = new Map<string, EntityState>();
  const state = (k: number, id: string): EntityState => {
    const key = `${ENTITIES[k]!.tag}:${id}`;
    let s = states.get(key);
    if (!s) {
      s = {
        added: [],
        maxT: undefined,
        seen: new Map(),
        dims: DIMENSIONS.map(() => new Map()),
        prevLocation: null,
        lbl: new Map(),
        labelBuckets: [new Map(), new Map(), new Map()],
      };
      states.set(key, s);
    }
    return s;
  };

  function entity(ev: ScoringEvent, ids: (string | null)[], k: number): EntityRaw {
    const e = ev.event;
    const def = ENTITIES[k]!;
    const s = state(k, ids[k]!);
    const t = e.event_time;
    const late = s.maxT !== undefined && t < s.maxT - lateness;
    const newMax = s.maxT !== undefined && s.maxT > t ? s.maxT : t;
    const raw: EntityRaw = {
      duplicate: false,
      late,
      sinceMs: s.maxT === undefined ? -1 : Math.max(0, t - s.maxT),
      windows: [],
    };
    const inWindow = (w: (typeof WINDOWS)[number], x: number) => {
      const B = floor(t / w.bucketMs);
      // Only buckets within the newest event's window are kept.
      const lo = Math.max(B - w.buckets + 1, floor(newMax / w.bucketMs) - w.buckets + 1);
      const bx = floor(x / w.bucketMs);
      return bx >= lo && bx <= B;
    };
    for (const w of WINDOWS) {
      const xs = s.added.filter((a) => inWindow(w, a.t));
      raw.windows.push([
        xs.length,
        xs.reduce((a, b) => a + b.amount, 0),
        xs.reduce((a, b) => Math.max(a, b.amount), 0),
      ]);
    }
    if (def.role === 'a') {
      raw.q30 = s.added
        .filter((a) => inWindow(WINDOWS[5]!, a.t))
        .reduce((acc, a) => acc + a.amount * a.amount, 0);
      const start = (w: (typeof WINDOWS)[number]) => (floor(t / w.bucketMs) - w.buckets + 1) * w.bucketMs;
      const dimValues = [ids[1], ids[4], ids[2], ids[5], e.country];
      raw.distinct24 = s.dims.map((m) => [...m.values()].filter((lt) => lt >= start(WINDOWS[3]!)).length);
      raw.distinct30 = s.dims.map((m) => [...m.values()].filter((lt) => lt >= start(WINDOWS[5]!)).length);
      raw.firstSeen = [2, 3, 4].map((d) => (dimValues[d] && !s.dims[d]!.has(dimValues[d]!) ? 1 : 0)) as [
        number,
        number,
        number,
      ];
      raw.prevLocation = s.prevLocation ? { ...s.prevLocation } : null;
      if (!late) {
        dimValues.forEach((v, d) => {
          if (!v) return;
          const old = s.dims[d]!.get(v);
          if (old === undefined || t > old) s.dims[d]!.set(v, t);
        });
        const forgetBefore = newMax - (31 * DAY + lateness);
        for (const m of s.dims) for (const [v, lt] of m) if (lt < forgetBefore) m.delete(v);
        if (e.lat !== null && e.lon !== null && (!s.prevLocation || t >= s.prevLocation.t))
          s.prevLocation = { lat: e.lat, lon: e.lon, t };
        s.lbl.set(e.event_id, [ids[4] ?? '', ids[2] ?? '', ids[5] ?? '', t]);
      }
    } else if (def.role === 'l') {
      raw.fraud = LABEL_WINDOW_INDEX.map((wi, j) => {
        const w = WINDOWS[wi]!;
        const B = floor(t / w.bucketMs);
        let f = 0;
        for (const [b, c] of s.labelBuckets[j]!) if (b >= B - w.buckets + 1 && b <= B) f += c;
        return f;
      }) as [number, number, number];
    }
    if (!late) {
      s.added.push({ t, amount: e.amount_minor });
      s.maxT = newMax;
    }
    return raw;
  }

  return {
    /** Feature rows of a batch, in spec order, processing events one after another. */
    computeBatch(events: readonly ScoringEvent[]) {
      const cols = FEATURE_NAMES.length;
      const matrix = new Float32Array(events.length * cols);
      const duplicate = new Uint8Array(events.length);
      const late = new Uint8Array(events.length);
      events.forEach((ev, row) => {
        const ids = entityIds(ev);
        const acct = state(0, ids[0]!);
        const prev = acct.seen.get(ev.event.event_id);
        if (prev && (acct.maxT ?? prev.at) - prev.at <= dedupeHorizon) {
          duplicate[row] = 1;
          late[row] = prev.raws[0]!.late ? 1 : 0;
          assembleRow(ev, prev.raws, matrix, row * cols);
          return;
        }
        const raws = ids.map((id, k) => (id === null ? null : entity(ev, ids, k)));
        acct.seen.set(ev.event.event_id, { at: acct.maxT!, raws });
        late[row] = raws[0]!.late ? 1 : 0;
        assembleRow(ev, raws, matrix, row * cols);
      });
      return { matrix, rows: events.length, cols, duplicate, late };
    },

    applyLabels(labels: readonly Label[]) {
      let applied = 0;
      for (const l of labels) {
        if (l.label !== 'FRAUD') continue;
        const acct = states.get(`${ENTITIES[0]!.tag}:${l.account_id}`);
        const rec = acct?.lbl.get(l.event_id);
        if (!rec) continue;
        const [merchant, device, destination, eventTime] = rec;
        if (l.labelled_at - eventTime > labelHorizon) continue;
        acct!.lbl.delete(l.event_id);
        applied++;
        for (const [k, id] of [
          [4, merchant],
          [2, device],
          [5, destination],
        ] as const) {
          if (!id) continue;
          const s = state(k, id);
          LABEL_WINDOW_INDEX.forEach((wi, j) => {
            const w = WINDOWS[wi]!;
            const B = floor(l.labelled_at / w.bucketMs);
            const m = s.labelBuckets[j]!;
            m.set(B, (m.get(B) ?? 0) + 1);
            const oldest = B - w.buckets - Math.ceil(lateness / w.bucketMs);
            for (const k of [...m.keys()]) if (k < oldest) m.delete(k);
          });
        }
      }
      return { applied };
    },
  };
}
