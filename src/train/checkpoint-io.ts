/**
 * Loading a checkpoint for training and writing a fully fine-tuned one: config.json +
 * model.safetensors with the input's tensor names and dtype (f32 / f16 / bf16; block-quantized
 * inputs are written as f32), plus the tokenizer files, so that the output is a model directory
 * every command loads.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DType } from '../formats/dtype.js';
import { f32ToBf16, f32ToF16 } from '../formats/half.js';
import { writeSafetensors, type TensorToWrite } from '../formats/safetensors.js';
import { resolveModelPath } from '../model/load.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { jsMatmul, type MatmulKernels } from './matmul.js';
import { createWasmMatmul } from './wasm-matmul.js';
import { openTrainSource, trainModelFromSource, type TrainModel } from './params.js';

export interface LoadTrainOptions {
  /** Matrix-product kernels: 'wasm' (default: WebAssembly SIMD), 'js' (the readable f64-sum reference), or your own. */
  backend?: 'js' | 'wasm' | MatmulKernels;
  /** true (default): f32 trainable parameters (full fine-tuning); false: a frozen base in its stored type (LoRA). */
  trainable?: boolean;
  /** With trainable: allocate gradients (default true). */
  grads?: boolean;
  /** Threads of the wasm kernels (default: the physical cores); results do not depend on it. */
  threads?: number;
  noTokenizer?: boolean;
}

/** A checkpoint (model directory, .gguf file, `demo`, or a pulled ORG/NAME) as f32 training weights. */
export async function loadTrainModel(spec: string, options: LoadTrainOptions = {}): Promise<{ model: TrainModel; tokenizer: Tokenizer | undefined }> {
  const p = resolveModelPath(spec);
  const opened = openTrainSource(p);
  try {
    const b = options.backend ?? 'wasm';
    const matmul = b === 'js' ? jsMatmul : b === 'wasm' ? await createWasmMatmul({ threads: options.threads }) : b;
    const model = trainModelFromSource(opened.source, opened.config, { path: p, format: opened.format, rawConfig: opened.rawConfig }, { trainable: options.trainable, grads: options.grads, matmul });
    let tokenizer: Tokenizer | undefined;
    if (!options.noTokenizer) {
      const hasTok = opened.format === 'gguf' || ['tokenizer.json', 'tokenizer.model'].some((f) => fs.existsSync(path.join(p, f)));
      if (hasTok) {
        try {
          tokenizer = await loadTokenizer(p);
        } catch {
          tokenizer = undefined; // a GGUF without a vocabulary: ids only
        }
      }
    }
    return { model, tokenizer };
  } finally {
    opened.source.close();
  }
}

function encodeAs(dtype: DType, values: Float32Array): { dtype: DType; data: Uint8Array } {
  if (dtype === 'bf16' || dtype === 'f16') {
    const out = new Uint16Array(values.length);
    const conv = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
    for (let i = 0; i < values.length; i++) out[i] = conv(values[i]!);
    return { dtype, data: new Uint8Array(out.buffer) };
  }
  return { dtype: 'f32', data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

/** Write the model's current weights as a Hugging Face directory (config.json + model.safetensors). */
export function saveFullModel(model: TrainModel, outDir: string): void {
  fs.mkdirSync(outDir, { recursive: true });
  const ck = model.checkpoint;
  const prefix = ck.format === 'safetensors' ? ck.prefix : 'model.';
  const tensors: TensorToWrite[] = model.params.map((p) => {
    const stored = ck.dtypes.get(p.name) ?? 'f32';
    const { dtype, data } = encodeAs(stored, p.data);
    return { name: prefix + p.name, dtype, shape: p.shape, data };
  });
  writeSafetensors(path.join(outDir, 'model.safetensors'), tensors, { format: 'pt' });
  fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(ck.rawConfig ?? hfConfigOf(model), null, 2) + '\n');
  if (ck.format === 'safetensors') {
    for (const f of TOKENIZER_FILES) {
      const src = path.join(ck.path, f);
      if (fs.existsSync(src) && path.resolve(src) !== path.resolve(outDir, f)) fs.copyFileSync(src, path.join(outDir, f));
    }
  }
}

/** A Hugging Face config.json for a model read from GGUF (its metadata, in HF's field names). */
export function hfConfigOf(model: TrainModel): Record<string, unknown> {
  const c = model.config;
  const global = c.layers.find((l) => !l.sliding) ?? c.layers[0]!;
  const local = c.layers.find((l) => l.sliding);
  const modelType = c.family === 'gemma3' ? 'gemma3_text' : c.family;
  const cfg: Record<string, unknown> = {
    architectures: [c.family === 'gemma' ? 'GemmaForCausalLM' : c.family === 'gemma2' ? 'Gemma2ForCausalLM' : 'Gemma3ForCausalLM'],
    model_type: modelType,
    vocab_size: model.weights.embed.rows,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    rms_norm_eps: c.rmsNormEps,
    max_position_embeddings: c.maxPositionEmbeddings,
    query_pre_attn_scalar: c.queryPreAttnScalar,
    attn_logit_softcapping: c.attnSoftcap || null,
    final_logit_softcapping: c.finalSoftcap || null,
    hidden_activation: 'gelu_pytorch_tanh',
    rope_theta: global.ropeTheta,
    rope_scaling: global.ropeScaling !== 1 ? { rope_type: 'linear', factor: global.ropeScaling } : null,
    tie_word_embeddings: true,
    bos_token_id: c.bosId,
    eos_token_id: c.eosIds.length === 1 ? c.eosIds[0] : c.eosIds,
    pad_token_id: c.padId,
    torch_dtype: 'float32',
  };
  if (local) {
    cfg.sliding_window = local.window;
    cfg.layer_types = c.layers.map((l) => (l.sliding ? 'sliding_attention' : 'full_attention'));
    if (c.family === 'gemma3') cfg.rope_local_base_freq = local.ropeTheta;
  }
  return cfg;
}
