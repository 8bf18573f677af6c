import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../src/errors.js';
import { Rng, Sampler, applyPenalties, logSoftmax, resolveSampling, topLogprobs, truncatedCandidates } from '../src/generate/sampler.js';

/** log of probabilities: a softmax of these gives the probabilities back. */
const logOf = (ps: number[]): Float64Array => Float64Array.from(ps, Math.log);

function draws(sampler: Sampler, logits: ArrayLike<number>, count: number, n?: number): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const id = sampler.sample(logits, n);
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

test('xoshiro128** core matches the reference sequence for state (1, 2, 3, 4)', () => {
  // Worked by hand from the reference algorithm: 11520, 0, 5927040.
  const r = Rng.fromState(1, 2, 3, 4);
  assert.deepEqual([r.nextU32(), r.nextU32(), r.nextU32()], [11520, 0, 5927040]);
});

test('Rng: same seed same stream, different seeds differ, values in [0, 1)', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const sa = Array.from({ length: 100 }, () => a.next());
  const sb = Array.from({ length: 100 }, () => b.next());
  const sc = Array.from({ length: 100 }, () => c.next());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
  const big = new Rng(7);
  let sum = 0;
  for (let i = 0; i < 20000; i++) {
    const x = big.next();
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  assert.ok(Math.abs(sum / 20000 - 0.5) < 0.01, `mean ${sum / 20000}`);
});

test('seeded sampler: same seed, same tokens; another seed, other tokens', () => {
  const logits = new Float32Array(50).map((_, i) => Math.sin(i) * 2);
  const run = (seed: number) => {
    const s = new Sampler({ seed, temperature: 1 });
    return Array.from({ length: 40 }, () => s.sample(logits));
  };
  assert.deepEqual(run(1), run(1));
  assert.notDeepEqual(run(1), run(2));
});

test('temperature 0 is the argmax whatever the seed; lowest id on ties', () => {
  const logits = Float32Array.from([0.1, 3, -2, 2.9, 3]);
  for (const seed of [1, 2, 3]) assert.equal(new Sampler({ seed, temperature: 0 }).sample(logits), 1);
  assert.equal(new Sampler({ temperature: 0 }).sample(Float32Array.from([-1, -5, -0.5])), 2);
});

test('never samples an id past the usable vocab (padded rows)', () => {
  const logits = Float32Array.from([0, 0, 0, 50, 50]); // ids 3, 4 are padding
  assert.equal(new Sampler({ temperature: 0 }).sample(logits, 3), 0);
  const m = draws(new Sampler({ seed: 5 }), logits, 300, 3);
  assert.ok([...m.keys()].every((id) => id < 3), [...m.keys()].join(','));
});

test('repetition penalty: positive logits divided, negative multiplied, once per distinct token', () => {
  const l = Float64Array.from([2, -1, 0.5, 4]);
  applyPenalties(l, 4, { repetitionPenalty: 2, presencePenalty: 0, frequencyPenalty: 0 }, [0, 1, 0, 0], []);
  assert.deepEqual([...l], [1, -2, 0.5, 4]);
  // Effect on greedy choice: 3 > 2.5 until token 0 is penalized to 1.5 (< 2.5).
  const logits = Float32Array.from([3, 2.5]);
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 2 }).sample(logits, 2, [0], []), 1);
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 2 }).sample(logits, 2, [1], []), 0);
});

test('presence and frequency penalties (OpenAI): l -= presence * [c > 0] + frequency * c', () => {
  const l = Float64Array.from([1, 1, 1, 1]);
  applyPenalties(l, 4, { repetitionPenalty: 1, presencePenalty: 0.5, frequencyPenalty: 0.25 }, [3, 3, 3], [0, 0, 0, 2]);
  // token 0: 3 times -> 1 - 0.5 - 0.75; token 2: once -> 1 - 0.5 - 0.25; prompt-only token 3 untouched.
  assert.deepEqual([...l], [1 - 0.5 - 0.75, 1, 1 - 0.5 - 0.25, 1]);
  // A negative presence penalty encourages repetition.
  const logits = Float32Array.from([1, 1.2]);
  assert.equal(new Sampler({ temperature: 0, presencePenalty: -1 }).sample(logits, 2, [], [0]), 0);
  assert.equal(new Sampler({ temperature: 0, frequencyPenalty: 0.1 }).sample(logits, 2, [], [1, 1, 1]), 0);
});

// Probabilities 0.5, 0.3, 0.15, 0.05 (ids shuffled: id 0 holds 0.15, id 1 0.5, id 2 0.05, id 3 0.3).
const P = [0.15, 0.5, 0.05, 0.3];
const L = logOf(P);

