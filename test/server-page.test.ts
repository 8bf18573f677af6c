/**
 * The chat page in real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
 * type a message, see a streamed answer, multi-turn, press stop.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { parseMetrics, startDemoServer, type RunningServer } from './helpers/server.js';
import { CHROMIUM, chromiumArgs, requireChromium } from './helpers/browser.js';


let srv: RunningServer;
let context: BrowserContext;
let page: Page;
let userDataDir: string;

before(async () => {
  requireChromium();
  srv = await startDemoServer({ parallel: 2, apiKey: 'page-key' });
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: chromiumArgs('none'),
  });
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  await context?.close();
  await srv?.close();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

async function metric(name: string): Promise<number> {
  const res = await fetch(`${srv.url}/metrics`, { headers: { authorization: 'Bearer page-key' } });
  return parseMetrics(await res.text()).get(name) ?? NaN;
}

test('chat page: streamed answer, second turn, stop button', async () => {
  await page.goto(`${srv.url}/`);
  await page.fill('#api_key', 'page-key');
  await page.dispatchEvent('#api_key', 'change');
  await page.fill('#max_tokens', '24');
  await page.fill('#seed', '42');
  await page.fill('#temperature', '0');

  // Turn 1: the answer streams in, ends, and shows tokens/s.
  await page.fill('#input', 'Hello, who are you?');
  await page.press('#input', 'Enter');
  await page.waitForSelector('.msg.assistant .meta', { timeout: 20_000 });
  const answer1 = await page.textContent('.msg.assistant .text');
  assert.ok(answer1 && answer1.length > 0, 'an answer appeared');
  const meta1 = await page.textContent('.msg.assistant .meta');
  assert.match(meta1 ?? '', /\d+ tokens · [\d.]+ tokens\/s/);
  assert.match((await page.textContent('#stats')) ?? '', /tokens\/s/);
  assert.equal(await page.textContent('#error'), '');

  // The same request through the API gives the same text (temperature 0).
  const api = await fetch(`${srv.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer page-key' },
    body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'Hello, who are you?' }], max_tokens: 24, temperature: 0, top_p: 0.95, top_k: 64, seed: 42 }),
  });
  const apiText = ((await api.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
  assert.equal(answer1, apiText);

  // Turn 2 (multi-turn): the earlier turns are sent again and reused from the cache.
  const cachedBefore = await metric('gemma_prompt_tokens_cached_total');
  await page.fill('#input', 'Tell me more.');
  await page.click('#send');
  await page.waitForFunction("document.querySelectorAll('.msg.assistant .meta').length === 2", undefined, { timeout: 20_000 });
  assert.equal(await page.locator('.msg.user').count(), 2);
  assert.ok((await metric('gemma_prompt_tokens_cached_total')) - cachedBefore > 5, 'the second turn reused the first turn from the KV cache');

  // Stop: a long answer, stopped while it streams. The trained demo ends its answers early, so the
  // request the page sends gets ignore_eos on its way out (the page itself is unchanged).
  await page.route('**/v1/chat/completions', async (route) => {
    const body = JSON.parse(route.request().postData() ?? '{}') as Record<string, unknown>;
    await route.continue({ postData: JSON.stringify({ ...body, ignore_eos: true }) });
  });
  await page.fill('#max_tokens', '3000');
  await page.fill('#input', 'Write a very long essay.');
  await page.press('#input', 'Enter');
  await page.waitForFunction("(document.querySelectorAll('.msg.assistant .text')[2]?.textContent ?? '').length > 0", undefined, { timeout: 20_000 });
  assert.equal(await page.isEnabled('#stop'), true);
  await page.click('#stop');
  await page.waitForFunction("document.querySelectorAll('.msg.assistant .meta').length === 3", undefined, { timeout: 10_000 });
  assert.match((await page.locator('.msg.assistant .meta').nth(2).textContent()) ?? '', /stopped/);
  assert.equal(await page.isEnabled('#send'), true);
  assert.equal(await page.isEnabled('#stop'), false);
  // The server let go of the sequence.
  let active = await metric('gemma_active_sequences');
  for (let i = 0; i < 100 && active !== 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
    active = await metric('gemma_active_sequences');
  }
  assert.equal(active, 0);
  assert.ok((await metric('gemma_sequences_total{outcome="aborted"}')) >= 1);
});
