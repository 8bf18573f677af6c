/**
 * Token sampling: a seeded PRNG and the sampling chain.
 *
 * Order of the chain (each step sees the previous step's output):
 *   1. repetition penalty (HF / llama.cpp: a logit of a token seen in the context is divided by
 *      the penalty when positive and multiplied by it when negative);
 *   2. presence and frequency penalties (OpenAI: logit -= presence * [count > 0] + frequency * count,
 *      counted over the generated tokens);
 *   3. temperature (0 = greedy: argmax of the penalized logits, lowest id on ties);
 *   4. top-k, 5. top-p (nucleus, on the renormalized top-k set), 6. min-p (keep p >= minP * pmax);
 *   7. a draw from the kept set with the seeded generator.
 * Temperature is applied before the truncation steps, as in Hugging Face transformers (llama.cpp's
 * default chain applies it after them; top-k is unaffected, top-p and min-p see a flatter or
 * sharper distribution).
 *
 * Logprobs report the model's distribution: log-softmax of the raw logits, before penalties,
 * temperature and truncation (OpenAI's convention; llama.cpp reports post-sampling probabilities).
 *
 * Ids at or past the row length (a padded embedding table, or a tokenizer smaller than the
 * logits row) are never sampled: every function takes the number of usable ids `n`.
 */
import { ModelError, UsageError } from '../errors.js';
import type { ResponseFormat } from './constraint/index.js';

// ---------------------------------------------------------------- PRNG

/** xoshiro128** (Blackman & Vigna), seeded through splitmix32. Same seed, same stream. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new UsageError(`seed must be a finite number, got ${seed}`);
    // splitmix32 over the low and high 32 bits of the (integer) seed.
    let x = (Math.trunc(seed) >>> 0) ^ Math.imul(Math.floor(Math.trunc(seed) / 4294967296) >>> 0, 0x9e3779b1);
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A generator with an explicit state (for tests against the reference algorithm). */
  static fromState(s0: number, s1: number, s2: number, s3: number): Rng {
    const r = new Rng(0);
    r.s0 = s0 | 0;
    r.s1 = s1 | 0;
    r.s2 = s2 | 0;
    r.s3 = s3 | 0;
    return r;
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A seed for runs where the caller gave none. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 4294967296);
}

// ---------------------------------------------------------------- options

export interface SamplingOptions {
  /** 0 = greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Default 0. */
  topK?: number;
  /** Nucleus: keep the smallest set whose probability reaches topP; 1 = off. Default 1. */
  topP?: number;
  /** Keep tokens with p >= minP * p(most likely); 0 = off. Default 0. */
  minP?: number;
  /** > 1 discourages tokens already in the context (prompt + generated); 1 = off. Default 1. */
  repetitionPenalty?: number;
  /** Subtracted once from the logit of every token generated so far. Default 0. */
  presencePenalty?: number;
  /** Subtracted per occurrence from the logit of tokens generated so far. Default 0. */
  frequencyPenalty?: number;
  /** PRNG seed; same seed and inputs give the same tokens. Default: random. */
  seed?: number;
  /**
   * Added to the logits of these token ids before everything else (OpenAI's logit_bias: -100
   * practically bans a token, +100 practically forces it). Ids past the vocabulary are ignored.
   * Default: none.
   */
  logitBias?: ReadonlyMap<number, number>;
  /**
   * Structured output: `{ type: 'json_object' }` (one JSON object) or `{ type: 'json_schema',
   * schema }` (one JSON value valid under the schema; see constraint/json-schema.ts for the
   * supported keywords). Generation ends when the value is complete. Needs a tokenizer.
   * Default: free text.
   */
  responseFormat?: ResponseFormat;
}

export type ResolvedSampling = Required<Omit<SamplingOptions, 'responseFormat'>>;

/** The tokens a constraint (structured output) allows at one step; see Sampler.sampleConstrained. */
export interface TokenFilter {
  /** Whether this id may come next (cheap: one token through the automaton). */
  allows(id: number): boolean;
  /** A mask over ids [0, n): non-zero = allowed (the costly full computation). */
  mask(n: number): Uint8Array;
}

