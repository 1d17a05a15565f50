import { fail } from '../lib/errors.js';
import type {
  Decision,
  Label,
  LabelValue,
  PaymentEvent,
  ScoringEvent,
  WithdrawalEvent,
} from '../schemas/index.js';

export type CaseStatus = 'OPEN' | 'CLAIMED' | 'RESOLVED';

export interface AuditEntry {
  at: number;
  action: 'OPENED' | 'CLAIMED' | 'RESOLVED';
  actor: string | null;
  detail?: string;
}

export interface CaseResolution {
  label: LabelValue;
  source: Label['source'];
  analyst: string | null;
  note: string | null;
  at: number;
}

export interface ReviewCase {
  id: string;
  decision: Decision;
  lease: { analyst: string; expires_at: number } | null;
  resolution: CaseResolution | null;
  audit: AuditEntry[];
}

export interface CaseView {
  id: string;
  status: CaseStatus;
  event_type: Decision['event_type'];
  account_id: string;
  amount_minor: number;
  currency: string;
  score: number;
  reasons: string[];
  event_time: number;
  decided_at: number;
  lease: ReviewCase['lease'];
  resolution: CaseResolution | null;
}

export interface CaseDetail extends CaseView {
  decision: Decision;
  /** The input event when the review consumer saw it on its topic (inline events are not on one). */
  event: PaymentEvent | WithdrawalEvent | null;
  /** The account's most recent decisions, newest event time first. */
  activity: Decision[];
  audit: AuditEntry[];
}

export interface ListQuery {
  status?: CaseStatus | 'ALL';
  sort?: 'score' | 'age';
  order?: 'asc' | 'desc';
  limit?: number;
  offset?: number;
  account_id?: string;
  event_type?: Decision['event_type'];
}

export interface CaseStoreOptions {
  /** Lease length of a claim. Default 5 minutes. */
  leaseMs?: number;
  /** Input events kept for case details. Default 100,000. */
  maxEvents?: number;
  /** Decisions kept per account for the activity view. Default 20. */
  activityPerAccount?: number;
  /** Accounts with activity kept. Default 50,000. */
  maxAccounts?: number;
}

export interface CaseStore {
  readonly leaseMs: number;
  /** A decision from the decisions topic: a FLAG opens a case (once per event_id). */
  addDecision(d: Decision): void;
  /** An input event from its topic, kept (bounded) for the case detail. */
  addEvent(ev: ScoringEvent): void;
  /** A label from the labels topic resolves the case of its event (now or when the case arrives). */
  applyLabel(l: Label): void;
  list(q: ListQuery, now: number): { total: number; cases: CaseView[] };
  get(id: string, now: number): CaseDetail;
  claim(id: string, analyst: string, now: number): CaseView;
  /**
   * Checks that `analyst` may resolve the case now and reserves it, so a concurrent resolve is refused;
   * `commit` (after the Label is acknowledged) records the resolution, `abort` releases the reservation.
   */
  reserveResolve(
    id: string,
    analyst: string,
    now: number,
  ): { decision: Decision; commit(r: CaseResolution): CaseView; abort(): void };
  size(): number;
}

function statusOf(c: ReviewCase, now: number): CaseStatus {
  if (c.resolution) return 'RESOLVED';
  return c.lease && c.lease.expires_at > now ? 'CLAIMED' : 'OPEN';
}

function view(c: ReviewCase, now: number): CaseView {
  const d = c.decision;
  const status = statusOf(c, now);
  return {
    id: c.id,
    status,
    event_type: d.event_type,
    account_id: d.account_id,
    amount_minor: d.amount_minor,
    currency: d.currency,
    score: d.score,
    reasons: d.reasons,
    event_time: d.event_time,
    decided_at: d.decided_at,
    lease: status === 'CLAIMED' ? c.lease : null,
    resolution: c.resolution,
  };
}

/** Bounded insertion-ordered map: the oldest entry goes when full. */
function boundedSet<K, V>(m: Map<K, V>, k: K, v: V, max: number) {
  if (m.has(k)) m.delete(k);
  m.set(k, v);
  if (m.size > max) m.delete(m.keys().next().value as K);
}

