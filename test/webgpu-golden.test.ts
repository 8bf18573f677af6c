/**
 * The golden checks on the WebGPU backend: every variant, f32 and bf16 weights - all-position
 * logits within 1e-4 of Google's reference, hidden states, 20 greedy tokens through the KV cache
 * (forwardAsync: the GPU reads back asynchronously). Then weights split over many buffers by a
 * forced small binding limit give the same logits bit for bit.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { normalizeHfConfig } from '../src/config/model-config.js';
import { openSafetensors } from '../src/formats/safetensors.js';
import { createModel } from '../src/model/load.js';
import { ModelError } from '../src/errors.js';
import { checkGreedyAsync, checkHiddenAsync, checkLogitsAsync } from './helpers/golden-check.js';
import { GOLDEN_VARIANTS, goldenDir, readGolden } from './helpers/paths.js';
import { webgpuBackend } from './helpers/webgpu.js';
import type { WebGpuBackendOptions } from '../src/backend/webgpu/index.js';
import type { TestContext } from 'node:test';

async function goldenModel(t: TestContext, variant: string, bf16: boolean, options: WebGpuBackendOptions = {}) {
  const backend = await webgpuBackend(t, options);
  if (!backend) return undefined;
  const dir = path.join(goldenDir(), variant);
  const { config } = normalizeHfConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')));
  const source = openSafetensors(path.join(dir, bf16 ? 'model.bf16.safetensors' : 'model.safetensors'));
  try {
    return await createModel(source, config, { backend });
  } finally {
    source.close();
  }
}

for (const variant of GOLDEN_VARIANTS) {
  for (const bf16 of [false, true]) {
    describe(`golden ${variant} ${bf16 ? 'bf16' : 'f32'} (webgpu backend)`, () => {
      test('logits, hidden states and greedy tokens', async (t) => {
        const model = await goldenModel(t, variant, bf16);
        if (!model) return;
        try {
          const golden = readGolden(variant, bf16);
          await checkLogitsAsync(model, golden);
          await checkHiddenAsync(model, golden);
          await checkGreedyAsync(model, golden);
        } finally {
          model.dispose();
        }
      });
    });
  }
}

test('a 60 KiB binding limit (embedding and MLP split over buffers) gives identical logits', async (t) => {
  for (const variant of ['gemma1_mqa', 'gemma2', 'gemma3'] as const) {
    const whole = await goldenModel(t, variant, false);
    if (!whole) return;
    const split = await goldenModel(t, variant, false, { maxBindingBytes: 61440 });
    if (!split) return;
    try {
      const ids = readGolden(variant).sequences.at(-1)!.input_ids;
      const a = await whole.forwardAsync(ids, whole.createCache(128), { allPositions: true });
      const b = await split.forwardAsync(ids, split.createCache(128), { allPositions: true });
      assert.deepEqual(b.logits, a.logits, variant);
    } finally {
      whole.dispose();
      split.dispose();
    }
  }
});

test('synchronous forward on webgpu is a ModelError that names forwardAsync', async (t) => {
  const model = await goldenModel(t, 'gemma2', false);
  if (!model) return;
  try {
    assert.throws(() => model.forward([2, 3], model.createCache(16)), (e: unknown) => e instanceof ModelError && /forwardAsync/.test(e.message));
  } finally {
    model.dispose();
  }
});

test('attention split over slots forced on every layer: golden logits and greedy tokens still match (Gemma 1 MQA, 2, 3)', async (t) => {
  for (const variant of ['gemma1_mqa', 'gemma2', 'gemma3'] as const) {
    const model = await goldenModel(t, variant, false, { attentionSplitSlots: 1 });
    if (!model) return;
    try {
      const golden = readGolden(variant, false);
      await checkLogitsAsync(model, golden);
      await checkGreedyAsync(model, golden);
      const counts = (model.tensors as unknown as { kernelDispatches(): Record<string, number> }).kernelDispatches();
      assert.ok((counts['attention-part'] ?? 0) > 0 && counts['attention'] === undefined, `${variant}: only the split kernel ran`);
    } finally {
      model.dispose();
    }
  }
});
