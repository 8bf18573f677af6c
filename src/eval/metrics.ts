/**
 * Metrics and their aggregations as lm-evaluation-harness defines them, plus the statistics the
 * other evaluations report: standard errors (closed form for means, bootstrap otherwise), the
 * unbiased pass@k estimator, binomial and percentile-bootstrap confidence intervals.
 */
import { Rng } from '../generate/sampler.js';
import type { MetricValue } from './hooks.js';

export type AggregationName = 'mean' | 'median' | 'perplexity' | 'weighted_perplexity' | 'bits_per_byte' | 'f1' | 'matthews_corrcoef';
export type Aggregation = (items: MetricValue[]) => number;

export const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** sum(a) / sum(b) over [a, b] pairs. */
export function weightedMean(items: ReadonlyArray<readonly [number, number]>): number {
  let a = 0;
  let b = 0;
  for (const [x, w] of items) {
    a += x;
    b += w;
  }
  return a / b;
}

/** exp(-mean(loglikelihoods)). */
export const perplexity = (lls: readonly number[]): number => Math.exp(-mean(lls));
/** exp(-sum(ll) / sum(units)): word_perplexity and byte_perplexity. */
export const weightedPerplexity = (items: ReadonlyArray<readonly [number, number]>): number => Math.exp(-weightedMean(items));
/** -sum(ll) / sum(bytes) / ln 2. */
export const bitsPerByte = (items: ReadonlyArray<readonly [number, number]>): number => -weightedMean(items) / Math.LN2;

/** Binary F1 (positive label 1) over [gold, pred] pairs, as sklearn's f1_score; 0 when undefined. */
export function f1Score(items: ReadonlyArray<readonly [number, number]>): number {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (const [g, p] of items) {
    if (p === 1 && g === 1) tp++;
    else if (p === 1) fp++;
    else if (g === 1) fn++;
  }
  const d = 2 * tp + fp + fn;
  return d === 0 ? 0 : (2 * tp) / d;
}

/** Matthews correlation over [gold, pred] pairs (multiclass, as sklearn); 0 when undefined. */
export function matthewsCorrcoef(items: ReadonlyArray<readonly [number, number]>): number {
  const t = new Map<number, number>();
  const p = new Map<number, number>();
  let c = 0;
  for (const [g, q] of items) {
    t.set(g, (t.get(g) ?? 0) + 1);
    p.set(q, (p.get(q) ?? 0) + 1);
    if (g === q) c++;
  }
  const s = items.length;
  let tp = 0;
  let pp = 0;
  let tt = 0;
  for (const k of new Set([...t.keys(), ...p.keys()])) {
    const tk = t.get(k) ?? 0;
    const pk = p.get(k) ?? 0;
    tp += tk * pk;
    pp += pk * pk;
    tt += tk * tk;
  }
  const d = Math.sqrt((s * s - pp) * (s * s - tt));
  return d === 0 ? 0 : (c * s - tp) / d;
}

const pairs = (items: MetricValue[]): Array<[number, number]> => items as Array<[number, number]>;
const nums = (items: MetricValue[]): number[] => items as number[];

export const AGGREGATIONS: Record<AggregationName, Aggregation> = {
  mean: (x) => mean(nums(x)),
  median: (x) => median(nums(x)),
  perplexity: (x) => perplexity(nums(x)),
  weighted_perplexity: (x) => weightedPerplexity(pairs(x)),
  bits_per_byte: (x) => bitsPerByte(pairs(x)),
  f1: (x) => f1Score(pairs(x)),
  matthews_corrcoef: (x) => matthewsCorrcoef(pairs(x)),
};

/** The harness's registry: each metric's default aggregation and direction. */
export const METRIC_DEFAULTS: Record<string, { aggregation: AggregationName; higherIsBetter: boolean }> = {
  acc: { aggregation: 'mean', higherIsBetter: true },
  acc_norm: { aggregation: 'mean', higherIsBetter: true },
  acc_bytes: { aggregation: 'mean', higherIsBetter: true },
  exact_match: { aggregation: 'mean', higherIsBetter: true },
  perplexity: { aggregation: 'perplexity', higherIsBetter: false },
  word_perplexity: { aggregation: 'weighted_perplexity', higherIsBetter: false },
  byte_perplexity: { aggregation: 'weighted_perplexity', higherIsBetter: false },
  bits_per_byte: { aggregation: 'bits_per_byte', higherIsBetter: false },
  f1: { aggregation: 'f1', higherIsBetter: true },
  mcc: { aggregation: 'matthews_corrcoef', higherIsBetter: true },
  likelihood: { aggregation: 'mean', higherIsBetter: true },
};

