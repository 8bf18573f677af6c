/**
 * response_format (JSON mode and JSON schemas) end to end on the demo model (random weights:
 * unconstrained output is garbage, constrained output must still parse and validate): the
 * openai client, streaming = non-streaming, n > 1, batching = sequential, logprobs, 400s, and the
 * library (generate, ChatSession).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { ChatSession } from '../src/generate/chat-session.js';
import { generateText } from '../src/generate/generate.js';
import { jsonObjectGrammar, jsonSchemaGrammar } from '../src/generate/constraint/index.js';
import { startDemoServer, type RunningServer } from './helpers/server.js';

let srv: RunningServer;
let client: OpenAI;

before(async () => {
  srv = await startDemoServer({ parallel: 8, prefixCacheSize: 0 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await srv.close();
});

/** Enums, numbers and booleans finish quickly even with random weights (free strings may not: see json_object). */
const PERSON = {
  type: 'object',
  properties: {
    name: { enum: ['Ada', 'Alan', 'Grace'] },
    age: { type: 'integer' },
    role: { enum: ['admin', 'user', 'guest'] },
    active: { type: 'boolean' },
    score: { type: ['number', 'null'] },
    tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 3 },
  },
  required: ['age', 'role', 'active'],
  additionalProperties: false,
} as const;

function checkPerson(v: unknown): void {
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v));
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) assert.ok(k in PERSON.properties, `unexpected property ${k}`);
  assert.ok(Number.isInteger(o.age));
  assert.ok(['admin', 'user', 'guest'].includes(o.role as string));
  assert.equal(typeof o.active, 'boolean');
  if ('name' in o) assert.ok(['Ada', 'Alan', 'Grace'].includes(o.name as string));
  if ('score' in o) assert.ok(o.score === null || typeof o.score === 'number');
  if ('tags' in o) assert.ok(Array.isArray(o.tags) && o.tags.length <= 3 && o.tags.every((t) => t === 'a' || t === 'b'));
  // Declared order.
  const order = Object.keys(PERSON.properties);
  const keys = Object.keys(o).map((k) => order.indexOf(k));
  assert.deepEqual(keys, [...keys].sort((a, b) => a - b));
}

const schemaFormat = { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } } as const;

test('json_schema through the openai client: every output parses and validates (seeds, greedy and T=1)', async () => {
  const grammar = jsonSchemaGrammar(PERSON as never);
  let complete = 0;
  for (const seed of [1, 2, 3, 4]) {
    for (const temperature of [0, 1]) {
      const r = await client.chat.completions.create({
        model: 'demo',
        messages: [{ role: 'user', content: `Describe person ${seed} as JSON.` }],
        response_format: schemaFormat as never,
        max_tokens: 120,
        seed,
        temperature,
      });
      const c = r.choices[0]!;
      const text = c.message.content ?? '';
      if (c.finish_reason === 'stop') {
        complete++;
        checkPerson(JSON.parse(text));
      } else {
        // Cut by max_tokens (a random model may loop inside the free string): a valid prefix.
        assert.equal(c.finish_reason, 'length');
        assert.equal(r.usage?.completion_tokens, 120);
        assert.ok(grammar.acceptsPrefix(text), text);
      }
    }
  }
  assert.ok(complete >= 6, `${complete} of 8 answers complete`);
});

test('json_object: one JSON object; /v1/completions too; finish_reason stop when complete', async () => {
  const grammar = jsonObjectGrammar();
  let complete = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'JSON please' }], response_format: { type: 'json_object' }, max_tokens: 60, seed, temperature: 1 });
    const c = r.choices[0]!;
    const text = c.message.content ?? '';
    if (c.finish_reason === 'stop') {
      complete++;
      const v = JSON.parse(text);
      assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), text);
    } else assert.ok(grammar.acceptsPrefix(text), text);
  }
  // Keys are free strings, where random weights tend to loop: some objects complete, the rest are valid prefixes.
  assert.ok(complete >= 1, `${complete} of 6 objects complete`);
  const legacy = await client.completions.create({ model: 'demo', prompt: 'x', max_tokens: 80, seed: 3, temperature: 0, response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } } } } as never);
  assert.equal(legacy.choices[0]!.finish_reason, 'stop');
  assert.equal(typeof JSON.parse(legacy.choices[0]!.text).ok, 'boolean');
});

test('streaming concatenated = non-streaming with the same seed; n > 1 gives independent valid choices', async () => {
  for (const seed of [5, 6]) {
    const body = { model: 'demo', messages: [{ role: 'user' as const, content: 'Who?' }], response_format: schemaFormat as never, max_tokens: 100, seed, temperature: 1, n: 3 };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true });
    const texts = ['', '', ''];
    const finish: Array<string | null> = [null, null, null];
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        texts[c.index] += c.delta?.content ?? '';
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    assert.deepEqual(texts, whole.choices.map((c) => c.message.content));
    assert.deepEqual(finish, whole.choices.map((c) => c.finish_reason));
    for (const c of whole.choices) if (c.finish_reason === 'stop') checkPerson(JSON.parse(c.message.content!));
    assert.ok(new Set(texts).size > 1, 'the choices differ');
  }
});

test('8 concurrent constrained requests give exactly the outputs of the same requests one at a time', async () => {
  const run = (i: number) =>
    client.chat.completions
      .create({
        model: 'demo',
        messages: [{ role: 'user', content: `Person number ${i}` }],
        response_format: (i % 2 ? schemaFormat : { type: 'json_object' }) as never,
        max_tokens: 40 + 5 * i,
        seed: 100 + i,
        temperature: 0.9,
        ...(i % 3 === 0 ? { top_k: 40 } : i % 3 === 1 ? { top_p: 0.9 } : {}),
      } as never)
      .then((r: OpenAI.ChatCompletion) => [r.choices[0]!.message.content, r.choices[0]!.finish_reason]);
  const sequential = [];
  for (let i = 0; i < 8; i++) sequential.push(await run(i));
  const concurrent = await Promise.all(Array.from({ length: 8 }, (_, i) => run(i)));
  assert.deepEqual(concurrent, sequential);
});

