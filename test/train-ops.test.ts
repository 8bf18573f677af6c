/**
 * Each backward op of src/train/ops.ts against central finite differences in float64 (the ops
 * run on Float64Arrays here): RMSNorm as QK-norm (per head), GeGLU, RoPE with linear scaling,
 * and attention with GQA / MQA, sliding windows, soft-caps and packed documents. The loss is
 * L = sum(out * R) for a fixed random R; every input element is perturbed. Error bound: 1e-6 of
 * the gradient's largest magnitude.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attentionBackward, attentionForward, gegluBackward, gegluForward, rmsNormBackward, rmsNormForward, ropeApply, ropeTable, type AttentionShape } from '../src/train/ops.js';
import { mulberry32 } from '../src/util/mulberry32.js';

const rnd = mulberry32(11);
const rand = (len: number, scale = 1) => Float64Array.from({ length: len }, () => (rnd() - 0.5) * 2 * scale);
const H = 1e-5;

/** Check `analytic` = dL/dx by central differences of L(x) = loss(). */
function checkFd(label: string, x: Float64Array, analytic: Float64Array, loss: () => number): void {
  let scale = 0;
  for (const g of analytic) scale = Math.max(scale, Math.abs(g));
  assert.ok(scale > 1e-3, `${label}: gradient is ~0 (${scale}), the check would prove nothing`);
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!;
    x[i] = x0 + H;
    const lp = loss();
    x[i] = x0 - H;
    const lm = loss();
    x[i] = x0;
    worst = Math.max(worst, Math.abs((lp - lm) / (2 * H) - analytic[i]!));
  }
  assert.ok(worst <= 1e-6 * scale, `${label}: max |fd - analytic| = ${worst} (scale ${scale})`);
}

const dotR = (out: Float64Array, R: Float64Array) => out.reduce((a, v, i) => a + v * R[i]!, 0);

test('RMSNorm (1 + w) as QK-norm: per-head rows of head_dim', () => {
  const rows = 3 * 4, dim = 8, eps = 1e-6;
  const x = rand(rows * dim, 2), w = rand(dim, 0.5), R = rand(rows * dim);
  const y = new Float64Array(rows * dim), rstd = new Float64Array(rows);
  const loss = () => {
    rmsNormForward(x, w, rows, dim, eps, y, rstd);
    return dotR(y, R);
  };
  loss();
  const dx = new Float64Array(rows * dim), dw = new Float64Array(dim);
  rmsNormBackward(x, w, rstd, R, rows, dim, dx, dw, false);
  checkFd('rmsNorm dx', x, dx, loss);
  checkFd('rmsNorm dw', w, dw, loss);
});

test('GeGLU with tanh GELU', () => {
  const n = 40;
  const gate = rand(n, 3), up = rand(n), R = rand(n);
  const act = new Float64Array(n);
  const loss = () => {
    gegluForward(gate, up, n, act);
    return dotR(act, R);
  };
  const dg = new Float64Array(n), du = new Float64Array(n);
  gegluBackward(gate, up, R, n, dg, du);
  checkFd('geglu dgate', gate, dg, loss);
  checkFd('geglu dup', up, du, loss);
});

test('RoPE backward is the transposed rotation (linear scaling, packed positions)', () => {
  const n = 5, heads = 2, hd = 8;
  const positions = Int32Array.from([0, 1, 2, 0, 1]);
  const table = ropeTable(n, hd, 10000, 8, positions);
  const x = rand(n * heads * hd), R = rand(n * heads * hd);
  const loss = () => {
    const y = Float64Array.from(x);
    ropeApply(y, n, heads, table, false);
    return dotR(y, R);
  };
  const dx = Float64Array.from(R);
  ropeApply(dx, n, heads, table, true);
  checkFd('rope dx', x, dx, loss);
});

const cases: Array<[string, AttentionShape]> = [
  ['GQA (4 heads / 2 KV), sliding window 3, soft-cap 2', { n: 9, nHeads: 4, nKvHeads: 2, headDim: 8, window: 3, scale: 0.4, softcap: 2 }],
  ['MQA (4 heads / 1 KV), global', { n: 7, nHeads: 4, nKvHeads: 1, headDim: 4, window: Infinity, scale: 0.5, softcap: 0 }],
  ['MHA, window 2, two packed documents', { n: 8, nHeads: 2, nKvHeads: 2, headDim: 4, window: 2, scale: 0.6, softcap: 0, doc: Int32Array.from([1, 1, 1, 1, 1, 2, 2, 2]) }],
];

for (const [label, p] of cases) {
  test(`attention: ${label}`, () => {
    const qDim = p.nHeads * p.headDim, kvDim = p.nKvHeads * p.headDim;
    const q = rand(p.n * qDim, 1.5), k = rand(p.n * kvDim, 1.5), v = rand(p.n * kvDim), R = rand(p.n * qDim);
    const out = new Float64Array(p.n * qDim);
    const loss = () => {
      attentionForward(q, k, v, p, out);
      return dotR(out, R);
    };
    const dq = new Float64Array(p.n * qDim), dk = new Float64Array(p.n * kvDim), dv = new Float64Array(p.n * kvDim);
    attentionBackward(q, k, v, R, p, dq, dk, dv);
    checkFd(`${label} dq`, q, dq, loss);
    checkFd(`${label} dk`, k, dk, loss);
    checkFd(`${label} dv`, v, dv, loss);
  });
}

test('attention visibility: a window or a document boundary really hides keys', () => {
  const p: AttentionShape = { n: 4, nHeads: 1, nKvHeads: 1, headDim: 4, window: 2, scale: 1, softcap: 0 };
  const q = rand(16), k = rand(16), v = rand(16);
  const out = new Float64Array(16);
  attentionForward(q, k, v, p, out);
  const moved = Float64Array.from(v);
  moved.fill(9, 0, 4); // token 0's value: outside token 3's window of 2
  const out2 = new Float64Array(16);
  attentionForward(q, k, moved, p, out2);
  assert.deepEqual(out2.subarray(12), out.subarray(12));
  assert.notDeepEqual(out2.subarray(4, 8), out.subarray(4, 8));
});
