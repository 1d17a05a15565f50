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
import { createProgress } from './progress.js';
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
          partitionsConcurrently: num(o, 'partitions-concurrently'),
          checkpointMs: num(o, 'checkpoint-ms'),
          redisUrl: str(o, 'redis-url'),
          featurePrefix: str(o, 'feature-prefix'),
          allowedLatenessMs: num(o, 'allowed-lateness-ms'),
          maxCachedEntities: num(o, 'max-cached-entities'),
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
      'Backtest: replay container files or a Kafka time range through the production features, model and policy on an isolated Redis namespace.',
    options: replayOptions,
    async run(o, log) {
      const schemas = createSchemas();
      const inDir = o['in'] as string | undefined;
      const from = o['from'] as string | undefined;
      if (!inDir === !from) throw new Error('replay needs either --in DIR or --from TIME --to TIME');
      const outDir = (o['out'] as string | undefined) ?? inDir;
      if (!outDir) throw new Error('replay --from needs --out DIR');
      // Ctrl-C (or SIGTERM) stops the replay after the batch in hand and cleans up as any failure does;
      // a second one exits at once, leaving what the first would have removed.
      const stop = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => {
        if (stop.signal.aborted) {
          process.stderr.write(
            `\nfraudstream replay: ${sig} again: exiting now; *.partial outputs and the namespace's keys may remain (the next replay with this namespace clears them)\n`,
          );
          process.exit(130);
        }
        process.stderr.write(
          `\nfraudstream replay: ${sig}: stopping after the current batch (again to exit at once)\n`,
        );
        stop.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const redis = new Redis(str(o, 'redis-url'), { lazyConnect: true, maxRetriesPerRequest: 2 });
      const runners: { close(): Promise<void> }[] = [];
      const progress = createProgress(process.stderr);
      try {
        await redis.connect();
        const featuresOnly = o['features-only'] as boolean;
        const names = createFeatureEngine({ redis, prefix: 'probe:' });
        // The champion decides with the production policy (--policy file, else a threshold); a
        // challenger is judged at its own manifest threshold.
        const load = async (path: string, threshold?: number, policyFile?: string) => {
          const model = await createModelRunner({
            manifestPath: resolve(path),
            featureNames: names.names,
            featureSpec: names.specHash,
          });
          runners.push(model);
          const options = policyFile
            ? loadPolicyFile(resolve(policyFile))
            : {
                version: str(o, 'policy-version'),
                thresholds: { default: threshold ?? model.manifest.threshold },
              };
          const policy = createPolicy(options);
          return { model, policy, threshold: options.thresholds.default };
        };
        const champion = featuresOnly
          ? undefined
          : await load(
              str(o, 'model'),
              o['threshold'] as number | undefined,
              o['policy'] as string | undefined,
            );
        const challenger = o['challenger'] ? await load(str(o, 'challenger')) : undefined;
        const kafka = from
          ? {
              kafka: new Kafka({
                clientId: 'fraudstream-replay',
                brokers: brokers(o),
                logLevel: logLevel.WARN,
                logCreator: kafkaLogCreator(log),
              }),
              schemas,
              logger: log,
              topics: {
                payments: str(o, 'topic-payments'),
                withdrawals: str(o, 'topic-withdrawals'),
                labels: str(o, 'topic-labels'),
              },
              from: parseTime('--from', from),
              to: parseTime('--to', o['to'] as string | undefined),
            }
          : undefined;
        const result = await runReplay({
          ...(inDir ? { inDir } : {}),
          ...(kafka ? { kafka } : {}),
          outDir,
          redis,
          catalog: schemas.catalog,
          logger: log,
          clock: systemClock,
          namespace: str(o, 'namespace'),
          maxCachedEntities: num(o, 'max-cached-entities'),
          batchSize: num(o, 'batch-size'),
          ...(champion ? { champion } : {}),
          ...(challenger ? { challenger } : {}),
          ...(o['emit-features'] ? { emitFeatures: str(o, 'emit-features') } : {}),
          onProgress: progress.update,
          signal: stop.signal,
        });
        progress.end();
        const m = result.metrics as { champion?: { overall: unknown } } | undefined;
        console.log(
          JSON.stringify({
            events: result.events,
            seconds: result.seconds,
            eventsPerSecond: result.eventsPerSecond,
            ...(m?.champion ? { overall: m.champion.overall } : {}),
          }),
        );
        return 0;
      } catch (e) {
        if (!isFraudstreamError(e, 'INTERRUPTED')) throw e;
        progress.end();
        console.error(`fraudstream replay: ${e.message} [${e.code}]`);
        return 130;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        for (const r of runners) await r.close();
        redis.disconnect();
      }
    },
  },
};

function parseTime(flag: string, v: string | undefined): number {
  if (v === undefined) throw new Error(`${flag} is required with --from`);
  const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t)) throw new Error(`${flag} ${v} is not a time (ISO 8601 or epoch ms)`);
  return t;
}

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
