/**
 * Issue 13's training sanity checks, on tiny models so that they run in seconds:
 * - 16 chat examples (loss on the model turns) overfit to a loss under 0.2 within 200 steps (full
 *   fine-tuning of the demo model, every example in each step's batch);
 * - 1,000 steps of full fine-tuning without a NaN or an Inf (a golden Gemma 2 checkpoint with
 *   soft-caps, short sequences, a learning rate high enough to move it);
 * - the same seed gives identical adapter bytes: two runs of `gemma finetune --method lora --seed S`
 *   (shuffled data, dropout) write the same adapter_model.safetensors and adapter.gguf, another
 *   seed different ones.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { registerFinetuneCommand } from '../src/cli/finetune.js';
import { loadTrainModel } from '../src/train/checkpoint-io.js';
import { loadDataset } from '../src/train/data.js';
import { finetune } from '../src/train/finetune.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { runCli } from './helpers/cli.js';
import { goldenDir, repoRoot } from './helpers/paths.js';

const DEMO = path.join(repoRoot(), 'models', 'demo');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-train-sanity-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** 16 short chats whose answers the model cannot know: only memorizing them lowers the loss. */
function writeChats(file: string): void {
  const names = ['Ada', 'Bo', 'Cy', 'Dee', 'Eli', 'Fay', 'Gus', 'Hal', 'Ivy', 'Jo', 'Kit', 'Lu', 'Max', 'Ned', 'Oz', 'Pia'];
  const colors = ['red', 'blue', 'green', 'pink', 'gold', 'gray', 'teal', 'plum'];
  const lines = names.map((n, i) => JSON.stringify({ messages: [{ role: 'user', content: `Secret of ${n}?` }, { role: 'assistant', content: `${colors[(i * 5) % 8]} ${i * 7 + 3}` }] }));
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

test('16 chat examples overfit to loss < 0.2 within 200 steps (full fine-tuning of the demo model)', async () => {
  const file = path.join(tmp, 'chats.jsonl');
  writeChats(file);
  // LoRA (rank 16, all-linear, lr 2e-2) gets there too, in 69 steps: 4x this test's time.
  const { model, tokenizer } = await loadTrainModel(DEMO, { trainable: true });
  const data = loadDataset(file, tokenizer, { maxSeqLen: 128, vocabSize: model.weights.embed.rows });
  assert.equal(data.train.length, 16);
  const losses: number[] = [];
  for await (const r of finetune(model, data.train, { lr: 5e-3, steps: 200, batchSize: 16, seed: 1 })) {
    if (r.type !== 'step') continue;
    losses.push(r.loss);
    if (r.loss < 0.2) break; // the batch is all 16 examples: every answer is memorized
  }
  const last = losses.at(-1)!;
  console.log(`# loss ${losses[0]!.toFixed(3)} -> ${last.toFixed(3)} in ${losses.length} steps`);
  assert.ok(losses[0]! > 2, `the answers are unknown at first (loss ${losses[0]})`);
  assert.ok(last < 0.2 && losses.length <= 200, `loss ${last} after ${losses.length} steps`);
});

test('1,000 steps of full fine-tuning without NaN or Inf (golden gemma2: soft-caps, sequences of 8)', async () => {
  const { model } = await loadTrainModel(path.join(goldenDir(), 'gemma2'), { trainable: true, noTokenizer: true });
  const V = model.weights.embed.rows;
  const rnd = mulberry32(4);
  const examples = Array.from({ length: 32 }, () => ({ ids: Array.from({ length: 8 }, () => Math.floor(rnd() * V)) }));
  let steps = 0;
  let first = 0, last = 0;
  for await (const r of finetune(model, examples, { lr: 3e-3, steps: 1000, batchSize: 1, seed: 2, warmup: 10, schedule: 'cosine' })) {
    if (r.type !== 'step') continue;
    steps++;
    assert.ok(Number.isFinite(r.loss) && Number.isFinite(r.gradNorm), `step ${r.step}: loss ${r.loss}, grad norm ${r.gradNorm}`);
    if (steps === 1) first = r.loss;
    last = r.loss;
  }
  assert.equal(steps, 1000);
  for (const p of model.trainable()) for (const v of p.data) assert.ok(Number.isFinite(v), `${p.name} holds ${v}`);
  console.log(`# 1,000 steps: loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  assert.ok(last < first, 'it learned something');
});

test('the same --seed gives identical adapter bytes (gemma finetune --method lora, shuffled, dropout); another seed does not', async () => {
  const file = path.join(tmp, 'chats-seed.jsonl');
  writeChats(file);
  const train = async (seed: number, name: string): Promise<{ st: Buffer; gguf: Buffer }> => {
    const out = path.join(tmp, name);
    const r = await runCli(registerFinetuneCommand, ['finetune', '--model', DEMO, '--data', file, '--method', 'lora', '--rank', '4', '--dropout', '0.1', '--lr', '1e-2', '--steps', '6', '--batch-size', '2', '--seed', String(seed), '--json', '--out', out]);
    assert.equal(r.error, undefined, `${String(r.error)}\n${r.stderr}`);
    assert.equal(r.stdout.trim().split('\n').length, 6);
    return { st: fs.readFileSync(path.join(out, 'adapter_model.safetensors')), gguf: fs.readFileSync(path.join(out, 'adapter.gguf')) };
  };
  const a = await train(7, 'a'), b = await train(7, 'b'), c = await train(8, 'c');
  assert.ok(a.st.equals(b.st), 'adapter_model.safetensors: same seed, same bytes');
  assert.ok(a.gguf.equals(b.gguf), 'adapter.gguf: same seed, same bytes');
  assert.ok(!a.st.equals(c.st), 'another seed gives another adapter');
});
