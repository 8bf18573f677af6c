/**
 * Continuous batching, prefix reuse, the --parallel cap and the queue, client disconnects.
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
  srv = await startDemoServer({ parallel: 8, prefixCacheSize: 0 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  model = srv.loaded.model;
  tok = srv.loaded.tokenizer!;
});
after(async () => {
  await srv.close();
});

async function metrics(url: string): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(`${url}/metrics`)).text());
}

const QUESTIONS = ['What is the sun?', 'Count to five.', 'Write a haiku about rain.', 'Hello', 'Translate "cat" to French.', 'Why is the sky blue?', 'Tell a joke.', 'Name a prime number.'];

async function streamTokens(c: OpenAI, i: number): Promise<{ text: string; tokens: number }> {
  const stream = await c.chat.completions.create({
    model: 'demo',
    messages: [{ role: 'user', content: QUESTIONS[i]! }],
    max_tokens: 12 + 2 * i,
    seed: 1000 + i,
    temperature: 0.9,
    top_k: 50,
    logprobs: true,
    stream: true,
  } as OpenAI.ChatCompletionCreateParamsStreaming);
  let text = '';
  let tokens = 0;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    tokens += chunk.choices[0]?.logprobs?.content?.length ?? 0;
  }
  return { text, tokens };
}

test('8 concurrent seeded streams produce exactly the tokens of the same 8 requests run one at a time', async () => {
  const sequential: Array<{ text: string; tokens: number }> = [];
  for (let i = 0; i < 8; i++) sequential.push(await streamTokens(client, i));
  const before = await metrics(srv.url);
  const concurrent = await Promise.all(QUESTIONS.map((_q, i) => streamTokens(client, i)));
  const afterM = await metrics(srv.url);
  assert.deepEqual(concurrent, sequential);
  // Independent reference: generate() on the checkpoint's chat template, one sequence at a time.
  for (let i = 0; i < 8; i++) {
    const messages: ChatMessage[] = [{ role: 'user', content: QUESTIONS[i]! }];
    const ref = await generateText(model, tok, encodeChat(tok, messages, { addGenerationPrompt: true }), { maxTokens: 12 + 2 * i, seed: 1000 + i, temperature: 0.9, topK: 50 });
    assert.equal(sequential[i]!.text, ref.text, `request ${i}`);
    assert.equal(sequential[i]!.tokens, ref.ids.length);
  }
  // They really shared steps: far fewer model steps than generated tokens.
  const steps = afterM.get('gemma_steps_total')! - before.get('gemma_steps_total')!;
  const tokens = afterM.get('gemma_completion_tokens_total')! - before.get('gemma_completion_tokens_total')!;
  assert.equal(tokens, sequential.reduce((a, s) => a + s.tokens, 0));
  assert.ok(steps < tokens / 2, `${steps} steps for ${tokens} tokens: the requests were not batched`);
});

test('prefix reuse: the next chat turn prefills only its new tokens and answers exactly like a fresh prefill', async () => {
  const s = await startDemoServer({ parallel: 2 });
  try {
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const system = 'You are a helpful assistant who answers briefly and precisely, in English.';
    const turn1: ChatMessage[] = [
      { role: 'system', content: system },
      { role: 'user', content: 'What is the capital of France?' },
    ];
    const r1 = await c.chat.completions.create({ model: 'demo', messages: turn1 as OpenAI.ChatCompletionMessageParam[], max_tokens: 8, temperature: 0 });
    const ids1 = encodeChat(tok, turn1, { addGenerationPrompt: true });
    assert.equal(r1.usage!.prompt_tokens_details?.cached_tokens, 0);
    const turn2: ChatMessage[] = [...turn1, { role: 'assistant', content: r1.choices[0]!.message.content! }, { role: 'user', content: 'And of Italy?' }];
    const m0 = await metrics(s.url);
    const r2 = await c.chat.completions.create({ model: 'demo', messages: turn2 as OpenAI.ChatCompletionMessageParam[], max_tokens: 8, temperature: 0 });
    const m1 = await metrics(s.url);
    const ids2 = encodeChat(tok, turn2, { addGenerationPrompt: true });
    const cached = r2.usage!.prompt_tokens_details!.cached_tokens!;
    assert.equal(r2.usage!.prompt_tokens, ids2.length);
    assert.ok(cached >= ids1.length, `cached ${cached} < first prompt ${ids1.length}`);
    assert.equal(m1.get('gemma_prefill_tokens_total')! - m0.get('gemma_prefill_tokens_total')!, ids2.length - cached);
    const ref = await generateText(model, tok, ids2, { maxTokens: 8, temperature: 0 });
    assert.equal(r2.choices[0]!.message.content, ref.text);

    // Same system prompt, different question: the shared prefix is reused.
    const other: ChatMessage[] = [
      { role: 'system', content: system },
      { role: 'user', content: 'Name a river.' },
    ];
    const r3 = await c.chat.completions.create({ model: 'demo', messages: other as OpenAI.ChatCompletionMessageParam[], max_tokens: 8, temperature: 0 });
    assert.ok(r3.usage!.prompt_tokens_details!.cached_tokens! > 10);
    assert.equal(r3.choices[0]!.message.content, (await generateText(model, tok, encodeChat(tok, other, { addGenerationPrompt: true }), { maxTokens: 8, temperature: 0 })).text);

    // Past the sliding window the ring buffers cannot be cut back far: the prompt is prefilled in full, still right.
    // (1600 tokens: more than the demo's window of 512 plus a prefill chunk, the ring buffer's size.)
    const long = Array.from({ length: 1600 }, (_v, i) => 10 + (i % 900));
    await c.completions.create({ model: 'demo', prompt: [2, ...long], max_tokens: 2, temperature: 0 });
    const branch = [2, ...long.slice(0, 100), 77, 78, 79];
    const rb = await c.completions.create({ model: 'demo', prompt: branch, max_tokens: 6, temperature: 0 });
    assert.equal(rb.usage!.prompt_tokens_details?.cached_tokens, 0);
    assert.equal(rb.choices[0]!.text, (await generateText(model, tok, branch, { maxTokens: 6, temperature: 0 })).text);
  } finally {
    await s.close();
  }
});

test('--parallel caps active sequences; a full queue answers 429', async () => {
  const s = await startDemoServer({ parallel: 1, maxQueue: 1 });
  try {
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const long = () => c.completions.create({ model: 'demo', prompt: 'Go', max_tokens: 80, ignore_eos: true, seed: 1 } as OpenAI.CompletionCreateParamsNonStreaming);
    const a = long();
    const b = long();
    let m = await metrics(s.url);
    for (let i = 0; i < 500 && m.get('gemma_queue_depth') !== 1; i++) {
      await new Promise((r) => setTimeout(r, 10));
      m = await metrics(s.url);
    }
    assert.equal(m.get('gemma_active_sequences'), 1);
    assert.equal(m.get('gemma_queue_depth'), 1);
    await assert.rejects(long(), (e: unknown) => {
      assert.ok(e instanceof OpenAI.RateLimitError);
      assert.equal(e.status, 429);
      return true;
    });
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.usage!.completion_tokens, 80);
    assert.equal(rb.choices[0]!.text, ra.choices[0]!.text);
  } finally {
    await s.close();
  }
});

test('a client that disconnects mid-stream frees its sequence at once; the server keeps serving', async () => {
  const s = await startDemoServer({ parallel: 2 });
  try {
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const ac = new AbortController();
    const stream = await c.chat.completions.create(
      { model: 'demo', messages: [{ role: 'user', content: 'Talk forever.' }], max_tokens: 3000, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming,
      { signal: ac.signal },
    );
    let chunks = 0;
    try {
      for await (const _c of stream) {
        if (++chunks === 5) {
          const m = await metrics(s.url);
          assert.equal(m.get('gemma_active_sequences'), 1);
          ac.abort();
        }
      }
    } catch (e) {
      if (!(e instanceof OpenAI.APIUserAbortError) && (e as Error).name !== 'AbortError') throw e;
    }
    assert.ok(chunks >= 5 && chunks < 100, `${chunks} chunks`);
    let m = await metrics(s.url);
    for (let i = 0; i < 100 && m.get('gemma_active_sequences') !== 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      m = await metrics(s.url);
    }
    assert.equal(m.get('gemma_active_sequences'), 0);
    assert.equal(m.get('gemma_sequences_total{outcome="aborted"}'), 1);
    const tokensAfterAbort = m.get('gemma_completion_tokens_total')!;
    assert.ok(tokensAfterAbort < 200, `${tokensAfterAbort} tokens: generation went on after the disconnect`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await metrics(s.url)).get('gemma_completion_tokens_total'), tokensAfterAbort);
    const r = await c.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'Still there?' }], max_tokens: 4 });
    assert.equal(r.choices[0]!.message.role, 'assistant');
  } finally {
    await s.close();
  }
});
