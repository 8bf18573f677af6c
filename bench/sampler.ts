/**
 * `npx tsx bench/sampler.ts [--vocab 256000] [--iters N]`: per-token cost of the sampling chain
 * on one large logits row (a real Gemma vocabulary is 256k), for the current sampler
 * (src/generate/sampler.ts) against the reference implementation below: the sampler as it was
 * before the partial-selection / scratch-buffer rewrite (a row-sized Float64Array copy per
 * token, two exps per id for a full-row draw, Set / Map penalties, array-of-ids heap). Both run
 * in the same process on the same rows; each setting also checks that both pick the same ids.
 */
import { parseArgs } from 'node:util';
import { ModelError, UsageError } from '../src/errors.js';
import { Rng, Sampler, logSoftmax, resolveSampling, tokenLogprobs, topLogprobs, type ResolvedSampling, type SamplingOptions } from '../src/generate/sampler.js';

// ---------------------------------------------------------------- the reference (before)

const ref = (() => {
/**
   * Apply repetition, presence and frequency penalties in place to `logits[0..n)`.
   * `context` = every token the model has seen (prompt + generated) for the repetition penalty;
   * `generated` = the tokens generated so far for presence / frequency.
   */
  function applyPenalties(
    logits: Float32Array | Float64Array,
    n: number,
    s: Pick<ResolvedSampling, 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty'>,
    context: readonly number[],
    generated: readonly number[],
  ): void {
    if (s.repetitionPenalty !== 1) {
      const seen = new Set<number>();
      for (const id of context) {
        if (id < 0 || id >= n || seen.has(id)) continue;
        seen.add(id);
        const l = logits[id]!;
        logits[id] = l > 0 ? l / s.repetitionPenalty : l * s.repetitionPenalty;
      }
    }
    if (s.presencePenalty !== 0 || s.frequencyPenalty !== 0) {
      const counts = new Map<number, number>();
      for (const id of generated) if (id >= 0 && id < n) counts.set(id, (counts.get(id) ?? 0) + 1);
      for (const [id, c] of counts) logits[id] = logits[id]! - s.presencePenalty - s.frequencyPenalty * c;
    }
  }
  
  /** Index of the largest value in x[0..n) (lowest index on ties; NaN never wins). */
  function argmax(x: ArrayLike<number>, n: number): number {
    let best = -1;
    let bestV = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      if (v > bestV) {
        bestV = v;
        best = i;
      }
    }
    if (best < 0) throw new ModelError('every logit is -Infinity or NaN: nothing can be sampled');
    return best;
  }
  
  /** The kept set after temperature, top-k, top-p and min-p: ids (most likely first) and their renormalized probabilities. */
  interface Candidates {
    ids: number[];
    probs: number[];
  }
  
  /**
   * Steps 3 to 6 on already-penalized logits (temperature must be > 0). Tokens with -Infinity or
   * NaN logits are never kept.
   */
  function truncatedCandidates(
    logits: ArrayLike<number>,
    n: number,
    s: Pick<ResolvedSampling, 'temperature' | 'topK' | 'topP' | 'minP'>,
  ): Candidates {
    if (!(s.temperature > 0)) throw new UsageError('truncatedCandidates needs temperature > 0');
    const invT = 1 / s.temperature;
    let ids: number[];
    let probs: number[];
    if (s.topK > 0 && s.topK < n) {
      ids = topKIds(logits, n, s.topK);
      if (ids.length === 0) throw new ModelError('every logit is -Infinity or NaN: nothing can be sampled');
      const maxL = logits[ids[0]!]! * invT;
      probs = ids.map((id) => Math.exp(logits[id]! * invT - maxL));
      const sum = probs.reduce((a, b) => a + b, 0);
      probs = probs.map((p) => p / sum);
    } else {
      // The whole row: normalize once, then take only as many of the best tokens as needed.
      let maxL = -Infinity;
      for (let i = 0; i < n; i++) if (logits[i]! > maxL) maxL = logits[i]!;
      if (maxL === -Infinity || Number.isNaN(maxL)) throw new ModelError('every logit is -Infinity or NaN: nothing can be sampled');
      maxL *= invT;
      let z = 0;
      for (let i = 0; i < n; i++) {
        const l = logits[i]!;
        if (l > -Infinity) z += Math.exp(l * invT - maxL);
      }
      const prob = (id: number): number => Math.exp(logits[id]! * invT - maxL) / z;
      if (s.topP < 1) {
        // Top-p keeps a prefix of the sorted row: grow a top-m selection until it holds that prefix.
        for (let m = 64; ; m *= 4) {
          const best = topKIds(logits, n, Math.min(m, n));
          let cum = 0;
          let keep = 0;
          while (keep < best.length && (keep === 0 || cum < s.topP)) cum += prob(best[keep++]!);
          if (cum >= s.topP || best.length < Math.min(m, n) || m >= n) {
            ids = best.slice(0, keep);
            break;
          }
        }
      } else if (s.minP > 0) {
        const threshold = Math.log(s.minP) + maxL; // p_i >= minP * p_max  <=>  l_i/T >= l_max/T + log(minP)
        ids = [];
        for (let i = 0; i < n; i++) if (logits[i]! * invT >= threshold) ids.push(i);
        ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
      } else {
        ids = [];
        for (let i = 0; i < n; i++) if (logits[i]! > -Infinity) ids.push(i);
        ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
      }
      probs = ids.map(prob);
    }
    if (s.topP < 1 && s.topK > 0 && s.topK < n) {
      let cum = 0;
      let keep = 0;
      while (keep < ids.length && (keep === 0 || cum < s.topP)) cum += probs[keep++]!;
      ids = ids.slice(0, keep);
      probs = probs.slice(0, keep);
    }
    if (s.minP > 0) {
      // Relative to the most likely token: p_i / p_max = exp(l_i/T - l_max/T).
      const threshold = s.minP * probs[0]!;
      let keep = 1;
      while (keep < ids.length && probs[keep]! >= threshold) keep++;
      ids = ids.slice(0, keep);
      probs = probs.slice(0, keep);
    }
    const sum = probs.reduce((a, b) => a + b, 0);
    return { ids, probs: probs.map((p) => p / sum) };
  }
  
  /** The k ids with the largest finite values in x[0..n), sorted descending (lowest id first on ties). */
  function topKIds(x: ArrayLike<number>, n: number, k: number): number[] {
    // Binary min-heap of (value, id) where "smaller" = worse = lower value or, on ties, higher id.
    const heap: number[] = [];
    const worse = (a: number, b: number): boolean => x[a]! < x[b]! || (x[a]! === x[b]! && a > b);
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      if (!(v > -Infinity)) continue;
      if (heap.length < k) {
        heap.push(i);
        let c = heap.length - 1;
        while (c > 0) {
          const p = (c - 1) >> 1;
          if (!worse(heap[c]!, heap[p]!)) break;
          [heap[c], heap[p]] = [heap[p]!, heap[c]!];
          c = p;
        }
      } else if (worse(heap[0]!, i)) {
        heap[0] = i;
        let p = 0;
        for (;;) {
          const l = 2 * p + 1;
          const r = l + 1;
          let m = p;
          if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
          if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
          if (m === p) break;
          [heap[m], heap[p]] = [heap[p]!, heap[m]!];
          p = m;
        }
      }
    }
    return heap.sort((a, b) => x[b]! - x[a]! || a - b);
  }
  
  // ---------------------------------------------------------------- logprobs
  
  /** log-softmax of x[0..n) in float64. */
  function refLogSoftmax(x: ArrayLike<number>, n: number): Float64Array {
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (x[i]! > max) max = x[i]!;
    const out = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.exp(x[i]! - max);
    const lse = max + Math.log(sum);
    for (let i = 0; i < n; i++) out[i] = x[i]! - lse;
    return out;
  }
  
  interface RefTokenLogprob {
    id: number;
    logprob: number;
  }
  
  /** The `count` most likely tokens of a log-probability row, most likely first. */
  function refTopLogprobs(logprobs: ArrayLike<number>, n: number, count: number): RefTokenLogprob[] {
    if (count <= 0) return [];
    return topKIds(logprobs, n, count).map((id) => ({ id, logprob: logprobs[id]! }));
  }

  class ReferenceSampler {
    readonly options: ResolvedSampling;
    private readonly rng: Rng;
  
    constructor(options: SamplingOptions = {}) {
      this.options = resolveSampling(options);
      this.rng = new Rng(this.options.seed);
    }
  
    /**
     * Pick the next id from a logits row. `logits` is not modified. `n` limits the usable ids
     * (defaults to the row length).
     */
    sample(logits: ArrayLike<number>, n: number = logits.length, context: readonly number[] = [], generated: readonly number[] = []): number {
      n = Math.min(n, logits.length);
      if (n <= 0) throw new ModelError('empty logits row');
      const s = this.options;
      const work = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = logits[i]!;
        work[i] = Number.isNaN(v) ? -Infinity : v;
      }
      applyPenalties(work, n, s, context, generated);
      if (s.temperature === 0) return argmax(work, n);
      if ((s.topK === 0 || s.topK >= n) && s.topP >= 1 && s.minP === 0) return this.drawFromRow(work, n, s.temperature);
      const c = truncatedCandidates(work, n, s);
      const u = this.rng.next();
      let cum = 0;
      for (let i = 0; i < c.ids.length; i++) {
        cum += c.probs[i]!;
        if (u < cum) return c.ids[i]!;
      }
      return c.ids[c.ids.length - 1]!;
    }
  
    /** A draw from softmax(work / T) over the whole row, without sorting. */
    private drawFromRow(work: Float64Array, n: number, temperature: number): number {
      const max = work[argmax(work, n)]!;
      const invT = 1 / temperature;
      let z = 0;
      for (let i = 0; i < n; i++) z += Math.exp((work[i]! - max) * invT);
      const target = this.rng.next() * z;
      let cum = 0;
      let last = -1;
      for (let i = 0; i < n; i++) {
        const w = Math.exp((work[i]! - max) * invT);
        if (w === 0) continue;
        cum += w;
        last = i;
        if (target < cum) return i;
      }
      return last;
    }
  }
  return { ReferenceSampler, logSoftmax: refLogSoftmax, topLogprobs: refTopLogprobs };
})();

