// gemma-ts training kernels (AssemblyScript, SIMD128), loaded by src/train/wasm-matmul.ts.
//
// One general product serves the three matrix products of a linear layer:
//   C[r, j] (+)= sum_k A[r, k] * B[k, j]     for rows r in [r0, r1), j < m, k < K
// A is read element by element through two strides (A[r, k] = A[r * sr + k * sk], so A may be a
// transposed view); B [K, m] and C [rows, m] are row-major with m % 4 == 0. Each 4-row x 8-column
// tile of C stays in registers for a whole pass over k (12 vector registers); columns are taken in
// panels of 64 so that the panel of B is reused from cache by every row tile.
// No fused multiply-add: the same sums in the same order on every runtime (deterministic).
// Threads (src/backend/wasm/pool.ts): the *_t entry points take a range of output-row units as
// their first two arguments, so a call can be split over worker threads. Every output element is
// summed by one thread in the same order whatever the split: results do not depend on the thread
// count.

const PANEL: i32 = 64;

@inline function madd(a: v128, b: v128, c: v128): v128 {
  return f32x4.add(f32x4.mul(a, b), c);
}

export function gemm(a: usize, sr: i32, sk: i32, b: usize, c: usize, r0: i32, r1: i32, m: i32, K: i32, accumulate: i32): void {
  const srB = <usize>sr << 2, skB = <usize>sk << 2;
  const bRow = <usize>m << 2;
  for (let j0 = 0; j0 < m; j0 += PANEL) {
    const j1 = min(j0 + PANEL, m);
    let r = r0;
    for (; r + 4 <= r1; r += 4) {
      const a0 = a + <usize>r * srB, a1 = a0 + srB, a2 = a1 + srB, a3 = a2 + srB;
      const c0 = c + <usize>r * bRow, c1 = c0 + bRow, c2 = c1 + bRow, c3 = c2 + bRow;
      let j = j0;
      for (; j + 8 <= j1; j += 8) {
        const jo = <usize>j << 2;
        let x0 = f32x4.splat(0), y0 = x0, x1 = x0, y1 = x0, x2 = x0, y2 = x0, x3 = x0, y3 = x0;
        if (accumulate) {
          x0 = v128.load(c0 + jo); y0 = v128.load(c0 + jo, 16);
          x1 = v128.load(c1 + jo); y1 = v128.load(c1 + jo, 16);
          x2 = v128.load(c2 + jo); y2 = v128.load(c2 + jo, 16);
          x3 = v128.load(c3 + jo); y3 = v128.load(c3 + jo, 16);
        }
        let bp = b + jo;
        let ko: usize = 0;
        for (let k = 0; k < K; k++) {
          const b0 = v128.load(bp), b1 = v128.load(bp, 16);
          let s = f32x4.splat(load<f32>(a0 + ko)); x0 = madd(s, b0, x0); y0 = madd(s, b1, y0);
          s = f32x4.splat(load<f32>(a1 + ko)); x1 = madd(s, b0, x1); y1 = madd(s, b1, y1);
          s = f32x4.splat(load<f32>(a2 + ko)); x2 = madd(s, b0, x2); y2 = madd(s, b1, y2);
          s = f32x4.splat(load<f32>(a3 + ko)); x3 = madd(s, b0, x3); y3 = madd(s, b1, y3);
          bp += bRow;
          ko += skB;
        }
        v128.store(c0 + jo, x0); v128.store(c0 + jo, y0, 16);
        v128.store(c1 + jo, x1); v128.store(c1 + jo, y1, 16);
        v128.store(c2 + jo, x2); v128.store(c2 + jo, y2, 16);
        v128.store(c3 + jo, x3); v128.store(c3 + jo, y3, 16);
      }
      for (; j < j1; j += 4) {
        const jo = <usize>j << 2;
        let x0 = f32x4.splat(0), x1 = x0, x2 = x0, x3 = x0;
        if (accumulate) {
          x0 = v128.load(c0 + jo); x1 = v128.load(c1 + jo); x2 = v128.load(c2 + jo); x3 = v128.load(c3 + jo);
        }
        let bp = b + jo;
        let ko: usize = 0;
        for (let k = 0; k < K; k++) {
          const b0 = v128.load(bp);
          x0 = madd(f32x4.splat(load<f32>(a0 + ko)), b0, x0);
          x1 = madd(f32x4.splat(load<f32>(a1 + ko)), b0, x1);
          x2 = madd(f32x4.splat(load<f32>(a2 + ko)), b0, x2);
          x3 = madd(f32x4.splat(load<f32>(a3 + ko)), b0, x3);
          bp += bRow;
          ko += skB;
        }
        v128.store(c0 + jo, x0); v128.store(c1 + jo, x1); v128.store(c2 + jo, x2); v128.store(c3 + jo, x3);
      }
    }
    for (; r < r1; r++) {
      const a0 = a + <usize>r * srB;
      const c0 = c + <usize>r * bRow;
      for (let j = j0; j < j1; j += 4) {
        const jo = <usize>j << 2;
        let x0 = accumulate ? v128.load(c0 + jo) : f32x4.splat(0);
        let bp = b + jo;
        let ko: usize = 0;
        for (let k = 0; k < K; k++) {
          x0 = madd(f32x4.splat(load<f32>(a0 + ko)), v128.load(bp), x0);
          bp += bRow;
          ko += skB;
        }
        v128.store(c0 + jo, x0);
      }
    }
  }
}

