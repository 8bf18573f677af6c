/**
 * Load / dispose cycles in headless Chromium (SwiftShader's WebGPU adapter), on a cross-origin
 * isolated page (so the wasm backend runs Web Workers over shared memories, and the page can
 * measure its own memory): 10 cycles of the demo model with backend 'webgpu' and 10 with 'wasm'.
 * Each cycle loads the model, runs a forward pass (same logits every time) and disposes it.
 * - webgpu: the backend's GPU buffer accounting is non-zero while loaded and 0 after dispose,
 *   and every cycle reuses the one GPUDevice (no device per model);
 * - wasm: the backend's memories are released (none left after dispose), and the disposed
 *   backends are garbage collected (WeakRefs cleared after gc()), memories and workers included;
 * - both: the page's memory (performance.measureUserAgentSpecificMemory: JS heaps, wasm memories
 *   and workers) after cycle 10 is within 16 MiB of after cycle 3.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { packageRoot } from '../src/util/package-root.js';
import { startStaticServer, type StaticServer } from './web-static.js';
import { buildWeb, launchChromium, requireChromium } from './helpers/browser.js';

const ROOT = packageRoot();
const CYCLES = 10;

let browser: Browser;
let server: StaticServer;
let page: Page;

before(async () => {
  requireChromium();
  buildWeb();
  server = await startStaticServer({ '/dist/web/': path.join(ROOT, 'dist', 'web'), '/models/demo/': path.join(ROOT, 'models', 'demo'), '/': path.join(ROOT, 'test', 'fixtures', 'web') }, { isolated: true });
  // gc() in the page, and measureUserAgentSpecificMemory() answering at once instead of at the next idle GC
  browser = await launchChromium('webgpu', ['--js-flags=--expose-gc', '--enable-blink-features=ForceEagerMeasureMemory']);
  page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${server.url}/`);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

interface CycleReport {
  isolated: boolean;
  logits: number[];
  held: number;
  left: number;
  sameDevice: boolean;
  /** performance.measureUserAgentSpecificMemory bytes after each cycle (after gc). */
  pageBytes: number[];
  /** WeakRefs to the disposed backends still alive after gc (wasm). */
  alive: number;
  threads: number;
}

