/**
 * Pull the Gemma tensors out of a TensorSource into backend matrices and f32 norm vectors.
 * Names are Hugging Face names; the prefix (model., language_model.model., model.language_model.)
 * is detected from where embed_tokens lives.
 */
import type { Backend, Matrix } from '../backend/backend.js';
import type { TensorBackend } from '../backend/tensor.js';
import type { ModelConfig } from '../config/model-config.js';
import { ModelError } from '../errors.js';
import { decodeBf16, decodeF16 } from '../formats/half.js';
import type { TensorSource } from '../formats/tensor-source.js';

export interface LayerWeights {
  inputNorm: Float32Array;
  /** Gemma 1: the pre-MLP norm. Gemma 2/3: the norm on the attention output. */
  postAttnNorm: Float32Array;
  preFfnNorm?: Float32Array;
  postFfnNorm?: Float32Array;
  qNorm?: Float32Array;
  kNorm?: Float32Array;
  /**
   * Matrices whose outputs, concatenated per token, give [q | k | v]: one fused matrix when the
   * three share a dtype (one pass over the activations, one kernel call), else q, k, v.
   */
  qkv: Matrix[];
  o: Matrix;
  /** [gate | up] per token: one fused matrix when they share a dtype, else gate, up. */
  gateUp: Matrix[];
  down: Matrix;
  /** LoRA adapters applied without merging: y += s * B (A x), s per row (GemmaModel.addLoraAdapter). */
  lora?: Partial<Record<LoraSlot, LoraDelta[]>>;
}

/** The linear layers an adapter can change. */
export type LoraSlot = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';

/** One adapter on one linear layer: A [r, in], B [out, r] (alpha / r folded in), as backend matrices. */
export interface LoraDelta {
  A: Matrix;
  B: Matrix;
  /** The adapter's id (GemmaModel.addLoraAdapter): its scale comes per row. */
  adapter: number;
  rank: number;
}

export interface GemmaWeights {
  embed: Matrix;
  layers: LayerWeights[];
  finalNorm: Float32Array;
}

export interface LoadWeightsOptions {
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export function detectPrefix(source: TensorSource): string {
  for (const t of source.list()) {
    if (t.name.endsWith('embed_tokens.weight')) return t.name.slice(0, -'embed_tokens.weight'.length);
  }
  throw new ModelError('checkpoint has no embed_tokens.weight tensor: not a Gemma text model');
}

/** Stored bytes of a tensor: through readAsync where the source has it (HTTP, browser Blobs), else read. */
function readTensor(source: TensorSource, name: string): Promise<Uint8Array> {
  return source.readAsync ? source.readAsync(name) : Promise.resolve(source.read(name));
}

export async function loadWeights(source: TensorSource, config: ModelConfig, backend: Backend | TensorBackend, options: LoadWeightsOptions = {}): Promise<GemmaWeights> {
  const prefix = detectPrefix(source);
  const total = source.list().reduce((a, t) => a + t.byteLength, 0);
  let done = 0;
  const progress = (bytes: number) => {
    done += bytes;
    options.onProgress?.(done, total);
  };

  const expectShape = (name: string, shape: number[]) => {
    const info = source.get(prefix + name);
    if (!info) throw new ModelError(`checkpoint is missing tensor "${prefix + name}"`);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new ModelError(`tensor "${prefix + name}" has shape [${info.shape.join(', ')}], config expects [${shape.join(', ')}]`);
    }
    return info;
  };

  const matrix = async (name: string, rows: number, cols: number): Promise<Matrix> => {
    const info = expectShape(name, [rows, cols]);
    const data = await readTensor(source, prefix + name);
    progress(data.byteLength);
    return backend.prepareMatrix({ dtype: info.dtype, rows, cols, data });
  };

