/**
 * The web build (dist/web/index.js) in real headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core): the demo model loads from a local static server with and without COOP / COEP,
 * greedy generation gives the same tokens as Node, a second load comes from the Cache API without
 * a network request, File objects and a GGUF URL load too, and the bundle has no `node:` import.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { encodeChat } from '../src/tokenizer/chat.js';
import { loadModel } from '../src/model/load.js';
import { generate } from '../src/generate/generate.js';
import { packageRoot } from '../src/util/package-root.js';
import { convertToGGUF } from '../src/formats/convert.js';
import os from 'node:os';
import { startStaticServer, type StaticServer } from './web-static.js';
import { buildWeb, launchChromium, requireChromium } from './helpers/browser.js';

const ROOT = packageRoot();
const BUNDLE = path.join(ROOT, 'dist', 'web', 'index.js');
const MESSAGES = [{ role: 'user' as const, content: 'Hello, who are you?' }];
const MAX_TOKENS = 16;

let browser: Browser;
let plain: StaticServer;
let isolated: StaticServer;
let nodeIds: number[];
let ggufDir: string;
let ggufIds: number[];
let schemaIds: number[];

/** A structured-output request: the constraint's byte machines and token table run in the page too. */
const SCHEMA_FORMAT = {
  type: 'json_schema' as const,
  schema: { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'] },
};

/** Greedy tokens of the Node library (wasm backend) for a model path. */
async function nodeGreedy(spec: string, extra: Record<string, unknown> = {}): Promise<number[]> {
  const { model, tokenizer } = await loadModel(spec, { backend: 'wasm', threads: 1 });
  const ids: number[] = [];
  for await (const c of generate(model, tokenizer, encodeChat(tokenizer!, MESSAGES), { maxTokens: MAX_TOKENS, temperature: 0, ignoreEos: true, ...extra })) if (c.id >= 0) ids.push(c.id);
  model.dispose?.();
  return ids;
}

before(async () => {
  requireChromium();
  buildWeb();
  // The demo as a Q8_0 GGUF file (its vocabulary in the metadata).
  ggufDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-web-gguf-'));
  await convertToGGUF(path.join(ROOT, 'models', 'demo'), path.join(ggufDir, 'demo.Q8_0.gguf'), { type: 'q8_0', threads: 1 });
  const mounts = { '/dist/web/': path.join(ROOT, 'dist', 'web'), '/models/demo/': path.join(ROOT, 'models', 'demo'), '/gguf/': ggufDir, '/': path.join(ROOT, 'test', 'fixtures', 'web') };
  plain = await startStaticServer(mounts);
  isolated = await startStaticServer(mounts, { isolated: true });
  browser = await launchChromium('none');
  // The reference: the Node library on the same backend.
  nodeIds = await nodeGreedy('demo');
  ggufIds = await nodeGreedy(path.join(ggufDir, 'demo.Q8_0.gguf'));
  schemaIds = await nodeGreedy('demo', { responseFormat: SCHEMA_FORMAT, maxTokens: 48, ignoreEos: false });
  assert.equal(nodeIds.length, MAX_TOKENS);
});

after(async () => {
  await browser?.close();
  await plain?.close();
  await isolated?.close();
  if (ggufDir) fs.rmSync(ggufDir, { recursive: true, force: true });
});

interface PageRun {
  ids: number[];
  notices: string[];
  isolated: boolean;
  threads: number | undefined;
  backend: string;
  downloads: Array<{ url: string; fromCache: boolean }>;
  text: string;
}

/** In the page: load the model (from a URL, or from File objects fetched first) and generate greedily. */
async function runInPage(page: Page, options: { files?: boolean; url?: string; extra?: Record<string, unknown>; load?: Record<string, unknown> } = {}): Promise<PageRun> {
  return page.evaluate(
    async ({ messages, maxTokens, files, url, extra, load }) => {
      const g = await import(/* the bundle, served by the page's origin */ '/dist/web/index.js' as string);
      const downloads: Array<{ url: string; fromCache: boolean }> = [];
      let input: unknown = url;
      if (files) {
        const names = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
        input = await Promise.all(names.map(async (n) => new File([await (await fetch(`/models/demo/${n}`)).blob()], n)));
      }
      const loaded = await g.loadModel(input, { backend: 'wasm', ...load, onDownloadProgress: (p: { url: string; fromCache: boolean }) => downloads.push({ url: p.url, fromCache: p.fromCache }) });
      const ids: number[] = [];
      let text = '';
      const prompt = g.encodeChat(loaded.tokenizer, messages);
      for await (const c of g.generate(loaded.model, loaded.tokenizer, prompt, { maxTokens, temperature: 0, ignoreEos: true, ...extra })) {
        if (c.id >= 0) ids.push(c.id);
        text += c.text;
      }
      const backend = (loaded.model as { backend: { name: string; threads?: number } }).backend;
      const run = { ids, text, notices: loaded.notices, isolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true, threads: backend.threads, backend: backend.name, downloads };
      loaded.model.dispose();
      return run;
    },
    { messages: MESSAGES, maxTokens: MAX_TOKENS, files: options.files ?? false, url: options.url ?? '/models/demo/', extra: options.extra ?? {}, load: options.load ?? {} },
  );
}

/** Run `body` on a page of `server` in a fresh browser context (its own Cache API storage). */
async function withPage(server: StaticServer, body: (page: Page) => Promise<void>): Promise<void> {
  const context: BrowserContext = await browser.newContext();
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e));
    await page.goto(`${server.url}/`);
    await body(page);
  } finally {
    await context.close();
  }
}

