/**
 * SAE routes on the fastify server over the demo model: POST /v1/sae/features, the "sae" field
 * on chat completions, and the /sae page in headless Chromium.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext } from 'playwright-core';
import { readFeatures } from '../src/interpret/features.js';
import { JumpReluSae } from '../src/interpret/sae.js';
import { registerSaeRoutes } from '../src/interpret/server-routes.js';
import { randomSae } from './helpers/npz-writer.js';
import { loadDemo, startDemoServer, type RunningServer } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
let srv: RunningServer;
let sae: JumpReluSae;
let sae2: JumpReluSae;

before(async () => {
  const { model, tokenizer } = await loadDemo();
  // SAEs sized to the demo model's residual stream, on its layer 2 and its last layer (3).
  const dModel = model.config.hiddenSize;
  sae = JumpReluSae.fromArrays({ ...randomSae(dModel, 96, 31, 0.3), hook: 'blocks.2.hook_resid_post' });
  sae2 = JumpReluSae.fromArrays({ ...randomSae(dModel, 32, 32, 0.3), hook: 'blocks.3.hook_mlp_out' });
  srv = await startDemoServer({ configure: (app) => registerSaeRoutes(app, { model, tokenizer, saes: { 'res-2': sae, 'mlp-3': sae2 } }) });
});

after(async () => {
  await srv?.close();
});

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${srv.url}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

interface ApiToken {
  id: number;
  token: string;
  features: Array<{ index: number; value: number }>;
  value?: number;
}

test('GET /v1/sae and POST /v1/sae/features (prompt, ids, feature, errors)', async () => {
  const list = (await (await fetch(`${srv.url}/v1/sae`)).json()) as { data: Array<{ id: string; hook: string; d_sae: number }> };
  assert.deepEqual(list.data.map((d) => [d.id, d.hook, d.d_sae]), [['res-2', 'blocks.2.hook_resid_post', 96], ['mlp-3', 'blocks.3.hook_mlp_out', 32]]);

  const { model, tokenizer } = await loadDemo();
  const prompt = 'The cat sat on the mat.';
  const ids = tokenizer!.encode(prompt);
  const want = readFeatures(model, sae, ids, { top: 5 });
  const r = await post('/v1/sae/features', { prompt, top: 5 });
  assert.equal(r.status, 200);
  assert.equal(r.json.hook, 'blocks.2.hook_resid_post');
  const tokens = r.json.tokens as ApiToken[];
  assert.deepEqual(tokens.map((t) => t.id), ids);
  assert.equal(tokens[1]!.token, tokenizer!.decode([ids[1]!]));
  tokens.forEach((t, i) => assert.deepEqual(t.features, want.tokens[i]!.features));

  const byIds = await post('/v1/sae/features', { ids, top: 5, sae: 'mlp-3', feature: 7 });
  assert.equal(byIds.status, 200);
  const want2 = readFeatures(model, sae2, ids, { top: 32 });
  (byIds.json.tokens as ApiToken[]).forEach((t, i) => {
    assert.equal(t.value, want2.tokens[i]!.features.find((f) => f.index === 7)?.value ?? 0);
    assert.deepEqual(t.features, want2.tokens[i]!.features.slice(0, 5));
  });

  for (const bad of [{ prompt, ids }, {}, { prompt, sae: 'nope' }, { prompt, top: 0 }, { prompt, feature: 96 }, { ids: [2, 999999] }, { ids: 'x' }]) {
    const e = await post('/v1/sae/features', bad);
    assert.equal(e.status, 400, JSON.stringify(bad));
    assert.equal(typeof (e.json.error as { message: string }).message, 'string');
  }
});

test('"sae" on chat completions: the top features of every answer token', async () => {
  const body = { model: 'demo', messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, temperature: 0 };
  const plain = await post('/v1/chat/completions', body);
  assert.equal(plain.status, 200);
  const choicesPlain = plain.json.choices as Array<{ message: { content: string }; sae?: unknown }>;
  assert.equal(choicesPlain[0]!.sae, undefined, 'no sae field unless asked');
  const withSae = await post('/v1/chat/completions', { ...body, sae: { top: 3, feature: 5 } });
  assert.equal(withSae.status, 200);
  const choice = (withSae.json.choices as Array<{ message: { content: string }; sae: { hook: string; feature: number; tokens: ApiToken[] } }>)[0]!;
  assert.equal(choice.message.content, choicesPlain[0]!.message.content, 'the answer is unchanged');
  const { model, tokenizer } = await loadDemo();
  const answer = tokenizer!.encode(choice.message.content, { addBos: false });
  assert.ok(answer.length > 0);
  assert.equal(choice.sae.hook, 'blocks.2.hook_resid_post');
  assert.deepEqual(choice.sae.tokens.map((t) => t.id), answer);
  // One entry per generated token: the server's own ids, not a re-tokenization.
  assert.equal(choice.sae.tokens.length, (withSae.json.usage as { completion_tokens: number }).completion_tokens);
  // Same as reading the whole conversation + answer.
  const sot = tokenizer!.pieceToId('<start_of_turn>')!;
  const eot = tokenizer!.pieceToId('<end_of_turn>')!;
  const nl = tokenizer!.encode('\n', { addBos: false });
  const promptIds = [tokenizer!.bosId, sot, ...tokenizer!.encode('user\nHello there', { addBos: false }), eot, ...nl, sot, ...tokenizer!.encode('model\n', { addBos: false })];
  const full = readFeatures(model, sae, [...promptIds, ...answer], { top: 96 });
  choice.sae.tokens.forEach((t, k) => {
    const all = full.tokens[promptIds.length + k]!.features;
    assert.deepEqual(t.features, all.slice(0, 3));
    assert.equal(t.value, all.find((f) => f.index === 5)?.value ?? 0);
  });
  const streamed = await post('/v1/chat/completions', { ...body, stream: true, sae: true });
  assert.equal(streamed.status, 400);
  const badSae = await post('/v1/chat/completions', { ...body, sae: { sae: 'nope' } });
  assert.equal(badSae.status, 400);
});

test('the /sae page colours the tokens by the chosen feature (headless Chromium)', async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium package`);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-sae-chromium-'));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${srv.url}/sae`);
    await page.waitForFunction("document.querySelectorAll('#sae option').length === 2");
    const prompt = 'Once upon a time there was a cat.';
    // Pick a feature that fires somewhere (from the API) and show it.
    const api = await post('/v1/sae/features', { prompt, top: 1 });
    const feature = (api.json.tokens as ApiToken[])[3]!.features[0]!.index;
    await page.fill('#prompt', prompt);
    await page.fill('#feature', String(feature));
    await page.click('#run');
    await page.waitForSelector('#tokens .tok');
    const shown = await page.$$eval('#tokens .tok', (els) => els.map((e) => ({ text: e.textContent, value: Number(e.getAttribute('data-value')), bg: (e as unknown as { style: { backgroundColor: string } }).style.backgroundColor })));
    const want = (await post('/v1/sae/features', { prompt, feature, top: 10 })).json.tokens as ApiToken[];
    assert.equal(shown.length, want.length);
    const max = Math.max(...want.map((t) => t.value!));
    assert.ok(max > 0);
    shown.forEach((s, i) => {
      assert.equal(s.text, want[i]!.token);
      assert.equal(s.value, want[i]!.value);
      if (want[i]!.value === 0) assert.match(s.bg, /transparent|rgba\(0, 0, 0, 0\)/);
      else assert.match(s.bg, /^rgba?\(255, 120, 0/);
    });
    const peak = shown.findIndex((s) => s.value === max);
    assert.match(shown[peak]!.bg, /^rgb\(255, 120, 0\)$|^rgba\(255, 120, 0, 1\)$/, 'the peak token is fully coloured');
    assert.match((await page.textContent('#summary')) ?? '', new RegExp(`feature ${feature} of 96 at blocks\\.2\\.hook_resid_post`));
    // Clicking a token lists its features; clicking one re-colours by it.
    await page.click(`.tok[data-index="${peak}"]`);
    await page.waitForSelector('#detail .feat');
    const other = await page.$eval('#detail .feat', (b) => Number(b.getAttribute('data-feature')));
    await page.click('#detail .feat');
    await page.waitForFunction(`(document.querySelector('#summary')?.textContent ?? '').startsWith('feature ${other} ')`);
    assert.equal(await page.inputValue('#feature'), String(other));
    assert.equal(await page.textContent('#error'), '');
  } finally {
    await context?.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
});