  /**
   * Matrices stacked along rows ([rows_0 + rows_1 + ..., cols]) as one backend matrix when the
   * backend can (prepareStacked) and they share a dtype: decoding reads them in one kernel call.
   */
  const stacked = async (parts: Array<{ name: string; rows: number }>, cols: number): Promise<Matrix[]> => {
    const infos = parts.map((p) => expectShape(p.name, [p.rows, cols]));
    const dtype = infos[0]!.dtype;
    const out: Matrix[] = [];
    if (!backend.prepareStacked || infos.some((i) => i.dtype !== dtype)) {
      for (const p of parts) out.push(await matrix(p.name, p.rows, cols));
      return out;
    }
    const weights = [];
    for (const p of parts) {
      const data = await readTensor(source, prefix + p.name);
      progress(data.byteLength);
      weights.push({ dtype, rows: p.rows, cols, data });
    }
    return [backend.prepareStacked(weights)];
  };

  const norm = async (name: string, dim: number): Promise<Float32Array> => {
    const info = expectShape(name, [dim]);
    const data = await readTensor(source, prefix + name);
    progress(data.byteLength);
    const out = new Float32Array(dim);
    if (info.dtype === 'f32') out.set(new Float32Array(data.buffer, data.byteOffset, dim));
    else if (info.dtype === 'bf16') decodeBf16(data, 0, dim, out);
    else if (info.dtype === 'f16') decodeF16(data, 0, dim, out);
    else throw new ModelError(`norm tensor "${prefix + name}" has block-quantized type ${info.dtype}`);
    if (!source.normWeightsIncludeOne) for (let i = 0; i < dim; i++) out[i] = 1 + out[i]!;
    return out;
  };

  const c = config;
  const embedInfo = source.get(prefix + 'embed_tokens.weight')!;
  const tableRows = embedInfo.shape[0]!;
  if (embedInfo.shape.length !== 2 || embedInfo.shape[1] !== c.hiddenSize) {
    throw new ModelError(`embed_tokens.weight has shape [${embedInfo.shape.join(', ')}], expected [vocab, ${c.hiddenSize}]`);
  }
  if (tableRows < c.vocabSize) throw new ModelError(`embedding table has ${tableRows} rows but vocab_size is ${c.vocabSize}`);
  const embed = await matrix('embed_tokens.weight', tableRows, c.hiddenSize);
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `layers.${i}.`;
    const layer: LayerWeights = {
      inputNorm: await norm(p + 'input_layernorm.weight', c.hiddenSize),
      postAttnNorm: await norm(p + 'post_attention_layernorm.weight', c.hiddenSize),
      qkv: await stacked(
        [
          { name: p + 'self_attn.q_proj.weight', rows: qDim },
          { name: p + 'self_attn.k_proj.weight', rows: kvDim },
          { name: p + 'self_attn.v_proj.weight', rows: kvDim },
        ],
        c.hiddenSize,
      ),
      o: await matrix(p + 'self_attn.o_proj.weight', c.hiddenSize, qDim),
      gateUp: await stacked(
        [
          { name: p + 'mlp.gate_proj.weight', rows: c.intermediateSize },
          { name: p + 'mlp.up_proj.weight', rows: c.intermediateSize },
        ],
        c.hiddenSize,
      ),
      down: await matrix(p + 'mlp.down_proj.weight', c.hiddenSize, c.intermediateSize),
    };
    if (c.sandwichNorms) {
      layer.preFfnNorm = await norm(p + 'pre_feedforward_layernorm.weight', c.hiddenSize);
      layer.postFfnNorm = await norm(p + 'post_feedforward_layernorm.weight', c.hiddenSize);
    }
    if (c.qkNorm) {
      layer.qNorm = await norm(p + 'self_attn.q_norm.weight', c.headDim);
      layer.kNorm = await norm(p + 'self_attn.k_norm.weight', c.headDim);
    }
    layers.push(layer);
  }
  const finalNorm = await norm('norm.weight', c.hiddenSize);
  return { embed, layers, finalNorm };
}
