/** Injectable time source. Wall time is only used for `decided_at` and latency, never for features. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Monotonic microseconds, for measuring latency. */
  monoMicros(): bigint;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monoMicros: () => process.hrtime.bigint() / 1000n,
};
