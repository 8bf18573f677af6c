/**
 * LoRA: gradients of A and B against PyTorch autograd (float64, scripts/torch-gemma.py), adapters
 * written by gemma-ts applied by that independent script (W + scale B A), PEFT adapters written
 * by the script loaded by gemma-ts, `gemma merge`, a frozen Q8_0 base, bad adapters and
 * targets, and seeded determinism of the adapter bytes.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, describe, test } from 'node:test';
import { convertToGGUF } from '../src/formats/convert.js';
import { openGGUF } from '../src/formats/gguf-source.js';
import { UsageError } from '../src/errors.js';
import { createModel } from '../src/model/load.js';
import { checkAdapter, loadAdapter, savePeftAdapter } from '../src/train/adapter.js';
import { sequenceForwardBackward } from '../src/train/backward.js';
import { loadTrainModel } from '../src/train/checkpoint-io.js';
import { finetune } from '../src/train/finetune.js';
import { modelForward, sequenceContext } from '../src/train/forward.js';
import { addLoraLayers, loraTensors, resolveTargets } from '../src/train/lora.js';
import { headLogits } from '../src/train/loss.js';
import type { TrainModel } from '../src/train/params.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { goldenDir, repoRoot } from './helpers/paths.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(repoRoot(), 'scripts', 'torch-gemma.py');
const HAVE_TORCH = (() => {
  try {
    execFileSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!HAVE_TORCH) console.log('# notice: /usr/bin/python3 with torch + numpy (Debian python3-torch) is missing: PyTorch comparisons skipped');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-lora-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const IDS = [2, 306, 214, 297, 56, 207, 375, 155, 508, 146, 180, 282, 236, 157, 33, 174, 161, 239, 383, 285];

async function torchJson<T>(args: string[]): Promise<T> {
  const { stdout } = await run(PYTHON, [SCRIPT, ...args], { maxBuffer: 1 << 28 });
  return JSON.parse(stdout) as T;
}

function logitsOf(model: TrainModel, ids: number[]): Float32Array {
  const xs = modelForward(model, sequenceContext(model, ids.length), ids);
  return headLogits(model, xs[xs.length - 1]!, ids.length);
}

function maxDiff(got: Float32Array, want: number[][]): number {
  let worst = 0;
  want.flat().forEach((v, i) => (worst = Math.max(worst, Math.abs(got[i]! - v))));
  return worst;
}

/** A LoRA model on a golden checkpoint with random, nonzero A and B. */
async function randomLora(variant: string, targets = 'all-linear', rslora = false): Promise<TrainModel> {
  const { model } = await loadTrainModel(path.join(goldenDir(), variant), { trainable: false });
  addLoraLayers(model, { rank: 4, alpha: 8, dropout: 0, rslora, targets: resolveTargets(targets) }, 3);
  const rnd = mulberry32(5);
  for (const p of model.trainable()) if (p.name.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = (rnd() - 0.5) * 0.2;
  return model;
}

describe('LoRA vs PyTorch', { skip: !HAVE_TORCH }, () => {
  for (const variant of ['gemma2', 'gemma3', 'gemma1_mqa']) {
    test(`${variant}: A / B gradients within 1e-4 relative L2; logits of the written adapter`, async () => {
      const model = await randomLora(variant, 'all-linear', variant === 'gemma3');
      const dir = path.join(tmp, `grads-${variant}`);
      savePeftAdapter(model, dir);
      const dirModel = path.join(goldenDir(), variant);
      const ref = await torchJson<{ loss: number; grads: Record<string, number[]> }>(['lora-grads', '--model', dirModel, '--adapter', dir, '--ids', IDS.join(',')]);
      model.zeroGrad();
      const r = sequenceForwardBackward(model, { ids: IDS }, 1 / (IDS.length - 1));
      assert.ok(Math.abs(r.lossSum / r.count - ref.loss) / ref.loss < 1e-5, `loss ${r.lossSum / r.count} vs ${ref.loss}`);
      const byKey = new Map(model.trainable().map((p) => [`base_model.model.model.${p.name}`, p.grad!]));
      assert.equal(byKey.size, Object.keys(ref.grads).length);
      for (const [k, want] of Object.entries(ref.grads)) {
        const g = byKey.get(k)!;
        let num = 0, den = 0;
        want.forEach((v, i) => ((num += (g[i]! - v) ** 2), (den += v * v)));
        assert.ok(Math.sqrt(num / den) <= 1e-4, `${k}: ${Math.sqrt(num / den)}`);
      }
      const logits = await torchJson<{ logits: number[][] }>(['lora-logits', '--model', dirModel, '--adapter', dir, '--ids', IDS.join(',')]);
      assert.ok(maxDiff(logitsOf(model, IDS), logits.logits) <= 1e-4);
    });
  }

  test('a PEFT adapter written by Python (rsLoRA, some targets) loads with the same logits; gemma merge too', async () => {
    const dirModel = path.join(goldenDir(), 'gemma3');
    const dir = path.join(tmp, 'peft-py');
    const ref = await torchJson<{ logits: number[][] }>(['peft-random', '--model', dirModel, '--out', dir, '--rank', '4', '--alpha', '6', '--targets', 'q_proj,v_proj,down_proj', '--rslora', '--ids', IDS.join(',')]);
    const adapter = loadAdapter(dir);
    assert.deepEqual(adapter.config.targets, ['q_proj', 'v_proj', 'down_proj']);
    assert.equal(adapter.scale, 6 / 2);
    const { model } = await loadTrainModel(dirModel, { trainable: false });
    addLoraLayers(model, adapter.config, 0, adapter.tensors);
    assert.ok(maxDiff(logitsOf(model, IDS), ref.logits) <= 1e-4);
    // applied without merging at inference: gemma forward --lora, both backends, with a multiplier
    for (const backend of ['js', 'wasm']) {
      const { stdout } = await run(process.execPath, [path.join(repoRoot(), 'bin', 'gemma.js'), 'forward', '--model', dirModel, '--lora', dir, '--ids', IDS.join(','), '--all-positions', '--json', '--backend', backend]);
      const fwd = (JSON.parse(stdout) as { logits: number[][] }).logits;
      assert.ok(maxDiff(Float32Array.from(fwd.flat()), ref.logits) <= 1e-4, `gemma forward --lora (${backend})`);
    }
    const half = path.join(tmp, 'peft-half');
    const refHalf = await torchJson<{ logits: number[][] }>(['peft-random', '--model', dirModel, '--out', half, '--rank', '4', '--alpha', '3', '--targets', 'q_proj,v_proj,down_proj', '--rslora', '--ids', IDS.join(',')]);
    const { stdout: halfOut } = await run(process.execPath, [path.join(repoRoot(), 'bin', 'gemma.js'), 'forward', '--model', dirModel, '--lora', `${dir}:0.5`, '--ids', IDS.join(','), '--all-positions', '--json']);
    assert.ok(maxDiff(Float32Array.from((JSON.parse(halfOut) as { logits: number[][] }).logits.flat()), refHalf.logits) <= 1e-4, '--lora PATH:0.5 = alpha / 2');
    // merged checkpoint through the CLI, then the inference forward pass
    const merged = path.join(tmp, 'merged');
    await run(process.execPath, [path.join(repoRoot(), 'bin', 'gemma.js'), 'merge', '--model', dirModel, '--lora', dir, '--out', merged]);
    const { stdout } = await run(process.execPath, [path.join(repoRoot(), 'bin', 'gemma.js'), 'forward', '--model', merged, '--ids', IDS.join(','), '--all-positions', '--json', '--backend', 'js']);
    const fwd = (JSON.parse(stdout) as { logits: number[][] }).logits;
    assert.ok(maxDiff(Float32Array.from(fwd.flat()), ref.logits) <= 1e-4);
  });
});

test('frozen Q8_0 base: the training forward equals inference on the same GGUF; LoRA learns', async () => {
  const gguf = path.join(tmp, 'g2.q8_0.gguf');
  await convertToGGUF(path.join(goldenDir(), 'gemma2'), gguf, { type: 'q8_0' });
  const { model } = await loadTrainModel(gguf, { trainable: false });
  addLoraLayers(model, { rank: 4, alpha: 8, dropout: 0.1, rslora: false, targets: resolveTargets('all-linear') }, 1);
  const g = openGGUF(gguf);
  const infer = await createModel(g.source, g.config, { backend: 'js' });
  g.source.close();
  const want = infer.forward(IDS, infer.createCache(64), { allPositions: true }).logits;
  const got = logitsOf(model, IDS);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  assert.ok(worst <= 1e-4, `max |logit diff| ${worst}`);
  const losses: number[] = [];
  for await (const r of finetune(model, [{ ids: IDS }], { lr: 1e-2, steps: 15, maxGradNorm: 1 })) if (r.type === 'step') losses.push(r.loss);
  assert.ok(losses[14]! < losses[0]! - 0.5, `LoRA on a Q8_0 base: loss ${losses[0]} -> ${losses[14]}`);
});

test('bad adapters and targets are one clear error naming the key', async () => {
  assert.throws(() => resolveTargets('q_proj,attn_q'), (e: unknown) => e instanceof UsageError && /unknown LoRA target module "attn_q"/.test((e as Error).message));
  const model = await randomLora('gemma2', 'q_proj,down_proj');
  const dir = path.join(tmp, 'g2-adapter');
  savePeftAdapter(model, dir);
  const { model: other } = await loadTrainModel(path.join(goldenDir(), 'gemma1_mqa'), { trainable: false });
  assert.throws(() => checkAdapter(loadAdapter(dir), other.config), (e: unknown) => e instanceof UsageError && /layers\.0\.self_attn\.q_proj has lora_A \[4, 64\] and lora_B \[128, 4\], but the base weight is \[64, 64\]/.test((e as Error).message));
  assert.throws(() => loadAdapter(path.join(tmp, 'nowhere')), /no adapter_config\.json/);
});

test('the same seed gives identical adapter bytes (with dropout)', async () => {
  const train = async () => {
    const { model } = await loadTrainModel(path.join(goldenDir(), 'gemma3'), { trainable: false });
    addLoraLayers(model, { rank: 4, alpha: 8, dropout: 0.2, rslora: false, targets: resolveTargets('all-linear') }, 9);
    for await (const r of finetune(model, [{ ids: IDS }, { ids: IDS.slice(0, 9) }], { lr: 1e-2, steps: 3, seed: 9 })) void r;
    const dir = path.join(tmp, `det-${Math.random()}`);
    savePeftAdapter(model, dir);
    return fs.readFileSync(path.join(dir, 'adapter_model.safetensors'));
  };
  const a = await train(), b = await train();
  assert.ok(a.equals(b));
  const t = loraTensors(await randomLora('gemma3'));
  assert.equal(t.size, 4 * 7);
});
