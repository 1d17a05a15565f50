import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../lib/paths.js';

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  /** The bare reference measured in the same run (null when there is none). */
  baseline: number | null;
  ratio: number | null;
}

/** Replaces this suite's rows in bench/results.json and prints them as a table. */
export function writeRows(suite: string, rows: BenchRow[]): void {
  const dir = join(projectRoot(), 'bench');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'results.json');
  const all = existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as (BenchRow & { suite?: string })[])
    : [];
  const kept = all.filter((r) => r.suite !== suite);
  const round = (x: number | null) => (x === null ? null : Math.round(x * 1000) / 1000);
  const out = rows.map((r) => ({
    suite,
    ...r,
    value: round(r.value)!,
    baseline: round(r.baseline),
    ratio: round(r.ratio),
  }));
  writeFileSync(path, JSON.stringify([...kept, ...out], null, 2) + '\n');
  console.log(`\n${suite}`);
  console.log('| name | value | unit | baseline | ratio |\n| --- | --- | --- | --- | --- |');
  for (const r of out)
    console.log(`| ${r.name} | ${r.value} | ${r.unit} | ${r.baseline ?? '–'} | ${r.ratio ?? '–'} |`);
}
