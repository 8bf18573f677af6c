/**
 * openGGUF: a Gemma GGUF file as a TensorSource with Hugging Face tensor names and a
 * ModelConfig built from its metadata (llama.cpp semantics, see gguf-names.ts).
 */
import type { ModelConfig } from '../config/model-config.js';
import { FormatError } from '../errors.js';
import { metaString, readGGUF, readTensorData, readTensorInto, type GGUFFile, type GGUFTensorInfo } from './gguf.js';
import { configFromGGUFMetadata, expectedGgufTensors, ggufToHfName, type GemmaArch } from './gguf-names.js';
import type { TensorInfo, TensorSource } from './tensor-source.js';

export interface GGUFSource extends TensorSource {
  /** Read a tensor's stored bytes straight into `target` (no intermediate copy). */
  readInto(name: string, target: Uint8Array): void;
  /** The GGUF tensor behind an HF name. */
  ggufTensor(name: string): GGUFTensorInfo | undefined;
}

export interface OpenedGGUF {
  file: GGUFFile;
  source: GGUFSource;
  config: ModelConfig;
  arch: GemmaArch;
  /** Things the user should know (e.g. tensors that were ignored). */
  notices: string[];
}

/** Open a Gemma GGUF file: validated header, HF-named lazy tensor source, normalized config. */
export function openGGUF(path: string): OpenedGGUF {
  const file = readGGUF(path);
  const g = ggufTensors(file);
  const source: GGUFSource = {
    ...g.source,
    read: (name) => readTensorData(file, g.lookup(name)),
    readInto: (name, target) => readTensorInto(file, g.lookup(name), target),
    ggufTensor: (name) => g.byHf.get(name),
  };
  return { file, source, config: g.config, arch: g.arch, notices: g.notices };
}

/**
 * A Gemma GGUF header read elsewhere (the web build parses it from fetched bytes): config and a
 * TensorSource whose tensors come from `readAsync(offset, length)`.
 */
export function ggufSourceFrom(file: GGUFFile, readAsync: (offset: number, length: number) => Promise<Uint8Array>): Omit<OpenedGGUF, 'source'> & { source: TensorSource } {
  const g = ggufTensors(file);
  const source: TensorSource = {
    ...g.source,
    read: (name) => {
      throw new FormatError(`${file.path}: tensor "${name}" is read asynchronously (readAsync)`);
    },
    readAsync: async (name) => {
      const t = g.lookup(name);
      return readAsync(t.offset, t.byteLength);
    },
  };
  return { file, source, config: g.config, arch: g.arch, notices: g.notices };
}

/** Validate a GGUF header as a Gemma model and map its tensors to HF names. */
function ggufTensors(file: GGUFFile) {
  const path = file.path;
  const arch = metaString(file, 'general.architecture');
  if (arch === undefined) throw new FormatError(`${path}: metadata "general.architecture" is missing`);
  if (arch !== 'gemma' && arch !== 'gemma2' && arch !== 'gemma3') {
    throw new FormatError(`${path}: architecture "${arch}" is not a Gemma text model (expected gemma, gemma2 or gemma3)`);
  }
  const embd = file.tensorMap.get('token_embd.weight');
  if (!embd) throw new FormatError(`${path}: tensor "token_embd.weight" is missing`);
  if (embd.shape.length !== 2) throw new FormatError(`${path}: token_embd.weight should be 2-D, has shape ${JSON.stringify(embd.shape)}`);
  const config = configFromGGUFMetadata({ get: (k) => file.metadata.get(k), where: path }, embd.shape[0]!);

  const byHf = new Map<string, GGUFTensorInfo>();
  const notices: string[] = [];
  const ignored: string[] = [];
  for (const t of file.tensors) {
    const hf = ggufToHfName(arch, t.name);
    if (hf === undefined) {
      if (t.name === 'output.weight') ignored.push(t.name); // untied head: not a Gemma layout
      else if (t.name !== 'rope_freqs.weight') ignored.push(t.name);
      continue;
    }
    byHf.set(hf, t);
  }
  if (ignored.length) notices.push(`${path}: ignored ${ignored.length} tensor(s) that are not part of a Gemma text model: ${ignored.slice(0, 5).join(', ')}${ignored.length > 5 ? ', ...' : ''}`);
  const missing = expectedGgufTensors(arch, config.numLayers).filter((n) => !file.tensorMap.has(n));
  if (missing.length) throw new FormatError(`${path}: ${missing.length} tensor(s) missing, e.g. "${missing[0]}"`);
  checkShapes(path, config, file);

  const infoOf = (t: GGUFTensorInfo, name: string): TensorInfo => ({ name, dtype: t.dtype, shape: [...t.shape], byteLength: t.byteLength });
  let closed = false;
  const lookup = (name: string): GGUFTensorInfo => {
    if (closed) throw new FormatError(`${path}: GGUF source is closed`);
    const t = byHf.get(name);
    if (!t) throw new FormatError(`${path}: tensor "${name}" is not in the checkpoint`);
    return t;
  };
  const source = {
    normWeightsIncludeOne: true,
    list: () => [...byHf].map(([name, t]) => infoOf(t, name)),
    get: (name: string) => {
      const t = byHf.get(name);
      return t && infoOf(t, name);
    },
    close: () => {
      closed = true;
    },
  };
  return { config, arch: arch as GemmaArch, notices, byHf, lookup, source };
}

function checkShapes(path: string, c: ModelConfig, file: GGUFFile): void {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const want: Record<string, number[]> = {
    'token_embd.weight': [c.vocabSize, c.hiddenSize],
    'output_norm.weight': [c.hiddenSize],
  };
  for (let i = 0; i < c.numLayers; i++) {
    const b = `blk.${i}.`;
    want[b + 'attn_norm.weight'] = [c.hiddenSize];
    want[b + 'attn_q.weight'] = [q, c.hiddenSize];
    want[b + 'attn_k.weight'] = [kv, c.hiddenSize];
    want[b + 'attn_v.weight'] = [kv, c.hiddenSize];
    want[b + 'attn_output.weight'] = [c.hiddenSize, q];
    want[b + 'ffn_gate.weight'] = [c.intermediateSize, c.hiddenSize];
    want[b + 'ffn_up.weight'] = [c.intermediateSize, c.hiddenSize];
    want[b + 'ffn_down.weight'] = [c.hiddenSize, c.intermediateSize];
    want[b + 'ffn_norm.weight'] = [c.hiddenSize];
    if (c.sandwichNorms) {
      want[b + 'post_attention_norm.weight'] = [c.hiddenSize];
      want[b + 'post_ffw_norm.weight'] = [c.hiddenSize];
    }
    if (c.qkNorm) {
      want[b + 'attn_q_norm.weight'] = [c.headDim];
      want[b + 'attn_k_norm.weight'] = [c.headDim];
    }
  }
  for (const [name, shape] of Object.entries(want)) {
    const t = file.tensorMap.get(name);
    if (t && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new FormatError(`${path}: tensor "${name}" has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)} from the metadata`);
    }
  }
}
