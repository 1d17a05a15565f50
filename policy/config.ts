import { readFileSync } from 'node:fs';
import { fail } from '../lib/errors.js';
import { LIST_ENTITIES, type PolicyOptions } from './policy.js';

/** 1-based line of a character offset. */
function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Line of the value at a key path (`["lists", "block", "ip"]`), found by walking the keys in order. */
function lineOfPath(text: string, path: readonly (string | number)[]): number {
  let at = 0;
  for (const k of path) {
    if (typeof k === 'number') continue;
    const re = new RegExp(`"${k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\s*:`, 'g');
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) break;
    at = m.index;
  }
  return lineAt(text, at);
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const isObj = (v: Json | undefined): v is { [k: string]: Json } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const EVENT_TYPES = ['PAYMENT', 'WITHDRAWAL'] as const;

/**
 * Reads a policy file (docs/policy.md). Any problem stops start-up with FS_ERR_BAD_POLICY naming the
 * file, the line and what is wrong; every problem is reported at once.
 */
export function loadPolicyFile(path: string): PolicyOptions {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return fail('BAD_POLICY', `${path}: cannot read: ${(e as Error).message}`, { file: path }, e);
  }
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (e) {
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    const line = pos ? lineAt(text, Number(pos[1])) : 1;
    return fail('BAD_POLICY', `${path}:${line}: not valid JSON: ${msg}`, { file: path, line }, e);
  }
  const problems: { line: number; what: string }[] = [];
  const bad = (p: (string | number)[], what: string) =>
    problems.push({ line: lineOfPath(text, p), what: `${p.join('.') || '(top level)'}: ${what}` });
  const known = (o: { [k: string]: Json }, keys: readonly string[], p: string[]) => {
    for (const k of Object.keys(o))
      if (!keys.includes(k)) bad([...p, k], `unknown key (expected one of ${keys.join(', ')})`);
  };
  const out: PolicyOptions = { version: '', thresholds: { default: 0.5 } };
  if (!isObj(doc)) {
    bad([], 'the file must hold a JSON object');
  } else {
    known(doc, ['version', 'thresholds', 'block', 'allow', 'amount_limits', 'degraded'], []);
    if (typeof doc.version !== 'string' || !doc.version.trim())
      bad(['version'], 'must be a non-empty string');
    else out.version = doc.version;
    const th = doc.thresholds;
    if (!isObj(th)) bad(['thresholds'], 'must be an object with at least "default"');
    else {
      known(th, ['default', ...EVENT_TYPES], ['thresholds']);
      for (const k of ['default', ...EVENT_TYPES]) {
        const v = th[k];
        if (v === undefined && k !== 'default') continue;
        if (typeof v !== 'number' || !(v >= 0 && v <= 1))
          bad(['thresholds', k], `must be a number in [0, 1], got ${JSON.stringify(v ?? null)}`);
        else (out.thresholds as Record<string, number>)[k] = v;
      }
    }
    for (const kind of ['block', 'allow'] as const) {
      const l = doc[kind];
      if (l === undefined) continue;
      if (!isObj(l)) {
        bad([kind], `must be an object of lists keyed by ${LIST_ENTITIES.join(', ')}`);
        continue;
      }
      known(l, LIST_ENTITIES, [kind]);
      const lists: Record<string, string[]> = {};
      for (const ent of LIST_ENTITIES) {
        const v = l[ent];
        if (v === undefined) continue;
        if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0))
          bad([kind, ent], 'must be an array of non-empty strings');
        else lists[ent] = v as string[];
      }
      out[kind] = lists;
    }
    const lim = doc.amount_limits;
    if (lim !== undefined) {
      if (!isObj(lim)) bad(['amount_limits'], 'must be an object keyed by PAYMENT, WITHDRAWAL');
      else {
        known(lim, EVENT_TYPES, ['amount_limits']);
        out.amountLimits = {};
        for (const k of EVENT_TYPES) {
          const v = lim[k];
          if (v === undefined) continue;
          if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
            bad(['amount_limits', k], `must be a positive integer in minor units, got ${JSON.stringify(v)}`);
          else out.amountLimits[k] = v;
        }
      }
    }
    const dg = doc.degraded;
    if (dg !== undefined) {
      if (!isObj(dg)) bad(['degraded'], 'must be an object { mode, budget_ms }');
      else {
        known(dg, ['mode', 'budget_ms'], ['degraded']);
        const mode = dg.mode ?? 'fail-open';
        const budget = dg.budget_ms ?? 200;
        if (mode !== 'fail-open' && mode !== 'fail-closed')
          bad(['degraded', 'mode'], `must be "fail-open" or "fail-closed", got ${JSON.stringify(mode)}`);
        if (typeof budget !== 'number' || !Number.isInteger(budget) || budget <= 0)
          bad(
            ['degraded', 'budget_ms'],
            `must be a positive whole number of milliseconds, got ${JSON.stringify(budget)}`,
          );
        if (!problems.length)
          out.degraded = { mode: mode as 'fail-open' | 'fail-closed', budgetMs: budget as number };
      }
    }
  }
  if (problems.length) {
    problems.sort((a, b) => a.line - b.line);
    fail('BAD_POLICY', problems.map((p) => `${path}:${p.line}: ${p.what}`).join('; '), {
      file: path,
      problems,
    });
  }
  return out;
}
