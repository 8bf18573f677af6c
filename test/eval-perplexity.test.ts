/** eval perplexity: KL of a Q8_0 conversion against its f32 checkpoint; chunk / window bookkeeping. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { convertToGGUF } from '../src/formats/convert.js';
import { loadModel } from '../src/model/load.js';
import { perplexityOfIds } from '../src/eval/perplexity.js';
import { LocalLM } from '../src/eval/lm.js';
import { goldenDir } from './helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-ppl-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function ids(n: number, vocab: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return 3 + (x % (vocab - 3));
  });
}

test('KL divergence: Q8_0 of a golden checkpoint vs its f32 is small and positive; f32 vs itself is exactly 0', async () => {
  for (const variant of ['gemma2', 'gemma3']) {
    const dir = path.join(goldenDir(), variant);
    const q8 = path.join(tmp, `${variant}.q8_0.gguf`);
    await convertToGGUF(dir, q8, { type: 'q8_0' });
    const f32 = await loadModel(dir, { backend: 'js' });
    const q = await loadModel(q8, { backend: 'js' });
    const tokens = ids(3 * 64 + 10, f32.model.vocabSize, 7);
    const self = await perplexityOfIds(f32.model, tokens, { ctx: 64, reference: f32.model });
    assert.equal(self.kl!.mean, 0);
    assert.equal(self.kl!.max, 0);
    assert.equal(self.kl!.top1_agreement, 1);
    assert.equal(self.kl!.delta_ppl, 0);
    assert.equal(self.chunks, 3);
    assert.equal(self.tokens_scored, 3 * (64 - 32 - 1));
    const r = await perplexityOfIds(q.model, tokens, { ctx: 64, reference: f32.model });
    assert.ok(r.kl!.mean > 0, `${variant}: KL ${r.kl!.mean}`);
    assert.ok(r.kl!.mean < 1e-2, `${variant}: KL ${r.kl!.mean} is not small`);
    assert.ok(r.kl!.p99 >= r.kl!.median && r.kl!.max >= r.kl!.p99 && r.kl!.median >= r.kl!.min);
    assert.ok(r.kl!.top1_agreement > 0.9, `${variant}: top-1 ${r.kl!.top1_agreement}`);
    assert.ok(Math.abs(r.kl!.delta_ppl) < 0.05 * r.ppl);
    assert.equal(r.kl!.reference_ppl, self.ppl);
    assert.equal(r.kl!.histogram.counts.reduce((a, b) => a + b, 0), r.tokens_scored);
    f32.model.dispose();
    q.model.dispose();
  }
});

test('rolling mode scores every token once and equals the harness rolling loglikelihood', async () => {
  const { model, tokenizer } = await loadModel('demo', { backend: 'js' });
  const text = 'The quick brown fox jumps over the lazy dog. '.repeat(6);
  const toks = tokenizer!.encode(text, { addBos: true });
  const r = await perplexityOfIds(model, toks, { ctx: 32, mode: 'rolling', bosId: tokenizer!.bosId });
  assert.equal(r.tokens_scored, toks.length - 1);
  const lm = new LocalLM(model, tokenizer!, { maxLength: 32 });
  const [ll] = await lm.loglikelihoodRolling([text]);
  assert.ok(Math.abs(-r.nll * r.tokens_scored - ll!) < 1e-3, `${-r.nll * r.tokens_scored} vs ${ll}`);
  model.dispose();
});
