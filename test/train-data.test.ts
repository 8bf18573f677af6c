/**
 * Training data and the loop: which tokens are targets for each JSONL kind (with the demo
 * model's real tokenizer and chat template), packing, bad input naming its line and key, the
 * schedule, and determinism (the same seed gives bit-identical weights).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../src/errors.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { loadTrainModel } from '../src/train/checkpoint-io.js';
import { encodeLine, loadJsonl, packExamples, type TrainExample } from '../src/train/data.js';
import { finetune, countTargets } from '../src/train/finetune.js';
import { learningRate } from '../src/train/optim.js';
import { repoRoot } from './helpers/paths.js';

const demoDir = path.join(repoRoot(), 'models', 'demo');
const tokenizer = await loadTokenizer(demoDir);
const opts = { maxSeqLen: 256, vocabSize: 4032 };

function targetText(ex: TrainExample): string {
  return tokenizer.decode(ex.ids.filter((_, j) => j > 0 && ex.targets![j] === 1));
}

function tmpFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-data-'));
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

test('messages: loss on the model turns only (chat template rendering)', () => {
  const ex = encodeLine(
    { messages: [{ role: 'user', content: 'What is 2 + 3?' }, { role: 'assistant', content: '5' }, { role: 'user', content: 'And 4 + 4?' }, { role: 'model', content: '8' }] },
    'x:1', tokenizer, opts,
  );
  const turns = targetText(ex);
  assert.equal(turns, '5<end_of_turn>\n8<end_of_turn>\n');
  assert.ok(tokenizer.decode(ex.ids).startsWith('<bos><start_of_turn>user\nWhat is 2 + 3?<end_of_turn>\n<start_of_turn>model\n5'));
});

test('prompt / completion: loss on the completion and <eos>; text: every token; ids: as given', () => {
  const pc = encodeLine({ prompt: 'Tell me about cats.', completion: ' Cats purr.' }, 'x:1', tokenizer, opts);
  assert.equal(targetText(pc), ' Cats purr.<eos>');
  assert.equal(pc.ids[0], tokenizer.bosId);
  const t = encodeLine({ text: 'Hello world' }, 'x:1', tokenizer, opts);
  assert.equal(t.ids[0], tokenizer.bosId);
  assert.equal(t.ids[t.ids.length - 1], tokenizer.eosId);
  assert.equal(countTargets(t), t.ids.length - 1);
  const ids = encodeLine({ ids: [5, 6, 7] }, 'x:1', undefined, opts);
  assert.deepEqual(ids.ids, [5, 6, 7]);
  assert.equal(countTargets(ids), 2);
});

test('parseSpecial: special-token text becomes those tokens (one <bos>), as Hugging Face tokenizers read it; off: plain pieces', () => {
  const text = '<bos><start_of_turn>user\nHi<end_of_turn>\n';
  const on = encodeLine({ text }, 'x:1', tokenizer, { ...opts, parseSpecial: true });
  assert.deepEqual(on.ids.slice(0, 2), [tokenizer.bosId, 105], '<bos> once, then <start_of_turn> as id 105');
  assert.ok(on.ids.includes(106), '<end_of_turn> as id 106');
  const off = encodeLine({ text }, 'x:1', tokenizer, opts);
  assert.equal(off.ids[0], tokenizer.bosId);
  assert.ok(!off.ids.includes(105) && !off.ids.includes(106) && off.ids.length > on.ids.length + 6, 'plain text: no special ids, many more pieces');
  assert.ok(!off.ids.slice(1).includes(tokenizer.bosId));
  const pc = encodeLine({ prompt: '<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n', completion: 'Hello<end_of_turn>' }, 'x:1', tokenizer, { ...opts, parseSpecial: true });
  assert.deepEqual(pc.ids.slice(0, 2), [tokenizer.bosId, 105]);
  assert.equal(targetText(pc), 'Hello<end_of_turn><eos>');
  assert.equal(pc.ids.at(-2), 106);
});

test('packing: documents keep their own positions, attend to themselves, never predict across', () => {
  const docs = [{ ids: [2, 10, 11, 1] }, { ids: [2, 12, 1] }, { ids: [2, 13, 14, 15, 1] }];
  const packed = packExamples(docs, 8);
  assert.equal(packed.length, 2);
  assert.deepEqual(packed[0]!.ids, [2, 10, 11, 1, 2, 12, 1]);
  assert.deepEqual([...packed[0]!.positions!], [0, 1, 2, 3, 0, 1, 2]);
  assert.deepEqual([...packed[0]!.targets!], [0, 1, 1, 1, 0, 1, 1]);
  assert.notEqual(packed[0]!.doc![3], packed[0]!.doc![4]);
});

test('bad input: one clear error naming the file, line and key', () => {
  const cases: Array<[string, RegExp]> = [
    ['{"ids": [1, 2]}\n{"ids": [1, 2\n', /bad\.jsonl:2: malformed JSON/],
    ['{"messages": [{"role": "user", "content": "hi"}]}\n', /bad\.jsonl:1: "messages" has no model turn/],
    ['{"ids": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n', /bad\.jsonl:1: the sequence has 10 tokens, over --max-seq-len 8/],
    ['{"ids": [1, 99999]}\n', /bad\.jsonl:1: ids\[1\] = 99999 is not a token id/],
    ['{"input": "x"}\n', /bad\.jsonl:1: expected one of the keys "ids", "text", "messages" or "prompt" \+ "completion" \(got "input"\)/],
    ['{"messages": [{"role": "user"}]}\n', /bad\.jsonl:1: messages\[0\] must be/],
  ];
  for (const [text, re] of cases) {
    const f = tmpFile('bad.jsonl', text);
    assert.throws(() => loadJsonl(f, tokenizer, { ...opts, maxSeqLen: 8 }), (e: unknown) => e instanceof UsageError && re.test((e as Error).message), text);
  }
});

test('schedule: warmup then constant / linear / cosine, as Hugging Face', () => {
  const s = { lr: 1, warmup: 10, totalSteps: 110 };
  assert.equal(learningRate({ ...s, schedule: 'cosine' }, 0), 0);
  assert.equal(learningRate({ ...s, schedule: 'cosine' }, 5), 0.5);
  assert.equal(learningRate({ ...s, schedule: 'cosine' }, 10), 1);
  assert.ok(Math.abs(learningRate({ ...s, schedule: 'cosine' }, 60) - 0.5) < 1e-12);
  assert.ok(Math.abs(learningRate({ ...s, schedule: 'linear' }, 60) - 0.5) < 1e-12);
  assert.equal(learningRate({ ...s, schedule: 'constant' }, 60), 1);
  assert.equal(learningRate({ ...s, schedule: 'linear' }, 110), 0);
});

test('the same seed gives bit-identical weights; another seed does not', async () => {
  const examples = ['The cat sat.', 'A dog ran far.', 'Birds sing.', 'Fish swim.'].map((text, i) => encodeLine({ text }, `x:${i + 1}`, tokenizer, opts));
  const train = async (seed: number) => {
    const { model } = await loadTrainModel('demo');
    const losses: number[] = [];
    for await (const r of finetune(model, examples, { lr: 1e-3, steps: 3, batchSize: 2, seed, warmup: 1, schedule: 'cosine' })) if (r.type === 'step') losses.push(r.loss);
    return { losses, w: model.params.map((p) => Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength)) };
  };
  const a = await train(1), b = await train(1), c = await train(2);
  assert.deepEqual(a.losses, b.losses);
  a.w.forEach((w, i) => assert.ok(w.equals(b.w[i]!), `tensor ${i} differs between identical runs`));
  assert.notDeepEqual(a.losses, c.losses);
});
