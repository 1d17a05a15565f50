import { resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { systemClock } from '../lib/clock.js';
import { isFraudstreamError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { createFeatureEngine } from '../features/index.js';
import { createModelRunner } from '../models/index.js';
import { createPolicy, loadPolicyFile } from '../policy/index.js';
import { runReplay } from '../replay/index.js';
import { createSchemas } from '../schemas/index.js';
import { kafkaLogCreator, startScoringService, type ScoringService } from '../scorer/index.js';
import { DAY, produceLive, writeSimulationFiles } from '../simulator/index.js';
import {
  parseApiKeys,
  parseOptions,
  replayOptions,
  scoreOptions,
  simulateOptions,
  usage,
  type OptionDef,
  type OptionValues,
} from './options.js';

interface Command {
  summary: string;
  options: OptionDef[];
  run(o: OptionValues, log: Logger): Promise<number>;
}

const str = (o: OptionValues, k: string) => o[k] as string;
const num = (o: OptionValues, k: string) => o[k] as number;
const brokers = (o: OptionValues) =>
  str(o, 'brokers')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);

function untilSignal(): Promise<string> {
  return new Promise((res) => {
    process.once('SIGTERM', () => res('SIGTERM'));
    process.once('SIGINT', () => res('SIGINT'));
  });
}

const commands: Record<string, Command> = {
  score: {
    summary:
      'Run the scoring service: Kafka consumer (payments, withdrawals -> decisions) and the HTTP server.',
    options: scoreOptions,
    async run(o, log) {
      // Signals are handled from the first moment: a SIGTERM during start-up drains once started, a
      // SIGHUP swaps the model once started (Node's default for both would kill the process).
      const signalled = untilSignal();
      let service: ScoringService | undefined = undefined;
      let hupPending = false;
      // SIGHUP: hot swap to the manifest at --model, re-read; a failure is logged and the old model serves on.
      const onHup = () => {
        if (!service) {
          hupPending = true;
          log.info('SIGHUP during start-up: the model is reloaded once the service is up');
          return;
        }
        log.info('SIGHUP: reloading the model');
        service.reloadModel().catch(() => undefined);
      };
      process.on('SIGHUP', onHup);
      service = await startScoringService(
        {
          brokers: brokers(o),
          groupId: str(o, 'group-id'),
          topics: {
            payments: str(o, 'topic-payments'),
            withdrawals: str(o, 'topic-withdrawals'),
            decisions: str(o, 'topic-decisions'),
            labels: str(o, 'topic-labels'),
            deadLetter: str(o, 'topic-dead-letter'),
          },
          fromBeginning: o['from-beginning'] as boolean,
          maxBatch: num(o, 'max-batch'),
          redisUrl: str(o, 'redis-url'),
          featurePrefix: str(o, 'feature-prefix'),
          allowedLatenessMs: num(o, 'allowed-lateness-ms'),
          modelManifest: resolve(str(o, 'model')),
          ...(o['challenger'] ? { challengerManifest: resolve(str(o, 'challenger')) } : {}),
          ...(o['threshold'] !== undefined ? { threshold: num(o, 'threshold') } : {}),
          policyVersion: str(o, 'policy-version'),
          includeFeatures: o['include-features'] as boolean,
          http: { host: str(o, 'http-host'), port: num(o, 'http-port') },
          ...(o['policy'] !== undefined ? { policyFile: resolve(str(o, 'policy')) } : {}),
          apiKeys: parseApiKeys(o['api-keys'] as string | undefined),
          review: o['review'] as boolean,
          leaseMs: num(o, 'lease-seconds') * 1000,
          bodyLimit: num(o, 'http-body-limit'),
        },
        log,
      );
      log.info('scoring service up (SIGHUP reloads the model, SIGTERM drains)');
      if (hupPending) onHup();
      const sig = await signalled;
      process.off('SIGHUP', onHup);
      log.info({ signal: sig }, 'draining');
      await service.stop();
      log.info('stopped cleanly');
      return 0;
    },
  },

  simulate: {
    summary:
      'Generate a seeded, labelled history: Avro container files (--out), or a live stream to Kafka (--live).',
    options: simulateOptions,
    async run(o, log) {
      const schemas = createSchemas();
      const live = o['live'] as boolean;
      const days = num(o, 'days');
      const start = live
        ? Math.floor(Date.now() / DAY) * DAY - days * DAY
        : Date.parse(`${str(o, 'start')}T00:00:00Z`);
      if (!Number.isFinite(start)) throw new Error(`--start ${str(o, 'start')} is not a date (YYYY-MM-DD)`);
      const sim = {
        seed: num(o, 'seed'),
        accounts: num(o, 'accounts'),
        days,
        start,
        fraudRate: num(o, 'fraud-rate'),
      };
      if (live) {
        const kafka = new Kafka({
          clientId: 'fraudstream-simulate',
          brokers: brokers(o),
          logLevel: logLevel.INFO,
          logCreator: kafkaLogCreator(log),
        });
        const ac = new AbortController();
        void untilSignal().then(() => ac.abort());
        const { sent } = await produceLive({
          kafka,
          codec: schemas.codec,
          logger: log,
          topics: { payments: str(o, 'topic-payments'), withdrawals: str(o, 'topic-withdrawals') },
          sim,
          rate: num(o, 'rate'),
          durationS: num(o, 'duration'),
          signal: ac.signal,
        });
        console.log(JSON.stringify({ sent }));
        return 0;
      }
      const out = o['out'] as string | undefined;
      if (!out) throw new Error('simulate needs --out DIR (or --live)');
      const summary = await writeSimulationFiles(schemas.catalog, sim, out);
      console.log(JSON.stringify({ out, ...summary }));
      return 0;
    },
  },

  replay: {
    summary:
      'Backtest: replay container files through the production features, model and policy on an isolated Redis namespace.',
    options: replayOptions,
    async run(o, log) {
      const schemas = createSchemas();
      const redis = new Redis(str(o, 'redis-url'), { lazyConnect: true, maxRetriesPerRequest: 2 });
      await redis.connect();
      try {
        const featuresOnly = o['features-only'] as boolean;
        const names = createFeatureEngine({ redis, prefix: 'probe:' });
        const model = featuresOnly
          ? undefined
          : await createModelRunner({
              manifestPath: resolve(str(o, 'model')),
              featureNames: names.names,
              featureSpec: names.specHash,
            });
        const policy = model
          ? createPolicy(
              o['policy'] !== undefined
                ? loadPolicyFile(resolve(str(o, 'policy')))
                : {
                    version: str(o, 'policy-version'),
                    thresholds: {
                      default: (o['threshold'] as number | undefined) ?? model.manifest.threshold,
                    },
                  },
            )
          : undefined;
        const tty = process.stderr.isTTY;
        let last = 0;
        const result = await runReplay({
          inDir: str(o, 'in'),
          outDir: (o['out'] as string | undefined) ?? str(o, 'in'),
          redis,
          catalog: schemas.catalog,
          logger: log,
          clock: systemClock,
          namespace: str(o, 'namespace'),
          batchSize: num(o, 'batch-size'),
          ...(model ? { model } : {}),
          ...(policy ? { policy } : {}),
          ...(o['emit-features'] ? { emitFeatures: str(o, 'emit-features') } : {}),
          onProgress: (n) => {
            if (tty && n - last >= 20_000) {
              last = n;
              process.stderr.write(`\rreplayed ${n} events`);
            }
          },
        });
        if (tty) process.stderr.write('\n');
        await model?.close();
        console.log(JSON.stringify(result));
        return 0;
      } finally {
        redis.disconnect();
      }
    },
  },
};

function topUsage(): string {
  const lines = ['Usage: fraudstream <command> [flags]', '', 'Commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push('', 'Run `fraudstream <command> --help` for its flags.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(topUsage());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    console.error(`fraudstream: unknown command ${JSON.stringify(name)}\n\n${topUsage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(usage(name, cmd.summary, cmd.options));
    return 0;
  }
  let o: OptionValues;
  try {
    o = parseOptions(cmd.options, rest, process.env);
  } catch (e) {
    console.error(
      `fraudstream ${name}: ${(e as Error).message}\nRun \`fraudstream ${name} --help\` for the flags.`,
    );
    return 2;
  }
  const log = createLogger({ level: str(o, 'log-level'), name: `fraudstream-${name}` });
  try {
    return await cmd.run(o, log);
  } catch (e) {
    const code = isFraudstreamError(e) ? ` [${e.code}]` : '';
    console.error(`fraudstream ${name}: ${(e as Error).message}${code}`);
    log.error({ err: e }, 'command failed');
    log.flush();
    return 1;
  }
}
