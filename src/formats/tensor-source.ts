import type { DType } from './dtype.js';

/**
 * Format-independent view of a checkpoint's tensors. safetensors and GGUF readers both
 * implement it, so the model loader never knows which file it reads.
 *
 * Conventions:
 * - `shape` is row-major, outermost dimension first (PyTorch order): a linear layer's weight
 *   is [outFeatures, inFeatures]. GGUF readers reverse ggml's `ne` to give this order.
 * - `name` uses Hugging Face names (`model.layers.0.self_attn.q_proj.weight`); a GGUF source
 *   maps its own names (`blk.0.attn_q.weight`) to these.
 * - `read` returns the stored bytes (never converted), read lazily on demand; the caller owns
 *   the returned buffer and the source keeps no copy.
 */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
}

export interface TensorSource {
  /** Every tensor in the checkpoint. */
  list(): TensorInfo[];
  get(name: string): TensorInfo | undefined;
  read(name: string): Uint8Array;
  /**
   * Optional: read asynchronously. Sources whose bytes arrive asynchronously (HTTP, browser
   * Blobs) implement it and may throw from `read`; the model loader prefers it when present.
   */
  readAsync?(name: string): Promise<Uint8Array>;
  /** True when RMSNorm weights are stored as (1 + w), as GGUF files do; false for HF (w). */
  readonly normWeightsIncludeOne: boolean;
  close(): void;
}
