/**
 * The optimized sampler (partial selection, shared scratch buffers, no row copy without
 * penalties, one exp per id) against a straightforward reference (test/helpers/sampler-reference:
 * copy the row, penalize with a Set and a Map, sort the whole row, apply the chain). Same seed and settings must
 * give the same token ids; logprobs must agree.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RefSampler, refCandidates, refLogprobs, refPenalize } from './helpers/sampler-reference.js';
import { Rng, Sampler, applyPenalties, logSoftmax, resolveSampling, tokenLogprobs, topLogprobs, truncatedCandidates, type SamplingOptions } from '../src/generate/sampler.js';

// ---------------------------------------------------------------- random cases

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng.next() * xs.length)]!;
}

/** A logits row of one of several shapes: flat, peaked, quantized (many ties), with masked ids. */
function randomRow(rng: Rng, n: number): Float32Array {
  const shape = Math.floor(rng.next() * 5);
  const row = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    if (shape === 0) row[i] = u * 4 - 2;
    else if (shape === 1) row[i] = -8 * Math.log(1 - u + 1e-12) * (rng.next() < 0.5 ? -1 : 1); // heavy tails
    else if (shape === 2) row[i] = Math.round(u * 6) / 2; // ties everywhere
    else if (shape === 3) row[i] = (u - 0.5) * 40; // very peaked after softmax
    else row[i] = i % 97 === 0 ? 12 + u : u; // a few dominant ids
  }
  if (rng.next() < 0.3) {
    for (let j = 0; j < Math.max(1, n >> 4); j++) row[Math.floor(rng.next() * n)] = rng.next() < 0.5 ? -Infinity : NaN;
  }
  return row;
}

function randomSettings(rng: Rng, n: number): SamplingOptions {
  const o: SamplingOptions = {
    temperature: pick(rng, [0, 0.25, 0.7, 1, 1, 1.6]),
    topK: pick(rng, [0, 0, 1, 3, 40, n, n + 5]),
    topP: pick(rng, [1, 1, 0.3, 0.9, 0.999]),
    minP: pick(rng, [0, 0, 0.02, 0.3]),
    seed: Math.floor(rng.next() * 2 ** 40),
  };
  if (rng.next() < 0.4) {
    o.repetitionPenalty = pick(rng, [1, 1.1, 1.5, 0.8]);
    o.presencePenalty = pick(rng, [0, 0.5, -0.3]);
    o.frequencyPenalty = pick(rng, [0, 0.2, 1]);
  }
  return o;
}

test('optimized sampler == straightforward reference over random rows, settings and seeds', () => {
  const rng = new Rng(20240611);
  let cases = 0;
  let draws = 0;
  for (let c = 0; c < 600; c++) {
    const n = pick(rng, [1, 2, 5, 64, 300, 1000, 3000]);
    const rowLen = n + (rng.next() < 0.2 ? 7 : 0); // sometimes a padded row
    const row = randomRow(rng, rowLen);
    const o = randomSettings(rng, n);
    const fast = new Sampler(o);
    const ref = new RefSampler(o);
    const context = Array.from({ length: Math.floor(rng.next() * 30) }, () => Math.floor(rng.next() * (n + 10)) - 3);
    const generated: number[] = [];
    for (let step = 0; step < 6; step++) {
      let want: number | Error;
      try {
        want = ref.sample(row, n, context, generated);
      } catch (e) {
        want = e as Error;
      }
      if (want instanceof Error) {
        assert.throws(() => fast.sample(row, n, context, generated), /nothing can be sampled/);
        break;
      }
      const got = fast.sample(row, n, context, generated);
      assert.equal(got, want, `case ${c} step ${step}: n ${n} ${JSON.stringify(o)}`);
      draws++;
      generated.push(got);
      context.push(got);
    }
    cases++;
  }
  assert.ok(cases === 600 && draws > 2000, `draws ${draws}`);
});

test('truncatedCandidates and applyPenalties == reference (ids and probabilities)', () => {
  const rng = new Rng(77);
  for (let c = 0; c < 400; c++) {
    const n = pick(rng, [3, 50, 700, 2500]);
    const row = randomRow(rng, n);
    const w = Float64Array.from(row, (v) => (Number.isNaN(v) ? -Infinity : v));
    if (w.every((v) => v === -Infinity)) continue;
    const s = resolveSampling({ ...randomSettings(rng, n), temperature: pick(rng, [0.3, 1, 2]) });
    const got = truncatedCandidates(w, n, s);
    const want = refCandidates(w, n, s);
    assert.deepEqual(got.ids, want.ids, `case ${c}`);
    assert.equal(got.probs.length, want.probs.length);
    for (let i = 0; i < got.probs.length; i++) assert.ok(Math.abs(got.probs[i]! - want.probs[i]!) <= 1e-12, `case ${c} prob ${i}`);
    const context = Array.from({ length: 40 }, () => Math.floor(rng.next() * (n + 4)) - 2);
    const generated = context.slice(20);
    const a = Float64Array.from(w);
    const b = Float64Array.from(w);
    applyPenalties(a, n, s, context, generated);
    refPenalize(b, n, s, context, generated);
    assert.deepEqual(a, b, `penalties case ${c}`);
  }
});

test('tokenLogprobs / topLogprobs == reference log-softmax and full sort', () => {
  const rng = new Rng(31337);
  for (let c = 0; c < 300; c++) {
    const n = pick(rng, [1, 4, 100, 2000]);
    const row = randomRow(rng, n).map((v) => (Number.isNaN(v) ? -Infinity : v));
    if (row.every((v) => v === -Infinity)) continue;
    const count = pick(rng, [0, 1, 5, 20]);
    const id = Math.floor(rng.next() * n);
    const want = refLogprobs(row, n, id, count);
    const got = tokenLogprobs(row, n, id, count);
    assert.ok(Object.is(got.logprob, want.logprob) || Math.abs(got.logprob - want.logprob) <= 1e-6, `case ${c}`);
    assert.deepEqual(got.top.map((t) => t.id), want.top.map((t) => t.id), `case ${c}`);
    for (let i = 0; i < got.top.length; i++) assert.ok(Math.abs(got.top[i]!.logprob - want.top[i]!.logprob) <= 1e-6);
    const viaRow = topLogprobs(logSoftmax(row, n), n, count);
    assert.deepEqual(viaRow, got.top, `case ${c}: logSoftmax + topLogprobs`);
  }
});

test('256k-entry rows: same tokens as the reference (top-p on a flat row selects deep into the row)', () => {
  const rng = new Rng(4);
  const n = 256000;
  for (const o of [
    { temperature: 1, seed: 1 },
    { temperature: 0, seed: 2, repetitionPenalty: 1.3 },
    { temperature: 0.8, topK: 40, seed: 3 },
    { temperature: 1, topP: 0.9, seed: 4 },
    { temperature: 0.7, topK: 64, topP: 0.95, minP: 0.05, seed: 5, frequencyPenalty: 0.5 },
    { temperature: 1.2, minP: 0.1, seed: 6 },
  ] satisfies SamplingOptions[]) {
    const row = randomRow(rng, n);
    const fast = new Sampler(o);
    const ref = new RefSampler(o);
    const context = [5, 17, 99, 255999, 17];
    for (let step = 0; step < 2; step++) assert.equal(fast.sample(row, n, context, context), ref.sample(row, n, context, context), JSON.stringify(o));
  }
});
