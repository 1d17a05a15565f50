/** Seeded, fast, platform-independent PRNG (sfc32 seeded through splitmix32), so a seed fixes every byte. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  int(lo: number, hiInclusive: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
  normal(): number;
  /** exp(N(mu, sigma)). */
  logNormal(mu: number, sigma: number): number;
  poisson(lambda: number): number;
  /** An independent stream derived from this one's seed and a label. */
  fork(label: string): Rng;
}

function splitmix32(a: number): () => number {
  return () => {
    a |= 0;
    a = (a + 0x9e3779b9) | 0;
    let t = a ^ (a >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t = t ^ (t >>> 15);
    t = Math.imul(t, 0x735a2d97);
    return (t ^ (t >>> 15)) >>> 0;
  };
}

function hashLabel(seed: number, label: string): number {
  let h = seed ^ 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export function createRng(seed: number): Rng {
  const sm = splitmix32(seed);
  let a = sm(),
    b = sm(),
    c = sm(),
    d = sm();
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  const rng: Rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
    chance: (p) => next() < p,
    normal: () => {
      const u = 1 - next();
      const v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
    logNormal: (mu, sigma) => Math.exp(mu + sigma * rng.normal()),
    poisson: (lambda) => {
      // Knuth for the small rates used here.
      const l = Math.exp(-lambda);
      let k = 0;
      let p = 1;
      do {
        k++;
        p *= next();
      } while (p > l);
      return k - 1;
    },
    fork: (label) => createRng(hashLabel(seed, label)),
  };
  return rng;
}
