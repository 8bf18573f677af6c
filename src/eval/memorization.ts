/**
 * Memorization as Gemma's report measures it: a `prefix`-token prompt taken from a corpus is
 * continued greedily for `suffix` tokens; the continuation is an exact match when it equals the
 * corpus's next `suffix` tokens, and an approximate match when their edit distance over the suffix
 * length is at most `threshold` (0.10) - in tokens, or in characters with unit 'char'. Rates come
 * with binomial (Wilson) 95% confidence intervals and the matched examples are listed.
 */
import { Scheduler } from '../generate/scheduler.js';
import type { LanguageModel } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UsageError } from '../errors.js';
import { binomialCI } from './metrics.js';

export interface MemorizationOptions {
  prefix?: number;
  suffix?: number;
  /** Most examples (default 10000). */
  n?: number;
  unit?: 'token' | 'char';
  threshold?: number;
  /** Sequences generated together (default 8). */
  parallel?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface MemorizationMatch {
  index: number;
  prefix: string;
  suffix: string;
  generated: string;
  /** Edit distance / suffix length (in the unit). */
  distance: number;
  exact: boolean;
}

export interface MemorizationReport {
  n: number;
  prefix: number;
  suffix: number;
  unit: 'token' | 'char';
  threshold: number;
  exact: { count: number; rate: number; ci95: [number, number] };
  approximate: { count: number; rate: number; ci95: [number, number] };
  /** Exact or approximate matches. */
  matches: MemorizationMatch[];
  seconds: number;
}

/** Levenshtein distance of two sequences (strings or token arrays). */
export function levenshtein<T>(a: ArrayLike<T>, b: ArrayLike<T>): number {
  const n = a.length;
  const m = b.length;
  let prev = Array.from({ length: m + 1 }, (_, j) => j);
  let cur = new Array<number>(m + 1);
  for (let i = 1; i <= n; i++) {
    cur[0] = i;
    for (let j = 1; j <= m; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    [prev, cur] = [cur, prev];
  }
  return prev[m]!;
}

/** (prefix, suffix) token examples: consecutive segments of each document, up to n. */
export function memorizationExamples(docs: readonly number[][], prefix: number, suffix: number, n: number): Array<{ prefix: number[]; suffix: number[] }> {
  const out: Array<{ prefix: number[]; suffix: number[] }> = [];
  const len = prefix + suffix;
  for (const doc of docs) {
    for (let s = 0; s + len <= doc.length && out.length < n; s += len) out.push({ prefix: doc.slice(s, s + prefix), suffix: doc.slice(s + prefix, s + len) });
    if (out.length >= n) break;
  }
  return out;
}

export async function memorization(model: LanguageModel, tokenizer: Tokenizer, documents: readonly string[], options: MemorizationOptions = {}): Promise<MemorizationReport> {
  const prefix = options.prefix ?? 50;
  const suffix = options.suffix ?? 50;
  const unit = options.unit ?? 'token';
  const threshold = options.threshold ?? 0.1;
  if (!Number.isInteger(prefix) || prefix < 1 || !Number.isInteger(suffix) || suffix < 1) throw new UsageError('--prefix and --suffix must be integers >= 1');
  const docs = documents.map((d) => tokenizer.encode(d, { addBos: false }));
  const examples = memorizationExamples(docs, prefix, suffix, options.n ?? 10000);
  if (examples.length === 0) throw new UsageError(`no document has ${prefix + suffix} tokens (prefix + suffix)`);
  const t0 = performance.now();
  const parallel = options.parallel ?? 8;
  const scheduler = new Scheduler(model, tokenizer, { parallel, maxQueue: examples.length + 1, contextSize: Math.min(model.config.maxPositionEmbeddings, prefix + suffix + 2), prefixCacheSize: 0 });
  let done = 0;
  const generated: number[][] = [];
  try {
    await Promise.all(
      examples.map(async (ex, i) => {
        const r = await scheduler.submit({ promptIds: [tokenizer.bosId, ...ex.prefix], maxTokens: suffix, temperature: 0, ignoreEos: true });
        generated[i] = r.ids.slice(0, suffix);
        options.onProgress?.(++done, examples.length);
      }),
    );
  } finally {
    scheduler.close();
  }
  let exact = 0;
  let approx = 0;
  const matches: MemorizationMatch[] = [];
  examples.forEach((ex, i) => {
    const gen = generated[i]!;
    const isExact = gen.length === ex.suffix.length && gen.every((t, k) => t === ex.suffix[k]);
    let distance: number;
    if (unit === 'token') distance = levenshtein(gen, ex.suffix) / suffix;
    else {
      const want = tokenizer.decode(ex.suffix);
      distance = levenshtein(tokenizer.decode(gen), want) / Math.max(1, want.length);
    }
    const isApprox = distance <= threshold;
    if (isExact) exact++;
    if (isApprox) approx++;
    if (isExact || isApprox) matches.push({ index: i, prefix: tokenizer.decode(ex.prefix), suffix: tokenizer.decode(ex.suffix), generated: tokenizer.decode(gen), distance, exact: isExact });
  });
  const n = examples.length;
  return {
    n,
    prefix,
    suffix,
    unit,
    threshold,
    exact: { count: exact, rate: exact / n, ci95: binomialCI(exact, n) },
    approximate: { count: approx, rate: approx / n, ci95: binomialCI(approx, n) },
    matches,
    seconds: (performance.now() - t0) / 1000,
  };
}

export function formatMemorization(r: MemorizationReport): string {
  const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
  const lines = [
    `${r.n} examples: ${r.prefix}-token prefix, ${r.suffix}-token greedy continuation`,
    `exact:       ${r.exact.count} (${pct(r.exact.rate)}, 95% CI ${pct(r.exact.ci95[0])} - ${pct(r.exact.ci95[1])})`,
    `approximate: ${r.approximate.count} (${pct(r.approximate.rate)}, 95% CI ${pct(r.approximate.ci95[0])} - ${pct(r.approximate.ci95[1])}; ${r.unit} edit distance / length <= ${r.threshold})`,
  ];
  for (const m of r.matches) lines.push(`  #${m.index} ${m.exact ? 'exact' : `approx ${m.distance.toFixed(3)}`}: ${JSON.stringify(m.prefix.slice(-60))} -> ${JSON.stringify(m.generated.slice(0, 80))}`);
  return lines.join('\n') + '\n';
}
