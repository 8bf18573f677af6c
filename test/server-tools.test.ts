/**
 * OpenAI tools / function calling on the demo model (random weights: the answer is whatever the
 * constraint lets a random model write, so every call must still name a declared tool and carry
 * arguments valid under its parameters): the openai client, tool_choice required / named / auto /
 * none, streaming = non-streaming, conversation history with tool calls and results, the
 * rendered prompt text, 400s, and the background build of the constraint's token table.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { gemmaTurnRenderer } from '../src/generate/chat-session.js';
import { jsonSchemaGrammar, tokenTable } from '../src/generate/constraint/index.js';
import { hasTokenTable, prebuildTokenTable } from '../src/generate/constraint/vocab.js';
import { demoModelPath } from '../src/model/load.js';
import type { ChatMessageIn } from '../src/server/schemas.js';
import { chatMessagesOf, toolAnswerSchema, toolConfigOf, toolSystemText } from '../src/server/tools.js';
import { loadTokenizerSync } from '../src/tokenizer/load.js';
import { startDemoServer, type RunningServer } from './helpers/server.js';

let srv: RunningServer;
let client: OpenAI;

before(async () => {
  srv = await startDemoServer({ parallel: 4, prefixCacheSize: 0 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await srv.close();
});

/** Enum, integer and boolean parameters: a random model completes them (free strings may loop). */
const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { enum: ['Paris', 'Tokyo', 'Lima'] }, unit: { enum: ['c', 'f'] }, days: { type: 'integer', minimum: 1, maximum: 14 } }, required: ['city', 'unit'] },
    },
  },
  { type: 'function', function: { name: 'set_alarm', parameters: { type: 'object', properties: { hour: { type: 'integer', minimum: 0, maximum: 23 }, on: { type: 'boolean' } }, required: ['hour', 'on'] }, strict: true } },
  { type: 'function', function: { name: 'ping' } },
] as const;

/** Check a call's name and its arguments against the declared tool's parameters. */
function checkCall(name: string, args: string): void {
  const v = JSON.parse(args) as Record<string, unknown>;
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), args);
  switch (name) {
    case 'get_weather':
      assert.ok(['Paris', 'Tokyo', 'Lima'].includes(v.city as string), args);
      assert.ok(['c', 'f'].includes(v.unit as string), args);
      if ('days' in v) assert.ok(Number.isInteger(v.days), args);
      for (const k of Object.keys(v)) assert.ok(['city', 'unit', 'days'].includes(k), args);
      break;
    case 'set_alarm':
      assert.ok(Number.isInteger(v.hour), args);
      assert.equal(typeof v.on, 'boolean', args);
      assert.deepEqual(Object.keys(v), ['hour', 'on']);
      break;
    case 'ping':
      assert.deepEqual(v, {});
      break;
    default:
      assert.fail(`undeclared tool ${name}`);
  }
}

type Call = { name: string; arguments: string };
const callsOf = (m: OpenAI.ChatCompletionMessage): Call[] =>
  (m.tool_calls ?? []).map((c) => {
    assert.equal(c.type, 'function');
    assert.match(c.id, /^call_[0-9a-f]{24}$/);
    const f = (c as OpenAI.ChatCompletionMessageFunctionToolCall).function;
    return { name: f.name, arguments: f.arguments };
  });

const ask = (extra: Record<string, unknown>, seed: number, content = 'What is the weather in Paris?') =>
  client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content }], tools: TOOLS as never, max_tokens: 600, seed, temperature: 1, ...extra } as never) as Promise<OpenAI.ChatCompletion>;

