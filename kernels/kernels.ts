// gemma-ts WebAssembly kernels (AssemblyScript, SIMD128; relaxed SIMD where ASC_FEATURE_RELAXED_SIMD).
//
// Memory contract (see src/backend/wasm/memory.ts): the host writes vector constants at address
// CONST (0..255) of every memory; kernels load them at function entry (AssemblyScript's optimizer
// otherwise rematerialises v128 constants inside loops and V8 rebuilds them on every use).
// Every matmul kernel takes (g0, g1): the range of 4-row groups this thread computes.
// Output: out[t * outStride + row] for rows < rowLimit.

const C_0F: usize = 0; // i8x16 splat 0x0f
const C_8: usize = 16; // i8x16 splat 8
const C_F16MAGIC: usize = 32; // f32x4 splat 2^112
const C_7FFF: usize = 48; // i32x4 splat 0x7fff
const C_8000: usize = 64; // i32x4 splat 0x8000
const C_7C00: usize = 80; // i32x4 splat 0x7c00
const C_INF: usize = 96; // i32x4 splat 0x7f800000
const C_ZERO: usize = 112; // zero
const C_32: usize = 368; // i8x16 splat 32
const C_03: usize = 384; // i8x16 splat 3
const C_F16MASK: usize = 400; // i32x4 splat 0x8fffffff

@inline function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

@inline function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

// [sum a, sum b, sum c, sum d] of four i32x4 vectors.
@inline function reduce4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7));
}

@inline function store4(out: usize, t: i32, outStride: i32, r0: i32, rowLimit: i32, v: v128): void {
  const p = out + ((<usize>t * <usize>outStride + <usize>r0) << 2);
  if (r0 + 4 <= rowLimit) {
    v128.store(p, v);
  } else {
    if (r0 < rowLimit) store<f32>(p, f32x4.extract_lane(v, 0));
    if (r0 + 1 < rowLimit) store<f32>(p, f32x4.extract_lane(v, 1), 4);
    if (r0 + 2 < rowLimit) store<f32>(p, f32x4.extract_lane(v, 2), 8);
  }
}

@inline function storeRows(out: usize, t: i32, outStride: i32, r0: i32, rowLimit: i32, a: v128, b: v128, c: v128, d: v128): void {
  // transpose-reduce four f32 accumulators into one vector of row sums
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  const s = f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
  store4(out, t, outStride, r0, rowLimit, s);
}

// Index of the thread that owns this instance (set once by the host): selects its temp area.
let THREAD: i32 = 0;
export function set_thread(i: i32): void {
  THREAD = i;
}

// ---------------------------------------------------------------- plain float weights
// Layout: row-major, row stride = colsPad elements (colsPad % 8 == 0, padding zero), rows padded
// to a multiple of 4 with zero rows. x: [n, colsPad] f32 (padding zero).

// 4 rows (row stride rs bytes) x n tokens of f32, two tokens at a time.
@inline function f32Group(w0: usize, rs: usize, x: usize, xs: usize, out: usize, n: i32, r0: i32, rowLimit: i32, outStride: i32): void {
  const w1 = w0 + rs, w2 = w1 + rs, w3 = w2 + rs;
  let t = 0;
  for (; t + 1 < n; t += 2) {
    const xa = x + <usize>t * xs, xb = xa + xs;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (let o: usize = 0; o < xs; o += 16) {
      const va = v128.load(xa + o), vb = v128.load(xb + o);
      let v = v128.load(w0 + o); a0 = fma(v, va, a0); b0 = fma(v, vb, b0);
      v = v128.load(w1 + o); a1 = fma(v, va, a1); b1 = fma(v, vb, b1);
      v = v128.load(w2 + o); a2 = fma(v, va, a2); b2 = fma(v, vb, b2);
      v = v128.load(w3 + o); a3 = fma(v, va, a3); b3 = fma(v, vb, b3);
    }
    storeRows(out, t, outStride, r0, rowLimit, a0, a1, a2, a3);
    storeRows(out, t + 1, outStride, r0, rowLimit, b0, b1, b2, b3);
  }
  if (t < n) {
    const xa = x + <usize>t * xs;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (let o: usize = 0; o < xs; o += 16) {
      const va = v128.load(xa + o);
      a0 = fma(v128.load(w0 + o), va, a0);
      a1 = fma(v128.load(w1 + o), va, a1);
      a2 = fma(v128.load(w2 + o), va, a2);
      a3 = fma(v128.load(w3 + o), va, a3);
    }
    storeRows(out, t, outStride, r0, rowLimit, a0, a1, a2, a3);
  }
}

export function mm_f32(g0: i32, g1: i32, w: usize, x: usize, out: usize, n: i32, colsPad: i32, rowLimit: i32, outStride: i32): void {
  const rs = <usize>colsPad << 2;
  for (let g = g0; g < g1; g++) {
    const r0 = g << 2;
    f32Group(w + <usize>r0 * rs, rs, x, rs, out, n, r0, rowLimit, outStride);
  }
}

/**
 * Prefill path for 16-bit weights: each 4-row group is decoded once into this thread's f32 temp
 * area (tmp + THREAD * 16 * colsPad) and multiplied with all n tokens by the f32 loop.
 * kind: 0 = bf16, 1 = f16.
 */
export function mm_half_tiled(g0: i32, g1: i32, w: usize, x: usize, out: usize, n: i32, colsPad: i32, rowLimit: i32, outStride: i32, tmp: usize, kind: i32): void {
  const rs = <usize>colsPad << 2;
  const ws = <usize>colsPad << 1;
  const tb = tmp + <usize>THREAD * (rs << 2);
  for (let g = g0; g < g1; g++) {
    const r0 = g << 2;
    const src = w + <usize>r0 * ws;
    if (kind == 0) bf16_to_f32(src, tb, colsPad << 2);
    else f16_to_f32(src, tb, colsPad << 2);
    f32Group(tb, rs, x, rs, out, n, r0, rowLimit, outStride);
  }
}

/** Decode `count` bf16 values (count % 8 == 0) at src into f32 at dst. */
export function bf16_to_f32(src: usize, dst: usize, count: i32): void {
  const z = v128.load(C_ZERO);
  for (let i = 0; i < count; i += 8) {
    const v = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), v128.shuffle<u8>(z, v, 0, 1, 16, 17, 0, 1, 18, 19, 0, 1, 20, 21, 0, 1, 22, 23));
    v128.store(dst + (<usize>i << 2), v128.shuffle<u8>(z, v, 0, 1, 24, 25, 0, 1, 26, 27, 0, 1, 28, 29, 0, 1, 30, 31), 16);
  }
}

// bf16: 8 values per 16 bytes. Even-position values as f32 = v << 16, odd ones = v & 0xffff0000;
// the activations are split into even / odd lanes once per 8 columns and shared by the 4 rows.
const C_HI16: usize = 352; // i32x4 splat 0xffff0000

export function mm_bf16(g0: i32, g1: i32, w: usize, x: usize, out: usize, n: i32, colsPad: i32, rowLimit: i32, outStride: i32): void {
  const hm = v128.load(C_HI16);
  const ws = <usize>colsPad << 1, xs = <usize>colsPad << 2;
  for (let g = g0; g < g1; g++) {
    const r0 = g << 2;
    const w0 = w + <usize>r0 * ws, w1 = w0 + ws, w2 = w1 + ws, w3 = w2 + ws;
    let t = 0;
    for (; t + 1 < n; t += 2) {
      const xa = x + <usize>t * xs, xb = xa + xs;
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (let o: usize = 0; o < ws; o += 16) {
        const xo = o << 1;
        let p = v128.load(xa + xo), q = v128.load(xa + xo, 16);
        const ae = v128.shuffle<f32>(p, q, 0, 2, 4, 6), ao = v128.shuffle<f32>(p, q, 1, 3, 5, 7);
        p = v128.load(xb + xo); q = v128.load(xb + xo, 16);
        const be = v128.shuffle<f32>(p, q, 0, 2, 4, 6), bo = v128.shuffle<f32>(p, q, 1, 3, 5, 7);
        let v = v128.load(w0 + o); let e = i32x4.shl(v, 16), d = v128.and(v, hm);
        a0 = fma(d, ao, fma(e, ae, a0)); b0 = fma(d, bo, fma(e, be, b0));
        v = v128.load(w1 + o); e = i32x4.shl(v, 16); d = v128.and(v, hm);
        a1 = fma(d, ao, fma(e, ae, a1)); b1 = fma(d, bo, fma(e, be, b1));
        v = v128.load(w2 + o); e = i32x4.shl(v, 16); d = v128.and(v, hm);
        a2 = fma(d, ao, fma(e, ae, a2)); b2 = fma(d, bo, fma(e, be, b2));
        v = v128.load(w3 + o); e = i32x4.shl(v, 16); d = v128.and(v, hm);
        a3 = fma(d, ao, fma(e, ae, a3)); b3 = fma(d, bo, fma(e, be, b3));
      }
      storeRows(out, t, outStride, r0, rowLimit, a0, a1, a2, a3);
      storeRows(out, t + 1, outStride, r0, rowLimit, b0, b1, b2, b3);
    }
    if (t < n) {
      // same summation order as the two-token loop: results do not depend on how tokens pair up
      const xa = x + <usize>t * xs;
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
      for (let o: usize = 0; o < ws; o += 16) {
        const xo = o << 1;
        const p = v128.load(xa + xo), q = v128.load(xa + xo, 16);
        const ae = v128.shuffle<f32>(p, q, 0, 2, 4, 6), ao = v128.shuffle<f32>(p, q, 1, 3, 5, 7);
        let v = v128.load(w0 + o);
        a0 = fma(v128.and(v, hm), ao, fma(i32x4.shl(v, 16), ae, a0));
        v = v128.load(w1 + o);
        a1 = fma(v128.and(v, hm), ao, fma(i32x4.shl(v, 16), ae, a1));
        v = v128.load(w2 + o);
        a2 = fma(v128.and(v, hm), ao, fma(i32x4.shl(v, 16), ae, a2));
        v = v128.load(w3 + o);
        a3 = fma(v128.and(v, hm), ao, fma(i32x4.shl(v, 16), ae, a3));
      }
      storeRows(out, t, outStride, r0, rowLimit, a0, a1, a2, a3);
    }
  }
}

// f16 -> f32 for 4 lanes held as u32 (exact, subnormals included; inf/nan kept).
@inline function f16x4(h: v128, magic: v128, m7fff: v128, m8000: v128, m7c00: v128, inf: v128): v128 {
  const em = i32x4.shl(v128.and(h, m7fff), 13);
  const f = f32x4.mul(em, magic);
  const special = i32x4.eq(v128.and(h, m7c00), m7c00);
  const r = v128.bitselect(v128.or(em, inf), f, special);
  return v128.or(r, i32x4.shl(v128.and(h, m8000), 16));
}

// f16 in the top half of an i32 lane (sign at bit 31) -> f32: shift the exponent and mantissa
// right by 3 (arithmetic, then mask the smeared sign copies) and scale by 2^112. Exact for all
// finite values, subnormals included; f16 inf/NaN (never in weights) become +-65536 .. 131008.
@inline function f16hi(v: v128, mask: v128, magic: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shr_s(v, 3), mask), magic);
}

// The four f16 row scales at p (8 bytes) as f32x4, exactly: sign-extending each to 32 bits and
// shifting left by 13 leaves the same bits as f16hi's (h << 16) >> 3. Four operations per block;
// an f16-subnormal scale (|d| < 6.1e-5, rare for Q8_0 / Q4_0 blocks) takes x86's slow subnormal
// path in the multiply, with the same exact result.
@inline function scales4(p: usize, mask: v128, magic: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(v128.load64_zero(p)), 13), mask), magic);
}

