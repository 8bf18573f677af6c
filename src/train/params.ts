/**
 * Trainable parameters: the model's tensors as f32 master weights (Hugging Face layout, norm
 * weights as stored by HF: w, the forward uses 1 + w), each with a gradient buffer, grouped the
 * way the forward pass uses them. Linear layers are `TrainLinear`s so that full fine-tuning and
 * LoRA share one training forward / backward.
 */
import fs from 'node:fs';
import path from 'node:path';
import { normalizeHfConfig, type ModelConfig } from '../config/model-config.js';
import { ConfigError, ModelError } from '../errors.js';
import type { DType } from '../formats/dtype.js';
import { openGGUF } from '../formats/gguf-source.js';
import { openSafetensors } from '../formats/safetensors.js';
import type { TensorSource } from '../formats/tensor-source.js';
import { decodeRow } from '../backend/js/decode.js';
import { detectPrefix } from '../model/weights.js';
import { jsMatmul, type MatmulKernels } from './matmul.js';

export type ParamKind = 'embed' | 'matrix' | 'norm';

/** One tensor of the model: f32 values and, when trainable, its gradient. */
export interface Param {
  /** Hugging Face name without the model prefix, e.g. `layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  readonly shape: number[];
  readonly kind: ParamKind;
  data: Float32Array;
  grad: Float32Array | undefined;
}

/** A linear layer y = x W^T as training sees it (full weights, or a frozen base with LoRA). */
export interface TrainLinear {
  readonly rows: number;
  readonly cols: number;
  forward(x: Float32Array, n: number, y: Float32Array): void;
  /** dx += dy W (for the trainable parts: their gradients += ...). */
  backward(dy: Float32Array, x: Float32Array, n: number, dx: Float32Array): void;
}

/**
 * The tied token embedding [vocab, H]: rows gathered for the input and, as a linear layer, the
 * output projection (logits = x E^T; backward dx += dy E, and E's gradient when trainable).
 */
export interface TrainEmbedding extends TrainLinear {
  /** Row `id` as f32 into out[0:cols]. */
  readRow(id: number, out: Float32Array): void;
  /** The trainable f32 table (full fine-tuning); absent when the table is frozen in its stored type. */
  readonly param?: Param;
}

/** A trainable f32 weight matrix. */
export class FullLinear implements TrainLinear {
  readonly rows: number;
  readonly cols: number;
  constructor(
    readonly param: Param,
    private readonly mm: MatmulKernels,
  ) {
    this.rows = param.shape[0]!;
    this.cols = param.shape[1]!;
  }
  forward(x: Float32Array, n: number, y: Float32Array): void {
    this.mm.xwt(x, this.param.data, n, this.cols, this.rows, y);
  }
  backward(dy: Float32Array, x: Float32Array, n: number, dx: Float32Array): void {
    this.mm.dyw(dy, this.param.data, n, this.cols, this.rows, dx);
    if (this.param.grad) this.mm.dytx(dy, x, n, this.cols, this.rows, this.param.grad);
  }
}

/** The embedding as a trainable f32 table. */
export class EmbeddingParam extends FullLinear implements TrainEmbedding {
  readRow(id: number, out: Float32Array): void {
    out.set(this.param.data.subarray(id * this.cols, (id + 1) * this.cols));
  }
}

/**
 * A frozen weight matrix in its stored type (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k): the base of
 * a LoRA layer, and the tied embedding under LoRA. Products decode blocks of rows to f32 on the
 * fly - inside the kernels when they offer it (MatmulKernels.xwtFrozen / dywFrozen), else here
 * (f32 is used in place) - so the model stays in the memory of its stored weights.
 */
export class FrozenLinear implements TrainEmbedding {
  private readonly f32: Float32Array | undefined;
  /** Rows decoded per block (a multiple of 4, about 4 MB of f32). */
  private readonly block: number;
  constructor(
    readonly dtype: DType,
    readonly rows: number,
    readonly cols: number,
    readonly data: Uint8Array,
    private readonly mm: MatmulKernels,
  ) {
    if (dtype === 'f32') this.f32 = data.byteOffset % 4 === 0 ? new Float32Array(data.buffer, data.byteOffset, rows * cols) : new Float32Array(data.slice().buffer);
    this.block = Math.max(4, Math.floor((1 << 20) / cols / 4) * 4);
  }
  /** Rows [r0, r1) as f32 (a view for f32 weights). */
  decodeRows(r0: number, r1: number, out: Float32Array): Float32Array {
    if (this.f32) return this.f32.subarray(r0 * this.cols, r1 * this.cols);
    const row = new Float32Array(this.cols);
    for (let r = r0; r < r1; r++) {
      decodeRow(this.dtype, this.data, r, this.cols, row);
      out.set(row, (r - r0) * this.cols);
    }
    return out.subarray(0, (r1 - r0) * this.cols);
  }
  readRow(id: number, out: Float32Array): void {
    if (this.f32) out.set(this.f32.subarray(id * this.cols, (id + 1) * this.cols));
    else decodeRow(this.dtype, this.data, id, this.cols, out);
  }
  forward(x: Float32Array, n: number, y: Float32Array): void {
    if (this.f32) return this.mm.xwt(x, this.f32, n, this.cols, this.rows, y);
    if (this.mm.xwtFrozen?.(x, this, n, y)) return;
    const buf = new Float32Array(this.block * this.cols), part = new Float32Array(n * this.block);
    for (let r0 = 0; r0 < this.rows; r0 += this.block) {
      const r1 = Math.min(this.rows, r0 + this.block), m = r1 - r0;
      this.mm.xwt(x, this.decodeRows(r0, r1, buf), n, this.cols, m, part);
      for (let t = 0; t < n; t++) y.set(part.subarray(t * m, (t + 1) * m), t * this.rows + r0);
    }
  }
  backward(dy: Float32Array, _x: Float32Array, n: number, dx: Float32Array): void {
    if (this.f32) return this.mm.dyw(dy, this.f32, n, this.cols, this.rows, dx);
    if (this.mm.dywFrozen?.(dy, this, n, dx)) return;
    const buf = new Float32Array(this.block * this.cols), part = new Float32Array(n * this.block);
    for (let r0 = 0; r0 < this.rows; r0 += this.block) {
      const r1 = Math.min(this.rows, r0 + this.block), m = r1 - r0;
      for (let t = 0; t < n; t++) part.set(dy.subarray(t * this.rows + r0, t * this.rows + r1), t * m);
      this.mm.dyw(part, this.decodeRows(r0, r1, buf), n, this.cols, m, dx);
    }
  }
}

export interface TrainLayer {
  inputNorm: Param;
  postAttnNorm: Param;
  preFfnNorm?: Param;
  postFfnNorm?: Param;
  qNorm?: Param;
  kNorm?: Param;
  q: TrainLinear;
  k: TrainLinear;
  v: TrainLinear;
  o: TrainLinear;
  gate: TrainLinear;
  up: TrainLinear;
  down: TrainLinear;
}

export interface TrainWeights {
  embed: TrainEmbedding;
  layers: TrainLayer[];
  finalNorm: Param;
}

/** The checkpoint a TrainModel came from: what saving needs to write the same names and types. */
export interface CheckpointInfo {
  path: string;
  format: 'safetensors' | 'gguf';
  /** Tensor-name prefix in the source (`model.`, ...). */
  prefix: string;
  /** Stored dtype of each tensor (by short name). */
  dtypes: Map<string, DType>;
  /** The parsed config.json of a Hugging Face directory. */
  rawConfig?: Record<string, unknown>;
}

/** The f32 training copy of a Gemma checkpoint. */
export class TrainModel {
  readonly params: Param[];
  /**
   * Bytes of layer activations a sequence may keep from its forward pass to its backward: the last
   * layers keep theirs as far as the budget goes, the others are recomputed from their saved input
   * (gradient checkpointing). 0 = always recompute.
   */
  activationBudget = 256 * 1024 * 1024;
  /** Set per training sequence: selects LoRA dropout masks (undefined = no dropout, evaluation). */
  dropoutKey: number | undefined;
  /** The LoRA configuration once addLoraLayers has run. */
  lora: { rank: number; alpha: number; dropout: number; rslora: boolean; targets: string[] } | undefined;
  private readonly byName: Map<string, Param>;
  constructor(
    readonly config: ModelConfig,
    readonly weights: TrainWeights,
    params: Param[],
    readonly checkpoint: CheckpointInfo,
    public matmul: MatmulKernels = jsMatmul,
  ) {
    this.params = params;
    this.byName = new Map(params.map((p) => [p.name, p]));
  }
  addParam(p: Param): void {
    if (this.byName.has(p.name)) throw new ModelError(`parameter ${p.name} exists already`);
    this.params.push(p);
    this.byName.set(p.name, p);
  }
  param(name: string): Param | undefined {
    return this.byName.get(name);
  }
  /** Parameters that receive gradients. */
  trainable(): Param[] {
    return this.params.filter((p) => p.grad !== undefined);
  }
  zeroGrad(): void {
    for (const p of this.params) p.grad?.fill(0);
  }
}

/** Names and shapes of every tensor of the text model, in checkpoint order. */
export function tensorLayout(c: ModelConfig, embedRows = c.vocabSize): Array<{ name: string; shape: number[]; kind: ParamKind }> {
  const H = c.hiddenSize, I = c.intermediateSize;
  const qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
  const out: Array<{ name: string; shape: number[]; kind: ParamKind }> = [{ name: 'embed_tokens.weight', shape: [embedRows, H], kind: 'embed' }];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `layers.${i}.`;
    const norm = (n: string, d = H) => out.push({ name: p + n, shape: [d], kind: 'norm' });
    const mat = (n: string, r: number, cols: number) => out.push({ name: p + n, shape: [r, cols], kind: 'matrix' });
    norm('input_layernorm.weight');
    mat('self_attn.q_proj.weight', qDim, H);
    mat('self_attn.k_proj.weight', kvDim, H);
    mat('self_attn.v_proj.weight', kvDim, H);
    mat('self_attn.o_proj.weight', H, qDim);
    if (c.qkNorm) {
      norm('self_attn.q_norm.weight', c.headDim);
      norm('self_attn.k_norm.weight', c.headDim);
    }
    norm('post_attention_layernorm.weight');
    if (c.sandwichNorms) {
      norm('pre_feedforward_layernorm.weight');
      norm('post_feedforward_layernorm.weight');
    }
    mat('mlp.gate_proj.weight', I, H);
    mat('mlp.up_proj.weight', I, H);
    mat('mlp.down_proj.weight', H, I);
  }
  out.push({ name: 'norm.weight', shape: [H], kind: 'norm' });
  return out;
}

