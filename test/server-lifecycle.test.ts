/**
 * The server's lifecycle as a load balancer sees it: readiness 503 until the model is loaded,
 * liveness always 200, and the graceful drain of SIGTERM / SIGINT (new requests 503 +
 * Retry-After, accepted streams run to their end, exit 0; --drain-timeout cuts them off; a second
 * signal exits at once). The signal tests run real `gemma serve` processes.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createServer } from '../src/server/server.js';
import { loadDemo } from './helpers/server.js';
import { openStream, spawnServe, until, type ServeProcess } from './helpers/serve-process.js';

const procs: ServeProcess[] = [];
after(() => {
  for (const p of procs) p.kill();
});

const post = (url: string, body: unknown) => fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

test('startup: /health is 503 "loading" and model routes 503 + Retry-After until the model is loaded; /health/live is 200', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const demo = await loadDemo();
  const server = await createServer({
    models: [{ id: 'demo', load: async () => (await gate, { model: demo.model, tokenizer: demo.tokenizer, release: () => undefined }) }],
    prebuildConstraint: false,
  });
  try {
    const url = await server.listen({ port: 0 });
    assert.equal(server.state, 'starting');
    const h = await fetch(`${url}/health`);
    assert.equal(h.status, 503);
    assert.equal(((await h.json()) as { status: string }).status, 'loading');
    assert.equal((await fetch(`${url}/health/live`)).status, 200);
    const early = await post(url, { model: 'demo', prompt: 'a', max_tokens: 1 });
    assert.equal(early.status, 503);
    assert.equal(early.headers.get('retry-after'), '5');
    assert.equal(((await early.json()) as { error: { code: string } }).error.code, 'model_loading');
    release();
    await server.ready;
    assert.equal(server.state, 'ready');
    assert.equal((await fetch(`${url}/health`)).status, 200);
    const ok = await post(url, { model: 'demo', prompt: 'a', max_tokens: 1 });
    assert.equal(ok.status, 200);
  } finally {
    await server.close();
  }
});

test('startup failure: ready rejects with the loader error, /health is 503 "error" naming it', async () => {
  const server = await createServer({ models: [{ id: 'broken', load: async () => Promise.reject(new Error('no such checkpoint')) }], prebuildConstraint: false });
  try {
    const url = await server.listen({ port: 0 });
    await assert.rejects(server.ready, /no such checkpoint/);
    const h = await fetch(`${url}/health`);
    assert.equal(h.status, 503);
    const body = (await h.json()) as { status: string; error: string };
    assert.equal(body.status, 'error');
    assert.match(body.error, /no such checkpoint/);
    assert.equal((await post(url, { model: 'broken', prompt: 'a' })).status, 503);
  } finally {
    await server.close();
  }
});

test('drain(): new requests 503 + Retry-After + connection: close, /health 503, the accepted stream finishes, then drain resolves', async () => {
  const demo = await loadDemo();
  const server = await createServer({ model: demo.model, tokenizer: demo.tokenizer, modelId: 'demo', prebuildConstraint: false });
  try {
    const url = await server.listen({ port: 0 });
    const s = await openStream(url, { model: 'demo', prompt: 'Once', max_tokens: 60, ignore_eos: true, temperature: 0 });
    await until(() => s.events.length >= 2, 20000, 'the first tokens');
    const drained = server.drain(30000);
    assert.equal(server.state, 'draining');
    const refused = await post(url, { model: 'demo', prompt: 'a', max_tokens: 1 });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal(refused.headers.get('connection'), 'close');
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'shutting_down');
    const h = await fetch(`${url}/health`);
    assert.equal(h.status, 503);
    assert.equal(((await h.json()) as { status: string }).status, 'draining');
    assert.equal((await fetch(`${url}/health/live`)).status, 200);
    assert.equal((await fetch(`${url}/metrics`)).status, 200);
    assert.equal(await s.done, undefined);
    assert.equal(s.events.at(-1), '[DONE]');
    const finish = JSON.parse(s.events.at(-2)!) as { choices: Array<{ finish_reason: string }> };
    assert.equal(finish.choices[0]!.finish_reason, 'length');
    assert.deepEqual(await drained, { inFlight: 0, timedOut: false });
  } finally {
    await server.close();
  }
});

test('gemma serve + SIGTERM mid-stream: the stream runs to its end, new requests get 503, the process exits 0', async () => {
  const p = await spawnServe([]);
  procs.push(p);
  await p.ready();
  const s = await openStream(p.url, { model: 'demo', prompt: 'Once', max_tokens: 400, ignore_eos: true, stream_options: { include_usage: true } });
  await until(() => s.events.length >= 5, 20000, 'the first tokens');
  p.kill('SIGTERM');
  await until(() => /draining 1 request/.test(p.stderr()), 5000, 'the drain message');
  const refused = await post(p.url, { model: 'demo', prompt: 'a', max_tokens: 1 });
  assert.equal(refused.status, 503);
  assert.equal((await fetch(`${p.url}/health`)).status, 503);
  assert.equal((await fetch(`${p.url}/health/live`)).status, 200);
  assert.equal(await s.done, undefined);
  assert.equal(s.events.at(-1), '[DONE]');
  const chunks = s.events.slice(0, -1).map((e) => JSON.parse(e) as { choices: Array<{ finish_reason: string | null }>; usage?: { completion_tokens: number } });
  assert.equal(chunks.at(-2)!.choices[0]!.finish_reason, 'length');
  assert.equal(chunks.at(-1)!.usage!.completion_tokens, 400, 'every token was generated');
  assert.equal(await p.exited, 0);
  assert.match(p.stderr(), /drained; stopped/);
});

test('gemma serve --drain-timeout 1: a stream longer than that is cut off after ~1 s and the process exits 0', async () => {
  const p = await spawnServe(['--drain-timeout', '1']);
  procs.push(p);
  await p.ready();
  const s = await openStream(p.url, { model: 'demo', prompt: 'Once', max_tokens: 4000, ignore_eos: true });
  await until(() => s.events.length >= 5, 20000, 'the first tokens');
  const t0 = Date.now();
  p.kill('SIGTERM');
  assert.equal(await p.exited, 0);
  const took = Date.now() - t0;
  assert.ok(took >= 900 && took < 8000, `exited after ${took} ms`);
  await s.done;
  assert.ok(s.events.length < 4000, 'the stream was cut off');
  assert.ok(!s.events.some((e) => e.includes('"finish_reason":"length"')), 'no finish chunk for a cut-off stream');
  assert.match(p.stderr(), /drain timeout: 1 request\(s\) cut off/);
});

test('gemma serve: a second SIGINT while draining exits at once (code 130)', async () => {
  const p = await spawnServe([]);
  procs.push(p);
  await p.ready();
  const s = await openStream(p.url, { model: 'demo', prompt: 'Once', max_tokens: 4000, ignore_eos: true });
  await until(() => s.events.length >= 5, 20000, 'the first tokens');
  p.kill('SIGINT');
  await until(() => /SIGINT: draining/.test(p.stderr()), 5000, 'the drain message');
  const t0 = Date.now();
  p.kill('SIGINT');
  assert.equal(await p.exited, 130);
  assert.ok(Date.now() - t0 < 3000, 'exited at once');
  assert.ok((await s.done) instanceof Error, 'the connection was cut');
  assert.ok(s.events.length < 4000);
});
