/**
 * LoRA adapters on disk:
 * - PEFT's layout, read and written: adapter_config.json + adapter_model.safetensors with keys
 *   `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` (A [r, in], B [out, r]);
 * - llama.cpp's GGUF LoRA, written: general.type = adapter, adapter.type = lora,
 *   adapter.lora.alpha, tensors `blk.{i}.attn_q.weight.lora_a` / `.lora_b`;
 * - merging W + scale B A into a full checkpoint.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WeightMatrix } from '../backend/backend.js';
import { convertToGGUF, CONVERT_TYPES, type ConvertType } from '../formats/convert.js';
import { GemmaModel, type LoraLayerDelta } from '../model/gemma.js';
import type { LanguageModel } from '../model/types.js';
import type { LoraSlot } from '../model/weights.js';
import { loadTrainModel, saveFullModel } from './checkpoint-io.js';
import type { ModelConfig } from '../config/model-config.js';
import { FormatError, UsageError } from '../errors.js';
import { decodeBf16, decodeF16 } from '../formats/half.js';
import { GGUFValueType as T, writeGGUF, type GGUFMetadataEntry } from '../formats/gguf.js';
import { configToGGUFMetadata, hfToGgufName } from '../formats/gguf-names.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../formats/safetensors.js';
import { ALL_LINEAR, checkLoraConfig, LORA_MODULES, loraScale, loraTensors, resolveTargets, type AdapterTensors, type LoraConfig, type LoraModule } from './lora.js';
import type { TrainModel } from './params.js';

export interface Adapter {
  config: LoraConfig;
  /** By module, "layers.3.self_attn.q_proj". */
  tensors: AdapterTensors;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scale: number;
  /** Where it was read from. */
  path?: string;
  /** adapter_config.json's base_model_name_or_path. */
  baseModel?: string;
}

const PEFT_PREFIX = 'base_model.model.';

/** The checkpoint prefix ('model.', 'language_model.model.', ...) of HF names. */
function hfPrefix(model: TrainModel): string {
  return model.checkpoint.format === 'safetensors' ? model.checkpoint.prefix : 'model.';
}

/** Write the model's LoRA layers as a PEFT adapter directory. */
export function savePeftAdapter(model: TrainModel, dir: string): void {
  if (!model.lora) throw new UsageError('the model has no LoRA layers to save');
  fs.mkdirSync(dir, { recursive: true });
  const prefix = PEFT_PREFIX + hfPrefix(model);
  const tensors: TensorToWrite[] = [];
  const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const r = model.lora.rank;
  for (const [name, { A, B }] of loraTensors(model)) {
    tensors.push({ name: `${prefix}${name}.lora_A.weight`, dtype: 'f32', shape: [r, A.length / r], data: bytes(A) });
    tensors.push({ name: `${prefix}${name}.lora_B.weight`, dtype: 'f32', shape: [B.length / r, r], data: bytes(B) });
  }
  writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  const config = {
    base_model_name_or_path: model.checkpoint.path,
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r,
    lora_alpha: model.lora.alpha,
    lora_dropout: model.lora.dropout,
    use_rslora: model.lora.rslora,
    target_modules: model.lora.targets,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    use_dora: false,
  };
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2) + '\n');
}

function readF32(source: ReturnType<typeof openSafetensors>, name: string): Float32Array {
  const info = source.get(name)!;
  const data = source.read(name);
  const count = info.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  if (info.dtype === 'f32') out.set(new Float32Array(data.buffer, data.byteOffset, count));
  else if (info.dtype === 'bf16') decodeBf16(data, 0, count, out);
  else if (info.dtype === 'f16') decodeF16(data, 0, count, out);
  else throw new FormatError(`${name}: adapter tensors must be f32, f16 or bf16`);
  return out;
}

