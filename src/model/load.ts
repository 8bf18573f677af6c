/**
 * loadModel: one entry point for every place a Gemma checkpoint lives - a Hugging Face model
 * directory (config.json + safetensors, single or sharded), a GGUF file, or `demo` (the small
 * checkpoint shipped in models/demo).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Backend } from '../backend/backend.js';
import { createJsBackend } from '../backend/js/index.js';
import { normalizeHfConfig, type ModelConfig } from '../config/model-config.js';
import { ConfigError, GemmaError, ModelError } from '../errors.js';
import { openGGUF } from '../formats/gguf-source.js';
import { openSafetensors } from '../formats/safetensors.js';
import type { TensorSource } from '../formats/tensor-source.js';
import { cachedModelPath } from '../hub/pull.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { packageRoot } from '../util/package-root.js';
import { GemmaModel } from './gemma.js';
import type { LanguageModel } from './types.js';
import { loadWeights } from './weights.js';
import type { KVType } from './kv-cache.js';

export type BackendName = 'js' | 'wasm';

export interface LoadOptions {
  /** Compute backend (default 'wasm': WebAssembly SIMD + threads; 'js' is the readable reference). */
  backend?: BackendName | Backend;
  threads?: number;
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

export interface LoadedModel {
  model: LanguageModel;
  tokenizer: Tokenizer | undefined;
  config: ModelConfig;
  path: string;
  format: 'safetensors' | 'gguf';
  /** dtype -> number of tensors stored in it. */
  dtypes: Record<string, number>;
  weightBytes: number;
  notices: string[];
}

export function demoModelPath(): string {
  return path.join(packageRoot(), 'models', 'demo');
}

/** Resolve `demo`, a path, or ORG/NAME of a checkpoint fetched earlier with `gemma pull`. */
export function resolveModelPath(spec: string): string {
  if (spec === 'demo') return demoModelPath();
  const p = path.resolve(spec);
  if (fs.existsSync(p)) return p;
  if (/^[\w.-]+\/[\w.-]+$/.test(spec)) {
    const cached = cachedModelPath(spec);
    if (cached) return cached;
    throw new ModelError(`model not found: ${spec} (no such path; to download it from the Hugging Face Hub run: gemma pull ${spec})`);
  }
  throw new ModelError(`model not found: ${spec}`);
}

async function createBackend(choice: LoadOptions['backend'], threads: number | undefined): Promise<Backend> {
  if (choice && typeof choice === 'object') return choice;
  if (choice === 'js') return createJsBackend();
  if (choice === 'wasm' || choice === undefined) {
    // Loaded lazily: js-only users never compile the kernels.
    const { createWasmBackend } = await import('../backend/wasm/index.js');
    return createWasmBackend(threads !== undefined ? { threads } : {});
  }
  throw new ModelError(`unknown backend "${String(choice)}" (expected js or wasm)`);
}

interface OpenedCheckpoint {
  source: TensorSource;
  config: ModelConfig;
  notices: string[];
  format: 'safetensors' | 'gguf';
  tokenizerPath: string | undefined;
}

function openCheckpoint(p: string): OpenedCheckpoint {
  if (fs.statSync(p).isDirectory()) {
    const cfgPath = path.join(p, 'config.json');
    if (!fs.existsSync(cfgPath)) throw new ModelError(`${p}: no config.json (not a Hugging Face model directory)`);
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    } catch (e) {
      throw new ConfigError(`${cfgPath} is not valid JSON: ${(e as Error).message}`);
    }
    const { config, notices } = normalizeHfConfig(raw);
    const source = openSafetensors(p);
    const hasTok = ['tokenizer.json', 'tokenizer.model'].some((f) => fs.existsSync(path.join(p, f)));
    return { source, config, notices, format: 'safetensors', tokenizerPath: hasTok ? p : undefined };
  }
  if (p.endsWith('.gguf')) return openGgufCheckpoint(p);
  throw new ModelError(`${p}: expected a model directory, a .gguf file or "demo"`);
}

function openGgufCheckpoint(p: string): OpenedCheckpoint {
  const g = openGGUF(p);
  // The vocabulary lives in the GGUF metadata; loadTokenizer reads it from the same file.
  const hasVocab = g.file.metadata.has('tokenizer.ggml.tokens');
  return { source: g.source, config: g.config, notices: g.notices, format: 'gguf', tokenizerPath: hasVocab ? p : undefined };
}

/** What loadModel would report, from the headers only: no weights are read (for `gemma info`). */
export type ModelDescription = Omit<LoadedModel, 'model'>;

export async function inspectModel(spec: string, options: Pick<LoadOptions, 'noTokenizer'> = {}): Promise<ModelDescription> {
  const p = resolveModelPath(spec);
  const ck = openCheckpoint(p);
  try {
    const tokenizer = !options.noTokenizer && ck.tokenizerPath ? await loadTokenizer(ck.tokenizerPath) : undefined;
    const { dtypes, weightBytes } = tensorStats(ck.source);
    return { tokenizer, config: ck.config, path: p, format: ck.format, dtypes, weightBytes, notices: ck.notices };
  } finally {
    ck.source.close();
  }
}

function tensorStats(source: TensorSource): { dtypes: Record<string, number>; weightBytes: number } {
  const dtypes: Record<string, number> = {};
  let weightBytes = 0;
  for (const t of source.list()) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    weightBytes += t.byteLength;
  }
  return { dtypes, weightBytes };
}

export async function loadModel(spec: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const p = resolveModelPath(spec);
  const ck = openCheckpoint(p);
  try {
    let tokenizer: Tokenizer | undefined;
    if (!options.noTokenizer && ck.tokenizerPath) tokenizer = await loadTokenizer(ck.tokenizerPath);
    const backend = await createBackend(options.backend, options.threads);
    const { dtypes, weightBytes } = tensorStats(ck.source);
    const vocab = Math.min(tokenizer?.vocabSize ?? ck.config.vocabSize, ck.config.vocabSize);
    const model = await createModel(ck.source, ck.config, { ...options, backend, vocabSize: vocab });
    const notices = [...ck.notices];
    if (options.kvType === 'f16' && !(backend.allocF16 && backend.writeF16)) notices.push(`the ${backend.name} backend keeps the KV cache in f32 (an f16 cache needs the wasm backend)`);
    return { model, tokenizer, config: ck.config, path: p, format: ck.format, dtypes, weightBytes, notices };
  } catch (e) {
    if (e instanceof GemmaError) throw e;
    throw new ModelError(`failed to load ${spec}: ${(e as Error).message}`, { cause: e });
  } finally {
    ck.source.close();
  }
}


/** Build a model from an open TensorSource (the source may be closed afterwards). */
export async function createModel(
  source: TensorSource,
  config: ModelConfig,
  options: LoadOptions & { vocabSize?: number } = {},
): Promise<GemmaModel> {
  const backend = await createBackend(options.backend, options.threads);
  const weights = loadWeights(source, config, backend, { onProgress: options.onProgress });
  return new GemmaModel(config, weights, backend, { vocabSize: options.vocabSize, contextSize: options.contextSize, chunkSize: options.chunkSize, kvType: options.kvType });
}