export function mm_f16(g0: i32, g1: i32, w: usize, x: usize, out: usize, n: i32, colsPad: i32, rowLimit: i32, outStride: i32): void {
  const magic = v128.load(C_F16MAGIC), hm = v128.load(C_HI16), mask = v128.load(C_F16MASK);
  const ws = <usize>colsPad << 1, xs = <usize>colsPad << 2;
  for (let g = g0; g < g1; g++) {
    const r0 = g << 2;
    const w0 = w + <usize>r0 * ws, w1 = w0 + ws, w2 = w1 + ws, w3 = w2 + ws;
    for (let t = 0; t < n; t++) {
      const xa = x + <usize>t * xs;
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
      for (let o: usize = 0; o < ws; o += 16) {
        const xo = o << 1;
        const p = v128.load(xa + xo), q = v128.load(xa + xo, 16);
        const ae = v128.shuffle<f32>(p, q, 0, 2, 4, 6), ao = v128.shuffle<f32>(p, q, 1, 3, 5, 7);
        let v = v128.load(w0 + o);
        a0 = fma(f16hi(v128.and(v, hm), mask, magic), ao, fma(f16hi(i32x4.shl(v, 16), mask, magic), ae, a0));
        v = v128.load(w1 + o);
        a1 = fma(f16hi(v128.and(v, hm), mask, magic), ao, fma(f16hi(i32x4.shl(v, 16), mask, magic), ae, a1));
        v = v128.load(w2 + o);
        a2 = fma(f16hi(v128.and(v, hm), mask, magic), ao, fma(f16hi(i32x4.shl(v, 16), mask, magic), ae, a2));
        v = v128.load(w3 + o);
        a3 = fma(f16hi(v128.and(v, hm), mask, magic), ao, fma(f16hi(i32x4.shl(v, 16), mask, magic), ae, a3));
      }
      storeRows(out, t, outStride, r0, rowLimit, a0, a1, a2, a3);
    }
  }
}

/** Decode `count` f16 values (count % 8 == 0) at src into f32 at dst. */
export function f16_to_f32(src: usize, dst: usize, count: i32): void {
  const magic = v128.load(C_F16MAGIC), m7fff = v128.load(C_7FFF), m8000 = v128.load(C_8000), m7c00 = v128.load(C_7C00), inf = v128.load(C_INF);
  for (let i = 0; i < count; i += 8) {
    const v = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), f16x4(i32x4.extend_low_i16x8_u(v), magic, m7fff, m8000, m7c00, inf));
    v128.store(dst + (<usize>i << 2), f16x4(i32x4.extend_high_i16x8_u(v), magic, m7fff, m8000, m7c00, inf), 16);
  }
}

/**
 * Encode f32 values [i0, i1) at src as f16 at dst, rounding to nearest even (subnormals, overflow
 * to infinity and NaN as IEEE 754 does): KV cache rows in f16.
 */
export function f32_to_f16(i0: i32, i1: i32, src: usize, dst: usize): void {
  for (let i = i0; i < i1; i++) {
    const x = load<u32>(src + (<usize>i << 2));
    const sign = (x >> 16) & 0x8000;
    const a = x & 0x7fffffff;
    let h: u32;
    if (a >= 0x7f800000) h = a > 0x7f800000 ? 0x7e00 : 0x7c00;
    else if (a >= 0x477ff000) h = 0x7c00; // >= 65520 rounds to infinity
    else if (a < 0x38800000) h = <u32>nearest(reinterpret<f32>(a) * <f32>16777216); // subnormal: x * 2^24, exact scaling, RNE
    else h = (a - 0x38000000 + 0xfff + ((a >> 13) & 1)) >> 13;
    store<u16>(dst + (<usize>i << 1), sign | h);
  }
}

// 4 f16 values (as the low or high half of v's i16 lanes, sign-extended to i32 lanes) -> f32x4,
// exactly: see scales4.
@inline function f16lo4(v: v128, mask: v128, magic: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(v), 13), mask), magic);
}
@inline function f16hi4(v: v128, mask: v128, magic: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(v), 13), mask), magic);
}

// ---------------------------------------------------------------- activation quantization
const C_ABS: usize = 416; // i32x4 splat 0x7fffffff
const C_MINN: usize = 432; // i32x4 splat 0x007fffff (largest subnormal bits)

/** x with subnormal lanes replaced by (signed) zero, using integer ops only. */
@inline function ftz(v: v128, abs: v128, minN: v128): v128 {
  return v128.and(v, i32x4.gt_s(v128.and(v, abs), minN));
}

/** Flush subnormal values of x[0 : count) (count % 4 == 0) to zero, over vectors [v0, v1). */
export function flush_subnormals(v0: i32, v1: i32, x: usize): void {
  const abs = v128.load(C_ABS), minN = v128.load(C_MINN);
  for (let i = v0; i < v1; i++) {
    const p = x + (<usize>i << 4);
    v128.store(p, ftz(v128.load(p), abs, minN));
  }
}
// x: [n, colsPad] f32. Per token t and block b of 32 values: xd[t*nb+b] = amax/127,
// xq16[t*cols + i] (i16), xq8[t*cols + i] (i8), xs[t*nb+b] = sum of the block's quants (i32).
export function quantize_x(g0: i32, g1: i32, x: usize, colsPad: i32, cols: i32, xq16: usize, xq8: usize, xd: usize, xs: usize, xh: usize): void {
  const nb = cols >> 5;
  const abs = v128.load(C_ABS), minN = v128.load(C_MINN);
  for (let t = g0; t < g1; t++) {
    const xr = x + ((<usize>t * <usize>colsPad) << 2);
    for (let b = 0; b < nb; b++) {
      const p = xr + (<usize>b << 7);
      // subnormal activations are flushed to zero with integer ops first: x86 takes a microcode
      // assist for every subnormal operand of a float multiply (100x slower)
      const v0 = ftz(v128.load(p), abs, minN), v1 = ftz(v128.load(p, 16), abs, minN), v2 = ftz(v128.load(p, 32), abs, minN), v3 = ftz(v128.load(p, 48), abs, minN);
      const v4 = ftz(v128.load(p, 64), abs, minN), v5 = ftz(v128.load(p, 80), abs, minN), v6 = ftz(v128.load(p, 96), abs, minN), v7 = ftz(v128.load(p, 112), abs, minN);
      let m = f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3)));
      m = f32x4.max(m, f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
      let amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
      if (amax < <f32>1e-30) amax = 0; // keeps d and every product with it normal (or zero)
      const d: f32 = amax / 127;
      const id: f32 = amax > 0 ? <f32>127 / amax : 0;
      const s = f32x4.splat(id);
      const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v0, s)));
      const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v1, s)));
      const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v2, s)));
      const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v3, s)));
      const q4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v4, s)));
      const q5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v5, s)));
      const q6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v6, s)));
      const q7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v7, s)));
      const n0 = i16x8.narrow_i32x4_s(q0, q1), n1 = i16x8.narrow_i32x4_s(q2, q3);
      const n2 = i16x8.narrow_i32x4_s(q4, q5), n3 = i16x8.narrow_i32x4_s(q6, q7);
      const o16 = xq16 + ((<usize>t * <usize>cols + (<usize>b << 5)) << 1);
      const o8 = xq8 + <usize>t * <usize>cols + (<usize>b << 5);
      const b0 = i8x16.narrow_i16x8_s(n0, n1), b1 = i8x16.narrow_i16x8_s(n2, n3);
      v128.store(o8, b0); v128.store(o8, b1, 16);
      if (ASC_FEATURE_RELAXED_SIMD) {
        // the relaxed build's xq16 area holds max(q, 0) and max(-q, 0) as i8 (32 bytes each): both
        // are valid "i7" operands of the relaxed dot product, which Q8_0's signed weights need
        const z = v128.load(C_ZERO);
        const p0 = i8x16.max_s(b0, z), p1 = i8x16.max_s(b1, z);
        v128.store(o16, p0); v128.store(o16, p1, 16);
        v128.store(o16, i8x16.sub(p0, b0), 32); v128.store(o16, i8x16.sub(p1, b1), 48);
      } else {
        v128.store(o16, n0); v128.store(o16, n1, 16); v128.store(o16, n2, 32); v128.store(o16, n3, 48);
      }
      const s0 = i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3));
      const s1 = i32x4.add(i32x4.add(q4, q5), i32x4.add(q6, q7));
      const h0 = i32x4.extract_lane(s0, 0) + i32x4.extract_lane(s0, 1) + i32x4.extract_lane(s0, 2) + i32x4.extract_lane(s0, 3);
      const h1 = i32x4.extract_lane(s1, 0) + i32x4.extract_lane(s1, 1) + i32x4.extract_lane(s1, 2) + i32x4.extract_lane(s1, 3);
      const bi = <usize>t * <usize>nb + <usize>b;
      store<f32>(xd + (bi << 2), d);
      store<i32>(xs + (bi << 2), h0 + h1);
      store<i32>(xh + (bi << 3), h0);
      store<i32>(xh + (bi << 3), h1, 4);
    }
  }
}

// ---------------------------------------------------------------- Q8_0
// Repacked layout per 4-row group and block b (136 bytes, ggml's own 4 x 34): f16 d[4], then 4 x 32 i8
// (row r at 8 + 32r).
@inline function dotQ8(wp: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const lo = v128.load(wp), hi = v128.load(wp, 16);
  const s0 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(lo), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(lo), x1));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(hi), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(hi), x3));
  return i32x4.add(s0, s1);
}

@inline function dotQ8r(w0: v128, w1: v128, pa: v128, pb: v128, na: v128, nb: v128): v128 {
  const d0 = i16x8.sub(i16x8.relaxed_dot_i8x16_i7x16_s(w0, pa), i16x8.relaxed_dot_i8x16_i7x16_s(w0, na));
  const d1 = i16x8.sub(i16x8.relaxed_dot_i8x16_i7x16_s(w1, pb), i16x8.relaxed_dot_i8x16_i7x16_s(w1, nb));
  return i32x4.add(i32x4.extadd_pairwise_i16x8_s(d0), i32x4.extadd_pairwise_i16x8_s(d1));
}

