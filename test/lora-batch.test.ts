/**
 * LoRA per sequence inside one batched pass (what `gemma serve` relies on): each item's own
 * adapter scales (BatchItem.lora) give the logits of a separate pass with those adapters applied
 * globally, on the js backend and on webgpu (where the per-row scaling runs as s * I products),
 * and bad scales / ids are ModelErrors naming them.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ModelError } from '../src/errors.js';
import type { GemmaModel } from '../src/model/gemma.js';
import { loadModel } from '../src/model/load.js';
import type { BatchItem, LanguageModel } from '../src/model/types.js';
import { applyLora } from '../src/train/adapter.js';
import { writeRandomAdapter } from './helpers/lora.js';
import { repoRoot } from './helpers/paths.js';
import { webgpuBackend } from './helpers/webgpu.js';

const DEMO = path.join(repoRoot(), 'models', 'demo');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-lora-batch-'));
const A = path.join(tmp, 'a'), B = path.join(tmp, 'b');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

before(async () => {
  await writeRandomAdapter(DEMO, A, { targets: 'all-linear', rank: 4, seed: 31 });
  await writeRandomAdapter(DEMO, B, { targets: 'q_proj,o_proj,up_proj', rank: 2, seed: 32 });
});

/** Three sequences (different lengths: several steps' rows) with their own scales of [A, B]. */
const ITEMS: Array<{ ids: number[]; lora: number[] }> = [
  { ids: [2, 105, 506, 307, 119, 45, 230, 611, 87], lora: [1, 0] },
  { ids: [2, 17, 99, 300], lora: [0, 1] },
  { ids: [2, 640, 12, 12, 58, 901], lora: [0.3, -0.7] },
];

async function withAdapters(backend: 'js', scales: [number, number]): Promise<LanguageModel> {
  const { model } = await loadModel(DEMO, { backend });
  applyLora(model, A, scales[0]);
  applyLora(model, B, scales[1]);
  return model;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Each item alone on a model whose global scales are the item's. */
async function separately(backend: 'js'): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const it of ITEMS) {
    const m = await withAdapters(backend, it.lora as [number, number]);
    out.push(m.forward(it.ids, m.createCache(64), { allPositions: true }).logits.slice());
    m.dispose();
  }
  return out;
}

test('js: per-item scales in one batch = each item alone with those adapters; no scales = the global ones', async () => {
  const want = await separately('js');
  const m = await withAdapters('js', [1, 0.5]);
  const items: BatchItem[] = ITEMS.map((it) => ({ ids: it.ids, cache: m.createCache(64), allPositions: true, lora: it.lora }));
  const got = m.forwardBatch(items);
  got.forEach((r, i) => assert.ok(maxDiff(r.logits, want[i]!) < 1e-5, `item ${i}: ${maxDiff(r.logits, want[i]!)}`));
  // the adapters matter: item 0 with every adapter off differs
  const off = m.forward(ITEMS[0]!.ids, m.createCache(64), { allPositions: true, lora: [0, 0] }).logits;
  assert.ok(maxDiff(off, want[0]!) > 0.05);
  // ForwardOptions.lora and the global scales
  const g = await withAdapters('js', [1, 0.5]);
  const viaGlobal = g.forward(ITEMS[2]!.ids, g.createCache(64), { allPositions: true }).logits;
  g.setLoraScale!(0, 0.3);
  g.setLoraScale!(1, -0.7);
  assert.ok(maxDiff(g.forward(ITEMS[2]!.ids, g.createCache(64), { allPositions: true }).logits, want[2]!) < 1e-5);
  assert.ok(maxDiff(m.forward(ITEMS[2]!.ids, m.createCache(64), { allPositions: true }).logits, viaGlobal) < 1e-6, 'no lora: the global scales');
  assert.deepEqual(g.loraAdapters!().map((a) => [a.id, a.path, a.scale]), [[0, A, 0.3], [1, B, -0.7]]);
  m.dispose();
  g.dispose();
});

test('bad scales and ids are ModelErrors naming them', async () => {
  const m = (await withAdapters('js', [1, 1])) as GemmaModel;
  try {
    assert.throws(() => m.forward([2, 3], m.createCache(8), { lora: [1, 1, 1] }), (e: unknown) => e instanceof ModelError && /LoRA scales for 3 adapters, but the model has 2/.test((e as Error).message));
    assert.throws(() => m.forward([2, 3], m.createCache(8), { lora: [NaN] }), (e: unknown) => e instanceof ModelError && /LoRA scale NaN is not a finite number/.test((e as Error).message));
    assert.throws(() => m.setLoraScale(2, 1), (e: unknown) => e instanceof ModelError && /no LoRA adapter with id 2 \(the model has 2\)/.test((e as Error).message));
    assert.throws(() => m.setLoraScale(0, Infinity), /not a finite number/);
  } finally {
    m.dispose();
  }
});

test('webgpu: the same batch within 1e-4 of the js backend (per-row scales as s * I products)', async (t) => {
  const backend = await webgpuBackend(t);
  if (!backend) return;
  const want = await separately('js');
  const { model: m } = await loadModel(DEMO, { backend });
  try {
    applyLora(m, A, 1);
    applyLora(m, B, 0.5);
    const got = await m.forwardBatchAsync(ITEMS.map((it) => ({ ids: it.ids, cache: m.createCache(64), allPositions: true, lora: it.lora })));
    got.forEach((r, i) => assert.ok(maxDiff(r.logits, want[i]!) < 1e-4, `item ${i}: ${maxDiff(r.logits, want[i]!)}`));
  } finally {
    m.dispose();
  }
});
