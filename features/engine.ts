import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Redis, Result } from 'ioredis';
import { fail } from '../lib/errors.js';
import { projectRoot } from '../lib/paths.js';
import type { ScoringEvent } from '../schemas/index.js';
import { FEATURE_NAMES, specHash } from './spec.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** `account_since_last_s` when the account has no earlier event. */
export const NO_PREVIOUS_EVENT_S = 30 * 86_400;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    fsAccount(
      eventsKey: string,
      dedupeKey: string,
      eventId: string,
      eventTime: number,
      amountMinor: number,
      retentionMs: number,
      ttlMs: number,
      dedupeTtlMs: number,
    ): Result<number[], Context>;
  }
}

export interface FeatureEngineOptions {
  redis: Redis | Cluster;
  /** Key prefix, e.g. `fs:` live or `replay:<run>:` for replay. No braces: the hash tag follows it. */
  prefix?: string;
  /** How late (event time) an event may arrive and still update windows exactly. Default 24 h. */
  allowedLatenessMs?: number;
  /** How long an event's dedupe record lives. Default 7 days. */
  dedupeTtlMs?: number;
}

export interface FeatureBatch {
  /** rows × cols, row-major, in spec order. */
  matrix: Float32Array;
  rows: number;
  cols: number;
  /** 1 where the event id had been seen before (its first vector is returned). */
  duplicate: Uint8Array;
}

export interface FeatureEngine {
  readonly names: readonly string[];
  readonly specHash: string;
  readonly cols: number;
  readonly prefix: string;
  /** Features of each event from the history strictly before it; then adds it. One pipelined round trip. */
  computeBatch(events: readonly ScoringEvent[]): Promise<FeatureBatch>;
}

// Read from the source tree, so the compiled build and the sources share one script.
const LUA = readFileSync(join(projectRoot(), 'features', 'account.lua'), 'utf8');

export function createFeatureEngine(opts: FeatureEngineOptions): FeatureEngine {
  const prefix = opts.prefix ?? 'fs:';
  if (/[{}]/.test(prefix))
    fail('BAD_CONFIG', `feature key prefix ${JSON.stringify(prefix)} must not contain braces`);
  const lateness = opts.allowedLatenessMs ?? DAY;
  const dedupeTtl = opts.dedupeTtlMs ?? 7 * DAY;
  const retention = DAY + lateness;
  const ttl = retention + HOUR;
  const redis = opts.redis;
  if (typeof (redis as { fsAccount?: unknown }).fsAccount !== 'function')
    redis.defineCommand('fsAccount', { numberOfKeys: 2, lua: LUA });
  const cols = FEATURE_NAMES.length;

  return {
    names: FEATURE_NAMES,
    specHash: specHash(),
    cols,
    prefix,
    async computeBatch(events) {
      const rows = events.length;
      const matrix = new Float32Array(rows * cols);
      const duplicate = new Uint8Array(rows);
      if (rows === 0) return { matrix, rows, cols, duplicate };
      const pipe = redis.pipeline();
      for (const { event: e } of events) {
        const tag = `{a:${e.account_id}}`;
        pipe.fsAccount(
          `${prefix}${tag}:ev`,
          `${prefix}${tag}:seen:${e.event_id}`,
          e.event_id,
          e.event_time,
          e.amount_minor,
          retention,
          ttl,
          dedupeTtl,
        );
      }
      const results = await pipe.exec();
      if (!results) fail('FEATURE_STORE', 'pipeline returned nothing');
      for (let i = 0; i < rows; i++) {
        const [err, raw] = results[i]!;
        if (err) fail('FEATURE_STORE', err.message, undefined, err);
        const r = raw as number[];
        const ev = events[i]!;
        const o = i * cols;
        duplicate[i] = r[0] === 1 ? 1 : 0;
        matrix[o] = ev.type === 'WITHDRAWAL' ? 1 : 0;
        matrix[o + 1] = Math.log1p(ev.event.amount_minor);
        matrix[o + 2] = r[1]!;
        matrix[o + 3] = Math.log1p(r[2]!);
        matrix[o + 4] = r[3]!;
        matrix[o + 5] = Math.log1p(r[4]!);
        matrix[o + 6] = r[5]! < 0 ? NO_PREVIOUS_EVENT_S : Math.min(r[5]! / 1000, NO_PREVIOUS_EVENT_S);
      }
      return { matrix, rows, cols, duplicate };
    },
  };
}
