/**
 * Run by test/runtime-smoke.test.ts under another runtime (Node 26, Deno, Bun): the library on the
 * wasm backend - greedy tokens of the demo model and the golden forward pass - printed as one JSON
 * line for the test (on this repository's Node) to compare.
 *   RUNTIME dist/test/runtime-smoke-script.js GOLDEN_DIR
 */
import fs from 'node:fs';
import path from 'node:path';
import { createWasmBackend, generateText, loadModel, VERSION } from '../src/index.js';

const goldenDir = process.argv[2]!;
// The model owns its backend (model.dispose() disposes it): one per model.
const backend = await createWasmBackend({ threads: 2 });
const variant = backend.variant;
const demo = await loadModel('demo', { backend });
const prompt = demo.tokenizer!.encode('Once upon a time');
const { ids } = await generateText(demo.model, demo.tokenizer, prompt, { maxTokens: 12, temperature: 0, ignoreEos: true });
demo.model.dispose();

/** Largest |logit - reference| over every position of every golden sequence. */
const golden: Record<string, number> = {};
for (const variant of ['gemma2', 'gemma3']) {
  const { model } = await loadModel(path.join(goldenDir, variant), { backend: await createWasmBackend({ threads: 2 }) });
  const ref = JSON.parse(fs.readFileSync(path.join(goldenDir, variant, 'golden.json'), 'utf8')) as { sequences: Array<{ input_ids: number[]; all_logits: number[][] }> };
  let worst = 0;
  for (const seq of ref.sequences) {
    const r = model.forward(seq.input_ids, model.createCache(128), { allPositions: true });
    seq.all_logits.forEach((row, t) => row.forEach((v, i) => (worst = Math.max(worst, Math.abs(r.logits[t * r.vocab + i]! - v)))));
  }
  golden[variant] = worst;
  model.dispose();
}
console.log(JSON.stringify({ version: VERSION, variant, ids, golden }));