// dst[j, i] = src[i, j] for src [rows, cols] (the W^T operand of the forward product).
export function transpose(src: usize, dst: usize, rows: i32, cols: i32): void {
  for (let i = 0; i < rows; i++) {
    const s = src + (<usize>i * <usize>cols << 2);
    for (let j = 0; j < cols; j++) store<f32>(dst + ((<usize>j * <usize>rows + <usize>i) << 2), load<f32>(s + (<usize>j << 2)));
  }
}

@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

// C[r, j] = sum_k A[r, k] * B[j, k] (both row-major along k, K % 4 == 0) for r in [r0, r1),
// j < m, m % 4 == 0: the forward product x W^T without a transposed copy. Tiles of 2 rows of A
// x 4 rows of B (8 vector accumulators), B taken in panels of 32 rows so they stay in cache.
// ldc: the row stride of C in floats (>= m), so that C may be a column block of a wider matrix.
export function gemm_nt(a: usize, b: usize, c: usize, r0: i32, r1: i32, m: i32, K: i32, ldc: i32): void {
  const rowB = <usize>K << 2;
  const cRow = <usize>ldc << 2;
  for (let j0 = 0; j0 < m; j0 += 32) {
    const j1 = min(j0 + 32, m);
    let r = r0;
    for (; r + 2 <= r1; r += 2) {
      const x0 = a + <usize>r * rowB, x1 = x0 + rowB;
      for (let j = j0; j < j1; j += 4) {
        const w0 = b + <usize>j * rowB, w1 = w0 + rowB, w2 = w1 + rowB, w3 = w2 + rowB;
        let p0 = f32x4.splat(0), p1 = p0, p2 = p0, p3 = p0, q0 = p0, q1 = p0, q2 = p0, q3 = p0;
        for (let o: usize = 0; o < rowB; o += 16) {
          const u = v128.load(x0 + o), v = v128.load(x1 + o);
          let w = v128.load(w0 + o); p0 = madd(u, w, p0); q0 = madd(v, w, q0);
          w = v128.load(w1 + o); p1 = madd(u, w, p1); q1 = madd(v, w, q1);
          w = v128.load(w2 + o); p2 = madd(u, w, p2); q2 = madd(v, w, q2);
          w = v128.load(w3 + o); p3 = madd(u, w, p3); q3 = madd(v, w, q3);
        }
        v128.store(c + <usize>r * cRow + (<usize>j << 2), hsum4(p0, p1, p2, p3));
        v128.store(c + <usize>(r + 1) * cRow + (<usize>j << 2), hsum4(q0, q1, q2, q3));
      }
    }
    for (; r < r1; r++) {
      const x0 = a + <usize>r * rowB;
      for (let j = j0; j < j1; j += 4) {
        const w0 = b + <usize>j * rowB, w1 = w0 + rowB, w2 = w1 + rowB, w3 = w2 + rowB;
        let p0 = f32x4.splat(0), p1 = p0, p2 = p0, p3 = p0;
        for (let o: usize = 0; o < rowB; o += 16) {
          const u = v128.load(x0 + o);
          p0 = madd(u, v128.load(w0 + o), p0);
          p1 = madd(u, v128.load(w1 + o), p1);
          p2 = madd(u, v128.load(w2 + o), p2);
          p3 = madd(u, v128.load(w3 + o), p3);
        }
        v128.store(c + <usize>r * cRow + (<usize>j << 2), hsum4(p0, p1, p2, p3));
      }
    }
  }
}

