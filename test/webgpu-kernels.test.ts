/**
 * Every WGSL kernel against the js backend (the readable reference, through hostTensors) on
 * random shapes that are not multiples of the kernels' tiles (64 threads, 32 x 32 matmul tiles,
 * 8 tokens per matrix-vector pass): matmul for each weight type in both kernels (<= 8 tokens and
 * more), embedding rows, RMSNorm, RoPE, gelu x up, add, strided row copies, attention (GQA / MQA,
 * sliding window, soft-cap, empty and out-of-order slots).
 *
 * Tolerance: the GPU sums in f32 in its own order, the js backend in f64; for a dot product of
 * n terms the difference is below (n + 2) u sum|a b| (u = 2^-24), checked per output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/backend/js/index.js';
import { hostTensors, type Tensor, type TensorBackend } from '../src/backend/tensor.js';
import { rowLogProb } from '../src/backend/log-probs.js';
import type { DType } from '../src/formats/dtype.js';
import { dequantizeAll } from '../src/formats/quant.js';
import { webgpuBackend } from './helpers/webgpu.js';
import { encode, randArray, rng } from './wasm-util.js';

const js = hostTensors(createJsBackend());
const U = 2 ** -24;

/** A tensor holding `values` on backend b. */
function put(b: TensorBackend, values: Float32Array): Tensor {
  const t = b.alloc(values.length);
  b.write(t, values);
  return t;
}

function close(got: Float32Array, want: Float32Array, tol: (i: number) => number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    assert.ok(d <= tol(i), `${what}: [${i}] ${got[i]} vs ${want[i]} (diff ${d} > ${tol(i)})`);
  }
}

const SHAPES: Record<DType, { rows: number; cols: number }> = {
  f32: { rows: 45, cols: 70 },
  bf16: { rows: 77, cols: 66 },
  f16: { rows: 33, cols: 130 },
  q8_0: { rows: 41, cols: 96 },
  q4_0: { rows: 39, cols: 160 },
  q4_k: { rows: 35, cols: 512 },
  q6_k: { rows: 37, cols: 256 },
};

test('matmul: every weight type, 1 to 37 tokens, row limits and soft-cap, vs js', async (t) => {
  const gpu = await webgpuBackend(t);
  if (!gpu) return;
  try {
    const r = rng(7);
    for (const [dtype, { rows, cols }] of Object.entries(SHAPES) as Array<[DType, { rows: number; cols: number }]>) {
      const data = encode(dtype, randArray(rows * cols, r, 0.5));
      const w = dequantizeAll(dtype, data, rows * cols);
      const mg = gpu.prepareMatrix({ dtype, rows, cols, data });
      const mj = js.prepareMatrix({ dtype, rows, cols, data });
      for (const [n, rowLimit, cap] of [[1, undefined, 0], [5, rows - 3, 0], [8, undefined, 2], [9, undefined, 0], [37, rows - 1, 3]] as const) {
        const x = randArray(n * cols, r);
        const limit = rowLimit ?? rows;
        const og = gpu.alloc(n * limit);
        gpu.matmul(mg, put(gpu, x), n, og, rowLimit, cap);
        const oj = js.alloc(n * limit);
        js.matmul(mj, x, n, oj, rowLimit, cap);
        const bound = (i: number) => {
          const tk = Math.floor(i / limit), row = i % limit;
          let s = 0;
          for (let c = 0; c < cols; c++) s += Math.abs(w[row * cols + c]! * x[tk * cols + c]!);
          return (cols + 2) * U * s + 1e-6;
        };
        close(await gpu.read(og), await js.read(oj), bound, `${dtype} matmul n=${n}`);
      }
    }
  } finally {
    gpu.dispose();
  }
});

test('headLogProbs: log p(target) and the first argmax from its own matmul, 1 to 70 rows, row limits, soft-cap, ties', async (t) => {
  const gpu = await webgpuBackend(t);
  if (!gpu) return;
  try {
    const r = rng(11);
    for (const [dtype, rows, cols, n, limit, cap] of [['f32', 1003, 64, 1, 1003, 0], ['q8_0', 2051, 96, 9, 2040, 3], ['q4_0', 517, 160, 70, 517, 0]] as const) {
      const data = encode(dtype, randArray(rows * cols, r, 0.5));
      const m = gpu.prepareMatrix({ dtype, rows, cols, data });
      const x = put(gpu, randArray(n * cols, r, 4));
      const targets = Int32Array.from({ length: n }, (_, k) => (k * 7919 + 13) % limit);
      const logits = gpu.alloc(n * limit);
      gpu.matmul(m, x, n, logits, limit, cap);
      const out = gpu.alloc(2 * n);
      gpu.headLogProbs(m, x, n, targets, out, limit, cap);
      const got = await gpu.read(out);
      const l = await gpu.read(logits);
      for (let k = 0; k < n; k++) {
        const want = rowLogProb(l, k * limit, limit, targets[k]!);
        // the head's product may come from the other kernel (<= 8 rows: matrix-vector) than the full matmul's
        assert.ok(Math.abs(got[2 * k]! - want.logProb) <= 1e-4 * Math.max(1, Math.abs(want.logProb)), `${dtype} row ${k}: ${got[2 * k]} vs ${want.logProb}`);
        assert.equal(got[2 * k + 1], want.argmax, `${dtype} row ${k}: argmax`);
      }
    }
    const rows = 1003, cols = 32;
    const xv = randArray(cols, r, 1);
    const w = new Float32Array(rows * cols);
    for (let i = 0; i < rows * cols; i++) w[i] = 0.01 * Math.sin(i);
    for (const k of [6, 7, 901]) w.set(xv, k * cols);
    const m = gpu.prepareMatrix({ dtype: 'f32', rows, cols, data: new Uint8Array(w.buffer) });
    const out = gpu.alloc(2);
    gpu.headLogProbs(m, put(gpu, xv), 1, Int32Array.of(3), out);
    assert.equal((await gpu.read(out))[1], 6, 'ties go to the first maximum');
  } finally {
    gpu.dispose();
  }
});

