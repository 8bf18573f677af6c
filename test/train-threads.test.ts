/**
 * Threaded training kernels and frozen weights in their stored type:
 * - products split over worker threads give the same bytes as one thread (each output element is
 *   summed by one thread in a fixed order), for the f32 products and the frozen-weight ones;
 * - products with a frozen weight decoded inside the kernels (f16 / bf16 / Q8_0 / Q4_0 / Q6_K,
 *   Q4_K through the JS decoder) equal the JS reference on the decoded matrix;
 * - LoRA on a Q8_0 / Q4_0 GGUF keeps the tied embedding in its stored type, and its gradients equal
 *   those of the f32-embedding path within 1e-6, for 1 and 3 threads alike;
 * - keeping the activations of only the last layers (the rest recomputed) changes no gradient bit.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { decodeRow } from '../src/backend/js/decode.js';
import { convertToGGUF } from '../src/formats/convert.js';
import type { DType } from '../src/formats/dtype.js';
import { f32ToBf16, f32ToF16 } from '../src/formats/half.js';
import { quantize } from '../src/formats/quant.js';
import { sequenceForwardBackward } from '../src/train/backward.js';
import { loadTrainModel } from '../src/train/checkpoint-io.js';
import { activationFloatsPerToken } from '../src/train/forward.js';
import { addLoraLayers, resolveTargets } from '../src/train/lora.js';
import { jsMatmul } from '../src/train/matmul.js';
import { FrozenLinear, type TrainModel } from '../src/train/params.js';
import { WasmMatmul } from '../src/train/wasm-matmul.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { relMax } from './helpers/rel-max.js';
import { goldenDir } from './helpers/paths.js';

const rnd = mulberry32(11);
const rand = (len: number) => Float32Array.from({ length: len }, () => rnd() - 0.5);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-train-threads-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function encode(dtype: DType, v: Float32Array): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(v.slice().buffer);
  if (dtype === 'f16' || dtype === 'bf16') return new Uint8Array(Uint16Array.from(v, dtype === 'f16' ? f32ToF16 : f32ToBf16).buffer);
  return quantize(dtype, v);
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('1 thread and 3 threads give identical bytes; frozen products match the JS reference', async () => {
  const one = new WasmMatmul();
  const three = await WasmMatmul.create({ threads: 3 });
  try {
    assert.equal(three.threads, 3);
    for (const [n, inD, outD] of [[37, 64, 132], [6, 128, 36], [64, 96, 256]] as const) {
      const x = rand(n * inD), W = rand(outD * inD), dy = rand(n * outD), acc = rand(n * inD), accW = rand(outD * inD);
      const y1 = new Float32Array(n * outD), y3 = new Float32Array(n * outD);
      one.xwt(x, W, n, inD, outD, y1);
      three.xwt(x, W, n, inD, outD, y3);
      assert.ok(bytes(y1).equals(bytes(y3)), `xwt ${n}x${inD}x${outD}`);
      const dx1 = Float32Array.from(acc), dx3 = Float32Array.from(acc);
      one.dyw(dy, W, n, inD, outD, dx1);
      three.dyw(dy, W, n, inD, outD, dx3);
      assert.ok(bytes(dx1).equals(bytes(dx3)), `dyw ${n}x${inD}x${outD}`);
      const dw1 = Float32Array.from(accW), dw3 = Float32Array.from(accW);
      one.dytx(dy, x, n, inD, outD, dw1);
      three.dytx(dy, x, n, inD, outD, dw3);
      assert.ok(bytes(dw1).equals(bytes(dw3)), `dytx ${n}x${inD}x${outD}`);
    }
    // Frozen weights: rows over two decode blocks (2048 rows of 256 each), 256 columns (Q6_K's block).
    const n = 7, rows = 2052, cols = 256;
    const values = rand(rows * cols);
    const x = rand(n * cols), dy = rand(n * rows), acc = rand(n * cols);
    for (const dtype of ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q6_k', 'q4_k'] as DType[]) {
      const data = encode(dtype, values);
      const decoded = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) decodeRow(dtype, data, r, cols, decoded.subarray(r * cols, (r + 1) * cols));
      const w = { dtype, rows, cols, data };
      const yRef = new Float32Array(n * rows), y1 = new Float32Array(n * rows), y3 = new Float32Array(n * rows);
      jsMatmul.xwt(x, decoded, n, cols, rows, yRef);
      assert.ok(one.xwtFrozen(x, w, n, y1) && three.xwtFrozen(x, w, n, y3));
      assert.ok(relMax(y1, yRef) < 1e-5, `${dtype} x W^T: ${relMax(y1, yRef)}`);
      assert.ok(bytes(y1).equals(bytes(y3)), `${dtype} x W^T: 1 vs 3 threads`);
      const dxRef = Float32Array.from(acc), dx1 = Float32Array.from(acc), dx3 = Float32Array.from(acc);
      jsMatmul.dyw(dy, decoded, n, cols, rows, dxRef);
      assert.ok(one.dywFrozen(dy, w, n, dx1) && three.dywFrozen(dy, w, n, dx3));
      assert.ok(relMax(dx1, dxRef) < 1e-5, `${dtype} dy W: ${relMax(dx1, dxRef)}`);
      assert.ok(bytes(dx1).equals(bytes(dx3)), `${dtype} dy W: 1 vs 3 threads`);
      // The layer's JS path (decode blocks, then the JS products) agrees too.
      const lin = new FrozenLinear(dtype, rows, cols, data, jsMatmul);
      const yJs = new Float32Array(n * rows);
      lin.forward(x, n, yJs);
      assert.ok(relMax(y1, yJs) < 1e-5, `${dtype} FrozenLinear (js)`);
      const row = new Float32Array(cols);
      lin.readRow(2050, row);
      assert.deepEqual(row, decoded.subarray(2050 * cols, 2051 * cols), `${dtype} readRow`);
    }
  } finally {
    three.dispose();
  }
});

async function loraGrads(file: string, trainable: boolean, threads: number): Promise<{ model: TrainModel; grads: Map<string, Float32Array> }> {
  const { model } = await loadTrainModel(file, { trainable, threads });
  addLoraLayers(model, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: resolveTargets('all-linear') }, 5);
  const r = mulberry32(3);
  for (const p of model.trainable()) if (p.name.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = (r() - 0.5) * 0.2;
  const ids = Array.from({ length: 40 }, (_, i) => (17 + 29 * i) % 512);
  model.zeroGrad();
  sequenceForwardBackward(model, { ids }, 1 / 39);
  (model.matmul as WasmMatmul).dispose();
  return { model, grads: new Map(model.trainable().map((p) => [p.name, p.grad!])) };
}

for (const type of ['q8_0', 'q4_0'] as const) {
  test(`LoRA on a ${type} GGUF: frozen embedding in its stored type, gradients as with an f32 embedding, any thread count`, async () => {
    const gguf = path.join(tmp, `g3.${type}.gguf`);
    await convertToGGUF(path.join(goldenDir(), 'gemma3'), gguf, { type });
    const frozen1 = await loraGrads(gguf, false, 1);
    const frozen3 = await loraGrads(gguf, false, 3);
    const f32 = await loraGrads(gguf, true, 1);
    const E = frozen1.model.weights.embed;
    assert.ok(E instanceof FrozenLinear && E.dtype !== 'f32', 'the embedding stays in its stored type');
    assert.equal(frozen1.model.param('embed_tokens.weight'), undefined, 'no f32 copy of the embedding');
    assert.ok(f32.model.param('embed_tokens.weight'), 'the full-weight path has its f32 table');
    assert.equal(frozen1.grads.size, 4 * 7 * 2);
    for (const [name, g] of frozen1.grads) {
      assert.ok(bytes(g).equals(bytes(frozen3.grads.get(name)!)), `${name}: 1 vs 3 threads`);
      const ref = f32.grads.get(name)!;
      let d = 0, s = 0;
      for (let i = 0; i < g.length; i++) {
        d += (g[i]! - ref[i]!) ** 2;
        s += ref[i]! ** 2;
      }
      assert.ok(s > 0 && Math.sqrt(d / s) <= 1e-6, `${name}: rel L2 ${Math.sqrt(d / s)} vs the f32-embedding path`);
    }
  });
}

test('gradient checkpointing of only the layers over the activation budget gives the same gradients', async () => {
  const { model } = await loadTrainModel(path.join(goldenDir(), 'gemma3'), { threads: 1 });
  const ids = Array.from({ length: 24 }, (_, i) => (5 + 31 * i) % 512);
  const gradsWith = (budget: number): Buffer[] => {
    model.activationBudget = budget;
    model.zeroGrad();
    sequenceForwardBackward(model, { ids }, 1 / 23);
    return model.trainable().map((p) => Buffer.from(p.grad!.slice().buffer));
  };
  const layerBytes = 4 * ids.length * activationFloatsPerToken(model.config);
  const all = gradsWith(Infinity), none = gradsWith(0), some = gradsWith(2 * layerBytes);
  assert.ok(model.config.numLayers > 2);
  all.forEach((g, i) => {
    assert.ok(g.equals(none[i]!), `${model.trainable()[i]!.name}: kept vs recomputed`);
    assert.ok(g.equals(some[i]!), `${model.trainable()[i]!.name}: kept vs partly recomputed`);
  });
});