// ---------------------------------------------------------------- threaded entry points

// The pool calls set_thread(index) on each thread's instance; these kernels keep no per-thread state.
export function set_thread(i: i32): void {}

// gemm over groups of 4 output rows: rows [4 g0, min(4 g1, rows)).
export function gemm_t(g0: i32, g1: i32, a: usize, sr: i32, sk: i32, b: usize, c: usize, rows: i32, m: i32, K: i32, accumulate: i32): void {
  gemm(a, sr, sk, b, c, g0 << 2, min(g1 << 2, rows), m, K, accumulate);
}

// gemm_nt over pairs of output rows: rows [2 g0, min(2 g1, rows)).
export function gemm_nt_t(g0: i32, g1: i32, a: usize, b: usize, c: usize, rows: i32, m: i32, K: i32, ldc: i32): void {
  gemm_nt(a, b, c, g0 << 1, min(g1 << 1, rows), m, K, ldc);
}

// ---------------------------------------------------------------- frozen weights in their stored type
// Rows [r0, r1) of a [rows, cols] matrix stored as `kind` at src (row 0 at src) to f32 at dst
// (row r at dst + r * cols * 4), with the same values as src/formats/quant.ts's decoders:
// kind 1 = f16, 2 = bf16, 3 = Q8_0 (34-byte blocks of 32), 4 = Q4_0 (18-byte blocks of 32),
// 5 = Q6_K (210-byte blocks of 256).

@inline function h2f(h: u32): f32 {
  const s = (h & 0x8000) << 16;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) {
    const v = <f32>m * 5.9604644775390625e-8;
    return s ? -v : v;
  }
  if (e == 31) return reinterpret<f32>(s | 0x7f800000 | (m << 13));
  return reinterpret<f32>(s | ((e + 112) << 23) | (m << 13));
}

