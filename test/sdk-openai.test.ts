/**
 * The openai package's zod helpers (zodResponseFormat, zodFunction with
 * chat.completions.parse), unchanged, against a running `gemma serve --model demo`: the schemas
 * zod writes compile and the parsed results validate. Random weights: shapes and validity only.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { startServe, type ServeProcess } from './sdk-server.js';

let serve: ServeProcess;
let client: OpenAI;

before(async () => {
  serve = await startServe();
  client = new OpenAI({ baseURL: serve.baseURL, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await serve.close();
});

test('openai: chat.completions.parse with zodResponseFormat and zodFunction', async () => {
  const Person = z.object({ age: z.number().int(), day: z.iso.date(), mood: z.enum(['happy', 'sad']), nick: z.string().max(8).nullable() });
  const r = await client.chat.completions.parse({ model: 'demo', messages: [{ role: 'user', content: 'A person' }], response_format: zodResponseFormat(Person, 'person'), max_tokens: 200, seed: 1 });
  const parsed = r.choices[0]!.message.parsed;
  assert.ok(parsed);
  assert.deepEqual(Person.parse(parsed), parsed);
  const Args = z.object({ city: z.string().max(10), unit: z.enum(['C', 'F']) });
  const t = await client.chat.completions.parse({ model: 'demo', messages: [{ role: 'user', content: 'Weather?' }], tools: [zodFunction({ name: 'weather', parameters: Args })], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 200, seed: 1 });
  const calls = t.choices[0]!.message.tool_calls ?? [];
  assert.equal(calls.length, 1);
  const call = calls[0]!;
  assert.ok(call.type === 'function');
  assert.equal(call.function.name, 'weather');
  assert.deepEqual(Args.parse(call.function.parsed_arguments), call.function.parsed_arguments);
  assert.equal(t.choices[0]!.finish_reason, 'tool_calls');
});
