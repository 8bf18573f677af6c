/**
 * The WGSL kernels of the WebGPU backend. Activations and accumulation are f32 (Gemma's
 * activations overflow f16). Weights stay in their stored bytes (ggml / safetensors layouts,
 * unchanged) and are decoded in the shader by `wv(rowByte, c)`, one function per dtype, so
 * every matrix kernel serves every weight type.
 *
 * Conventions: workgroups of 64; a dispatch of more than 65535 groups is split over y, and
 * `gid(wg)` rebuilds the linear index; every kernel takes its parameters in a uniform struct
 * `p` with element offsets into its bindings (bindings start at 256-byte boundaries).
 */
import type { DType } from '../../formats/dtype.js';

const COMMON = /* wgsl */ `
fn gid(wg: vec3<u32>) -> u32 { return wg.x + wg.y * 65535u; }
// tanh of a clamped argument: the same value in f32, no inf / inf = NaN on large inputs
fn tanh_safe(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
`;

/** Byte b of the weight buffer. */
const BYTE = /* wgsl */ `
fn wbyte(a: u32) -> u32 { return extractBits(W[a >> 2u], (a & 3u) * 8u, 8u); }
fn whalf(a: u32) -> u32 { let w = W[a >> 2u]; return select(w & 0xffffu, w >> 16u, (a & 2u) != 0u); }
fn f16at(a: u32) -> f32 { return unpack2x16float(whalf(a)).x; }
fn i8of(b: u32) -> f32 { return f32(bitcast<i32>(b << 24u) >> 24u); }
`;

/** wv(rowByte, c): value c of the row starting at byte rowByte, for each stored type. */
const DECODE: Record<DType, string> = {
  f32: /* wgsl */ `fn wv(r: u32, c: u32) -> f32 { return bitcast<f32>(W[(r >> 2u) + c]); }`,
  bf16: /* wgsl */ `fn wv(r: u32, c: u32) -> f32 { return bitcast<f32>(whalf(r + 2u * c) << 16u); }`,
  f16: /* wgsl */ `fn wv(r: u32, c: u32) -> f32 { return f16at(r + 2u * c); }`,
  // ggml block_q8_0: f16 d, 32 x i8
  q8_0: /* wgsl */ `fn wv(r: u32, c: u32) -> f32 {
    let b = r + (c >> 5u) * 34u;
    return f16at(b) * i8of(wbyte(b + 2u + (c & 31u)));
  }`,
  // ggml block_q4_0: f16 d, 16 bytes; value j = low nibble of byte j, value j + 16 = high nibble, minus 8
  q4_0: /* wgsl */ `fn wv(r: u32, c: u32) -> f32 {
    let b = r + (c >> 5u) * 18u;
    let q = c & 31u;
    let byte = wbyte(b + 2u + (q & 15u));
    let nib = select(byte & 15u, byte >> 4u, q >= 16u);
    return f16at(b) * (f32(nib) - 8.0);
  }`,
  // ggml block_q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales / mins, 128 bytes of nibbles;
  // 64 values per chunk: 32 low nibbles (sub-block 2j), then 32 high nibbles (2j + 1)
  q4_k: /* wgsl */ `fn wv(r: u32, c: u32) -> f32 {
    let b = r + (c >> 8u) * 144u;
    let k = c & 255u;
    let chunk = k >> 6u;
    let hi = (k & 63u) >= 32u;
    let l = k & 31u;
    let byte = wbyte(b + 16u + chunk * 32u + l);
    let nib = select(byte & 15u, byte >> 4u, hi);
    let j = chunk * 2u + select(0u, 1u, hi);
    var sc: u32;
    var m: u32;
    if (j < 4u) {
      sc = wbyte(b + 4u + j) & 63u;
      m = wbyte(b + 8u + j) & 63u;
    } else {
      sc = (wbyte(b + 8u + j) & 15u) | ((wbyte(b + j) >> 6u) << 4u);
      m = (wbyte(b + 8u + j) >> 4u) | ((wbyte(b + 4u + j) >> 6u) << 4u);
    }
    return f16at(b) * f32(sc) * f32(nib) - f16at(b + 2u) * f32(m);
  }`,
  // ggml block_q6_K: 128 bytes ql, 64 bytes qh, 16 i8 scales, f16 d; two halves of 128 values,
  // each four quarters of 32 (ql low / low+32 / high / high+32 nibbles, qh bits 0-1 / 2-3 / 4-5 / 6-7)
  q6_k: /* wgsl */ `fn wv(r: u32, c: u32) -> f32 {
    let b = r + (c >> 8u) * 210u;
    let k = c & 255u;
    let half = k >> 7u;
    let w = k & 127u;
    let quarter = w >> 5u;
    let l = w & 31u;
    let ql = wbyte(b + half * 64u + l + (quarter & 1u) * 32u);
    let lo = select(ql & 15u, ql >> 4u, quarter >= 2u);
    let qh = (wbyte(b + 128u + half * 32u + l) >> (quarter * 2u)) & 3u;
    let q = f32(lo | (qh << 4u)) - 32.0;
    let sc = i8of(wbyte(b + 192u + half * 8u + (l >> 4u) + quarter * 2u));
    return f16at(b + 208u) * sc * q;
  }`,
};