test('the bundle is an ES module with no node: imports', () => {
  const code = fs.readFileSync(BUNDLE, 'utf8');
  const nodeImports = [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["'](node:[\w/]+|fs|path|os|worker_threads|child_process)["']/g)].map((m) => m[1]);
  assert.deepEqual(nodeImports, []);
  assert.match(code, /\bexport\s*\{[^}]*\bloadModel\b/);
  for (const name of ['loadModel', 'generate', 'encodeChat', 'loadTokenizer', 'ChatSession', 'OutputConstraint', 'ShieldClassifier', 'JumpReluSae']) {
    assert.match(code, new RegExp(`export\\s*\\{[^}]*\\b${name}\\b`), `exports ${name}`);
  }
});

test('without COOP/COEP: one thread (with a notice), the same greedy tokens as Node, then a second load from the cache', async () => {
  await withPage(plain, async (page) => {
    const first = await runInPage(page);
    assert.equal(first.isolated, false);
    assert.equal(first.threads, 1);
    assert.match(first.backend, /^wasm-/);
    assert.ok(first.notices.some((n) => /one thread.*cross-origin isolated/.test(n)), `a one-thread notice: ${JSON.stringify(first.notices)}`);
    assert.deepEqual(first.ids, nodeIds);
    assert.ok(first.text.length > 0);
    assert.ok(first.downloads.some((d) => d.url.endsWith('model.safetensors') && !d.fromCache), 'the weights came from the network');
    assert.ok(plain.requests.some((r) => r === '/models/demo/model.safetensors'));

    // Second load in the same origin: every model file comes from the Cache API.
    plain.requests = [];
    const second = await runInPage(page);
    assert.deepEqual(plain.requests.filter((r) => r.startsWith('/models/')), [], 'no model file was requested again');
    assert.ok(second.downloads.length > 0 && second.downloads.every((d) => d.fromCache));
    assert.deepEqual(second.ids, nodeIds);
  });
});

test('with COOP/COEP: Web Worker threads over shared memory, the same greedy tokens as Node', async () => {
  await withPage(isolated, async (page) => {
    const run = await runInPage(page);
    assert.equal(run.isolated, true);
    const cores = await page.evaluate(() => (globalThis as unknown as { navigator: { hardwareConcurrency: number } }).navigator.hardwareConcurrency);
    assert.equal(run.threads, cores);
    assert.ok(!run.notices.some((n) => /one thread/.test(n)), JSON.stringify(run.notices));
    assert.deepEqual(run.ids, nodeIds);
  });
});

test('File objects (a picked model directory) load and give the same tokens', async () => {
  await withPage(plain, async (page) => {
    const run = await runInPage(page, { files: true });
    assert.deepEqual(run.downloads, [], 'File inputs download nothing');
    assert.deepEqual(run.ids, nodeIds);
  });
});

test('a GGUF file (Q8_0, vocabulary in its metadata) loads from its URL and gives the same tokens as Node', async () => {
  await withPage(plain, async (page) => {
    const run = await runInPage(page, { url: '/gguf/demo.Q8_0.gguf' });
    assert.deepEqual(run.ids, ggufIds);
    assert.ok(run.downloads.some((d) => d.url.endsWith('/gguf/demo.Q8_0.gguf') && !d.fromCache));
  });
});

test('structured output (a JSON schema) in the page gives the tokens Node gives, and valid JSON', async () => {
  await withPage(plain, async (page) => {
    const run = await runInPage(page, { extra: { responseFormat: SCHEMA_FORMAT, maxTokens: 48, ignoreEos: false } });
    assert.deepEqual(run.ids, schemaIds);
    const value = JSON.parse(run.text) as { name: string; age: number };
    assert.ok(typeof value.name === 'string' && [...value.name].length <= 8);
    assert.ok(Number.isInteger(value.age) && value.age >= 0 && value.age <= 120);
  });
});

test('cache: false reads with plain range requests, and nothing is kept for a second load', async () => {
  await withPage(plain, async (page) => {
    plain.requests = [];
    const first = await runInPage(page, { load: { cache: false } });
    assert.deepEqual(first.ids, nodeIds);
    const weightReads = plain.requests.filter((r) => r === '/models/demo/model.safetensors').length;
    // the first request of a file reads its first MiB (the headers); the rest comes in exact ranges,
    // one per tensor - and a file under a MiB (the trained demo: ~0.6 MiB) is whole after the first
    const weightBytes = fs.statSync(path.join(packageRoot(), 'models', 'demo', 'model.safetensors')).size;
    if (weightBytes > 1024 * 1024) assert.ok(weightReads > 2, `the weights were read with several range requests (${weightReads})`);
    else assert.equal(weightReads, 1, `a ${weightBytes}-byte file is read by its first request`);
    plain.requests = [];
    await runInPage(page, { load: { cache: false } });
    assert.equal(plain.requests.filter((r) => r === '/models/demo/model.safetensors').length, weightReads, 'the second load fetched the same ranges again');
    assert.equal(await page.evaluate(async () => (await (globalThis as unknown as { caches: { keys(): Promise<string[]> } }).caches.keys()).length), 0, 'no cache was created');
  });
});
