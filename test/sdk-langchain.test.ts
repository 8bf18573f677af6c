/**
 * LangChain.js (`@langchain/openai` ChatOpenAI), unchanged, against a running
 * `gemma serve --model demo`: invoke, stream (with usage), withStructuredOutput (json_schema and
 * function-calling methods, zod schemas), bindTools (required, auto, streamed, a ToolMessage
 * round trip). These check the protocol, the shapes and schema validity, not the demo's content.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AIMessage, AIMessageChunk, HumanMessage, ToolMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { ChatOpenAI } from '@langchain/openai';
import { z } from 'zod';
import { recordingFetch, startServe, type ServeProcess } from './sdk-server.js';

let serve: ServeProcess;
const bodies: unknown[] = [];

before(async () => {
  serve = await startServe();
});
after(async () => {
  await serve.close();
});

function chat(maxTokens: number, modelKwargs?: Record<string, unknown>): ChatOpenAI {
  return new ChatOpenAI({ model: 'demo', apiKey: 'unused', configuration: { baseURL: serve.baseURL, fetch: recordingFetch(bodies) }, maxTokens, temperature: 1, maxRetries: 0, ...(modelKwargs ? { modelKwargs } : {}) });
}
const lastBody = (): Record<string, unknown> => bodies[bodies.length - 1] as Record<string, unknown>;

test('ChatOpenAI: invoke and stream (text, finish reason, usage)', async () => {
  // the trained demo may answer a greeting in fewer than 8 tokens: ignore_eos (a gemma serve /
  // llama-server field, passed through unchanged) makes the max_tokens cut certain
  const m = await chat(8, { ignore_eos: true }).invoke('Say hello');
  assert.equal(typeof m.content, 'string');
  assert.ok((m.content as string).length > 0);
  assert.equal(m.response_metadata.finish_reason, 'length');
  assert.equal(m.usage_metadata?.output_tokens, 8);
  let full: AIMessageChunk | undefined;
  let chunks = 0;
  for await (const c of await chat(8, { ignore_eos: true }).stream([new HumanMessage('Say hello')])) {
    chunks++;
    full = full ? full.concat(c) : c;
  }
  assert.ok(chunks >= 3, `${chunks} chunks`);
  assert.ok(typeof full!.content === 'string' && full!.content.length > 0);
  assert.equal(full!.usage_metadata?.output_tokens, 8);
  assert.deepEqual(lastBody().stream_options, { include_usage: true });
  assert.equal(lastBody().ignore_eos, true);
});

const Person = z.object({ age: z.number().int().min(0).max(120), mood: z.enum(['happy', 'sad']), nick: z.string().max(8), seen: z.iso.date() });

test('withStructuredOutput: json_schema and function calling give objects valid under the zod schema', async () => {
  for (const method of [undefined, 'jsonSchema', 'functionCalling'] as const) {
    const structured = chat(300).withStructuredOutput(Person, method ? { method } : undefined);
    const o = await structured.invoke('Describe a person');
    assert.deepEqual(Person.parse(o), o, `method ${method}`);
    const body = lastBody();
    if (method === 'functionCalling') assert.deepEqual(body.tool_choice, { type: 'function', function: { name: 'extract' } });
    else assert.equal((body.response_format as { type: string }).type, 'json_schema');
  }
  // includeRaw gives the message and the parsed object.
  const raw = await chat(300).withStructuredOutput(Person, { includeRaw: true }).invoke('Describe a person');
  assert.ok(raw.raw instanceof AIMessage);
  assert.deepEqual(Person.parse(raw.parsed), raw.parsed);
});

const weatherInput = z.object({ city: z.string().min(1).max(12), unit: z.enum(['C', 'F']) });
const weather = tool(async ({ city, unit }) => JSON.stringify({ city, unit, degrees: 21 }), { name: 'weather', description: 'The weather in a city', schema: weatherInput });

test('bindTools: required / auto / streamed tool calls, and a ToolMessage round trip', async () => {
  const llm = chat(400);
  const m = await llm.bindTools([weather], { tool_choice: 'required', parallel_tool_calls: false }).invoke('Weather in Paris?');
  assert.equal(m.tool_calls?.length, 1);
  const call = m.tool_calls![0]!;
  assert.equal(call.name, 'weather');
  assert.match(call.id ?? '', /^call_/);
  assert.deepEqual(weatherInput.parse(call.args), call.args);
  assert.equal(m.response_metadata.finish_reason, 'tool_calls');
  // auto: either calls or a plain answer, in the right shape.
  const auto = await llm.bindTools([weather]).invoke('Weather in Paris?');
  if (auto.tool_calls?.length) for (const c of auto.tool_calls) assert.deepEqual(weatherInput.parse(c.args), c.args);
  else assert.equal(typeof auto.content, 'string');
  // Streamed calls assemble into valid tool_calls.
  let full: AIMessageChunk | undefined;
  // One call (random weights could otherwise write calls until max_tokens cuts the answer).
  for await (const c of await llm.bindTools([weather], { tool_choice: 'required', parallel_tool_calls: false }).stream('Weather?')) full = full ? full.concat(c) : c;
  assert.equal(full!.tool_calls?.length, 1);
  for (const c of full!.tool_calls!) {
    assert.equal(c.name, 'weather');
    assert.deepEqual(weatherInput.parse(c.args), c.args);
  }
  // The tool's result goes back as a ToolMessage; the model answers in text.
  const result = await weather.invoke(call);
  assert.ok(result instanceof ToolMessage);
  const answer = await chat(20).invoke([new HumanMessage('Weather in Paris?'), m, result]);
  assert.equal(typeof answer.content, 'string');
  const sent = lastBody() as { messages: Array<{ role: string; tool_call_id?: string; tool_calls?: unknown[] }> };
  assert.ok(sent.messages.some((x) => x.role === 'assistant' && Array.isArray(x.tool_calls) && x.tool_calls.length === 1));
  assert.ok(sent.messages.some((x) => x.role === 'tool' && x.tool_call_id === call.id));
});
