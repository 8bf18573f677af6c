/**
 * Quantize a checkpoint to a llama.cpp-compatible GGUF file, read its header back, and run it.
 *
 *   npx tsx examples/quantize.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { demoModelPath, quantizeModel, readGGUF, loadModel, generateText } from 'gemma-ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-ts-example-'));
try {
  const out = path.join(dir, 'demo.Q8_0.gguf');
  const result = await quantizeModel(demoModelPath(), out, { type: 'q8_0' });
  const gguf = readGGUF(out);
  const dtypes = new Set(gguf.tensors.map((t) => t.dtype));
  console.log(`wrote ${path.basename(out)}: ${result.bytes} bytes, ${gguf.tensors.length} tensors, types ${[...dtypes].join(',')}`);
  const { model, tokenizer } = await loadModel(out);
  const { text } = await generateText(model, tokenizer, tokenizer!.encode('Once upon a time'), { maxTokens: 8, temperature: 0 });
  console.log(`greedy: ${JSON.stringify(text)}`);
  model.dispose();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
