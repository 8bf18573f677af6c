/** eval memorization: exact / approximate matches, edit distance, Wilson CIs. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadModel } from '../src/model/load.js';
import { levenshtein, memorization, memorizationExamples } from '../src/eval/memorization.js';
import { binomialCI } from '../src/eval/metrics.js';

test('levenshtein and example segmentation', () => {
  assert.equal(levenshtein('kitten', 'sitting'), 3);
  assert.equal(levenshtein([1, 2, 3, 4], [1, 3, 4]), 1);
  assert.equal(levenshtein([], [5, 6]), 2);
  // consecutive segments of prefix + suffix tokens, never across documents
  const ex = memorizationExamples([[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11]], 2, 2, 10);
  assert.deepEqual(ex, [
    { prefix: [1, 2], suffix: [3, 4] },
    { prefix: [8, 9], suffix: [10, 11] },
  ]);
  assert.equal(memorizationExamples([[1, 2, 3, 4, 5, 6, 7, 8]], 2, 2, 1).length, 1);
});

test("the model's own greedy continuation is an exact match; one token changed is approximate only", async () => {
  const { model, tokenizer } = await loadModel('demo', { backend: 'js' });
  const tok = tokenizer!;
  // Greedy continuation of a prefix, token by token.
  const prefix = tok.encode('Once upon a time there was a little', { addBos: false });
  const cache = model.createCache(64);
  let res = model.forward([tok.bosId, ...prefix], cache);
  const gen: number[] = [];
  for (let i = 0; i < 10; i++) {
    let best = 0;
    for (let v = 1; v < res.vocab; v++) if (res.logits[v]! > res.logits[best]!) best = v;
    gen.push(best);
    res = model.forward([best], cache);
  }
  const other = gen.slice();
  other[9] = other[9] === 300 ? 301 : 300;
  // Documents given as ids through a tokenizer that maps them back exactly.
  const docs = [[...prefix, ...gen], [...prefix, ...other], [...prefix, ...gen.map((t) => (t === 400 ? 401 : 400))]];
  const fakeTok = { ...tok, encode: (s: string) => docs[Number(s)]!, decode: (ids: readonly number[]) => tok.decode(ids), bosId: tok.bosId, stopIds: tok.stopIds, createStreamDecoder: tok.createStreamDecoder.bind(tok), isSpecial: tok.isSpecial.bind(tok), idToPiece: tok.idToPiece.bind(tok), pieceToId: tok.pieceToId.bind(tok) };
  const r = await memorization(model, fakeTok as typeof tok, ['0', '1', '2'], { prefix: prefix.length, suffix: 10 });
  assert.equal(r.n, 3);
  assert.equal(r.exact.count, 1);
  assert.equal(r.approximate.count, 2);
  assert.deepEqual(r.exact.ci95, binomialCI(1, 3));
  assert.deepEqual(r.matches.map((m) => [m.index, m.exact, m.distance]), [[0, true, 0], [1, false, 0.1]]);
  model.dispose();
});