export function mm_q8_0(g0: i32, g1: i32, w: usize, xq16: usize, xd: usize, out: usize, n: i32, nb: i32, rowLimit: i32, outStride: i32): void {
  const gs = <usize>nb * 136;
  const mask = v128.load(C_F16MASK), magic = v128.load(C_F16MAGIC);
  for (let g = g0; g < g1; g++) {
    const r0 = g << 2;
    const wg = w + <usize>g * gs;
    if (ASC_FEATURE_RELAXED_SIMD) {
      // w . q = w . max(q, 0) - w . max(-q, 0): two relaxed dots (pmaddubsw) with an i7 operand
      // each. Their i16 difference is the exact pair sum w0 q0 + w1 q1 (|.| <= 2 * 127 * 127 fits
      // i16, and i16 arithmetic wraps), so no sign extension of the weights is needed.
      const wEnd = wg + gs;
      for (let t = 0; t < n; t++) {
        let xb = xq16 + ((<usize>t * <usize>nb) << 6);
        let dp = xd + ((<usize>t * <usize>nb) << 2);
        let acc = f32x4.splat(0);
        for (let wb = wg; wb < wEnd; wb += 136) {
          const pa = v128.load(xb), pb = v128.load(xb, 16), na = v128.load(xb, 32), nb2 = v128.load(xb, 48);
          const s = reduce4(
            dotQ8r(v128.load(wb, 8), v128.load(wb, 24), pa, pb, na, nb2),
            dotQ8r(v128.load(wb, 40), v128.load(wb, 56), pa, pb, na, nb2),
            dotQ8r(v128.load(wb, 72), v128.load(wb, 88), pa, pb, na, nb2),
            dotQ8r(v128.load(wb, 104), v128.load(wb, 120), pa, pb, na, nb2),
          );
          acc = fma(f32x4.convert_i32x4_s(s), f32x4.mul(scales4(wb, mask, magic), v128.load32_splat(dp)), acc);
          xb += 64;
          dp += 4;
        }
        store4(out, t, outStride, r0, rowLimit, acc);
      }
      continue;
    }
    for (let t = 0; t < n; t++) {
      const xt = xq16 + ((<usize>t * <usize>nb) << 6);
      const dt = xd + ((<usize>t * <usize>nb) << 2);
      let acc = f32x4.splat(0);
      for (let b = 0; b < nb; b++) {
        const wb = wg + <usize>b * 136;
        const xb = xt + (<usize>b << 6);
        const x0 = v128.load(xb), x1 = v128.load(xb, 16), x2 = v128.load(xb, 32), x3 = v128.load(xb, 48);
        const s = reduce4(dotQ8(wb + 8, x0, x1, x2, x3), dotQ8(wb + 40, x0, x1, x2, x3), dotQ8(wb + 72, x0, x1, x2, x3), dotQ8(wb + 104, x0, x1, x2, x3));
        const sc = f32x4.mul(scales4(wb, mask, magic), f32x4.splat(load<f32>(dt + (<usize>b << 2))));
        acc = fma(f32x4.convert_i32x4_s(s), sc, acc);
      }
      store4(out, t, outStride, r0, rowLimit, acc);
    }
  }
}

// ---------------------------------------------------------------- Q4_0
// Repacked layout per 4-row group and block b (72 bytes, ggml's own 4 x 18): f16 d[4], then 4 x 16
// nibble bytes (row r at 8 + 16r; ggml order: low nibble = element j, high nibble = element j + 16).
export function mm_q4_0(g0: i32, g1: i32, w: usize, xq16: usize, xq8: usize, xd: usize, xs: usize, out: usize, n: i32, nb: i32, rowLimit: i32, outStride: i32): void {
  const m0f = v128.load(C_0F);
  const mask = v128.load(C_F16MASK), magic = v128.load(C_F16MAGIC);
  const gs = <usize>nb * 72;
  if (ASC_FEATURE_RELAXED_SIMD) {
    // x (i8) . nibble (u4, the "i7" operand): i16x8 relaxed dot (one pmaddubsw), the four rows'
    // i16 sums folded together before one widening (sumRows16). Pointers advance by increments:
    // neither Binaryen nor V8 strength-reduces b * 72 and the recomputation costs ~10 scalar
    // instructions per block.
    // (V8 11.3 computes i32x4.relaxed_dot_i8x16_i7x16_add_s wrongly: it doubles the dot product and
    // drops the addend, so only the i16x8 form is used.)
    for (let g = g0; g < g1; g++) {
      const r0 = g << 2;
      const wg = w + <usize>g * gs;
      const wEnd = wg + gs;
      let t = 0;
      // four tokens at a time: each block's nibbles are unpacked once and used for all four
      // (prefill and batched decoding): +7% over one at a time, +6% over two, although V8 spills
      // part of the unpacked weights to the stack.
      const xStride = <usize>nb << 5, sStride = <usize>nb << 2;
      for (; t + 3 < n; t += 4) {
        let xb = xq8 + <usize>t * xStride;
        let dp = xd + <usize>t * sStride;
        let sp = xs + <usize>t * sStride;
        let acc0 = f32x4.splat(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        for (let wb = wg; wb < wEnd; wb += 72) {
          const v0 = v128.load(wb, 8), v1 = v128.load(wb, 24), v2 = v128.load(wb, 40), v3 = v128.load(wb, 56);
          const lo0 = v128.and(v0, m0f), hi0 = hi4(v0, m0f), lo1 = v128.and(v1, m0f), hi1 = hi4(v1, m0f);
          const lo2 = v128.and(v2, m0f), hi2 = hi4(v2, m0f), lo3 = v128.and(v3, m0f), hi3 = hi4(v3, m0f);
          const sc = scales4(wb, mask, magic);
          acc0 = fma(f32x4.convert_i32x4_s(q4Token(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, xb, sp)), f32x4.mul(sc, v128.load32_splat(dp)), acc0);
          acc1 = fma(f32x4.convert_i32x4_s(q4Token(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, xb + xStride, sp + sStride)), f32x4.mul(sc, v128.load32_splat(dp + sStride)), acc1);
          acc2 = fma(f32x4.convert_i32x4_s(q4Token(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, xb + 2 * xStride, sp + 2 * sStride)), f32x4.mul(sc, v128.load32_splat(dp + 2 * sStride)), acc2);
          acc3 = fma(f32x4.convert_i32x4_s(q4Token(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, xb + 3 * xStride, sp + 3 * sStride)), f32x4.mul(sc, v128.load32_splat(dp + 3 * sStride)), acc3);
          xb += 32;
          dp += 4;
          sp += 4;
        }
        store4x4(out, t, outStride, r0, rowLimit, acc0, acc1, acc2, acc3);
      }
      for (; t < n; t++) {
        let xb = xq8 + ((<usize>t * <usize>nb) << 5);
        let dp = xd + ((<usize>t * <usize>nb) << 2);
        let sp = xs + ((<usize>t * <usize>nb) << 2);
        let acc = f32x4.splat(0);
        for (let wb = wg; wb < wEnd; wb += 72) {
          const xl = v128.load(xb), xh = v128.load(xb, 16);
          const s = i32x4.sub(
            sumRows16(dotQ4r16(v128.load(wb, 8), m0f, xl, xh), dotQ4r16(v128.load(wb, 24), m0f, xl, xh), dotQ4r16(v128.load(wb, 40), m0f, xl, xh), dotQ4r16(v128.load(wb, 56), m0f, xl, xh)),
            i32x4.shl(v128.load32_splat(sp), 3),
          );
          acc = fma(f32x4.convert_i32x4_s(s), f32x4.mul(scales4(wb, mask, magic), v128.load32_splat(dp)), acc);
          xb += 32;
          dp += 4;
          sp += 4;
        }
        store4(out, t, outStride, r0, rowLimit, acc);
      }
    }
  } else {
    const m8 = v128.load(C_8);
    for (let g = g0; g < g1; g++) {
      const r0 = g << 2;
      const wg = w + <usize>g * gs;
      for (let t = 0; t < n; t++) {
        const xt = xq16 + ((<usize>t * <usize>nb) << 6);
        const dt = xd + ((<usize>t * <usize>nb) << 2);
        let acc = f32x4.splat(0);
        for (let b = 0; b < nb; b++) {
          const wb = wg + <usize>b * 72;
          const xb = xt + (<usize>b << 6);
          const x0 = v128.load(xb), x1 = v128.load(xb, 16), x2 = v128.load(xb, 32), x3 = v128.load(xb, 48);
          const s = reduce4(dotQ4(wb + 8, m0f, m8, x0, x1, x2, x3), dotQ4(wb + 24, m0f, m8, x0, x1, x2, x3), dotQ4(wb + 40, m0f, m8, x0, x1, x2, x3), dotQ4(wb + 56, m0f, m8, x0, x1, x2, x3));
          const sc = f32x4.mul(scales4(wb, mask, magic), f32x4.splat(load<f32>(dt + (<usize>b << 2))));
          acc = fma(f32x4.convert_i32x4_s(s), sc, acc);
        }
        store4(out, t, outStride, r0, rowLimit, acc);
      }
    }
  }
}

// High nibbles of 16 bytes. i8x16.shr_u has no x86 instruction: V8 emits a 16-bit shift and then
// builds a byte mask from an immediate (5 instructions); with the mask already in a register
// the 16-bit shift and one AND do the same in 2.
@inline function hi4(v: v128, m0f: v128): v128 {
  return v128.and(i16x8.shr_u(v, 4), m0f);
}

// sum over the block of x[i] * nibble[i] (unsigned nibbles), as i16x8 partial sums: each lane
// adds 4 products, |lane| <= 4 * 15 * 127 = 7620.
// (v: the loaded weight bytes; loads keep constant offsets as immediates so that V8 folds them
// into the address instead of computing each one.)
@inline function dotQ4r16(v: v128, m0f: v128, xl: v128, xh: v128): v128 {
  return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xl, v128.and(v, m0f)), i16x8.relaxed_dot_i8x16_i7x16_s(xh, hi4(v, m0f)));
}

// One token's block sums sum(x * nibble) for 4 rows from unpacked nibbles (lo_r: values 0..15 of
// row r, hi_r: 16..31), x the block's 32 i8 activations at xb.
@inline function nibbleRowSums(lo0: v128, hi0: v128, lo1: v128, hi1: v128, lo2: v128, hi2: v128, lo3: v128, hi3: v128, xb: usize): v128 {
  const xl = v128.load(xb), xh = v128.load(xb, 16);
  const s0 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xl, lo0), i16x8.relaxed_dot_i8x16_i7x16_s(xh, hi0));
  const s1 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xl, lo1), i16x8.relaxed_dot_i8x16_i7x16_s(xh, hi1));
  const s2 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xl, lo2), i16x8.relaxed_dot_i8x16_i7x16_s(xh, hi2));
  const s3 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xl, lo3), i16x8.relaxed_dot_i8x16_i7x16_s(xh, hi3));
  return sumRows16(s0, s1, s2, s3);
}

// Q4_0: sum(x * (nibble - 8)) per row = nibbleRowSums - 8 * sum(x).
@inline function q4Token(lo0: v128, hi0: v128, lo1: v128, hi1: v128, lo2: v128, hi2: v128, lo3: v128, hi3: v128, xb: usize, sp: usize): v128 {
  return i32x4.sub(nibbleRowSums(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, xb), i32x4.shl(v128.load32_splat(sp), 3));
}

// Four tokens' results of one 4-row group.
@inline function store4x4(out: usize, t: i32, outStride: i32, r0: i32, rowLimit: i32, a0: v128, a1: v128, a2: v128, a3: v128): void {
  store4(out, t, outStride, r0, rowLimit, a0);
  store4(out, t + 1, outStride, r0, rowLimit, a1);
  store4(out, t + 2, outStride, r0, rowLimit, a2);
  store4(out, t + 3, outStride, r0, rowLimit, a3);
}

// [sum of row 0's lanes, ..., row 3's] of four i16x8 vectors with |lane| <= 16383: pairs are
// added in i16, then widened.
@inline function sumRows16w(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const a01 = i32x4.extadd_pairwise_i16x8_s(i16x8.add(v128.shuffle<i32>(s0, s1, 0, 4, 1, 5), v128.shuffle<i32>(s0, s1, 2, 6, 3, 7)));
  const a23 = i32x4.extadd_pairwise_i16x8_s(i16x8.add(v128.shuffle<i32>(s2, s3, 0, 4, 1, 5), v128.shuffle<i32>(s2, s3, 2, 6, 3, 7)));
  return i32x4.add(v128.shuffle<i64>(a01, a23, 0, 2), v128.shuffle<i64>(a01, a23, 1, 3));
}

