/**
 * Every Backend implementation through the same checks, against float64 references written here:
 * matmul for each weight dtype (weights built with quant.ts / half.ts, the expected result is the
 * exact dequantize-then-multiply product), getRow, rmsNorm, geluMul, rope, softcap, attention.
 * Shapes are deliberately not multiples of the kernels' tiles (4 rows, 8 columns, 2 tokens).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionParams, Backend } from '../src/backend/backend.js';
import { createJsBackend } from '../src/backend/js/index.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { rowLogProb } from '../src/backend/log-probs.js';
import { hostTensors } from '../src/backend/tensor.js';
import type { DType } from '../src/formats/dtype.js';
import { dequantizeAll } from '../src/formats/quant.js';
import { encode, randArray, rng } from './wasm-util.js';

const U = 2 ** -24; // f32 unit roundoff

interface Case {
  name: string;
  backend: Backend;
  /** Kernels quantize activations to 8 bits per 32-block for these dtypes. */
  quantizesActivations: boolean;
}

const backends: Case[] = [{ name: 'js', backend: createJsBackend(), quantizesActivations: false }];
for (const relaxedSimd of [false, true]) {
  for (const threads of [1, 2]) {
    const b = await createWasmBackend({ threads, relaxedSimd });
    backends.push({ name: `${b.name} x${threads}`, backend: b, quantizesActivations: true });
  }
}

const PLAIN: DType[] = ['f32', 'bf16', 'f16'];
const BLOCK: DType[] = ['q8_0', 'q4_0', 'q4_k', 'q6_k'];

/**
 * Expected matmul and a rigorous error bound per output.
 * Plain weights: recursive f32 summation of `cols` products in any order errs by at most
 * (cols + 2) u sum|w x| (Higham, gamma_n). Block weights with 8-bit activations: each activation
 * is replaced by q d with |x - q d| <= d/2 (d = amax/127 of its 32-block, plus f32 rounding of
 * x * 127/amax, < 1e-4 d), so the product errs by <= sum_b (0.5001 d_b) sum_{i in b} |w_i|; the
 * integer block sums are exact and the f32 scaling/accumulation adds (nb + 4) u per term.
 */
function reference(w: Float32Array, x: Float32Array, n: number, rows: number, cols: number, quantAct: boolean): { want: Float64Array; bound: Float64Array } {
  const want = new Float64Array(n * rows);
  const bound = new Float64Array(n * rows);
  const nb = Math.ceil(cols / 32);
  for (let t = 0; t < n; t++) {
    const xo = t * cols;
    const amax = new Float64Array(nb);
    for (let c = 0; c < cols; c++) amax[c >> 5] = Math.max(amax[c >> 5]!, Math.abs(x[xo + c]!));
    for (let r = 0; r < rows; r++) {
      const wo = r * cols;
      let s = 0, abs = 0, qerr = 0;
      for (let c = 0; c < cols; c++) {
        const p = w[wo + c]! * x[xo + c]!;
        s += p;
        abs += Math.abs(p);
        if (quantAct) qerr += Math.abs(w[wo + c]!) * 0.5001 * (amax[c >> 5]! / 127);
      }
      want[t * rows + r] = s;
      bound[t * rows + r] = quantAct ? qerr * (1 + 1e-6) + 2 * (nb + 4) * U * (abs + qerr) + 1e-30 : (cols + 2) * U * abs + 1e-30;
    }
  }
  return { want, bound };
}

/**
 * Tighter check of the 8-bit path: the same product with activations quantized as the kernels
 * specify (per 32-block: d = amax / 127, q = round-half-even(fround(x * fround(127 / amax)))),
 * the remaining error being f32 scaling and accumulation only.
 */
