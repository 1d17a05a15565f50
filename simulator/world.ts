import type { Rng } from './rng.js';

export interface City {
  name: string;
  country: string;
  currency: string;
  lat: number;
  lon: number;
}

export const CITIES: readonly City[] = [
  { name: 'London', country: 'GB', currency: 'GBP', lat: 51.507, lon: -0.128 },
  { name: 'Manchester', country: 'GB', currency: 'GBP', lat: 53.48, lon: -2.242 },
  { name: 'Berlin', country: 'DE', currency: 'EUR', lat: 52.52, lon: 13.405 },
  { name: 'Munich', country: 'DE', currency: 'EUR', lat: 48.137, lon: 11.575 },
  { name: 'Paris', country: 'FR', currency: 'EUR', lat: 48.857, lon: 2.352 },
  { name: 'Lyon', country: 'FR', currency: 'EUR', lat: 45.764, lon: 4.836 },
  { name: 'Madrid', country: 'ES', currency: 'EUR', lat: 40.417, lon: -3.704 },
  { name: 'Amsterdam', country: 'NL', currency: 'EUR', lat: 52.368, lon: 4.904 },
  { name: 'New York', country: 'US', currency: 'USD', lat: 40.713, lon: -74.006 },
  { name: 'Chicago', country: 'US', currency: 'USD', lat: 41.878, lon: -87.63 },
  { name: 'Toronto', country: 'CA', currency: 'CAD', lat: 43.653, lon: -79.383 },
  { name: 'Warsaw', country: 'PL', currency: 'PLN', lat: 52.23, lon: 21.012 },
];

/** Countries fraudsters appear from (by IP / device), never a customer's home here. */
export const FRAUD_COUNTRIES: readonly string[] = ['RU', 'NG', 'BR', 'VN', 'ID', 'RO'];

export const MCCS: readonly string[] = [
  '5411',
  '5812',
  '5814',
  '5541',
  '5912',
  '5311',
  '5732',
  '5999',
  '4121',
  '7011',
  '5691',
  '5942',
];
/** MCCs favoured by card testers: digital goods, donations. */
export const TESTING_MCCS: readonly string[] = ['5816', '8398', '5818'];

export interface Merchant {
  id: string;
  mcc: string;
  city: City;
  online: boolean;
}

export interface Account {
  id: string;
  city: City;
  instruments: string[];
  devices: string[];
  ips: string[];
  beneficiaries: string[];
  atms: string[];
  merchants: Merchant[];
  /** ln of the median payment, in minor units. */
  amountMu: number;
  paymentsPerDay: number;
  withdrawalsPerDay: number;
}

export interface World {
  accounts: Account[];
  merchants: Merchant[];
  onlineMerchants: Merchant[];
  testingMerchants: Merchant[];
}

const ip = (rng: Rng) => `${rng.int(11, 223)}.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`;

export function createWorld(rng: Rng, nAccounts: number): World {
  const merchants: Merchant[] = [];
  const nMerchants = Math.max(60, Math.ceil(nAccounts / 10));
  for (let i = 0; i < nMerchants; i++) {
    merchants.push({ id: `m-${i}`, mcc: rng.pick(MCCS), city: rng.pick(CITIES), online: rng.chance(0.25) });
  }
  const onlineMerchants = merchants.filter((m) => m.online);
  const testingMerchants: Merchant[] = [];
  for (let i = 0; i < 8; i++) {
    testingMerchants.push({
      id: `m-digital-${i}`,
      mcc: rng.pick(TESTING_MCCS),
      city: rng.pick(CITIES),
      online: true,
    });
  }
  const byCity = new Map<string, Merchant[]>();
  for (const m of merchants) if (!m.online) byCity.set(m.city.name, [...(byCity.get(m.city.name) ?? []), m]);

  const accounts: Account[] = [];
  for (let i = 0; i < nAccounts; i++) {
    const city = rng.pick(CITIES);
    const local = byCity.get(city.name) ?? merchants;
    const favourites: Merchant[] = [];
    const nFav = rng.int(4, 12);
    for (let k = 0; k < nFav; k++)
      favourites.push(rng.chance(0.7) ? rng.pick(local) : rng.pick(onlineMerchants));
    accounts.push({
      id: `acct-${i}`,
      city,
      instruments: Array.from({ length: rng.int(1, 3) }, (_, k) => `card-${i}-${k}`),
      devices: Array.from({ length: rng.int(1, 2) }, (_, k) => `dev-${i}-${k}`),
      ips: Array.from({ length: rng.int(1, 2) }, () => ip(rng)),
      beneficiaries: Array.from({ length: rng.int(1, 3) }, (_, k) => `ben-${i}-${k}`),
      atms: Array.from(
        { length: 2 },
        () => `atm-${city.name.toLowerCase().replace(/ /g, '-')}-${rng.int(0, 40)}`,
      ),
      merchants: favourites,
      amountMu: Math.log(rng.logNormal(Math.log(3500), 0.6)),
      paymentsPerDay: rng.logNormal(Math.log(2.2), 0.5),
      withdrawalsPerDay: rng.logNormal(Math.log(0.12), 0.5),
    });
  }
  return { accounts, merchants, onlineMerchants, testingMerchants };
}

export { ip as randomIp };
