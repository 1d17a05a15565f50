/**
 * A one-line progress bar with rate and ETA on a terminal (nothing when stderr is not a TTY).
 *
 * The rate is over the last few seconds of progress, not since the start: a replay spends its first
 * second or so loading the model and reading its input's ids before the first batch, and a rate since
 * the start showed "540 ev/s ETA 31:20" for a run that took 16 s. It also follows a run that slows
 * down or speeds up.
 */
export interface Progress {
  update(done: number, total: number | null): void;
  end(): void;
}

/** How far back the rate looks. */
export const RATE_WINDOW_MS = 5000;
/** Progress over less time than this gives no rate yet (shown as "?"). */
export const RATE_MIN_SPAN_MS = 100;

function clockText(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** `rate`: events per second, or null while there is none yet. */
export function formatProgress(done: number, total: number | null, rate: number | null, width = 30): string {
  const rateText = `${rate === null ? '?' : Math.round(rate).toLocaleString('en-US')} ev/s`;
  if (!total) return `${done.toLocaleString('en-US')} events ${rateText}`;
  const frac = Math.min(1, done / total);
  const filled = Math.round(frac * width);
  const etaText = done >= total ? '0:00' : rate !== null && rate > 0 ? clockText((total - done) / rate) : '?';
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(1)}% ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${rateText} ETA ${etaText}`;
}

/**
 * The rate over a sliding window of (time, done) samples: from the oldest sample in the last
 * `windowMs` to the newest. Null until the samples span `minSpanMs`.
 */
export function createRateMeter(windowMs = RATE_WINDOW_MS, minSpanMs = RATE_MIN_SPAN_MS) {
  const t: number[] = [];
  const n: number[] = [];
  let head = 0;
  return {
    /** Adds a sample and answers the rate in events per second. */
    add(now: number, done: number): number | null {
      t.push(now);
      n.push(done);
      // Keep one sample at or before the window's start, so the window is always covered.
      while (t.length - head > 2 && t[head + 1]! <= now - windowMs) head++;
      if (head > 1024) {
        t.splice(0, head);
        n.splice(0, head);
        head = 0;
      }
      const span = now - t[head]!;
      return span >= minSpanMs ? ((done - n[head]!) * 1000) / span : null;
    },
  };
}

export function createProgress(
  out: Pick<NodeJS.WriteStream, 'isTTY' | 'write'>,
  now: () => number = () => performance.now(),
): Progress {
  const meter = createRateMeter();
  let last = -Infinity;
  let shown = false;
  return {
    update(done, total) {
      if (!out.isTTY) return;
      const t = now();
      const rate = meter.add(t, done);
      if (t - last < 200 && done !== total) return;
      last = t;
      shown = true;
      out.write(`\r${formatProgress(done, total, rate)}\x1b[K`);
    },
    end() {
      if (shown) out.write('\n');
    },
  };
}
