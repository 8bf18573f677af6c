/**
 * Serve the demo model over the OpenAI-compatible HTTP API, ask one question with fetch, and stop.
 * The same server is `gemma serve --model demo`.
 *
 *   npx tsx examples/server.ts
 */
import { loadModel } from 'gemma-ts';
import { createServer } from 'gemma-ts/server';

const { model, tokenizer } = await loadModel('demo');
const server = await createServer({ model, tokenizer, modelId: 'demo' });
const url = await server.listen({ port: 0, host: '127.0.0.1' });
const res = await fetch(`${url}/v1/chat/completions`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, temperature: 0 }),
});
const body = (await res.json()) as { choices: Array<{ message: { content: string }; finish_reason: string }>; usage: object };
console.log(`HTTP ${res.status}`);
console.log(JSON.stringify(body.choices[0]));
console.log(JSON.stringify(body.usage));
await server.close();
model.dispose();
