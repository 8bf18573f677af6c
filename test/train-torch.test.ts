/**
 * Gradients and an AdamW trajectory against PyTorch autograd in float64
 * (scripts/torch-gemma.py, an independent reference written from the HF semantics, run live
 * with Debian's python3-torch at /usr/bin/python3):
 * - every parameter's f32 gradient on each golden checkpoint, within 1e-4 relative L2, with the
 *   wasm kernels and the JS reference, with and without gradient checkpointing;
 * - 20 AdamW steps (decay on everything but norms), losses within 1e-4 relative at every step.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { sequenceForwardBackward } from '../src/train/backward.js';
import { loadTrainModel } from '../src/train/checkpoint-io.js';
import { finetune, type StepReport } from '../src/train/finetune.js';
import type { TrainModel } from '../src/train/params.js';
import { GOLDEN_VARIANTS, goldenDir, repoRoot } from './helpers/paths.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(repoRoot(), 'scripts', 'torch-gemma.py');

function torchAvailable(): boolean {
  try {
    execFileSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const HAVE_TORCH = torchAvailable();
if (!HAVE_TORCH) console.log('# notice: /usr/bin/python3 with torch + numpy (Debian python3-torch) is missing: PyTorch comparisons skipped');

async function torchJson<T>(args: string[]): Promise<T> {
  const { stdout } = await run(PYTHON, [SCRIPT, ...args], { maxBuffer: 1 << 28 });
  return JSON.parse(stdout) as T;
}

function idsOf(dir: string): number[][] {
  return fs.readFileSync(path.join(dir, 'train_sgd', 'data.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { ids: number[] }).ids);
}

function ourGrads(model: TrainModel, ids: number[]): Map<string, Float32Array> {
  model.zeroGrad();
  sequenceForwardBackward(model, { ids }, 1 / (ids.length - 1));
  return new Map(model.params.map((p) => [model.checkpoint.prefix + p.name, Float32Array.from(p.grad!)]));
}

function compareGrads(label: string, got: Map<string, Float32Array>, want: Record<string, number[]>): void {
  assert.equal(got.size, Object.keys(want).length, `${label}: parameter count`);
  for (const [name, ref] of Object.entries(want)) {
    const g = got.get(name);
    assert.ok(g, `${label}: no gradient for ${name}`);
    let num = 0, den = 0;
    for (let i = 0; i < ref.length; i++) {
      num += (g[i]! - ref[i]!) ** 2;
      den += ref[i]! ** 2;
    }
    const rel = Math.sqrt(num / den);
    assert.ok(rel <= 1e-4, `${label}: ${name} gradient differs by ${rel} relative L2`);
  }
}

for (const variant of GOLDEN_VARIANTS) {
  describe(`gradients vs PyTorch: ${variant}`, { skip: !HAVE_TORCH }, () => {
    const dir = path.join(goldenDir(), variant);
    const ids = idsOf(dir)[1]!; // the 40-token line: longer than every sliding window

    test('every parameter, wasm and js kernels, with and without checkpointing', async () => {
      const ref = await torchJson<{ loss: number; grads: Record<string, number[]> }>(['grads', '--model', dir, '--ids', ids.join(',')]);
      const wasm = (await loadTrainModel(dir, { backend: 'wasm' })).model;
      const kept = ourGrads(wasm, ids);
      compareGrads('wasm', kept, ref.grads);
      wasm.activationBudget = 0; // recompute every layer in the backward
      const recomputed = ourGrads(wasm, ids);
      for (const [name, g] of kept) assert.deepEqual(recomputed.get(name), g, `checkpointing changed ${name}`);
      const js = (await loadTrainModel(dir, { backend: 'js' })).model;
      compareGrads('js', ourGrads(js, ids), ref.grads);
    });
  });
}

describe('AdamW trajectory vs torch.optim.AdamW', { skip: !HAVE_TORCH }, () => {
  for (const variant of ['gemma2', 'gemma3'] as const) {
    test(`${variant}: 20 steps, losses within 1e-4 relative`, async () => {
      const dir = path.join(goldenDir(), variant);
      const data = path.join(dir, 'train_sgd', 'data.jsonl');
      const lr = 3e-3, wd = 0.1;
      const ref = await torchJson<{ losses: number[] }>(['adamw', '--model', dir, '--data', data, '--steps', '20', '--lr', String(lr), '--weight-decay', String(wd)]);
      const { model } = await loadTrainModel(dir);
      const examples = idsOf(dir).map((ids) => ({ ids }));
      const losses: number[] = [];
      for await (const r of finetune(model, examples, { optimizer: 'adamw', lr, weightDecay: wd, steps: 20, shuffle: false, maxGradNorm: 0 })) {
        if (r.type === 'step') losses.push((r as StepReport).loss);
      }
      assert.equal(losses.length, 20);
      losses.forEach((l, i) => {
        const rel = Math.abs(l - ref.losses[i]!) / Math.abs(ref.losses[i]!);
        assert.ok(rel <= 1e-4, `step ${i + 1}: ${l} vs torch ${ref.losses[i]} (rel ${rel})`);
      });
      // the trajectory really moved
      assert.ok(losses[19]! < losses[0]! - 0.5, `loss fell from ${losses[0]} to ${losses[19]}`);
    });
  }
});