function referenceQ8Act(w: Float32Array, x: Float32Array, n: number, rows: number, cols: number): { want: Float64Array; bound: Float64Array } {
  const xq = new Float64Array(n * cols);
  for (let t = 0; t < n; t++) {
    for (let b = 0; b < cols / 32; b++) {
      const o = t * cols + b * 32;
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[o + i]!));
      const id = amax > 0 ? Math.fround(127 / amax) : 0;
      const d = Math.fround(amax / 127);
      for (let i = 0; i < 32; i++) {
        const v = Math.fround(x[o + i]! * id);
        let q = Math.round(v);
        if (Math.abs(v - Math.trunc(v)) === 0.5 && q % 2 !== 0) q -= 1; // ties to even
        xq[o + i] = q * d;
      }
    }
  }
  const want = new Float64Array(n * rows);
  const bound = new Float64Array(n * rows);
  for (let t = 0; t < n; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0, abs = 0;
      for (let c = 0; c < cols; c++) {
        const p = w[r * cols + c]! * xq[t * cols + c]!;
        s += p;
        abs += Math.abs(p);
      }
      want[t * rows + r] = s;
      bound[t * rows + r] = 2 * (cols / 32 + 4) * U * abs + 1e-30;
    }
  }
  return { want, bound };
}

function checkWithin(label: string, got: Float32Array, want: Float64Array, bound: Float64Array): void {
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!);
    assert.ok(Number.isFinite(got[i]!), `${label}: output ${i} is ${got[i]}`);
    if (e / bound[i]! > worst) {
      worst = e / bound[i]!;
      at = i;
    }
  }
  assert.ok(worst <= 1, `${label}: output ${at} = ${got[at]} vs ${want[at]} (error ${Math.abs(got[at]! - want[at]!)} > bound ${bound[at]})`);
}

const shapes = [
  { rows: 1, cols: 32, ns: [1, 2] },
  { rows: 37, cols: 96, ns: [1, 2, 3, 5] },
  { rows: 67, cols: 512, ns: [1, 4, 7] },
  { rows: 1029, cols: 2048, ns: [2, 9] }, // > 2M multiply-adds: runs on the worker threads (9: the 4-token tiles and a remainder)
];
const kShapes = [
  { rows: 1, cols: 256, ns: [1, 2] },
  { rows: 37, cols: 512, ns: [1, 3, 5] },
  { rows: 1029, cols: 2048, ns: [2] },
];

/** Weights per (dtype, shape), shared by all backends: stored bytes and their exact dequantization. */
const weightCache = new Map<string, { data: Uint8Array; w: Float32Array }>();
function weights(dtype: DType, rows: number, cols: number, seed: number): { data: Uint8Array; w: Float32Array } {
  const key = `${dtype}:${rows}x${cols}`;
  let e = weightCache.get(key);
  if (!e) {
    const data = encode(dtype, randArray(rows * cols, rng(seed + rows + cols)));
    e = { data, w: dequantizeAll(dtype, data, rows * cols) };
    weightCache.set(key, e);
  }
  return e;
}

