import type { ModelConfig } from '../config/model-config.js';

/**
 * Hook points, named like TransformerLens / SAELens:
 * `blocks.{i}.hook_resid_pre`, `blocks.{i}.hook_attn_out`, `blocks.{i}.hook_mlp_out`,
 * `blocks.{i}.hook_resid_post`, and `blocks.{i}.attn.hook_z` (the concatenated head outputs
 * before the output projection, [nTokens, nHeads * headDim]). A hook sees the activation
 * [nTokens, dim] of the tokens of this forward call and may modify it in place or return a
 * replacement of the same size.
 */
export interface HookEvent {
  name: string;
  layer: number;
  /** [nTokens, hiddenSize], row-major. */
  activation: Float32Array;
  nTokens: number;
  dim: number;
  /** Absolute position of each token in its sequence. */
  positions: Int32Array;
  /** For batched calls (forwardBatch): index of the batch item each row belongs to. */
  items: Int32Array;
}
export type Hook = (event: HookEvent) => Float32Array | void;

export interface ForwardOptions {
  /** Return logits for every position of the call (default: last position only). */
  allPositions?: boolean;
  /** Hooks by name, or '*' for every hook point. */
  hooks?: Record<string, Hook>;
  /** Collect hidden states: embeddings, each layer's residual output, final norm (for tests / tools). */
  collectHidden?: boolean;
}

export interface ForwardResult {
  /** [rows, vocab]: rows = nTokens when allPositions, else 1. */
  logits: Float32Array;
  rows: number;
  vocab: number;
  hidden?: { embeddings: Float32Array; layers: Float32Array[]; finalNorm: Float32Array };
}

/** Per-sequence attention state. */
export interface KVCache {
  /** Number of tokens already processed (the next token's position). */
  readonly length: number;
  /** Capacity in tokens (the context size). */
  readonly maxTokens: number;
  /** Drop everything after the first `n` tokens (n <= length; on ring layers only if still held). */
  truncate(n: number): void;
  /** Release the cache's memory now (backend memory for the wasm backend); the cache is unusable afterwards. */
  dispose?(): void;
}

/** One sequence of a batched forward call. */
export interface BatchItem {
  ids: readonly number[];
  cache: KVCache;
  allPositions?: boolean;
}

export interface LanguageModel {
  readonly config: ModelConfig;
  /** Length of each logits row: the tokenizer's real vocab when known, never the padded table. */
  readonly vocabSize: number;
  createCache(maxTokens?: number): KVCache;
  /** Run `ids` at positions cache.length.. and append them to the cache (host backends; see forwardAsync). */
  forward(ids: readonly number[], cache: KVCache, options?: ForwardOptions): ForwardResult;
  /**
   * Several sequences in one pass over the weights (continuous batching): every matrix product
   * runs once over all items' tokens; attention runs per item on its own cache. Results equal
   * separate forward calls. `options.allPositions` is ignored in favour of each item's flag.
   */
  forwardBatch(items: readonly BatchItem[], options?: Omit<ForwardOptions, 'allPositions' | 'collectHidden'>): ForwardResult[];
  /**
   * The asynchronous twins of forward / forwardBatch: they work on every backend (webgpu reads
   * its results back asynchronously), while forward / forwardBatch need a host backend (js,
   * wasm) and throw ModelError on webgpu. Same results.
   */
  forwardAsync(ids: readonly number[], cache: KVCache, options?: ForwardOptions): Promise<ForwardResult>;
  forwardBatchAsync(items: readonly BatchItem[], options?: Omit<ForwardOptions, 'allPositions' | 'collectHidden'>): Promise<ForwardResult[]>;
  dispose(): void;
}
