/**
 * `npx tsx bench/sampler.ts [--vocab 256000] [--iters N]`: per-token cost of the sampling chain
 * on one large logits row (a real Gemma vocabulary is 256k), for the current sampler
 * (src/generate/sampler.ts) against the straightforward reference of the tests
 * (test/helpers/sampler-reference.ts: a row-sized copy per token, Set / Map penalties, a full
 * sort of the candidates). Both run in the same process on the same rows; each setting also
 * checks that both pick the same ids (and logprobs).
 */
import { parseArgs } from 'node:util';
import { Rng, Sampler, tokenLogprobs, type SamplingOptions } from '../src/generate/sampler.js';
import { RefSampler, refLogprobs } from '../test/helpers/sampler-reference.js';

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

console.log(`bench:sampler  vocab ${n}  (ms per token: reference = test/helpers/sampler-reference, a straightforward copy-and-sort sampler)`);
console.log(`${'setting'.padEnd(38)} ${'reference ms'.padStart(12)} ${'sampler ms'.padStart(10)} ${'speed-up'.padStart(9)}`);
for (const c of cases) {
  const ctx = c.penalties ? context : [];
  const gen = c.penalties ? generated : [];
  const make = (fast: boolean): Run => {
    const s = fast ? new Sampler({ seed: 7, ...c.options }) : new RefSampler({ seed: 7, ...c.options });
    return (row) => {
      const id = s.sample(row, n, ctx, gen);
      if (c.logprobs !== undefined) {
        if (fast) {
          const lp = tokenLogprobs(row, n, id, c.logprobs);
          return lp.top.length + lp.logprob;
        }
        const lp = refLogprobs(row, n, id, c.logprobs);
        return lp.top.length + lp.logprob;
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
  console.log(`${c.name.padEnd(38)} ${before.toFixed(3).padStart(12)} ${after.toFixed(3).padStart(10)} ${(before / after).toFixed(2).padStart(8)}x`);
}

