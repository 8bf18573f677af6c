/**
 * `gemma info --model M [--json] [--context N]`: what a checkpoint is and what it needs.
 */
import type { Command } from 'commander';
import { parameterCount, type ModelConfig } from '../config/model-config.js';
import { inspectModel, type ModelDescription } from '../model/load.js';
import { addModelOptions, defaultIO, loadForCli, parseIntFlag, safeWrite, type CliIO, type ModelFlags } from './options.js';

interface InfoFlags extends ModelFlags {
  json?: boolean;
  context?: number;
}

export interface ModelInfo {
  path: string;
  format: string;
  family: string;
  modelType: string;
  layers: number;
  hiddenSize: number;
  intermediateSize: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  /** One letter per layer: L = local (sliding window), G = global. */
  layerPattern: string;
  slidingWindow: number | null;
  rope: { local: { theta: number; scaling: number } | null; global: { theta: number; scaling: number } | null };
  attnSoftcap: number | null;
  finalSoftcap: number | null;
  queryPreAttnScalar: number;
  qkNorm: boolean;
  parameters: number;
  embeddingParameters: number;
  dtypes: Record<string, number>;
  weightBytes: number;
  /** KV cache at `contextSize` tokens (keys and values of kvType); sliding layers hold only their window. */
  contextSize: number;
  kvType: 'f32' | 'f16';
  kvCacheBytes: number;
  /** weights + KV cache. */
  memoryBytes: number;
  tokenizer: { vocabSize: number; chatTemplate: boolean; stopIds: number[] } | null;
  notices: string[];
}

/** Bytes of a KV cache holding `ctx` tokens (sliding layers keep only their window). */
export function kvCacheBytes(c: ModelConfig, ctx: number, kvType: 'f32' | 'f16' = 'f32'): number {
  let tokens = 0;
  for (const l of c.layers) tokens += l.sliding ? Math.min(l.window, ctx) : ctx;
  return tokens * 2 * c.numKvHeads * c.headDim * (kvType === 'f16' ? 2 : 4);
}

export function modelInfo(loaded: ModelDescription, contextSize?: number, kvType: 'f32' | 'f16' = 'f32'): ModelInfo {
  const c = loaded.config;
  const ctx = contextSize ?? c.maxPositionEmbeddings;
  const local = c.layers.find((l) => l.sliding);
  const global = c.layers.find((l) => !l.sliding);
  const kv = kvCacheBytes(c, ctx, kvType);
  return {
    path: loaded.path,
    format: loaded.format,
    family: c.family,
    modelType: c.modelType,
    layers: c.numLayers,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    headDim: c.headDim,
    vocabSize: c.vocabSize,
    maxPositionEmbeddings: c.maxPositionEmbeddings,
    layerPattern: c.layers.map((l) => (l.sliding ? 'L' : 'G')).join(''),
    slidingWindow: local ? local.window : null,
    rope: {
      local: local ? { theta: local.ropeTheta, scaling: local.ropeScaling } : null,
      global: global ? { theta: global.ropeTheta, scaling: global.ropeScaling } : null,
    },
    attnSoftcap: c.attnSoftcap || null,
    finalSoftcap: c.finalSoftcap || null,
    queryPreAttnScalar: c.queryPreAttnScalar,
    qkNorm: c.qkNorm,
    parameters: parameterCount(c),
    embeddingParameters: c.vocabSize * c.hiddenSize,
    dtypes: loaded.dtypes,
    weightBytes: loaded.weightBytes,
    contextSize: ctx,
    kvType,
    kvCacheBytes: kv,
    memoryBytes: loaded.weightBytes + kv,
    tokenizer: loaded.tokenizer
      ? { vocabSize: loaded.tokenizer.vocabSize, chatTemplate: loaded.tokenizer.chatTemplate !== undefined, stopIds: [...loaded.tokenizer.stopIds] }
      : null,
    notices: loaded.notices,
  };
}

/** 1234567 -> "1.23 M". */
export function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

/** Bytes in binary units: "2.50 MiB". */
export function humanBytes(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = b;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${b} B` : `${v.toFixed(2)} ${units[i]}`;
}

export function formatInfo(i: ModelInfo): string {
  const rope = (r: { theta: number; scaling: number } | null): string => (r ? `theta ${r.theta}${r.scaling !== 1 ? `, linear scaling x${r.scaling}` : ''}` : '-');
  const lines = [
    `model:         ${i.path} (${i.format})`,
    `architecture:  ${i.family} (model_type ${i.modelType})`,
    `sizes:         ${i.layers} layers, hidden ${i.hiddenSize}, intermediate ${i.intermediateSize}, heads ${i.heads} (kv ${i.kvHeads}), head_dim ${i.headDim}`,
    `vocab:         ${i.vocabSize}${i.tokenizer ? ` (tokenizer: ${i.tokenizer.vocabSize} pieces${i.tokenizer.chatTemplate ? ', chat template' : ''})` : ' (no tokenizer)'}`,
    `context:       ${i.maxPositionEmbeddings} tokens`,
    `layers:        ${i.layerPattern} (L = local, window ${i.slidingWindow ?? '-'}; G = global)`,
    `rope:          local ${rope(i.rope.local)}; global ${rope(i.rope.global)}`,
    `attention:     query scale ${i.queryPreAttnScalar}^-0.5, soft-caps attn ${i.attnSoftcap ?? 'none'} / final ${i.finalSoftcap ?? 'none'}, qk-norm ${i.qkNorm ? 'yes' : 'no'}`,
    `parameters:    ${humanCount(i.parameters)} (${i.parameters}; embedding ${humanCount(i.embeddingParameters)})`,
    `dtypes:        ${Object.entries(i.dtypes).map(([d, n]) => `${d} x ${n}`).join(', ')}`,
    `weights:       ${humanBytes(i.weightBytes)}`,
    `memory:        ${humanBytes(i.memoryBytes)} = weights + KV cache ${humanBytes(i.kvCacheBytes)} (${i.kvType}, ${i.contextSize} tokens)`,
  ];
  for (const n of i.notices) lines.push(`note:          ${n}`);
  return lines.join('\n') + '\n';
}

export function registerInfoCommand(program: Command, io: CliIO = defaultIO()): void {
  const cmd = program
    .command('info')
    .description('show a checkpoint\'s architecture, sizes, parameter count, dtypes and memory needs')
    .option('--json', 'print the information as one JSON object')
    .option('--context <n>', 'context size for the KV-cache estimate (default: the model\'s maximum)', parseIntFlag(1));
  addModelOptions(cmd);
  cmd.action(async (flags: InfoFlags) => {
    // Headers only (no weights read), unless a test injects its own loader.
    if (!io.loadModel) {
      const described = await inspectModel(flags.model);
      for (const n of described.notices) io.stderr.write(`note: ${n}\n`);
      const info = modelInfo(described, flags.context, flags.kvType);
      safeWrite(io, flags.json ? JSON.stringify(info) + '\n' : formatInfo(info));
      return;
    }
    const loaded = await loadForCli(flags, io);
    try {
      const info = modelInfo(loaded, flags.context, flags.kvType);
      safeWrite(io, flags.json ? JSON.stringify(info) + '\n' : formatInfo(info));
    } finally {
      loaded.model.dispose();
    }
  });
}
