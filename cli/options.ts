import { fail } from '../lib/errors.js';

/**
 * Every flag of every subcommand, with its environment variable and default, declared once. --help,
 * parsing and the README's table (checked by test/unit/docs.test.ts) all come from here.
 */
export interface OptionDef {
  flag: string;
  env?: string;
  type: 'string' | 'int' | 'number' | 'boolean';
  default?: string | number | boolean;
  help: string;
  /** Parsing fails when the option is given neither as a flag, an env var nor a default. */
  required?: boolean;
  /** int and number: the least value accepted. */
  min?: number;
}

export type OptionValues = Record<string, string | number | boolean | undefined>;

export const common: OptionDef[] = [
  {
    flag: 'log-level',
    env: 'FRAUDSTREAM_LOG_LEVEL',
    type: 'string',
    default: 'info',
    help: 'pino log level: trace, debug, info, warn, error, silent',
  },
];

export const kafkaOptions: OptionDef[] = [
  {
    flag: 'brokers',
    env: 'FRAUDSTREAM_KAFKA_BROKERS',
    type: 'string',
    default: '127.0.0.1:19092',
    help: 'Kafka bootstrap servers, comma-separated',
  },
  {
    flag: 'topic-payments',
    env: 'FRAUDSTREAM_TOPIC_PAYMENTS',
    type: 'string',
    default: 'payments',
    help: 'input topic of PaymentEvent records',
  },
  {
    flag: 'topic-withdrawals',
    env: 'FRAUDSTREAM_TOPIC_WITHDRAWALS',
    type: 'string',
    default: 'withdrawals',
    help: 'input topic of WithdrawalEvent records',
  },
];

export const redisOptions: OptionDef[] = [
  {
    flag: 'redis-url',
    env: 'FRAUDSTREAM_REDIS_URL',
    type: 'string',
    default: 'redis://127.0.0.1:16379',
    help: 'Redis of the feature store',
  },
];

export const modelOptions: OptionDef[] = [
  {
    flag: 'model',
    env: 'FRAUDSTREAM_MODEL',
    type: 'string',
    default: 'models/default/manifest.json',
    help: 'model manifest (the .onnx named in it sits beside it)',
  },
  {
    flag: 'threshold',
    env: 'FRAUDSTREAM_THRESHOLD',
    type: 'number',
    help: "flag when score >= this; default: the manifest's threshold",
  },
  {
    flag: 'policy-version',
    env: 'FRAUDSTREAM_POLICY_VERSION',
    type: 'string',
    default: 'threshold-v1',
    help: 'policy_version written into decisions (when no --policy file is given)',
  },
  {
    flag: 'policy',
    env: 'FRAUDSTREAM_POLICY',
    type: 'string',
    help: 'policy file (docs/policy.md): thresholds, block/allow lists, amount limits, degraded mode; replaces --threshold and --policy-version',
  },
];

/** The feature engine's in-process cache bound (docs/operations.md, "Memory"). */
const cacheOption: OptionDef = {
  flag: 'max-cached-entities',
  env: 'FRAUDSTREAM_MAX_CACHED_ENTITIES',
  type: 'int',
  default: 200_000,
  min: 1,
  help: 'entity states the feature engine keeps in memory (least recently used go first); about 6 KB each, docs/operations.md',
};