test('weights split over buffers (small binding limit) give identical products and embeddings', async (t) => {
  const small = await webgpuBackend(t, { maxBindingBytes: 4096 });
  if (!small) return;
  const big = await webgpuBackend(t);
  if (!big) return;
  try {
    const r = rng(3);
    for (const dtype of ['f32', 'bf16', 'q8_0'] as const) {
      const rows = 301, cols = 96;
      const data = encode(dtype, randArray(rows * cols, r));
      const ms = small.prepareMatrix({ dtype, rows, cols, data });
      const mb = big.prepareMatrix({ dtype, rows, cols, data });
      for (const n of [1, 12]) {
        const x = randArray(n * cols, r);
        const os = small.alloc(n * rows), ob = big.alloc(n * rows);
        small.matmul(ms, put(small, x), n, os);
        big.matmul(mb, put(big, x), n, ob);
        assert.deepEqual(await small.read(os), await big.read(ob), `${dtype} n=${n}`);
      }
      const ids = Int32Array.of(0, 300, 57, 144, 299);
      const es = small.alloc(ids.length * cols), eb = big.alloc(ids.length * cols);
      small.embed(ms, ids, 1.5, es);
      big.embed(mb, ids, 1.5, eb);
      const ej = js.alloc(ids.length * cols);
      js.embed(js.prepareMatrix({ dtype, rows, cols, data }), ids, 1.5, ej);
      assert.deepEqual(await small.read(es), await js.read(ej), `${dtype} embed`);
      assert.deepEqual(await big.read(eb), await js.read(ej), `${dtype} embed`);
    }
  } finally {
    small.dispose();
    big.dispose();
  }
});

test('rmsNorm, rope, geluMul, add, copyRows vs js', async (t) => {
  const gpu = await webgpuBackend(t);
  if (!gpu) return;
  try {
    const r = rng(11);
    const both = async (values: Float32Array, op: (b: TensorBackend, x: Tensor) => void, tol: number, what: string) => {
      const g = put(gpu, values), j = put(js, values.slice());
      op(gpu, g);
      op(js, j);
      const want = await js.read(j);
      close(await gpu.read(g), want, (i) => tol * Math.max(1, Math.abs(want[i]!)), what);
    };
    const weight = randArray(70, r).map((v) => 1 + v);
    await both(randArray(13 * 70, r, 3), (b, x) => b.rmsNorm(x, weight, 13, 70, 1e-6), 1e-6, 'rmsNorm');
    const positions = Int32Array.of(0, 5, 17, 1000, 3);
    await both(randArray(5 * 3 * 36, r), (b, x) => b.rope(x, 5, 3, 36, positions, 10000, 1), 1e-6, 'rope');
    await both(randArray(5 * 2 * 20, r), (b, x) => b.rope(x, 5, 2, 20, positions, 1e6, 8), 1e-6, 'rope scaled');
    const up = randArray(333, r);
    await both(randArray(333, r, 6), (b, x) => b.geluMul(x, put(b, up), 333), 1e-6, 'geluMul');
    const y = randArray(129, r);
    await both(randArray(129, r), (b, x) => b.add(x, put(b, y), 129), 0, 'add');
    const src = randArray(7 * 23, r);
    await both(new Float32Array(5 * 40), (b, x) => b.copyRows(put(b, src), 3, 23, b.view(x, 0, 200), 2, 40, 5, 19), 0, 'copyRows');
  } finally {
    gpu.dispose();
  }
});

