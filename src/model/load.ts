/**
 * loadModel: one entry point for every place a Gemma checkpoint lives - a Hugging Face model
 * directory (config.json + safetensors, single or sharded), a GGUF file, or `demo` (the small
 * checkpoint shipped in models/demo).
 */
import fs from 'node:fs';
import path from 'node:path';
import { normalizeHfConfig } from '../config/model-config.js';
import { ConfigError, GemmaError, ModelError } from '../errors.js';
import { openGGUF } from '../formats/gguf-source.js';
import { openSafetensors } from '../formats/safetensors.js';
import { cachedModelPath } from '../hub/pull.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { packageRoot } from '../util/package-root.js';
import { assembleModel, tensorStats, type LoadOptions, type LoadedModel, type ModelDescription, type OpenedCheckpoint } from './create.js';

export { createModel, type BackendName, type LoadOptions, type LoadedModel, type ModelDescription } from './create.js';

/** The directory of the demo model shipped with the package (`models/demo`: a real Gemma 3 layout and tokenizer, random weights). */
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

interface LocalCheckpoint extends OpenedCheckpoint {
  tokenizerPath: string | undefined;
}

function openCheckpoint(p: string): LocalCheckpoint {
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

function openGgufCheckpoint(p: string): LocalCheckpoint {
  const g = openGGUF(p);
  // The vocabulary lives in the GGUF metadata; loadTokenizer reads it from the same file.
  const hasVocab = g.file.metadata.has('tokenizer.ggml.tokens');
  return { source: g.source, config: g.config, notices: g.notices, format: 'gguf', tokenizerPath: hasVocab ? p : undefined };
}

/**
 * What {@link loadModel} would report, read from the headers only (no weights are loaded).
 * @param spec - as for loadModel
 */
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

/**
 * Load a Gemma checkpoint with its tokenizer.
 *
 * @param spec - a Hugging Face model directory (config.json + safetensors, single or sharded), a
 *   `.gguf` file, `demo` (the bundled demo model), or `ORG/NAME` of a checkpoint fetched with
 *   {@link pullModel} / `gemma pull`.
 * @param options - backend, threads, context size, KV cache type, progress callback.
 * @returns `{ model, tokenizer, config, path, format, dtypes, weightBytes, notices }`; call
 *   `model.dispose()` when done (it frees the backend's memory and stops its worker threads).
 * @throws {@link FormatError}, {@link ConfigError}, {@link ModelError}, {@link TokenizerError} naming the problem.
 *
 * @example
 * ```ts
 * const { model, tokenizer } = await loadModel('demo', { backend: 'wasm', kvType: 'f16' });
 * ```
 */
export async function loadModel(spec: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const p = resolveModelPath(spec);
  const ck = openCheckpoint(p);
  try {
    let tokenizer: Tokenizer | undefined;
    try {
      if (!options.noTokenizer && ck.tokenizerPath) tokenizer = await loadTokenizer(ck.tokenizerPath);
    } catch (e) {
      if (e instanceof GemmaError) throw e;
      throw new ModelError(`failed to load ${spec}: ${(e as Error).message}`, { cause: e });
    }
    const loaded = await assembleModel(ck, tokenizer, spec, options);
    return { ...loaded, path: p };
  } finally {
    ck.source.close();
  }
}
