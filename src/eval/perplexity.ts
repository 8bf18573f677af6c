/**
 * Perplexity of a corpus and, against a reference model, llama.cpp's KL-divergence report.
 *
 * - `chunks` (llama.cpp's perplexity tool): the tokens are cut into chunks of `ctx`; each chunk
 *   starts with <bos> in place of its first token and only its second half is scored (each scored
 *   token sees at least ctx/2 tokens of context).
 * - `rolling` (lm-evaluation-harness's loglikelihood_rolling): every token is scored once, in
 *   disjoint windows of `ctx` tokens, the first conditioned on <bos>.
 * With a reference (the f32 or bf16 checkpoint, say), each scored position also gives
 * KL(P_ref || P_model), whether the two models' most likely tokens agree, and |p_model - p_ref|
 * of the true token; the report has their mean and percentiles and both perplexities.
 */
import type { LanguageModel, KVCache } from '../model/types.js';
import { UsageError } from '../errors.js';

export interface PerplexityOptions {
  /** Tokens per chunk / window (default 512). */
  ctx?: number;
  mode?: 'chunks' | 'rolling';
  /** The model to compare with (same vocabulary). */
  reference?: LanguageModel;
  /** <bos> id (default: the model config's). */
  bosId?: number;
  /** With a reference: tokens per forward call inside a chunk (bounds the logits rows held at once; default 64). */
  step?: number;
  /** Most chunks to score (default all). */
  maxChunks?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface KlReport {
  mean: number;
  /** Standard error of the mean. */
  stderr: number;
  max: number;
  p99_9: number;
  p99: number;
  p95: number;
  p90: number;
  median: number;
  p10: number;
  p5: number;
  p1: number;
  min: number;
  /** Fraction of positions where both models rank the same token first. */
  top1_agreement: number;
  /** Mean and RMS of p_model(true token) - p_ref(true token). */
  mean_delta_p: number;
  rms_delta_p: number;
  reference_ppl: number;
  /** ppl - reference_ppl, and ln(ppl / reference_ppl) with its stderr. */
  delta_ppl: number;
  ln_ppl_ratio: number;
  /** Histogram of KL values: `edges` has bins + 1 values (log-spaced). */
  histogram: { edges: number[]; counts: number[] };
}

export interface PerplexityReport {
  mode: 'chunks' | 'rolling';
  ctx: number;
  chunks: number;
  tokens: number;
  tokens_scored: number;
  /** Mean negative log-likelihood (nats / token). */
  nll: number;
  ppl: number;
  /** Stderr of ppl (delta method from the stderr of the mean nll). */
  ppl_stderr: number;
  kl?: KlReport;
  seconds: number;
  tokens_per_second: number;
}

/** log-softmax of one row into `out`; returns the argmax. */
function logSoftmax(row: Float32Array, out: Float64Array): number {
  let max = -Infinity;
  let arg = 0;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) ((max = row[i]!), (arg = i));
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - lse;
  return arg;
}

/** Forward `ids` on a fresh cache in steps; calls `onRow(position, logitsRow)` for positions >= from. */
async function forwardRows(model: LanguageModel, ids: number[], from: number, step: number, onRow: (pos: number, row: Float32Array) => void): Promise<void> {
  const cache: KVCache = model.createCache(ids.length);
  try {
    for (let s = 0; s < ids.length; ) {
      // Rows before `from` need no logits (the LM head is a large share of the work): they run as
      // one prefill; the scored rows run in steps that bound the logits held at once.
      const end = s < from ? Math.min(from, ids.length) : Math.min(ids.length, s + step);
      const part = ids.slice(s, end);
      const needRows = s + part.length > from;
      const res = await model.forwardAsync(part, cache, { allPositions: needRows });
      const start = s;
      s = end;
      if (!needRows) continue;
      const V = res.vocab;
      for (let r = 0; r < part.length; r++) {
        const pos = start + r;
        if (pos >= from) onRow(pos, res.logits.subarray(r * V, (r + 1) * V));
      }
    }
  } finally {
    cache.dispose?.();
  }
}

const quantile = (sorted: Float64Array, q: number): number => {
  if (sorted.length === 0) return NaN;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
};

