import type { Admin } from 'kafkajs';

/** Creates the topics that do not exist yet, all with the same partition count (co-partitioned input). */
export async function ensureTopics(
  admin: Admin,
  topics: readonly string[],
  partitions: number,
): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = [...new Set(topics)].filter((t) => !existing.has(t));
  if (missing.length) {
    await admin.createTopics({
      topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
      waitForLeaders: true,
    });
  }
  return missing;
}
