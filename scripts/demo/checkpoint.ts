/**
 * The demo's Gemma 3 text configuration and its initial weights: config.json and
 * generation_config.json in the Hugging Face layout, and a seeded initial model.safetensors
 * (HF init: normal std 0.02 for matrices, zeros for RMSNorm weights, which Gemma applies as
 * 1 + w) that pretraining starts from. The initial weights are stored in BF16: training keeps
 * f32 weights in memory and saves each tensor in its stored type, so the trained model comes out
 * in BF16 too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { f32ToBf16 } from '../../src/formats/half.js';
import { writeSafetensors, type TensorToWrite } from '../../src/formats/safetensors.js';
import { mulberry32 } from '../../src/util/mulberry32.js';

export interface DemoShape {
  tokenizerVocab: number;
  /** Embedding rows: the tokenizer's pieces padded to a multiple of 64 (like Gemma 3's 262 208 > 262 144). */
  tableRows: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  slidingWindow: number;
}

/** Gemma 3's pattern: every sixth layer global, the others sliding-window. */
export const layerTypes = (layers: number): string[] => Array.from({ length: layers }, (_, i) => ((i + 1) % 6 === 0 ? 'full_attention' : 'sliding_attention'));

export function writeConfigs(dir: string, s: DemoShape): void {
  const json = (file: string, value: unknown): void => fs.writeFileSync(path.join(dir, file), JSON.stringify(value, null, 2) + '\n');
  json('config.json', {
    architectures: ['Gemma3ForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    attn_logit_softcapping: null,
    bos_token_id: 2,
    cache_implementation: 'hybrid',
    eos_token_id: [1, 106],
    final_logit_softcapping: null,
    head_dim: s.headDim,
    hidden_activation: 'gelu_pytorch_tanh',
    hidden_size: s.hidden,
    initializer_range: 0.02,
    intermediate_size: s.intermediate,
    layer_types: layerTypes(s.layers),
    max_position_embeddings: 8192,
    model_type: 'gemma3_text',
    num_attention_heads: s.heads,
    num_hidden_layers: s.layers,
    num_key_value_heads: s.kvHeads,
    pad_token_id: 0,
    query_pre_attn_scalar: s.headDim,
    rms_norm_eps: 1e-6,
    rope_local_base_freq: 10000.0,
    rope_scaling: null,
    rope_theta: 1000000.0,
    sliding_window: s.slidingWindow,
    sliding_window_pattern: 6,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.53.0',
    use_cache: true,
    vocab_size: s.tableRows,
  });
  // Greedy by default: the demo's answers are meant to be exact.
  json('generation_config.json', {
    bos_token_id: 2,
    cache_implementation: 'hybrid',
    do_sample: false,
    eos_token_id: [1, 106],
    pad_token_id: 0,
    transformers_version: '4.53.0',
  });
}

/** Seeded BF16 initial weights with the exact HF Gemma 3 tensor names; returns the parameter count. */
export function writeInitialWeights(file: string, s: DemoShape, seed: number): number {
  const rnd = mulberry32(seed);
  const gaussian = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const tensor = (name: string, shape: number[], std: number): TensorToWrite => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Uint16Array(n);
    if (std > 0) for (let i = 0; i < n; i++) v[i] = f32ToBf16(std * gaussian());
    return { name, dtype: 'bf16', shape, data: new Uint8Array(v.buffer) };
  };
  const H = s.hidden, D = s.headDim;
  const tensors: TensorToWrite[] = [tensor('model.embed_tokens.weight', [s.tableRows, H], 0.02)];
  for (let i = 0; i < s.layers; i++) {
    const p = `model.layers.${i}.`;
    tensors.push(
      tensor(`${p}self_attn.q_proj.weight`, [s.heads * D, H], 0.02),
      tensor(`${p}self_attn.k_proj.weight`, [s.kvHeads * D, H], 0.02),
      tensor(`${p}self_attn.v_proj.weight`, [s.kvHeads * D, H], 0.02),
      tensor(`${p}self_attn.o_proj.weight`, [H, s.heads * D], 0.02),
      tensor(`${p}self_attn.q_norm.weight`, [D], 0),
      tensor(`${p}self_attn.k_norm.weight`, [D], 0),
      tensor(`${p}input_layernorm.weight`, [H], 0),
      tensor(`${p}post_attention_layernorm.weight`, [H], 0),
      tensor(`${p}pre_feedforward_layernorm.weight`, [H], 0),
      tensor(`${p}post_feedforward_layernorm.weight`, [H], 0),
      tensor(`${p}mlp.gate_proj.weight`, [s.intermediate, H], 0.02),
      tensor(`${p}mlp.up_proj.weight`, [s.intermediate, H], 0.02),
      tensor(`${p}mlp.down_proj.weight`, [H, s.intermediate], 0.02),
    );
  }
  tensors.push(tensor('model.norm.weight', [H], 0));
  writeSafetensors(file, tensors, { format: 'pt' });
  return tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
}