/** Perplexity of token ids (and KL against options.reference). */
export async function perplexityOfIds(model: LanguageModel, tokens: readonly number[], options: PerplexityOptions = {}): Promise<PerplexityReport> {
  const ctx = options.ctx ?? 512;
  const mode = options.mode ?? 'chunks';
  const step = options.step ?? 64;
  const bos = options.bosId ?? model.config.bosId;
  const ref = options.reference;
  if (!Number.isInteger(ctx) || ctx < 2) throw new UsageError(`--ctx must be an integer >= 2, got ${ctx}`);
  if (ref && ref.vocabSize !== model.vocabSize) throw new UsageError(`the reference's vocabulary (${ref.vocabSize}) differs from the model's (${model.vocabSize})`);
  // Work items: (input ids, first scored position, targets at positions from..).
  const items: Array<{ input: number[]; from: number; targets: number[] }> = [];
  if (mode === 'chunks') {
    const n = Math.floor(tokens.length / ctx);
    if (n === 0) throw new UsageError(`the corpus has ${tokens.length} tokens; chunks mode needs at least ctx = ${ctx} (use a smaller --ctx)`);
    const first = Math.floor(ctx / 2);
    for (let c = 0; c < Math.min(n, options.maxChunks ?? n); c++) {
      const input = tokens.slice(c * ctx, (c + 1) * ctx);
      input[0] = bos;
      // position j predicts input[j + 1], for j in [first, ctx - 2]
      items.push({ input, from: first, targets: input.slice(first + 1) });
    }
  } else {
    const max = ctx;
    let predicted = 0;
    const body = tokens[0] === bos ? tokens.slice(1) : [...tokens];
    if (body.length === 0) throw new UsageError('the corpus has no tokens');
    const first = Math.min(max, body.length);
    items.push({ input: [bos, ...body.slice(0, first - 1)], from: 0, targets: body.slice(0, first) });
    predicted = first;
    while (predicted < body.length && (options.maxChunks === undefined || items.length < options.maxChunks)) {
      const k = Math.min(body.length - predicted, max);
      const end = predicted + k;
      const input = body.slice(Math.max(0, end - max - 1), end - 1);
      items.push({ input, from: input.length - k, targets: body.slice(end - k, end) });
      predicted = end;
    }
  }
  const V = model.vocabSize;
  const lpM = new Float64Array(V);
  const lpR = new Float64Array(V);
  const nlls: number[] = [];
  const kls: number[] = [];
  const refNlls: number[] = [];
  let agree = 0;
  let dpSum = 0;
  let dpSq = 0;
  const t0 = performance.now();
  for (let it = 0; it < items.length; it++) {
    const { input, from, targets } = items[it]!;
    const inputForModel = input.slice(0, from + targets.length);
    if (!ref) {
      // Only the true token's log-probability: the model scores the targets where the logits
      // are made (2 numbers a row come back instead of a vocabulary-wide row), in one call.
      const cache = model.createCache(inputForModel.length);
      try {
        const res = await model.forwardAsync(inputForModel, cache, { targets: inputForModel.map((_, pos) => (pos < from ? -1 : targets[pos - from]!)) });
        for (let pos = from; pos < inputForModel.length; pos++) nlls.push(-res.tokenLogProbs![pos]!);
      } finally {
        cache.dispose?.();
      }
      options.onProgress?.(it + 1, items.length);
      await new Promise<void>((r) => setImmediate(r));
      continue;
    }
    const rows: Float32Array[] = [];
    await forwardRows(model, inputForModel, from, step, (pos, row) => {
      rows[pos - from] = row.slice();
    });
    const refRows: Float32Array[] = [];
    if (ref) await forwardRows(ref, inputForModel, from, step, (pos, row) => (refRows[pos - from] = row.slice()));
    for (let j = 0; j < targets.length; j++) {
      const t = targets[j]!;
      const am = logSoftmax(rows[j]!, lpM);
      nlls.push(-lpM[t]!);
      if (ref) {
        const ar = logSoftmax(refRows[j]!, lpR);
        refNlls.push(-lpR[t]!);
        let kl = 0;
        for (let v = 0; v < V; v++) {
          const pr = Math.exp(lpR[v]!);
          if (pr > 0) kl += pr * (lpR[v]! - lpM[v]!);
        }
        kls.push(Math.max(0, kl));
        if (am === ar) agree++;
        const dp = Math.exp(lpM[t]!) - Math.exp(lpR[t]!);
        dpSum += dp;
        dpSq += dp * dp;
      }
      rows[j] = undefined as unknown as Float32Array;
    }
    options.onProgress?.(it + 1, items.length);
    await new Promise<void>((r) => setImmediate(r));
  }
  const seconds = (performance.now() - t0) / 1000;
  const n = nlls.length;
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const se = (xs: readonly number[]): number => {
    const m = mean(xs);
    return xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1) / xs.length) : 0;
  };
  const nll = mean(nlls);
  const ppl = Math.exp(nll);
  const report: PerplexityReport = {
    mode,
    ctx,
    chunks: items.length,
    tokens: tokens.length,
    tokens_scored: n,
    nll,
    ppl,
    ppl_stderr: ppl * se(nlls),
    seconds,
    tokens_per_second: items.reduce((a, x) => a + x.input.length, 0) / seconds,
  };
  if (ref) {
    const sorted = Float64Array.from(kls).sort();
    const refPpl = Math.exp(mean(refNlls));
    const positive = kls.filter((k) => k > 0);
    const lo = positive.length ? Math.max(1e-12, Math.min(...positive)) : 1e-12;
    const hi = Math.max(lo * 10, sorted[sorted.length - 1] ?? 1);
    const bins = 30;
    const edges = Array.from({ length: bins + 1 }, (_, i) => lo * (hi / lo) ** (i / bins));
    const counts = new Array<number>(bins).fill(0);
    for (const k of kls) {
      const b = k <= lo ? 0 : Math.min(bins - 1, Math.floor((Math.log(k / lo) / Math.log(hi / lo)) * bins));
      counts[b]!++;
    }
    report.kl = {
      mean: mean(kls),
      stderr: se(kls),
      max: sorted[sorted.length - 1]!,
      p99_9: quantile(sorted, 0.999),
      p99: quantile(sorted, 0.99),
      p95: quantile(sorted, 0.95),
      p90: quantile(sorted, 0.9),
      median: quantile(sorted, 0.5),
      p10: quantile(sorted, 0.1),
      p5: quantile(sorted, 0.05),
      p1: quantile(sorted, 0.01),
      min: sorted[0]!,
      top1_agreement: agree / n,
      mean_delta_p: dpSum / n,
      rms_delta_p: Math.sqrt(dpSq / n),
      reference_ppl: refPpl,
      delta_ppl: ppl - refPpl,
      ln_ppl_ratio: nll - mean(refNlls),
      histogram: { edges, counts },
    };
  }
  return report;
}

