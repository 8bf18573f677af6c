/**
 * The harness's response filters (`filter_list`): each document's responses (one per repeat)
 * pass through the steps of a named pipeline; the pipeline's name becomes the metric's suffix
 * (`exact_match,strict-match`). Built in: regex (with group_select and fallback), take_first,
 * take_first_k, majority_vote, lowercase, uppercase, remove_whitespace.
 */
import type { FilterStep } from './config.js';
import { TaskError } from './errors.js';
import { pythonRegex } from './jinja.js';

/** responses of one document -> filtered responses of that document. */
export type FilterFn = (responses: string[]) => string[];

export interface FilterPipeline {
  name: string;
  apply: FilterFn;
}

/** Python's re.findall: whole matches without groups, the group with one, tuples of groups with more. */
export function findall(re: RegExp, text: string): Array<string | string[]> {
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
  const out: Array<string | string[]> = [];
  for (const m of text.matchAll(g)) {
    if (m.length === 1) out.push(m[0]);
    else if (m.length === 2) out.push(m[1] ?? '');
    else out.push(m.slice(1).map((x) => x ?? ''));
  }
  return out;
}

export function regexFilter(pattern: string, groupSelect = 0, fallback = '[invalid]'): FilterFn {
  const re = pythonRegex(pattern);
  return (responses) =>
    responses.map((resp) => {
      const matches = findall(re, typeof resp === 'string' ? resp : '');
      if (matches.length === 0) return fallback;
      const i = groupSelect < 0 ? matches.length + groupSelect : groupSelect;
      let m = matches[i];
      if (m === undefined) throw new RangeError(`group_select ${groupSelect} is out of range (${matches.length} matches)`);
      if (Array.isArray(m)) {
        const nonEmpty = m.filter((x) => x !== '');
        m = nonEmpty.length ? nonEmpty[0]! : fallback;
      }
      return m.trim();
    });
}

/** Counter(resps).most_common(1): the most frequent, the first seen among equals. */
export function majorityVote(responses: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const r of responses) counts.set(r, (counts.get(r) ?? 0) + 1);
  let best: string | undefined;
  let bestN = 0;
  for (const [r, n] of counts) {
    if (n > bestN) {
      best = r;
      bestN = n;
    }
  }
  return best ?? '';
}

function step(task: string, where: string, s: FilterStep): FilterFn {
  const { function: fn, ...opts } = s;
  switch (fn) {
    case 'regex':
      return regexFilter(
        typeof opts.regex_pattern === 'string' ? opts.regex_pattern : '#### (\\-?[0-9\\.\\,]+)',
        typeof opts.group_select === 'number' ? opts.group_select : 0,
        typeof opts.fallback === 'string' ? opts.fallback : '[invalid]',
      );
    case 'take_first':
      return (r) => r.slice(0, 1);
    case 'take_first_k': {
      const k = Number(opts.k);
      if (!Number.isInteger(k) || k < 1) throw new TaskError(task, `${where}.k`, 'expected an integer >= 1');
      return (r) => r.slice(0, k);
    }
    case 'majority_vote':
      return (r) => [majorityVote(r)];
    case 'lowercase':
      return (r) => r.map((x) => x.toLowerCase());
    case 'uppercase':
      return (r) => r.map((x) => x.toUpperCase());
    case 'remove_whitespace':
      return (r) => r.map((x) => x.replace(/^\s+/, ''));
    default:
      throw new TaskError(task, `${where}.function`, `unsupported filter "${String(fn)}" (built in: regex, take_first, take_first_k, majority_vote, lowercase, uppercase, remove_whitespace)`);
  }
}

/** The task's pipelines; without filter_list, the harness's single "none" pipeline (take_first). */
export function buildFilters(task: string, list: Array<{ name: string; filter: FilterStep[] }> | null | undefined): FilterPipeline[] {
  if (!list || list.length === 0) return [{ name: 'none', apply: (r) => r.slice(0, 1) }];
  return list.map((p, i) => {
    const steps = p.filter.map((s, j) => step(task, `filter_list[${i}].filter[${j}]`, s));
    return { name: p.name, apply: (r) => steps.reduce((acc, f) => f(acc), r) };
  });
}