// ---------------------------------------------------------------- the benchmark

const { values } = parseArgs({ options: { vocab: { type: 'string', default: '256000' }, iters: { type: 'string', default: '0' } } });
const n = Number(values.vocab);
const itersArg = Number(values.iters);

/** A logits row shaped like a language model's: a broad bulk, a short head of likely ids. */
function modelLikeRow(seed: number): Float32Array {
  const rng = new Rng(seed);
  const row = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // Sum of uniforms ~ normal(0, 2).
    row[i] = (rng.next() + rng.next() + rng.next() + rng.next() - 2) * 3.5 - 4;
  }
  for (let j = 0; j < 30; j++) row[Math.floor(rng.next() * n)] = 8 + rng.next() * 6;
  return row;
}

const rows = Array.from({ length: 4 }, (_, i) => modelLikeRow(100 + i));
const context = Array.from({ length: 600 }, (_, i) => (i * 7919) % n);
const generated = context.slice(400);

interface Case {
  name: string;
  options: SamplingOptions;
  penalties?: boolean;
  logprobs?: number;
}

const cases: Case[] = [
  { name: 'greedy (temperature 0)', options: { temperature: 0 } },
  { name: 'temperature 1, full row', options: { temperature: 1 } },
  { name: 'top-k 40, T 0.8', options: { temperature: 0.8, topK: 40 } },
  { name: 'top-p 0.95, T 1', options: { temperature: 1, topP: 0.95 } },
  { name: 'min-p 0.05, T 1', options: { temperature: 1, minP: 0.05 } },
  { name: 'top-k 64 + top-p 0.95 + min-p 0.05', options: { temperature: 0.7, topK: 64, topP: 0.95, minP: 0.05 } },
  { name: 'T 1 + rep/freq penalties (600 ctx)', options: { temperature: 1, repetitionPenalty: 1.1, frequencyPenalty: 0.3 }, penalties: true },
  { name: 'T 1 + logprobs (top 5)', options: { temperature: 1 }, logprobs: 5 },
];

