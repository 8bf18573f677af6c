/**
 * The training matrix products: the wasm SIMD kernels agree with the JS reference (f64 sums) on
 * shapes with and without full tiles, and are deterministic (bit-identical on repeat); the wasm
 * attention kernels agree with the JS attention.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsMatmul } from '../src/train/matmul.js';
import { attentionBackward, attentionForward, type AttentionShape } from '../src/train/ops.js';
import { WasmMatmul } from '../src/train/wasm-matmul.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { relMax } from './helpers/rel-max.js';

const rnd = mulberry32(7);
const rand = (len: number) => Float32Array.from({ length: len }, () => rnd() - 0.5);

test('wasm training kernels match the JS reference', () => {
  const w = new WasmMatmul();
  for (const [n, inD, outD] of [[7, 64, 512], [40, 128, 36], [5, 12, 8], [1, 4, 4], [33, 96, 20], [9, 6, 10]] as const) {
    const x = rand(n * inD), W = rand(outD * inD), dy = rand(n * outD);
    const y1 = new Float32Array(n * outD), y2 = new Float32Array(n * outD).fill(7);
    jsMatmul.xwt(x, W, n, inD, outD, y1);
    w.xwt(x, W, n, inD, outD, y2);
    assert.ok(relMax(y2, y1) < 1e-6, `xwt ${n}x${inD}x${outD}: ${relMax(y2, y1)}`);
    const dx1 = rand(n * inD), dx2 = Float32Array.from(dx1);
    jsMatmul.dyw(dy, W, n, inD, outD, dx1);
    w.dyw(dy, W, n, inD, outD, dx2);
    assert.ok(relMax(dx2, dx1) < 1e-6, `dyw ${n}x${inD}x${outD}: ${relMax(dx2, dx1)}`);
    const dw1 = rand(outD * inD), dw2 = Float32Array.from(dw1), dw3 = Float32Array.from(dw1);
    jsMatmul.dytx(dy, x, n, inD, outD, dw1);
    w.dytx(dy, x, n, inD, outD, dw2);
    assert.ok(relMax(dw2, dw1) < 1e-6, `dytx ${n}x${inD}x${outD}: ${relMax(dw2, dw1)}`);
    w.dytx(dy, x, n, inD, outD, dw3);
    assert.deepEqual(dw3, dw2, 'deterministic');
  }
});

test('wasm attention forward / backward match the JS reference (GQA, window, soft-cap, packed documents)', () => {
  const w = new WasmMatmul();
  const shapes: AttentionShape[] = [
    { n: 19, nHeads: 4, nKvHeads: 2, headDim: 8, window: 5, scale: 0.3, softcap: 3 },
    { n: 12, nHeads: 4, nKvHeads: 1, headDim: 16, window: Infinity, scale: 0.25, softcap: 0, doc: Int32Array.from([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]) },
  ];
  for (const p of shapes) {
    const qDim = p.nHeads * p.headDim, kvDim = p.nKvHeads * p.headDim;
    const q = rand(p.n * qDim), k = rand(p.n * kvDim), v = rand(p.n * kvDim), dout = rand(p.n * qDim);
    const out1 = new Float32Array(p.n * qDim), out2 = new Float32Array(p.n * qDim), lse = new Float32Array(p.n * p.nHeads);
    attentionForward(q, k, v, p, out1);
    assert.ok(w.attention(q, k, v, p, out2, lse));
    assert.ok(relMax(out2, out1) < 1e-5, `out ${relMax(out2, out1)}`);
    const g1 = [new Float32Array(p.n * qDim), new Float32Array(p.n * kvDim), new Float32Array(p.n * kvDim)] as const;
    const g2 = [new Float32Array(p.n * qDim), new Float32Array(p.n * kvDim), new Float32Array(p.n * kvDim)] as const;
    attentionBackward(q, k, v, dout, p, ...g1);
    assert.ok(w.attentionBackward(q, k, v, dout, lse, p, ...g2));
    g1.forEach((g, i) => assert.ok(relMax(g2[i]!, g) < 1e-5, `grad ${i}: ${relMax(g2[i]!, g)}`));
  }
});
