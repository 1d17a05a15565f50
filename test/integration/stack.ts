import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';

/** The stack that scripts/stack.sh starts (make test starts it); each test names its own topics and keys. */
export const BROKERS = (
  process.env.FRAUDSTREAM_KAFKA_BROKERS ?? `127.0.0.1:${process.env.FRAUDSTREAM_KAFKA_PORT ?? '19092'}`
).split(',');
export const REDIS_URL =
  process.env.FRAUDSTREAM_REDIS_URL ?? `redis://127.0.0.1:${process.env.FRAUDSTREAM_REDIS_PORT ?? '16379'}`;

export const uniq = (what: string) =>
  `t-${what}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

export function kafka(clientId = 'fraudstream-test'): Kafka {
  return new Kafka({ clientId, brokers: BROKERS, logLevel: logLevel.NOTHING });
}

export async function redis(): Promise<Redis> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  return r;
}

/** The 3-master Redis Cluster that scripts/stack.sh starts beside the single Redis. */
const clusterBase = Number(process.env.FRAUDSTREAM_REDIS_CLUSTER_PORT ?? '17001');
export const CLUSTER_NODES = [0, 1, 2].map((i) => ({ host: '127.0.0.1', port: clusterBase + i }));
