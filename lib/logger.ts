import { logLevel, type LogEntry } from 'kafkajs';
import { destination, pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs to stderr (stdout stays free for a command's own output). */
export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino(
    { name: opts.name ?? 'fraudstream', level: opts.level ?? 'info', base: { pid: process.pid } },
    destination({ fd: 2, sync: false }),
  );
}

export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Maps kafkajs's own log lines onto our structured logger. */
export function kafkaLogCreator(logger: Logger) {
  const log = logger.child({ component: 'kafkajs' });
  return () =>
    ({ level, log: entry }: LogEntry) => {
      const { message, ...rest } = entry;
      if (level === logLevel.ERROR) log.error(rest, message);
      else if (level === logLevel.WARN) log.warn(rest, message);
      else if (level === logLevel.INFO) log.debug(rest, message);
      else log.trace(rest, message);
    };
}