export function dequant_t(r0: i32, r1: i32, kind: i32, src: usize, dst: usize, cols: i32): void {
  let rowBytes: usize = 0;
  if (kind == 1 || kind == 2) rowBytes = <usize>cols << 1;
  else if (kind == 3) rowBytes = <usize>(cols >> 5) * 34;
  else if (kind == 4) rowBytes = <usize>(cols >> 5) * 18;
  else if (kind == 5) rowBytes = <usize>(cols >> 8) * 210;
  for (let r = r0; r < r1; r++) {
    const p0 = src + <usize>r * rowBytes;
    let y = dst + ((<usize>r * <usize>cols) << 2);
    if (kind == 1) {
      for (let i = 0; i < cols; i++) store<f32>(y + (<usize>i << 2), h2f(load<u16>(p0 + (<usize>i << 1))));
    } else if (kind == 2) {
      for (let i = 0; i < cols; i++) store<u32>(y + (<usize>i << 2), <u32>load<u16>(p0 + (<usize>i << 1)) << 16);
    } else if (kind == 3) {
      for (let p = p0; p < p0 + rowBytes; p += 34) {
        const d = h2f(load<u16>(p));
        for (let j: usize = 0; j < 32; j++) store<f32>(y + (j << 2), <f32>load<i8>(p + 2 + j) * d);
        y += 128;
      }
    } else if (kind == 4) {
      for (let p = p0; p < p0 + rowBytes; p += 18) {
        const d = h2f(load<u16>(p));
        for (let j: usize = 0; j < 16; j++) {
          const q = <i32>load<u8>(p + 2 + j);
          store<f32>(y + (j << 2), <f32>((q & 15) - 8) * d);
          store<f32>(y + (j << 2) + 64, <f32>((q >> 4) - 8) * d);
        }
        y += 128;
      }
    } else if (kind == 5) {
      for (let p = p0; p < p0 + rowBytes; p += 210) {
        const d = h2f(load<u16>(p + 208));
        let ql = p, qh = p + 128, sc = p + 192;
        for (let half = 0; half < 2; half++) {
          for (let l: usize = 0; l < 32; l++) {
            const is = l >> 4;
            const h = <i32>load<u8>(qh + l), a = <i32>load<u8>(ql + l), c = <i32>load<u8>(ql + l + 32);
            const q1 = ((a & 15) | ((h & 3) << 4)) - 32;
            const q2 = ((c & 15) | (((h >> 2) & 3) << 4)) - 32;
            const q3 = ((a >> 4) | (((h >> 4) & 3) << 4)) - 32;
            const q4 = ((c >> 4) | (((h >> 6) & 3) << 4)) - 32;
            store<f32>(y + (l << 2), d * <f32>load<i8>(sc + is) * <f32>q1);
            store<f32>(y + (l << 2) + 128, d * <f32>load<i8>(sc + is + 2) * <f32>q2);
            store<f32>(y + (l << 2) + 256, d * <f32>load<i8>(sc + is + 4) * <f32>q3);
            store<f32>(y + (l << 2) + 384, d * <f32>load<i8>(sc + is + 6) * <f32>q4);
          }
          y += 512;
          ql += 64;
          qh += 32;
          sc += 8;
        }
      }
    }
  }
}

// ---------------------------------------------------------------- causal attention (GQA, window, soft-cap)
// q [n, nHeads * hd], k / v [n, nKv * hd], out [n, nHeads * hd], lse [n * nHeads] (log-sum-exp of
// each row's scores, for the backward); key s is visible from t when s0(t) <= s <= t, where
// s0(t) = max(0, t - window + 1), moved forward past other documents when doc != 0 (i32 per token).
// hd % 4 == 0. scratch: 3 * n f32.

@inline function firstKey(t: i32, window: i32, doc: usize): i32 {
  let s0 = t - window + 1;
  if (s0 < 0) s0 = 0;
  if (doc != 0) {
    const d = load<i32>(doc + (<usize>t << 2));
    while (load<i32>(doc + (<usize>s0 << 2)) != d) s0++;
  }
  return s0;
}

