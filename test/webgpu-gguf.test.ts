/**
 * Quantized GGUF conversions on WebGPU: golden gemma2 / gemma3 converted to Q8_0 and Q4_0 give
 * the js backend's logits within 1e-4 and its greedy tokens. Both backends decode the same
 * quantized weights exactly and keep f32 activations (the wasm backend, by design, quantizes
 * activations to 8 bits for these types, so it is not the reference here); what remains is
 * f32 (GPU) against f64 (js) summation, far below 1e-4 at these sizes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convertToGGUF } from '../src/formats/convert.js';
import { loadModel } from '../src/model/load.js';
import { goldenDir, readGolden } from './helpers/paths.js';
import { webgpuBackend } from './helpers/webgpu.js';

test('Q8_0 / Q4_0 GGUF conversions: webgpu logits within 1e-4 of js, same greedy tokens', async (t) => {
  const probe = await webgpuBackend(t);
  if (!probe) return;
  probe.dispose();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-webgpu-gguf-'));
  try {
    for (const variant of ['gemma2', 'gemma3']) {
      for (const type of ['q8_0', 'q4_0'] as const) {
        const file = path.join(dir, `${variant}.${type}.gguf`);
        await convertToGGUF(path.join(goldenDir(), variant), file, { type, threads: 1 });
        const gpu = (await loadModel(file, { backend: 'webgpu', noTokenizer: true })).model;
        const cpu = (await loadModel(file, { backend: 'js', noTokenizer: true })).model;
        try {
          for (const seq of readGolden(variant).sequences) {
            const a = await gpu.forwardAsync(seq.input_ids, gpu.createCache(128), { allPositions: true });
            const b = cpu.forward(seq.input_ids, cpu.createCache(128), { allPositions: true });
            let worst = 0;
            a.logits.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b.logits[i]!))));
            assert.ok(worst <= 1e-4, `${variant} ${type} ${seq.name}: max |webgpu - js| ${worst}`);
            const cg = gpu.createCache(128), cc = cpu.createCache(128);
            let ra = await gpu.forwardAsync(seq.input_ids, cg);
            let rb = cpu.forward(seq.input_ids, cc);
            for (let i = 0; i < 8; i++) {
              const argmax = (l: Float32Array) => l.reduce((best, v, j) => (v > l[best]! ? j : best), 0);
              const ia = argmax(ra.logits), ib = argmax(rb.logits);
              assert.equal(ia, ib, `${variant} ${type} ${seq.name}: greedy token ${i}`);
              ra = await gpu.forwardAsync([ia], cg);
              rb = cpu.forward([ib], cc);
            }
          }
        } finally {
          gpu.dispose();
          cpu.dispose();
        }
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
