import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';

const root = projectRoot();
/** The folders whose code registers metrics on the scorer's registry. */
const SOURCES = ['scorer', 'review', 'features', 'models', 'policy', 'replay', 'lib'];

/** Every `fraudstream_*` metric name the code registers (prom-client's `name: '...'`). */
function registered(): Set<string> {
  const names = new Set<string>();
  for (const dir of SOURCES) {
    for (const f of readdirSync(join(root, dir))) {
      if (!f.endsWith('.ts')) continue;
      const src = readFileSync(join(root, dir, f), 'utf8');
      for (const m of src.matchAll(/name: '(fraudstream_[a-z_]+)'/g)) names.add(m[1]!);
    }
  }
  return names;
}

describe('the metrics the docs and the dashboard name are the ones the code registers', () => {
  const code = registered();
  const ops = readFileSync(join(root, 'docs', 'operations.md'), 'utf8');
  const table = ops.slice(ops.indexOf('## Metrics'), ops.indexOf('\n## ', ops.indexOf('## Metrics') + 1));
  const documented = new Set([...table.matchAll(/^\| `(fraudstream_[a-z_]+)`/gm)].map((m) => m[1]!));

  it('finds the metrics at all (the scan itself works)', () => {
    expect(code.size).toBeGreaterThan(10);
    expect(code.has('fraudstream_events_total')).toBe(true);
  });

  it('docs/operations.md lists every registered metric, and no other', () => {
    expect([...code].filter((n) => !documented.has(n)).sort()).toEqual([]);
    expect([...documented].filter((n) => !code.has(n)).sort()).toEqual([]);
  });

  it('the Grafana dashboard queries only registered metrics', () => {
    const dash = readFileSync(join(root, 'dashboards', 'fraudstream.json'), 'utf8');
    const used = new Set(
      [...dash.matchAll(/(fraudstream_[a-z_]+?)(?:_bucket|_count|_sum)?\b/g)].map((m) => m[1]!),
    );
    // prom-client's default metrics carry the prefix too.
    const unknown = [...used].filter(
      (n) => !code.has(n) && !n.startsWith('fraudstream_process_') && !n.startsWith('fraudstream_nodejs_'),
    );
    expect(unknown.sort()).toEqual([]);
  });
});
