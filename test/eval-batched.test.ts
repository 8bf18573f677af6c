/** The batched, prefix-shared loglikelihood path equals one plain forward per (context, continuation). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadModel } from '../src/model/load.js';
import { LocalLM } from '../src/eval/lm.js';

test('prefix-shared multiple choice == plain forward per pair (within 1e-4), wasm and js', async () => {
  for (const backend of ['wasm', 'js'] as const) {
    const { model, tokenizer } = await loadModel('demo', { backend });
    const requests = [
      { context: 'Question: What is 2 + 3?\nAnswer:', continuation: ' 5', group: 0 },
      { context: 'Question: What is 2 + 3?\nAnswer:', continuation: ' 6', group: 0 },
      { context: 'Question: What is 2 + 3?\nAnswer:', continuation: ' twenty five apples', group: 0 },
      { context: 'Question: What is 2 + 3?\nAnswer:', continuation: ' 23', group: 0 },
      { context: 'The cat sat on the', continuation: ' mat', group: 1 },
      { context: 'The cat sat on the', continuation: ' hat.', group: 1 },
      // multiple inputs (winogrande): different contexts, same continuation
      { context: 'The trophy did not fit because the trophy', continuation: ' was too big.', group: 2 },
      { context: 'The trophy did not fit because the suitcase', continuation: ' was too big.', group: 2 },
      { context: '', continuation: 'Hello world', group: 3 },
    ];
    const shared = await new LocalLM(model, tokenizer!, { batchSize: 3 }).loglikelihood(requests);
    // Reference: each pair alone, one forward of context + continuation[:-1] with all positions.
    const lm = new LocalLM(model, tokenizer!, { prefixSharing: false });
    for (let i = 0; i < requests.length; i++) {
      const { context, continuation } = lm.encodePair(requests[i]!.context, requests[i]!.continuation);
      const ids = [...context, ...continuation.slice(0, -1)];
      const res = model.forward(ids, model.createCache(ids.length), { allPositions: true });
      let ll = 0;
      let greedy = true;
      for (let t = 0; t < continuation.length; t++) {
        const row = res.logits.subarray((context.length - 1 + t) * res.vocab, (context.length + t) * res.vocab);
        let max = -Infinity;
        let arg = 0;
        row.forEach((x, v) => {
          if (x > max) {
            max = x;
            arg = v;
          }
        });
        const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
        ll += row[continuation[t]!]! - lse;
        greedy &&= arg === continuation[t];
      }
      assert.ok(Math.abs(shared[i]![0] - ll) < 1e-4, `${backend} request ${i}: ${shared[i]![0]} vs ${ll}`);
      assert.equal(shared[i]![1], greedy, `${backend} request ${i} greedy`);
      assert.ok(ll < 0);
    }
    model.dispose();
  }
});

test('harness encoding: trailing context spaces move to the continuation; empty context scores after <bos>', async () => {
  const { model, tokenizer } = await loadModel('demo', { backend: 'js' });
  const lm = new LocalLM(model, tokenizer!);
  const a = lm.encodePair('Answer: ', 'yes');
  const b = lm.encodePair('Answer:', ' yes');
  assert.deepEqual(a, b);
  assert.equal(a.context[0], tokenizer!.bosId);
  assert.deepEqual([...a.context, ...a.continuation], tokenizer!.encode('Answer: yes'));
  const e = lm.encodePair('', 'Hello');
  assert.deepEqual(e.context, [tokenizer!.bosId]);
  assert.deepEqual(e.continuation, tokenizer!.encode('Hello', { addBos: false }));
  // rolling windows cover every token once, each window at most maxLength tokens
  const small = new LocalLM(model, tokenizer!, { maxLength: 4 });
  const toks = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
  const w = small.rollingWindows(toks);
  assert.deepEqual(w.flatMap((x) => x.continuation), toks);
  for (const x of w) assert.ok(x.context.length + x.continuation.length - 1 <= 4);
  assert.deepEqual(w[0], { context: [tokenizer!.bosId], continuation: [10, 11, 12, 13] });
  assert.deepEqual(w[1], { context: [13], continuation: [14, 15, 16, 17] });
  model.dispose();
});