test('logitBias: added before sampling (+100 forces, -100 bans), ids past the row ignored, validated', () => {
  const row = new Float32Array([1, 5, 2, 0.5]);
  assert.equal(new Sampler({ temperature: 0 }).sample(row), 1);
  assert.equal(new Sampler({ temperature: 0, logitBias: new Map([[1, -100]]) }).sample(row), 2);
  for (let seed = 0; seed < 20; seed++) assert.equal(new Sampler({ seed, temperature: 1.5, logitBias: new Map([[3, 100]]) }).sample(row), 3);
  assert.equal(new Sampler({ temperature: 0, logitBias: new Map([[9, 100]]) }).sample(row), 1, 'id past the row: no effect');
  assert.equal(row[1], 5, 'the row is not modified');
  assert.throws(() => resolveSampling({ logitBias: new Map([[1, 101]]) }), UsageError);
  assert.throws(() => resolveSampling({ logitBias: new Map([[-1, 1]]) }), UsageError);
  assert.throws(() => resolveSampling({ logitBias: { 1: 2 } as unknown as Map<number, number> }), UsageError);
});

test('top-k keeps the k most likely tokens, renormalized', () => {
  const c = truncatedCandidates(L, 4, { temperature: 1, topK: 2, topP: 1, minP: 0 });
  assert.deepEqual(c.ids, [1, 3]);
  assert.ok(Math.abs(c.probs[0]! - 0.5 / 0.8) < 1e-12 && Math.abs(c.probs[1]! - 0.3 / 0.8) < 1e-12);
  const m = draws(new Sampler({ seed: 3, topK: 2 }), L, 2000);
  assert.deepEqual([...m.keys()].sort(), [1, 3]);
  assert.ok(Math.abs(m.get(1)! / 2000 - 0.625) < 0.05);
});

test('top-p keeps the smallest prefix whose mass reaches p', () => {
  const kept = (topP: number) => truncatedCandidates(L, 4, { temperature: 1, topK: 0, topP, minP: 0 }).ids;
  assert.deepEqual(kept(0.4), [1]); // 0.5 >= 0.4
  assert.deepEqual(kept(0.75), [1, 3]); // 0.5 < 0.75, 0.8 >= 0.75
  assert.deepEqual(kept(0.85), [1, 3, 0]); // 0.8 < 0.85, 0.95 >= 0.85
  assert.deepEqual(kept(0.99), [1, 3, 0, 2]);
  const m = draws(new Sampler({ seed: 9, topP: 0.75 }), L, 1000);
  assert.deepEqual([...m.keys()].sort(), [1, 3]);
});

test('top-p applies to the renormalized top-k set', () => {
  // top-k 3 -> 0.5/0.95, 0.3/0.95, 0.15/0.95 = 0.526, 0.316, 0.158: p = 0.8 needs two tokens (0.842).
  assert.deepEqual(truncatedCandidates(L, 4, { temperature: 1, topK: 3, topP: 0.8, minP: 0 }).ids, [1, 3]);
  // Without top-k, 0.5 + 0.3 = 0.8 (float rounding aside) - use 0.81 to need the third.
  assert.deepEqual(truncatedCandidates(L, 4, { temperature: 1, topK: 0, topP: 0.81, minP: 0 }).ids, [1, 3, 0]);
  assert.deepEqual(truncatedCandidates(L, 4, { temperature: 1, topK: 3, topP: 0.81, minP: 0 }).ids, [1, 3]);
});

test('min-p keeps tokens with p >= minP * pmax', () => {
  const kept = (minP: number) => truncatedCandidates(L, 4, { temperature: 1, topK: 0, topP: 1, minP }).ids;
  assert.deepEqual(kept(0.2), [1, 3, 0]); // threshold 0.1
  assert.deepEqual(kept(0.5), [1, 3]); // threshold 0.25
  assert.deepEqual(kept(0.05), [1, 3, 0, 2]); // threshold 0.025
  assert.deepEqual(kept(1), [1]);
  const m = draws(new Sampler({ seed: 11, minP: 0.5 }), L, 1000);
  assert.deepEqual([...m.keys()].sort(), [1, 3]);
});