/** Decode a whole tensor of any stored type to f32. */
function readF32(source: TensorSource, fullName: string, shape: number[]): Float32Array {
  const info = source.get(fullName)!;
  const data = source.read(fullName);
  const rows = shape.length === 2 ? shape[0]! : 1;
  const cols = shape[shape.length - 1]!;
  const out = new Float32Array(rows * cols);
  const row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    decodeRow(info.dtype, data, r, cols, row);
    out.set(row, r * cols);
  }
  return out;
}

export interface BuildOptions {
  matmul?: MatmulKernels;
  /**
   * true (default): every tensor as a trainable f32 Param (full fine-tuning). false: a frozen
   * base for LoRA - linear layers and the tied embedding stay in their stored type
   * (FrozenLinear), the norms are f32 without gradients.
   */
  trainable?: boolean;
  /** With trainable: allocate gradient buffers (default true; false for merging). */
  grads?: boolean;
}

/** Read every tensor of a source into f32 parameters (HF norm convention: w, not 1 + w). */
export function trainModelFromSource(source: TensorSource, config: ModelConfig, checkpoint: Omit<CheckpointInfo, 'prefix' | 'dtypes'>, options: BuildOptions = {}): TrainModel {
  const prefix = detectPrefix(source);
  const embedInfo = source.get(prefix + 'embed_tokens.weight')!;
  const layout = tensorLayout(config, embedInfo.shape[0]);
  const dtypes = new Map<string, DType>();
  const trainable = options.trainable ?? true;
  const mm = options.matmul ?? jsMatmul;
  const frozen = new Map<string, FrozenLinear>();
  const params: Param[] = [];
  layout.forEach(({ name, shape, kind }) => {
    const info = source.get(prefix + name);
    if (!info) throw new ModelError(`checkpoint is missing tensor "${prefix + name}"`);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new ModelError(`tensor "${prefix + name}" has shape [${info.shape.join(', ')}], config expects [${shape.join(', ')}]`);
    }
    dtypes.set(name, info.dtype);
    if (!trainable && kind !== 'norm') {
      frozen.set(name, new FrozenLinear(info.dtype, shape[0]!, shape[1]!, source.read(prefix + name), mm));
      return;
    }
    const data = readF32(source, prefix + name, shape);
    if (kind === 'norm' && source.normWeightsIncludeOne) for (let i = 0; i < data.length; i++) data[i] = data[i]! - 1;
    params.push({ name, shape, kind, data, grad: trainable && options.grads !== false ? new Float32Array(data.length) : undefined });
  });
  return new TrainModel(config, groupWeights(config, params, mm, frozen), params, { ...checkpoint, prefix, dtypes }, mm);
}

