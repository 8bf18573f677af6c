/**
 * The WebGPU backend in headless Chromium (SwiftShader's WebGPU adapter, on a secure
 * http://127.0.0.1 page): the web bundle loads every golden checkpoint by URL with
 * backend 'webgpu' (F32 and BF16) and its all-position logits match Google's reference within
 * 1e-4; the demo model's greedy chat tokens equal the Node library's (wasm backend).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { encodeChat } from '../src/tokenizer/chat.js';
import { loadModel } from '../src/model/load.js';
import { generate } from '../src/generate/generate.js';
import { packageRoot } from '../src/util/package-root.js';
import { GOLDEN_VARIANTS, goldenDir, readGolden } from './helpers/paths.js';
import { LOGIT_TOL } from './helpers/golden-check.js';
import { startStaticServer, type StaticServer } from './web-static.js';
import { buildWeb, launchChromium, requireChromium } from './helpers/browser.js';

const ROOT = packageRoot();
const MESSAGES = [{ role: 'user' as const, content: 'Hello, who are you?' }];
const MAX_TOKENS = 12;

let browser: Browser;
let server: StaticServer;
let page: Page;
let goldenTree: string;

before(async () => {
  requireChromium();
  buildWeb();
  // each golden checkpoint as two model directories (F32, BF16), their model.safetensors linked
  goldenTree = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-webgpu-golden-'));
  for (const v of GOLDEN_VARIANTS) {
    for (const [sub, file] of [['f32', 'model.safetensors'], ['bf16', 'model.bf16.safetensors']] as const) {
      const dir = path.join(goldenTree, v, sub);
      fs.mkdirSync(dir, { recursive: true });
      fs.symlinkSync(path.join(goldenDir(), v, 'config.json'), path.join(dir, 'config.json'));
      fs.symlinkSync(path.join(goldenDir(), v, file), path.join(dir, 'model.safetensors'));
    }
  }
  server = await startStaticServer({ '/dist/web/': path.join(ROOT, 'dist', 'web'), '/models/demo/': path.join(ROOT, 'models', 'demo'), '/golden/': goldenTree, '/': path.join(ROOT, 'test', 'fixtures', 'web') });
  browser = await launchChromium('webgpu');
  page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${server.url}/`);
  const adapter = await page.evaluate(async () => {
    const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator?.gpu;
    return gpu ? (await gpu.requestAdapter()) !== null : false;
  });
  assert.ok(adapter, 'Chromium offers a WebGPU adapter (SwiftShader)');
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (goldenTree) fs.rmSync(goldenTree, { recursive: true, force: true });
});

test('every golden checkpoint on WebGPU in Chromium: all-position logits within 1e-4 (F32 and BF16)', async () => {
  for (const variant of GOLDEN_VARIANTS) {
    for (const bf16 of [false, true]) {
      const golden = readGolden(variant, bf16);
      const seqs = golden.sequences.map((s) => s.input_ids);
      const got = await page.evaluate(
        async ({ url, seqs }) => {
          const g = await import('/dist/web/index.js' as string);
          const { model } = await g.loadModel(url, { backend: 'webgpu', noTokenizer: true, cache: false });
          const out: number[][] = [];
          for (const ids of seqs) out.push(Array.from((await model.forwardAsync(ids, model.createCache(128), { allPositions: true })).logits as Float32Array));
          const name = (model as { backend: { name: string } }).backend.name;
          model.dispose();
          return { out, name };
        },
        { url: `/golden/${variant}/${bf16 ? 'bf16' : 'f32'}/`, seqs },
      );
      assert.equal(got.name, 'webgpu');
      golden.sequences.forEach((seq, i) => {
        const flat = seq.all_logits.flat();
        let worst = 0;
        flat.forEach((v, j) => (worst = Math.max(worst, Math.abs(got.out[i]![j]! - v))));
        assert.ok(worst <= LOGIT_TOL, `${variant} ${bf16 ? 'bf16' : 'f32'} ${seq.name}: max |logit diff| ${worst}`);
      });
    }
  }
});

test('the demo model on WebGPU in Chromium gives the greedy tokens of Node', async () => {
  const { model, tokenizer } = await loadModel('demo', { backend: 'wasm', threads: 1 });
  const want: number[] = [];
  for await (const c of generate(model, tokenizer, encodeChat(tokenizer!, MESSAGES), { maxTokens: MAX_TOKENS, temperature: 0, ignoreEos: true })) if (c.id >= 0) want.push(c.id);
  model.dispose();
  const got = await page.evaluate(
    async ({ messages, maxTokens }) => {
      const g = await import('/dist/web/index.js' as string);
      const loaded = await g.loadModel('/models/demo/', { backend: 'webgpu' });
      const ids: number[] = [];
      for await (const c of g.generate(loaded.model, loaded.tokenizer, g.encodeChat(loaded.tokenizer, messages), { maxTokens, temperature: 0, ignoreEos: true })) if (c.id >= 0) ids.push(c.id);
      loaded.model.dispose();
      return ids;
    },
    { messages: MESSAGES, maxTokens: MAX_TOKENS },
  );
  assert.deepEqual(got, want);
});

test('subgroups in Chromium (SwiftShader has them): matrix-vector, RMSNorm and attention (also split over slots) reduce with subgroup operations; logits within 1e-4 of the reference and 1e-5 of the shared-memory path', async () => {
  const golden = readGolden('gemma2');
  const seqs = golden.sequences.map((s) => s.input_ids);
  const run = (subgroups: boolean, split = false) =>
    page.evaluate(
      async ({ url, seqs, subgroups, split }) => {
        const g = await import('/dist/web/index.js' as string);
        const backend = await g.createWebGpuBackend({ subgroups, ...(split ? { attentionSplitSlots: 1 } : {}) });
        const { model } = await g.loadModel(url, { backend, noTokenizer: true, cache: false });
        const out: number[][] = [];
        for (const ids of seqs) {
          const cache = model.createCache(128);
          out.push(Array.from((await model.forwardAsync(ids, cache, { allPositions: true })).logits as Float32Array));
          // one decoded token: the matrix-vector kernel
          out.push(Array.from((await model.forwardAsync([ids[0]], cache)).logits as Float32Array));
        }
        const info = { features: backend.features, used: backend.subgroups, dispatches: backend.kernelDispatches() };
        model.dispose();
        return { out, info };
      },
      { url: '/golden/gemma2/f32/', seqs, subgroups, split },
    );
  const sg = await run(true);
  const plain = await run(false);
  const sgSplit = await run(true, true);
  assert.equal(sg.info.features.subgroups, true, 'the SwiftShader adapter offers subgroups');
  assert.equal(sg.info.used, true);
  assert.equal(plain.info.used, false);
  const keys = (d: Record<string, number>) => Object.keys(d).filter((k) => k.startsWith('mv:') || k.startsWith('rmsnorm') || k.startsWith('attention')).sort();
  assert.deepEqual(keys(sg.info.dispatches), ['attention:sg', 'mv:f32:sg', 'rmsnorm:sg']);
  assert.deepEqual(keys(plain.info.dispatches), ['attention', 'mv:f32', 'rmsnorm']);
  assert.deepEqual(keys(sgSplit.info.dispatches), ['attention-combine', 'attention-part:sg', 'mv:f32:sg', 'rmsnorm:sg']);
  golden.sequences.forEach((seq, i) => {
    const flat = seq.all_logits.flat();
    for (const [what, r] of [['subgroups', sg], ['subgroups, split attention', sgSplit]] as const) {
      let worst = 0;
      flat.forEach((v, j) => (worst = Math.max(worst, Math.abs(r.out[2 * i]![j]! - v))));
      assert.ok(worst <= LOGIT_TOL, `${seq.name} with ${what}: max |logit diff| ${worst}`);
    }
  });
  sg.out.forEach((row, i) => {
    let worst = 0;
    row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - plain.out[i]![j]!))));
    assert.ok(worst <= 1e-5, `row set ${i}: subgroups vs shared memory ${worst}`);
  });
});
