/**
 * loadModel / loadTokenizer for the web build: a checkpoint named by URL (a Hugging Face model
 * directory - config.json, tokenizer files, model.safetensors or a sharded index - or a .gguf
 * file), or given as File / Blob objects (a file input, drag and drop). Tensors are read one at a
 * time with range requests (through the Cache API by default) and copied into backend memory, so
 * the JS heap holds one tensor at a time, never the whole file.
 */
import { normalizeHfConfig } from '../config/model-config.js';
import { ConfigError, FormatError, GemmaError, ModelError, TokenizerError } from '../errors.js';
import { parseGGUF, type GGUFFile } from '../formats/gguf.js';
import { ggufSourceFrom } from '../formats/gguf-source.js';
import { tokenizerFromGGUFMetadata } from '../tokenizer/gguf-vocab.js';
import { parseSafetensorsHeader, safetensorsHeaderLength, type SafetensorsEntry } from '../formats/safetensors.js';
import type { TensorSource } from '../formats/tensor-source.js';
import { assembleModel, type LoadedModel, type LoadOptions, type OpenedCheckpoint } from '../model/create.js';
import type { HFTokenizerConfig, HFTokenizerJSON } from '../tokenizer/hf-json.js';
import { tokenizerDataFromHFJson } from '../tokenizer/hf-json.js';
import { SentencePieceTokenizer } from '../tokenizer/sentencepiece.js';
import { tokenizerDataFromModelProto } from '../tokenizer/spm-model.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { blobByteSource, openUrl, readAll, type ByteSource, type HttpSourceOptions } from './byte-source.js';
import { physicalCores, sharedMemoryAvailable } from './threads.js';

/** Where a checkpoint comes from: a URL, one file (.gguf or .safetensors), or the files of a model directory. */
export type ModelInput = string | URL | Blob | File | ArrayLike<File> | Iterable<File>;

export interface WebLoadOptions extends LoadOptions, HttpSourceOptions {}

/** A directory of named files: URLs under a base, or picked File objects. */
interface FileSet {
  describe: string;
  /** undefined when the file does not exist. */
  open(name: string): Promise<ByteSource | undefined>;
}

function urlFileSet(base: string, options: HttpSourceOptions): FileSet {
  const dir = base.endsWith('/') ? base : base + '/';
  return { describe: base, open: (name) => openUrl(new URL(name, dir).href, options) };
}

function blobFileSet(files: File[]): FileSet {
  const byName = new Map(files.map((f) => [f.name, f]));
  return {
    describe: files.map((f) => f.name).join(', '),
    open: async (name) => {
      const f = byName.get(name);
      return f && blobByteSource(f, f.name);
    },
  };
}

async function text(src: ByteSource): Promise<string> {
  return new TextDecoder().decode(await readAll(src));
}

async function json(src: ByteSource, error: (m: string) => GemmaError): Promise<unknown> {
  try {
    return JSON.parse(await text(src));
  } catch (e) {
    throw error(`${src.name} is not valid JSON: ${(e as Error).message}`);
  }
}

/** A TensorSource over safetensors files read asynchronously (read() is not available). */
async function openSafetensorsFiles(files: ByteSource[]): Promise<TensorSource> {
  const tensors = new Map<string, { entry: SafetensorsEntry; file: ByteSource }>();
  for (const file of files) {
    const n = safetensorsHeaderLength(file.name, await file.read(0, Math.min(8, file.size)), file.size);
    const entries = parseSafetensorsHeader(file.name, await file.read(8, n), file.size);
    for (const entry of entries) {
      if (tensors.has(entry.name)) throw new FormatError(`${file.name}: tensor "${entry.name}" appears in more than one shard`);
      tensors.set(entry.name, { entry, file });
    }
  }
  const info = ({ name, dtype, shape, byteLength }: SafetensorsEntry) => ({ name, dtype, shape, byteLength });
  const lookup = (name: string) => {
    const t = tensors.get(name);
    if (!t) throw new FormatError(`tensor "${name}" is not in the checkpoint`);
    return t;
  };
  return {
    normWeightsIncludeOne: false,
    list: () => [...tensors.values()].map((t) => info(t.entry)),
    get: (name) => {
      const t = tensors.get(name);
      return t && info(t.entry);
    },
    read(name) {
      throw new ModelError(`tensor "${name}": this source is read asynchronously (readAsync)`);
    },
    readAsync: async (name) => {
      const { entry, file } = lookup(name);
      return file.read(entry.offset, entry.byteLength);
    },
    close: () => tensors.clear(),
  };
}

