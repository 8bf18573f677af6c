/**
 * A straightforward sampler to check (test/sampling-reference.test.ts) and time (bench/sampler.ts)
 * the optimized one in src/generate/sampler.ts against: copies the row, penalizes with a Set and
 * a Map, sorts every candidate. Same seed and settings must give the same ids.
 */
import { Rng, resolveSampling, type ResolvedSampling, type SamplingOptions } from '../../src/generate/sampler.js';


export function refPenalize(work: Float64Array, n: number, s: ResolvedSampling, context: readonly number[], generated: readonly number[]): void {
  if (s.repetitionPenalty !== 1) {
    const seen = new Set<number>();
    for (const id of context) {
      if (id < 0 || id >= n || seen.has(id)) continue;
      seen.add(id);
      const l = work[id]!;
      work[id] = l > 0 ? l / s.repetitionPenalty : l * s.repetitionPenalty;
    }
  }
  if (s.presencePenalty !== 0 || s.frequencyPenalty !== 0) {
    const counts = new Map<number, number>();
    for (const id of generated) if (id >= 0 && id < n) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const [id, c] of counts) work[id] = work[id]! - s.presencePenalty - s.frequencyPenalty * c;
  }
}

/** Every usable id, most likely first (lowest id first on ties). */
export function sortedIds(w: ArrayLike<number>, n: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) if (w[i]! > -Infinity) ids.push(i);
  return ids.sort((a, b) => w[b]! - w[a]! || a - b);
}

export function refCandidates(w: ArrayLike<number>, n: number, s: Pick<ResolvedSampling, 'temperature' | 'topK' | 'topP' | 'minP'>): { ids: number[]; probs: number[] } {
  const invT = 1 / s.temperature;
  const sorted = sortedIds(w, n);
  if (sorted.length === 0) throw new Error('nothing can be sampled');
  let ids: number[];
  let probs: number[];
  const topK = s.topK > 0 && s.topK < n;
  if (topK) {
    ids = sorted.slice(0, s.topK);
    const maxL = w[ids[0]!]! * invT;
    probs = ids.map((id) => Math.exp(w[id]! * invT - maxL));
    const sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / sum);
    if (s.topP < 1) {
      let cum = 0;
      let keep = 0;
      while (keep < ids.length && (keep === 0 || cum < s.topP)) cum += probs[keep++]!;
      ids = ids.slice(0, keep);
      probs = probs.slice(0, keep);
    }
  } else {
    const maxL = w[sorted[0]!]! * invT;
    let z = 0;
    for (let i = 0; i < n; i++) if (w[i]! > -Infinity) z += Math.exp(w[i]! * invT - maxL);
    const prob = (id: number): number => Math.exp(w[id]! * invT - maxL) / z;
    if (s.topP < 1) {
      let cum = 0;
      let keep = 0;
      while (keep < sorted.length && (keep === 0 || cum < s.topP)) cum += prob(sorted[keep++]!);
      ids = sorted.slice(0, keep);
    } else if (s.minP > 0) {
      const threshold = Math.log(s.minP) + maxL;
      ids = sorted.filter((id) => w[id]! * invT >= threshold);
    } else ids = sorted;
    probs = ids.map(prob);
  }
  if (s.minP > 0) {
    const threshold = s.minP * probs[0]!;
    let keep = 1;
    while (keep < ids.length && probs[keep]! >= threshold) keep++;
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
  }
  const sum = probs.reduce((a, b) => a + b, 0);
  return { ids, probs: probs.map((p) => p / sum) };
}

export class RefSampler {
  readonly s: ResolvedSampling;
  private readonly rng: Rng;
  constructor(o: SamplingOptions) {
    this.s = resolveSampling(o);
    this.rng = new Rng(this.s.seed);
  }
  sample(logits: ArrayLike<number>, n: number, context: readonly number[], generated: readonly number[]): number {
    n = Math.min(n, logits.length);
    const s = this.s;
    const w = new Float64Array(n);
    for (let i = 0; i < n; i++) w[i] = Number.isNaN(logits[i]!) ? -Infinity : logits[i]!;
    refPenalize(w, n, s, context, generated);
    if (s.temperature === 0) {
      let best = -1;
      for (let i = 0; i < n; i++) if (w[i]! > -Infinity && (best < 0 || w[i]! > w[best]!)) best = i;
      if (best < 0) throw new Error('nothing can be sampled');
      return best;
    }
    if ((s.topK === 0 || s.topK >= n) && s.topP >= 1 && s.minP === 0) {
      // softmax(w / T) over the whole row, drawn in id order.
      const sorted = sortedIds(w, n);
      if (sorted.length === 0) throw new Error('nothing can be sampled');
      const max = w[sorted[0]!]!;
      const invT = 1 / s.temperature;
      const weights = Array.from(w, (v) => Math.exp((v - max) * invT));
      const z = weights.reduce((a, b) => a + b, 0);
      const target = this.rng.next() * z;
      let cum = 0;
      let last = -1;
      for (let i = 0; i < n; i++) {
        if (weights[i] === 0) continue;
        cum += weights[i]!;
        last = i;
        if (target < cum) return i;
      }
      return last;
    }
    const c = refCandidates(w, n, s);
    const u = this.rng.next();
    let cum = 0;
    for (let i = 0; i < c.ids.length; i++) {
      cum += c.probs[i]!;
      if (u < cum) return c.ids[i]!;
    }
    return c.ids[c.ids.length - 1]!;
  }
}

export function refLogprobs(x: ArrayLike<number>, n: number, id: number, count: number): { logprob: number; top: Array<{ id: number; logprob: number }> } {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(x[i]! - max);
  const lse = max + Math.log(sum);
  const lp = Array.from({ length: n }, (_, i) => x[i]! - lse);
  return { logprob: lp[id]!, top: sortedIds(lp, n).slice(0, count).map((t) => ({ id: t, logprob: lp[t]! })) };
}
