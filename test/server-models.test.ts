/**
 * Several models in one server: /v1/models lists them, requests pick one by `model`, models load
 * on first use and the least recently used idle one is unloaded under --max-loaded or a memory
 * budget; a busy model is never unloaded (503 + Retry-After instead).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { UsageError } from '../src/errors.js';
import { createServer, type ModelSource } from '../src/server/server.js';
import { loadDemo, parseMetrics } from './helpers/server.js';
import { openStream, spawnServe, until, type ServeProcess } from './helpers/serve-process.js';

const procs: ServeProcess[] = [];
after(() => {
  for (const p of procs) p.kill();
});

/** Sources over the shared demo model that count their loads and releases. */
function countingSources(ids: string[], bytes?: number[]) {
  const loads: string[] = [];
  const releases: string[] = [];
  const sources: ModelSource[] = ids.map((id, i) => ({
    id,
    ...(bytes ? { bytes: bytes[i]! } : {}),
    load: async () => {
      const demo = await loadDemo();
      loads.push(id);
      return { model: demo.model, tokenizer: demo.tokenizer, release: () => void releases.push(id) };
    },
  }));
  return { sources, loads, releases };
}

const chat = (url: string, model: string) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ignore_eos: true }) });

test('models load on first use; /v1/models lists every model with its status; --max-loaded 1 unloads the least recently used', async () => {
  const { sources, loads, releases } = countingSources(['alpha', 'beta', 'gamma']);
  const server = await createServer({ models: sources, maxLoaded: 2, prebuildConstraint: false });
  try {
    const url = await server.listen({ port: 0 });
    await server.ready;
    assert.deepEqual(loads, ['alpha'], 'only the default model loads at startup');
    const list = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string; status: string; meta?: { n_ctx: number } }> };
    assert.deepEqual(list.data.map((m) => [m.id, m.status]), [['alpha', 'loaded'], ['beta', 'unloaded'], ['gamma', 'unloaded']]);
    assert.ok(list.data[0]!.meta!.n_ctx > 0);

    const b = await chat(url, 'beta');
    assert.equal(b.status, 200);
    assert.equal(((await b.json()) as { model: string }).model, 'beta');
    assert.deepEqual(loads, ['alpha', 'beta']);
    assert.deepEqual(releases, []);
    assert.equal((await chat(url, 'alpha')).status, 200); // alpha is now the most recent
    assert.equal((await chat(url, 'gamma')).status, 200); // unloads beta (least recently used)
    assert.deepEqual(loads, ['alpha', 'beta', 'gamma']);
    assert.deepEqual(releases, ['beta']);
    const statuses = ((await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string; status: string }> }).data.map((m) => m.status);
    assert.deepEqual(statuses, ['loaded', 'unloaded', 'loaded']);
    const m = parseMetrics(await (await fetch(`${url}/metrics`)).text());
    assert.equal(m.get('gemma_models_loaded'), 2);
    assert.equal(m.get('gemma_model_loads_total'), 3);
    assert.equal(m.get('gemma_model_unloads_total'), 1);
    assert.equal(m.get('gemma_completion_tokens_total'), 6, 'the tokens of an unloaded model still count');

    const unknown = await chat(url, 'delta');
    assert.equal(unknown.status, 404);
    const e = (await unknown.json()) as { error: { code: string; message: string } };
    assert.equal(e.error.code, 'model_not_found');
    assert.match(e.error.message, /'alpha', 'beta', 'gamma'/);
  } finally {
    await server.close();
  }
  assert.deepEqual(releases.sort(), ['alpha', 'beta', 'gamma'], 'close releases the models the server loaded');
});

test('a model with running sequences is never unloaded: the other model gets 503 + Retry-After until it is idle', async () => {
  const { sources, loads } = countingSources(['alpha', 'beta']);
  const server = await createServer({ models: sources, maxLoaded: 1, prebuildConstraint: false });
  try {
    const url = await server.listen({ port: 0 });
    await server.ready;
    const s = await openStream(url, { model: 'alpha', prompt: 'Once', max_tokens: 40, ignore_eos: true });
    await until(() => s.events.length >= 2, 20000, 'the first tokens');
    const busy = await chat(url, 'beta');
    assert.equal(busy.status, 503);
    assert.equal(busy.headers.get('retry-after'), '2');
    assert.equal(((await busy.json()) as { error: { code: string } }).error.code, 'model_busy');
    assert.deepEqual(loads, ['alpha']);
    assert.equal(await s.done, undefined);
    assert.equal(s.events.at(-1), '[DONE]');
    assert.equal((await chat(url, 'beta')).status, 200);
    assert.deepEqual(loads, ['alpha', 'beta']);
  } finally {
    await server.close();
  }
});

test('a memory budget keeps the loaded weights under it; a model larger than the budget is refused at once', async () => {
  const { sources, loads, releases } = countingSources(['alpha', 'beta'], [600, 500]);
  const server = await createServer({ models: sources, memoryBudget: 1000, prebuildConstraint: false });
  try {
    const url = await server.listen({ port: 0 });
    await server.ready;
    assert.equal((await chat(url, 'beta')).status, 200);
    assert.deepEqual(loads, ['alpha', 'beta']);
    assert.deepEqual(releases, ['alpha'], '600 + 500 > 1000: alpha was unloaded');
  } finally {
    await server.close();
  }
  await assert.rejects(createServer({ models: countingSources(['big'], [2000]).sources, memoryBudget: 1000 }), (e: unknown) => e instanceof UsageError && /more than the memory budget/.test(e.message));
  await assert.rejects(createServer({ models: countingSources(['a', 'a']).sources }), (e: unknown) => e instanceof UsageError && /two models are named 'a'/.test(e.message));
});

test('gemma serve --model a=demo --model b=demo --max-loaded 1: both listed, requests pick by model, one loaded at a time', async () => {
  const p = await spawnServe(['--model', 'a=demo', '--model', 'b=demo', '--max-loaded', '1']);
  procs.push(p);
  await p.ready();
  assert.match(p.stderr(), /model "a" on .*\n\s+also serving "b" \(loaded on first use, at most 1 at once\)/);
  const list = (await (await fetch(`${p.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
  assert.deepEqual(list.data.map((m) => m.id), ['a', 'b']);
  for (const model of ['b', 'a', 'b']) {
    const r = await chat(p.url, model);
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { model: string }).model, model);
  }
  const m = parseMetrics(await (await fetch(`${p.url}/metrics`)).text());
  assert.equal(m.get('gemma_models_loaded'), 1);
  assert.equal(m.get('gemma_model_loads_total'), 4);
  assert.equal(m.get('gemma_model_unloads_total'), 3);
  p.kill('SIGTERM');
  assert.equal(await p.exited, 0);
});
