// gemma-ts training kernels (AssemblyScript, SIMD128), loaded by src/train/wasm-matmul.ts.
//
// One general product serves the three matrix products of a linear layer:
//   C[r, j] (+)= sum_k A[r, k] * B[k, j]     for rows r in [r0, r1), j < m, k < K
// A is read element by element through two strides (A[r, k] = A[r * sr + k * sk], so A may be a
// transposed view); B [K, m] and C [rows, m] are row-major with m % 4 == 0. Each 4-row x 8-column
// tile of C stays in registers for a whole pass over k (12 vector registers); columns are taken in
// panels of 64 so that the panel of B is reused from cache by every row tile.
// No fused multiply-add: the same sums in the same order on every runtime (deterministic).

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
