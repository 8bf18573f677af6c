import { mulberry32 as rng } from '../src/util/mulberry32.js';
// Helpers shared by the GGUF / quant / convert tests (no tests in here).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { quantize } from '../src/formats/quant.js';
import { writeSafetensors } from '../src/formats/safetensors.js';

export { goldenDir, repoRoot } from './helpers/paths.js';

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `gemma-ts-${prefix}-`));
}

/** Little-endian byte builder written independently of src/formats/gguf.ts. */
export class Bytes {
  parts: number[] = [];
  u8(v: number): this { this.parts.push(v & 0xff); return this; }
  u16(v: number): this { const b = Buffer.alloc(2); b.writeUInt16LE(v); this.parts.push(...b); return this; }
  i16(v: number): this { const b = Buffer.alloc(2); b.writeInt16LE(v); this.parts.push(...b); return this; }
  u32(v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.parts.push(...b); return this; }
  i32(v: number): this { const b = Buffer.alloc(4); b.writeInt32LE(v); this.parts.push(...b); return this; }
  f32(v: number): this { const b = Buffer.alloc(4); b.writeFloatLE(v); this.parts.push(...b); return this; }
  f64(v: number): this { const b = Buffer.alloc(8); b.writeDoubleLE(v); this.parts.push(...b); return this; }
  u64(v: number | bigint): this { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.parts.push(...b); return this; }
  i64(v: number | bigint): this { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(v)); this.parts.push(...b); return this; }
  str(s: string): this { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.parts.push(...b); return this; }
  raw(b: ArrayLike<number>): this { for (let i = 0; i < b.length; i++) this.parts.push(b[i]!); return this; }
  padTo(alignment: number): this { while (this.parts.length % alignment) this.parts.push(0); return this; }
  get length(): number { return this.parts.length; }
  build(): Uint8Array { return Uint8Array.from(this.parts); }
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
export { mulberry32 as rng } from '../src/util/mulberry32.js';

/** Approximately normal values (sum of uniforms) scaled by `scale`. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() + r() - 2) * 1.7320508 * scale;
  return out;
}

/** A random-weight Gemma 2 checkpoint whose rows are whole K-quant blocks (hidden 256). */
export function writeSyntheticModel(dir: string, dtype: 'f32' | 'bf16'): void {
  fs.mkdirSync(dir, { recursive: true });
  const cfg = {
    model_type: 'gemma2', vocab_size: 1024, hidden_size: 256, intermediate_size: 256, num_hidden_layers: 4,
    num_attention_heads: 2, num_key_value_heads: 1, head_dim: 128, rms_norm_eps: 1e-6, max_position_embeddings: 128,
    query_pre_attn_scalar: 128, sliding_window: 16, attn_logit_softcapping: 50, final_logit_softcapping: 30,
    bos_token_id: 2, eos_token_id: 1, pad_token_id: 0, hidden_activation: 'gelu_pytorch_tanh',
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  const tensors: { name: string; dtype: 'f32' | 'bf16'; shape: number[]; data: Uint8Array }[] = [];
  let seed = 1;
  const add = (name: string, shape: number[], scale: number): void => {
    const vals = randn(shape.reduce((a, b) => a * b, 1), seed++, scale);
    tensors.push({ name, dtype, shape, data: quantize(dtype, vals) });
  };
  add('model.embed_tokens.weight', [1024, 256], 0.05); // 2^18 values: quantized in parallel chunks
  add('model.norm.weight', [256], 0.1);
  for (let i = 0; i < 4; i++) {
    const p = `model.layers.${i}.`;
    add(p + 'input_layernorm.weight', [256], 0.1);
    add(p + 'post_attention_layernorm.weight', [256], 0.1);
    add(p + 'pre_feedforward_layernorm.weight', [256], 0.1);
    add(p + 'post_feedforward_layernorm.weight', [256], 0.1);
    add(p + 'self_attn.q_proj.weight', [256, 256], 0.06);
    add(p + 'self_attn.k_proj.weight', [128, 256], 0.06);
    add(p + 'self_attn.v_proj.weight', [128, 256], 0.06);
    add(p + 'self_attn.o_proj.weight', [256, 256], 0.06);
    add(p + 'mlp.gate_proj.weight', [256, 256], 0.06);
    add(p + 'mlp.up_proj.weight', [256, 256], 0.06);
    add(p + 'mlp.down_proj.weight', [256, 256], 0.04);
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
}

