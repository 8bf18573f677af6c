import type { DType } from '../formats/dtype.js';

/**
 * A weight matrix in its stored type, [rows, cols] row-major: row r holds output feature r.
 * `data` holds rows * cols values of `dtype` (block-quantized types: cols is a multiple of the
 * block size and each row is a whole number of blocks). A backend may wrap it in its own
 * prepared form (repacked, copied into WebAssembly memory) through `prepareMatrix`.
 */
export interface WeightMatrix {
  dtype: DType;
  rows: number;
  cols: number;
  data: Uint8Array;
}

/** Backend-owned handle of a prepared weight matrix. */
export interface Matrix {
  readonly dtype: DType;
  readonly rows: number;
  readonly cols: number;
}

/**
 * Attention over a KV cache for `nTokens` query tokens of one sequence.
 * The cache holds `nSlots` slots; slot s holds the key/value of position `slotPositions[s]`
 * (-1 = empty). Ring buffers on sliding-window layers therefore need no copying: visibility is
 * decided by positions only. Key j is visible from query i when
 * 0 <= pos_j <= pos_i and pos_i - pos_j < window.
 */
export interface AttentionParams {
  /** [nTokens, nHeads * headDim] */
  q: Float32Array;
  /** [nSlots, nKvHeads * headDim]: f32 values, or f16 bits (an f16 KV cache, see allocF16). */
  k: Float32Array | Uint16Array;
  /** [nSlots, nKvHeads * headDim], the same type as k. */
  v: Float32Array | Uint16Array;
  nTokens: number;
  nSlots: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Position of each query token. */
  queryPositions: Int32Array;
  /** Position held by each cache slot, -1 when empty. */
  slotPositions: Int32Array;
  /** Sliding window (Infinity for global layers). */
  window: number;
  /** Multiplier of q·k. */
  scale: number;
  /** Gemma 2 attention soft-cap: s = cap * tanh(s / cap); 0 = none. */
  softcap: number;
  /** [nTokens, nHeads * headDim] */
  out: Float32Array;
}

/**
 * The numeric kernels the forward pass needs. Activations are f32 typed arrays laid out
 * [tokens, features]; weights stay in their stored type. The JS backend is the readable
 * reference; the WebAssembly backend implements the same contract and passes the same tests.
 */
export interface Backend {
  readonly name: string;
  prepareMatrix(w: WeightMatrix): Matrix;
  /**
   * Optional: one matrix whose rows are the parts' rows in order (same dtype and cols), e.g.
   * q | k | v, so that one kernel call (and one activation quantization) serves all of them.
   */
  prepareStacked?(parts: readonly WeightMatrix[]): Matrix;
  /**
   * out[n, rows'] = x[n, cols] · W[0:rows']^T, where rows' = rowLimit ?? W.rows; then, when
   * softcap > 0, out = softcap * tanh(out / softcap) (the final logits, without another pass).
   */
  matmul(w: Matrix, x: Float32Array, n: number, out: Float32Array, rowLimit?: number, softcap?: number): void;
  /**
   * Optional: the LM head for scoring, without handing the logits back. For each of the n rows of
   * x: the log-softmax of x[t] · W[0:rows']^T (soft-capped as matmul does) at targets[t], and that
   * row's argmax (first maximum): out[2t] = log p(targets[t]), out[2t + 1] = argmax. rows' =
   * rowLimit ?? W.rows. Must agree with log-probs.ts's rowLogProb; backends without it get that
   * reference over matmul (hostTensors).
   */
  headLogProbs?(w: Matrix, x: Float32Array, n: number, targets: Int32Array, out: Float32Array, rowLimit?: number, softcap?: number): void;
  /** Dequantize row `row` of W into out[0:cols]. */
  getRow(w: Matrix, row: number, out: Float32Array): void;
  /** x[i] = x[i] * rsqrt(mean(x_i^2) + eps) * weight, per row of `dim`; in place. `weight` already holds (1 + w). */
  rmsNorm(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): void;
  /** gate[i] = gelu_tanh(gate[i]) * up[i]; in place on gate. */
  geluMul(gate: Float32Array, up: Float32Array, count: number): void;
  /**
   * Rotate-half (NeoX) RoPE in place on x [nTokens, nHeads * headDim]: dimension i pairs
   * with i + headDim/2; angle = (pos / scaling) * theta^(-2i/headDim).
   */
  rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, theta: number, scaling: number): void;
  attention(p: AttentionParams): void;
  /** x = cap * tanh(x / cap), in place. */
  softcap(x: Float32Array, count: number, cap: number): void;
  /**
   * Optional: a zero-filled f32 array of `count` values living in the backend's own memory
   * (the wasm backend: a view on a shared WebAssembly memory, which grow never detaches), so
   * that kernels read it in place instead of copying it in on every call. Long-lived state such
   * as the KV cache is allocated here when the backend offers it (plain Float32Arrays
   * otherwise). Throws ModelError when the memory cannot grow. Release with `freeF32`.
   */
  allocF32?(count: number): Float32Array;
  /** Release an array from `allocF32` (its memory is reused; the view must not be used again). No-op for other arrays and after dispose. */
  freeF32?(a: Float32Array): void;
  /**
   * Optional, with writeF16: a zero-filled array of `count` f16 values (their bits) in the
   * backend's memory, for an f16 KV cache (half the bytes attention reads per token). Released
   * with `freeF16`.
   */
  allocF16?(count: number): Uint16Array;
  freeF16?(a: Uint16Array): void;
  /** dst[offset ..] = src rounded to f16 (nearest even), for arrays from allocF16. */
  writeF16?(dst: Uint16Array, offset: number, src: Float32Array): void;
  /** Release everything the backend holds (workers, memories). */
  dispose(): void;
}
