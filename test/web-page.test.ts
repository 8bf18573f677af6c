/**
 * examples/browser as `gemma serve` serves it at /local/, in headless Chromium: the demo model loads
 * in the tab (cross-origin isolated: wasm worker threads), a typed message gets a streamed answer
 * with tokens/s, and no request goes to the server's inference API.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { packageRoot } from '../src/util/package-root.js';
import { startDemoServer, type RunningServer } from './helpers/server.js';
import { buildWeb, launchChromium, requireChromium } from './helpers/browser.js';


let srv: RunningServer;
let browser: Browser;

before(async () => {
  requireChromium();
  buildWeb();
  srv = await startDemoServer({ apiKey: 'local-key' });
  browser = await launchChromium('none');
});

after(async () => {
  await browser?.close();
  await srv?.close();
});

test('/local/: the demo loads in the tab, a typed message gets a streamed answer', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const apiCalls: string[] = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname.startsWith('/v1/')) apiCalls.push(r.url());
  });
  try {
    await page.goto(`${srv.url}/local/`);
    await page.waitForSelector('#status:text-matches("loaded in")', { timeout: 30_000 });
    const status = (await page.textContent('#status')) ?? '';
    assert.match(status, /wasm-\w+ × \d+ threads/);
    assert.equal(await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated), true, '/local/ is cross-origin isolated');
    assert.equal(await page.textContent('#error'), '');

    // Count the updates of the answer while it streams.
    await page.evaluate(() => {
      const w = globalThis as unknown as { updates: number; MutationObserver: new (f: () => void) => { observe(n: unknown, o: unknown): void }; document: { getElementById(id: string): unknown } };
      w.updates = 0;
      new w.MutationObserver(() => void w.updates++).observe(w.document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
    });
    await page.fill('#max_tokens', '24');
    await page.fill('#temperature', '0');
    await page.fill('#input', 'Hello, who are you?');
    await page.press('#input', 'Enter');
    await page.waitForSelector('.msg.assistant .meta', { timeout: 30_000 });
    const answer = (await page.textContent('.msg.assistant .text')) ?? '';
    assert.ok(answer.length > 0, 'an answer appeared');
    assert.ok((await page.evaluate(() => (globalThis as unknown as { updates: number }).updates)) > 3, 'the answer streamed in several updates');
    assert.match((await page.textContent('.msg.assistant .meta')) ?? '', /\d+ tokens · [\d.]+ tokens\/s/);
    assert.match((await page.textContent('#stats')) ?? '', /tokens\/s/);
    assert.equal(await page.textContent('#error'), '');
    assert.deepEqual(apiCalls, [], 'no server inference');
  } finally {
    await context.close();
  }
});

test('/local/ files are open without the API key, serve byte ranges, and unknown paths are 404', async () => {
  const res = await fetch(`${srv.url}/local/models/demo/model.safetensors`, { headers: { range: 'bytes=0-7' } });
  assert.equal(res.status, 206);
  assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp');
  const size = fs.statSync(path.join(packageRoot(), 'models', 'demo', 'model.safetensors')).size;
  assert.equal(res.headers.get('content-range'), `bytes 0-7/${size}`);
  assert.equal((await res.arrayBuffer()).byteLength, 8);
  assert.equal((await fetch(`${srv.url}/local/gemma-ts.js`)).status, 200);
  assert.equal((await fetch(`${srv.url}/local/models/demo/../../package.json`)).status, 404, 'only the listed files');
  assert.equal((await fetch(`${srv.url}/local/nothing.js`)).status, 404);
});