/** A streamed answer reassembled: content and tool calls by index (id, name, arguments concatenated). */
async function streamed(extra: Record<string, unknown>, seed: number) {
  const s = (await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'What is the weather in Paris?' }], tools: TOOLS as never, max_tokens: 600, seed, temperature: 1, stream: true, ...extra } as never)) as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>;
  let content = '';
  let finish: string | null = null;
  const calls: Array<{ id: string; name: string; arguments: string }> = [];
  for await (const chunk of s) {
    const c = chunk.choices[0];
    if (!c) continue;
    content += c.delta.content ?? '';
    for (const t of c.delta.tool_calls ?? []) {
      if (t.id) {
        assert.equal(t.index, calls.length);
        assert.equal(t.type, 'function');
        calls.push({ id: t.id, name: t.function?.name ?? '', arguments: t.function?.arguments ?? '' });
      } else calls[t.index]!.arguments += t.function?.arguments ?? '';
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { content, finish, calls };
}

test('tool_choice "required" (one call): a declared tool with valid arguments, finish_reason tool_calls; stream = non-stream', async () => {
  const names = new Set<string>();
  for (const seed of [1, 2, 3, 4, 5]) {
    const extra = { tool_choice: 'required', parallel_tool_calls: false };
    const r = await ask(extra, seed);
    const c = r.choices[0]!;
    assert.equal(c.finish_reason, 'tool_calls');
    assert.equal(c.message.content, null);
    const calls = callsOf(c.message);
    assert.equal(calls.length, 1);
    for (const k of calls) {
      checkCall(k.name, k.arguments);
      names.add(k.name);
    }
    const s = await streamed(extra, seed);
    assert.equal(s.finish, 'tool_calls');
    assert.equal(s.content, '');
    assert.deepEqual(s.calls.map((k) => ({ name: k.name, arguments: k.arguments })), calls);
    for (const k of s.calls) assert.match(k.id, /^call_[0-9a-f]{24}$/);
  }
  assert.ok(names.size >= 2, `several tools chosen: ${[...names].join(', ')}`);
});

test('the openai client\'s stream helper accumulates the tool_calls deltas into the non-streamed message', async () => {
  const body = { model: 'demo', messages: [{ role: 'user' as const, content: 'What is the weather in Paris?' }], tools: TOOLS as never, tool_choice: 'required' as const, parallel_tool_calls: false, max_tokens: 600, seed: 1 };
  const final = await client.chat.completions.stream(body).finalChatCompletion();
  const whole = await client.chat.completions.create(body);
  assert.equal(final.choices[0]!.finish_reason, 'tool_calls');
  assert.deepEqual(callsOf(final.choices[0]!.message), callsOf(whole.choices[0]!.message));
  assert.ok(callsOf(whole.choices[0]!.message).length >= 1);
});

test('tool_choice "required" with parallel calls: one or more valid calls (or a valid prefix when max_tokens cuts it)', async () => {
  let complete = 0;
  for (const seed of [11, 12, 13]) {
    const r = await ask({ tool_choice: 'required', max_tokens: 1000 }, seed);
    const c = r.choices[0]!;
    if (c.finish_reason === 'tool_calls') {
      complete++;
      const calls = callsOf(c.message);
      assert.ok(calls.length >= 1);
      for (const k of calls) checkCall(k.name, k.arguments);
    } else {
      // Cut: the raw text comes back as content, finish_reason length.
      assert.equal(c.finish_reason, 'length');
      assert.ok(jsonSchemaGrammar(toolAnswerSchema(toolConfigOf(TOOLS, 'required', undefined)!) as never).acceptsPrefix(c.message.content ?? ''));
    }
  }
  // The trained demo never met tool calls and may keep appending calls to the open-ended array
  // until max_tokens; then the same request with parallel_tool_calls false (one call, the array
  // closes after it) must complete with a valid call.
  if (complete === 0) {
    const r = await ask({ tool_choice: 'required', parallel_tool_calls: false, max_tokens: 1000 }, 11);
    const c = r.choices[0]!;
    assert.equal(c.finish_reason, 'tool_calls');
    const calls = callsOf(c.message);
    assert.equal(calls.length, 1);
    checkCall(calls[0]!.name, calls[0]!.arguments);
  }
});

test('a named function: only calls of it; streaming reassembles to the same call', async () => {
  for (const seed of [21, 22]) {
    for (const name of ['set_alarm', 'ping', 'get_weather']) {
      const extra = { tool_choice: { type: 'function', function: { name } } };
      const r = await ask(extra, seed);
      const c = r.choices[0]!;
      assert.equal(c.finish_reason, 'tool_calls');
      const calls = callsOf(c.message);
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.name, name);
      checkCall(name, calls[0]!.arguments);
      if (name === 'set_alarm') {
        const s = await streamed(extra, seed);
        assert.equal(s.finish, 'tool_calls');
        assert.deepEqual(s.calls.map((k) => ({ name: k.name, arguments: k.arguments })), calls);
      }
    }
  }
});

