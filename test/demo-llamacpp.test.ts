/**
 * The demo's skills live in its weights, not in gemma-ts: `gemma convert models/demo --type f32`
 * run in llama.cpp (node-llama-cpp's prebuilt CPU binary, greedy) gives the same answers as
 * gemma-ts on held-out questions.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { encodeChat } from '../src/tokenizer/chat.js';
import { repoRoot } from './helpers/paths.js';

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
type Token = import('node-llama-cpp').Token;

const DEMO = path.join(repoRoot(), 'models', 'demo');
const HELDOUT = path.join(repoRoot(), 'scripts', 'demo', 'heldout');
const GEMMA = path.join(repoRoot(), 'bin', 'gemma.js');
const END_OF_TURN = 106;
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-llamacpp-'));
after(() => fs.rmSync(out, { recursive: true, force: true }));

const questions = (file: string, every: number): string[] =>
  fs.readFileSync(path.join(HELDOUT, file), 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { question: string }).question).filter((_, i) => i % every === 0);

test('demo in llama.cpp: the f32 GGUF from `gemma convert` gives the same greedy answers as gemma-ts', async () => {
  const gguf = path.join(out, 'demo-f32.gguf');
  execFileSync(process.execPath, [GEMMA, 'convert', DEMO, '--out', gguf, '--type', 'f32'], { encoding: 'utf8' });
  const asked = [...questions('arithmetic.jsonl', 20), ...questions('json.jsonl', 40), ...questions('about.jsonl', 8)];
  assert.ok(asked.length >= 30);

  // gemma-ts: one chat process, greedy, a fresh conversation per question.
  const ours = execFileSync(process.execPath, [GEMMA, 'chat', '--model', 'demo', '-t', '0', '-n', '80'], { input: asked.map((q) => `${q}\n/reset\n`).join(''), encoding: 'utf8' }).split('\n').slice(0, -1);
  assert.equal(ours.length, asked.length);

  const tokenizer = await loadTokenizer(DEMO);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, usePrebuiltBinaries: true });
  const model = await llama.loadModel({ modelPath: gguf });
  const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads: 1, sequences: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
  const seq = ctx.getSequence();
  try {
    let same = 0;
    const differ: string[] = [];
    for (const [i, q] of asked.entries()) {
      await seq.clearHistory();
      const prompt = encodeChat(tokenizer, [{ role: 'user', content: q }], { addGenerationPrompt: true });
      const ids: number[] = [];
      // Greedy: llama.cpp's own sampler at temperature 0 (argmax), stopping at <end_of_turn>.
      for await (const t of seq.evaluate(prompt as Token[], { temperature: 0 })) {
        if (t === END_OF_TURN || ids.length >= 80) break;
        ids.push(t);
      }
      const text = tokenizer.decode(ids, { skipSpecial: true });
      if (text === ours[i]) same++;
      else differ.push(`${q}: llama.cpp ${JSON.stringify(text)} / gemma-ts ${JSON.stringify(ours[i])}`);
    }
    // f32 weights in both engines: every answer agrees (a near-tie could flip one token).
    assert.ok(same >= asked.length - 1, `${same}/${asked.length} agree:\n${differ.join('\n')}`);
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
});
