/** A one-line progress bar with rate and ETA on a terminal (nothing when stderr is not a TTY). */
export interface Progress {
  update(done: number, total: number | null): void;
  end(): void;
}

export function formatProgress(done: number, total: number | null, seconds: number, width = 30): string {
  const rate = seconds > 0 ? done / seconds : 0;
  const rateText = `${Math.round(rate).toLocaleString('en-US')} ev/s`;
  if (!total) return `${done.toLocaleString('en-US')} events ${rateText}`;
  const frac = Math.min(1, done / total);
  const filled = Math.round(frac * width);
  const eta = rate > 0 ? Math.max(0, (total - done) / rate) : NaN;
  const etaText = Number.isFinite(eta)
    ? `${Math.floor(eta / 60)}:${String(Math.round(eta % 60)).padStart(2, '0')}`
    : '?';
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(1)}% ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${rateText} ETA ${etaText}`;
}

export function createProgress(out: NodeJS.WriteStream): Progress {
  const started = performance.now();
  let last = 0;
  let shown = false;
  return {
    update(done, total) {
      if (!out.isTTY) return;
      const now = performance.now();
      if (now - last < 200 && done !== total) return;
      last = now;
      shown = true;
      out.write(`\r${formatProgress(done, total, (now - started) / 1000)}\x1b[K`);
    },
    end() {
      if (shown) out.write('\n');
    },
  };
}