@inline function dot(a: usize, b: usize, hdB: usize): f32 {
  let acc = f32x4.splat(0);
  for (let i: usize = 0; i < hdB; i += 16) acc = madd(v128.load(a + i), v128.load(b + i), acc);
  const s = f32x4.add(acc, v128.shuffle<f32>(acc, acc, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

export function attn_fwd(q: usize, k: usize, v: usize, out: usize, lse: usize, n: i32, nHeads: i32, nKv: i32, hd: i32, window: i32, scale: f32, cap: f32, doc: usize, scratch: usize): void {
  const group = nHeads / nKv;
  const hdB = <usize>hd << 2;
  const qRow = <usize>(nHeads * hd) << 2, kvRow = <usize>(nKv * hd) << 2;
  for (let t = 0; t < n; t++) {
    const s0 = firstKey(t, window, doc);
    for (let h = 0; h < nHeads; h++) {
      const qp = q + <usize>t * qRow + <usize>h * hdB;
      const ko = <usize>(h / group) * hdB;
      let max: f32 = -Infinity;
      for (let s = s0; s <= t; s++) {
        let d = dot(qp, k + <usize>s * kvRow + ko, hdB) * scale;
        if (cap > 0) d = cap * Mathf.tanh(d / cap);
        store<f32>(scratch + (<usize>s << 2), d);
        if (d > max) max = d;
      }
      let sum: f32 = 0;
      for (let s = s0; s <= t; s++) {
        const e = Mathf.exp(load<f32>(scratch + (<usize>s << 2)) - max);
        store<f32>(scratch + (<usize>s << 2), e);
        sum += e;
      }
      const inv = f32x4.splat(1 / sum);
      const op = out + <usize>t * qRow + <usize>h * hdB;
      for (let i: usize = 0; i < hdB; i += 16) {
        let acc = f32x4.splat(0);
        for (let s = s0; s <= t; s++) acc = madd(f32x4.splat(load<f32>(scratch + (<usize>s << 2))), v128.load(v + <usize>s * kvRow + ko + i), acc);
        v128.store(op + i, f32x4.mul(acc, inv));
      }
      store<f32>(lse + ((<usize>t * <usize>nHeads + <usize>h) << 2), max + Mathf.log(sum));
    }
  }
}

// dq, dk, dv (zeroed by the host) from dout, recomputing each row's probabilities from lse.
export function attn_bwd(q: usize, k: usize, v: usize, dout: usize, lse: usize, dq: usize, dk: usize, dv: usize, n: i32, nHeads: i32, nKv: i32, hd: i32, window: i32, scale: f32, cap: f32, doc: usize, scratch: usize): void {
  const group = nHeads / nKv;
  const hdB = <usize>hd << 2;
  const qRow = <usize>(nHeads * hd) << 2, kvRow = <usize>(nKv * hd) << 2;
  const pB = scratch, dpB = scratch + (<usize>n << 2), thB = dpB + (<usize>n << 2);
  for (let t = 0; t < n; t++) {
    const s0 = firstKey(t, window, doc);
    for (let h = 0; h < nHeads; h++) {
      const qp = q + <usize>t * qRow + <usize>h * hdB;
      const gp = dout + <usize>t * qRow + <usize>h * hdB;
      const dqp = dq + <usize>t * qRow + <usize>h * hdB;
      const ko = <usize>(h / group) * hdB;
      const l = load<f32>(lse + ((<usize>t * <usize>nHeads + <usize>h) << 2));
      let D: f32 = 0;
      for (let s = s0; s <= t; s++) {
        const kp = k + <usize>s * kvRow + ko, vp = v + <usize>s * kvRow + ko, dvp = dv + <usize>s * kvRow + ko;
        let d = dot(qp, kp, hdB) * scale;
        if (cap > 0) {
          const th = Mathf.tanh(d / cap);
          store<f32>(thB + (<usize>s << 2), th);
          d = cap * th;
        }
        const p = Mathf.exp(d - l);
        const dp = dot(gp, vp, hdB);
        store<f32>(pB + (<usize>s << 2), p);
        store<f32>(dpB + (<usize>s << 2), dp);
        D += p * dp;
        const ps = f32x4.splat(p);
        for (let i: usize = 0; i < hdB; i += 16) v128.store(dvp + i, madd(ps, v128.load(gp + i), v128.load(dvp + i)));
      }
      for (let s = s0; s <= t; s++) {
        let ds = load<f32>(pB + (<usize>s << 2)) * (load<f32>(dpB + (<usize>s << 2)) - D);
        if (cap > 0) {
          const th = load<f32>(thB + (<usize>s << 2));
          ds *= 1 - th * th;
        }
        const dsv = f32x4.splat(ds * scale);
        const kp = k + <usize>s * kvRow + ko, dkp = dk + <usize>s * kvRow + ko;
        for (let i: usize = 0; i < hdB; i += 16) {
          v128.store(dqp + i, madd(dsv, v128.load(kp + i), v128.load(dqp + i)));
          v128.store(dkp + i, madd(dsv, v128.load(qp + i), v128.load(dkp + i)));
        }
      }
    }
  }
}
