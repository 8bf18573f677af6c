import { ConfigError } from '../errors.js';

/**
 * One normalized description of a Gemma 1 / 2 / 3 text model. Every version difference the
 * forward pass cares about is a field here, so the model code has no `if (version === 2)`.
 */
/** The Gemma generation a checkpoint belongs to. */
export type GemmaFamily = 'gemma' | 'gemma2' | 'gemma3';

/** Per-layer attention settings (sliding window or global, RoPE base and scaling). */
export interface LayerConfig {
  /** Sliding-window (local) attention layer. */
  sliding: boolean;
  /** Keys visible when pos_q - pos_k < window; Infinity on global layers. */
  window: number;
  ropeTheta: number;
  /** Linear RoPE scaling factor (positions are divided by it); 1 = none. */
  ropeScaling: number;
}

/**
 * One normalized configuration for Gemma 1 / 2 / 3, from config.json (old and new field names) or
 * GGUF metadata: every version difference is a field, never an `if (version === 2)`.
 */
export interface ModelConfig {
  /** The Gemma generation. */
  family: GemmaFamily;
  /** model_type as written in config.json. */
  modelType: string;
  /** Rows of the embedding table (may be padded past the tokenizer's vocabulary). */
  vocabSize: number;
  /** Width of the residual stream. */
  hiddenSize: number;
  /** Width of the MLP. */
  intermediateSize: number;
  /** Number of transformer blocks. */
  numLayers: number;
  /** Query heads. */
  numHeads: number;
  /** Key / value heads (1 = multi-query, < numHeads = grouped-query). */
  numKvHeads: number;
  /** Width of each attention head. */
  headDim: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** The longest context the checkpoint was trained for. */
  maxPositionEmbeddings: number;
  /** Queries are multiplied by queryPreAttnScalar^-0.5. */
  queryPreAttnScalar: number;
  /** Gemma 2 attention-score soft-cap; 0 = none. */
  attnSoftcap: number;
  /** Gemma 2 final-logit soft-cap; 0 = none. */
  finalSoftcap: number;
  /** RMSNorm on q and k per head before RoPE (Gemma 3). */
  qkNorm: boolean;
  /**
   * Gemma 2/3 "sandwich" norms: post_attention_layernorm on the attention output,
   * pre_feedforward_layernorm before and post_feedforward_layernorm after the MLP.
   * Gemma 1 has only input_layernorm and post_attention_layernorm (its pre-MLP norm).
   */
  sandwichNorms: boolean;
  /** Embedding output multiplier: sqrt(hiddenSize). */
  embedScale: number;
  layers: LayerConfig[];
  bosId: number;
  eosIds: number[];
  padId: number;
}

type Json = Record<string, unknown>;

function num(cfg: Json, field: string, fallback?: number): number {
  const v = cfg[field];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError('required field is missing', field);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`expected a number, got ${JSON.stringify(v)}`, field);
  return v;
}

function posInt(cfg: Json, field: string, fallback?: number): number {
  const v = num(cfg, field, fallback);
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`expected a positive integer, got ${v}`, field);
  return v;
}

function optCap(cfg: Json, field: string): number {
  const v = cfg[field];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(`expected a positive number or null, got ${JSON.stringify(v)}`, field);
  return v;
}

function idList(v: unknown, field: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const id of list) {
    if (!Number.isInteger(id) || (id as number) < 0) throw new ConfigError(`expected token id(s), got ${JSON.stringify(v)}`, field);
  }
  return list as number[];
}

/** Linear RoPE factor from a rope_scaling / rope_parameters entry; other types are rejected. */
function linearFactor(scaling: unknown, field: string): number {
  if (scaling === undefined || scaling === null) return 1;
  if (typeof scaling !== 'object') throw new ConfigError(`expected an object, got ${JSON.stringify(scaling)}`, field);
  const s = scaling as Json;
  const type = (s.rope_type ?? s.type ?? 'default') as string;
  if (type === 'default') return 1;
  if (type !== 'linear') throw new ConfigError(`RoPE scaling type "${type}" is not supported (only linear)`, field);
  const f = s.factor;
  if (typeof f !== 'number' || !(f > 0)) throw new ConfigError(`linear RoPE scaling needs a positive factor`, `${field}.factor`);
  return f;
}