const WEIGHTS = /* wgsl */ `@group(0) @binding(1) var<storage, read> W: array<u32>;`;

/**
 * out[t, rowStart + r] = x[t] · W[r] for up to 8 tokens: one workgroup per row. The 64 partial
 * sums are reduced in shared memory (a tree); with subgroups, subgroupAdd sums each subgroup and
 * its first lane's total lands in shared memory, then one pass adds those in a fixed order
 * (deterministic whatever the subgroup size or layout).
 */
export function matvecShader(dtype: DType, subgroups = false): string {
  const reduce = subgroups
    ? /* wgsl */ `
  for (var t = 0u; t < 8u; t++) {
    let s = subgroupAdd(acc[t]);
    red[t * 64u + li] = select(0.0, s, sgi == 0u);
  }
  workgroupBarrier();
  if (li < p.n) {
    var v = 0.0;
    for (var k = 0u; k < 64u; k++) { v += red[li * 64u + k]; }`
    : /* wgsl */ `
  for (var t = 0u; t < 8u; t++) { red[t * 64u + li] = acc[t]; }
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (li < s) {
      for (var t = 0u; t < p.n; t++) { red[t * 64u + li] += red[t * 64u + li + s]; }
    }
    workgroupBarrier();
  }
  if (li < p.n) {
    var v = red[li * 64u];`;
  return /* wgsl */ `${subgroups ? 'enable subgroups;' : ''}
${COMMON}
struct P { rows: u32, cols: u32, rowBytes: u32, rowStart: u32, n: u32, xOff: u32, xStride: u32, oOff: u32, oStride: u32, cap: f32 }
@group(0) @binding(0) var<uniform> p: P;
${WEIGHTS}
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${BYTE}
${DECODE[dtype]}
var<workgroup> red: array<f32, 512>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32${SGI(subgroups)}) {
  let r = gid(wg);
  if (r >= p.rows) { return; }
  var acc: array<f32, 8>;
  let base = r * p.rowBytes;
  for (var c = li; c < p.cols; c += 64u) {
    let w = wv(base, c);
    for (var t = 0u; t < p.n; t++) { acc[t] += w * X[p.xOff + t * p.xStride + c]; }
  }${reduce}
    if (p.cap > 0.0) { v = p.cap * tanh_safe(v / p.cap); }
    O[p.oOff + li * p.oStride + p.rowStart + r] = v;
  }
}`;
}

/** The same product for many tokens: 32 rows x 32 tokens per workgroup, 4 x 4 per thread, k in steps of 16. */
export function matmulShader(dtype: DType): string {
  return /* wgsl */ `${COMMON}
struct P { rows: u32, cols: u32, rowBytes: u32, rowStart: u32, n: u32, xOff: u32, xStride: u32, oOff: u32, oStride: u32, cap: f32 }
@group(0) @binding(0) var<uniform> p: P;
${WEIGHTS}
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${BYTE}
${DECODE[dtype]}
var<workgroup> Ws: array<f32, 512>;
var<workgroup> Xs: array<f32, 512>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let r0 = wg.x * 32u;
  let t0 = wg.y * 32u;
  let tx = li % 8u;
  let ty = li / 8u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.cols; k0 += 16u) {
    for (var i = 0u; i < 8u; i++) {
      let e = li + i * 64u;
      let rr = e / 16u;
      let kk = e % 16u;
      let c = k0 + kk;
      var w = 0.0;
      if (r0 + rr < p.rows && c < p.cols) { w = wv((r0 + rr) * p.rowBytes, c); }
      Ws[e] = w;
      var x = 0.0;
      if (t0 + rr < p.n && c < p.cols) { x = X[p.xOff + (t0 + rr) * p.xStride + c]; }
      Xs[e] = x;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var xv: array<f32, 4>;
      var wv4: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        xv[i] = Xs[(ty * 4u + i) * 16u + kk];
        wv4[i] = Ws[(tx * 4u + i) * 16u + kk];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += xv[i] * wv4[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let t = t0 + ty * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      let r = r0 + tx * 4u + j;
      if (t < p.n && r < p.rows) {
        var v = acc[i * 4u + j];
        if (p.cap > 0.0) { v = p.cap * tanh_safe(v / p.cap); }
        O[p.oOff + t * p.oStride + p.rowStart + r] = v;
      }
    }
  }
}`;
}