// [sum of row 0's lanes, ..., row 3's] of four i16x8 vectors, adding in i16 until the last step:
// each final i16 lane adds 4 input lanes, so inputs need |lane| <= 8191.
@inline function sumRows16(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const a01 = i16x8.add(v128.shuffle<i32>(s0, s1, 0, 4, 1, 5), v128.shuffle<i32>(s0, s1, 2, 6, 3, 7));
  const a23 = i16x8.add(v128.shuffle<i32>(s2, s3, 0, 4, 1, 5), v128.shuffle<i32>(s2, s3, 2, 6, 3, 7));
  return i32x4.extadd_pairwise_i16x8_s(i16x8.add(v128.shuffle<i64>(a01, a23, 0, 2), v128.shuffle<i64>(a01, a23, 1, 3)));
}


@inline function dotQ4(wp: usize, m0f: v128, m8: v128, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const v = v128.load(wp);
  const lo = i8x16.sub(v128.and(v, m0f), m8), hi = i8x16.sub(hi4(v, m0f), m8);
  const s0 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(lo), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(lo), x1));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(hi), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(hi), x3));
  return i32x4.add(s0, s1);
}

// ---------------------------------------------------------------- element-wise
const C_LOG2E: usize = 128;
const C_LN2HI: usize = 144;
const C_LN2LO: usize = 160;
const C_P2: usize = 176; // 1/2
const C_P3: usize = 192; // 1/6
const C_P4: usize = 208; // 1/24
const C_P5: usize = 224; // 1/120
const C_P6: usize = 240; // 1/720
const C_ONE: usize = 256;
const C_127: usize = 272; // i32
const C_XMAX: usize = 288; // 88
const C_XMIN: usize = 304; // -87
const C_GELU_K2: usize = 320; // -2 * sqrt(2/pi)
const C_GELU_C: usize = 336; // 0.044715

// e^x for f32x4 (x clamped to [-87, 88]); relative error < 3e-7.
@inline function exp4(x0: v128, log2e: v128, ln2hi: v128, ln2lo: v128, p2: v128, p3: v128, p4: v128, p5: v128, p6: v128, one: v128, i127: v128, xmax: v128, xmin: v128): v128 {
  const x = f32x4.max(f32x4.min(x0, xmax), xmin);
  const n = f32x4.nearest(f32x4.mul(x, log2e));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(n, ln2hi)), f32x4.mul(n, ln2lo));
  let p = f32x4.add(f32x4.mul(p6, r), p5);
  p = f32x4.add(f32x4.mul(p, r), p4);
  p = f32x4.add(f32x4.mul(p, r), p3);
  p = f32x4.add(f32x4.mul(p, r), p2);
  p = f32x4.add(f32x4.mul(p, r), one);
  p = f32x4.add(f32x4.mul(p, r), one);
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i127), 23);
  return f32x4.mul(p, scale);
}

/** gate[i] = gelu_tanh(gate[i]) * up[i] over vectors [v0, v1) (4 values each), as g * sigmoid(2y). */
export function gelu_mul(v0: i32, v1: i32, gate: usize, up: usize): void {
  const log2e = v128.load(C_LOG2E), ln2hi = v128.load(C_LN2HI), ln2lo = v128.load(C_LN2LO);
  const p2 = v128.load(C_P2), p3 = v128.load(C_P3), p4 = v128.load(C_P4), p5 = v128.load(C_P5), p6 = v128.load(C_P6);
  const one = v128.load(C_ONE), i127 = v128.load(C_127), xmax = v128.load(C_XMAX), xmin = v128.load(C_XMIN);
  const k2 = v128.load(C_GELU_K2), c = v128.load(C_GELU_C);
  for (let i = v0; i < v1; i++) {
    const p = gate + (<usize>i << 4);
    const g = v128.load(p);
    const g2 = f32x4.mul(g, g);
    const y2 = f32x4.mul(k2, f32x4.add(g, f32x4.mul(c, f32x4.mul(g2, g)))); // -2y
    const e = exp4(y2, log2e, ln2hi, ln2lo, p2, p3, p4, p5, p6, one, i127, xmax, xmin);
    const u = v128.load(up + (<usize>i << 4));
    v128.store(p, f32x4.div(f32x4.mul(g, u), f32x4.add(one, e)));
  }
}

/**
 * The LM head's scoring reduction for rows [r0, r1) of a logits area (row r at logits + r * stride
 * floats, `vocab` values each): out[2r] = log softmax(row)[targets[r]], out[2r + 1] = the row's
 * argmax (its first maximum). The max pass keeps each lane's first maximum and its index; the
 * exp pass sums exp(x - max) in f32 over 64-value blocks and the blocks in f64 (relative error of
 * the sum ~1e-6 over 256k values). Arguments below -80 add 0, as in expSum.
 */
export function log_probs(r0: i32, r1: i32, logits: usize, vocab: i32, stride: i32, targets: usize, out: usize): void {
  const log2e = v128.load(C_LOG2E), ln2hi = v128.load(C_LN2HI), ln2lo = v128.load(C_LN2LO);
  const p2 = v128.load(C_P2), p3 = v128.load(C_P3), p4 = v128.load(C_P4), p5 = v128.load(C_P5), p6 = v128.load(C_P6);
  const one = v128.load(C_ONE), i127 = v128.load(C_127), xmax = v128.load(C_XMAX), xmin = v128.load(C_XMIN);
  const lim = f32x4.splat(-80);
  const nv = vocab >> 2;
  for (let r = r0; r < r1; r++) {
    const row = logits + ((<usize>r * <usize>stride) << 2);
    // max and first argmax
    let mv = f32x4.splat(-Infinity);
    let iv = i32x4(0, 1, 2, 3);
    let cur = iv;
    const four = i32x4.splat(4);
    for (let i = 0; i < nv; i++) {
      const x = v128.load(row + (<usize>i << 4));
      const gt = f32x4.gt(x, mv);
      mv = v128.bitselect(x, mv, gt);
      iv = v128.bitselect(cur, iv, gt);
      cur = i32x4.add(cur, four);
    }
    let m: f32 = -Infinity;
    let arg: i32 = 0;
    for (let l = 0; l < 4; l++) {
      const x = l == 0 ? f32x4.extract_lane(mv, 0) : l == 1 ? f32x4.extract_lane(mv, 1) : l == 2 ? f32x4.extract_lane(mv, 2) : f32x4.extract_lane(mv, 3);
      const j = l == 0 ? i32x4.extract_lane(iv, 0) : l == 1 ? i32x4.extract_lane(iv, 1) : l == 2 ? i32x4.extract_lane(iv, 2) : i32x4.extract_lane(iv, 3);
      if (l < vocab && (x > m || (x == m && j < arg))) {
        m = x;
        arg = j;
      }
    }
    for (let i = nv << 2; i < vocab; i++) {
      const x = load<f32>(row + (<usize>i << 2));
      if (x > m) {
        m = x;
        arg = i;
      }
    }
    // sum of exp(x - m)
    const mm = f32x4.splat(m);
    let total: f64 = 0;
    let i = 0;
    while (i < nv) {
      const end = min(nv, i + 16);
      let lv = f32x4.splat(0);
      for (; i < end; i++) {
        const d = f32x4.sub(v128.load(row + (<usize>i << 4)), mm);
        lv = f32x4.add(lv, v128.andnot(exp4(d, log2e, ln2hi, ln2lo, p2, p3, p4, p5, p6, one, i127, xmax, xmin), f32x4.lt(d, lim)));
      }
      const lo = f64x2.promote_low_f32x4(lv), hi = f64x2.promote_low_f32x4(v128.shuffle<f32>(lv, lv, 2, 3, 0, 1));
      const s = f64x2.add(lo, hi);
      total += f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
    }
    for (let j = nv << 2; j < vocab; j++) total += Math.exp(<f64>(load<f32>(row + (<usize>j << 2)) - m));
    const t = load<i32>(targets + (<usize>r << 2));
    const lse = <f64>m + Math.log(total);
    store<f32>(out + (<usize>r << 3), <f32>(<f64>load<f32>(row + (<usize>t << 2)) - lse));
    store<f32>(out + (<usize>r << 3), <f32>arg, 4);
  }
}

const C_TANH_SMALL: usize = 448; // f32x4 splat 0.3125

/**
 * tanh of 4 lanes: (1 - e) / (1 + e) with e = exp(-2|y|), and an odd Taylor polynomial below
 * |y| < 0.3125 where 1 - e would cancel (relative error < 1e-6 everywhere). Constants are loaded
 * here (a few extra loads per vector) so that callers stay short.
 */
@inline function tanh4(y: v128): v128 {
  const abs = v128.load(C_ABS), one = v128.load(C_ONE);
  const ay = v128.and(y, abs);
  const e = exp4(f32x4.mul(ay, f32x4.splat(-2)), v128.load(C_LOG2E), v128.load(C_LN2HI), v128.load(C_LN2LO), v128.load(C_P2), v128.load(C_P3), v128.load(C_P4), v128.load(C_P5), v128.load(C_P6), one, v128.load(C_127), v128.load(C_XMAX), v128.load(C_XMIN));
  const big = f32x4.div(f32x4.sub(one, e), f32x4.add(one, e));
  const y2 = f32x4.mul(ay, ay);
  let q = f32x4.add(f32x4.mul(f32x4.splat(<f32>(-1382.0 / 155925)), y2), f32x4.splat(<f32>(62.0 / 2835)));
  q = f32x4.add(f32x4.mul(q, y2), f32x4.splat(<f32>(-17.0 / 315)));
  q = f32x4.add(f32x4.mul(q, y2), f32x4.splat(<f32>(2.0 / 15)));
  q = f32x4.add(f32x4.mul(q, y2), f32x4.splat(<f32>(-1.0 / 3)));
  const sm = f32x4.add(ay, f32x4.mul(f32x4.mul(ay, y2), q));
  const t = v128.bitselect(sm, big, f32x4.lt(ay, v128.load(C_TANH_SMALL)));
  return v128.or(t, v128.andnot(y, abs)); // the sign of y
}

/** x[i] = cap * tanh(x[i] / cap) over vectors [v0, v1) (4 values each): the final-logit soft-cap. */
export function softcap_vec(v0: i32, v1: i32, x: usize, cap: f32): void {
  const c = f32x4.splat(cap), ic = f32x4.splat(<f32>1 / cap);
  for (let i = v0; i < v1; i++) {
    const p = x + (<usize>i << 4);
    v128.store(p, f32x4.mul(tanh4(f32x4.mul(v128.load(p), ic)), c));
  }
}

