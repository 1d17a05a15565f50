import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type Redis, type Result } from 'ioredis';
import { fail } from '../lib/errors.js';
import { projectRoot } from '../lib/paths.js';
import type { Label, ScoringEvent } from '../schemas/index.js';
import { assembleRow, entityIds, parseEntityValues, type EntityRaw } from './assemble.js';
import { ENTITIES, FEATURE_NAMES, specHash } from './spec.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    fsEntity(base: string, ...argv: (string | number)[]): Result<(number | string)[], Context>;
    fsLabelLookup(accountBase: string, eventId: string): Result<string | null, Context>;
    fsLabelApply(entityBase: string, labelledAt: number, latenessMs: number): Result<number, Context>;
  }
}

export interface FeatureEngineOptions {
  redis: Redis | Cluster;
  /** Key prefix, e.g. `fs:` live or `replay:` for replay. No braces: the hash tag follows it. */
  prefix?: string;
  /** How late (event time, behind the entity's newest event) an event may be and still update. Default 24 h. */
  allowedLatenessMs?: number;
  /** How long (event time) a repeated event_id is recognised. Default 7 days. */
  dedupeHorizonMs?: number;
  /** How long after an event a label for it can still be applied. Default 90 days. */
  labelHorizonMs?: number;
}

export interface FeatureBatch {
  /** rows × cols, row-major, in spec order. */
  matrix: Float32Array;
  rows: number;
  cols: number;
  /** 1 where the event id had been seen before (its first vector is returned, nothing changes). */
  duplicate: Uint8Array;
  /** 1 where the event was later than the allowed lateness for its account: scored, not added. */
  late: Uint8Array;
}

export interface FeatureEngine {
  readonly names: readonly string[];
  readonly specHash: string;
  readonly cols: number;
  readonly prefix: string;
  /**
   * Features of each event from the history before it, then adds it: one EVALSHA per entity of each
   * event, all pipelined into one round trip (on a cluster, one per master, in parallel).
   */
  computeBatch(events: readonly ScoringEvent[]): Promise<FeatureBatch>;
  /** Counts confirmed-fraud labels on the labelled events' merchant, device and destination. */
  applyLabels(labels: readonly Label[]): Promise<{ applied: number }>;
}

const lua = (file: string) => readFileSync(join(projectRoot(), 'features', file), 'utf8');
const ENTITY_LUA = lua('entity.lua');
const LABEL_LOOKUP_LUA = lua('label.lua');
const LABEL_APPLY_LUA = lua('label_apply.lua');

function defineCommands(redis: Redis | Cluster): void {
  if (typeof (redis as { fsEntity?: unknown }).fsEntity === 'function') return;
  redis.defineCommand('fsEntity', { numberOfKeys: 1, lua: ENTITY_LUA });
  redis.defineCommand('fsLabelLookup', { numberOfKeys: 1, lua: LABEL_LOOKUP_LUA });
  redis.defineCommand('fsLabelApply', { numberOfKeys: 1, lua: LABEL_APPLY_LUA });
}

type Call = [base: string, ...argv: (string | number)[]];

/** Sends the calls in one round trip: a pipeline on one Redis; auto-pipelined per node on a cluster. */
async function run<T>(
  redis: Redis | Cluster,
  calls: Call[],
  send: (target: Redis | Cluster | ReturnType<Redis['pipeline']>, c: Call) => unknown,
): Promise<T[]> {
  if (calls.length === 0) return [];
  if (redis instanceof Cluster) {
    try {
      return (await Promise.all(calls.map((c) => send(redis, c)))) as T[];
    } catch (e) {
      fail('FEATURE_STORE', (e as Error).message, undefined, e);
    }
  }
  const pipe = redis.pipeline();
  for (const c of calls) send(pipe, c);
  const res = await pipe.exec();
  if (!res) fail('FEATURE_STORE', 'pipeline returned nothing');
  return res.map(([err, v]) => {
    if (err) fail('FEATURE_STORE', err.message, undefined, err);
    return v as T;
  });
}

export function createFeatureEngine(opts: FeatureEngineOptions): FeatureEngine {
  const prefix = opts.prefix ?? 'fs:';
  if (/[{}]/.test(prefix))
    fail('BAD_CONFIG', `feature key prefix ${JSON.stringify(prefix)} must not contain braces`);
  const lateness = opts.allowedLatenessMs ?? DAY;
  const dedupe = opts.dedupeHorizonMs ?? 7 * DAY;
  const labelHorizon = opts.labelHorizonMs ?? 90 * DAY;
  const redis = opts.redis;
  defineCommands(redis);
  const cols = FEATURE_NAMES.length;
  const base = (k: number, id: string) => `${prefix}{${ENTITIES[k]!.tag}:${id}}`;

  return {
    names: FEATURE_NAMES,
    specHash: specHash(),
    cols,
    prefix,

    async computeBatch(events) {
      const rows = events.length;
      const matrix = new Float32Array(rows * cols);
      const duplicate = new Uint8Array(rows);
      const late = new Uint8Array(rows);
      const calls: Call[] = [];
      const owner: [row: number, entity: number][] = [];
      events.forEach((ev, row) => {
        const e = ev.event;
        const ids = entityIds(ev);
        ids.forEach((id, k) => {
          if (id === null) return;
          const def = ENTITIES[k]!;
          const argv: (string | number)[] = [
            e.event_id,
            e.event_time,
            e.amount_minor,
            lateness,
            dedupe,
            labelHorizon,
            def.role,
          ];
          if (def.role === 'a') {
            argv.push(ids[1] ?? '', ids[4] ?? '', ids[2] ?? '', ids[5] ?? '', e.country);
            argv.push(e.lat ?? '', e.lon ?? '');
          }
          calls.push([base(k, id), ...argv]);
          owner.push([row, k]);
        });
      });
      const replies = await run<(number | string)[]>(redis, calls, (t, [b, ...argv]) =>
        t.fsEntity(b, ...argv),
      );
      const raws: (EntityRaw | null)[][] = events.map(() => ENTITIES.map(() => null));
      replies.forEach((reply, i) => {
        const [row, k] = owner[i]!;
        raws[row]![k] = parseEntityValues(ENTITIES[k]!.role, reply[0] === 1, reply[1] === 1, reply, 2);
      });
      events.forEach((ev, row) => {
        const acct = raws[row]![0]!;
        duplicate[row] = acct.duplicate ? 1 : 0;
        late[row] = acct.late ? 1 : 0;
        assembleRow(ev, raws[row]!, matrix, row * cols);
      });
      return { matrix, rows, cols, duplicate, late };
    },

    async applyLabels(labels) {
      const fraud = labels.filter((l) => l.label === 'FRAUD');
      const found = await run<string | null>(
        redis,
        fraud.map((l) => [base(0, l.account_id), l.event_id]),
        (t, [b, id]) => t.fsLabelLookup(b, id as string),
      );
      const calls: Call[] = [];
      found.forEach((rec, i) => {
        if (!rec) return;
        const [merchant, device, destination] = rec.split('\t');
        const at = fraud[i]!.labelled_at;
        const targets: [number, string | undefined][] = [
          [4, merchant],
          [2, device],
          [5, destination],
        ];
        for (const [k, id] of targets) if (id) calls.push([base(k, id), at, lateness]);
      });
      await run(redis, calls, (t, [b, at, l]) => t.fsLabelApply(b, at as number, l as number));
      return { applied: found.filter(Boolean).length };
    },
  };
}
