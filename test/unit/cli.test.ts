import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMAND_OPTIONS, optionRows, parseOptions, scoreOptions } from '../../cli/options.js';
import { isFraudstreamError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';

const root = projectRoot();
const bin = join(root, 'bin', 'fraudstream.js');
const commands = COMMAND_OPTIONS;

describe('fraudstream CLI (the compiled build)', () => {
  it.each(Object.entries(commands))('%s --help lists every flag and exits 0', (name, defs) => {
    const out = execFileSync(process.execPath, [bin, name, '--help'], { encoding: 'utf8' });
    expect(out).toContain(`Usage: fraudstream ${name}`);
    for (const d of defs) expect(out).toContain(`--${d.flag}`);
  });

  it('reports every bad flag at once and exits 2', () => {
    const r = spawnSync(process.execPath, [bin, 'simulate', '--days', 'ten', '--bogus', '--rate', 'x'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--days: "ten" is not a whole number');
    expect(r.stderr).toContain('unknown flag --bogus');
    expect(r.stderr).toContain('--rate: "x" is not a number');
  });

  it('refuses an unknown command', () => {
    const r = spawnSync(process.execPath, [bin, 'frobnicate'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });
});

describe('option parsing', () => {
  it('takes flags over environment variables over defaults', () => {
    const env = { FRAUDSTREAM_HTTP_PORT: '9000', FRAUDSTREAM_GROUP_ID: 'from-env' };
    const o = parseOptions(scoreOptions, ['--group-id', 'from-flag', '--no-include-features'], env);
    expect(o['group-id']).toBe('from-flag');
    expect(o['http-port']).toBe(9000);
    expect(o['include-features']).toBe(false);
    expect(o['max-batch']).toBe(512);
  });

  it('rejects a malformed environment variable with its name', () => {
    try {
      parseOptions(scoreOptions, [], { FRAUDSTREAM_MAX_BATCH: 'lots', FRAUDSTREAM_FROM_BEGINNING: 'maybe' });
      expect.unreachable();
    } catch (e) {
      expect(isFraudstreamError(e, 'BAD_CONFIG')).toBe(true);
      expect((e as Error).message).toContain('FRAUDSTREAM_MAX_BATCH');
      expect((e as Error).message).toContain('FRAUDSTREAM_FROM_BEGINNING');
    }
  });

  it('refuses a value below the least value of its option, naming both', () => {
    expect(() => parseOptions(scoreOptions, ['--checkpoint-ms', '-1'], {})).toThrow(
      /--checkpoint-ms: -1 is below its least value, 0/,
    );
    expect(() => parseOptions(scoreOptions, [], { FRAUDSTREAM_MAX_BATCH: '0' })).toThrow(
      /FRAUDSTREAM_MAX_BATCH: 0 is below its least value, 1/,
    );
    expect(parseOptions(scoreOptions, ['--checkpoint-ms', '0'], {})['checkpoint-ms']).toBe(0);
    expect(() => parseOptions(scoreOptions, [], { FRAUDSTREAM_MAX_CACHED_ENTITIES: '0' })).toThrow(
      /FRAUDSTREAM_MAX_CACHED_ENTITIES: 0 is below its least value, 1/,
    );
    expect(parseOptions(scoreOptions, [], {})['max-cached-entities']).toBe(200_000);
  });

  it('requires the required flags', () => {
    const defs = [{ flag: 'in', type: 'string' as const, required: true, help: 'x' }];
    expect(() => parseOptions(defs, [], {})).toThrow(/--in is required/);
  });
});

describe('README', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  it('documents every flag and environment variable of every command', () => {
    for (const defs of Object.values(commands)) {
      for (const d of defs) {
        expect(readme, `--${d.flag}`).toContain(`\`--${d.flag}\``);
        if (d.env) expect(readme, d.env).toContain(`\`${d.env}\``);
      }
    }
  });

  it("holds each command's option table exactly as cli/options.ts generates it (make readme)", () => {
    for (const [name, defs] of Object.entries(commands)) {
      const at = readme.indexOf(`#### \`fraudstream ${name}\``);
      expect(at, `README section of ${name}`).toBeGreaterThan(-1);
      const section = readme.slice(at).split(/\n#{2,4} /)[0]!;
      const rows = section
        .split('\n')
        .filter((l) => l.startsWith('| `--'))
        .map((l) =>
          l
            .slice(1, -1)
            .split(' | ')
            .map((c) => c.trim()),
        );
      expect(rows, name).toEqual(optionRows(defs));
    }
  });

  it('documents every environment variable the code reads', () => {
    const dirs = [
      'bench',
      'cli',
      'features',
      'lib',
      'models',
      'policy',
      'replay',
      'review',
      'schemas',
      'scorer',
      'scripts',
      'simulator',
      'test',
    ];
    const files = dirs.flatMap((d) =>
      readdirSync(join(root, d), { recursive: true, encoding: 'utf8' })
        .filter((f) => /\.(ts|mjs)$/.test(f))
        .map((f) => join(root, d, f)),
    );
    const read = new Set<string>();
    for (const f of files)
      for (const m of readFileSync(f, 'utf8').matchAll(/process\.env\.([A-Z][A-Z0-9_]+)/g)) read.add(m[1]!);
    expect(read.size).toBeGreaterThan(5);
    const missing = [...read].filter((v) => !readme.includes(`\`${v}\``) && v !== 'CI');
    expect(missing).toEqual([]);
  });

  it('gives the two commands for a fresh machine', () => {
    expect(readme).toContain('make demo');
    expect(readme).toContain('make test');
  });
});

describe('docs/features.md', () => {
  it('holds the catalogue table generated from the spec', async () => {
    const { featureTableMarkdown } = await import('../../features/index.js');
    // Compare cell by cell: a formatter may pad the columns.
    const rows = (md: string) =>
      md
        .split('\n')
        .filter((l) => l.startsWith('| ') && /^\| (\d+|#|-+) /.test(l))
        .map((l) =>
          l
            .split('|')
            .map((c) => (/^ *-+ *$/.test(c) ? '---' : c.trim()))
            .join('|'),
        );
    const doc = rows(readFileSync(join(root, 'docs', 'features.md'), 'utf8'));
    const want = rows(featureTableMarkdown());
    expect(want.length).toBeGreaterThan(100);
    expect(doc.slice(doc.indexOf(want[0]!))).toEqual(want);
  });
});
