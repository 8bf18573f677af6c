/**
 * WebGPU lifecycle: load / dispose cycles return every GPU buffer and do not grow the process;
 * a lost device becomes a typed error (no hang); the CLI's forward and run behave as with
 * --backend wasm, and the process exits by itself after dispose.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { loadModel } from '../src/model/load.js';
import type { GemmaModel } from '../src/model/gemma.js';
import { GpuError, type WebGpuBackendInstance } from '../src/backend/webgpu/index.js';
import { repoRoot } from './helpers/paths.js';
import { webgpuBackend } from './helpers/webgpu.js';

const ids = [2, 105, 777, 107, 382, 846, 106];

test('10 load / dispose cycles of the demo model free all GPU memory and do not grow the process', async (t) => {
  const probe = await webgpuBackend(t);
  if (!probe) return;
  probe.dispose();
  let rssAfter3 = 0;
  let first: Float32Array | undefined;
  for (let i = 0; i < 10; i++) {
    const { model } = await loadModel('demo', { backend: 'webgpu' });
    const backend = (model as GemmaModel).backend as WebGpuBackendInstance;
    const r = await model.forwardAsync(ids, model.createCache(64));
    first ??= r.logits;
    assert.deepEqual(r.logits, first, `cycle ${i}: same logits`);
    assert.ok(backend.memoryBytes() > 0);
    model.dispose();
    assert.equal(backend.memoryBytes(), 0, `cycle ${i}: GPU buffers left after dispose`);
    if (i === 2) rssAfter3 = process.memoryUsage().rss;
  }
  const grown = process.memoryUsage().rss - rssAfter3;
  assert.ok(grown < 64 << 20, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB over 7 cycles`);
});

test('a lost device is a typed error, not a hang', async (t) => {
  const backend = await webgpuBackend(t);
  if (!backend) return;
  const { model } = await loadModel('demo', { backend, noTokenizer: true });
  const cache = model.createCache(32);
  await model.forwardAsync(ids, cache);
  backend.device.destroy();
  await assert.rejects(model.forwardAsync([5], cache), (e: unknown) => e instanceof GpuError);
  model.dispose();
});

function gemma(args: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, [path.join(repoRoot(), 'bin', 'gemma.js'), ...args], { encoding: 'utf8', timeout: 120_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

test('gemma forward / run --backend webgpu match --backend wasm, and the process exits', async (t) => {
  const probe = await webgpuBackend(t);
  if (!probe) return;
  probe.dispose();
  const fwd = (backend: string) => {
    const r = gemma(['forward', '--model', 'demo', '--ids', ids.join(','), '--all-positions', '--json', '--backend', backend]);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { logits: number[][] }).logits;
  };
  const gpu = fwd('webgpu'), cpu = fwd('wasm');
  assert.equal(gpu.length, ids.length);
  let worst = 0;
  gpu.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - cpu[i]![j]!)))));
  assert.ok(worst <= 1e-4, `max |webgpu - wasm| = ${worst}`);
  const run = (backend: string) => {
    const r = gemma(['run', '--model', 'demo', '--prompt-ids', ids.join(','), '-n', '12', '-t', '0', '--ignore-eos', '--json', '--backend', backend]);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { ids: number[] }).ids;
  };
  assert.deepEqual(run('webgpu'), run('wasm'));
});