const FAMILY_OF: Record<string, GemmaFamily> = {
  gemma: 'gemma',
  gemma2: 'gemma2',
  gemma3_text: 'gemma3',
  gemma3: 'gemma3',
};

export interface NormalizeResult {
  config: ModelConfig;
  /** Things the user should know (ignored vision tower, ...). */
  notices: string[];
}

/** Turn a Hugging Face config.json object into a ModelConfig, or throw ConfigError naming the field. */
export function normalizeHfConfig(raw: unknown): NormalizeResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError('config.json must hold a JSON object');
  let cfg = raw as Json;
  const notices: string[] = [];
  const modelType = cfg.model_type;
  if (typeof modelType !== 'string') throw new ConfigError('required field is missing', 'model_type');
  const family = FAMILY_OF[modelType];
  if (!family) throw new ConfigError(`unsupported model_type "${modelType}" (expected gemma, gemma2, gemma3_text or gemma3)`, 'model_type');
  if (modelType === 'gemma3') {
    // Multimodal Gemma 3: the text model lives in text_config; the vision tower is not used.
    const text = cfg.text_config;
    if (typeof text !== 'object' || text === null) throw new ConfigError('gemma3 config needs a text_config object', 'text_config');
    if (cfg.vision_config) notices.push('gemma3 checkpoint: the vision tower is ignored; only the text model is loaded');
    cfg = { ...(text as Json), model_type: 'gemma3_text', bos_token_id: (text as Json).bos_token_id ?? cfg.bos_token_id, eos_token_id: (text as Json).eos_token_id ?? cfg.eos_token_id, pad_token_id: (text as Json).pad_token_id ?? cfg.pad_token_id };
  }

  const hiddenSize = posInt(cfg, 'hidden_size');
  const numHeads = posInt(cfg, 'num_attention_heads');
  const numKvHeads = posInt(cfg, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) throw new ConfigError(`num_attention_heads (${numHeads}) is not a multiple of num_key_value_heads (${numKvHeads})`, 'num_key_value_heads');
  const headDim = posInt(cfg, 'head_dim', family === 'gemma' ? hiddenSize / numHeads : 256);
  if (headDim % 2 !== 0) throw new ConfigError(`must be even for RoPE, got ${headDim}`, 'head_dim');
  const numLayers = posInt(cfg, 'num_hidden_layers');
  const act = (cfg.hidden_activation ?? cfg.hidden_act ?? 'gelu_pytorch_tanh') as string;
  // Gemma 1 configs often say "gelu" but every Gemma uses the tanh approximation (HF forces it).
  if (!['gelu_pytorch_tanh', 'gelu', 'gelu_new', 'gelu_fast'].includes(act)) throw new ConfigError(`activation "${act}" is not a Gemma activation`, 'hidden_activation');
  if (cfg.tie_word_embeddings === false) throw new ConfigError('untied embeddings are not a Gemma layout', 'tie_word_embeddings');

  // Layer pattern: layer_types (new) > sliding_window_pattern (Gemma 3 old) > alternate (Gemma 2 old).
  let slidingFlags: boolean[];
  if (Array.isArray(cfg.layer_types)) {
    const types = cfg.layer_types as unknown[];
    if (types.length !== numLayers) throw new ConfigError(`has ${types.length} entries but num_hidden_layers is ${numLayers}`, 'layer_types');
    slidingFlags = types.map((t, i) => {
      if (t === 'sliding_attention') return true;
      if (t === 'full_attention') return false;
      throw new ConfigError(`unknown layer type ${JSON.stringify(t)}`, `layer_types[${i}]`);
    });
  } else if (family === 'gemma3') {
    const pattern = posInt(cfg, 'sliding_window_pattern', 6);
    slidingFlags = Array.from({ length: numLayers }, (_, i) => (i + 1) % pattern !== 0);
  } else if (family === 'gemma2') {
    slidingFlags = Array.from({ length: numLayers }, (_, i) => i % 2 === 0);
  } else {
    slidingFlags = new Array<boolean>(numLayers).fill(false);
  }
  const anySliding = slidingFlags.some(Boolean);
  const slidingWindow = anySliding ? posInt(cfg, 'sliding_window', family === 'gemma2' ? 4096 : 512) : Infinity;

  // RoPE: rope_parameters (new, per layer type) or rope_theta / rope_local_base_freq / rope_scaling.
  let globalTheta: number, localTheta: number, globalScale: number, localScale: number;
  const rp = cfg.rope_parameters as Json | undefined;
  if (rp && typeof rp === 'object' && (rp.full_attention || rp.sliding_attention)) {
    const full = (rp.full_attention ?? {}) as Json;
    const slide = (rp.sliding_attention ?? rp.full_attention ?? {}) as Json;
    globalTheta = num(full, 'rope_theta', num(cfg, 'rope_theta', 10000));
    localTheta = num(slide, 'rope_theta', 10000);
    globalScale = linearFactor(full, 'rope_parameters.full_attention');
    localScale = linearFactor(slide, 'rope_parameters.sliding_attention');
  } else if (rp && typeof rp === 'object') {
    globalTheta = num(rp, 'rope_theta', num(cfg, 'rope_theta', 10000));
    localTheta = family === 'gemma3' ? num(cfg, 'rope_local_base_freq', 10000) : globalTheta;
    globalScale = linearFactor(rp, 'rope_parameters');
    localScale = 1;
  } else {
    globalTheta = num(cfg, 'rope_theta', 10000);
    localTheta = family === 'gemma3' ? num(cfg, 'rope_local_base_freq', 10000) : globalTheta;
    globalScale = linearFactor(cfg.rope_scaling, 'rope_scaling');
    localScale = 1;
  }
  if (!(globalTheta > 0)) throw new ConfigError('must be positive', 'rope_theta');

  const layers: LayerConfig[] = slidingFlags.map((sliding) => ({
    sliding,
    window: sliding ? slidingWindow : Infinity,
    ropeTheta: sliding ? localTheta : globalTheta,
    ropeScaling: sliding ? localScale : globalScale,
  }));

  const eosIds = idList(cfg.eos_token_id, 'eos_token_id');
  const config: ModelConfig = {
    family,
    modelType,
    vocabSize: posInt(cfg, 'vocab_size'),
    hiddenSize,
    intermediateSize: posInt(cfg, 'intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num(cfg, 'rms_norm_eps', 1e-6),
    maxPositionEmbeddings: posInt(cfg, 'max_position_embeddings', 8192),
    queryPreAttnScalar: family === 'gemma' ? headDim : num(cfg, 'query_pre_attn_scalar', headDim),
    attnSoftcap: family === 'gemma2' ? optCap(cfg, 'attn_logit_softcapping') : optCap(cfg, 'attn_logit_softcapping'),
    finalSoftcap: optCap(cfg, 'final_logit_softcapping'),
    qkNorm: family === 'gemma3',
    sandwichNorms: family !== 'gemma',
    embedScale: Math.sqrt(hiddenSize),
    layers,
    bosId: idList(cfg.bos_token_id ?? 2, 'bos_token_id')[0] ?? 2,
    eosIds: eosIds.length ? eosIds : [1],
    padId: idList(cfg.pad_token_id ?? 0, 'pad_token_id')[0] ?? 0,
  };
  if (!(config.rmsNormEps > 0)) throw new ConfigError('must be positive', 'rms_norm_eps');
  if (!(config.queryPreAttnScalar > 0)) throw new ConfigError('must be positive', 'query_pre_attn_scalar');
  return { config, notices };
}

/** Parameter count of the text model (embedding counted once: it is tied). */
export function parameterCount(c: ModelConfig): number {
  const attn = c.hiddenSize * c.numHeads * c.headDim * 2 + c.hiddenSize * c.numKvHeads * c.headDim * 2;
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  const norms = c.hiddenSize * (c.sandwichNorms ? 4 : 2) + (c.qkNorm ? 2 * c.headDim : 0);
  return c.vocabSize * c.hiddenSize + c.numLayers * (attn + mlp + norms) + c.hiddenSize;
}
