import type { Label, PaymentEvent, ScoringEvent, WithdrawalEvent } from '../schemas/index.js';
import { createRng, type Rng } from './rng.js';
import {
  CITIES,
  createWorld,
  FRAUD_COUNTRIES,
  randomIp,
  type Account,
  type City,
  type Merchant,
  type World,
} from './world.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export type Scenario =
  'card_testing' | 'account_takeover' | 'mule_cash_out' | 'compromised_merchant' | 'velocity_burst';
export const SCENARIOS: readonly Scenario[] = [
  'card_testing',
  'account_takeover',
  'mule_cash_out',
  'compromised_merchant',
  'velocity_burst',
];

/** A generated event with its ground truth. The scenario never reaches the feature engine. */
export type SimEvent = ScoringEvent & { scenario: Scenario | null };

export interface SimulationOptions {
  seed: number;
  accounts: number;
  days: number;
  /** Epoch ms of the first day's midnight (UTC). */
  start: number;
  /** Chance per account per day that a fraud scenario starts. */
  fraudRate: number;
  /** Share of fraud events that ever get a chargeback label. Default 0.85. */
  labelledShare?: number;
}

/** Relative activity per hour of day (UTC, close enough to local for the cities used). */
const HOURLY = [
  0.2, 0.1, 0.08, 0.06, 0.06, 0.1, 0.3, 0.6, 0.9, 1, 1, 1.1, 1.3, 1.2, 1.1, 1, 1, 1.1, 1.3, 1.4, 1.3, 1.1,
  0.8, 0.4,
];
const HOURLY_TOTAL = HOURLY.reduce((a, b) => a + b, 0);

function timeOfDay(rng: Rng): number {
  let r = rng.next() * HOURLY_TOTAL;
  let h = 0;
  while (h < 23 && r >= HOURLY[h]!) r -= HOURLY[h++]!;
  return h * HOUR + Math.floor(rng.next() * HOUR);
}

const jitter = (rng: Rng, x: number, d: number) => Math.round((x + (rng.next() - 0.5) * d) * 1e4) / 1e4;

export interface Simulation {
  /** Events of the whole history in event-time order (ties by event_id), generated a day at a time. */
  events(): Generator<SimEvent>;
  /** Labels produced so far, in labelled_at order. Complete once events() is exhausted. */
  labels(): Label[];
  world: World;
}