function checkNumber(name: string, v: number | undefined, fallback: number, ok: (x: number) => boolean, what: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || Number.isNaN(v) || !ok(v)) throw new UsageError(`${name} must be ${what}, got ${String(v)}`);
  return v;
}

/** Fill defaults and validate; throws UsageError naming the option. */
export function resolveSampling(o: SamplingOptions = {}): ResolvedSampling {
  return {
    temperature: checkNumber('temperature', o.temperature, 1, (x) => x >= 0 && Number.isFinite(x), 'a finite number >= 0'),
    topK: checkNumber('topK', o.topK, 0, (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0'),
    topP: checkNumber('topP', o.topP, 1, (x) => x > 0 && x <= 1, 'in (0, 1]'),
    minP: checkNumber('minP', o.minP, 0, (x) => x >= 0 && x <= 1, 'in [0, 1]'),
    repetitionPenalty: checkNumber('repetitionPenalty', o.repetitionPenalty, 1, (x) => x > 0 && Number.isFinite(x), 'a finite number > 0'),
    presencePenalty: checkNumber('presencePenalty', o.presencePenalty, 0, Number.isFinite, 'a finite number'),
    frequencyPenalty: checkNumber('frequencyPenalty', o.frequencyPenalty, 0, Number.isFinite, 'a finite number'),
    seed: checkNumber('seed', o.seed, randomSeed(), Number.isFinite, 'a finite number'),
    logitBias: checkBias(o.logitBias),
  };
}

const NO_BIAS: ReadonlyMap<number, number> = new Map();

function checkBias(b: ReadonlyMap<number, number> | undefined): ReadonlyMap<number, number> {
  if (b === undefined) return NO_BIAS;
  if (!(b instanceof Map)) throw new UsageError('logitBias must be a Map of token id -> bias');
  for (const [id, v] of b) {
    if (!Number.isInteger(id) || id < 0) throw new UsageError(`logitBias: token id ${String(id)} is not an integer >= 0`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < -100 || v > 100) throw new UsageError(`logitBias: the bias of token ${id} must be a number in [-100, 100], got ${String(v)}`);
  }
  return b;
}

// ---------------------------------------------------------------- scratch buffers

// Sampling is synchronous and never re-entered, so every sampler shares these row-sized buffers:
// no per-token allocation of vocabulary-sized arrays (a 256k row is 2 MiB of float64).
let scratchWork = new Float64Array(0);
let scratchWeights = new Float64Array(0);
let scratchSeen = new Uint8Array(0);
let scratchCounts = new Int32Array(0);

function workBuffer(n: number): Float64Array {
  if (scratchWork.length < n) scratchWork = new Float64Array(n);
  return scratchWork;
}

function weightBuffer(n: number): Float64Array {
  if (scratchWeights.length < n) scratchWeights = new Float64Array(n);
  return scratchWeights;
}

/** A usable id of a row of n: an integer in [0, n). */
function validId(id: number, n: number): boolean {
  return id >= 0 && id < n && Number.isInteger(id);
}

// ---------------------------------------------------------------- chain steps

/** Usable ids of a logits row: never past the row, never past the tokenizer's vocab. */
export function usableVocab(rowLength: number, vocabLimit?: number): number {
  return vocabLimit !== undefined && vocabLimit > 0 ? Math.min(rowLength, vocabLimit) : rowLength;
}

/**
 * Apply repetition, presence and frequency penalties in place to `logits[0..n)`.
 * `context` = every token the model has seen (prompt + generated) for the repetition penalty;
 * `generated` = the tokens generated so far for presence / frequency.
 */
export function applyPenalties(
  logits: Float32Array | Float64Array,
  n: number,
  s: Pick<ResolvedSampling, 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty'>,
  context: readonly number[],
  generated: readonly number[],
): void {
  if (s.repetitionPenalty !== 1 && context.length > 0) {
    // Once per distinct id: a flag per id (cleared afterwards) instead of a Set.
    if (scratchSeen.length < n) scratchSeen = new Uint8Array(n);
    const seen = scratchSeen;
    const penalty = s.repetitionPenalty;
    for (let j = 0; j < context.length; j++) {
      const id = context[j]!;
      if (!validId(id, n) || seen[id] === 1) continue;
      seen[id] = 1;
      const l = logits[id]!;
      logits[id] = l > 0 ? l / penalty : l * penalty;
    }
    for (let j = 0; j < context.length; j++) {
      const id = context[j]!;
      if (validId(id, n)) seen[id] = 0;
    }
  }
  if ((s.presencePenalty !== 0 || s.frequencyPenalty !== 0) && generated.length > 0) {
    // Counts per id (reset to 0 as each id is applied) instead of a Map.
    if (scratchCounts.length < n) scratchCounts = new Int32Array(n);
    const counts = scratchCounts;
    for (let j = 0; j < generated.length; j++) {
      const id = generated[j]!;
      if (validId(id, n)) counts[id]!++;
    }
    for (let j = 0; j < generated.length; j++) {
      const id = generated[j]!;
      if (!validId(id, n)) continue;
      const c = counts[id]!;
      if (c === 0) continue;
      counts[id] = 0;
      logits[id] = logits[id]! - s.presencePenalty - s.frequencyPenalty * c;
    }
  }
}

/** Index of the largest value in x[0..n) (lowest index on ties; NaN never wins). */
export function argmax(x: ArrayLike<number>, n: number): number {
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
export interface Candidates {
  ids: number[];
  probs: number[];
}

/**
 * Steps 3 to 6 on already-penalized logits (temperature must be > 0). Tokens with -Infinity or
 * NaN logits are never kept.
 */
export function truncatedCandidates(
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
    probs = new Array<number>(ids.length);
    let sum = 0;
    for (let i = 0; i < ids.length; i++) {
      const p = Math.exp(logits[ids[i]!]! * invT - maxL);
      probs[i] = p;
      sum += p;
    }
    for (let i = 0; i < probs.length; i++) probs[i] = probs[i]! / sum;
  } else {
    // The whole row: normalize once, then take only as many of the best tokens as needed.
    let maxL = -Infinity;
    for (let i = 0; i < n; i++) {
      const l = logits[i]!;
      if (l > maxL) maxL = l;
    }
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
          best.length = keep;
          ids = best;
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
    ids.length = keep;
    probs.length = keep;
  }
  if (s.minP > 0) {
    // Relative to the most likely token: p_i / p_max = exp(l_i/T - l_max/T).
    const threshold = s.minP * probs[0]!;
    let keep = 1;
    while (keep < ids.length && probs[keep]! >= threshold) keep++;
    ids.length = keep;
    probs.length = keep;
  }
  let sum = 0;
  for (let i = 0; i < probs.length; i++) sum += probs[i]!;
  for (let i = 0; i < probs.length; i++) probs[i] = probs[i]! / sum;
  return { ids, probs };
}

// Heap storage for topKIds, grown on demand (k is small: top-k, top logprobs, a top-p prefix).
let heapIds = new Int32Array(64);
let heapVals = new Float64Array(64);

/**
 * The k ids with the largest values `x[i] - offset` in x[0..n), sorted descending (lowest id
 * first on ties); NaN and -Infinity values are never taken. `offset` lets the top logprobs be
 * picked on log-softmax values without materializing the row.
 */
function topKIds(x: ArrayLike<number>, n: number, k: number, offset = 0): number[] {
  if (k <= 0) return [];
  if (heapIds.length < k) {
    heapIds = new Int32Array(k);
    heapVals = new Float64Array(k);
  }
  const hi = heapIds;
  const hv = heapVals;
  // Binary min-heap of (value, id) where "smaller" = worse = lower value or, on ties, higher id.
  let size = 0;
  let i = 0;
  // Fill the heap with the first k usable values.
  for (; i < n && size < k; i++) {
    const v = x[i]! - offset;
    if (!(v > -Infinity)) continue;
    let c = size++;
    while (c > 0) {
      const p = (c - 1) >> 1;
      const pv = hv[p]!;
      // i is the highest id so far: on a tie it is the worse one and moves above its parent.
      if (!(v <= pv)) break;
      hv[c] = pv;
      hi[c] = hi[p]!;
      c = p;
    }
    hv[c] = v;
    hi[c] = i;
  }
  // The rest: ids only grow, so a value equal to the root's is worse than it (higher id).
  let rootV = size === k ? hv[0]! : Infinity;
  for (; i < n; i++) {
    const v = x[i]! - offset;
    if (!(v > rootV)) continue;
    // Replace the root and sift down.
    let p = 0;
    for (;;) {
      const l = 2 * p + 1;
      if (l >= size) break;
      let m = l;
      let mv = hv[l]!;
      const r = l + 1;
      if (r < size) {
        const rv = hv[r]!;
        if (rv < mv || (rv === mv && hi[r]! > hi[l]!)) {
          m = r;
          mv = rv;
        }
      }
      // Child m moves up when it is worse than the new entry (value v, id i: the highest id so
      // far, so on a tie the new entry is the worse one).
      if (!(mv < v)) break;
      hv[p] = mv;
      hi[p] = hi[m]!;
      p = m;
    }
    hv[p] = v;
    hi[p] = i;
    rootV = hv[0]!;
  }
  const order = new Array<number>(size);
  for (let j = 0; j < size; j++) order[j] = j;
  order.sort((a, b) => hv[b]! - hv[a]! || hi[a]! - hi[b]!);
  const out = new Array<number>(size);
  for (let j = 0; j < size; j++) out[j] = hi[order[j]!]!;
  return out;
}

// ---------------------------------------------------------------- logprobs

/** log-softmax of x[0..n) in float64. */
export function logSoftmax(x: ArrayLike<number>, n: number): Float64Array {
  const lse = logSumExp(x, n);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = x[i]! - lse;
  return out;
}

/** log(sum(exp(x[0..n)))), computed as logSoftmax does (max first, then the shifted sum). */
function logSumExp(x: ArrayLike<number>, n: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(x[i]! - max);
  return max + Math.log(sum);
}

export interface TokenLogprob {
  id: number;
  logprob: number;
}

/** The `count` most likely tokens of a log-probability row, most likely first. */
export function topLogprobs(logprobs: ArrayLike<number>, n: number, count: number): TokenLogprob[] {
  if (count <= 0) return [];
  return topKIds(logprobs, n, count).map((id) => ({ id, logprob: logprobs[id]! }));
}

/**
 * The log-probability of `id` and the `count` most likely tokens under log-softmax(x[0..n)):
 * the same numbers as `logSoftmax` then `topLogprobs`, without a row-sized array.
 */
export function tokenLogprobs(x: ArrayLike<number>, n: number, id: number, count: number): { logprob: number; top: TokenLogprob[] } {
  const lse = logSumExp(x, n);
  const top: TokenLogprob[] = count > 0 ? topKIds(x, n, count, lse).map((t) => ({ id: t, logprob: x[t]! - lse })) : [];
  return { logprob: x[id]! - lse, top };
}

// ---------------------------------------------------------------- the sampler

/**
 * A stateful sampler: one per generation. It keeps the PRNG; the caller passes the context and
 * the generated tokens for the penalties.
 */
export class Sampler {
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
    return this.pick(this.penalized(logits, n, context, generated), n);
  }

  /**
   * Pick the next id among the tokens a constraint allows (structured output). The draw follows
   * exactly the distribution of "mask, then sample": the chain above run on the logits with every
   * rejected token set to -Infinity. The full mask (costly on a 256k vocabulary) is only computed
   * when no shortcut gives that same distribution:
   *   - greedy: the unconstrained argmax, when allowed, is the argmax of the allowed ids;
   *   - no truncation (top-k, top-p, min-p off): a draw from the whole row is kept when allowed,
   *     else a second draw comes from the masked row - P(y) = p(y) + (1 - p(A)) p(y) / p(A) =
   *     p(y) / p(A) for an allowed y, the masked softmax exactly;
   *   - top-k: when all k most likely ids are allowed, masking changes nothing (top-p and min-p
   *     then see the same top-k set), so the unconstrained draw is the masked one;
   *   - min-p alone: when every kept id (at most 1024) is allowed, masking keeps the same set.
   * Otherwise (top-p without top-k, or a rejected candidate) the masked row is sampled. The
   * random stream depends only on the sequence's own logits and state, so a seed gives the same
   * tokens batched or alone.
   */
  sampleConstrained(logits: ArrayLike<number>, n: number, context: readonly number[], generated: readonly number[], filter: TokenFilter): number {
    n = Math.min(n, logits.length);
    if (n <= 0) throw new ModelError('empty logits row');
    const s = this.options;
    const x = this.penalized(logits, n, context, generated);
    if (s.temperature === 0) {
      const a = argmax(x, n);
      if (filter.allows(a)) return a;
    } else if ((s.topK === 0 || s.topK >= n) && s.topP >= 1 && s.minP === 0) {
      const id = this.drawFromRow(x, n, s.temperature);
      if (filter.allows(id)) return id;
    } else if (s.topK > 0 && s.topK < n) {
      if (topKIds(x, n, s.topK).every((id) => filter.allows(id))) return this.pick(x, n);
    } else if (s.topP >= 1) {
      const c = truncatedCandidates(x, n, s);
      if (c.ids.length <= 1024 && c.ids.every((id) => filter.allows(id))) return this.drawFrom(c);
    }
    const mask = filter.mask(n);
    // Mask into the work buffer (x may be it already: then in place).
    const work = x === scratchWork ? scratchWork : workBuffer(n);
    let any = false;
    for (let i = 0; i < n; i++) {
      if (mask[i]) {
        const v = x[i]!;
        work[i] = v === v ? v : -Infinity;
        any = true;
      } else work[i] = -Infinity;
    }
    if (!any) throw new UsageError('the output constraint cannot be continued: no token of the vocabulary fits');
    return this.pick(work, n);
  }

  /** The row with logit bias and penalties applied (a copy in the work buffer), or `logits` itself when nothing changes it. */
  private penalized(logits: ArrayLike<number>, n: number, context: readonly number[], generated: readonly number[]): ArrayLike<number> {
    const s = this.options;
    // Every step below treats NaN as -Infinity, so the row is only copied when penalties change it.
    if (s.logitBias.size > 0 || (s.repetitionPenalty !== 1 && context.length > 0) || ((s.presencePenalty !== 0 || s.frequencyPenalty !== 0) && generated.length > 0)) {
      const work = workBuffer(n);
      for (let i = 0; i < n; i++) {
        const v = logits[i]!;
        work[i] = v === v ? v : -Infinity;
      }
      for (const [id, bias] of s.logitBias) if (id < n) work[id] = work[id]! + bias;
      applyPenalties(work, n, s, context, generated);
      return work;
    }
    return logits;
  }

  /** Steps 3 to 7 on a penalized row. */
  private pick(x: ArrayLike<number>, n: number): number {
    const s = this.options;
    if (s.temperature === 0) return argmax(x, n);
    if ((s.topK === 0 || s.topK >= n) && s.topP >= 1 && s.minP === 0) return this.drawFromRow(x, n, s.temperature);
    return this.drawFrom(truncatedCandidates(x, n, s));
  }

  /** A draw from a kept candidate set. */
  private drawFrom(c: Candidates): number {
    const u = this.rng.next();
    let cum = 0;
    for (let i = 0; i < c.ids.length; i++) {
      cum += c.probs[i]!;
      if (u < cum) return c.ids[i]!;
    }
    return c.ids[c.ids.length - 1]!;
  }

  /** A draw from softmax(x / T) over the whole row, without sorting: one exp per id. */
  private drawFromRow(x: ArrayLike<number>, n: number, temperature: number): number {
    const max = x[argmax(x, n)]!;
    const invT = 1 / temperature;
    const w = weightBuffer(n);
    let z = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      // exp(-Infinity) = 0: a -Infinity (or NaN) logit has no weight.
      const e = v > -Infinity ? Math.exp((v - max) * invT) : 0;
      w[i] = e;
      z += e;
    }
    const target = this.rng.next() * z;
    let cum = 0;
    let last = -1;
    for (let i = 0; i < n; i++) {
      const e = w[i]!;
      if (e === 0) continue;
      cum += e;
      last = i;
      if (target < cum) return i;
    }
    return last;
  }
}