/** out[t, c] = W[ids[t] - rowStart, c] * scale for the tokens whose row lies in this part. */
export function embedShader(dtype: DType): string {
  return /* wgsl */ `${COMMON}
struct P { n: u32, cols: u32, rowBytes: u32, rowStart: u32, rowsInPart: u32, oOff: u32, idOff: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
${WEIGHTS}
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${BYTE}
${DECODE[dtype]}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = gid(wg) * 64u + li;
  if (i >= p.n * p.cols) { return; }
  let t = i / p.cols;
  let c = i % p.cols;
  let id = ids[p.idOff + t];
  if (id < p.rowStart || id >= p.rowStart + p.rowsInPart) { return; }
  O[p.oOff + i] = wv((id - p.rowStart) * p.rowBytes, c) * p.scale;
}`;
}

/** RMSNorm, one workgroup per row; the sum of squares reduced as in matvecShader (a tree, or subgroupAdd). */
export function rmsNormShader(subgroups = false): string {
  const reduce = subgroups
    ? /* wgsl */ `
  let tot = subgroupAdd(s);
  red[li] = select(0.0, tot, sgi == 0u);
  workgroupBarrier();
  var sum = 0.0;
  for (var k = 0u; k < 64u; k++) { sum += red[k]; }`
    : /* wgsl */ `
  red[li] = s;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  let sum = red[0];`;
  return /* wgsl */ `${subgroups ? 'enable subgroups;' : ''}
${COMMON}
struct P { rows: u32, dim: u32, off: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@group(0) @binding(2) var<storage, read> Wt: array<f32>;
var<workgroup> red: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32${SGI(subgroups)}) {
  let r = gid(wg);
  if (r >= p.rows) { return; }
  let o = p.off + r * p.dim;
  var s = 0.0;
  for (var i = li; i < p.dim; i += 64u) { let v = X[o + i]; s += v * v; }${reduce}
  let inv = 1.0 / sqrt(sum / f32(p.dim) + p.eps);
  for (var i = li; i < p.dim; i += 64u) { X[o + i] = X[o + i] * inv * Wt[i]; }
}`;
}

/** Rotate-half RoPE with cos / sin tables [nTokens, half] computed on the host in f64. */
export const ROPE = /* wgsl */ `${COMMON}
struct P { nTokens: u32, nHeads: u32, headDim: u32, off: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@group(0) @binding(2) var<storage, read> CS: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let half = p.headDim / 2u;
  let i = gid(wg) * 64u + li;
  if (i >= p.nTokens * p.nHeads * half) { return; }
  let d = i % half;
  let th = i / half;
  let t = th / p.nHeads;
  let o = p.off + th * p.headDim;
  let c = CS[t * half + d];
  let s = CS[p.nTokens * half + t * half + d];
  let x0 = X[o + d];
  let x1 = X[o + d + half];
  X[o + d] = x0 * c - x1 * s;
  X[o + d + half] = x1 * c + x0 * s;
}`;

export const GELU_MUL = /* wgsl */ `${COMMON}
struct P { count: u32, gOff: u32, uOff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> G: array<f32>;
@group(0) @binding(2) var<storage, read> U: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = gid(wg) * 64u + li;
  if (i >= p.count) { return; }
  let g = G[p.gOff + i];
  G[p.gOff + i] = 0.5 * g * (1.0 + tanh_safe(0.7978845608028654 * (g + 0.044715 * g * g * g))) * U[p.uOff + i];
}`;

