/**
 * The element-wise kernels shared by the backends, in TypeScript: RMSNorm, gelu-tanh x up,
 * rotate-half RoPE, soft-cap, and attention over a position-tagged KV cache. They are
 * O(tokens x features), a small fraction of a forward pass next to the matrix products; the JS
 * backend uses them all, the wasm backend all but large attention calls (done in a kernel).
 */
import type { AttentionParams } from './backend.js';
import { decodeF16 } from '../formats/half.js';

export function rmsNorm(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let s0 = 0, s1 = 0;
    let i = 0;
    for (; i + 1 < dim; i += 2) {
      const a = x[o + i]!, b = x[o + i + 1]!;
      s0 += a * a;
      s1 += b * b;
    }
    if (i < dim) s0 += x[o + i]! * x[o + i]!;
    const inv = 1 / Math.sqrt((s0 + s1) / dim + eps);
    for (let j = 0; j < dim; j++) x[o + j] = x[o + j]! * inv * weight[j]!;
  }
}

const GELU_K = Math.sqrt(2 / Math.PI);

export function geluMul(gate: Float32Array, up: Float32Array, count: number): void {
  for (let i = 0; i < count; i++) {
    const g = gate[i]!;
    gate[i] = 0.5 * g * (1 + Math.tanh(GELU_K * (g + 0.044715 * g * g * g))) * up[i]!;
  }
}

// theta^(-2i/headDim) per (theta, headDim): the same few tables serve every call
const invFreqs = new Map<string, Float64Array>();

function invFreqTable(theta: number, headDim: number): Float64Array {
  const key = `${theta}/${headDim}`;
  let t = invFreqs.get(key);
  if (!t) {
    const half = headDim >> 1;
    t = new Float64Array(half);
    for (let i = 0; i < half; i++) t[i] = 1 / Math.pow(theta, (2 * i) / headDim);
    invFreqs.set(key, t);
  }
  return t;
}

export function rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, theta: number, scaling: number): void {
  const half = headDim >> 1;
  const invFreq = invFreqTable(theta, headDim);
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let t = 0; t < nTokens; t++) {
    const pos = positions[t]! / scaling;
    for (let i = 0; i < half; i++) {
      const a = pos * invFreq[i]!;
      cos[i] = Math.cos(a);
      sin[i] = Math.sin(a);
    }
    for (let h = 0; h < nHeads; h++) {
      const o = (t * nHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const x0 = x[o + i]!, x1 = x[o + i + half]!;
        const c = cos[i]!, s = sin[i]!;
        x[o + i] = x0 * c - x1 * s;
        x[o + i + half] = x1 * c + x0 * s;
      }
    }
  }
}

export function softcap(x: Float32Array, count: number, cap: number): void {
  const inv = 1 / cap;
  for (let i = 0; i < count; i++) x[i] = cap * Math.tanh(x[i]! * inv);
}

/** Attention for nTokens queries; f64 scores and accumulators. */
export function attention(p: AttentionParams): void {
  const { q, nTokens, nSlots, nHeads, nKvHeads, headDim, queryPositions, slotPositions, window, scale, softcap, out } = p;
  const group = nHeads / nKvHeads;
  const kvDim = nKvHeads * headDim;
  // an f16 cache (bits in Uint16Array) is decoded once here: this path is the readable reference
  const asF32 = (a: Float32Array | Uint16Array): Float32Array => {
    if (!(a instanceof Uint16Array)) return a;
    const f = new Float32Array(nSlots * kvDim);
    decodeF16(new Uint8Array(a.buffer, a.byteOffset, f.length * 2), 0, f.length, f);
    return f;
  };
  const k = asF32(p.k), v = asF32(p.v);
  const scores = new Float64Array(nSlots);
  const acc = new Float64Array(headDim);
  for (let t = 0; t < nTokens; t++) {
    const qp = queryPositions[t]!;
    for (let h = 0; h < nHeads; h++) {
      const qo = (t * nHeads + h) * headDim;
      const ko = Math.floor(h / group) * headDim;
      let max = -Infinity;
      for (let s = 0; s < nSlots; s++) {
        const kp = slotPositions[s]!;
        if (kp < 0 || kp > qp || qp - kp >= window) {
          scores[s] = -Infinity;
          continue;
        }
        let d = 0;
        const kb = s * kvDim + ko;
        for (let i = 0; i < headDim; i++) d += q[qo + i]! * k[kb + i]!;
        d *= scale;
        if (softcap > 0) d = softcap * Math.tanh(d / softcap);
        scores[s] = d;
        if (d > max) max = d;
      }
      acc.fill(0);
      let sum = 0;
      for (let s = 0; s < nSlots; s++) {
        if (scores[s] === -Infinity) continue;
        const e = Math.exp(scores[s]! - max);
        sum += e;
        const vb = s * kvDim + ko;
        for (let i = 0; i < headDim; i++) acc[i] += e * v[vb + i]!;
      }
      for (let i = 0; i < headDim; i++) out[qo + i] = sum > 0 ? acc[i]! / sum : 0;
    }
  }
}
