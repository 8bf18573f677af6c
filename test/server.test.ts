/**
 * `gemma serve` API: driven with the official `openai` client against the demo model. Expected
 * tokens come from generate() (one sequence, model.forward, no scheduler) on the prompt built
 * by the checkpoint's own Jinja chat template.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { generateText } from '../src/generate/generate.js';
import { encodeChat } from '../src/tokenizer/chat.js';
import type { ChatMessage, Tokenizer } from '../src/tokenizer/types.js';
import type { LanguageModel } from '../src/model/types.js';
import { parseMetrics, startDemoServer, type RunningServer } from './helpers/server.js';

let srv: RunningServer;
let client: OpenAI;
let model: LanguageModel;
let tok: Tokenizer;

before(async () => {
  srv = await startDemoServer({ parallel: 4 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  model = srv.loaded.model;
  tok = srv.loaded.tokenizer!;
});
after(async () => {
  await srv.close();
});

const chatIds = (messages: ChatMessage[]): number[] => encodeChat(tok, messages, { addGenerationPrompt: true });

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (e) {
    if (e instanceof OpenAI.APIError && e.status !== undefined) return e.status;
    throw e;
  }
}

test('GET /v1/models, /v1/models/:id, /health', async () => {
  const list = await client.models.list();
  assert.deepEqual(
    list.data.map((m) => [m.id, m.object, m.owned_by]),
    [['demo', 'model', 'gemma-ts']],
  );
  const m = await client.models.retrieve('demo');
  assert.equal(m.id, 'demo');
  await assert.rejects(client.models.retrieve('gpt-4'), (e: unknown) => e instanceof OpenAI.NotFoundError);
  const h = await fetch(`${srv.url}/health`);
  assert.equal(h.status, 200);
  assert.equal(((await h.json()) as { status: string }).status, 'ok');
});

test('chat completion (non-stream) equals generate() on the chat-template prompt, with usage', async () => {
  const messages: ChatMessage[] = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Name three colours.' },
  ];
  const r = await client.chat.completions.create({ model: 'demo', messages: messages as OpenAI.ChatCompletionMessageParam[], max_tokens: 12, seed: 7, temperature: 0.8, top_k: 40 } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  const ids = chatIds(messages);
  const ref = await generateText(model, tok, ids, { maxTokens: 12, seed: 7, temperature: 0.8, topK: 40 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, 'demo');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0]!.message.role, 'assistant');
  assert.equal(r.choices[0]!.message.content, ref.text);
  assert.equal(r.choices[0]!.finish_reason, ref.finishReason === 'length' ? 'length' : 'stop');
  assert.equal(r.usage!.prompt_tokens, ids.length);
  assert.equal(r.usage!.completion_tokens, ref.ids.length);
  assert.equal(r.usage!.total_tokens, ids.length + ref.ids.length);
});

test('streaming chat: role chunk first, deltas add up to the non-stream answer, finish_reason, usage, [DONE]', async () => {
  const body = { model: 'demo', messages: [{ role: 'user' as const, content: 'Tell me a story.' }], max_tokens: 15, seed: 11, temperature: 1 };
  const full = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let first = true;
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  let chunks = 0;
  for await (const c of stream) {
    chunks++;
    assert.equal(c.object, 'chat.completion.chunk');
    if (c.usage) usage = c.usage;
    const ch = c.choices[0];
    if (!ch) continue;
    if (first) {
      assert.equal(ch.delta.role, 'assistant');
      first = false;
    }
    text += ch.delta.content ?? '';
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  assert.ok(chunks >= 3, `expected several chunks, got ${chunks}`);
  assert.equal(text, full.choices[0]!.message.content);
  assert.equal(finish, full.choices[0]!.finish_reason);
  assert.deepEqual(usage && [usage.prompt_tokens, usage.completion_tokens], [full.usage!.prompt_tokens, full.usage!.completion_tokens]);

  // The raw wire format: text/event-stream, `data: ` lines, ending with `data: [DONE]`.
  const res = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const raw = await res.text();
  const events = raw.split('\n\n').filter((e) => e.length > 0);
  assert.ok(events.every((e) => e.startsWith('data: ')));
  assert.equal(events.at(-1), 'data: [DONE]');
});

test('n choices with seeds, and logprobs equal to generate()', async () => {
  const messages: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
  const r = await client.chat.completions.create({ model: 'demo', messages: messages as OpenAI.ChatCompletionMessageParam[], max_tokens: 6, seed: 100, n: 2, logprobs: true, top_logprobs: 3 });
  assert.equal(r.choices.length, 2);
  const ids = chatIds(messages);
  for (const [i, ch] of r.choices.entries()) {
    assert.equal(ch.index, i);
    const ref = await generateText(model, tok, ids, { maxTokens: 6, seed: 100 + i, logprobs: true, topLogprobs: 3 });
    assert.equal(ch.message.content, ref.text);
    const lp = ch.logprobs!.content!;
    assert.equal(lp.length, ref.ids.length);
    for (const [k, e] of lp.entries()) {
      assert.ok(Math.abs(e.logprob - ref.logprobs![k]!.logprob) < 1e-9);
      assert.equal(e.top_logprobs.length, 3);
      assert.ok(Math.abs(e.top_logprobs[0]!.logprob - ref.logprobs![k]!.topLogprobs![0]!.logprob) < 1e-9);
      assert.ok(e.top_logprobs[0]!.logprob >= e.top_logprobs[1]!.logprob);
      // The token's bytes spell its text.
      assert.equal(Buffer.from(e.bytes!).toString('utf8'), e.token);
    }
  }
  assert.equal(r.usage!.completion_tokens, r.choices.reduce((a, c) => a + c.logprobs!.content!.length, 0));
});

test('penalties and the extra samplers (top_k, min_p, repetition_penalty) are applied like generate()', async () => {
  const messages: ChatMessage[] = [{ role: 'user', content: 'Repeat after me: la la la' }];
  const r = await client.chat.completions.create({
    model: 'demo',
    messages: messages as OpenAI.ChatCompletionMessageParam[],
    max_tokens: 40,
    seed: 3,
    temperature: 0.7,
    top_p: 0.9,
    presence_penalty: 2,
    frequency_penalty: 2,
    top_k: 20,
    min_p: 0.01,
    repetition_penalty: 2,
  } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  const ref = await generateText(model, tok, chatIds(messages), {
    maxTokens: 40,
    seed: 3,
    temperature: 0.7,
    topP: 0.9,
    presencePenalty: 2,
    frequencyPenalty: 2,
    topK: 20,
    minP: 0.01,
    repetitionPenalty: 2,
  });
  assert.equal(r.choices[0]!.message.content, ref.text);
  const plain = await generateText(model, tok, chatIds(messages), { maxTokens: 40, seed: 3, temperature: 0.7, topP: 0.9 });
  // (Strong penalties: the trained demo's answers are confident enough to survive mild ones.)
  assert.notEqual(ref.text, plain.text, 'the penalties should change this sample');
});

test('completions: text prompt, token-id prompt, echo, stop strings, legacy logprobs, streaming', async () => {
  const prompt = 'Once upon a time';
  const pIds = tok.encode(prompt);
  const ref = await generateText(model, tok, pIds, { maxTokens: 8, seed: 5, logprobs: true, topLogprobs: 2 });
  const r = await client.completions.create({ model: 'demo', prompt, max_tokens: 8, seed: 5, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0]!.text, ref.text);
  assert.deepEqual(r.choices[0]!.logprobs!.token_logprobs, ref.logprobs!.map((l) => l.logprob));
  assert.equal(r.choices[0]!.logprobs!.tokens!.join(''), ref.text);
  assert.equal(Object.keys(r.choices[0]!.logprobs!.top_logprobs![0]!).length, 2);
  assert.equal(r.usage!.prompt_tokens, pIds.length);

  const byIds = await client.completions.create({ model: 'demo', prompt: pIds, max_tokens: 8, seed: 5 });
  assert.equal(byIds.choices[0]!.text, ref.text);
  const echo = await client.completions.create({ model: 'demo', prompt, max_tokens: 8, seed: 5, echo: true });
  assert.equal(echo.choices[0]!.text, prompt + ref.text);

  // Default max_tokens is 16 (OpenAI's legacy default).
  const d = await client.completions.create({ model: 'demo', prompt, seed: 1, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  assert.equal(d.usage!.completion_tokens, 16);

  // A stop string taken from the middle of the reference text: the answer ends right before it.
  const cut = ref.text.indexOf(tok.decode([ref.ids[3]!]), tok.decode(ref.ids.slice(0, 3)).length);
  assert.ok(cut > 0);
  const stopStr = ref.text.slice(cut, cut + 2);
  const first = ref.text.indexOf(stopStr);
  const s = await client.completions.create({ model: 'demo', prompt, max_tokens: 8, seed: 5, stop: [stopStr, 'never-there'] });
  assert.equal(s.choices[0]!.text, ref.text.slice(0, first));
  assert.equal(s.choices[0]!.finish_reason, 'stop');

  const st = await client.completions.create({ model: 'demo', prompt, max_tokens: 8, seed: 5, stream: true });
  let text = '';
  let finish: string | null = null;
  for await (const c of st) {
    text += c.choices[0]?.text ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, ref.text);
  assert.equal(finish, 'length');

  const multi = await client.completions.create({ model: 'demo', prompt: [prompt, 'Hello'], max_tokens: 3, seed: 5 });
  assert.equal(multi.choices.length, 2);
  assert.equal(multi.choices[1]!.text, (await generateText(model, tok, tok.encode('Hello'), { maxTokens: 3, seed: 6 })).text);
});

test('logit_bias: +100 forces a token, -100 bans the greedy one; bad keys and ids are 400s', async () => {
  const messages: ChatMessage[] = [{ role: 'user', content: 'Say something' }];
  const word = tok.pieceToId('\u2581the')!; // a learned piece of the demo tokenizer
  const forced = await client.chat.completions.create({ model: 'demo', messages: messages as OpenAI.ChatCompletionMessageParam[], max_tokens: 4, seed: 5, logit_bias: { [String(word)]: 100 }, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  assert.equal(forced.choices[0]!.message.content, tok.decode([word, word, word, word]));
  const greedy = (await generateText(model, tok, chatIds(messages), { maxTokens: 1, temperature: 0 })).ids[0]!;
  const banned = await client.chat.completions.create({ model: 'demo', messages: messages as OpenAI.ChatCompletionMessageParam[], max_tokens: 1, temperature: 0, logit_bias: { [String(greedy)]: -100 } });
  assert.notEqual(banned.choices[0]!.message.content, tok.decode([greedy]));
  const want = await generateText(model, tok, chatIds(messages), { maxTokens: 1, temperature: 0, logitBias: new Map([[greedy, -100]]) });
  assert.equal(banned.choices[0]!.message.content, want.text, 'the same bias through generate()');
  const post = async (body: unknown) => {
    const res = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, error: ((await res.json()) as { error?: { message: string; param: string | null } }).error };
  };
  const base = { model: 'demo', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 };
  const badKey = await post({ ...base, logit_bias: { hello: 1 } });
  assert.equal(badKey.status, 400);
  assert.match(badKey.error!.message, /logit_bias/);
  const badValue = await post({ ...base, logit_bias: { '5': 1000 } });
  assert.equal(badValue.status, 400);
  const outOfRange = await post({ ...base, logit_bias: { '999999': 5 } });
  assert.equal(outOfRange.status, 400);
  assert.equal(outOfRange.error?.param, 'logit_bias');
});

test('errors: OpenAI shape and status codes', async () => {
  const post = async (path: string, body: string | Uint8Array, contentType = 'application/json') => {
    const res = await fetch(`${srv.url}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
    const j = (await res.json()) as { error?: { message: string; type: string; param: string | null; code: string | null } };
    return { status: res.status, error: j.error };
  };
  const unknown = await post('/v1/chat/completions', JSON.stringify({ model: 'gpt-4', messages: [{ role: 'user', content: 'x' }] }));
  assert.equal(unknown.status, 404);
  assert.equal(unknown.error?.code, 'model_not_found');
  assert.match(unknown.error!.message, /gpt-4/);

  const wrongType = await post('/v1/chat/completions', JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }));
  assert.equal(wrongType.status, 400);
  assert.equal(wrongType.error?.type, 'invalid_request_error');
  assert.equal(wrongType.error?.param, 'temperature');

  const empty = await post('/v1/chat/completions', JSON.stringify({ model: 'demo', messages: [] }));
  assert.equal(empty.status, 400);
  assert.equal(empty.error?.param, 'messages');

  const badJson = await post('/v1/chat/completions', '{"model": "demo", "messages": [');
  assert.equal(badJson.status, 400);
  assert.match(badJson.error!.message, /JSON/);

  const badUtf8 = await post('/v1/completions', new Uint8Array([...Buffer.from('{"model":"demo","prompt":"'), 0xc3, 0x28, ...Buffer.from('"}')]));
  assert.equal(badUtf8.status, 400);
  assert.match(badUtf8.error!.message, /UTF-8/);

  const huge = await post('/v1/completions', JSON.stringify({ model: 'demo', prompt: 'x'.repeat(3 * 1024 * 1024) }));
  assert.equal(huge.status, 413);

  const tooBig = await post('/v1/completions', JSON.stringify({ model: 'demo', prompt: 'a', max_tokens: 1e300 }));
  assert.equal(tooBig.status, 400);
  const idOut = await post('/v1/completions', JSON.stringify({ model: 'demo', prompt: [2, 999999], max_tokens: 1 }));
  assert.equal(idOut.status, 400);
  const text = await post('/v1/completions', 'hello', 'text/plain');
  assert.equal(text.status, 415);
  const route = await post('/v1/nothing', '{}');
  assert.equal(route.status, 404);

  const tools = await post('/v1/chat/completions', JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'not a name' } }] }));
  assert.equal(tools.status, 400);
  assert.equal(tools.error?.param, 'tools');
  const json = await post('/v1/chat/completions', JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '(?=a)' } } } }));
  assert.equal(json.status, 400);
  assert.equal(json.error?.param, 'response_format');
  const noTools = await post('/v1/chat/completions', JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'x' }], tools: [], response_format: { type: 'text' }, max_tokens: 1 }));
  assert.equal(noTools.status, 200);

  // The openai client maps them to its error classes.
  await assert.rejects(client.chat.completions.create({ model: 'demo', messages: [] }), (e: unknown) => e instanceof OpenAI.BadRequestError);
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => e instanceof OpenAI.NotFoundError);
});

test('context limits: prompt longer than the context is a 400; max_tokens is capped by the context', async () => {
  const small = await startDemoServer({ contextSize: 64 });
  try {
    const c = new OpenAI({ baseURL: `${small.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const long = 'word '.repeat(200);
    await assert.rejects(c.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: long }] }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.code, 'context_length_exceeded');
      assert.match(e.message, /maximum context length is 64 tokens/);
      return true;
    });
    const prompt = [2, 10, 11, 12];
    const r = await c.completions.create({ model: 'demo', prompt, max_tokens: 1000, ignore_eos: true, seed: 1 } as OpenAI.CompletionCreateParamsNonStreaming);
    assert.equal(r.usage!.completion_tokens, 64 - prompt.length);
    assert.equal(r.choices[0]!.finish_reason, 'length');
    const mct = await c.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 3, max_tokens: 9, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    assert.equal(mct.usage!.completion_tokens, 3);
  } finally {
    await small.close();
  }
});

test('--api-key: Bearer required on /v1 and /metrics, compared in constant time; /health and the page stay open', async () => {
  const s = await startDemoServer({ apiKey: 's3cret-key' });
  try {
    const good = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 's3cret-key', maxRetries: 0 });
    const bad = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 's3cret-kez', maxRetries: 0 });
    assert.equal((await good.models.list()).data[0]!.id, 'demo');
    await assert.rejects(bad.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
    assert.equal(await statusOf(bad.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 })), 401);
    assert.equal((await fetch(`${s.url}/v1/models`)).status, 401);
    assert.equal((await fetch(`${s.url}/metrics`)).status, 401);
    assert.equal((await fetch(`${s.url}/metrics`, { headers: { authorization: 'Bearer s3cret-key' } })).status, 200);
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    assert.equal((await fetch(`${s.url}/`)).status, 200);
    assert.equal((await fetch(`${s.url}/app.js`)).status, 200);
    assert.equal((await fetch(`${s.url}/%761/models`)).status, 401);
    assert.equal((await fetch(`${s.url}/V1/models`)).status, 401);
    assert.equal((await fetch(`${s.url}/v1/models`, { headers: { authorization: 's3cret-key' } })).status, 401);
    assert.equal((await fetch(`${s.url}/v1/models`, { headers: { authorization: 'Bearer s3cret-key ' } })).status, 200);
  } finally {
    await s.close();
  }
});

test('CORS is off by default and on with cors', async () => {
  const plain = await fetch(`${srv.url}/v1/models`, { headers: { origin: 'http://evil.example' } });
  assert.equal(plain.headers.get('access-control-allow-origin'), null);
  const pre = await fetch(`${srv.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
  assert.equal(pre.headers.get('access-control-allow-origin'), null);
  const s = await startDemoServer({ cors: true });
  try {
    const r = await fetch(`${s.url}/v1/models`, { headers: { origin: 'http://a.example' } });
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    const p = await fetch(`${s.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'http://a.example', 'access-control-request-method': 'POST' } });
    assert.equal(p.status, 204);
    assert.match(p.headers.get('access-control-allow-headers') ?? '', /authorization/);
  } finally {
    await s.close();
  }
});

test('binds 127.0.0.1 by default; /metrics is Prometheus text', async () => {
  const loaded = srv.loaded;
  const { createServer } = await import('../src/server/server.js');
  const s = await createServer({ model: loaded.model, tokenizer: loaded.tokenizer, modelId: 'demo' });
  try {
    await s.listen({ port: 0 });
    const addr = s.app.server.address();
    assert.ok(addr && typeof addr === 'object');
    assert.equal(addr.address, '127.0.0.1');
  } finally {
    await s.close();
  }
  const res = await fetch(`${srv.url}/metrics`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const m = parseMetrics(await res.text());
  for (const name of ['gemma_prompt_tokens_total', 'gemma_completion_tokens_total', 'gemma_tokens_per_second', 'gemma_queue_depth', 'gemma_active_sequences']) {
    assert.ok(m.has(name), `missing ${name}`);
  }
  assert.ok(m.get('gemma_completion_tokens_total')! > 0);
  // where resident memory goes: the V8 heap inside the process's RSS; no backend gauge for js
  assert.ok(m.get('nodejs_heap_size_used_bytes')! > 1e6 && m.get('nodejs_heap_size_used_bytes')! <= m.get('nodejs_heap_size_total_bytes')!);
  assert.ok(m.get('nodejs_heap_size_total_bytes')! < m.get('process_resident_memory_bytes')!);
  assert.ok(m.has('nodejs_external_memory_bytes') && m.has('nodejs_array_buffers_bytes'));
  assert.equal(m.has('gemma_backend_memory_bytes'), false, 'the js backend holds no memory of its own');
  assert.ok((m.get('gemma_requests_total{endpoint="/v1/chat/completions",status="200"}') ?? 0) > 0);
  assert.ok((m.get('gemma_requests_total{endpoint="/v1/chat/completions",status="404"}') ?? 0) > 0);
});

test('configure() extends the app; added /v1 routes are behind the API key', async () => {
  const s = await startDemoServer({
    apiKey: 'k1',
    configure: (app) => {
      app.get('/v1/extra', async () => ({ ok: true }));
      app.addHook('preHandler', async (_req, reply) => {
        reply.header('x-extension', 'seen');
      });
    },
  });
  try {
    assert.equal((await fetch(`${s.url}/v1/extra`)).status, 401);
    const r = await fetch(`${s.url}/v1/extra`, { headers: { authorization: 'Bearer k1' } });
    assert.deepEqual(await r.json(), { ok: true });
    // Hook headers reach streamed answers too.
    const st = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { authorization: 'Bearer k1', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', prompt: 'a', max_tokens: 1, stream: true }) });
    assert.equal(st.headers.get('x-extension'), 'seen');
    assert.match(await st.text(), /data: \[DONE\]\n\n$/);
  } finally {
    await s.close();
  }
});

/** Run `gemma serve ARGS` through the CLI on the shared demo model; resolves once it listens. */
async function startServeCli(args: string[]) {
  const { Command } = await import('commander');
  const { registerServeCommand } = await import('../src/cli/serve.js');
  const out = { err: '' };
  const io = {
    stdout: { write: (_s: string) => true },
    stderr: { write: (s: string) => ((out.err += s), true) },
    stdin: process.stdin,
    loadModel: async () => srv.loaded,
  };
  const program = new Command('gemma').exitOverride();
  const ac = new AbortController();
  let url = '';
  registerServeCommand(program, io, { shutdown: ac.signal, onListening: (u) => (url = u) });
  const running = program.parseAsync(['serve', ...args], { from: 'user' });
  for (let i = 0; i < 1000 && !url; i++) await new Promise((r) => setTimeout(r, 10));
  return { url, out, io, stop: async () => { ac.abort(); await running; } };
}

