// Exits 0 when the broker answers a metadata request, 1 otherwise. Used by scripts/stack.sh.
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;
const kafka = new Kafka({
  clientId: 'stack-ready',
  brokers: [process.argv[2]],
  logLevel: logLevel.NOTHING,
  retry: { retries: 0 },
  connectionTimeout: 1000,
});
const admin = kafka.admin();
try {
  await admin.connect();
  await admin.fetchTopicMetadata({ topics: [] });
  await admin.describeCluster();
  await admin.disconnect();
  process.exit(0);
} catch {
  process.exit(1);
}
