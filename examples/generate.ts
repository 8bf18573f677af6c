/**
 * Stream a chat answer from the demo model (a tiny Gemma that gemma-ts trained: it adds and
 * subtracts numbers up to 99 and knows a few sentences about 40 topics - a haiku is beyond it).
 * Point loadModel at a checkpoint directory, a .gguf file or ORG/NAME of a `gemma pull`ed model
 * for real answers.
 *
 *   npx tsx examples/generate.ts
 */
import { loadModel, generate, encodeChat } from 'gemma-ts';

const { model, tokenizer } = await loadModel('demo');
const ids = encodeChat(tokenizer!, [{ role: 'user', content: 'Write a haiku about the sea.' }]);
let n = 0;
for await (const chunk of generate(model, tokenizer, ids, { maxTokens: 24, temperature: 0.7, seed: 1 })) {
  process.stdout.write(chunk.text);
  n++;
}
process.stdout.write(`\n[${n} tokens]\n`);
model.dispose();