/** A plain-text summary in the spirit of llama.cpp's output. */
export function formatPerplexity(r: PerplexityReport): string {
  const f = (x: number, d = 6): string => x.toFixed(d);
  const lines = [
    `mode: ${r.mode} (ctx ${r.ctx}), ${r.chunks} ${r.mode === 'chunks' ? 'chunks' : 'windows'}, ${r.tokens_scored} of ${r.tokens} tokens scored, ${r.tokens_per_second.toFixed(1)} tokens/s`,
    `PPL: ${f(r.ppl, 4)} +/- ${f(r.ppl_stderr, 4)} (mean NLL ${f(r.nll)})`,
  ];
  if (r.kl) {
    const k = r.kl;
    lines.push(
      `reference PPL: ${f(k.reference_ppl, 4)}, delta PPL: ${f(k.delta_ppl, 4)}, ln(PPL / PPL_ref): ${f(k.ln_ppl_ratio)}`,
      `Mean KLD: ${f(k.mean)} +/- ${f(k.stderr)}`,
      `Maximum KLD: ${f(k.max)}  99.9%: ${f(k.p99_9)}  99%: ${f(k.p99)}  95%: ${f(k.p95)}  90%: ${f(k.p90)}`,
      `Median KLD: ${f(k.median)}  10%: ${f(k.p10)}  5%: ${f(k.p5)}  1%: ${f(k.p1)}  Minimum: ${f(k.min)}`,
      `Same top token: ${(100 * k.top1_agreement).toFixed(3)}%  Mean delta p: ${(100 * k.mean_delta_p).toFixed(4)}%  RMS delta p: ${(100 * k.rms_delta_p).toFixed(4)}%`,
    );
  }
  return lines.join('\n') + '\n';
}
