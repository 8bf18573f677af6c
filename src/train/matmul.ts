/**
 * The three matrix products of a linear layer y = x W^T (W [out, in], row-major, f32):
 *   forward   y  = x W^T           [n, out]
 *   backward  dx = dy W            [n, in]   (accumulated into dx)
 *             dW = dy^T x          [out, in] (accumulated into dW)
 * `jsMatmul` is the readable reference (f64 sums); ./wasm-matmul.ts implements the same
 * contract with WebAssembly SIMD kernels.
 */
import type { DType } from '../formats/dtype.js';
import type { AttentionShape } from './ops.js';

/** A frozen weight matrix [rows, cols] in its stored type (row-major blocks, as in a checkpoint). */
export interface FrozenWeight {
  readonly dtype: DType;
  readonly rows: number;
  readonly cols: number;
  readonly data: Uint8Array;
}

export interface MatmulKernels {
  readonly name: string;
  /** y[n, out] = x[n, in] . W[out, in]^T (y is overwritten). */
  xwt(x: Float32Array, w: Float32Array, n: number, inDim: number, outDim: number, y: Float32Array): void;
  /** dx[n, in] += dy[n, out] . W[out, in]. */
  dyw(dy: Float32Array, w: Float32Array, n: number, inDim: number, outDim: number, dx: Float32Array): void;
  /** dW[out, in] += dy[n, out]^T . x[n, in]. */
  dytx(dy: Float32Array, x: Float32Array, n: number, inDim: number, outDim: number, dw: Float32Array): void;
  /**
   * Optional products with a frozen weight in its stored type, decoded block by block inside the
   * kernels: y = x W^T (overwritten) and dx += dy W. false = not handled (the caller decodes).
   */
  xwtFrozen?(x: Float32Array, w: FrozenWeight, n: number, y: Float32Array): boolean;
  dywFrozen?(dy: Float32Array, w: FrozenWeight, n: number, dx: Float32Array): boolean;
  /**
   * Optional fast attention (else ./ops.ts's): out [n, nHeads * hd] and lse [n * nHeads], the
   * log-sum-exp of each (token, head) row of scores, which the backward reads.
   */
  attention?(q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionShape, out: Float32Array, lse: Float32Array): boolean;
  /** dq, dk, dv (overwritten) of attention, from the forward's lse. */
  attentionBackward?(q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, lse: Float32Array, p: AttentionShape, dq: Float32Array, dk: Float32Array, dv: Float32Array): boolean;
}

export const jsMatmul: MatmulKernels = {
  name: 'js',

  xwt(x, w, n, inDim, outDim, y) {
    for (let t = 0; t < n; t++) {
      const xo = t * inDim;
      for (let o = 0; o < outDim; o++) {
        const wo = o * inDim;
        let s = 0;
        for (let i = 0; i < inDim; i++) s += x[xo + i]! * w[wo + i]!;
        y[t * outDim + o] = s;
      }
    }
  },

  dyw(dy, w, n, inDim, outDim, dx) {
    const acc = new Float64Array(inDim);
    for (let t = 0; t < n; t++) {
      acc.fill(0);
      for (let o = 0; o < outDim; o++) {
        const g = dy[t * outDim + o]!;
        if (g === 0) continue;
        const wo = o * inDim;
        for (let i = 0; i < inDim; i++) acc[i] = acc[i]! + g * w[wo + i]!;
      }
      const xo = t * inDim;
      for (let i = 0; i < inDim; i++) dx[xo + i] = dx[xo + i]! + acc[i]!;
    }
  },

  dytx(dy, x, n, inDim, outDim, dw) {
    const acc = new Float64Array(inDim);
    for (let o = 0; o < outDim; o++) {
      acc.fill(0);
      for (let t = 0; t < n; t++) {
        const g = dy[t * outDim + o]!;
        if (g === 0) continue;
        const xo = t * inDim;
        for (let i = 0; i < inDim; i++) acc[i] = acc[i]! + g * x[xo + i]!;
      }
      const wo = o * inDim;
      for (let i = 0; i < inDim; i++) dw[wo + i] = dw[wo + i]! + acc[i]!;
    }
  },
};