export function createSimulation(opts: SimulationOptions): Simulation {
  const root = createRng(opts.seed);
  const world = createWorld(root.fork('world'), opts.accounts);
  const labelled = opts.labelledShare ?? 0.85;
  const labels: Label[] = [];
  let seq = 0;
  const nextId = (kind: 'pay' | 'wd') => `${kind}-${opts.seed}-${(seq++).toString(36).padStart(7, '0')}`;

  const payment = (a: Account, t: number, rng: Rng, over: Partial<PaymentEvent> = {}): PaymentEvent => {
    const m = rng.pick(a.merchants);
    const channel = m.online ? (rng.chance(0.8) ? 'ECOM' : 'IN_APP') : rng.chance(0.97) ? 'POS' : 'MOTO';
    const located = channel === 'POS' || channel === 'IN_APP';
    return {
      event_id: nextId('pay'),
      event_time: t,
      account_id: a.id,
      instrument_id: rng.pick(a.instruments),
      amount_minor: Math.max(50, Math.round(rng.logNormal(a.amountMu, 0.7))),
      currency: a.city.currency,
      merchant_id: m.id,
      merchant_category: m.mcc,
      channel,
      device_id: channel === 'POS' ? null : rng.pick(a.devices),
      ip: channel === 'ECOM' || channel === 'IN_APP' ? rng.pick(a.ips) : null,
      country: channel === 'POS' ? m.city.country : a.city.country,
      lat: located ? jitter(rng, a.city.lat, 0.2) : null,
      lon: located ? jitter(rng, a.city.lon, 0.2) : null,
      ...over,
    };
  };

  const withdrawal = (
    a: Account,
    t: number,
    rng: Rng,
    over: Partial<WithdrawalEvent> = {},
  ): WithdrawalEvent => {
    const atm = rng.chance(0.6);
    return {
      event_id: nextId('wd'),
      event_time: t,
      account_id: a.id,
      amount_minor: atm
        ? rng.pick([2000, 5000, 10000, 20000, 30000])
        : Math.round(rng.logNormal(a.amountMu + 2.2, 0.6)),
      currency: a.city.currency,
      method: atm ? 'ATM' : 'BANK_TRANSFER',
      destination_id: atm ? rng.pick(a.atms) : rng.pick(a.beneficiaries),
      device_id: atm ? null : rng.pick(a.devices),
      ip: atm ? null : rng.pick(a.ips),
      country: a.city.country,
      lat: atm ? jitter(rng, a.city.lat, 0.1) : null,
      lon: atm ? jitter(rng, a.city.lon, 0.1) : null,
      ...over,
    };
  };

  const label = (e: SimEvent, rng: Rng) => {
    if (!rng.chance(labelled)) return;
    // Chargebacks arrive days to weeks later.
    const delay = Math.round(Math.min(60, Math.max(1, rng.logNormal(Math.log(9), 0.6))) * DAY);
    labels.push({
      event_id: e.event.event_id,
      account_id: e.event.account_id,
      label: 'FRAUD',
      source: 'CHARGEBACK',
      labelled_at: e.event.event_time + delay,
      analyst: null,
      // The scenario stays out of labels.avro (it would leak into anything reading labels): scenarios.avro.
      note: null,
    });
  };

  function cardTesting(a: Account, t0: number, rng: Rng, out: SimEvent[]) {
    // A stolen card is tried with small amounts at digital-goods merchants, then cashed in.
    const device = `dev-fraud-${rng.int(0, 1e9)}`;
    const country = rng.pick(FRAUD_COUNTRIES);
    const ipAddr = randomIp(rng);
    const card = rng.pick(a.instruments);
    let t = t0;
    const tries = rng.int(6, 20);
    for (let k = 0; k < tries + rng.int(1, 3); k++) {
      const big = k >= tries;
      const m = big ? rng.pick(world.onlineMerchants) : rng.pick(world.testingMerchants);
      t += rng.int(5_000, big ? 10 * MINUTE : 90_000);
      out.push({
        type: 'PAYMENT',
        scenario: 'card_testing',
        event: payment(a, t, rng, {
          instrument_id: card,
          merchant_id: m.id,
          merchant_category: m.mcc,
          channel: 'ECOM',
          amount_minor: big ? Math.round(rng.logNormal(a.amountMu + 2, 0.5)) : rng.int(50, 300),
          device_id: device,
          ip: ipAddr,
          country,
          lat: null,
          lon: null,
        }),
      });
    }
  }

  function accountTakeover(a: Account, t0: number, rng: Rng, out: SimEvent[]) {
    // New device, foreign IP, then the balance drained to a new beneficiary or a crypto wallet.
    const device = `dev-fraud-${rng.int(0, 1e9)}`;
    const country = rng.pick(FRAUD_COUNTRIES);
    const ipAddr = randomIp(rng);
    const dest = `ben-mule-${rng.int(0, 1e9)}`;
    const method = rng.chance(0.6) ? 'BANK_TRANSFER' : 'CRYPTO';
    let t = t0;
    const n = rng.int(2, 5);
    for (let k = 0; k < n; k++) {
      t += rng.int(2 * MINUTE, 25 * MINUTE);
      out.push({
        type: 'WITHDRAWAL',
        scenario: 'account_takeover',
        event: withdrawal(a, t, rng, {
          method,
          destination_id: dest,
          amount_minor: Math.round(rng.logNormal(a.amountMu + 3.3, 0.4)),
          device_id: device,
          ip: ipAddr,
          country,
          lat: null,
          lon: null,
        }),
      });
    }
  }

  function muleCashOut(a: Account, t0: number, rng: Rng, out: SimEvent[]) {
    // A mule account empties itself fast: ATM withdrawals at cash machines across town, or crypto.
    const crypto = rng.chance(0.4);
    const wallet = `wallet-crypto-${rng.int(0, 1e9)}`;
    let t = t0;
    const n = rng.int(3, 8);
    for (let k = 0; k < n; k++) {
      t += rng.int(3 * MINUTE, 40 * MINUTE);
      const atmId = `atm-${a.city.name.toLowerCase().replace(/ /g, '-')}-${rng.int(0, 40)}`;
      out.push({
        type: 'WITHDRAWAL',
        scenario: 'mule_cash_out',
        event: withdrawal(
          a,
          t,
          rng,
          crypto
            ? {
                method: 'CRYPTO',
                destination_id: wallet,
                amount_minor: Math.round(rng.logNormal(a.amountMu + 2.6, 0.4)),
                lat: null,
                lon: null,
              }
            : {
                method: 'ATM',
                destination_id: atmId,
                amount_minor: rng.pick([20000, 30000, 40000, 50000]),
                device_id: null,
                ip: null,
                lat: jitter(rng, a.city.lat, 0.1),
                lon: jitter(rng, a.city.lon, 0.1),
              },
        ),
      });
    }
  }

  function velocityBurst(a: Account, t0: number, rng: Rng, out: SimEvent[]) {
    // A stolen phone: many in-app purchases with the account's own device within minutes.
    const device = rng.pick(a.devices);
    let t = t0;
    const n = rng.int(8, 25);
    for (let k = 0; k < n; k++) {
      t += rng.int(15_000, 2 * MINUTE);
      const m = rng.pick(world.onlineMerchants);
      out.push({
        type: 'PAYMENT',
        scenario: 'velocity_burst',
        event: payment(a, t, rng, {
          merchant_id: m.id,
          merchant_category: m.mcc,
          channel: 'IN_APP',
          device_id: device,
          amount_minor: Math.round(rng.logNormal(a.amountMu + 0.8, 0.5)),
        }),
      });
    }
  }

  function compromisedMerchant(m: Merchant, dayStart: number, rng: Rng, out: SimEvent[]) {
    // A breached merchant: many customers' cards charged there, mail-order, in one day.
    const n = rng.int(10, 40);
    for (let k = 0; k < n; k++) {
      const a = rng.pick(world.accounts);
      out.push({
        type: 'PAYMENT',
        scenario: 'compromised_merchant',
        event: payment(a, dayStart + timeOfDay(rng), rng, {
          merchant_id: m.id,
          merchant_category: m.mcc,
          channel: 'MOTO',
          device_id: null,
          ip: null,
          country: m.city.country,
          lat: null,
          lon: null,
          amount_minor: Math.round(rng.logNormal(a.amountMu + 1.6, 0.5)),
        }),
      });
    }
  }

  /** Accounts away from home: until when, and where. Legitimate payments follow them abroad. */
  const trips = new Map<string, { until: number; city: City }>();
  const localMerchants = new Map<string, Merchant[]>();
  for (const m of world.merchants)
    if (!m.online) localMerchants.set(m.city.name, [...(localMerchants.get(m.city.name) ?? []), m]);

  function travelPayment(a: Account, city: City, t: number, rng: Rng): PaymentEvent {
    const m = rng.pick(localMerchants.get(city.name) ?? world.merchants);
    return payment(a, t, rng, {
      merchant_id: m.id,
      merchant_category: m.mcc,
      channel: 'POS',
      device_id: null,
      ip: null,
      country: city.country,
      lat: jitter(rng, city.lat, 0.2),
      lon: jitter(rng, city.lon, 0.2),
    });
  }

  function day(d: number): SimEvent[] {
    const rng = root.fork(`day-${d}`);
    const dayStart = opts.start + d * DAY;
    const weekday = new Date(dayStart).getUTCDay();
    const weekly = weekday === 0 || weekday === 6 ? 1.25 : 0.95;
    const out: SimEvent[] = [];
    for (const a of world.accounts) {
      let trip = trips.get(a.id);
      if (trip && trip.until <= dayStart) {
        trips.delete(a.id);
        trip = undefined;
      }
      if (!trip && rng.chance(0.004)) {
        trip = { until: dayStart + rng.int(2, 8) * DAY, city: rng.pick(CITIES) };
        trips.set(a.id, trip);
      }
      const np = rng.poisson(a.paymentsPerDay * weekly);
      for (let k = 0; k < np; k++) {
        const t = dayStart + timeOfDay(rng);
        out.push({
          type: 'PAYMENT',
          scenario: null,
          event: trip && rng.chance(0.7) ? travelPayment(a, trip.city, t, rng) : payment(a, t, rng),
        });
      }
      const nw = rng.poisson(a.withdrawalsPerDay);
      for (let k = 0; k < nw; k++)
        out.push({
          type: 'WITHDRAWAL',
          scenario: null,
          event: withdrawal(a, dayStart + timeOfDay(rng), rng),
        });
      if (rng.chance(opts.fraudRate)) {
        const start = dayStart + timeOfDay(rng);
        const before = out.length;
        const r = rng.next();
        if (r < 0.3) cardTesting(a, start, rng, out);
        else if (r < 0.55) accountTakeover(a, start, rng, out);
        else if (r < 0.75) muleCashOut(a, start, rng, out);
        else velocityBurst(a, start, rng, out);
        for (let k = before; k < out.length; k++) label(out[k]!, rng);
      }
    }
    // About three merchant breaches a month per 1,000 accounts.
    if (rng.chance(Math.min(0.5, world.accounts.length / 10_000))) {
      const before = out.length;
      compromisedMerchant(rng.pick(world.merchants), dayStart, rng, out);
      for (let k = before; k < out.length; k++) label(out[k]!, rng);
    }
    return out.sort(
      (x, y) => x.event.event_time - y.event.event_time || (x.event.event_id < y.event.event_id ? -1 : 1),
    );
  }

  return {
    world,
    *events() {
      // A scenario that runs past midnight spills into the next day: hold such events back until then.
      let carry: SimEvent[] = [];
      for (let d = 0; d < opts.days; d++) {
        const end = opts.start + (d + 1) * DAY;
        const all = carry.length
          ? [...carry, ...day(d)].sort(
              (x, y) =>
                x.event.event_time - y.event.event_time || (x.event.event_id < y.event.event_id ? -1 : 1),
            )
          : day(d);
        carry = [];
        for (const e of all) {
          if (e.event.event_time < end || d === opts.days - 1) yield e;
          else carry.push(e);
        }
      }
      labels.sort((x, y) => x.labelled_at - y.labelled_at || (x.event_id < y.event_id ? -1 : 1));
    },
    labels: () => labels,
  };
}
