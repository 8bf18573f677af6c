/**
 * Side-by-side preference: a judge compares two models' answers to the same prompts with
 * MT-Bench's pair-v2 prompt. Every pair is judged in both orders; a verdict that changes with the
 * order counts as a tie. Reported: wins / ties / losses of A, the tie-split win rate
 * ((W + T/2) / N) and its 95% CI from a seeded percentile bootstrap over prompts (10,000
 * resamples). Human ratings (a CSV of A / B / tie per prompt) give the same report.
 */
import { UsageError } from '../errors.js';
import { bootstrapCI } from './metrics.js';

/** MT-Bench's pair-v2 judge (FastChat judge_prompts.jsonl). */
export const PAIR_V2_SYSTEM =
  "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user question displayed below. You should choose the assistant that follows the user's instructions and answers the user's question better. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by comparing the two responses and provide a short explanation. Avoid any position biases and ensure that the order in which the responses were presented does not influence your decision. Do not allow the length of the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective as possible. After providing your explanation, output your final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.";

export function pairV2Prompt(question: string, answerA: string, answerB: string): string {
  return `[User Question]\n${question}\n\n[The Start of Assistant A's Answer]\n${answerA}\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n${answerB}\n[The End of Assistant B's Answer]`;
}

export type Verdict = 'A' | 'B' | 'tie';

/** The judge's verdict: the last [[A]] / [[B]] / [[C]] in its text; none found counts as a tie (flagged). */
export function parseVerdict(text: string): { verdict: Verdict; parsed: boolean } {
  const all = [...text.matchAll(/\[\[([ABC])\]\]/g)];
  const last = all[all.length - 1]?.[1];
  if (last === 'A') return { verdict: 'A', parsed: true };
  if (last === 'B') return { verdict: 'B', parsed: true };
  if (last === 'C') return { verdict: 'tie', parsed: true };
  return { verdict: 'tie', parsed: false };
}

/** A judged in both orders: the first order's verdict if the swapped order agrees, else a tie. */
export function combineOrders(ab: Verdict, ba: Verdict): Verdict {
  const swapped: Verdict = ba === 'A' ? 'B' : ba === 'B' ? 'A' : 'tie';
  return ab === swapped ? ab : 'tie';
}

/** Sends a system + user message to a judge and returns its text. */
export type Judge = (system: string, user: string) => Promise<string>;

export interface SxsItem {
  id: string;
  prompt: string;
  answerA: string;
  answerB: string;
  /** Judge outputs, A-first then B-first. */
  judgments?: [string, string];
  verdict: Verdict;
  /** A verdict could not be read from one of the judge outputs. */
  unparsed?: boolean;
}

export interface SxsReport {
  n: number;
  wins: number;
  ties: number;
  losses: number;
  /** (wins + ties / 2) / n for model A. */
  win_rate: number;
  ci95: [number, number];
  bootstrap: { resamples: number; seed: number };
  /** Judge outputs without a readable verdict (counted as ties). */
  unparsed: number;
  items: SxsItem[];
}

export function summarize(items: SxsItem[], options: { resamples?: number; seed?: number } = {}): SxsReport {
  if (items.length === 0) throw new UsageError('side by side needs at least one prompt');
  const score = (v: Verdict): number => (v === 'A' ? 1 : v === 'tie' ? 0.5 : 0);
  const scores = items.map((i) => score(i.verdict));
  const resamples = options.resamples ?? 10000;
  const seed = options.seed ?? 0;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    n: items.length,
    wins: items.filter((i) => i.verdict === 'A').length,
    ties: items.filter((i) => i.verdict === 'tie').length,
    losses: items.filter((i) => i.verdict === 'B').length,
    win_rate: mean(scores),
    ci95: bootstrapCI(scores, mean, { iters: resamples, seed }),
    bootstrap: { resamples, seed },
    unparsed: items.filter((i) => i.unparsed).length,
    items,
  };
}

/** Judge every pair in both orders (`concurrency` prompts at a time). */
export async function judgePairs(
  pairs: Array<{ id: string; prompt: string; answerA: string; answerB: string }>,
  judge: Judge,
  options: { concurrency?: number; resamples?: number; seed?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<SxsReport> {
  const items: SxsItem[] = new Array(pairs.length);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < pairs.length) {
      const i = next++;
      const p = pairs[i]!;
      const ab = await judge(PAIR_V2_SYSTEM, pairV2Prompt(p.prompt, p.answerA, p.answerB));
      const ba = await judge(PAIR_V2_SYSTEM, pairV2Prompt(p.prompt, p.answerB, p.answerA));
      const v1 = parseVerdict(ab);
      const v2 = parseVerdict(ba);
      items[i] = { ...p, judgments: [ab, ba], verdict: combineOrders(v1.verdict, v2.verdict), ...(!v1.parsed || !v2.parsed ? { unparsed: true } : {}) };
      options.onProgress?.(++done, pairs.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 4, pairs.length)) }, worker));
  return summarize(items, options);
}

/** Human ratings: CSV with a header holding `winner` (A / B / tie, also model_a / model_b / 1 / 2 / 0) and optionally `id` / `prompt`. */
export function humanRatings(csvText: string, parse: (t: string) => Array<Record<string, unknown>>): SxsItem[] {
  const rows = parse(csvText);
  return rows.map((r, i) => {
    const raw = String(r.winner ?? r.preference ?? r.verdict ?? '').trim().toLowerCase();
    const verdict: Verdict | undefined = ['a', 'model_a', '1'].includes(raw) ? 'A' : ['b', 'model_b', '2'].includes(raw) ? 'B' : ['tie', 'c', '0', 'draw', 'tie (bothbad)'].includes(raw) ? 'tie' : undefined;
    if (!verdict) throw new UsageError(`ratings row ${i + 2}: winner "${raw}" is not A, B or tie`);
    return { id: String(r.id ?? i), prompt: String(r.prompt ?? ''), answerA: String(r.answer_a ?? ''), answerB: String(r.answer_b ?? ''), verdict };
  });
}

export function formatSxs(r: SxsReport): string {
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  return (
    `${r.n} prompts: A wins ${r.wins} / ties ${r.ties} / loses ${r.losses}\n` +
    `win rate of A (ties split): ${pct(r.win_rate)}, 95% CI ${pct(r.ci95[0])} - ${pct(r.ci95[1])} (percentile bootstrap, ${r.bootstrap.resamples} resamples, seed ${r.bootstrap.seed})\n` +
    (r.unparsed ? `${r.unparsed} judgments without a readable verdict counted as ties\n` : '')
  );
}