export const ADD = /* wgsl */ `${COMMON}
struct P { count: u32, xOff: u32, yOff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@group(0) @binding(2) var<storage, read> Y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = gid(wg) * 64u + li;
  if (i >= p.count) { return; }
  X[p.xOff + i] = X[p.xOff + i] + Y[p.yOff + i];
}`;

export const SOFTCAP = /* wgsl */ `${COMMON}
struct P { count: u32, off: u32, cap: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = gid(wg) * 64u + li;
  if (i >= p.count) { return; }
  X[p.off + i] = p.cap * tanh_safe(X[p.off + i] / p.cap);
}`;

/**
 * The LM head's scoring reduction (Backend.headLogProbs), one workgroup per row of vocab logits:
 * the first maximum and its index (strict > within a thread, ties to the lower index across
 * threads), then sum exp(x - max) with compensated (Kahan) sums per thread and a fixed tree.
 * O[2r] = L[target] - max - log(sum), O[2r + 1] = argmax.
 */
export const LOG_PROBS = /* wgsl */ `${COMMON}
struct P { rows: u32, vocab: u32, lOff: u32, oOff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<u32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
var<workgroup> rm: array<f32, 64>;
var<workgroup> ri: array<u32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let r = gid(wg);
  if (r >= p.rows) { return; }
  let o = p.lOff + r * p.vocab;
  var m = -3.4028234663852886e38;
  var a = 0u;
  for (var i = li; i < p.vocab; i += 64u) { let v = L[o + i]; if (v > m) { m = v; a = i; } }
  rm[li] = m;
  ri[li] = a;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k >>= 1u) {
    if (li < k) {
      let m2 = rm[li + k];
      let a2 = ri[li + k];
      if (m2 > rm[li] || (m2 == rm[li] && a2 < ri[li])) { rm[li] = m2; ri[li] = a2; }
    }
    workgroupBarrier();
  }
  let mx = rm[0];
  let arg = ri[0];
  workgroupBarrier();
  var s = 0.0;
  var comp = 0.0;
  for (var i = li; i < p.vocab; i += 64u) {
    let y = exp(L[o + i] - mx) - comp;
    let t = s + y;
    comp = (t - s) - y;
    s = t;
  }
  rm[li] = s;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k >>= 1u) {
    if (li < k) { rm[li] += rm[li + k]; }
    workgroupBarrier();
  }
  if (li == 0u) {
    O[p.oOff + 2u * r] = L[o + T[r]] - mx - log(rm[0]);
    O[p.oOff + 2u * r + 1u] = f32(arg);
  }
}`;

/** rows x cols values, strided, src -> dst. */
export const COPY = /* wgsl */ `${COMMON}
struct P { rows: u32, cols: u32, sOff: u32, sStride: u32, dOff: u32, dStride: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read_write> D: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = gid(wg) * 64u + li;
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let c = i % p.cols;
  D[p.dOff + r * p.dStride + c] = S[p.sOff + r * p.sStride + c];
}`;

/**
 * Shared by the attention kernels (inserted after their parameter struct P and bindings Q, K):
 * the workgroup reductions (every thread gets the result; call from uniform control flow) and
 * one slot's score.
 */
/** The entry point's subgroup lane builtin, or a constant 0 lane without subgroups. */
const SGI = (subgroups: boolean): string => (subgroups ? ', @builtin(subgroup_invocation_id) sgi: u32' : '');

/** Workgroup max / sum of v, every thread gets it (sgi: the lane in its subgroup, unused here). */
const WG_REDUCE_SHARED = /* wgsl */ `
fn wg_max(v: f32, li: u32, sgi: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] = max(red[li], red[li + k]); }
    workgroupBarrier();
  }
  let m = red[0];
  workgroupBarrier();
  return m;
}
fn wg_sum(v: f32, li: u32, sgi: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}`;

/** The same with subgroupMax / subgroupAdd, each subgroup's result combined in a fixed order. */
const WG_REDUCE_SUBGROUPS = /* wgsl */ `
fn wg_max(v: f32, li: u32, sgi: u32) -> f32 {
  let s = subgroupMax(v);
  red[li] = select(MASKED, s, sgi == 0u);
  workgroupBarrier();
  var m = MASKED;
  for (var k = 0u; k < 64u; k++) { m = max(m, red[k]); }
  workgroupBarrier();
  return m;
}
fn wg_sum(v: f32, li: u32, sgi: u32) -> f32 {
  let s = subgroupAdd(v);
  red[li] = select(0.0, s, sgi == 0u);
  workgroupBarrier();
  var total = 0.0;
  for (var k = 0u; k < 64u; k++) { total += red[k]; }
  workgroupBarrier();
  return total;
}`;