function cycles(backend: 'webgpu' | 'wasm'): Promise<CycleReport> {
  return page.evaluate(
    async ({ backend, n }) => {
      const g = await import('/dist/web/index.js' as string);
      const w = globalThis as unknown as { gc(): void; performance: { measureUserAgentSpecificMemory(): Promise<{ bytes: number }> }; crossOriginIsolated: boolean };
      const settle = async () => {
        for (let i = 0; i < 3; i++) {
          w.gc();
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const ids = [2, 105, 777, 107, 382, 846, 106];
      let logits: number[] | undefined;
      let same = true;
      let device: unknown;
      let held = Infinity, left = 0, threads = 0;
      const pageBytes: number[] = [];
      const refs: WeakRef<object>[] = [];
      for (let i = 0; i < n; i++) {
        // two workers whatever navigator.hardwareConcurrency says (1 when the test runs pinned to a core)
        const { model } = await g.loadModel('/models/demo/', { backend, ...(backend === 'wasm' ? { threads: 2 } : {}) });
        const b = model.backend;
        const row = Array.from((await model.forwardAsync(ids, model.createCache(64))).logits as Float32Array).slice(0, 64);
        if (!logits) logits = row;
        else if (row.some((v, j) => v !== logits![j])) throw new Error(`cycle ${i}: different logits`);
        const bytes = () => (backend === 'webgpu' ? b.memoryBytes() : (b.memoryBytes() as number[]).reduce((a: number, x: number) => a + x, 0));
        held = Math.min(held, bytes());
        threads = b.threads ?? 0;
        if (backend === 'webgpu') {
          device ??= b.device;
          same &&= b.device === device;
        }
        model.dispose();
        left = Math.max(left, bytes());
        refs.push(new WeakRef(b));
        await settle();
        pageBytes.push((await w.performance.measureUserAgentSpecificMemory()).bytes);
      }
      await settle();
      return { isolated: w.crossOriginIsolated, logits: logits!, held, left, sameDevice: same, pageBytes, alive: refs.filter((r) => r.deref() !== undefined).length, threads };
    },
    { backend, n: CYCLES },
  );
}

const MiB = 2 ** 20;

function checkGrowth(r: CycleReport, what: string): void {
  const grown = r.pageBytes[CYCLES - 1]! - r.pageBytes[2]!;
  console.log(`${what}: page memory after each cycle (MiB): ${r.pageBytes.map((b) => (b / MiB).toFixed(1)).join(' ')}`);
  assert.ok(grown < 16 * MiB, `${what}: page memory grew by ${(grown / MiB).toFixed(1)} MiB over cycles 4-10`);
}

test(`${CYCLES} load / dispose cycles of the demo on webgpu in Chromium: GPU buffers all returned, one device, page memory flat`, async () => {
  const r = await cycles('webgpu');
  assert.equal(r.isolated, true);
  assert.ok(r.held > 500_000, `GPU buffers held while loaded: ${r.held} bytes (the demo's weights)`);
  assert.equal(r.left, 0, 'GPU buffer bytes left after dispose');
  assert.equal(r.sameDevice, true, 'every cycle reuses the one GPUDevice');
  checkGrowth(r, 'webgpu');
});

test(`${CYCLES} load / dispose cycles of the demo on wasm (Web Workers) in Chromium: memories released and collected, page memory flat`, async () => {
  const r = await cycles('wasm');
  assert.equal(r.isolated, true);
  assert.ok(r.threads >= 2, `wasm ran on ${r.threads} threads (workers over shared memories)`);
  assert.ok(r.held > 500_000, `wasm memory while loaded: ${r.held} bytes`);
  assert.equal(r.left, 0, 'wasm memories left after dispose');
  // the last backend may still be referenced by the page's evaluation frame; the others must be gone
  assert.ok(r.alive <= 1, `${r.alive} disposed wasm backends still alive after gc`);
  checkGrowth(r, 'wasm');
});

test('OPFS as the download cache (cacheStore: "opfs"): the second load requests no model file and gives the same logits', async () => {
  const run = () =>
    page.evaluate(async () => {
      const g = await import('/dist/web/index.js' as string);
      const progress: boolean[] = [];
      const { model } = await g.loadModel('/models/demo/', { backend: 'wasm', threads: 1, cache: 'gemma-ts-opfs-test', cacheStore: 'opfs', onDownloadProgress: (p: { fromCache: boolean }) => progress.push(p.fromCache) });
      const logits = Array.from((await model.forwardAsync([2, 105, 777], model.createCache(16))).logits as Float32Array).slice(0, 32);
      model.dispose();
      const root = await (globalThis as unknown as { navigator: { storage: { getDirectory(): Promise<{ getDirectoryHandle(n: string): Promise<{ keys(): AsyncIterable<string> }> }> } } }).navigator.storage.getDirectory();
      let files = 0;
      for await (const _ of (await root.getDirectoryHandle('gemma-ts-opfs-test')).keys()) files++;
      return { logits, progress, files };
    });
  await page.evaluate(async () => (await import('/dist/web/index.js' as string)).clearCache('gemma-ts-opfs-test', 'opfs'));
  server.requests.length = 0;
  const first = await run();
  assert.ok(server.requests.includes('/models/demo/model.safetensors'), 'the first load downloads the weights');
  assert.ok(first.files >= 4, `${first.files} OPFS files (config, tokenizer files, weights' chunks and their metadata)`);
  assert.ok(first.progress.includes(false));
  server.requests.length = 0;
  const second = await run();
  assert.deepEqual(server.requests.filter((r) => r.startsWith('/models/')), [], 'no model file requested again');
  assert.ok(second.progress.length > 0 && second.progress.every((c) => c), 'every progress report says fromCache');
  assert.deepEqual(second.logits, first.logits);
  assert.equal(await page.evaluate(async () => (await import('/dist/web/index.js' as string)).clearCache('gemma-ts-opfs-test', 'opfs')), true);
});