// ---------------------------------------------------------------- attention
@inline function hmax(v: v128): f32 {
  const s = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return max(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

// Soft-cap a score row in place (keeping -inf; cap 0 = none) and return its maximum.
@inline function capMax(sr: usize, rowBytes: usize, cap: f32): f32 {
  const ninf = f32x4.splat(-Infinity);
  const capv = f32x4.splat(cap), icap = f32x4.splat(cap > 0 ? <f32>1 / cap : 0);
  let mv = ninf;
  for (let i: usize = 0; i < rowBytes; i += 16) {
    let x = v128.load(sr + i);
    if (cap > 0) {
      x = v128.bitselect(ninf, f32x4.mul(tanh4(f32x4.mul(x, icap)), capv), f32x4.eq(x, ninf));
      v128.store(sr + i, x);
    }
    mv = f32x4.max(mv, x);
  }
  return hmax(mv);
}

// Replace a score row by exp(score - m) and return the sum; m finite. Arguments below -80 give 0:
// subnormal weights in the p * v products would cost x86 a microcode assist per lane (100x
// slower) and change nothing at f32 precision. A row with no finite score (m = -inf) is zeroed.
function expSum(sr: usize, rowBytes: usize, m: f32): f32 {
  const zero = v128.load(C_ZERO);
  if (m == -Infinity) {
    for (let i: usize = 0; i < rowBytes; i += 16) v128.store(sr + i, zero);
    return 0;
  }
  const mm = f32x4.splat(m), lim = f32x4.splat(-80);
  let lv = zero;
  for (let i: usize = 0; i < rowBytes; i += 16) {
    const d = f32x4.sub(v128.load(sr + i), mm);
    const e = v128.andnot(exp4(d, v128.load(C_LOG2E), v128.load(C_LN2HI), v128.load(C_LN2LO), v128.load(C_P2), v128.load(C_P3), v128.load(C_P4), v128.load(C_P5), v128.load(C_P6), v128.load(C_ONE), v128.load(C_127), v128.load(C_XMAX), v128.load(C_XMIN)), f32x4.lt(d, lim));
    v128.store(sr + i, e);
    lv = f32x4.add(lv, e);
  }
  return hsum(lv);
}

/**
 * Attention for units [u0, u1) of (token, head group) pairs, u = t * (nHeads / hpu) + g: the
 * hpu query heads g * hpu .. g * hpu + hpu - 1 (hpu divides nHeads / nKvHeads, so they share
 * one KV head) run together, so each visible K row is read from memory once per unit.
 * Three passes per unit: scores q.k * scale of every visible slot into this thread's score rows
 * (-inf elsewhere); per head, soft-cap, max and exp vectorized over the slots; then the
 * probability-weighted sum of V rows, added into the output rows (in L1) two or four visible
 * slots at a time. With an even hpu and headDim % 8 == 0 the heads go in pairs (dot2 / axpy2).
 * ml (the pool passes at most 14 arguments): i32 hpu, i32 score area, i32 score bytes per thread
 * (hpu rows of nSlots rounded up to 4, then 5 rows of headDim and hpu floats), i32 1 when k / v
 * hold f16 values (the f16 KV cache), 0 for f32.
 * headDim % 4 == 0. q, out: [nTokens, nHeads * headDim]; k, v: [nSlots, nKvHeads * headDim];
 * qpos: i32[nTokens]; spos: i32[nSlots] (-1 = empty). Key s is visible from query t when
 * 0 <= spos[s] <= qpos[t] and qpos[t] - spos[s] < window.
 */
export function attention(u0: i32, u1: i32, q: usize, k: usize, v: usize, out: usize, qpos: usize, spos: usize, nSlots: i32, nHeads: i32, nKvHeads: i32, headDim: i32, window: i32, scale: f32, cap: f32, ml: usize): void {
  const hpu = load<i32>(ml);
  const sc0 = <usize>load<i32>(ml, 4) + <usize>THREAD * <usize>load<i32>(ml, 8);
  const f16 = load<i32>(ml, 12) != 0; // k / v hold f16 (2 bytes per value) instead of f32
  const es: usize = f16 ? 1 : 2; // log2 of the element size
  const mask = v128.load(C_F16MASK), magic = v128.load(C_F16MAGIC);
  const nPad = (nSlots + 3) & ~3;
  const rowBytes = <usize>nPad << 2;
  const group = nHeads / nKvHeads;
  const nu = nHeads / hpu;
  const hb = <usize>headDim << 2;
  const kvStride = <usize>(nKvHeads * headDim) << es;
  const zero = v128.load(C_ZERO);
  // an even number of heads per unit (GQA / MQA) with headDim % 8 == 0: passes 1 and 3 take the
  // heads in pairs, each loaded (f16: widened) K / V value used for both in registers
  const fused2 = (hpu & 1) == 0 && (headDim & 7) == 0;
  for (let u = u0; u < u1; u++) {
    const t = u / nu, h0 = (u % nu) * hpu;
    const qp = load<i32>(qpos + (<usize>t << 2));
    const row0 = <usize>t * <usize>nHeads + <usize>h0;
    const q0 = q + row0 * hb;
    const o0 = out + row0 * hb;
    const kvo = <usize>(h0 / group) * (<usize>headDim << es);
    // f32 rows after the scores: [0] one K row, [1..4] four V rows (an f16 cache's rows are
    // widened once per unit and then used by all of its heads), then 1 / l per head
    const tmp = sc0 + <usize>hpu * rowBytes;
    const invp = tmp + 5 * hb;
    // pass 1: scores
    for (let s = 0; s < nPad; s++) {
      const kp = s < nSlots ? load<i32>(spos + (<usize>s << 2)) : -1;
      if (kp < 0 || kp > qp || qp - kp >= window) {
        for (let j = 0; j < hpu; j++) store<f32>(sc0 + <usize>j * rowBytes + (<usize>s << 2), -Infinity);
        continue;
      }
      let kr = k + <usize>s * kvStride + kvo;
      if (fused2) {
        // heads in pairs: each loaded (f16: widened) 8 values serve both heads of a pair in
        // registers (no widened row stored and reloaded: those loops were bound by loads and
        // stores, not math)
        for (let j = 0; j < hpu; j += 2) {
          const qa = q0 + <usize>j * hb, da = sc0 + <usize>j * rowBytes + (<usize>s << 2);
          if (f16) dot2<u16>(kr, qa, qa + hb, hb, mask, magic, da, da + rowBytes, scale);
          else dot2<f32>(kr, qa, qa + hb, hb, mask, magic, da, da + rowBytes, scale);
        }
        continue;
      }
      if (f16) {
        widenRow(kr, tmp, hb, mask, magic);
        kr = tmp;
      }
      for (let j = 0; j < hpu; j++) {
        const qr = q0 + <usize>j * hb;
        let a0 = zero, a1 = zero;
        let o: usize = 0;
        for (; o + 32 <= hb; o += 32) {
          a0 = fma(v128.load(qr + o), v128.load(kr + o), a0);
          a1 = fma(v128.load(qr + o, 16), v128.load(kr + o, 16), a1);
        }
        if (o < hb) a0 = fma(v128.load(qr + o), v128.load(kr + o), a0);
        store<f32>(sc0 + <usize>j * rowBytes + (<usize>s << 2), hsum(f32x4.add(a0, a1)) * scale);
      }
    }
    // pass 2, per head: soft-cap, max, probabilities (1 / l kept for the end)
    for (let j = 0; j < hpu; j++) {
      const sr = sc0 + <usize>j * rowBytes;
      const m = capMax(sr, rowBytes, cap);
      store<f32>(invp + (<usize>j << 2), m == -Infinity ? 0 : <f32>1 / expSum(sr, rowBytes, m));
    }
    // pass 3: out_j = sum_s p_js v_s / l_j. V rows are read whole and in order, 4 slots at a time,
    // accumulated into the output rows (which stay in L1): walking 32 columns at a time down the
    // slots instead strides by the cache row, slower. f32 cache: per head, over its own visible
    // slots. f16 cache: slots visible to any head of the unit, each V row widened once for all.
    const vb = v + kvo;
    const ub = <usize>hpu * hb;
    for (let i: usize = 0; i < ub; i += 16) v128.store(o0 + i, zero);
    if (!f16 && !fused2) {
      for (let j = 0; j < hpu; j++) {
        const sr = sc0 + <usize>j * rowBytes;
        const orow = o0 + <usize>j * hb;
        let s = 0;
        for (;;) {
          let n4 = 0;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          let p0: f32 = 0, p1: f32 = 0, p2: f32 = 0, p3: f32 = 0;
          while (s < nSlots && n4 < 4) {
            const p = load<f32>(sr + (<usize>s << 2));
            if (p != 0) {
              if (n4 == 0) { s0 = s; p0 = p; } else if (n4 == 1) { s1 = s; p1 = p; } else if (n4 == 2) { s2 = s; p2 = p; } else { s3 = s; p3 = p; }
              n4++;
            }
            s++;
          }
          if (n4 == 0) break;
          // missing slots repeat s0 with weight 0
          if (n4 < 2) s1 = s0;
          if (n4 < 3) s2 = s0;
          if (n4 < 4) s3 = s0;
          const v0 = vb + <usize>s0 * kvStride, v1 = vb + <usize>s1 * kvStride, v2 = vb + <usize>s2 * kvStride, v3 = vb + <usize>s3 * kvStride;
          const w0 = f32x4.splat(p0), w1 = f32x4.splat(p1), w2 = f32x4.splat(p2), w3 = f32x4.splat(p3);
          for (let i: usize = 0; i < hb; i += 16) {
            const o = orow + i;
            v128.store(o, fma(w3, v128.load(v3 + i), fma(w2, v128.load(v2 + i), fma(w1, v128.load(v1 + i), fma(w0, v128.load(v0 + i), v128.load(o))))));
          }
          if (n4 < 4) break;
        }
      }
    }
    if (fused2) {
      // slots visible to any head of the unit, two at a time; each pair of V rows is read (f16:
      // widened) 8 values at a time in registers and added into a pair of heads' output rows
      let s = 0;
      for (;;) {
        let n2 = 0;
        let s0 = 0, s1 = 0;
        while (s < nSlots && n2 < 2) {
          const so = <usize>s << 2;
          let vis = false;
          for (let j = 0; j < hpu; j++) if (load<f32>(sc0 + <usize>j * rowBytes + so) != 0) vis = true;
          if (vis) {
            if (n2 == 0) s0 = s; else s1 = s;
            n2++;
          }
          s++;
        }
        if (n2 == 0) break;
        const pair = n2 == 2;
        const so0 = <usize>s0 << 2, so1 = <usize>s1 << 2;
        const vr0 = vb + <usize>s0 * kvStride;
        const vr1 = pair ? vb + <usize>s1 * kvStride : vr0;
        for (let j = 0; j < hpu; j += 2) {
          const sa = sc0 + <usize>j * rowBytes, sb = sa + rowBytes;
          const xa = f32x4.splat(load<f32>(sa + so0)), ya = f32x4.splat(pair ? load<f32>(sa + so1) : 0);
          const xb = f32x4.splat(load<f32>(sb + so0)), yb = f32x4.splat(pair ? load<f32>(sb + so1) : 0);
          const oa = o0 + <usize>j * hb;
          if (f16) axpy2<u16>(vr0, vr1, oa, oa + hb, true, hb, mask, magic, xa, ya, xb, yb);
          else axpy2<f32>(vr0, vr1, oa, oa + hb, true, hb, mask, magic, xa, ya, xb, yb);
        }
        if (!pair) break;
      }
    } else if (f16) {
      let s = 0;
      for (;;) {
        let n4 = 0;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        while (s < nSlots && n4 < 4) {
          let vis = false;
          for (let j = 0; j < hpu; j++) if (load<f32>(sc0 + <usize>j * rowBytes + (<usize>s << 2)) != 0) vis = true;
          if (vis) {
            if (n4 == 0) s0 = s; else if (n4 == 1) s1 = s; else if (n4 == 2) s2 = s; else s3 = s;
            n4++;
          }
          s++;
        }
        if (n4 == 0) break;
        // widen the (up to) 4 V rows once for all heads of the unit
        const t1 = tmp + hb, t2 = t1 + hb, t3 = t2 + hb, t4 = t3 + hb;
        widenRow(vb + <usize>s0 * kvStride, t1, hb, mask, magic);
        if (n4 > 1) widenRow(vb + <usize>s1 * kvStride, t2, hb, mask, magic);
        if (n4 > 2) widenRow(vb + <usize>s2 * kvStride, t3, hb, mask, magic);
        if (n4 > 3) widenRow(vb + <usize>s3 * kvStride, t4, hb, mask, magic);
        const v0 = t1, v1 = n4 > 1 ? t2 : t1, v2 = n4 > 2 ? t3 : t1, v3 = n4 > 3 ? t4 : t1;
        for (let j = 0; j < hpu; j++) {
          const sr = sc0 + <usize>j * rowBytes;
          const orow = o0 + <usize>j * hb;
          const p0 = load<f32>(sr + (<usize>s0 << 2));
          const p1: f32 = n4 > 1 ? load<f32>(sr + (<usize>s1 << 2)) : 0;
          const p2: f32 = n4 > 2 ? load<f32>(sr + (<usize>s2 << 2)) : 0;
          const p3: f32 = n4 > 3 ? load<f32>(sr + (<usize>s3 << 2)) : 0;
          if (p0 == 0 && p1 == 0 && p2 == 0 && p3 == 0) continue; // slots this head does not attend to
          const w0 = f32x4.splat(p0), w1 = f32x4.splat(p1), w2 = f32x4.splat(p2), w3 = f32x4.splat(p3);
          for (let i: usize = 0; i < hb; i += 16) {
            const o = orow + i;
            v128.store(o, fma(w3, v128.load(v3 + i), fma(w2, v128.load(v2 + i), fma(w1, v128.load(v1 + i), fma(w0, v128.load(v0 + i), v128.load(o))))));
          }
        }
        if (n4 < 4) break;
      }
    }
    for (let j = 0; j < hpu; j++) {
      const orow = o0 + <usize>j * hb;
      const inv = f32x4.splat(load<f32>(invp + (<usize>j << 2)));
      for (let i: usize = 0; i < hb; i += 16) v128.store(orow + i, f32x4.mul(v128.load(orow + i), inv));
    }
  }
}

// f16 row of hb / 2 bytes at src -> f32 row of hb bytes at dst (hb % 16 == 0).
@inline function widenRow(src: usize, dst: usize, hb: usize, mask: v128, magic: v128): void {
  let o: usize = 0;
  for (; o + 32 <= hb; o += 32) {
    const h = v128.load(src + (o >> 1));
    v128.store(dst + o, f16lo4(h, mask, magic));
    v128.store(dst + o, f16hi4(h, mask, magic), 16);
  }
  if (o < hb) v128.store(dst + o, f16lo4(v128.load64_zero(src + (o >> 1)), mask, magic));
}

// ---------------------------------------------------------------- attention split by slots
// Four K / V values of a cache row as f32: those at f32-byte offset o of the row (T = f32), or at
// o / 2 of an f16 row (T = u16), widened exactly.
@inline function kv4<T>(row: usize, o: usize, mask: v128, magic: v128): v128 {
  if (sizeof<T>() == 2) return f16lo4(v128.load64_zero(row + (o >> 1)), mask, magic);
  return v128.load(row + o);
}

// Scores of heads a and b (query rows qa, qb) against one K head row kg: dA / dB get q.k * scale.
@inline function dot2<T>(kg: usize, qa: usize, qb: usize, hb: usize, mask: v128, magic: v128, dA: usize, dB: usize, scale: f32): void {
  const zero = v128.load(C_ZERO);
  let a0 = zero, a1 = zero, b0 = zero, b1 = zero;
  for (let o: usize = 0; o < hb; o += 32) {
    const k0 = kv4<T>(kg, o, mask, magic), k1 = kv4<T>(kg, o + 16, mask, magic);
    a0 = fma(v128.load(qa + o), k0, a0);
    a1 = fma(v128.load(qa + o, 16), k1, a1);
    b0 = fma(v128.load(qb + o), k0, b0);
    b1 = fma(v128.load(qb + o, 16), k1, b1);
  }
  store<f32>(dA, hsum(f32x4.add(a0, a1)) * scale);
  store<f32>(dB, hsum(f32x4.add(b0, b1)) * scale);
}

@inline function dot1<T>(kg: usize, qa: usize, hb: usize, mask: v128, magic: v128, dA: usize, scale: f32): void {
  const zero = v128.load(C_ZERO);
  let a0 = zero, a1 = zero;
  for (let o: usize = 0; o < hb; o += 32) {
    const k0 = kv4<T>(kg, o, mask, magic), k1 = kv4<T>(kg, o + 16, mask, magic);
    a0 = fma(v128.load(qa + o), k0, a0);
    a1 = fma(v128.load(qa + o, 16), k1, a1);
  }
  store<f32>(dA, hsum(f32x4.add(a0, a1)) * scale);
}

// Output rows oa (and ob when two) += p * V for two V head rows x, y with weights (xa, ya) for
// head a and (xb, yb) for head b.
@inline function axpy2<T>(x: usize, y: usize, oa: usize, ob: usize, two: bool, hb: usize, mask: v128, magic: v128, xa: v128, ya: v128, xb: v128, yb: v128): void {
  for (let o: usize = 0; o < hb; o += 32) {
    const x0 = kv4<T>(x, o, mask, magic), x1 = kv4<T>(x, o + 16, mask, magic);
    const y0 = kv4<T>(y, o, mask, magic), y1 = kv4<T>(y, o + 16, mask, magic);
    v128.store(oa + o, fma(ya, y0, fma(xa, x0, v128.load(oa + o))));
    v128.store(oa + o, fma(ya, y1, fma(xa, x1, v128.load(oa + o, 16))), 16);
    if (two) {
      v128.store(ob + o, fma(yb, y0, fma(xb, x0, v128.load(ob + o))));
      v128.store(ob + o, fma(yb, y1, fma(xb, x1, v128.load(ob + o, 16))), 16);
    }
  }
}

// Loads one byte of every cache line of the row [p, p + bytes) before the SIMD loop reads it: all
// of the row's misses are then in flight at once instead of one after another as the loop
// advances (WebAssembly has no prefetch instruction). Decoding gemma-2-2b over an f16 cache that
// is not in the CPU caches: 0.21 -> 0.13 ms per layer at 544 slots, 0.74 -> 0.45 at 2048.
let SINK: i32 = 0;
@inline function touch(p: usize, bytes: usize): void {
  let acc: i32 = 0;
  for (let o: usize = 0; o < bytes; o += 64) acc += load<u8>(p + o);
  SINK += acc;
}

@inline function visible(spos: usize, s: i32, qp: i32, window: i32): bool {
  const kp = load<i32>(spos + (<usize>s << 2));
  return kp >= 0 && kp <= qp && qp - kp < window;
}

/**
 * Attention for few query tokens over many slots, split by slot ranges ("flash decoding"): unit
 * u = t * R + r covers token t's slots [r * nSlots / R, (r + 1) * nSlots / R) for every head, so
 * a thread streams whole cache rows (all KV heads) from one contiguous range of memory. Splitting
 * by heads instead reads one head's slice of every row (a 2 KB stride for gemma-2-2b), which the
 * hardware prefetcher does not follow: in a decode that layout left attention waiting on memory.
 * Each unit writes per head its unnormalized output row, max score and sum of exp to its part
 * area: [nHeads][headDim] f32, then m[nHeads], l[nHeads]; attention_combine merges the ranges.
 * ml: i32 R, i32 score area, i32 score bytes per thread, i32 f16 flag. headDim % 8 == 0.
 */
export function attention_split(u0: i32, u1: i32, q: usize, k: usize, v: usize, part: usize, qpos: usize, spos: usize, nSlots: i32, nHeads: i32, nKvHeads: i32, headDim: i32, window: i32, scale: f32, cap: f32, ml: usize): void {
  if (load<i32>(ml, 12) != 0) splitUnits<u16>(u0, u1, q, k, v, part, qpos, spos, nSlots, nHeads, nKvHeads, headDim, window, scale, cap, ml);
  else splitUnits<f32>(u0, u1, q, k, v, part, qpos, spos, nSlots, nHeads, nKvHeads, headDim, window, scale, cap, ml);
}

function splitUnits<T>(u0: i32, u1: i32, q: usize, k: usize, v: usize, part: usize, qpos: usize, spos: usize, nSlots: i32, nHeads: i32, nKvHeads: i32, headDim: i32, window: i32, scale: f32, cap: f32, ml: usize): void {
  const R = load<i32>(ml);
  const sc0 = <usize>load<i32>(ml, 4) + <usize>THREAD * <usize>load<i32>(ml, 8);
  const mask = v128.load(C_F16MASK), magic = v128.load(C_F16MAGIC), zero = v128.load(C_ZERO);
  const group = nHeads / nKvHeads;
  const hb = <usize>headDim << 2;
  const headBytes = <usize>headDim * sizeof<T>();
  const kvStride = <usize>nKvHeads * headBytes;
  const maxLen = (nSlots + R - 1) / R;
  const rowBytes = <usize>((maxLen + 3) & ~3) << 2;
  const partBytes = <usize>nHeads * (hb + 8);
  for (let u = u0; u < u1; u++) {
    const t = u / R, r = u % R;
    const sA = <i32>((<i64>nSlots * r) / R), sB = <i32>((<i64>nSlots * (r + 1)) / R);
    const n = sB - sA;
    const nPad = (n + 3) & ~3;
    const rb = <usize>nPad << 2;
    const qp = load<i32>(qpos + (<usize>t << 2));
    const q0 = q + <usize>t * <usize>nHeads * hb;
    const pu = part + <usize>u * partBytes;
    const mp = pu + <usize>nHeads * hb, lp = mp + (<usize>nHeads << 2);
    // pass 1: scores of every head for each visible slot, whole rows at a time
    for (let i = 0; i < nPad; i++) {
      const so = <usize>i << 2;
      if (i >= n || !visible(spos, sA + i, qp, window)) {
        for (let h = 0; h < nHeads; h++) store<f32>(sc0 + <usize>h * rowBytes + so, -Infinity);
        continue;
      }
      const kr = k + <usize>(sA + i) * kvStride;
      touch(kr, kvStride);
      for (let g = 0; g < nKvHeads; g++) {
        const kg = kr + <usize>g * headBytes;
        let h = g * group;
        const hEnd = h + group;
        for (; h + 1 < hEnd; h += 2) {
          dot2<T>(kg, q0 + <usize>h * hb, q0 + <usize>(h + 1) * hb, hb, mask, magic, sc0 + <usize>h * rowBytes + so, sc0 + <usize>(h + 1) * rowBytes + so, scale);
        }
        if (h < hEnd) dot1<T>(kg, q0 + <usize>h * hb, hb, mask, magic, sc0 + <usize>h * rowBytes + so, scale);
      }
    }
    // pass 2: per head soft-cap, max and exp over this range
    for (let h = 0; h < nHeads; h++) {
      const sr = sc0 + <usize>h * rowBytes;
      const m = capMax(sr, rb, cap);
      store<f32>(mp + (<usize>h << 2), m);
      store<f32>(lp + (<usize>h << 2), expSum(sr, rb, m));
    }
    // pass 3: unnormalized outputs, visible slots two at a time (a lone last one pairs with
    // itself at weight 0)
    for (let i: usize = 0; i < <usize>nHeads * hb; i += 16) v128.store(pu + i, zero);
    let i = 0;
    for (;;) {
      while (i < n && !visible(spos, sA + i, qp, window)) i++;
      if (i >= n) break;
      const i0 = i++;
      while (i < n && !visible(spos, sA + i, qp, window)) i++;
      const pair = i < n;
      const i1 = pair ? i++ : i0;
      const x = v + <usize>(sA + i0) * kvStride, y = v + <usize>(sA + i1) * kvStride;
      // the second row and the one after it (usually the next pair's first): measured best
      touch(y, sA + i1 + 1 < nSlots ? kvStride << 1 : kvStride);
      const so0 = <usize>i0 << 2, so1 = <usize>i1 << 2;
      for (let g = 0; g < nKvHeads; g++) {
        const xg = x + <usize>g * headBytes, yg = y + <usize>g * headBytes;
        let h = g * group;
        const hEnd = h + group;
        for (; h < hEnd; h += 2) {
          const two = h + 1 < hEnd;
          const ra = sc0 + <usize>h * rowBytes, rbh = ra + rowBytes;
          const xa = f32x4.splat(load<f32>(ra + so0)), ya = f32x4.splat(pair ? load<f32>(ra + so1) : 0);
          const xb = f32x4.splat(two ? load<f32>(rbh + so0) : 0), yb = f32x4.splat(two && pair ? load<f32>(rbh + so1) : 0);
          axpy2<T>(xg, yg, pu + <usize>h * hb, pu + <usize>(h + 1) * hb, two, hb, mask, magic, xa, ya, xb, yb);
        }
      }
    }
  }
}

/**
 * Merge attention_split's R partial results per (token, head) into out: with M the largest range
 * max, out = sum_r e^(m_r - M) o_r / sum_r e^(m_r - M) l_r (0 when no slot is visible).
 */
export function attention_combine(t0: i32, t1: i32, part: usize, out: usize, R: i32, nHeads: i32, headDim: i32): void {
  const hb = <usize>headDim << 2;
  const partBytes = <usize>nHeads * (hb + 8);
  for (let t = t0; t < t1; t++) {
    for (let h = 0; h < nHeads; h++) {
      const orow = out + (<usize>t * <usize>nHeads + <usize>h) * hb;
      let M: f32 = -Infinity;
      for (let r = 0; r < R; r++) {
        const pu = part + <usize>(t * R + r) * partBytes;
        const m = load<f32>(pu + <usize>nHeads * hb + (<usize>h << 2));
        const l = load<f32>(pu + <usize>nHeads * hb + (<usize>(nHeads + h) << 2));
        if (l > 0 && m > M) M = m;
      }
      for (let i: usize = 0; i < hb; i += 16) v128.store(orow + i, v128.load(C_ZERO));
      if (M == -Infinity) continue;
      let L: f32 = 0;
      for (let r = 0; r < R; r++) {
        const pu = part + <usize>(t * R + r) * partBytes;
        const m = load<f32>(pu + <usize>nHeads * hb + (<usize>h << 2));
        const l = load<f32>(pu + <usize>nHeads * hb + (<usize>(nHeads + h) << 2));
        if (!(l > 0) || m - M < -80) continue;
        const w = Mathf.exp(m - M);
        L += w * l;
        const wv = f32x4.splat(w);
        const prow = pu + <usize>h * hb;
        for (let i: usize = 0; i < hb; i += 16) v128.store(orow + i, fma(wv, v128.load(prow + i), v128.load(orow + i)));
      }
      const inv = f32x4.splat(<f32>1 / L);
      for (let i: usize = 0; i < hb; i += 16) v128.store(orow + i, f32x4.mul(v128.load(orow + i), inv));
    }
  }
}

// ---------------------------------------------------------------- Q4_K
// Repacked per 4-row group and 256-value super-block (608 bytes, 76 per 32 values; ggml: 72):
// f32 d[4], f32 dmin[4] (f16 in the file, widened exactly at load: converting in the kernel would
// put V8's conversion code inside the block loop), then per 32-value sub-block (72 bytes): u8 sc[4],
// u8 m[4] and 4 x 16 nibble bytes (row r at 8 + 16r: low nibble = value i, high = i + 16).
// value = d sc q - dmin m (d * sc is exact in f32), so a block contributes
// xd * (scale * sum(q xq) - min * sum(xq)).
@inline function dotU4(wp: usize, m0f: v128, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const v = v128.load(wp);
  const lo = v128.and(v, m0f), hi = hi4(v, m0f);
  const s0 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), x1));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), x3));
  return i32x4.add(s0, s1);
}