test('tool_choice "auto": tool calls or a plain answer, both well-formed; n > 1 and streaming agree', async () => {
  const kinds = new Set<string>();
  for (const seed of [31, 32, 33, 34]) {
    const r = await ask({ tool_choice: 'auto', parallel_tool_calls: false, max_tokens: 120, n: 2 }, seed);
    for (const c of r.choices) {
      if (c.finish_reason === 'tool_calls') {
        kinds.add('calls');
        assert.equal(c.message.content, null);
        for (const k of callsOf(c.message)) checkCall(k.name, k.arguments);
      } else {
        kinds.add(c.finish_reason);
        assert.ok(c.finish_reason === 'stop' || c.finish_reason === 'length');
        assert.equal(typeof c.message.content, 'string');
        assert.equal(c.message.tool_calls, undefined);
      }
    }
  }
  assert.ok(kinds.has('calls'), [...kinds].join(','));
  // Default tool_choice with tools is "auto"; streamed = non-streamed.
  const extra = { parallel_tool_calls: false, max_tokens: 120 };
  const whole = await ask(extra, 40);
  const s = await streamed(extra, 40);
  const c = whole.choices[0]!;
  assert.equal(s.finish, c.finish_reason);
  if (c.finish_reason === 'tool_calls') assert.deepEqual(s.calls.map((k) => ({ name: k.name, arguments: k.arguments })), callsOf(c.message));
  else assert.equal(s.content, c.message.content);
});

test('tool_choice "none": plain content, and the prompt carries no tool text', async () => {
  const r = await ask({ tool_choice: 'none', max_tokens: 8 }, 1);
  const c = r.choices[0]!;
  assert.equal(c.message.tool_calls, undefined);
  assert.equal(typeof c.message.content, 'string');
  assert.ok(c.finish_reason === 'stop' || c.finish_reason === 'length');
  // Same ids as the request without tools: same text for the same seed.
  const plain = (await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'What is the weather in Paris?' }], max_tokens: 8, seed: 1, temperature: 1 })).choices[0]!;
  assert.equal(c.message.content, plain.message.content);
  assert.equal(toolConfigOf(TOOLS, 'none', undefined), undefined);
  const msgs: ChatMessageIn[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
  const render = gemmaTurnRenderer(srv.loaded.tokenizer!);
  const text = srv.loaded.tokenizer!.decode(render(chatMessagesOf(msgs, toolConfigOf(TOOLS, 'none', undefined)), { addGenerationPrompt: true }));
  assert.doesNotMatch(text, /tool|get_weather/);
  assert.match(text, /Be brief\.\n\nHi/);
});