export const DEFAULT_METRICS: Record<string, string[]> = {
  loglikelihood: ['perplexity', 'acc'],
  loglikelihood_rolling: ['word_perplexity', 'byte_perplexity', 'bits_per_byte'],
  multiple_choice: ['acc', 'acc_norm'],
  generate_until: ['exact_match'],
};

export function sampleStddev(xs: readonly number[]): number {
  const mu = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - mu) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

/** Standard error of a mean: sample stddev / sqrt(n). */
export const meanStderr = (xs: readonly number[]): number => sampleStddev(xs) / Math.sqrt(xs.length);

/** Bootstrap standard error of `f` over `iters` resamples with replacement (seeded). */
export function bootstrapStderr<T>(f: (xs: T[]) => number, xs: readonly T[], iters: number, seed = 1234): number {
  const rng = new Rng(seed);
  const n = xs.length;
  const stats: number[] = [];
  const buf = new Array<T>(n);
  for (let it = 0; it < iters; it++) {
    for (let i = 0; i < n; i++) buf[i] = xs[Math.floor(rng.next() * n)]!;
    stats.push(f(buf));
  }
  return sampleStddev(stats);
}

/**
 * The stderr the harness reports for an aggregation: closed form for mean, bootstrap for median /
 * perplexity / f1 / mcc, none (N/A) for the weighted ones.
 */
export function stderrFor(agg: AggregationName, items: MetricValue[], bootstrapIters: number): number | undefined {
  if (bootstrapIters <= 0 || items.length < 2) return undefined;
  if (agg === 'mean') return meanStderr(nums(items));
  if (agg === 'median' || agg === 'perplexity' || agg === 'f1' || agg === 'matthews_corrcoef') return bootstrapStderr(AGGREGATIONS[agg], items, bootstrapIters);
  return undefined;
}

/** The harness's pooled stderr of size-weighted group means. */
export function pooledSampleStderr(stderrs: readonly number[], sizes: readonly number[]): number {
  const total = sizes.reduce((a, b) => a + b, 0);
  let v = 0;
  stderrs.forEach((se, i) => {
    v += (sizes[i]! - 1) * se * se * sizes[i]!;
  });
  return Math.sqrt(v / (total - sizes.length) / total);
}

/** Python string.punctuation. */
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

export interface ExactMatchOptions {
  ignore_case?: boolean;
  ignore_punctuation?: boolean;
  ignore_numbers?: boolean;
  /** Python regexes removed from both strings (in order) before comparing. */
  regexes_to_ignore?: RegExp[];
}

/** The harness's exact_match for one prediction: 1 or 0. */
export function exactMatch(prediction: string, reference: string, o: ExactMatchOptions = {}): number {
  let p = prediction;
  let r = reference;
  for (const re of o.regexes_to_ignore ?? []) {
    const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
    p = p.replace(g, '');
    r = r.replace(g, '');
  }
  if (o.ignore_case) {
    p = p.toLowerCase();
    r = r.toLowerCase();
  }
  if (o.ignore_punctuation) {
    p = p.replace(PUNCTUATION, '');
    r = r.replace(PUNCTUATION, '');
  }
  if (o.ignore_numbers) {
    p = p.replace(/[0-9]/g, '');
    r = r.replace(/[0-9]/g, '');
  }
  return p === r ? 1 : 0;
}

/** Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k). */
export function passAtK(n: number, c: number, k: number): number {
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

/** Wilson score interval for a binomial proportion (95% by default). */
export function binomialCI(successes: number, n: number, z = 1.959963984540054): [number, number] {
  if (n === 0) return [0, 1];
  const p = successes / n;
  const denom = 1 + (z * z) / n;
  const center = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, center - half), Math.min(1, center + half)];
}

/** Percentile bootstrap CI of `stat` over items resampled with replacement (seeded). */
export function bootstrapCI<T>(items: readonly T[], stat: (xs: T[]) => number, options: { iters?: number; seed?: number; level?: number } = {}): [number, number] {
  const iters = options.iters ?? 10000;
  const level = options.level ?? 0.95;
  const rng = new Rng(options.seed ?? 0);
  const n = items.length;
  const stats = new Float64Array(iters);
  const buf = new Array<T>(n);
  for (let it = 0; it < iters; it++) {
    for (let i = 0; i < n; i++) buf[i] = items[Math.floor(rng.next() * n)]!;
    stats[it] = stat(buf);
  }
  stats.sort();
  const q = (p: number): number => {
    const pos = p * (iters - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(iters - 1, lo + 1);
    return stats[lo]! + (stats[hi]! - stats[lo]!) * (pos - lo);
  };
  return [q((1 - level) / 2), q(1 - (1 - level) / 2)];
}