async function safetensorsShards(set: FileSet): Promise<ByteSource[]> {
  const single = await set.open('model.safetensors');
  if (single) return [single];
  const index = await set.open('model.safetensors.index.json');
  if (!index) throw new ModelError(`${set.describe}: no model.safetensors or model.safetensors.index.json`);
  const parsed = (await json(index, (m) => new FormatError(m))) as { weight_map?: Record<string, string> };
  if (!parsed || typeof parsed.weight_map !== 'object' || parsed.weight_map === null) throw new FormatError(`${index.name}: missing "weight_map" object`);
  const shards: ByteSource[] = [];
  for (const s of [...new Set(Object.values(parsed.weight_map))].sort()) {
    if (typeof s !== 'string' || s.includes('..') || s.startsWith('/') || /^[a-z]+:/i.test(s)) throw new FormatError(`${index.name}: invalid shard file name ${JSON.stringify(s)}`);
    const shard = await set.open(s);
    if (!shard) throw new FormatError(`shard file missing: ${s}`);
    shards.push(shard);
  }
  return shards;
}

/** The tokenizer of a model directory: tokenizer.json, else tokenizer.model; tokenizer_config.json and chat_template.jinja beside it. */
async function tokenizerFromSet(set: FileSet): Promise<Tokenizer | undefined> {
  const jsonFile = await set.open('tokenizer.json');
  const modelFile = jsonFile ? undefined : await set.open('tokenizer.model');
  if (!jsonFile && !modelFile) return undefined;
  const cfgFile = await set.open('tokenizer_config.json');
  let config: HFTokenizerConfig | undefined;
  if (cfgFile) {
    const cfg = await json(cfgFile, (m) => new TokenizerError(m));
    if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new TokenizerError(`${cfgFile.name}: not a JSON object`);
    config = cfg as HFTokenizerConfig;
    if (config.chat_template === undefined) {
      const jinja = await set.open('chat_template.jinja');
      if (jinja) config.chat_template = await text(jinja);
    }
  }
  if (jsonFile) return new SentencePieceTokenizer(tokenizerDataFromHFJson((await json(jsonFile, (m) => new TokenizerError(m))) as HFTokenizerJSON, config));
  return new SentencePieceTokenizer(tokenizerDataFromModelProto(await readAll(modelFile!), config));
}

async function openDirectory(set: FileSet, options: WebLoadOptions): Promise<{ ck: OpenedCheckpoint; tokenizer: Tokenizer | undefined }> {
  const cfgFile = await set.open('config.json');
  if (!cfgFile) throw new ModelError(`${set.describe}: no config.json (not a Hugging Face model directory)`);
  const { config, notices } = normalizeHfConfig(await json(cfgFile, (m) => new ConfigError(m)));
  const tokenizer = options.noTokenizer ? undefined : await tokenizerFromSet(set);
  const source = await openSafetensorsFiles(await safetensorsShards(set));
  return { ck: { source, config, notices, format: 'safetensors' }, tokenizer };
}

/** Bytes of a GGUF header to fetch first; doubled until the header (vocabulary included) fits. */
const GGUF_HEADER_BYTES = 8 * 1024 * 1024;

/** Parse a GGUF header from its first bytes, fetching more while the header runs past them. */
async function readGgufHeader(src: ByteSource): Promise<GGUFFile> {
  for (let want = Math.min(src.size, GGUF_HEADER_BYTES); ; want = Math.min(src.size, want * 2)) {
    const prefix = await src.read(0, want);
    let short = false;
    try {
      return parseGGUF(src.name, src.size, (buf, offset, length, position) => {
        const n = Math.max(0, Math.min(length, prefix.byteLength - position));
        if (n < length) short = true;
        buf.set(prefix.subarray(position, position + n), offset);
        return n;
      });
    } catch (e) {
      if (!short || want >= src.size) throw e;
    }
  }
}

async function openGgufSource(src: ByteSource, options: WebLoadOptions): Promise<{ ck: OpenedCheckpoint; tokenizer: Tokenizer | undefined }> {
  const file = await readGgufHeader(src);
  const g = ggufSourceFrom(file, (offset, length) => src.read(offset, length));
  const tokenizer = !options.noTokenizer && file.metadata.has('tokenizer.ggml.tokens') ? tokenizerFromGGUFMetadata(file.metadata as Map<string, unknown>) : undefined;
  return { ck: { source: g.source, config: g.config, notices: g.notices, format: 'gguf' }, tokenizer };
}

function isFileList(x: unknown): x is ArrayLike<File> | Iterable<File> {
  return typeof x === 'object' && x !== null && !(x instanceof Blob) && !(x instanceof URL) && (Symbol.iterator in x || 'length' in x);
}