type Run = (row: Float32Array) => number;

function timePerToken(run: Run, iters: number): number {
  for (let i = 0; i < Math.min(5, iters); i++) run(rows[i % rows.length]!); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) run(rows[i % rows.length]!);
  return (performance.now() - t0) / iters;
}

console.log(`bench:sampler  vocab ${n}  (ms per token: reference = the sampler before the rewrite)`);
console.log(`${'setting'.padEnd(38)} ${'before ms'.padStart(10)} ${'after ms'.padStart(10)} ${'speed-up'.padStart(9)}`);
for (const c of cases) {
  const ctx = c.penalties ? context : [];
  const gen = c.penalties ? generated : [];
  const make = (fast: boolean): Run => {
    const s = fast ? new Sampler({ seed: 7, ...c.options }) : new ref.ReferenceSampler({ seed: 7, ...c.options });
    return (row) => {
      const id = s.sample(row, n, ctx, gen);
      if (c.logprobs !== undefined) {
        if (fast) {
          const lp = tokenLogprobs(row, n, id, c.logprobs);
          return lp.top.length + lp.logprob;
        }
        const lp = ref.logSoftmax(row, n);
        return ref.topLogprobs(lp, n, c.logprobs).length + lp[id]!;
      }
      return id;
    };
  };
  // Same seed, same rows: both must pick the same ids (and logprobs).
  const a = make(false);
  const b = make(true);
  for (let i = 0; i < 8; i++) {
    const x = a(rows[i % rows.length]!);
    const y = b(rows[i % rows.length]!);
    if (Math.abs(x - y) > 1e-6) throw new Error(`${c.name}: reference ${x} != optimized ${y} at token ${i}`);
  }
  // Aim for ~0.4 s per measurement.
  const probe = timePerToken(make(false), 3);
  const iters = itersArg > 0 ? itersArg : Math.max(10, Math.min(400, Math.round(400 / probe)));
  const before = timePerToken(make(false), iters);
  const after = timePerToken(make(true), iters * 2);
  console.log(`${c.name.padEnd(38)} ${before.toFixed(3).padStart(10)} ${after.toFixed(3).padStart(10)} ${(before / after).toFixed(2).padStart(8)}x`);
}
void logSoftmax;
void topLogprobs;
void resolveSampling;
