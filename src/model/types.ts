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
  /** The hook point, e.g. `blocks.3.hook_resid_post`. */
  name: string;
  /** The block index. */
  layer: number;
  /** [nTokens, hiddenSize], row-major. */
  activation: Float32Array;
  /** Rows of `activation`: the tokens of this call. */
  nTokens: number;
  /** Row length of `activation`. */
  dim: number;
  /** Absolute position of each token in its sequence. */
  positions: Int32Array;
  /** For batched calls (forwardBatch): index of the batch item each row belongs to. */
  items: Int32Array;
}
/** Reads (or modifies in place, or replaces by returning an array of the same size) an activation; see {@link HookEvent}. */
export type Hook = (event: HookEvent) => Float32Array | void;

/** Options of `model.forward`. */
export interface ForwardOptions {
  /** Return logits for every position of the call (default: last position only). */
  allPositions?: boolean;
  /** Hooks by name, or '*' for every hook point. */
  hooks?: Record<string, Hook>;
  /** Collect hidden states: embeddings, each layer's residual output, final norm (for tests / tools). */
  collectHidden?: boolean;
  /** Scale of each LoRA adapter by id for this call (see BatchItem.lora; default: the global scales). */
  lora?: readonly number[];
  /**
   * Score next tokens instead of returning logits: targets[t] is the token expected after
   * position t of this call (one per token; -1 = not scored). The result then has
   * `tokenLogProbs` / `argmax` for the scored positions, computed where the logits are (only two
   * numbers a row come back), and no logits rows unless `allPositions` asks for them.
   */
  targets?: readonly number[];
}

/** What `model.forward` returns. */
export interface ForwardResult {
  /** Row-major logits, `rows` x `vocab` (rows = nTokens with allPositions, else 1; 0 with targets alone). */
  logits: Float32Array;
  /** Number of logits rows. */
  rows: number;
  /** Length of each row: the tokenizer's real vocabulary. */
  vocab: number;
  /** With `targets`: log p(targets[t]) at each position of the call (NaN where not scored). */
  tokenLogProbs?: Float32Array;
  /** With `targets`: the most likely token at each scored position (its first maximum; -1 where not scored). */
  argmax?: Int32Array;
  /** With `collectHidden`: the embeddings, each layer's residual output and the final norm's output. */
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
  /** The item's new tokens. */
  ids: readonly number[];
  /** The item's own cache (the tokens are appended to it). */
  cache: KVCache;
  /** Return logits for every new token of this item (default: the last only). */
  allPositions?: boolean;
  /**
   * The scale of each LoRA adapter for this item's tokens, by adapter id (see
   * {@link LanguageModel.loraAdapters}); ids past the end are off (0). Default: every adapter's
   * global scale. Items with different scales share one pass (the delta is applied per row).
   */
  lora?: readonly number[];
  /** Next-token ids to score at each of this item's positions (see ForwardOptions.targets). */
  targets?: readonly number[];
}

/** A LoRA adapter loaded into a model (applied without merging, per row). */
export interface LoraAdapterInfo {
  /** Its index, in the order adapters were added. */
  id: number;
  /** Where it came from (a path), or a name. */
  path: string;
  /** The global scale: used by passes that do not give their own (0 = off). */
  scale: number;
}

/** A loaded model (see {@link GemmaModel}): the forward pass over a KV cache. */
export interface LanguageModel {
  /** The normalized configuration. */
  readonly config: ModelConfig;
  /** Length of each logits row: the tokenizer's real vocab when known, never the padded table. */
  readonly vocabSize: number;
  /** A new, empty KV cache for one sequence (default capacity: the model's context size). */
  createCache(maxTokens?: number): KVCache;
  /** Run `ids` at positions cache.length.. and append them to the cache (host backends; see forwardAsync). */
  forward(ids: readonly number[], cache: KVCache, options?: ForwardOptions): ForwardResult;
  /**
   * Several sequences in one pass over the weights (continuous batching): every matrix product
   * runs once over all items' tokens; attention runs per item on its own cache. Results equal
   * separate forward calls. `options.allPositions` is ignored in favour of each item's flag.
   */
  forwardBatch(items: readonly BatchItem[], options?: Omit<ForwardOptions, 'allPositions' | 'collectHidden' | 'targets'>): ForwardResult[];
  /**
   * The asynchronous twins of forward / forwardBatch: they work on every backend (webgpu reads
   * its results back asynchronously), while forward / forwardBatch need a host backend (js,
   * wasm) and throw ModelError on webgpu. Same results.
   */
  forwardAsync(ids: readonly number[], cache: KVCache, options?: ForwardOptions): Promise<ForwardResult>;
  forwardBatchAsync(items: readonly BatchItem[], options?: Omit<ForwardOptions, 'allPositions' | 'collectHidden' | 'targets'>): Promise<ForwardResult[]>;
  /** The LoRA adapters loaded into the model (none when absent). */
  loraAdapters?(): readonly LoraAdapterInfo[];
  /** Set an adapter's global scale (0 = off); throws ModelError on an unknown id or a non-finite scale. */
  setLoraScale?(id: number, scale: number): void;
  /** Free the weights and the backend (wasm memory, worker threads); the model is unusable afterwards. */
  dispose(): void;
}