test('attention: GQA / MQA, windows, soft-cap, empty and ring-ordered slots vs js', async (t) => {
  const gpu = await webgpuBackend(t);
  if (!gpu) return;
  try {
    const r = rng(5);
    const cases = [
      { nTokens: 1, nSlots: 70, nHeads: 4, nKvHeads: 1, headDim: 36, window: Infinity, softcap: 0 },
      { nTokens: 7, nSlots: 45, nHeads: 6, nKvHeads: 2, headDim: 20, window: 9, softcap: 50 },
      { nTokens: 3, nSlots: 131, nHeads: 2, nKvHeads: 2, headDim: 72, window: 40, softcap: 0 },
    ];
    for (const c of cases) {
      const kvDim = c.nKvHeads * c.headDim;
      const q = randArray(c.nTokens * c.nHeads * c.headDim, r);
      const k = randArray(c.nSlots * kvDim, r), v = randArray(c.nSlots * kvDim, r);
      // slots hold positions out of order (a ring buffer), a few are empty
      const slotPositions = new Int32Array(c.nSlots).map((_, s) => (s % 11 === 5 ? -1 : (s * 7) % c.nSlots));
      const queryPositions = Int32Array.from({ length: c.nTokens }, (_, i) => c.nSlots - c.nTokens + i);
      const run = async (b: TensorBackend) => {
        const out = b.alloc(q.length);
        b.attention({ ...c, q: put(b, q), k: put(b, k), v: put(b, v), out, queryPositions, slotPositions, scale: 0.3 });
        return b.read(out);
      };
      close(await run(gpu), await run(js), () => 2e-6, `attention ${JSON.stringify(c)}`);
    }
  } finally {
    gpu.dispose();
  }
});

/** Attention on b over the given shape; the GPU's kernel dispatch counts tell which path ran. */
async function attentionOn(b: TensorBackend, c: { nTokens: number; nSlots: number; nHeads: number; nKvHeads: number; headDim: number; window: number; softcap: number }, seed: number): Promise<Float32Array> {
  const r = rng(seed);
  const kvDim = c.nKvHeads * c.headDim;
  const q = randArray(c.nTokens * c.nHeads * c.headDim, r);
  const k = randArray(c.nSlots * kvDim, r), v = randArray(c.nSlots * kvDim, r);
  // a ring buffer's order: slot s holds position (s + shift) mod nSlots, a few slots empty
  const shift = Math.floor(c.nSlots / 3);
  const slotPositions = new Int32Array(c.nSlots).map((_, s) => (s % 97 === 13 ? -1 : (s + shift) % c.nSlots));
  const queryPositions = Int32Array.from({ length: c.nTokens }, (_, i) => c.nSlots - c.nTokens + i);
  const out = b.alloc(q.length);
  b.attention({ ...c, q: put(b, q), k: put(b, k), v: put(b, v), out, queryPositions, slotPositions, scale: 0.25 });
  return b.read(out);
}

test('attention split over slots (flash decoding): 2-4k-slot caches, GQA / MQA, windows, soft-caps vs js within 1e-4', async (t) => {
  const gpu = await webgpuBackend(t);
  if (!gpu) return;
  try {
    assert.equal(gpu.splitSlots, 512);
    const cases = [
      { nTokens: 1, nSlots: 4096, nHeads: 8, nKvHeads: 4, headDim: 64, window: Infinity, softcap: 50 },
      { nTokens: 1, nSlots: 2049, nHeads: 4, nKvHeads: 1, headDim: 96, window: Infinity, softcap: 0 },
      { nTokens: 2, nSlots: 3000, nHeads: 6, nKvHeads: 2, headDim: 40, window: 700, softcap: 30 },
      { nTokens: 5, nSlots: 2600, nHeads: 4, nKvHeads: 2, headDim: 72, window: 1000, softcap: 0 },
    ];
    for (const [i, c] of cases.entries()) {
      const before = gpu.kernelDispatches()['attention-part'] ?? 0;
      const got = await attentionOn(gpu, c, 20 + i);
      assert.ok((gpu.kernelDispatches()['attention-part'] ?? 0) > before, `${c.nSlots} slots take the split path`);
      close(got, await attentionOn(js, c, 20 + i), () => 1e-4, `split attention ${JSON.stringify(c)}`);
    }
  } finally {
    gpu.dispose();
  }
});

test('attention split forced on short, ragged caches equals the one-workgroup kernel and js', async (t) => {
  const split = await webgpuBackend(t, { attentionSplitSlots: 1 });
  if (!split) return;
  try {
    const cases = [
      { nTokens: 1, nSlots: 70, nHeads: 4, nKvHeads: 1, headDim: 36, window: Infinity, softcap: 0 },
      { nTokens: 7, nSlots: 301, nHeads: 6, nKvHeads: 2, headDim: 20, window: 9, softcap: 50 },
      { nTokens: 3, nSlots: 600, nHeads: 2, nKvHeads: 2, headDim: 130, window: 40, softcap: 0 },
      // every slot of the last range masked for the first token (window), one range empty of positions
      { nTokens: 4, nSlots: 513, nHeads: 2, nKvHeads: 1, headDim: 16, window: 3, softcap: 0 },
    ];
    for (const [i, c] of cases.entries()) {
      const got = await attentionOn(split, c, 40 + i);
      close(got, await attentionOn(js, c, 40 + i), () => 1e-5, `forced split ${JSON.stringify(c)}`);
    }
    assert.ok((split.kernelDispatches()['attention-part'] ?? 0) >= cases.length);
    assert.equal(split.kernelDispatches()['attention'], undefined, 'the one-workgroup kernel never ran');
  } finally {
    split.dispose();
  }
});