export const scoreOptions: OptionDef[] = [
  ...kafkaOptions,
  {
    flag: 'topic-decisions',
    env: 'FRAUDSTREAM_TOPIC_DECISIONS',
    type: 'string',
    default: 'decisions',
    help: 'output topic of Decision records',
  },
  {
    flag: 'topic-labels',
    env: 'FRAUDSTREAM_TOPIC_LABELS',
    type: 'string',
    default: 'labels',
    help: 'Label records (verdicts, chargebacks) feeding the label-informed risk features',
  },
  {
    flag: 'topic-dead-letter',
    env: 'FRAUDSTREAM_TOPIC_DEAD_LETTER',
    type: 'string',
    default: 'dead-letter',
    help: 'where undecodable or invalid input goes, with the reason in headers',
  },
  {
    flag: 'group-id',
    env: 'FRAUDSTREAM_GROUP_ID',
    type: 'string',
    default: 'fraudstream-scorer',
    help: 'Kafka consumer group of the scorers',
  },
  {
    flag: 'from-beginning',
    env: 'FRAUDSTREAM_FROM_BEGINNING',
    type: 'boolean',
    default: true,
    help: 'a new consumer group starts at the earliest offsets (false: the latest)',
  },
  {
    flag: 'max-batch',
    env: 'FRAUDSTREAM_MAX_BATCH',
    type: 'int',
    default: 512,
    min: 1,
    help: 'most records decided and produced together',
  },
  {
    flag: 'partitions-concurrently',
    env: 'FRAUDSTREAM_PARTITIONS_CONCURRENTLY',
    type: 'int',
    default: 3,
    min: 1,
    help: "input partitions decided at the same time (each partition's records stay in order)",
  },
  {
    flag: 'checkpoint-ms',
    env: 'FRAUDSTREAM_CHECKPOINT_MS',
    type: 'int',
    default: 1000,
    min: 0,
    help: 'least time between checkpoints: feature changes written to Redis, then offsets committed (0: every batch)',
  },
  ...redisOptions,
  {
    flag: 'feature-prefix',
    env: 'FRAUDSTREAM_FEATURE_PREFIX',
    type: 'string',
    default: 'fs:',
    help: 'Redis key prefix of the live feature store; one scorer process per prefix (a lease guards it)',
  },
  {
    flag: 'allowed-lateness-ms',
    env: 'FRAUDSTREAM_ALLOWED_LATENESS_MS',
    type: 'int',
    default: 86_400_000,
    help: "how far (event time) behind an entity's newest event an event may be and still update its windows",
  },
  cacheOption,
  ...modelOptions,
  {
    flag: 'challenger',
    env: 'FRAUDSTREAM_CHALLENGER',
    type: 'string',
    help: 'manifest of a shadow model scored on every event, recorded in metrics and decisions, never acted on',
  },
  {
    flag: 'include-features',
    env: 'FRAUDSTREAM_INCLUDE_FEATURES',
    type: 'boolean',
    default: true,
    help: 'write the feature vector into each decision',
  },
  {
    flag: 'http-host',
    env: 'FRAUDSTREAM_HTTP_HOST',
    type: 'string',
    default: '127.0.0.1',
    help: 'address of the HTTP server (health, readiness, metrics)',
  },
  {
    flag: 'http-port',
    env: 'FRAUDSTREAM_HTTP_PORT',
    type: 'int',
    default: 18080,
    help: 'port of the HTTP server (0 = any free port)',
  },
  {
    flag: 'api-keys',
    env: 'FRAUDSTREAM_API_KEYS',
    type: 'string',
    help: 'analyst and admin API keys, comma-separated role:name:key (role analyst or admin); none: the review and admin API answer 401',
  },
  {
    flag: 'review',
    env: 'FRAUDSTREAM_REVIEW',
    type: 'boolean',
    default: true,
    help: 'build the review queue from the decisions topic and serve it with the analyst page at /review/',
  },
  {
    flag: 'lease-seconds',
    env: 'FRAUDSTREAM_LEASE_SECONDS',
    type: 'int',
    default: 300,
    help: 'how long a claimed case stays with its analyst',
  },
  {
    flag: 'http-body-limit',
    env: 'FRAUDSTREAM_HTTP_BODY_LIMIT',
    type: 'int',
    default: 65_536,
    help: 'largest HTTP request body in bytes (larger: 413)',
  },
  ...common,
];

/**
 * Parses --api-keys: `role:name:key,...`. Problems name the entry by position, never its key.
 */
