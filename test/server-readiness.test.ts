/**
 * Readiness with more than the main model: `gemma serve --guard M --sae F` listens first and
 * answers /health 503 until the default model AND the guard / SAE models are loaded; a failed
 * guard load is the server's failure (/health 503 "error" naming it).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { registerServeCommand } from '../src/cli/serve.js';
import { createServer } from '../src/server/server.js';
import { runCli } from './helpers/cli.js';
import { randomSae, saeArrays, writeNpz } from './helpers/npz-writer.js';
import { repoRoot } from './helpers/paths.js';
import { loadDemo } from './helpers/server.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-readiness-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function health(url: string): Promise<{ status: number; body: { status: string; error?: string } }> {
  const r = await fetch(`${url}/health`);
  return { status: r.status, body: (await r.json()) as { status: string; error?: string } };
}

test('createServer({loading}): /health is 503 until the model and the extra loading are done', async () => {
  const demo = await loadDemo();
  let finish!: () => void;
  const extra = new Promise<void>((r) => (finish = r));
  const server = await createServer({ model: demo.model, tokenizer: demo.tokenizer, modelId: 'demo', loading: () => extra });
  const url = await server.listen({ port: 0 });
  try {
    await new Promise((r) => setTimeout(r, 50)); // the model itself is loaded already
    assert.deepEqual([(await health(url)).status, (await health(url)).body.status], [503, 'loading']);
    const r = await fetch(`${url}/v1/models`);
    assert.equal(r.status, 503);
    assert.ok(r.headers.get('retry-after'));
    finish();
    await server.ready;
    assert.deepEqual([(await health(url)).status, (await health(url)).body.status], [200, 'ok']);
  } finally {
    await server.close();
  }
});

test('createServer({loading}) that fails: /health 503 "error" with its message, and ready rejects', async () => {
  const demo = await loadDemo();
  const server = await createServer({ model: demo.model, tokenizer: demo.tokenizer, modelId: 'demo', loading: async () => Promise.reject(new Error('cannot load the guard model /x: no such file')) });
  const url = await server.listen({ port: 0 });
  try {
    await assert.rejects(server.ready, /cannot load the guard model/);
    const h = await health(url);
    assert.equal(h.status, 503);
    assert.equal(h.body.status, 'error');
    assert.match(h.body.error!, /cannot load the guard model \/x/);
  } finally {
    await server.close();
  }
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

test('gemma serve --guard demo --sae F: listens at once, 503 until every model is loaded, then the guard and SAE routes answer', async () => {
  const saeFile = path.join(tmp, 'demo-scope-res', 'layer_1', 'width_32', 'average_l0_5', 'params.npz');
  fs.mkdirSync(path.dirname(saeFile), { recursive: true });
  const hidden = (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'models', 'demo', 'config.json'), 'utf8')) as { hidden_size: number }).hidden_size;
  writeNpz(saeFile, saeArrays(randomSae(hidden, 32, 4)));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const stop = new AbortController();
  let readyAt = 0;
  const run = runCli((program, io) => registerServeCommand(program, io, { shutdown: stop.signal, onListening: () => (readyAt = Date.now()) }), [
    'serve', '--model', 'demo', '--backend', 'js', '--port', String(port), '--guard', 'demo', '--sae', `res=${saeFile}`,
  ]);
  const seen: number[] = [];
  try {
    // Poll from the start: every answer before the first 200 is a 503, and at the first 200
    // the guard's and the SAE's routes already work.
    for (let i = 0; i < 3000; i++) {
      let h;
      try {
        h = await health(url);
      } catch {
        await new Promise((r) => setTimeout(r, 5));
        continue; // not listening yet
      }
      seen.push(h.status);
      if (h.status === 200) break;
      assert.equal(h.status, 503);
      assert.equal(h.body.status, 'loading');
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(seen.at(-1), 200, `the server became ready (saw ${seen.length} answers)`);
    const mod = await fetch(`${url}/v1/moderations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'hello there' }) });
    assert.equal(mod.status, 200, await mod.clone().text());
    assert.equal(((await mod.json()) as { results: unknown[] }).results.length, 1);
    const sae = (await (await fetch(`${url}/v1/sae`)).json()) as { data: Array<{ id: string; d_in: number }> };
    assert.deepEqual(sae.data.map((d) => [d.id, d.d_in]), [['res', hidden]]);
    const feats = await fetch(`${url}/v1/sae/features`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sae: 'res', ids: [2, 10, 20] }) });
    assert.equal(feats.status, 200, await feats.clone().text());
    // guarded chat still answers (the guard's hooks are bound)
    const chat = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) });
    assert.equal(chat.status, 200);
    assert.ok(chat.headers.get('x-gemma-guard'), 'the guard screened the prompt');
    // onListening (the CLI's "ready" line) fires after the models are loaded
    for (let i = 0; i < 100 && !readyAt; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(readyAt > 0);
  } finally {
    stop.abort();
    const r = await run;
    assert.equal(r.error, undefined, String(r.error));
    assert.match(r.stderr, /listening on .*loading model "demo" and the guard and SAE models \(\/health answers 503 until loaded\)/);
  }
});

test('gemma serve --guard with a checkpoint that does not load: the command fails naming the guard', async () => {
  const stop = new AbortController();
  const r = await runCli((program, io) => registerServeCommand(program, io, { shutdown: stop.signal }), [
    'serve', '--model', 'demo', '--backend', 'js', '--port', '0', '--guard', path.join(tmp, 'missing-guard'),
  ]);
  assert.ok(r.error, 'the command failed');
  assert.match(String((r.error as Error).message), /cannot load the guard model .*missing-guard/);
});
