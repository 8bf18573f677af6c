/**
 * The Vercel AI SDK (`ai` + `@ai-sdk/openai-compatible`), unchanged, against a running
 * `gemma serve --model demo`: streamText, generateObject / streamObject with zod schemas (the keywords zod
 * writes: minimum / maximum for ints, minLength / maxLength, format + pattern, ...), tools
 * (generateText and streamText, a tool round trip). The demo model has random weights: these
 * check the protocol, the shapes and schema validity, not the content.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateObject, generateText, stepCountIs, streamObject, streamText, tool } from 'ai';
import { z } from 'zod';
import { recordingFetch, startServe, type ServeProcess } from './sdk-server.js';

let serve: ServeProcess;
const bodies: unknown[] = [];
let provider: ReturnType<typeof createOpenAICompatible>;

before(async () => {
  serve = await startServe();
  // supportsStructuredOutputs: send response_format json_schema (else the SDK asks for json_object only).
  provider = createOpenAICompatible({ name: 'gemma', baseURL: serve.baseURL, apiKey: 'unused', supportsStructuredOutputs: true, includeUsage: true, fetch: recordingFetch(bodies) });
});
after(async () => {
  await serve.close();
});

const lastBody = (): Record<string, unknown> => bodies[bodies.length - 1] as Record<string, unknown>;

test('streamText: text deltas, a finish reason and usage', async () => {
  const result = streamText({ model: provider('demo'), prompt: 'Say hello', maxOutputTokens: 8, temperature: 1, seed: 1 });
  const deltas: string[] = [];
  for await (const t of result.textStream) deltas.push(t);
  assert.ok(deltas.length >= 2, `streamed in pieces: ${deltas.length}`);
  assert.equal(await result.text, deltas.join(''));
  assert.equal(await result.finishReason, 'length');
  const usage = await result.usage;
  assert.equal(usage.outputTokens, 8);
  assert.ok((usage.inputTokens ?? 0) > 0);
  assert.equal(lastBody().stream, true);
  // Non-streaming, and a stop at the end of the turn or by max tokens.
  const g = await generateText({ model: provider('demo'), prompt: 'Say hello', maxOutputTokens: 5, temperature: 0 });
  assert.ok(['length', 'stop'].includes(g.finishReason));
  assert.equal(g.usage.outputTokens! <= 5, true);
});

test('generateObject with zod schemas: z.number().int() and friends compile, and the object validates', async () => {
  const schemas = [
    z.object({ age: z.number().int() }),
    z.object({ age: z.number().int().min(0).max(120), score: z.number().positive().max(1), name: z.string().min(1).max(12) }),
    z.object({ id: z.uuid(), day: z.iso.date(), at: z.iso.datetime({ precision: 3 }), ip: z.ipv4(), email: z.email().max(30) }),
    z.object({ code: z.string().regex(/^[A-Z]{3}-\d{2}$/), n: z.number().int().multipleOf(5).gte(-50).lt(50), tags: z.array(z.enum(['a', 'b'])).min(1).max(3), note: z.string().max(6).nullable(), opt: z.boolean().optional() }),
  ];
  for (const [k, schema] of schemas.entries()) {
    for (const seed of [1, 2]) {
      const { object, finishReason } = await generateObject({ model: provider('demo'), schema, prompt: 'Describe a person as JSON', maxOutputTokens: 300, temperature: 1, seed });
      assert.equal(finishReason, 'stop', `schema ${k}`);
      // generateObject already validated with zod; parse again to assert it here.
      assert.deepEqual(schema.parse(object), object, `schema ${k} seed ${seed}`);
      const rf = lastBody().response_format as { type: string; json_schema: { schema: unknown } };
      assert.equal(rf.type, 'json_schema');
    }
  }
  // The case: zod writes minimum / maximum for ints.
  const first = bodies.find((b) => JSON.stringify(b).includes('"age":{"type":"integer","minimum":-9007199254740991'));
  assert.ok(first, 'z.number().int() was sent with its minimum / maximum');
  // output: 'enum' and 'array'.
  const e = await generateObject({ model: provider('demo'), output: 'enum', enum: ['red', 'green'], prompt: 'A color', maxOutputTokens: 20, seed: 3 });
  assert.ok(['red', 'green'].includes(e.object));
  // (The array is open-ended: the trained demo, which never saw such output, closes it with this seed.)
  const a = await generateObject({ model: provider('demo'), output: 'array', schema: z.object({ n: z.number().int().min(1).max(9) }), prompt: 'Numbers', maxOutputTokens: 1000, temperature: 1, seed: 5 });
  assert.ok(Array.isArray(a.object) && a.object.every((x) => Number.isInteger(x.n) && x.n >= 1 && x.n <= 9));
  // streamObject: partial objects, then the final one, valid.
  const Tagged = z.object({ age: z.number().int().min(0).max(99), tags: z.array(z.enum(['a', 'b'])).max(3) });
  const so = streamObject({ model: provider('demo'), schema: Tagged, prompt: 'x', seed: 1, maxOutputTokens: 200 });
  let partials = 0;
  for await (const _ of so.partialObjectStream) partials++;
  assert.ok(partials >= 2, `${partials} partial objects`);
  const final = await so.object;
  assert.deepEqual(Tagged.parse(final), final);
  assert.equal(lastBody().stream, true);
});

const weatherInput = z.object({ city: z.string().min(1).max(12), unit: z.enum(['C', 'F']) });
const weather = tool({
  description: 'The weather in a city',
  inputSchema: weatherInput,
  execute: async ({ city, unit }) => ({ city, unit, degrees: 21 }),
});

test('tools: generateText with a required tool, a round trip back to the model, and streamText tool parts', async () => {
  // Unknown provider options pass through to the body: parallel_tool_calls false = exactly one call.
  const r = await generateText({ model: provider('demo'), prompt: 'Weather in Paris?', tools: { weather }, toolChoice: 'required', maxOutputTokens: 300, seed: 1, providerOptions: { gemma: { parallel_tool_calls: false } } });
  assert.equal(r.finishReason, 'tool-calls');
  assert.equal(r.toolCalls.length, 1);
  for (const c of r.toolCalls) {
    assert.equal(c.toolName, 'weather');
    assert.match(c.toolCallId, /^call_/);
    assert.doesNotThrow(() => weatherInput.parse(c.input));
  }
  assert.equal(r.toolResults.length, r.toolCalls.length);
  const sent = lastBody();
  assert.equal(sent.tool_choice, 'required');
  assert.equal(sent.parallel_tool_calls, false);
  // Two steps: the tool results go back as role "tool" messages and the model answers.
  const loop = await generateText({ model: provider('demo'), prompt: 'Weather in Paris?', tools: { weather }, stopWhen: stepCountIs(2), maxOutputTokens: 300, seed: 2, providerOptions: { gemma: { parallel_tool_calls: false } }, prepareStep: ({ stepNumber }) => (stepNumber === 0 ? { toolChoice: 'required' } : { toolChoice: 'none' }) });
  assert.equal(loop.steps.length, 2);
  assert.equal(loop.steps[0]!.finishReason, 'tool-calls');
  const second = lastBody() as { messages: Array<{ role: string; tool_call_id?: string; tool_calls?: unknown[] }> };
  assert.ok(second.messages.some((m) => m.role === 'assistant' && Array.isArray(m.tool_calls) && m.tool_calls.length >= 1));
  assert.ok(second.messages.some((m) => m.role === 'tool' && typeof m.tool_call_id === 'string'));
  assert.ok(['stop', 'length'].includes(loop.steps[1]!.finishReason));
  // Streaming: tool-input parts then a tool-call whose input validates.
  const s = streamText({ model: provider('demo'), prompt: 'Weather?', tools: { weather }, toolChoice: { type: 'tool', toolName: 'weather' }, maxOutputTokens: 300, seed: 3 });
  const kinds: string[] = [];
  for await (const part of s.fullStream) {
    kinds.push(part.type);
    if (part.type === 'tool-call') assert.doesNotThrow(() => weatherInput.parse(part.input));
    if (part.type === 'error') assert.fail(String(part.error));
  }
  for (const k of ['tool-input-start', 'tool-call', 'tool-result', 'finish']) assert.ok(kinds.includes(k), `${k} in ${kinds.join(',')}`);
  assert.equal(await s.finishReason, 'tool-calls');
  assert.deepEqual(lastBody().tool_choice, { type: 'function', function: { name: 'weather' } });
});