/** Read a PEFT adapter directory (adapter_config.json + adapter_model.safetensors). */
export function loadAdapter(target: string): Adapter {
  const dir = fs.statSync(target, { throwIfNoEntry: false })?.isDirectory() ? target : path.dirname(target);
  const cfgPath = path.join(dir, 'adapter_config.json');
  const stPath = path.join(dir, 'adapter_model.safetensors');
  if (!fs.existsSync(cfgPath)) throw new UsageError(`${target}: no adapter_config.json (expected a PEFT LoRA adapter directory)`);
  if (!fs.existsSync(stPath)) throw new UsageError(`${target}: no adapter_model.safetensors`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new FormatError(`${cfgPath} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw.peft_type !== undefined && raw.peft_type !== 'LORA') throw new UsageError(`${cfgPath}: peft_type ${JSON.stringify(raw.peft_type)} is not supported (only LORA)`);
  if (raw.use_dora) throw new UsageError(`${cfgPath}: DoRA adapters are not supported`);
  if (raw.fan_in_fan_out) throw new UsageError(`${cfgPath}: fan_in_fan_out adapters are not supported`);
  const rank = raw.r as number;
  const alpha = (raw.lora_alpha ?? rank) as number;
  const source = openSafetensors(stPath);
  try {
    const tensors: AdapterTensors = new Map();
    const targets = new Set<LoraModule>();
    for (const t of source.list()) {
      const m = /(?:^|\.)layers\.(\d+)\.((?:self_attn|mlp)\.(\w+))\.lora_A(?:\.default)?\.weight$/.exec(t.name);
      if (!m) {
        if (/lora_B/.test(t.name)) continue;
        throw new UsageError(`${stPath}: unexpected adapter tensor "${t.name}"`);
      }
      const mod = m[3]! as LoraModule;
      if (!(mod in LORA_MODULES) || LORA_MODULES[mod].path !== m[2]) throw new UsageError(`${stPath}: "${t.name}" is not a Gemma linear module`);
      const bName = t.name.replace('.lora_A', '.lora_B');
      if (!source.get(bName)) throw new UsageError(`${stPath}: "${t.name}" has no matching ${bName}`);
      const r = t.shape[0];
      const bShape = source.get(bName)!.shape;
      if (r !== rank || bShape[1] !== rank || t.shape.length !== 2 || bShape.length !== 2) {
        throw new UsageError(`${stPath}: "${t.name}" [${t.shape.join(', ')}] / lora_B [${bShape.join(', ')}] do not have rank r = ${rank}`);
      }
      tensors.set(`layers.${m[1]}.${m[2]}`, { A: readF32(source, t.name), B: readF32(source, bName) });
      targets.add(mod);
    }
    if (tensors.size === 0) throw new UsageError(`${stPath}: no LoRA tensors`);
    const config: LoraConfig = { rank, alpha, dropout: (raw.lora_dropout ?? 0) as number, rslora: raw.use_rslora === true, targets: ALL_LINEAR.filter((t) => targets.has(t)) };
    checkLoraConfig(config);
    return { config, tensors, scale: loraScale(config), path: dir, baseModel: raw.base_model_name_or_path as string | undefined };
  } finally {
    source.close();
  }
}

/**
 * Check an adapter against a model's shapes: every module must exist (layer index, module) and
 * A [r, in] / B [out, r] must match the base weight [out, in]. Throws naming the key.
 */
export function checkAdapter(adapter: Adapter, config: ModelConfig): void {
  const qDim = config.numHeads * config.headDim, kvDim = config.numKvHeads * config.headDim;
  const H = config.hiddenSize, I = config.intermediateSize;
  const shapes: Record<LoraModule, [number, number]> = {
    q_proj: [qDim, H], k_proj: [kvDim, H], v_proj: [kvDim, H], o_proj: [H, qDim], gate_proj: [I, H], up_proj: [I, H], down_proj: [H, I],
  };
  const where = adapter.path ?? 'adapter';
  for (const [name, { A, B }] of adapter.tensors) {
    const m = /^layers\.(\d+)\.\w+\.(\w+)$/.exec(name)!;
    const layer = Number(m[1]);
    if (layer >= config.numLayers) throw new UsageError(`${where}: ${name} targets layer ${layer}, but the base model has ${config.numLayers} layers (adapter made for another model?)`);
    const [out, inDim] = shapes[m[2] as LoraModule];
    const r = adapter.config.rank;
    if (A.length !== r * inDim || B.length !== out * r) {
      throw new UsageError(`${where}: ${name} has lora_A [${r}, ${A.length / r}] and lora_B [${B.length / r}, ${r}], but the base weight is [${out}, ${inDim}] (adapter made for another model?)`);
    }
  }
}

/** llama.cpp's GGUF LoRA adapter: read by llama.cpp's --lora and node-llama-cpp. */
export function saveGgufAdapter(model: TrainModel, file: string): void {
  if (!model.lora) throw new UsageError('the model has no LoRA layers to save');
  const c = model.config;
  const { queryFold } = configToGGUFMetadata(c, 'adapter');
  const arch = c.family;
  const r = model.lora.rank;
  // llama.cpp scales by alpha / r; rsLoRA's alpha / sqrt(r) is the same with alpha * sqrt(r).
  const alpha = model.lora.rslora ? model.lora.alpha * Math.sqrt(r) : model.lora.alpha;
  const metadata: GGUFMetadataEntry[] = [
    { key: 'general.architecture', type: T.STRING, value: arch },
    { key: 'general.type', type: T.STRING, value: 'adapter' },
    { key: 'general.name', type: T.STRING, value: 'LoRA adapter' },
    { key: 'adapter.type', type: T.STRING, value: 'lora' },
    { key: 'adapter.lora.alpha', type: T.FLOAT32, value: alpha },
  ];
  const tensors = [];
  for (const [name, { A, B }] of loraTensors(model)) {
    const g = hfToGgufName(arch, `model.${name}.weight`);
    if (!g) throw new UsageError(`no GGUF name for ${name}`);
    // our GGUF conversion folds a query-scale correction into attn_q (no QK-norm): B follows it
    let b = B;
    if (queryFold !== 1 && !c.qkNorm && g.endsWith('.attn_q.weight')) {
      const fold = Math.fround(queryFold);
      b = B.map((v) => v * fold);
    }
    tensors.push({ name: `${g}.lora_a`, dtype: 'f32' as const, shape: [r, A.length / r], data: new Uint8Array(A.buffer.slice(A.byteOffset, A.byteOffset + A.byteLength)) });
    tensors.push({ name: `${g}.lora_b`, dtype: 'f32' as const, shape: [b.length / r, r], data: new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) });
  }
  writeGGUF(file, { metadata, tensors });
}

/** Add LoRA deltas into the base f32 weights: W += scale * B A (full f32 parameters needed). */
export function mergeIntoParams(model: TrainModel, adapter: Adapter, weight = 1): void {
  checkAdapter(adapter, model.config);
  const s = adapter.scale * weight;
  const r = adapter.config.rank;
  for (const [name, { A, B }] of adapter.tensors) {
    const p = model.param(`${name}.weight`);
    if (!p) throw new UsageError(`the model has no f32 weight ${name}.weight to merge into`);
    const [out, inDim] = p.shape as [number, number];
    for (let o = 0; o < out; o++) {
      for (let k = 0; k < r; k++) {
        const b = s * B[o * r + k]!;
        if (b === 0) continue;
        const ao = k * inDim, wo = o * inDim;
        for (let i = 0; i < inDim; i++) p.data[wo + i] = p.data[wo + i]! + b * A[ao + i]!;
      }
    }
  }
}

/** `--lora PATH[:SCALE]` -> path and multiplier (a Windows drive letter is not a scale). */
export function parseLoraSpec(spec: string): { path: string; scale: number } {
  const m = /^(.*):([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$/.exec(spec);
  if (m && m[1]) return { path: m[1], scale: Number(m[2]) };
  return { path: spec, scale: 1 };
}

export { resolveTargets };

/** The LanguageModel slot of each LoRA module. */
const SLOT: Record<LoraModule, LoraSlot> = { q_proj: 'q', k_proj: 'k', v_proj: 'v', o_proj: 'o', gate_proj: 'gate', up_proj: 'up', down_proj: 'down' };

/**
 * Load an adapter (or its path) into a loaded model without merging: each targeted layer computes
 * W x + multiplier * scale * B (A x), the base weights staying in their stored type. Several
 * adapters may be loaded; they add up. The multiplier is the adapter's global scale in the model
 * (GemmaModel.setLoraScale); a pass may give its own per sequence (BatchItem.lora), by the id
 * returned in `id` (the adapters' order of loading).
 */
export function applyLora(model: LanguageModel, adapter: Adapter | string, multiplier = 1): Adapter & { id: number } {
  const a = typeof adapter === 'string' ? loadAdapter(adapter) : adapter;
  if (!(model instanceof GemmaModel)) throw new UsageError('applyLora needs a Gemma model from loadModel');
  if (!Number.isFinite(multiplier)) throw new UsageError(`LoRA scale ${multiplier} is not a finite number`);
  checkAdapter(a, model.config);
  const r = a.config.rank;
  const mat = (data: Float32Array, rows: number, cols: number): WeightMatrix => ({ dtype: 'f32', rows, cols, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  const deltas: LoraLayerDelta[] = [];
  for (const [name, { A, B }] of a.tensors) {
    const m = /^layers\.(\d+)\.\w+\.(\w+)$/.exec(name)!;
    const scaled = B.map((v) => v * a.scale);
    deltas.push({ layer: Number(m[1]), slot: SLOT[m[2] as LoraModule], A: mat(A, r, A.length / r), B: mat(scaled, scaled.length / r, r) });
  }
  const id = model.addLoraAdapter(deltas, { path: typeof adapter === 'string' ? adapter : (a.path ?? 'adapter'), scale: multiplier });
  return { ...a, id };
}

/**
 * Merge adapters into a checkpoint and write it: a Hugging Face directory (the input's dtypes;
 * block-quantized inputs as f32) or, for a path ending in .gguf, a GGUF file of `type`.
 */
export async function mergeAdapter(modelSpec: string, adapters: ReadonlyArray<string | { path: string; scale?: number }>, out: string, options: { type?: ConvertType } = {}): Promise<void> {
  const { model } = await loadTrainModel(modelSpec, { backend: 'js', grads: false });
  for (const spec of adapters) {
    const { path: p, scale } = typeof spec === 'string' ? parseLoraSpec(spec) : { path: spec.path, scale: spec.scale ?? 1 };
    mergeIntoParams(model, loadAdapter(p), scale);
  }
  if (!out.endsWith('.gguf')) return saveFullModel(model, out);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-merge-'));
  try {
    saveFullModel(model, tmp);
    const stored = [...model.checkpoint.dtypes.values()].find((d) => d !== 'f32') ?? 'f32';
    const type = options.type ?? ((CONVERT_TYPES as readonly string[]).includes(stored) ? (stored as ConvertType) : 'f16');
    await convertToGGUF(tmp, out, { type });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