/** The threads the wasm backend may use here, and a notice when the page cannot share memory. */
function browserThreads(options: WebLoadOptions, notices: string[]): number | undefined {
  const wasm = options.backend === undefined || options.backend === 'wasm';
  if (!wasm) return options.threads;
  if (!sharedMemoryAvailable()) {
    if (options.threads === undefined || options.threads > 1) {
      notices.push('running the wasm backend on one thread: this page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp for Web Worker threads)');
    }
    return 1;
  }
  return options.threads ?? physicalCores();
}

/**
 * Load a checkpoint in the browser (or any runtime with fetch). `input` is the URL of a model
 * directory or of a .gguf file, a File / Blob (.gguf or a single .safetensors needs the
 * directory's other files: pass them all), or a list of File objects of a model directory.
 */
export async function loadModel(input: ModelInput, options: WebLoadOptions = {}): Promise<LoadedModel> {
  let opened: { ck: OpenedCheckpoint; tokenizer: Tokenizer | undefined };
  let where: string;
  try {
    if (typeof input === 'string' || input instanceof URL) {
      const url = new URL(String(input), (globalThis as { location?: { href: string } }).location?.href).href;
      where = url;
      if (/\.gguf(\?|#|$)/i.test(new URL(url).pathname)) {
        const src = await openUrl(url, options);
        if (!src) throw new ModelError(`${url}: not found (HTTP 404)`);
        opened = await openGgufSource(src, options);
      } else opened = await openDirectory(urlFileSet(url, options), options);
    } else if (isFileList(input)) {
      const files = Array.from(input as ArrayLike<File>);
      where = files.map((f) => f.name).join(', ');
      const gguf = files.find((f) => f.name.toLowerCase().endsWith('.gguf'));
      opened = gguf && !files.some((f) => f.name === 'config.json') ? await openGgufSource(blobByteSource(gguf, gguf.name), options) : await openDirectory(blobFileSet(files), options);
    } else if (input instanceof Blob) {
      where = (input as Partial<File>).name ?? 'blob';
      opened = await openGgufSource(blobByteSource(input, where), options);
    } else throw new ModelError(`loadModel: expected a URL, a File / Blob or a list of Files, got ${typeof input}`);
  } catch (e) {
    if (e instanceof GemmaError) throw e;
    throw new ModelError(`failed to load ${String(input)}: ${(e as Error).message}`, { cause: e });
  }
  const notices: string[] = [];
  const threads = browserThreads(options, notices);
  const ck = { ...opened.ck, notices: [...opened.ck.notices, ...notices] };
  try {
    return await assembleModel(ck, opened.tokenizer, where, { ...options, ...(threads !== undefined ? { threads } : {}) });
  } finally {
    ck.source.close();
  }
}

/**
 * A tokenizer from a URL (tokenizer.json, tokenizer.model, a .gguf file, or a model directory:
 * tokenizer.json preferred, then tokenizer.model, with tokenizer_config.json beside either) or a File.
 */
export async function loadTokenizer(input: string | URL | Blob | File, options: HttpSourceOptions = {}): Promise<Tokenizer> {
  let src: ByteSource | undefined;
  let name: string;
  if (typeof input === 'string' || input instanceof URL) {
    const url = new URL(String(input), (globalThis as { location?: { href: string } }).location?.href);
    name = url.pathname.toLowerCase();
    if (!/\.(json|model|gguf)$/.test(name)) {
      const tok = await tokenizerFromSet(urlFileSet(url.href, options));
      if (!tok) throw new TokenizerError(`no tokenizer.json or tokenizer.model in ${url.href}`);
      return tok;
    }
    src = await openUrl(url.href, options);
    if (!src) throw new TokenizerError(`${url.href}: not found (HTTP 404)`);
    if (!name.endsWith('.gguf')) {
      const dir = new URL('.', url).href;
      const set = urlFileSet(dir, options);
      const file = name.endsWith('.json') ? 'tokenizer.json' : 'tokenizer.model';
      return tokenizerFromSet({ describe: dir, open: (n) => (n === file ? Promise.resolve(src) : n === 'tokenizer_config.json' || n === 'chat_template.jinja' ? set.open(n) : Promise.resolve(undefined)) }) as Promise<Tokenizer>;
    }
  } else {
    name = ((input as Partial<File>).name ?? '').toLowerCase();
    src = blobByteSource(input, name || 'blob');
    if (name.endsWith('.json')) return new SentencePieceTokenizer(tokenizerDataFromHFJson((await json(src, (m) => new TokenizerError(m))) as HFTokenizerJSON));
    if (name.endsWith('.model')) return new SentencePieceTokenizer(tokenizerDataFromModelProto(await readAll(src)));
  }
  const { ck, tokenizer } = await openGgufSource(src, { noTokenizer: false });
  ck.source.close();
  if (!tokenizer) throw new TokenizerError(`${src.name}: the GGUF file has no tokenizer vocabulary`);
  return tokenizer;
}