test('the prompt: the exact tool instruction, after the caller\'s system prompt, in the first user turn', () => {
  const cfg = toolConfigOf(TOOLS, 'auto', undefined)!;
  const expected =
    'You can call these tools (one per line: name, description, parameters as a JSON schema):\n' +
    '{"name":"get_weather","description":"The weather in a city","parameters":{"type":"object","properties":{"city":{"enum":["Paris","Tokyo","Lima"]},"unit":{"enum":["c","f"]},"days":{"type":"integer","minimum":1,"maximum":14}},"required":["city","unit"]}}\n' +
    '{"name":"set_alarm","parameters":{"type":"object","properties":{"hour":{"type":"integer","minimum":0,"maximum":23},"on":{"type":"boolean"}},"required":["hour","on"]}}\n' +
    '{"name":"ping","parameters":{"type":"object","properties":{}}}\n\n' +
    'To call tools, reply with only the JSON object {"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]} (one or more calls). To answer without a tool, reply with only the JSON object {"response": "<your answer>"}.';
  assert.equal(toolSystemText(cfg), expected);
  assert.match(toolSystemText(toolConfigOf(TOOLS, 'required', false)!), /\n\nCall tools: reply with only the JSON object \{"tool_calls": \[\{"name": "<tool name>", "arguments": \{<arguments>\}\}\]\} \(exactly one call\)\.$/);
  assert.match(toolSystemText(toolConfigOf(TOOLS, { type: 'function', function: { name: 'ping' } }, undefined)!), /\n\nCall the tool "ping": reply with only the JSON object \{"tool_calls": \[\{"name": "ping", "arguments": \{<arguments>\}\}\]\}\.$/);
  const tok = srv.loaded.tokenizer!;
  const text = tok.decode(gemmaTurnRenderer(tok)(chatMessagesOf([{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], cfg), { addGenerationPrompt: true }));
  assert.ok(text.includes(`<start_of_turn>user\nBe brief.\n\n${expected}\n\nHi<end_of_turn>\n<start_of_turn>model\n`), text);
});

test('history: an assistant tool_calls message and tool results render as Gemma turns and are accepted by the server', async () => {
  const messages: ChatMessageIn[] = [
    { role: 'user', content: 'Weather in Paris and Lima?' },
    {
      role: 'assistant',
      content: null,
      tool_calls: [
        { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' } },
        { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lima","unit":"c"}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'call_1', content: '18 C, cloudy' },
    { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '24 C, sunny' }] },
    { role: 'assistant', content: 'Paris 18 C, Lima 24 C.' },
    { role: 'user', content: 'Thanks' },
  ];
  const plain = chatMessagesOf(messages, undefined);
  assert.deepEqual(plain, [
    { role: 'user', content: 'Weather in Paris and Lima?' },
    { role: 'assistant', content: '{"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris","unit":"c"}},{"name":"get_weather","arguments":{"city":"Lima","unit":"c"}}]}' },
    { role: 'user', content: 'Tool result (get_weather, call_1): 18 C, cloudy\n\nTool result (get_weather, call_2): 24 C, sunny' },
    { role: 'assistant', content: 'Paris 18 C, Lima 24 C.' },
    { role: 'user', content: 'Thanks' },
  ]);
  const tok = srv.loaded.tokenizer!;
  const text = tok.decode(gemmaTurnRenderer(tok)(plain, { addGenerationPrompt: true }));
  assert.ok(
    text.endsWith(
      '<start_of_turn>model\n{"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris","unit":"c"}},{"name":"get_weather","arguments":{"city":"Lima","unit":"c"}}]}<end_of_turn>\n' +
        '<start_of_turn>user\nTool result (get_weather, call_1): 18 C, cloudy\n\nTool result (get_weather, call_2): 24 C, sunny<end_of_turn>\n' +
        '<start_of_turn>model\nParis 18 C, Lima 24 C.<end_of_turn>\n<start_of_turn>user\nThanks<end_of_turn>\n<start_of_turn>model\n',
    ),
    text,
  );
  // With tools in play the instruction joins the first user turn; the server takes the history.
  assert.match(chatMessagesOf(messages, toolConfigOf(TOOLS, 'auto', undefined))[0]!.content, /^You can call these tools/);
  const r = await client.chat.completions.create({ model: 'demo', messages: messages as never, tools: TOOLS as never, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 600, seed: 3 });
  assert.equal(r.choices[0]!.finish_reason, 'tool_calls');
  for (const k of callsOf(r.choices[0]!.message)) checkCall(k.name, k.arguments);
});

test('max_tokens cutting a tool answer: finish_reason length and the raw text as content', async () => {
  const r = await ask({ tool_choice: 'required', max_tokens: 3 }, 1);
  const c = r.choices[0]!;
  assert.equal(c.finish_reason, 'length');
  assert.equal(c.message.tool_calls, undefined);
  assert.ok((c.message.content ?? '').startsWith('{'), c.message.content ?? '');
  const s = await streamed({ tool_choice: 'required', max_tokens: 3 }, 1);
  assert.equal(s.finish, 'length');
  assert.equal(s.content, c.message.content);
  assert.deepEqual(s.calls, []);
});

test('bad tools: 400 in OpenAI\'s shape naming the problem', async () => {
  const post = async (body: Record<string, unknown>) => {
    const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'x' }], max_tokens: 1, ...body }) });
    return { status: r.status, body: (await r.json()) as { error: { message: string; type: string; param: string | null } } };
  };
  const fn = (name: string, parameters?: unknown) => ({ type: 'function', function: { name, ...(parameters ? { parameters } : {}) } });
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ tools: [fn('bad name!')] }, 'tools', /tools\[0\]\.function\.name must be 1-64 characters/],
    [{ tools: [fn('x'.repeat(65))] }, 'tools', /tools\[0\]\.function\.name/],
    [{ tools: [fn('a'), fn('b'), fn('a')] }, 'tools', /tools\[2\]\.function\.name: the name "a" is declared twice/],
    [{ tools: [fn('a', { type: 'object', properties: { s: { type: 'array', uniqueItems: true } } })] }, 'tools', /tools\[0\]\.function\.parameters at \/properties\/s: the keyword "uniqueItems" is not supported/],
    [{ tools: [fn('a', 'object')] }, 'tools', /parameters must be a JSON schema object/],
    [{ tools: [{ type: 'code_interpreter' }] }, 'tools', /only \{"type": "function"/],
    [{ tools: { a: 1 } }, 'tools', /tools must be an array/],
    [{ tools: [fn('a')], tool_choice: { type: 'function', function: { name: 'b' } } }, 'tool_choice', /"b", which is not in tools/],
    [{ tools: [fn('a')], tool_choice: 'sometimes' }, 'tool_choice', /tool_choice must be/],
    [{ tool_choice: 'required' }, 'tool_choice', /needs tools/],
    [{ tools: [fn('a')], response_format: { type: 'json_object' } }, 'response_format', /cannot be combined with tools/],
    [{ messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: 'r' }] }, 'messages.1.tool_call_id', /needs its tool_call_id/],
    [{ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', tool_calls: [{ id: 'c', function: { name: 'f' } }] }] }, 'messages.1.tool_calls.0.function.arguments', /invalid request/],
  ];
  // nested past the compiler's limit, and past the engine's stack (a 400, never a 500)
  const nest = (depth: number): Record<string, unknown> => {
    let sch: Record<string, unknown> = { type: 'string' };
    for (let d = 0; d < depth; d++) sch = { type: 'array', items: sch };
    return sch;
  };
  cases.push([{ tools: [fn('a', { type: 'object', properties: { a: nest(200) } })] }, 'tools', /nests deeper than 128 levels/]);
  const deep = `{"model":"demo","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a","parameters":${'{"type":"array","items":'.repeat(20000)}{}${'}'.repeat(20000)}}}]}`;
  const deepRes = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: deep });
  assert.equal(deepRes.status, 400);
  assert.match(((await deepRes.json()) as { error: { message: string } }).error.message, /tools\[0\]\.function\.parameters: not serializable as JSON/);
  // a history tool call whose arguments nest past the engine's stack is rendered as its string
  // (not a 500): 40,000 brackets then exceed the context, a 400 saying so
  const deepArgs = await post({ tools: [fn('f')], messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '['.repeat(20000) + ']'.repeat(20000) } }] }, { role: 'tool', tool_call_id: 'c1', content: 'ok' }] });
  assert.equal(deepArgs.status, 400, JSON.stringify(deepArgs.body));
  assert.equal((deepArgs.body.error as { code?: string }).code, 'context_length_exceeded');
  for (const [body, param, re] of cases) {
    const r = await post(body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.error.type, 'invalid_request_error');
    assert.equal(r.body.error.param, param, JSON.stringify(r.body));
    assert.match(r.body.error.message, re);
  }
  await assert.rejects(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }], tools: [fn('bad name!') as never] }), (e: unknown) => e instanceof OpenAI.BadRequestError);
  // The legacy functions API and tools on /v1/completions stay unsupported.
  const legacy = await post({ functions: [{ name: 'f' }] });
  assert.equal(legacy.status, 400);
  assert.equal(legacy.body.error.param, 'functions');
  const cmpl = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', prompt: 'x', tools: [fn('a')] }) });
  assert.equal(cmpl.status, 400);
  // tool_choice "none" with tools, and tools: [] are plain requests.
  assert.equal((await post({ tools: [fn('a')], tool_choice: 'none' })).status, 200);
  assert.equal((await post({ tools: [] })).status, 200);
});