for (const c of backends) {
  for (const dtype of [...PLAIN, ...BLOCK]) {
    test(`${c.name}: matmul ${dtype}`, () => {
      const r = rng(1000 + dtype.length * 17 + dtype.charCodeAt(1));
      for (const { rows, cols: baseCols, ns } of dtype.endsWith('_k') ? kShapes : shapes) {
        const cols = PLAIN.includes(dtype) ? baseCols - 3 : baseCols; // plain: not a multiple of 8 either
        const { data, w } = weights(dtype, rows, cols, dtype.charCodeAt(1) * 7);
        const m = c.backend.prepareMatrix({ dtype, rows, cols, data });
        assert.equal(m.rows, rows);
        assert.equal(m.cols, cols);
        for (const n of ns) {
          const x = randArray(n * cols, r, 2);
          for (const rowLimit of [undefined, Math.max(1, rows - 5)]) {
            const rl = rowLimit ?? rows;
            const out = new Float32Array(n * rl).fill(NaN);
            c.backend.matmul(m, x, n, out, rowLimit);
            const quantAct = c.quantizesActivations && BLOCK.includes(dtype);
            const { want, bound } = reference(w.subarray(0, rl * cols), x, n, rl, cols, quantAct);
            checkWithin(`${dtype} [${rows}x${cols}] n=${n} rows'=${rl}`, out, want, bound);
            if (quantAct) {
              const q = referenceQ8Act(w.subarray(0, rl * cols), x, n, rl, cols);
              checkWithin(`${dtype} 8-bit activations [${rows}x${cols}] n=${n}`, out, q.want, q.bound);
            }
          }
        }
        // getRow: exactly the dequantized row
        for (const row of [0, rows - 1, rows >> 1]) {
          const got = new Float32Array(cols);
          c.backend.getRow(m, row, got);
          assert.deepEqual(got, w.subarray(row * cols, (row + 1) * cols), `${dtype} getRow(${row})`);
        }
      }
    });
  }

  test(`${c.name}: matmul rejects bad input`, () => {
    const data = encode('f32', new Float32Array(8 * 16));
    assert.throws(() => c.backend.prepareMatrix({ dtype: 'f32', rows: 8, cols: 16, data: data.subarray(4) }), { name: 'ModelError' });
    assert.throws(() => c.backend.prepareMatrix({ dtype: 'q8_0', rows: 2, cols: 48, data: new Uint8Array(2 * 51) }), { name: 'ModelError' });
    const m = c.backend.prepareMatrix({ dtype: 'f32', rows: 8, cols: 16, data });
    assert.throws(() => c.backend.getRow(m, 8, new Float32Array(16)), { name: 'ModelError' });
  });

  test(`${c.name}: rmsNorm, geluMul, softcap`, () => {
    const r = rng(7);
    const rows = 3, dim = 37;
    const x = randArray(rows * dim, r, 3);
    const weight = randArray(dim, r, 2);
    const got = x.slice();
    c.backend.rmsNorm(got, weight, rows, dim, 1e-6);
    for (let i = 0; i < rows; i++) {
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += x[i * dim + j]! ** 2;
      const inv = 1 / Math.sqrt(ss / dim + 1e-6);
      for (let j = 0; j < dim; j++) {
        const want = x[i * dim + j]! * inv * weight[j]!;
        assert.ok(Math.abs(got[i * dim + j]! - want) <= 4e-6 * Math.abs(want) + 1e-7, `rmsNorm ${i},${j}: ${got[i * dim + j]} vs ${want}`);
      }
    }
    const gate = randArray(101, r, 6);
    gate.set([-40, -12, -5.5, 0, 1e-4, 9, 40], 0); // both tails and the exp clamp
    const up = randArray(101, r, 2);
    const g2 = gate.slice();
    c.backend.geluMul(g2, up, 101);
    for (let i = 0; i < 101; i++) {
      const g = gate[i]!;
      const want = 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g ** 3))) * up[i]!;
      assert.ok(Math.abs(g2[i]! - want) <= 4e-6 * Math.abs(want) + 1e-7, `geluMul ${i}: ${g2[i]} vs ${want}`);
    }
    // 1003 values: the wasm kernel's vector path and its scalar tail; both sides of its small-|y|
    // polynomial switch (|x| = 0.3125 * 30 = 9.375), tiny values and saturation
    const nS = 1003;
    const s = randArray(nS, r, 200);
    s.set([0, 1e-6, -1e-6, 1e-30, 9.3749, -9.3751, 9.376, 30, -29.99, 1e4, -1e4, 0.01, -0.5], 0);
    const s2 = s.slice();
    c.backend.softcap(s2, nS, 30);
    for (let i = 0; i < nS; i++) {
      const want = 30 * Math.tanh(s[i]! / 30);
      assert.ok(Math.abs(s2[i]! - want) <= 4e-6 * Math.abs(want) + 1e-7, `softcap ${i}`);
    }
  });

  test(`${c.name}: a stacked matrix (prepareStacked) computes its parts' rows`, (t) => {
    const stack = c.backend.prepareStacked?.bind(c.backend);
    if (!stack) {
      assert.equal(c.name, 'js', 'only the reference backend has no prepareStacked');
      t.diagnostic('js backend: no prepareStacked (q, k, v stay separate matrices)');
      return;
    }
    const r = rng(31);
    for (const dtype of ['bf16', 'q8_0', 'q4_0', 'q4_k', 'q6_k'] as const) {
      const cols = 256;
      // [8, 12, 6]: aligned parts written in place; [6, 8]: a part not a multiple of 4 rows (concatenated)
      for (const sizes of [[8, 12, 6], [6, 8]]) {
        const parts = sizes.map((rows, i) => ({ dtype, rows, cols, data: weights(dtype, rows, cols, 40 + i).data }));
        const m = stack(parts);
        assert.equal(m.rows, sizes.reduce((a, b) => a + b, 0));
        const n = 3;
        const x = randArray(n * cols, r, 2);
        const got = new Float32Array(n * m.rows);
        c.backend.matmul(m, x, n, got);
        let row0 = 0;
        for (const p of parts) {
          const want = new Float32Array(n * p.rows);
          c.backend.matmul(c.backend.prepareMatrix(p), x, n, want);
          for (let t2 = 0; t2 < n; t2++) {
            for (let i = 0; i < p.rows; i++) assert.equal(got[t2 * m.rows + row0 + i], want[t2 * p.rows + i], `${dtype} ${sizes} token ${t2} row ${row0 + i}`);
          }
          row0 += p.rows;
        }
      }
    }
    assert.throws(() => stack([{ dtype: 'q8_0', rows: 4, cols: 64, data: new Uint8Array(4 * 68) }, { dtype: 'q4_0', rows: 4, cols: 64, data: new Uint8Array(4 * 36) }]), { name: 'ModelError' });
  });

  test(`${c.name}: matmul with a soft-cap equals matmul, then softcap`, () => {
    const r = rng(23);
    for (const dtype of ['f32', 'q8_0'] as const) {
      const rows = 301, cols = 64, n = 2; // 602 outputs: the vector kernel and a scalar tail
      const { data } = weights(dtype, rows, cols, 5);
      const m = c.backend.prepareMatrix({ dtype, rows, cols, data });
      const x = randArray(n * cols, r, 40);
      const plain = new Float32Array(n * rows);
      c.backend.matmul(m, x, n, plain);
      const capped = new Float32Array(n * rows);
      c.backend.matmul(m, x, n, capped, undefined, 3);
      assert.ok(plain.some((v) => Math.abs(v) > 9), 'some outputs saturate the cap');
      c.backend.softcap(plain, plain.length, 3);
      for (let i = 0; i < plain.length; i++) assert.ok(Math.abs(capped[i]! - plain[i]!) <= 1e-6 * 3, `${dtype} ${i}: ${capped[i]} vs ${plain[i]}`);
    }
  });

  test(`${c.name}: headLogProbs equals the log-softmax of its own matmul at the targets, and the first argmax`, () => {
    const r = rng(29);
    // 1003-row head (a scalar tail past the 4-wide vectors), a row limit, a soft-cap; 300k rows
    // x 40 tokens overflow the wasm scratch area (several chunks)
    for (const [dtype, rows, cols, n, limit, cap] of [['f32', 1003, 64, 7, 1003, 0], ['q8_0', 1003, 64, 5, 998, 3], ['q4_0', 517, 96, 9, 517, 30], ['q8_0', 300_001, 32, 40, 300_001, 0]] as const) {
      const { data } = weights(dtype, rows, cols, 9);
      const m = c.backend.prepareMatrix({ dtype, rows, cols, data });
      const x = randArray(n * cols, r, 4);
      const targets = Int32Array.from({ length: n }, (_, t) => (t * 7919 + 13) % limit);
      const logits = new Float32Array(n * limit);
      c.backend.matmul(m, x, n, logits, limit, cap);
      const out = new Float32Array(2 * n);
      hostTensors(c.backend).headLogProbs(m, x, n, targets, out, limit, cap);
      for (let t = 0; t < n; t++) {
        const want = rowLogProb(logits, t * limit, limit, targets[t]!);
        assert.ok(Math.abs(out[2 * t]! - want.logProb) <= 2e-6 * Math.max(1, Math.abs(want.logProb)), `${dtype} ${rows} row ${t}: ${out[2 * t]} vs ${want.logProb}`);
        assert.equal(out[2 * t + 1], want.argmax, `${dtype} ${rows} row ${t}: argmax`);
      }
    }
    // ties: rows 6, 7 and 901 equal the input (the maximum), so the argmax is 6; a maximum in the
    // scalar tail (row 1002) alone
    const rows = 1003, cols = 32;
    const x = randArray(cols, r, 1);
    for (const [tied, want] of [[[6, 7, 901], 6], [[1002], 1002]] as const) {
      const w = new Float32Array(rows * cols);
      for (let i = 0; i < rows * cols; i++) w[i] = 0.01 * Math.sin(i);
      for (const k of tied) w.set(x, k * cols);
      const m = c.backend.prepareMatrix({ dtype: 'f32', rows, cols, data: new Uint8Array(w.buffer) });
      const out = new Float32Array(2);
      hostTensors(c.backend).headLogProbs(m, x, 1, Int32Array.of(3), out);
      assert.equal(out[1], want);
    }
    const m = c.backend.prepareMatrix({ dtype: 'f32', rows: 8, cols: 32, data: new Uint8Array(8 * 32 * 4) });
    assert.throws(() => hostTensors(c.backend).headLogProbs(m, new Float32Array(32), 1, Int32Array.of(8), new Float32Array(2)), { name: 'ModelError', message: /target 8/ });
  });

  test(`${c.name}: rope (rotate-half, scaled positions)`, () => {
    const r = rng(11);
    const nTokens = 3, nHeads = 2, headDim = 10;
    const x = randArray(nTokens * nHeads * headDim, r);
    const positions = Int32Array.from([0, 7, 4000]);
    for (const [theta, scaling] of [[10000, 1], [1e6, 8]] as const) {
      const got = x.slice();
      c.backend.rope(got, nTokens, nHeads, headDim, positions, theta, scaling);
      const half = headDim / 2;
      for (let t = 0; t < nTokens; t++) {
        for (let h = 0; h < nHeads; h++) {
          for (let i = 0; i < half; i++) {
            const a = (positions[t]! / scaling) * theta ** (-(2 * i) / headDim);
            const o = (t * nHeads + h) * headDim;
            const x0 = x[o + i]!, x1 = x[o + i + half]!;
            const w0 = x0 * Math.cos(a) - x1 * Math.sin(a);
            const w1 = x1 * Math.cos(a) + x0 * Math.sin(a);
            assert.ok(Math.abs(got[o + i]! - w0) <= 1e-5 && Math.abs(got[o + i + half]! - w1) <= 1e-5, `rope t${t} h${h} i${i}`);
          }
        }
      }
    }
  });

  test(`${c.name}: attention (GQA/MQA, ring-buffer slots, windows, soft-cap)`, () => {
    const r = rng(13);
    const configs = [
      { nHeads: 4, nKvHeads: 2, headDim: 16, window: Infinity, softcap: 0 },
      { nHeads: 4, nKvHeads: 1, headDim: 12, window: 4, softcap: 5 },
      { nHeads: 3, nKvHeads: 3, headDim: 8, window: 6, softcap: 0 },
      // 8 query heads per KV head (gemma-2b), grouped in the wasm kernel; 1 token (decode) and 3
      { nHeads: 8, nKvHeads: 1, headDim: 16, window: 5, softcap: 4, nTokens: 1 },
      { nHeads: 8, nKvHeads: 1, headDim: 16, window: 5, softcap: 4, nTokens: 3 },
      { nHeads: 16, nKvHeads: 2, headDim: 12, window: Infinity, softcap: 3, nTokens: 1 },
      { nHeads: 16, nKvHeads: 2, headDim: 12, window: 7, softcap: 0, nTokens: 3 },
      // large enough to run across the threads (heads * slots * headDim >= 2^15)
      { nHeads: 8, nKvHeads: 1, headDim: 64, window: 6, softcap: 5, nTokens: 1, nSlots: 72 },
      { nHeads: 8, nKvHeads: 1, headDim: 64, window: Infinity, softcap: 5, nTokens: 3, nSlots: 72 },
      // one token over many slots: the wasm backend splits the slots into ranges (2+ threads) and
      // merges their partial softmax results; pairs of heads, an odd group (pair + single) and
      // single heads, and a window that leaves whole ranges with nothing visible
      { nHeads: 8, nKvHeads: 4, headDim: 32, window: Infinity, softcap: 5, nTokens: 1, nSlots: 300 },
      { nHeads: 3, nKvHeads: 1, headDim: 48, window: 40, softcap: 0, nTokens: 1, nSlots: 300 },
      { nHeads: 4, nKvHeads: 4, headDim: 32, window: Infinity, softcap: 0, nTokens: 1, nSlots: 260 },
    ];
    for (const { nTokens = 3, nSlots: slots, ...cfg } of configs) {
      const nSlots = slots ?? 9;
      // a ring buffer after wrap-around: slot s holds position 9 + s for s < 3, else s; one empty slot
      // (nSlots = 72: slot s holds position 72 + s for s < 3, else s; slot 7 empty)
      const slotPositions = new Int32Array(nSlots).map((_, s) => (s < 3 ? nSlots + s : s === 7 ? -1 : s));
      const queryPositions = Int32Array.from([nSlots, nSlots + 1, nSlots + 2]).subarray(0, nTokens);
      const kvDim = cfg.nKvHeads * cfg.headDim;
      const q = randArray(nTokens * cfg.nHeads * cfg.headDim, r, 2);
      const k = randArray(nSlots * kvDim, r, 2);
      const v = randArray(nSlots * kvDim, r);
      const out = new Float32Array(q.length).fill(NaN);
      const p: AttentionParams = { q, k, v, nTokens, nSlots, queryPositions, slotPositions, out, scale: 0.3, ...cfg };
      c.backend.attention(p);
      const group = cfg.nHeads / cfg.nKvHeads;
      for (let t = 0; t < nTokens; t++) {
        for (let h = 0; h < cfg.nHeads; h++) {
          const kvh = Math.floor(h / group);
          const sc: number[] = [];
          const idx: number[] = [];
          for (let s = 0; s < nSlots; s++) {
            const kp = slotPositions[s]!, qp = queryPositions[t]!;
            if (kp < 0 || kp > qp || qp - kp >= cfg.window) continue;
            let d = 0;
            for (let i = 0; i < cfg.headDim; i++) d += q[(t * cfg.nHeads + h) * cfg.headDim + i]! * k[s * kvDim + kvh * cfg.headDim + i]!;
            d *= 0.3;
            if (cfg.softcap > 0) d = cfg.softcap * Math.tanh(d / cfg.softcap);
            sc.push(d);
            idx.push(s);
          }
          const mx = Math.max(...sc);
          const e = sc.map((d) => Math.exp(d - mx));
          const sum = e.reduce((a, b) => a + b, 0);
          for (let i = 0; i < cfg.headDim; i++) {
            let want = 0;
            idx.forEach((s, j) => (want += (e[j]! / sum) * v[s * kvDim + kvh * cfg.headDim + i]!));
            const got = out[(t * cfg.nHeads + h) * cfg.headDim + i]!;
            assert.ok(Math.abs(got - want) <= 1e-5, `attention ${JSON.stringify(cfg)} t${t} h${h} i${i}: ${got} vs ${want}`);
          }
        }
      }
    }
  });
}

test('dispose wasm backends', () => {
  for (const c of backends) c.backend.dispose();
});