function attentionCommon(subgroups: boolean): string {
  return /* wgsl */ `
const MASKED: f32 = -3.0e38;
var<workgroup> red: array<f32, 64>;
${subgroups ? WG_REDUCE_SUBGROUPS : WG_REDUCE_SHARED}
// query token / head th: its token, KV row length, KV head offset, query offset and position
struct Head { t: u32, kvDim: u32, ko: u32, qo: u32, qp: i32 }
fn head_of(th: u32) -> Head {
  let t = th / p.nHeads;
  let ko = ((th % p.nHeads) / (p.nHeads / p.nKvHeads)) * p.headDim;
  return Head(t, p.nKvHeads * p.headDim, ko, p.qOff + th * p.headDim, POS[p.qpOff + t]);
}
// q·k of query qo and key kb, scaled and soft-capped; MASKED unless 0 <= kp <= qp and qp - kp < window
fn score(qo: u32, kb: u32, kp: i32, qp: i32) -> f32 {
  if (kp < 0 || kp > qp || qp - kp >= p.window) { return MASKED; }
  var d = 0.0;
  for (var i = 0u; i < p.headDim; i++) { d += Q[qo + i] * K[kb + i]; }
  d *= p.scale;
  if (p.softcap > 0.0) { d = p.softcap * tanh_safe(d / p.softcap); }
  return d;
}
`;
}

/**
 * Attention, one workgroup per (query token, head): scores of every slot (masked by positions:
 * 0 <= pos_j <= pos_i and pos_i - pos_j < window; scaled, soft-capped) into a scratch row,
 * max and sum reduced in shared memory, then each thread sums p * V for its dimensions.
 * GQA / MQA: head h reads KV head h / (nHeads / nKvHeads).
 */
export function attentionShader(subgroups: boolean): string {
  return /* wgsl */ `${subgroups ? 'enable subgroups;' : ''}
${COMMON}
struct P { nTokens: u32, nSlots: u32, nHeads: u32, nKvHeads: u32, headDim: u32, window: i32, scale: f32, softcap: f32,
           qOff: u32, oOff: u32, kOff: u32, vOff: u32, qpOff: u32, spOff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<storage, read> POS: array<i32>;
@group(0) @binding(6) var<storage, read_write> S: array<f32>;
${attentionCommon(subgroups)}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32${SGI(subgroups)}) {${subgroups ? '' : '\n  let sgi = 0u;'}
  let th = gid(wg);
  if (th >= p.nTokens * p.nHeads) { return; }
  let hd = head_of(th);
  let kvDim = hd.kvDim;
  let ko = hd.ko;
  let sb = th * p.nSlots;
  var mx = MASKED;
  for (var s = li; s < p.nSlots; s += 64u) {
    let sc = score(hd.qo, p.kOff + s * kvDim + ko, POS[p.spOff + s], hd.qp);
    mx = max(mx, sc);
    S[sb + s] = sc;
  }
  let m = wg_max(mx, li, sgi);
  var sum = 0.0;
  for (var s = li; s < p.nSlots; s += 64u) {
    let sc = S[sb + s];
    var e = 0.0;
    if (sc > MASKED) { e = exp(sc - m); }
    S[sb + s] = e;
    sum += e;
  }
  storageBarrier(); // the V sum reads every thread's S
  let total = wg_sum(sum, li, sgi);
  for (var d = li; d < p.headDim; d += 64u) {
    var acc = 0.0;
    for (var s = 0u; s < p.nSlots; s++) {
      let e = S[sb + s];
      if (e > 0.0) { acc += e * V[p.vOff + s * kvDim + ko + d]; }
    }
    O[p.oOff + th * p.headDim + d] = select(0.0, acc / total, total > 0.0);
  }
}`;
}

/** Slots per workgroup of the split attention (ATTENTION_PART): the scores of a range live in workgroup memory. */
export const SPLIT_SLOTS = 256;

