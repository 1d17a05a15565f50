/**
 * Rewrites the option table under each `#### \`fraudstream <command>\`` heading of README.md from
 * cli/options.ts (`make readme`, then prettier aligns it). test/unit/cli.test.ts checks the result.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMAND_OPTIONS, optionsTableMarkdown } from '../cli/options.js';
import { projectRoot } from '../lib/paths.js';

const path = join(projectRoot(), 'README.md');
const lines = readFileSync(path, 'utf8').split('\n');
for (const [name, defs] of Object.entries(COMMAND_OPTIONS)) {
  const at = lines.indexOf(`#### \`fraudstream ${name}\``);
  if (at < 0) throw new Error(`README.md has no heading for fraudstream ${name}`);
  let start = at + 1;
  while (start < lines.length && !lines[start]!.startsWith('|')) start++;
  let end = start;
  while (end < lines.length && lines[end]!.startsWith('|')) end++;
  lines.splice(start, end - start, ...optionsTableMarkdown(defs).split('\n'));
}
writeFileSync(path, lines.join('\n'));
