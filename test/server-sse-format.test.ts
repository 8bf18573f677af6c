/**
 * Streamed token chunks are written from a pre-serialized prefix; every event on the wire must
 * still be exactly JSON.stringify of the chunk object OpenAI clients expect (same fields, same
 * order, same escaping), with and without logprobs, for chat and legacy completions, n > 1.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startDemoServer, type RunningServer } from './helpers/server.js';

let srv: RunningServer;

before(async () => {
  srv = await startDemoServer({ parallel: 4 });
});
after(async () => {
  await srv.close();
});

async function events(path: string, body: unknown): Promise<string[]> {
  const res = await fetch(`${srv.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.ok(text.endsWith('data: [DONE]\n\n'));
  const out = text.split('\n\n').filter((e) => e !== '' && e !== 'data: [DONE]');
  for (const e of out) assert.ok(e.startsWith('data: '), e);
  return out.map((e) => e.slice(6));
}

/** Rebuild the chunk with the field order the server's chunk objects have, then serialize. */
function canonicalChat(c: any): string {
  return JSON.stringify({
    id: c.id,
    object: c.object,
    created: c.created,
    model: c.model,
    system_fingerprint: c.system_fingerprint,
    choices: c.choices.map((ch: any) => ({ index: ch.index, delta: ch.delta, logprobs: ch.logprobs, finish_reason: ch.finish_reason })),
    ...(c.usage ? { usage: c.usage } : {}),
  });
}

function canonicalCompletion(c: any): string {
  return JSON.stringify({
    id: c.id,
    object: c.object,
    created: c.created,
    model: c.model,
    ...(c.system_fingerprint !== undefined ? { system_fingerprint: c.system_fingerprint } : {}),
    choices: c.choices.map((ch: any) => ({ index: ch.index, text: ch.text, logprobs: ch.logprobs, finish_reason: ch.finish_reason })),
    ...(c.usage ? { usage: c.usage } : {}),
  });
}

test('streamed chat chunks are exactly JSON.stringify of the chunk objects (n = 2, logprobs)', async () => {
  for (const extra of [{}, { logprobs: true, top_logprobs: 3 }]) {
    const evs = await events('/v1/chat/completions', {
      model: 'demo',
      messages: [{ role: 'user', content: 'Say "quotes", a \\ backslash and a tab\t please.' }],
      max_tokens: 12,
      n: 2,
      seed: 3,
      stream: true,
      ...extra,
    });
    let tokens = 0;
    for (const e of evs) {
      const c = JSON.parse(e);
      assert.equal(e, canonicalChat(c));
      if (c.choices[0]?.delta?.content && c.choices[0].finish_reason === null) tokens++;
    }
    assert.ok(tokens > 4, `tokens ${tokens}`);
  }
});

test('streamed completion chunks are exactly JSON.stringify of the chunk objects (legacy logprobs)', async () => {
  for (const extra of [{}, { logprobs: 2 }]) {
    const evs = await events('/v1/completions', { model: 'demo', prompt: 'Once upon a "time"', max_tokens: 10, n: 2, seed: 9, stream: true, ...extra });
    let tokens = 0;
    for (const e of evs) {
      const c = JSON.parse(e);
      assert.equal(e, canonicalCompletion(c));
      if (c.choices[0]?.finish_reason === null) tokens++;
    }
    assert.ok(tokens > 4, `tokens ${tokens}`);
  }
});