/**
 * Attention split over slots ("flash decoding"), for long caches: workgroup (th, c) takes query
 * token / head th and slots [c * 256, c * 256 + 256): masked, scaled, soft-capped scores in
 * workgroup memory, their max m, sum l = sum exp(s - m) and unnormalized output sum exp(s - m) v,
 * written as one partial [m, l, out[headDim]] per (th, c). ATTENTION_COMBINE merges them.
 * Many workgroups share one (token, head), so a single decoded token still fills the GPU.
 */
export function attentionPartShader(subgroups: boolean): string {
  return /* wgsl */ `${subgroups ? 'enable subgroups;' : ''}
${COMMON}
struct P { nTokens: u32, nSlots: u32, nHeads: u32, nKvHeads: u32, headDim: u32, window: i32, scale: f32, softcap: f32,
           qOff: u32, ptOff: u32, kOff: u32, vOff: u32, qpOff: u32, spOff: u32, nChunks: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read_write> PT: array<f32>;
@group(0) @binding(5) var<storage, read> POS: array<i32>;
const CH: u32 = ${SPLIT_SLOTS}u;
${attentionCommon(subgroups)}
var<workgroup> sc: array<f32, CH>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32${SGI(subgroups)}) {${subgroups ? '' : '\n  let sgi = 0u;'}
  let th = wg.x;
  let ch = wg.y;
  if (th >= p.nTokens * p.nHeads || ch >= p.nChunks) { return; }
  let hd = head_of(th);
  let kvDim = hd.kvDim;
  let ko = hd.ko;
  let s0 = ch * CH;
  let s1 = min(s0 + CH, p.nSlots);
  var mx = MASKED;
  for (var j = li; j < CH; j += 64u) {
    let s = s0 + j;
    var v = MASKED;
    if (s < s1) { v = score(hd.qo, p.kOff + s * kvDim + ko, POS[p.spOff + s], hd.qp); }
    mx = max(mx, v);
    sc[j] = v;
  }
  let m = wg_max(mx, li, sgi);
  var sum = 0.0;
  for (var j = li; j < CH; j += 64u) {
    var e = 0.0;
    if (sc[j] > MASKED) { e = exp(sc[j] - m); }
    sc[j] = e;
    sum += e;
  }
  let l = wg_sum(sum, li, sgi);
  let base = p.ptOff + (th * p.nChunks + ch) * (p.headDim + 2u);
  if (li == 0u) {
    PT[base] = m;
    PT[base + 1u] = l;
  }
  let n = s1 - s0;
  for (var d = li; d < p.headDim; d += 64u) {
    var acc = 0.0;
    for (var j = 0u; j < n; j++) {
      let e = sc[j];
      if (e > 0.0) { acc += e * V[p.vOff + (s0 + j) * kvDim + ko + d]; }
    }
    PT[base + 2u + d] = acc;
  }
}`;
}

/**
 * Merges the partials of ATTENTION_PART, one workgroup per (token, head): M = max m_c,
 * L = sum l_c exp(m_c - M), out = sum out_c exp(m_c - M) / L (0 when no slot is visible).
 */
export const ATTENTION_COMBINE = /* wgsl */ `${COMMON}
struct P { nTh: u32, headDim: u32, nChunks: u32, ptOff: u32, oOff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> PT: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let th = gid(wg);
  if (th >= p.nTh) { return; }
  let stride = p.headDim + 2u;
  let b0 = p.ptOff + th * p.nChunks * stride;
  var mx = -3.0e38;
  for (var c = 0u; c < p.nChunks; c++) {
    if (PT[b0 + c * stride + 1u] > 0.0) { mx = max(mx, PT[b0 + c * stride]); }
  }
  var total = 0.0;
  for (var c = 0u; c < p.nChunks; c++) {
    let l = PT[b0 + c * stride + 1u];
    if (l > 0.0) { total += l * exp(PT[b0 + c * stride] - mx); }
  }
  for (var d = li; d < p.headDim; d += 64u) {
    var acc = 0.0;
    for (var c = 0u; c < p.nChunks; c++) {
      let b = b0 + c * stride;
      if (PT[b + 1u] > 0.0) { acc += PT[b + 2u + d] * exp(PT[b] - mx); }
    }
    O[p.oOff + th * p.headDim + d] = select(0.0, acc / total, total > 0.0);
  }
}`;