/** The review queue in memory, built from the decisions (and labels) topics, so Kafka can rebuild it. */
export function createCaseStore(opts: CaseStoreOptions = {}): CaseStore {
  const leaseMs = opts.leaseMs ?? 300_000;
  const maxEvents = opts.maxEvents ?? 100_000;
  const perAccount = opts.activityPerAccount ?? 20;
  const maxAccounts = opts.maxAccounts ?? 50_000;
  const cases = new Map<string, ReviewCase>();
  const events = new Map<string, PaymentEvent | WithdrawalEvent>();
  const activity = new Map<string, Decision[]>();
  const pendingLabels = new Map<string, Label>();
  const resolving = new Set<string>();

  const mustGet = (id: string) => cases.get(id) ?? fail('CASE_NOT_FOUND', id, { id });
  const resolveWith = (c: ReviewCase, r: CaseResolution) => {
    c.resolution = r;
    c.lease = null;
    c.audit.push({
      at: r.at,
      action: 'RESOLVED',
      actor: r.analyst,
      detail: `${r.label} (${r.source})${r.note ? `: ${r.note}` : ''}`,
    });
  };
  const fromLabel = (l: Label): CaseResolution => ({
    label: l.label,
    source: l.source,
    analyst: l.analyst,
    note: l.note,
    at: l.labelled_at,
  });

  return {
    leaseMs,
    addDecision(d) {
      const acts = activity.get(d.account_id) ?? [];
      if (!acts.some((a) => a.event_id === d.event_id)) {
        acts.unshift(d);
        acts.sort((a, b) => b.event_time - a.event_time);
        if (acts.length > perAccount) acts.length = perAccount;
      }
      boundedSet(activity, d.account_id, acts, maxAccounts);
      if (d.outcome !== 'FLAG' || cases.has(d.event_id)) return;
      const c: ReviewCase = {
        id: d.event_id,
        decision: d,
        lease: null,
        resolution: null,
        audit: [{ at: d.decided_at, action: 'OPENED', actor: null, detail: d.reasons.join(', ') }],
      };
      cases.set(d.event_id, c);
      const l = pendingLabels.get(d.event_id);
      if (l) {
        pendingLabels.delete(d.event_id);
        resolveWith(c, fromLabel(l));
      }
    },
    addEvent(ev) {
      boundedSet(events, ev.event.event_id, ev.event, maxEvents);
    },
    applyLabel(l) {
      const c = cases.get(l.event_id);
      // Unknown case yet, or our own resolve still awaiting its ack (the Label can come back on the
      // labels topic first): hold it; the case's creation, the commit or the abort settles it.
      if (!c || resolving.has(l.event_id)) boundedSet(pendingLabels, l.event_id, l, maxEvents);
      else if (!c.resolution) resolveWith(c, fromLabel(l));
    },
    list(q, now) {
      const status = q.status ?? 'OPEN';
      const sort = q.sort ?? 'score';
      const dir = (q.order ?? 'desc') === 'asc' ? 1 : -1;
      const all: CaseView[] = [];
      for (const c of cases.values()) {
        const v = view(c, now);
        if (status !== 'ALL' && v.status !== status) continue;
        if (q.account_id && v.account_id !== q.account_id) continue;
        if (q.event_type && v.event_type !== q.event_type) continue;
        all.push(v);
      }
      // Age = time since the decision; the default (desc) puts the oldest case first, like a queue.
      all.sort((a, b) =>
        sort === 'score'
          ? dir * (a.score - b.score) || a.decided_at - b.decided_at
          : dir * (b.decided_at - a.decided_at) || b.score - a.score,
      );
      const offset = q.offset ?? 0;
      const limit = q.limit ?? 50;
      return { total: all.length, cases: all.slice(offset, offset + limit) };
    },
    get(id, now) {
      const c = mustGet(id);
      return {
        ...view(c, now),
        decision: c.decision,
        event: events.get(id) ?? null,
        activity: (activity.get(c.decision.account_id) ?? []).slice(),
        audit: c.audit.slice(),
      };
    },
    claim(id, analyst, now) {
      const c = mustGet(id);
      const st = statusOf(c, now);
      if (st === 'RESOLVED' || resolving.has(id)) fail('CASE_RESOLVED', id, { id });
      if (st === 'CLAIMED' && c.lease!.analyst !== analyst)
        fail('CASE_CLAIMED', `${id} is held by ${c.lease!.analyst}`, { id, analyst: c.lease!.analyst });
      c.lease = { analyst, expires_at: now + leaseMs };
      c.audit.push({
        at: now,
        action: 'CLAIMED',
        actor: analyst,
        detail: `lease until ${new Date(now + leaseMs).toISOString()}`,
      });
      return view(c, now);
    },
    reserveResolve(id, analyst, now) {
      const c = mustGet(id);
      if (c.resolution || resolving.has(id)) fail('CASE_RESOLVED', id, { id });
      if (!c.lease || c.lease.analyst !== analyst) {
        if (c.lease && c.lease.expires_at > now)
          fail('CASE_CLAIMED', `${id} is held by ${c.lease.analyst}`, { id, analyst: c.lease.analyst });
        fail('CASE_NOT_CLAIMED', id, { id });
      }
      if (c.lease.expires_at <= now)
        fail('LEASE_EXPIRED', `${id}: the lease ended ${new Date(c.lease.expires_at).toISOString()}`, { id });
      resolving.add(id);
      return {
        decision: c.decision,
        commit(r) {
          resolving.delete(id);
          pendingLabels.delete(id); // the echo of this very Label: recorded once, here
          if (!c.resolution) resolveWith(c, r);
          return view(c, r.at);
        },
        abort() {
          resolving.delete(id);
          const held = pendingLabels.get(id);
          if (held && !c.resolution) {
            pendingLabels.delete(id);
            resolveWith(c, fromLabel(held));
          }
        },
      };
    },
    size: () => cases.size,
  };
}
