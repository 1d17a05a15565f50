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
