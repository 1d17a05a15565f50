import type { ScoringEvent } from '../schemas/index.js';
import { DIMENSIONS, ENTITIES, FEATURE_NAMES, LABEL_WINDOW_INDEX, NO_PREVIOUS_EVENT_S } from './spec.js';

/** What one entity contributes to an event's features, read just before the event (features/core.ts). */
export interface EntityRaw {
  duplicate: boolean;
  late: boolean;
  /** -1 when the entity had no earlier event. */
  sinceMs: number;
  /** Per window: [count, sum, max]. */
  windows: [number, number, number][];
  /** Account only. */
  q30?: number;
  distinct24?: number[];
  distinct30?: number[];
  /** new device, new destination, new country. */
  firstSeen?: [number, number, number];
  prevLocation?: { lat: number; lon: number; t: number } | null;
  /** Label-informed risk entities only: fraud labels in the 1 d, 7 d, 30 d windows. */
  fraud?: [number, number, number];
}

/**
 * The id of each entity an event touches, in ENTITIES order (null: the event has none), written into
 * `out` from `at` (the engine fills one array for a whole batch).
 */
export function entityIdsInto(ev: ScoringEvent, out: (string | null)[], at: number): void {
  const e = ev.event;
  const pay = ev.type === 'PAYMENT';
  out[at] = e.account_id;
  out[at + 1] = pay ? ev.event.instrument_id || null : null;
  out[at + 2] = e.device_id || null;
  out[at + 3] = e.ip || null;
  out[at + 4] = pay ? ev.event.merchant_id || null : null;
  out[at + 5] = !pay ? ev.event.destination_id || null : null;
}
// entityIdsInto writes the kinds in this order.
if (ENTITIES.map((d) => d.name).join() !== 'account,instrument,device,ip,merchant,destination')
  throw new Error('features/assemble.ts: entityIdsInto does not match ENTITIES');

/** The id of each entity an event touches, in ENTITIES order (null: the event has none). */
export function entityIds(ev: ScoringEvent): (string | null)[] {
  const out = new Array<string | null>(ENTITIES.length);
  entityIdsInto(ev, out, 0);
  return out;
}

const R_KM = 6371.0088;
const rad = (d: number) => (d * Math.PI) / 180;

export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const dLat = rad(lat2 - lat1);
  const dLon = rad(lon2 - lon1);
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(dLon / 2) ** 2;
  return 2 * R_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

const clamp = (x: number, lo: number, hi: number) => (x < lo ? lo : x > hi ? hi : x);

/** Index of each feature name, for the few assembled by name. */
const at = new Map(FEATURE_NAMES.map((n, i) => [n, i]));
const idx = (name: string) => at.get(name)!;
const I = {
  withdrawal: idx('event_is_withdrawal'),
  amountLog: idx('event_amount_log'),
  located: idx('event_is_located'),
  hasDevice: idx('event_has_device'),
  channel: {
    POS: idx('event_channel_pos'),
    ECOM: idx('event_channel_ecom'),
    IN_APP: idx('event_channel_in_app'),
    MOTO: idx('event_channel_moto'),
  },
  method: {
    ATM: idx('event_method_atm'),
    BANK_TRANSFER: idx('event_method_bank_transfer'),
    WALLET: idx('event_method_wallet'),
    CRYPTO: idx('event_method_crypto'),
  },
  entity: ENTITIES.map((e) => idx(`${e.name}_since_last_s`)),
  distinct24: idx(`account_distinct_${DIMENSIONS[0]}s_24h`),
  distinct30: idx(`account_distinct_${DIMENSIONS[0]}s_30d`),
  newDevice: idx('account_new_device'),
  ratio: idx('account_amount_ratio_30d'),
  z: idx('account_amount_z_30d'),
  geo: idx('account_geo_velocity_kmh'),
  fraud: Object.fromEntries(
    ENTITIES.filter((e) => e.role === 'l').map((e) => [e.name, idx(`${e.name}_fraud_count_1d`)]),
  ) as Record<string, number>,
};

/**
 * Writes one event's feature row (spec order) from the raw entity replies (ENTITIES order; null for an
 * entity the event does not have). Pure: the engine and the reference implementation share it.
 */
export function assembleRow(
  ev: ScoringEvent,
  raws: readonly (EntityRaw | null)[],
  out: Float32Array,
  o: number,
): void {
  const e = ev.event;
  out.fill(0, o, o + FEATURE_NAMES.length);
  out[o + I.withdrawal] = ev.type === 'WITHDRAWAL' ? 1 : 0;
  out[o + I.amountLog] = Math.log1p(e.amount_minor);
  const located = e.lat !== null && e.lon !== null;
  out[o + I.located] = located ? 1 : 0;
  out[o + I.hasDevice] = e.device_id ? 1 : 0;
  if (ev.type === 'PAYMENT') out[o + I.channel[ev.event.channel]] = 1;
  else out[o + I.method[ev.event.method]] = 1;

  // Indexed loops, no callbacks or destructuring: this runs for every event (no garbage per event).
  for (let k = 0; k < ENTITIES.length; k++) {
    const def = ENTITIES[k]!;
    const r = raws[k];
    let j = o + I.entity[k]!;
    if (!r) {
      out[j] = NO_PREVIOUS_EVENT_S;
      continue;
    }
    out[j++] = r.sinceMs < 0 ? NO_PREVIOUS_EVENT_S : Math.min(r.sinceMs / 1000, NO_PREVIOUS_EVENT_S);
    const ws = r.windows;
    for (let w = 0; w < ws.length; w++) {
      const win = ws[w]!;
      const c = win[0];
      const s = win[1];
      out[j++] = c;
      out[j++] = s;
      out[j++] = c > 0 ? s / c : 0;
      out[j++] = win[2];
    }
    if (def.role === 'l') {
      const f = r.fraud!;
      const base = o + I.fraud[def.name]!;
      for (let w = 0; w < 3; w++) {
        out[base + w] = f[w]!;
        out[base + 3 + w] = f[w]! / Math.max(1, ws[LABEL_WINDOW_INDEX[w]!]![0]);
      }
    }
    if (def.role === 'a') {
      const d24 = r.distinct24!;
      const d30 = r.distinct30!;
      const fsn = r.firstSeen!;
      for (let i = 0; i < d24.length; i++) out[o + I.distinct24 + i] = d24[i]!;
      for (let i = 0; i < d30.length; i++) out[o + I.distinct30 + i] = d30[i]!;
      for (let i = 0; i < fsn.length; i++) out[o + I.newDevice + i] = fsn[i]!;
      const c = ws[5]![0];
      const s = ws[5]![1];
      const amount = e.amount_minor;
      if (c > 0) {
        const mean = s / c;
        out[o + I.ratio] = clamp(amount / mean, 0, 1e6);
        const variance = r.q30! / c - mean * mean;
        const std = Math.sqrt(Math.max(variance, 0));
        out[o + I.z] = c >= 2 && std > 1e-9 * mean ? clamp((amount - mean) / std, -50, 50) : 0;
      } else {
        out[o + I.ratio] = 1;
      }
      const p = r.prevLocation;
      if (located && p) {
        const hours = Math.max(Math.abs(e.event_time - p.t), 60_000) / 3_600_000;
        out[o + I.geo] = Math.min(haversineKm(p.lat, p.lon, e.lat!, e.lon!) / hours, 20_000);
      }
    }
  }
}
