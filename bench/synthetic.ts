/**
 * Random-weight Gemma checkpoints with real shapes, generated on the fly as a TensorSource (no
 * file). Block-quantized tensors are random bytes with a fixed small f16 scale per block, which
 * is a valid ggml block of that type. Used by the engine benchmark and the wasm memory tests.
 */
import { randomFillSync } from 'node:crypto';
import { normalizeHfConfig, type ModelConfig } from '../src/config/model-config.js';
import { DTYPE_LAYOUT, dtypeByteLength, type DType } from '../src/formats/dtype.js';
import { f32ToBf16, f32ToF16 } from '../src/formats/half.js';
import type { TensorInfo, TensorSource } from '../src/formats/tensor-source.js';

export const SHAPES: Record<string, Record<string, unknown>> = {
  'gemma-2b': {
    model_type: 'gemma', vocab_size: 256000, hidden_size: 2048, intermediate_size: 16384, num_hidden_layers: 18,
    num_attention_heads: 8, num_key_value_heads: 1, head_dim: 256, rms_norm_eps: 1e-6, max_position_embeddings: 8192,
    rope_theta: 10000, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0, hidden_activation: 'gelu_pytorch_tanh',
  },
  'gemma-2-2b': {
    model_type: 'gemma2', vocab_size: 256000, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26,
    num_attention_heads: 8, num_key_value_heads: 4, head_dim: 256, rms_norm_eps: 1e-6, max_position_embeddings: 8192,
    rope_theta: 10000, query_pre_attn_scalar: 256, attn_logit_softcapping: 50, final_logit_softcapping: 30,
    sliding_window: 4096, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0, hidden_activation: 'gelu_pytorch_tanh',
  },
  // a small Gemma 2 with the real vocabulary: quick checks of the benchmark itself (e.g. WebGPU rows on llvmpipe)
  'gemma-2-tiny': {
    model_type: 'gemma2', vocab_size: 256000, hidden_size: 256, intermediate_size: 1024, num_hidden_layers: 4,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64, rms_norm_eps: 1e-6, max_position_embeddings: 8192,
    rope_theta: 10000, query_pre_attn_scalar: 64, attn_logit_softcapping: 50, final_logit_softcapping: 30,
    sliding_window: 4096, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0, hidden_activation: 'gelu_pytorch_tanh',
  },
};

export function shapeConfig(name: string): { raw: Record<string, unknown>; config: ModelConfig } {
  const raw = SHAPES[name];
  if (!raw) throw new Error(`unknown model shape ${name}`);
  return { raw, config: normalizeHfConfig(raw).config };
}

/** Hugging Face tensor names and shapes of a Gemma text model. */
export function tensorShapes(c: ModelConfig): { name: string; shape: number[]; norm: boolean }[] {
  const H = c.hiddenSize, I = c.intermediateSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const t: { name: string; shape: number[]; norm: boolean }[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, H], norm: false }];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    t.push(
      { name: p + 'input_layernorm.weight', shape: [H], norm: true },
      { name: p + 'self_attn.q_proj.weight', shape: [q, H], norm: false },
      { name: p + 'self_attn.k_proj.weight', shape: [kv, H], norm: false },
      { name: p + 'self_attn.v_proj.weight', shape: [kv, H], norm: false },
      { name: p + 'self_attn.o_proj.weight', shape: [H, q], norm: false },
      { name: p + 'post_attention_layernorm.weight', shape: [H], norm: true },
      { name: p + 'mlp.gate_proj.weight', shape: [I, H], norm: false },
      { name: p + 'mlp.up_proj.weight', shape: [I, H], norm: false },
      { name: p + 'mlp.down_proj.weight', shape: [H, I], norm: false },
    );
    if (c.sandwichNorms) {
      t.push({ name: p + 'pre_feedforward_layernorm.weight', shape: [H], norm: true }, { name: p + 'post_feedforward_layernorm.weight', shape: [H], norm: true });
    }
  }
  t.push({ name: 'model.norm.weight', shape: [H], norm: true });
  return t;
}