test('logprobs report the model\'s raw distribution under a constraint', async () => {
  const ask = (rf: unknown) =>
    client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, seed: 1, temperature: 0, logprobs: true, top_logprobs: 5, ...(rf ? { response_format: rf as never } : {}) });
  const free = await ask(undefined);
  const json = await ask({ type: 'json_object' });
  const a = free.choices[0]!.logprobs!.content![0]!;
  const b = json.choices[0]!.logprobs!.content![0]!;
  // Same prompt, same first-position distribution: the same top alternatives, whatever was chosen.
  assert.deepEqual(b.top_logprobs, a.top_logprobs);
  // the object's first token (the trained demo's vocabulary has '{"' as one piece)
  assert.match(b.token, /^\{"?$/);
  assert.ok(b.logprob <= a.top_logprobs[0]!.logprob);
  assert.equal(json.choices[0]!.logprobs!.content!.length, json.usage!.completion_tokens);
});

test('bad response_format: 400 in OpenAI\'s shape, param response_format, naming the problem', async () => {
  const post = async (rf: unknown) => {
    const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'x' }], max_tokens: 1, response_format: rf }) });
    return { status: r.status, body: (await r.json()) as { error: { message: string; type: string; param: string | null } } };
  };
  const cases: Array<[unknown, RegExp]> = [
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a\\b' } } }, /"pattern" "\^a\\\\b": the word boundary "\\b"/],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { d: { type: 'string', format: 'uri' } } } } }, /at \/properties\/d: the format "uri" is not supported/],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'array', uniqueItems: true } } }, /"uniqueItems"/],
    [{ type: 'json_schema', json_schema: { name: 'x' } }, /schema is required/],
    [{ type: 'json_schema', json_schema: { name: 'bad name!', schema: {} } }, /name must be/],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'nope' } } }, /unknown type/],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#' } } }, /recursive/],
    [{ type: 'yaml' }, /response_format.type must be/],
    ['json', /must be an object/],
  ];
  for (const [rf, re] of cases) {
    const r = await post(rf);
    assert.equal(r.status, 400, JSON.stringify(rf));
    assert.equal(r.body.error.param, 'response_format');
    assert.equal(r.body.error.type, 'invalid_request_error');
    assert.match(r.body.error.message, re);
  }
  await assert.rejects(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }], response_format: cases[0]![0] as never }), (e: unknown) => e instanceof OpenAI.BadRequestError);
  // text is plain generation.
  const ok = await post({ type: 'text' });
  assert.equal(ok.status, 200);
});

test('library: generate() and ChatSession take responseFormat; max tokens cut gives "length"', async () => {
  const { model, tokenizer } = srv.loaded;
  const ids = tokenizer!.encode('JSON:');
  const r = await generateText(model, tokenizer, ids, { maxTokens: 100, temperature: 0, responseFormat: { type: 'json_schema', schema: { type: 'array', items: { type: 'integer' }, minItems: 1, maxItems: 4 } } });
  assert.equal(r.finishReason, 'stop');
  const v = JSON.parse(r.text) as number[];
  assert.ok(Array.isArray(v) && v.length >= 1 && v.length <= 4 && v.every(Number.isInteger));
  const cut = await generateText(model, tokenizer, ids, { maxTokens: 2, temperature: 0, responseFormat: { type: 'json_object' } });
  assert.equal(cut.finishReason, 'length');
  assert.equal(cut.ids.length, 2);
  assert.ok(jsonObjectGrammar().acceptsPrefix(cut.text));
  const session = new ChatSession(model, tokenizer!, { maxTokens: 80, seed: 2, responseFormat: { type: 'json_schema', schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } } });
  for (const q of ['first?', 'second?']) {
    const a = await session.ask(q);
    assert.equal(a.finishReason, 'stop');
    assert.equal(typeof JSON.parse(a.text).ok, 'boolean');
  }
  session.dispose();
});

test('CLI: gemma run --json-schema FILE / --json-object; a bad schema names the flag and the keyword', async () => {
  const { execFile } = await import('node:child_process');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { packageRoot } = await import('../src/util/package-root.js');
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [path.join(packageRoot(), 'bin', 'gemma.js'), 'run', '-m', 'demo', ...args], (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
    });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-json-'));
  try {
    const good = path.join(dir, 'schema.json');
    fs.writeFileSync(good, JSON.stringify({ type: 'object', properties: { ok: { type: 'boolean' }, n: { type: 'integer' } }, required: ['ok', 'n'] }));
    const r = await run(['--json-schema', good, '--seed', '3', '-n', '60', '--json', 'Hi']);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse((JSON.parse(r.stdout) as { text: string }).text) as { ok: unknown; n: unknown };
    assert.equal(typeof v.ok, 'boolean');
    assert.ok(Number.isInteger(v.n));
    const o = await run(['--json-object', '-t', '0', '-n', '3', 'Hi']);
    assert.equal(o.code, 0, o.stderr);
    assert.ok(o.stdout.startsWith('{'), o.stdout);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ type: 'array', uniqueItems: true }));
    const e = await run(['--json-schema', bad, 'Hi']);
    assert.equal(e.code, 1);
    assert.match(e.stderr, /--json-schema.*"uniqueItems" is not supported/s);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
