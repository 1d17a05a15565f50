/** TypeScript shapes of the Avro records in this folder (namespace fraudstream.v1). */

export type Channel = 'POS' | 'ECOM' | 'IN_APP' | 'MOTO';
export type WithdrawalMethod = 'ATM' | 'BANK_TRANSFER' | 'WALLET' | 'CRYPTO';
export type EventType = 'PAYMENT' | 'WITHDRAWAL';
export type Outcome = 'APPROVE' | 'FLAG';
export type LabelValue = 'FRAUD' | 'LEGIT';
export type LabelSource = 'ANALYST' | 'CHARGEBACK' | 'SIMULATION';

export interface PaymentEvent {
  event_id: string;
  event_time: number;
  account_id: string;
  instrument_id: string;
  amount_minor: number;
  currency: string;
  merchant_id: string;
  merchant_category: string;
  channel: Channel;
  device_id: string | null;
  ip: string | null;
  country: string;
  lat: number | null;
  lon: number | null;
}

export interface WithdrawalEvent {
  event_id: string;
  event_time: number;
  account_id: string;
  amount_minor: number;
  currency: string;
  method: WithdrawalMethod;
  destination_id: string;
  device_id: string | null;
  ip: string | null;
  country: string;
  lat: number | null;
  lon: number | null;
}

export interface Decision {
  event_id: string;
  event_type: EventType;
  account_id: string;
  event_time: number;
  amount_minor: number;
  currency: string;
  outcome: Outcome;
  score: number;
  model_version: string;
  policy_version: string;
  reasons: string[];
  decided_at: number;
  latency_us: number;
  feature_spec: string;
  features: number[] | null;
  /** Shadow (challenger) model's score, never acted on; null (or absent) without a challenger. */
  challenger_score?: number | null;
  /** `name@version` of the challenger; null (or absent) without one. */
  challenger_version?: string | null;
}

export interface Label {
  event_id: string;
  account_id: string;
  label: LabelValue;
  source: LabelSource;
  labelled_at: number;
  analyst: string | null;
  note: string | null;
}

/** An input event tagged with its type: what the feature engine, model and policy work on. */
export type ScoringEvent =
  { type: 'PAYMENT'; event: PaymentEvent } | { type: 'WITHDRAWAL'; event: WithdrawalEvent };

export const RecordNames = {
  PaymentEvent: 'fraudstream.v1.PaymentEvent',
  WithdrawalEvent: 'fraudstream.v1.WithdrawalEvent',
  Decision: 'fraudstream.v1.Decision',
  Label: 'fraudstream.v1.Label',
} as const;
export type RecordName = (typeof RecordNames)[keyof typeof RecordNames];