/** Arrange parameters the way the forward pass reads them, with full-weight linear layers. */
export function groupWeights(config: ModelConfig, params: Param[], mm: MatmulKernels, frozen?: Map<string, FrozenLinear>): TrainWeights {
  const get = (name: string): Param => {
    const p = params.find((q) => q.name === name);
    if (!p) throw new ModelError(`parameter ${name} is missing`);
    return p;
  };
  const lin = (name: string): TrainLinear => frozen?.get(name) ?? new FullLinear(get(name), mm);
  const embed = frozen?.get('embed_tokens.weight') ?? new EmbeddingParam(get('embed_tokens.weight'), mm);
  const layers: TrainLayer[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `layers.${i}.`;
    const layer: TrainLayer = {
      inputNorm: get(p + 'input_layernorm.weight'),
      postAttnNorm: get(p + 'post_attention_layernorm.weight'),
      q: lin(p + 'self_attn.q_proj.weight'),
      k: lin(p + 'self_attn.k_proj.weight'),
      v: lin(p + 'self_attn.v_proj.weight'),
      o: lin(p + 'self_attn.o_proj.weight'),
      gate: lin(p + 'mlp.gate_proj.weight'),
      up: lin(p + 'mlp.up_proj.weight'),
      down: lin(p + 'mlp.down_proj.weight'),
    };
    if (config.sandwichNorms) {
      layer.preFfnNorm = get(p + 'pre_feedforward_layernorm.weight');
      layer.postFfnNorm = get(p + 'post_feedforward_layernorm.weight');
    }
    if (config.qkNorm) {
      layer.qNorm = get(p + 'self_attn.q_norm.weight');
      layer.kNorm = get(p + 'self_attn.k_norm.weight');
    }
    layers.push(layer);
  }
  return { embed, layers, finalNorm: get('norm.weight') };
}

/** Open a Hugging Face directory or a GGUF file for training. */
export function openTrainSource(p: string): { source: TensorSource; config: ModelConfig; format: 'safetensors' | 'gguf'; rawConfig?: Record<string, unknown> } {
  if (fs.statSync(p).isDirectory()) {
    const cfgPath = path.join(p, 'config.json');
    if (!fs.existsSync(cfgPath)) throw new ModelError(`${p}: no config.json (not a Hugging Face model directory)`);
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`${cfgPath} is not valid JSON: ${(e as Error).message}`);
    }
    const { config } = normalizeHfConfig(raw);
    return { source: openSafetensors(p), config, format: 'safetensors', rawConfig: raw };
  }
  if (p.endsWith('.gguf')) {
    const g = openGGUF(p);
    return { source: g.source, config: g.config, format: 'gguf' };
  }
  throw new ModelError(`${p}: expected a model directory or a .gguf file`);
}
