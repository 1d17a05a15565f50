import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * The project root: the nearest folder above this module holding package.json and schemas/.
 * Works both from the TypeScript sources (tests, tsx) and from the compiled dist/ tree.
 */
export function projectRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'schemas', 'catalog.json'))) {
      cached = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('fraudstream: cannot find the project root (package.json + schemas/)');
    dir = up;
  }
}