test('temperature reshapes the distribution before truncation', () => {
  // At T = 2 the probabilities become proportional to sqrt(p): 0.387, 0.707, 0.224, 0.548.
  const sq = P.map(Math.sqrt);
  const sum = sq.reduce((a, b) => a + b);
  const c = truncatedCandidates(L, 4, { temperature: 2, topK: 0, topP: 1, minP: 0.5 });
  // min-p 0.5 at T=2: threshold 0.5 * sqrt(0.5)/sum -> keeps sqrt(p) >= 0.354: ids 1, 3, 0.
  assert.deepEqual(c.ids, [1, 3, 0]);
  const keptSum = sq[1]! + sq[3]! + sq[0]!;
  assert.ok(Math.abs(c.probs[0]! - sq[1]! / keptSum) < 1e-12);
  // Empirical frequencies at T = 2 without truncation follow sqrt(p).
  const m = draws(new Sampler({ seed: 4, temperature: 2 }), L, 4000);
  for (let id = 0; id < 4; id++) assert.ok(Math.abs((m.get(id) ?? 0) / 4000 - sq[id]! / sum) < 0.03, `id ${id}`);
});

test('top-k on a large row matches a plain sort', () => {
  const rng = new Rng(99);
  const n = 5000;
  const logits = Float32Array.from({ length: n }, () => rng.next() * 10);
  const c = truncatedCandidates(logits, n, { temperature: 0.7, topK: 40, topP: 1, minP: 0 });
  const want = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, 40);
  assert.deepEqual(c.ids, want);
});

test('top-p and min-p on a large row (no top-k) match a plain sort', () => {
  const rng = new Rng(5);
  const n = 20000;
  const logits = Float32Array.from({ length: n }, () => rng.next() * 12);
  const T = 0.8;
  const order = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!);
  const w = order.map((id) => Math.exp(logits[id]! / T));
  const z = w.reduce((a, b) => a + b, 0);
  for (const topP of [0.3, 0.9, 0.999]) {
    let cum = 0;
    let k = 0;
    while (cum < topP) cum += w[k++]! / z;
    const c = truncatedCandidates(logits, n, { temperature: T, topK: 0, topP, minP: 0 });
    assert.deepEqual(c.ids, order.slice(0, k), `topP ${topP}`);
  }
  const minP = 0.05;
  const keptMin = order.filter((_, i) => w[i]! >= minP * w[0]!);
  assert.deepEqual(truncatedCandidates(logits, n, { temperature: T, topK: 0, topP: 1, minP }).ids, keptMin);
});

test('-Infinity and NaN logits are never sampled; all-masked rows throw a typed error', () => {
  const logits = Float32Array.from([-Infinity, NaN, 0.3, -Infinity]);
  const m = draws(new Sampler({ seed: 1 }), logits, 100);
  assert.deepEqual([...m.keys()], [2]);
  assert.throws(() => new Sampler({ seed: 1 }).sample(Float32Array.from([-Infinity, NaN])), /nothing can be sampled/);
});

test('logprobs: log-softmax sums to 1 and top-N is sorted', () => {
  const logits = Float32Array.from({ length: 300 }, (_, i) => Math.cos(i * 0.37) * 5);
  const lp = logSoftmax(logits, 300);
  const total = lp.reduce((a, b) => a + Math.exp(b), 0);
  assert.ok(Math.abs(total - 1) < 1e-9, `sum ${total}`);
  // Ratios are the softmax ratios of the raw logits.
  assert.ok(Math.abs(lp[5]! - lp[9]! - (logits[5]! - logits[9]!)) < 1e-9);
  const top = topLogprobs(lp, 300, 5);
  assert.equal(top.length, 5);
  for (let i = 1; i < 5; i++) assert.ok(top[i - 1]!.logprob >= top[i]!.logprob);
  const best = [...lp.keys()].sort((a, b) => lp[b]! - lp[a]!)[0];
  assert.equal(top[0]!.id, best);
});

test('invalid options give a UsageError naming the option', () => {
  assert.throws(() => resolveSampling({ temperature: -1 }), (e: unknown) => e instanceof UsageError && /temperature/.test(e.message));
  assert.throws(() => resolveSampling({ topK: 1.5 }), (e: unknown) => e instanceof UsageError && /topK/.test(e.message));
  assert.throws(() => resolveSampling({ topP: 0 }), (e: unknown) => e instanceof UsageError && /topP/.test(e.message));
  assert.throws(() => resolveSampling({ minP: 2 }), (e: unknown) => e instanceof UsageError && /minP/.test(e.message));
  assert.throws(() => resolveSampling({ repetitionPenalty: 0 }), (e: unknown) => e instanceof UsageError && /repetitionPenalty/.test(e.message));
  assert.throws(() => resolveSampling({ seed: NaN }), (e: unknown) => e instanceof UsageError && /seed/.test(e.message));
});