export function parseApiKeys(
  raw: string | undefined,
): { role: 'analyst' | 'admin'; name: string; key: string }[] {
  if (!raw) return [];
  const problems: string[] = [];
  const out: { role: 'analyst' | 'admin'; name: string; key: string }[] = [];
  raw.split(',').forEach((entry, i) => {
    const [role, name, ...rest] = entry.trim().split(':');
    const key = rest.join(':');
    if (role !== 'analyst' && role !== 'admin')
      problems.push(`--api-keys entry ${i + 1}: role must be analyst or admin`);
    else if (!name || !/^[\w.@-]{1,64}$/.test(name))
      problems.push(`--api-keys entry ${i + 1}: name must be 1-64 of [A-Za-z0-9_.@-]`);
    else if (key.length < 16)
      problems.push(`--api-keys entry ${i + 1}: the key must be at least 16 characters`);
    else out.push({ role, name, key });
  });
  if (new Set(out.map((k) => k.key)).size !== out.length)
    problems.push('--api-keys: two entries share a key');
  if (problems.length) fail('BAD_CONFIG', problems.join('; '), { problems });
  return out;
}

export const simulateOptions: OptionDef[] = [
  { flag: 'days', type: 'int', default: 30, help: 'days of history to generate' },
  { flag: 'accounts', type: 'int', default: 2000, help: 'number of accounts' },
  { flag: 'seed', type: 'int', default: 1, help: 'random seed: the same seed gives byte-identical files' },
  {
    flag: 'start',
    type: 'string',
    default: '2026-01-01',
    help: 'first day of the history (UTC date); --live ignores it and ends the history now',
  },
  {
    flag: 'fraud-rate',
    type: 'number',
    default: 0.002,
    help: 'chance per account per day that a fraud scenario starts',
  },
  {
    flag: 'out',
    type: 'string',
    help: 'folder for payments.avro, withdrawals.avro, labels.avro, scenarios.avro (not with --live)',
  },
  {
    flag: 'live',
    type: 'boolean',
    default: false,
    help: 'produce to Kafka at --rate instead of writing files',
  },
  { flag: 'rate', type: 'number', default: 1000, help: '--live: events per second' },
  {
    flag: 'duration',
    type: 'number',
    default: 0,
    help: '--live: stop after this many seconds (0: when the history ends)',
  },
  ...kafkaOptions,
  ...common,
];

export const replayOptions: OptionDef[] = [
  {
    flag: 'in',
    type: 'string',
    help: 'folder holding payments.avro, withdrawals.avro, labels.avro (and scenarios.avro); or use --from/--to',
  },
  {
    flag: 'from',
    type: 'string',
    help: 'replay the Kafka topics from this time (ISO 8601 or epoch ms, by record timestamp) instead of --in',
  },
  { flag: 'to', type: 'string', help: 'with --from: up to this time (exclusive)' },
  {
    flag: 'out',
    type: 'string',
    help: 'folder for decisions.avro, metrics.json and report.html (default: --in, required with --from)',
  },
  {
    flag: 'emit-features',
    type: 'string',
    help: "write every event's feature vector and final label to this Arrow IPC (Feather v2) file",
  },
  {
    flag: 'features-only',
    type: 'boolean',
    default: false,
    help: 'compute and emit features without a model (needs --emit-features)',
  },
  {
    flag: 'challenger',
    type: 'string',
    help: "a second model's manifest, scored on the same pass and reported side by side",
  },
  {
    flag: 'namespace',
    type: 'string',
    default: 'replay',
    help: 'isolated Redis key namespace, cleared before the run',
  },
  { flag: 'batch-size', type: 'int', default: 512, help: 'events per feature round trip and model run' },
  cacheOption,
  {
    flag: 'topic-labels',
    env: 'FRAUDSTREAM_TOPIC_LABELS',
    type: 'string',
    default: 'labels',
    help: 'with --from: the Label topic (read up to --to)',
  },
  ...kafkaOptions,
  ...redisOptions,
  ...modelOptions,
  ...common,
];