export function mm_q4_k(g0: i32, g1: i32, w: usize, xq16: usize, xq8: usize, xd: usize, xs: usize, out: usize, n: i32, nb: i32, rowLimit: i32, outStride: i32): void {
  const m0f = v128.load(C_0F);
  const nsb = nb >> 3;
  const gs = <usize>nsb * 608;
  for (let g = g0; g < g1; g++) {
    const r0 = g << 2;
    const wg = w + <usize>g * gs;
    let t = 0;
    if (ASC_FEATURE_RELAXED_SIMD) {
      // four tokens at a time (prefill, batched decoding): each sub-block's nibbles are unpacked
      // and its scales widened once for all four (one thread, 16 tokens: 61 -> 78 GFLOP/s)
      const xStride = <usize>nb << 5, sStride = <usize>nb << 2;
      for (; t + 3 < n; t += 4) {
        let xb = xq8 + <usize>t * xStride;
        let dp = xd + <usize>t * sStride;
        let sp = xs + <usize>t * sStride;
        let acc0 = f32x4.splat(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        for (let sb = 0; sb < nsb; sb++) {
          const sbp = wg + <usize>sb * 608;
          const sbEnd = sbp + 608;
          for (let wb = sbp + 32; wb < sbEnd; wb += 72) {
            const v0 = v128.load(wb, 8), v1 = v128.load(wb, 24), v2 = v128.load(wb, 40), v3 = v128.load(wb, 56);
            const lo0 = v128.and(v0, m0f), hi0 = hi4(v0, m0f), lo1 = v128.and(v1, m0f), hi1 = hi4(v1, m0f);
            const lo2 = v128.and(v2, m0f), hi2 = hi4(v2, m0f), lo3 = v128.and(v3, m0f), hi3 = hi4(v3, m0f);
            const sc = f32x4.mul(v128.load(sbp), u8x4(wb)), mn = f32x4.mul(v128.load(sbp, 16), u8x4(wb + 4));
            acc0 = q4kToken(acc0, lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, sc, mn, xb, dp, sp);
            acc1 = q4kToken(acc1, lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, sc, mn, xb + xStride, dp + sStride, sp + sStride);
            acc2 = q4kToken(acc2, lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, sc, mn, xb + 2 * xStride, dp + 2 * sStride, sp + 2 * sStride);
            acc3 = q4kToken(acc3, lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, sc, mn, xb + 3 * xStride, dp + 3 * sStride, sp + 3 * sStride);
            xb += 32;
            dp += 4;
            sp += 4;
          }
        }
        store4x4(out, t, outStride, r0, rowLimit, acc0, acc1, acc2, acc3);
      }
    }
    for (; t < n; t++) {
      let dp = xd + ((<usize>t * <usize>nb) << 2);
      let sp = xs + ((<usize>t * <usize>nb) << 2);
      // the min terms go to their own accumulator: two short dependency chains instead of one
      let acc = f32x4.splat(0), accm = acc;
      if (ASC_FEATURE_RELAXED_SIMD) {
        // per super-block: sums of sc * d * sum(q xq) and of m * d * sum(xq) over its sub-blocks,
        // then scaled by the rows' d and dmin once (2 fewer multiplies per sub-block; the 8
        // scale / min bytes widened together)
        let xb = xq8 + ((<usize>t * <usize>nb) << 5);
        for (let sb = 0; sb < nsb; sb++) {
          const sbp = wg + <usize>sb * 608;
          const sbEnd = sbp + 608;
          let as = f32x4.splat(0), am = as;
          for (let wb = sbp + 32; wb < sbEnd; wb += 72) {
            const xl = v128.load(xb), xh = v128.load(xb, 16);
            const s = sumRows16(dotQ4r16(v128.load(wb, 8), m0f, xl, xh), dotQ4r16(v128.load(wb, 24), m0f, xl, xh), dotQ4r16(v128.load(wb, 40), m0f, xl, xh), dotQ4r16(v128.load(wb, 56), m0f, xl, xh));
            const d = load<f32>(dp);
            const sm = i16x8.extend_low_i8x16_u(v128.load64_zero(wb));
            const sc = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(sm)), mn = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(sm));
            as = fma(f32x4.convert_i32x4_s(s), f32x4.mul(sc, f32x4.splat(d)), as);
            am = fma(mn, f32x4.splat(-d * <f32>load<i32>(sp)), am);
            xb += 32;
            dp += 4;
            sp += 4;
          }
          acc = fma(as, v128.load(sbp), acc);
          accm = fma(am, v128.load(sbp, 16), accm);
        }
      } else {
        let xb = xq16 + ((<usize>t * <usize>nb) << 6);
        for (let sb = 0; sb < nsb; sb++) {
          const sbp = wg + <usize>sb * 608;
          const d4 = v128.load(sbp), m4 = v128.load(sbp, 16);
          const sbEnd = sbp + 608;
          for (let wb = sbp + 32; wb < sbEnd; wb += 72) {
            const x0 = v128.load(xb), x1 = v128.load(xb, 16), x2 = v128.load(xb, 32), x3 = v128.load(xb, 48);
            const s = reduce4(dotU4(wb + 8, m0f, x0, x1, x2, x3), dotU4(wb + 24, m0f, x0, x1, x2, x3), dotU4(wb + 40, m0f, x0, x1, x2, x3), dotU4(wb + 56, m0f, x0, x1, x2, x3));
            const d = load<f32>(dp);
            acc = fma(f32x4.convert_i32x4_s(s), f32x4.mul(f32x4.mul(d4, u8x4(wb)), f32x4.splat(d)), acc);
            accm = fma(f32x4.mul(m4, u8x4(wb + 4)), f32x4.splat(-d * <f32>load<i32>(sp)), accm);
            xb += 64;
            dp += 4;
            sp += 4;
          }
        }
      }
      store4(out, t, outStride, r0, rowLimit, f32x4.add(acc, accm));
    }
  }
}