test('composed schemas: $refs inside a tool\'s parameters resolve inside the answer schema', () => {
  const tools = [
    { type: 'function', function: { name: 'a', parameters: { type: 'object', properties: { p: { $ref: '#/$defs/P' } }, required: ['p'], $defs: { P: { enum: [1, 2] } } } } },
    { type: 'function', function: { name: 'b', parameters: { type: 'object', properties: { next: { anyOf: [{ type: 'null' }, { $ref: '#' }] } }, required: ['next'] } } },
  ];
  const g = jsonSchemaGrammar(toolAnswerSchema(toolConfigOf(tools, 'auto', undefined)!) as never);
  assert.ok(g.accepts('{"tool_calls":[{"name":"a","arguments":{"p":2}}]}'));
  assert.ok(!g.accepts('{"tool_calls":[{"name":"a","arguments":{"p":3}}]}'));
  assert.ok(g.accepts('{"tool_calls":[{"name":"b","arguments":{"next":{"next":null}}}, {"name":"a","arguments":{"p":1}}]}'));
  assert.ok(!g.accepts('{"tool_calls":[{"name":"b","arguments":{"p":1}}]}'));
  assert.ok(!g.accepts('{"tool_calls":[]}'));
  assert.ok(g.accepts('{"response": "hello"}'));
  const one = jsonSchemaGrammar(toolAnswerSchema(toolConfigOf(tools, 'required', false)!) as never);
  assert.ok(!one.accepts('{"response": "hello"}'));
  assert.ok(!one.accepts('{"tool_calls":[{"name":"a","arguments":{"p":1}},{"name":"a","arguments":{"p":1}}]}'));
  const named = jsonSchemaGrammar(toolAnswerSchema(toolConfigOf(tools, { type: 'function', function: { name: 'b' } }, undefined)!) as never);
  assert.ok(!named.accepts('{"tool_calls":[{"name":"a","arguments":{"p":1}}]}'));
  assert.ok(named.accepts('{"tool_calls":[{"name":"b","arguments":{"next":null}}]}'));
});

test('the token table is built in the background: a worker builds exactly what tokenTable builds', async () => {
  // The server started in before() prebuilt the demo tokenizer's table once listening.
  for (let i = 0; i < 200 && !hasTokenTable(srv.loaded.tokenizer!); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(hasTokenTable(srv.loaded.tokenizer!));
  const fresh = loadTokenizerSync(demoModelPath());
  const build = prebuildTokenTable(fresh);
  assert.equal(hasTokenTable(fresh), false);
  await build.done;
  assert.ok(hasTokenTable(fresh));
  const fromWorker = tokenTable(fresh);
  const direct = tokenTable(loadTokenizerSync(demoModelPath()));
  assert.deepEqual(fromWorker, direct);
  // Cancelled: nothing cached, tokenTable still builds on demand.
  const other = loadTokenizerSync(demoModelPath());
  const cancelled = prebuildTokenTable(other);
  cancelled.cancel();
  await cancelled.done;
  assert.equal(hasTokenTable(other), false);
  assert.deepEqual(tokenTable(other), direct);
});