test('gemma serve CLI: flags, listening banner, serving, shutdown; bad flags are usage errors', async () => {
  const { Command } = await import('commander');
  const { registerServeCommand } = await import('../src/cli/serve.js');
  const { UsageError } = await import('../src/errors.js');
  const cli = await startServeCli(['--model', 'demo', '--port', '0', '--api-key', 'cli-key', '--parallel', '3', '--ctx-size', '512']);
  const { url, io } = cli;
  const err = cli.out.err;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(err, /model "demo" on http:\/\/127\.0\.0\.1:\d+ \(parallel 3, context 512, API key required\)/);
  const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'cli-key', maxRetries: 0 });
  const r = await c.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  assert.equal(r.choices.length, 1);
  const m = parseMetrics(await (await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer cli-key' } })).text());
  assert.equal(m.get('gemma_parallel_sequences'), 3);
  assert.equal(m.get('gemma_context_size'), 512);
  await cli.stop();
  await assert.rejects(fetch(`${url}/health`));

  const p2 = new Command('gemma').exitOverride();
  registerServeCommand(p2, io);
  await assert.rejects(p2.parseAsync(['serve', '--model', 'demo', '--ctx-size', '100000'], { from: 'user' }), (e: unknown) => e instanceof UsageError && /exceeds/.test(e.message));
});