function convert(
  def: OptionDef,
  raw: string | boolean,
  source: string,
  problems: string[],
): string | number | boolean | undefined {
  if (def.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    problems.push(`${source}: ${JSON.stringify(raw)} is not a boolean (true/false)`);
    return undefined;
  }
  if (typeof raw === 'boolean') {
    problems.push(`${source} needs a value`);
    return undefined;
  }
  if (def.type === 'int') {
    if (!/^-?\d+$/.test(raw.trim())) {
      problems.push(`${source}: ${JSON.stringify(raw)} is not a whole number`);
      return undefined;
    }
    return atLeast(def, Number(raw), source, problems);
  }
  if (def.type === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) {
      problems.push(`${source}: ${JSON.stringify(raw)} is not a number`);
      return undefined;
    }
    return atLeast(def, n, source, problems);
  }
  return raw;
}

function atLeast(def: OptionDef, n: number, source: string, problems: string[]): number | undefined {
  if (def.min !== undefined && n < def.min) {
    problems.push(`${source}: ${n} is below its least value, ${def.min}`);
    return undefined;
  }
  return n;
}

/**
 * Flags win over environment variables, which win over defaults. Every problem is reported at once
 * (FS_ERR_BAD_CONFIG). Returns values keyed by flag name.
 */
export function parseOptions(
  defs: readonly OptionDef[],
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): OptionValues {
  const byFlag = new Map(defs.map((d) => [d.flag, d]));
  const problems: string[] = [];
  const given = new Map<string, string | boolean>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument ${JSON.stringify(arg)}`);
      continue;
    }
    let name = arg.slice(2);
    let value: string | boolean | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let def = byFlag.get(name);
    if (!def && name.startsWith('no-') && byFlag.get(name.slice(3))?.type === 'boolean') {
      def = byFlag.get(name.slice(3));
      name = name.slice(3);
      value = false;
    }
    if (!def) {
      problems.push(`unknown flag --${name}`);
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (def.type === 'boolean')
        value = next !== undefined && /^(true|false)$/.test(next) ? (i++, next) : true;
      else if (next === undefined || next.startsWith('--')) value = true;
      else value = (i++, next);
    }
    given.set(name, value);
  }
  const out: OptionValues = {};
  for (const def of defs) {
    let v: string | number | boolean | undefined;
    if (given.has(def.flag)) v = convert(def, given.get(def.flag)!, `--${def.flag}`, problems);
    else if (def.env && env[def.env] !== undefined && env[def.env] !== '')
      v = convert(def, env[def.env]!, def.env, problems);
    else v = def.default;
    if (v === undefined && def.required) problems.push(`--${def.flag} is required`);
    out[def.flag] = v;
  }
  if (problems.length) fail('BAD_CONFIG', problems.join('; '), { problems });
  return out;
}

export function usage(command: string, summary: string, defs: readonly OptionDef[]): string {
  const lines = [`Usage: fraudstream ${command} [flags]`, '', summary, '', 'Flags:'];
  for (const d of defs) {
    const arg = d.type === 'boolean' ? '' : ` <${d.type}>`;
    const dflt = d.default !== undefined ? ` (default: ${d.default})` : d.required ? ' (required)' : '';
    lines.push(`  --${d.flag}${arg}`.padEnd(30) + ` ${d.help}${dflt}` + (d.env ? ` [env ${d.env}]` : ''));
  }
  lines.push(`  --help`.padEnd(30) + ' show this help');
  return lines.join('\n');
}

/** Every command and its options, for --help, the README tables and their check. */
export const COMMAND_OPTIONS: Readonly<Record<string, readonly OptionDef[]>> = {
  score: scoreOptions,
  simulate: simulateOptions,
  replay: replayOptions,
};

/** One row per option, as the README's table of a command lists it (cells unpadded). */
export function optionRows(defs: readonly OptionDef[]): string[][] {
  return defs.map((d) => [
    `\`--${d.flag}\`${d.type === 'boolean' ? '' : ` <${d.type}>`}`,
    d.env ? `\`${d.env}\`` : '',
    d.default !== undefined && d.default !== '' ? `\`${String(d.default)}\`` : d.required ? 'required' : '',
    d.help,
  ]);
}

/** The README table of a command's options, generated from its definitions. */
export function optionsTableMarkdown(defs: readonly OptionDef[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(['flag', 'environment variable', 'default', 'meaning']),
    line(['---', '---', '---', '---']),
    ...optionRows(defs).map(line),
  ].join('\n');
}
