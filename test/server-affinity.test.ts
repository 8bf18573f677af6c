/**
 * X-Gemma-Affinity: the key a load balancer hashes on to keep a conversation on one replica
 * (X-Session-Id, else the `user` field, else a hash of the conversation's first prompt tokens),
 * and X-Gemma-Replica.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startDemoServer, type RunningServer } from './helpers/server.js';

let srv: RunningServer;
before(async () => {
  srv = await startDemoServer({ replicaName: 'replica-7', prebuildConstraint: false });
});
after(() => srv.close());

async function affinity(path: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string | null> {
  const r = await fetch(`${srv.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model: 'demo', max_tokens: 1, ...body }) });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-gemma-replica'), 'replica-7');
  await r.arrayBuffer();
  return r.headers.get('x-gemma-affinity');
}

test('without a session or user: a hash of the conversation start, the same for every later turn, streamed or not', async () => {
  const q1 = { role: 'user', content: 'What is the capital of France?' };
  const turn1 = await affinity('/v1/chat/completions', { messages: [q1] });
  assert.match(turn1!, /^p-[0-9a-f]{16}$/);
  const turn2 = await affinity('/v1/chat/completions', { messages: [q1, { role: 'assistant', content: 'Paris.' }, { role: 'user', content: 'And of Spain?' }] });
  assert.equal(turn2, turn1);
  const streamed = await affinity('/v1/chat/completions', { messages: [q1, { role: 'assistant', content: 'Paris.' }, { role: 'user', content: 'Why?' }], stream: true });
  assert.equal(streamed, turn1);
  const other = await affinity('/v1/chat/completions', { messages: [{ role: 'user', content: 'Name a colour.' }] });
  assert.notEqual(other, turn1);
  const sys = await affinity('/v1/chat/completions', { messages: [{ role: 'system', content: 'Be terse.' }, q1] });
  assert.notEqual(sys, turn1, 'the system prompt is part of the conversation start');
});

test('completions: a hash of the first prompt tokens; `user` and X-Session-Id take precedence', async () => {
  const long = 'one two three four five six seven eight nine ten '.repeat(12);
  const a = await affinity('/v1/completions', { prompt: long + 'A' });
  const b = await affinity('/v1/completions', { prompt: long + 'B' });
  assert.match(a!, /^p-/);
  assert.equal(a, b, 'prompts sharing their first 64 tokens share the key');
  assert.notEqual(await affinity('/v1/completions', { prompt: 'short' }), a);
  const u1 = await affinity('/v1/completions', { prompt: 'x', user: 'alice' });
  const u2 = await affinity('/v1/chat/completions', { messages: [{ role: 'user', content: 'y' }], user: 'alice' });
  assert.match(u1!, /^u-[0-9a-f]{16}$/);
  assert.equal(u1, u2);
  assert.notEqual(await affinity('/v1/completions', { prompt: 'x', user: 'bob' }), u1);
  assert.equal(await affinity('/v1/completions', { prompt: 'x', user: 'alice' }, { 'x-session-id': 'conv-42' }), 'conv-42');
});

test('X-Gemma-Replica is on every response, errors included', async () => {
  const r = await fetch(`${srv.url}/no/such/route`);
  assert.equal(r.status, 404);
  assert.equal(r.headers.get('x-gemma-replica'), 'replica-7');
  assert.equal((await fetch(`${srv.url}/health`)).headers.get('x-gemma-replica'), 'replica-7');
});