/** Random bytes of `count` values of `dtype`, values of magnitude ~`scale`. */
export function randomTensor(dtype: DType, count: number, scale: number): Uint8Array {
  const bytes = new Uint8Array(dtypeByteLength(dtype, count));
  const { blockSize, blockBytes } = DTYPE_LAYOUT[dtype];
  switch (dtype) {
    case 'f32': {
      const f = new Float32Array(bytes.buffer);
      for (let i = 0; i < count; i++) f[i] = (Math.random() * 2 - 1) * scale;
      return bytes;
    }
    case 'bf16':
    case 'f16': {
      // a table of 4096 random values, repeated with a random offset per 4096-chunk (fast, non-trivial)
      const table = new Uint16Array(8192);
      for (let i = 0; i < table.length; i++) table[i] = dtype === 'bf16' ? f32ToBf16((Math.random() * 2 - 1) * scale) : f32ToF16((Math.random() * 2 - 1) * scale);
      const u = new Uint16Array(bytes.buffer);
      for (let o = 0; o < count; o += 4096) {
        const s = (Math.random() * 4096) | 0;
        u.set(table.subarray(s, s + Math.min(4096, count - o)), o);
      }
      return bytes;
    }
    default: {
      randomFillSync(bytes);
      // q8_0: |q| <= 127, d = scale/64 ; q4_0: d = scale/4 ; k-quants: super-block d/dmin small
      const d = dtype === 'q8_0' ? f32ToF16(scale / 64) : f32ToF16(scale / 4);
      const nb = count / blockSize;
      if (dtype === 'q8_0' || dtype === 'q4_0') {
        for (let b = 0; b < nb; b++) {
          bytes[b * blockBytes] = d & 0xff;
          bytes[b * blockBytes + 1] = d >> 8;
        }
      } else if (dtype === 'q4_k') {
        const dd = f32ToF16(scale / 64), dm = f32ToF16(scale / 128);
        for (let b = 0; b < nb; b++) {
          const p = b * blockBytes;
          bytes[p] = dd & 0xff; bytes[p + 1] = dd >> 8; bytes[p + 2] = dm & 0xff; bytes[p + 3] = dm >> 8;
        }
      } else if (dtype === 'q6_k') {
        const dd = f32ToF16(scale / 512);
        for (let b = 0; b < nb; b++) {
          const p = b * blockBytes + 208;
          bytes[p] = dd & 0xff; bytes[p + 1] = dd >> 8;
        }
      }
      return bytes;
    }
  }
}

/** A TensorSource of random weights; matrices in `dtype` (or `dtypeFor(name)`), norms in f32. */
export function syntheticSource(config: ModelConfig, dtype: DType | ((name: string) => DType)): TensorSource {
  const shapes = tensorShapes(config);
  const pick = typeof dtype === 'function' ? dtype : () => dtype;
  const infos: TensorInfo[] = shapes.map(({ name, shape, norm }) => {
    const dt = norm ? 'f32' : pick(name);
    const count = shape.reduce((a, b) => a * b, 1);
    return { name, dtype: dt, shape, byteLength: dtypeByteLength(dt, count) };
  });
  const byName = new Map(infos.map((i) => [i.name, i]));
  return {
    normWeightsIncludeOne: false,
    list: () => infos,
    get: (name) => byName.get(name),
    read(name) {
      const info = byName.get(name);
      if (!info) throw new Error(`no tensor ${name}`);
      const count = info.shape.reduce((a, b) => a * b, 1);
      if (info.shape.length === 1) return new Uint8Array(new Float32Array(count).fill(0.1).buffer);
      return randomTensor(info.dtype, count, 1 / Math.sqrt(info.shape[1]!));
    },
    close() {},
  };
}