// One token's Q4_K sub-block for 4 rows from unpacked nibbles: acc + xd * (sc * sum(q xq) - mn * sum(xq)).
@inline function q4kToken(acc: v128, lo0: v128, hi0: v128, lo1: v128, hi1: v128, lo2: v128, hi2: v128, lo3: v128, hi3: v128, sc: v128, mn: v128, xb: usize, dp: usize, sp: usize): v128 {
  const d = load<f32>(dp);
  const a = fma(f32x4.convert_i32x4_s(nibbleRowSums(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, xb)), f32x4.mul(sc, f32x4.splat(d)), acc);
  return fma(mn, f32x4.splat(-d * <f32>load<i32>(sp)), a);
}

// Four unsigned bytes at p as f32x4.
@inline function u8x4(p: usize): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p))));
}

// ---------------------------------------------------------------- Q6_K
// Repacked per 4-row group and 256-value super-block (1104 bytes, 138 per 32 values; ggml: 105):
// f32 d[4], then per 32-value block (136 bytes): i8 sc[4] of its first 16 values, i8 sc[4] of the
// last 16, and 4 x 32 bytes of unsigned 6-bit quants q (row r at 8 + 32r); value = d sc (q - 32).
// (ggml's 6-bit packing would read 24% fewer bytes, but unpacking it costs an estimated ~36 more
// vector operations per block and token, ~70% more than this loop: not tried, expected slower on
// 2 threads, where this kernel is not far from compute-bound.)
export function mm_q6_k(g0: i32, g1: i32, w: usize, xq16: usize, xq8: usize, xd: usize, xh: usize, out: usize, n: i32, nb: i32, rowLimit: i32, outStride: i32): void {
  const nsb = nb >> 3;
  const gs = <usize>nsb * 1104;
  const m32 = v128.load(C_32);
  for (let g = g0; g < g1; g++) {
    const r0 = g << 2;
    const wg = w + <usize>g * gs;
    for (let t = 0; t < n; t++) {
      let dp = xd + ((<usize>t * <usize>nb) << 2);
      let acc = f32x4.splat(0);
      if (ASC_FEATURE_RELAXED_SIMD) {
        let xb = xq8 + ((<usize>t * <usize>nb) << 5);
        let hb = xh + ((<usize>t * <usize>nb) << 3);
        for (let sb = 0; sb < nsb; sb++) {
          const sbp = wg + <usize>sb * 1104;
          const sbEnd = sbp + 1104;
          // the rows' d is applied once per super-block
          let as = f32x4.splat(0);
          for (let wb = sbp + 16; wb < sbEnd; wb += 136) {
            const xl = v128.load(xb), xr = v128.load(xb, 16);
            // u6 . i8 pair sums: |lane| <= 2 * 63 * 127 = 16002
            const lo = sumRows16w(
              i16x8.relaxed_dot_i8x16_i7x16_s(xl, v128.load(wb, 8)),
              i16x8.relaxed_dot_i8x16_i7x16_s(xl, v128.load(wb, 40)),
              i16x8.relaxed_dot_i8x16_i7x16_s(xl, v128.load(wb, 72)),
              i16x8.relaxed_dot_i8x16_i7x16_s(xl, v128.load(wb, 104)),
            );
            const hi = sumRows16w(
              i16x8.relaxed_dot_i8x16_i7x16_s(xr, v128.load(wb, 24)),
              i16x8.relaxed_dot_i8x16_i7x16_s(xr, v128.load(wb, 56)),
              i16x8.relaxed_dot_i8x16_i7x16_s(xr, v128.load(wb, 88)),
              i16x8.relaxed_dot_i8x16_i7x16_s(xr, v128.load(wb, 120)),
            );
            const sl = i32x4.sub(lo, i32x4.shl(v128.load32_splat(hb), 5));
            const sh = i32x4.sub(hi, i32x4.shl(v128.load32_splat(hb, 4), 5));
            const d = v128.load32_splat(dp);
            const sc8 = i16x8.extend_low_i8x16_s(v128.load64_zero(wb));
            as = fma(f32x4.convert_i32x4_s(sl), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(sc8)), d), as);
            as = fma(f32x4.convert_i32x4_s(sh), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(sc8)), d), as);
            xb += 32;
            hb += 8;
            dp += 4;
          }
          acc = fma(as, v128.load(sbp), acc);
        }
      } else {
        let xb = xq16 + ((<usize>t * <usize>nb) << 6);
        for (let sb = 0; sb < nsb; sb++) {
          const sbp = wg + <usize>sb * 1104;
          const d4 = v128.load(sbp);
          const sbEnd = sbp + 1104;
          for (let wb = sbp + 16; wb < sbEnd; wb += 136) {
            const x0 = v128.load(xb), x1 = v128.load(xb, 16), x2 = v128.load(xb, 32), x3 = v128.load(xb, 48);
            let v = i8x16.sub(v128.load(wb, 8), m32), u = i8x16.sub(v128.load(wb, 24), m32);
            const l0 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), x1));
            const h0 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(u), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(u), x3));
            v = i8x16.sub(v128.load(wb, 40), m32); u = i8x16.sub(v128.load(wb, 56), m32);
            const l1 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), x1));
            const h1 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(u), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(u), x3));
            v = i8x16.sub(v128.load(wb, 72), m32); u = i8x16.sub(v128.load(wb, 88), m32);
            const l2 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), x1));
            const h2 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(u), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(u), x3));
            v = i8x16.sub(v128.load(wb, 104), m32); u = i8x16.sub(v128.load(wb, 120), m32);
            const l3 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), x1));
            const h3 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(u), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(u), x3));
            const d = v128.load32_splat(dp);
            const sc8 = i16x8.extend_low_i8x16_s(v128.load64_zero(wb));
            acc = fma(f32x4.convert_i32x4_s(reduce4(l0, l1, l2, l3)), f32x4.mul(f32x4.mul(d4, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(sc8))), d), acc);
            acc = fma(f32x4.convert_i32x4_s(reduce4(h0, h1, h2, h3)), f32x4.mul(f32x4.mul(d4, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(sc8))), d), acc);
            xb += 64;
            dp += 4;
          }
        }
      }
      store4(out, t, outStride, r0, rowLimit, acc);
    }
  }
}

