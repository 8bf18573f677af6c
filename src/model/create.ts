/**
 * The platform-free half of loading: choosing a backend, reading an open TensorSource into a
 * GemmaModel and describing it. load.ts (files, Node) and platform/web-load.ts (URLs, Blobs,
 * browsers) open checkpoints and call assembleModel.
 */
import type { Backend } from '../backend/backend.js';
import { isTensorBackend, type TensorBackend } from '../backend/tensor.js';
import { createJsBackend } from '../backend/js/index.js';
import type { ModelConfig } from '../config/model-config.js';
import { GemmaError, ModelError } from '../errors.js';
import type { TensorSource } from '../formats/tensor-source.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { GemmaModel } from './gemma.js';
import type { KVType } from './kv-cache.js';
import type { LanguageModel } from './types.js';
import { loadWeights } from './weights.js';

/** The built-in compute backends: 'wasm' (WebAssembly SIMD + threads, the default), 'js' (the readable reference) and 'webgpu' (WGSL kernels on the GPU; asynchronous). */
export type BackendName = 'js' | 'wasm' | 'webgpu';

/** Options of {@link loadModel}. */
export interface LoadOptions {
  /**
   * Compute backend (default 'wasm': WebAssembly SIMD + threads; 'js' is the readable reference;
   * 'webgpu': WGSL kernels on the GPU, asynchronous - use forwardAsync / generate; or a
   * TensorBackend object).
   */
  backend?: BackendName | Backend | TensorBackend;
  /** Worker threads of the wasm backend (default: the physical cores). */
  threads?: number;
  /** Called while the weights are read, with bytes done and the total. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Default context size of caches the model creates. */
  contextSize?: number;
  /** Tokens per forward chunk. */
  chunkSize?: number;
  /** KV cache element type (default 'f32'; 'f16' halves its memory on the wasm backend, as llama.cpp does). */
  kvType?: KVType;
  /** Skip loading the tokenizer even when the checkpoint has one. */
  noTokenizer?: boolean;
}

/** What {@link loadModel} resolves to. */
export interface LoadedModel {
  /** The model: `forward`, `forwardBatch`, `createCache`, `dispose`. */
  model: LanguageModel;
  /** The checkpoint's tokenizer (undefined when it has none, or with `noTokenizer`). */
  tokenizer: Tokenizer | undefined;
  /** The normalized configuration (every Gemma 1 / 2 / 3 difference is a field). */
  config: ModelConfig;
  /** The resolved checkpoint path. */
  path: string;
  /** The checkpoint's file format. */
  format: 'safetensors' | 'gguf';
  /** dtype -> number of tensors stored in it. */
  dtypes: Record<string, number>;
  /** Bytes of all weight tensors as stored. */
  weightBytes: number;
  /** Things the caller may want to tell the user (ignored parts of the checkpoint, fallbacks); never printed by the library. */
  notices: string[];
}

/** What loadModel would report, from the headers only: no weights are read (for `gemma info`). */
export type ModelDescription = Omit<LoadedModel, 'model'>;

export async function createBackend(choice: LoadOptions['backend'], threads: number | undefined): Promise<Backend | TensorBackend> {
  if (choice && typeof choice === 'object') return choice;
  if (choice === 'js') return createJsBackend();
  if (choice === 'webgpu') {
    const { createWebGpuBackend } = await import('../backend/webgpu/index.js');
    return createWebGpuBackend();
  }
  if (choice === 'wasm' || choice === undefined) {
    // Loaded lazily: js-only users never compile the kernels.
    const { createWasmBackend } = await import('../backend/wasm/index.js');
    return createWasmBackend(threads !== undefined ? { threads } : {});
  }
  throw new ModelError(`unknown backend "${String(choice)}" (expected js, wasm or webgpu)`);
}

/** A checkpoint whose headers are read: the weights are still in the source. */
export interface OpenedCheckpoint {
  source: TensorSource;
  config: ModelConfig;
  notices: string[];
  format: 'safetensors' | 'gguf';
}

export function tensorStats(source: TensorSource): { dtypes: Record<string, number>; weightBytes: number } {
  const dtypes: Record<string, number> = {};
  let weightBytes = 0;
  for (const t of source.list()) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    weightBytes += t.byteLength;
  }
  return { dtypes, weightBytes };
}

/** Read an opened checkpoint's weights into a model on the chosen backend (the caller closes the source). */
export async function assembleModel(ck: OpenedCheckpoint, tokenizer: Tokenizer | undefined, where: string, options: LoadOptions): Promise<LoadedModel> {
  try {
    const backend = await createBackend(options.backend, options.threads);
    const { dtypes, weightBytes } = tensorStats(ck.source);
    const vocab = Math.min(tokenizer?.vocabSize ?? ck.config.vocabSize, ck.config.vocabSize);
    let model: GemmaModel;
    try {
      model = await createModel(ck.source, ck.config, { ...options, backend, vocabSize: vocab });
    } catch (e) {
      if (backend !== options.backend) backend.dispose(); // a GPU device left open keeps the process alive
      throw e;
    }
    const notices = [...ck.notices];
    if (options.kvType === 'f16' && !model.tensors.cacheTypes.includes('f16')) notices.push(`the ${backend.name} backend keeps the KV cache in f32 (an f16 cache needs the wasm backend)`);
    return { model, tokenizer, config: ck.config, path: where, format: ck.format, dtypes, weightBytes, notices };
  } catch (e) {
    if (e instanceof GemmaError) throw e;
    throw new ModelError(`failed to load ${where}: ${(e as Error).message}`, { cause: e });
  }
}

/** Build a model from an open TensorSource (the source may be closed afterwards). */
export async function createModel(
  source: TensorSource,
  config: ModelConfig,
  options: LoadOptions & { vocabSize?: number } = {},
): Promise<GemmaModel> {
  const backend = await createBackend(options.backend, options.threads);
  let weights;
  try {
    weights = await loadWeights(source, config, backend, { onProgress: options.onProgress });
    // a GPU reports allocation failures asynchronously: surface them here, as a typed error
    if (isTensorBackend(backend)) await backend.settle?.();
  } catch (e) {
    if (backend !== options.backend) backend.dispose();
    throw e;
  }
  return new GemmaModel(config, weights, backend, { vocabSize: options.vocabSize, contextSize: options.contextSize, chunkSize: options.chunkSize, kvType: options.kvType });
}