test('gemma serve CLI: --guard adds /v1/moderations and screens chat completions', async () => {
  const cli = await startServeCli(['--model', 'demo', '--port', '0', '--guard', 'demo', '--guard-threshold', '0.99', '--guard-mode', 'flag']);
  const { url } = cli;
  assert.ok(url, 'server listens');
  const mod = await (await fetch(`${url}/v1/moderations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'hello' }) })).json() as { results: Array<{ category_scores: Record<string, number> }> };
  assert.deepEqual(Object.keys(mod.results[0]!.category_scores).sort(), ['dangerous', 'harassment', 'hate', 'sexual']);
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) });
  const body = await r.json() as { guard?: { stage: string; action: string } };
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.ok(body.guard, 'guard decision attached');
  assert.match(cli.out.err, /"event":"guard_decision"/);
  await cli.stop();
});

test('/metrics: gemma_backend_memory_bytes is the wasm backend\'s memories (weights, KV caches, scratch)', async () => {
  const { loadModel } = await import('../src/model/load.js');
  const { createServer } = await import('../src/server/server.js');
  const loaded = await loadModel('demo', { backend: 'wasm', threads: 1 });
  const s = await createServer({ model: loaded.model, tokenizer: loaded.tokenizer, modelId: 'demo' });
  try {
    const url = await s.listen({ port: 0, host: '127.0.0.1' });
    const m = parseMetrics(await (await fetch(`${url}/metrics`)).text());
    const want = (loaded.model as unknown as { backend: { memoryBytes(): number[] } }).backend.memoryBytes().reduce((a, b) => a + b, 0);
    assert.equal(m.get('gemma_backend_memory_bytes'), want);
    assert.ok(want > loaded.weightBytes, `${want} bytes hold the ${loaded.weightBytes} bytes of weights`);
  } finally {
    await s.close();
    loaded.model.dispose();
  }
});