// ---------------------------------------------------------------- load-time repacking
// Raw ggml rows (rowsInChunk of them, starting at a multiple of 4) at src are rewritten as the
// 4-row group layouts above at dst; g0..g1 are group indices within the chunk.

@inline function h2f(h: u32): f32 {
  const em = (h & 0x7fff) << 13;
  const sign = (h & 0x8000) << 16;
  if ((h & 0x7c00) == 0x7c00) return reinterpret<f32>(sign | em | 0x7f800000);
  const f = reinterpret<f32>(em) * reinterpret<f32>(<u32>0x77800000); // * 2^112: exact, subnormals included
  return reinterpret<f32>(reinterpret<u32>(f) | sign);
}

// Q8_0 / Q4_0: ggml's row-major blocks (f16 d, then qBytes of quants) -> the 4-row group layout
// (the 4 rows' f16 d, then row r's quants at 8 + r * qBytes).
@inline function repackScaled(g0: i32, g1: i32, src: usize, dst: usize, nb: i32, rowsInChunk: i32, qBytes: usize): void {
  const srcBlock: usize = 2 + qBytes, dstBlock: usize = 8 + 4 * qBytes;
  for (let g = g0; g < g1; g++) {
    for (let lane = 0; lane < 4; lane++) {
      const r = (g << 2) + lane;
      if (r >= rowsInChunk) break;
      const gb = dst + <usize>g * <usize>nb * dstBlock;
      let s = src + <usize>r * <usize>nb * srcBlock;
      for (let b = 0; b < nb; b++, s += srcBlock) {
        const o = gb + <usize>b * dstBlock;
        store<u16>(o + (<usize>lane << 1), load<u16>(s));
        const q = o + 8 + <usize>lane * qBytes;
        for (let k: usize = 0; k < qBytes; k += 16) v128.store(q + k, v128.load(s + 2 + k));
      }
    }
  }
}

export function repack_q8_0(g0: i32, g1: i32, src: usize, dst: usize, nb: i32, rowsInChunk: i32): void {
  repackScaled(g0, g1, src, dst, nb, rowsInChunk, 32);
}

export function repack_q4_0(g0: i32, g1: i32, src: usize, dst: usize, nb: i32, rowsInChunk: i32): void {
  repackScaled(g0, g1, src, dst, nb, rowsInChunk, 16);
}

export function repack_q4_k(g0: i32, g1: i32, src: usize, dst: usize, nsb: i32, rowsInChunk: i32): void {
  const m0f = v128.load(C_0F);
  for (let g = g0; g < g1; g++) {
    for (let lane = 0; lane < 4; lane++) {
      const r = (g << 2) + lane;
      if (r >= rowsInChunk) break;
      const gb = dst + <usize>g * <usize>nsb * 608;
      for (let sb = 0; sb < nsb; sb++) {
        const p = src + (<usize>r * <usize>nsb + <usize>sb) * 144;
        const sbp = gb + <usize>sb * 608;
        store<f32>(sbp + (<usize>lane << 2), h2f(<u32>load<u16>(p)));
        store<f32>(sbp + 16 + (<usize>lane << 2), h2f(<u32>load<u16>(p, 2)));
        const q = p + 4;
        for (let j = 0; j < 8; j++) {
          let sc: u32, m: u32;
          if (j < 4) {
            sc = <u32>load<u8>(q + j) & 63;
            m = <u32>load<u8>(q + j + 4) & 63;
          } else {
            sc = (<u32>load<u8>(q + j + 4) & 15) | ((<u32>load<u8>(q + j - 4) >> 6) << 4);
            m = (<u32>load<u8>(q + j + 4) >> 4) | ((<u32>load<u8>(q + j) >> 6) << 4);
          }
          const o = sbp + 32 + <usize>j * 72;
          store<u8>(o + <usize>lane, <u8>sc);
          store<u8>(o + 4 + <usize>lane, <u8>m);
          // 32 nibbles of sub-block j: low (j even) or high (j odd) halves of 32 bytes
          const qs = p + 16 + (<usize>(j >> 1) << 5);
          let a = v128.load(qs), c = v128.load(qs, 16);
          if (j & 1) {
            a = i8x16.shr_u(a, 4);
            c = i8x16.shr_u(c, 4);
          } else {
            a = v128.and(a, m0f);
            c = v128.and(c, m0f);
          }
          v128.store(o + 8 + (<usize>lane << 4), v128.or(a, i8x16.shl(c, 4)));
        }
      }
    }
  }
}

export function repack_q6_k(g0: i32, g1: i32, src: usize, dst: usize, nsb: i32, rowsInChunk: i32): void {
  const m0f = v128.load(C_0F);
  const m03 = v128.load(C_03);
  for (let g = g0; g < g1; g++) {
    for (let lane = 0; lane < 4; lane++) {
      const r = (g << 2) + lane;
      if (r >= rowsInChunk) break;
      const gb = dst + <usize>g * <usize>nsb * 1104;
      for (let sb = 0; sb < nsb; sb++) {
        const p = src + (<usize>r * <usize>nsb + <usize>sb) * 210;
        const sbp = gb + <usize>sb * 1104;
        store<f32>(sbp + (<usize>lane << 2), h2f(<u32>load<u16>(p, 208)));
        for (let j = 0; j < 8; j++) {
          const o = sbp + 16 + <usize>j * 136;
          store<i8>(o + <usize>lane, load<i8>(p + 192 + (j << 1)));
          store<i8>(o + 4 + <usize>lane, load<i8>(p + 193 + (j << 1)));
        }
        for (let half = 0; half < 2; half++) {
          const ql = p + (half << 6);
          const qh = p + 128 + (half << 5);
          // values y + l (+32, +64, +96), l in 0..31, of this 128-value half
          for (let k = 0; k < 2; k++) {
            const a = v128.load(ql + (k << 4)), c = v128.load(ql + 32 + (k << 4)), h = v128.load(qh + (k << 4));
            const v0 = v128.or(v128.and(a, m0f), i8x16.shl(v128.and(h, m03), 4));
            const v1 = v128.or(v128.and(c, m0f), i8x16.shl(v128.and(i8x16.shr_u(h, 2), m03), 4));
            const v2 = v128.or(i8x16.shr_u(a, 4), i8x16.shl(v128.and(i8x16.shr_u(h, 4), m03), 4));
            const v3 = v128.or(i8x16.shr_u(c, 4), i8x16.shl(i8x16.shr_u(h, 6), 4));
            // value index within the super-block: half*128 + q*32 + k*16 + i -> block (half*4 + q), offset k*16
            const bq = sbp + 16 + <usize>(half * 4) * 136 + 8 + (<usize>lane << 5) + (<usize>k << 4);
            v128.store(bq, v0);
            v128.store(bq + 136, v1);
            v128.store(bq + 272, v2);
            v128.store(bq + 408, v3);
          }
        }
      }
    }
  }
}
