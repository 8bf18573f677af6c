/**
 * The training forward pass: the same straight sequence of named steps as src/model/gemma.ts
 * (embed x sqrt(H) -> [norm, q/k/v, (QK-norm), RoPE, windowed (soft-capped) attention, o_proj,
 * (post-norm), residual, norm, GeGLU MLP, (post-norm), residual] x L -> final norm -> tied
 * logits -> (soft-cap)), over one whole sequence at positions 0..n-1, recording what
 * ./backward.ts needs. Gradient checkpointing per layer: the model keeps only each layer's input
 * and the backward recomputes one layer at a time (`layerForward` with all its activations).
 */
import type { ModelConfig } from '../config/model-config.js';
import { attentionForward, gegluForward, rmsNormForward, ropeApply, ropeTable, type AttentionShape, type RopeTable } from './ops.js';
import type { MatmulKernels } from './matmul.js';
import type { Param, TrainLayer, TrainModel } from './params.js';

/** Per-sequence constants shared by every layer. */
export interface SequenceContext {
  config: ModelConfig;
  kernels: MatmulKernels;
  n: number;
  /** RoPE tables per layer (layers with the same base and scaling share one). */
  rope: RopeTable[];
  /** Document id per position when several documents are packed into one sequence. */
  doc?: Int32Array;
}

export function sequenceContext(model: TrainModel, n: number, doc?: Int32Array, positions?: Int32Array): SequenceContext {
  const config = model.config;
  const tables = new Map<string, RopeTable>();
  const rope = config.layers.map((lc) => {
    const key = `${lc.ropeTheta}/${lc.ropeScaling}`;
    let t = tables.get(key);
    if (!t) tables.set(key, (t = ropeTable(n, config.headDim, lc.ropeTheta, lc.ropeScaling, positions)));
    return t;
  });
  return { config, kernels: model.matmul, n, rope, doc };
}

/** Everything one layer's backward reads. Names follow gemma.ts. */
export interface LayerActivations {
  /** Layer input (the residual stream) [n, H]. */
  x: Float32Array;
  /** input_layernorm(x) and its reciprocal RMS per token. */
  h: Float32Array;
  hRstd: Float32Array;
  /** q / k before QK-norm (Gemma 3), with their per-head reciprocal RMS. */
  qRaw: Float32Array;
  kRaw: Float32Array;
  qRstd: Float32Array;
  kRstd: Float32Array;
  /** q / k after (QK-norm and) RoPE; v. */
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** Concatenated head outputs [n, nHeads * headDim] (hook_z). */
  att: Float32Array;
  /** Log-sum-exp of each (token, head) row of attention scores (fast kernels only). */
  lse: Float32Array;
  /** o_proj output before the post-attention norm; its reciprocal RMS. */
  attnOut: Float32Array;
  attnRstd: Float32Array;
  /** Residual stream after the attention block. */
  x1: Float32Array;
  /** Pre-MLP norm output and its reciprocal RMS. */
  h2: Float32Array;
  h2Rstd: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  /** gelu_tanh(gate) * up. */
  act: Float32Array;
  /** down_proj output before the post-feed-forward norm; its reciprocal RMS. */
  mlpOut: Float32Array;
  mlpRstd: Float32Array;
  /** Layer output [n, H]. */
  out: Float32Array;
}

export function attentionShape(ctx: SequenceContext, layer: number): AttentionShape {
  const c = ctx.config;
  return {
    n: ctx.n, nHeads: c.numHeads, nKvHeads: c.numKvHeads, headDim: c.headDim,
    window: c.layers[layer]!.window, scale: 1 / Math.sqrt(c.queryPreAttnScalar), softcap: c.attnSoftcap, doc: ctx.doc,
  };
}

/** The pre-MLP norm: Gemma 1 calls it post_attention_layernorm. */
export function preMlpNorm(config: ModelConfig, L: TrainLayer): Param {
  return config.sandwichNorms ? L.preFfnNorm! : L.postAttnNorm;
}

/** One transformer block over the whole sequence; x is not modified. */
export function layerForward(ctx: SequenceContext, L: TrainLayer, layer: number, x: Float32Array): LayerActivations {
  const c = ctx.config;
  const n = ctx.n;
  const H = c.hiddenSize, I = c.intermediateSize, eps = c.rmsNormEps;
  const qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
  const f = (len: number) => new Float32Array(len);
  const a: LayerActivations = {
    x, h: f(n * H), hRstd: f(n), qRaw: f(n * qDim), kRaw: f(n * kvDim), qRstd: f(n * c.numHeads), kRstd: f(n * c.numKvHeads),
    q: f(n * qDim), k: f(n * kvDim), v: f(n * kvDim), att: f(n * qDim), lse: f(n * c.numHeads), attnOut: f(n * H), attnRstd: f(n), x1: f(n * H),
    h2: f(n * H), h2Rstd: f(n), gate: f(n * I), up: f(n * I), act: f(n * I), mlpOut: f(n * H), mlpRstd: f(n), out: f(n * H),
  };

  // Attention block.
  rmsNormForward(x, L.inputNorm.data, n, H, eps, a.h, a.hRstd);
  L.q.forward(a.h, n, a.qRaw);
  L.k.forward(a.h, n, a.kRaw);
  L.v.forward(a.h, n, a.v);
  if (L.qNorm && L.kNorm) {
    rmsNormForward(a.qRaw, L.qNorm.data, n * c.numHeads, c.headDim, eps, a.q, a.qRstd);
    rmsNormForward(a.kRaw, L.kNorm.data, n * c.numKvHeads, c.headDim, eps, a.k, a.kRstd);
  } else {
    a.q.set(a.qRaw);
    a.k.set(a.kRaw);
  }
  ropeApply(a.q, n, c.numHeads, ctx.rope[layer]!, false);
  ropeApply(a.k, n, c.numKvHeads, ctx.rope[layer]!, false);
  const shape = attentionShape(ctx, layer);
  if (!ctx.kernels.attention?.(a.q, a.k, a.v, shape, a.att, a.lse)) attentionForward(a.q, a.k, a.v, shape, a.att);
  L.o.forward(a.att, n, a.attnOut);
  let attnResidual = a.attnOut;
  if (c.sandwichNorms) {
    attnResidual = f(n * H);
    rmsNormForward(a.attnOut, L.postAttnNorm.data, n, H, eps, attnResidual, a.attnRstd);
  }
  for (let j = 0; j < n * H; j++) a.x1[j] = x[j]! + attnResidual[j]!;

  // MLP block.
  rmsNormForward(a.x1, preMlpNorm(c, L).data, n, H, eps, a.h2, a.h2Rstd);
  L.gate.forward(a.h2, n, a.gate);
  L.up.forward(a.h2, n, a.up);
  gegluForward(a.gate, a.up, n * I, a.act);
  L.down.forward(a.act, n, a.mlpOut);
  let mlpResidual = a.mlpOut;
  if (c.sandwichNorms) {
    mlpResidual = f(n * H);
    rmsNormForward(a.mlpOut, L.postFfnNorm!.data, n, H, eps, mlpResidual, a.mlpRstd);
  }
  for (let j = 0; j < n * H; j++) a.out[j] = a.x1[j]! + mlpResidual[j]!;
  return a;
}

/** Embedding x sqrt(hidden) (the f32 constant, as gemma.ts): [n, H]. */
export function embedForward(model: TrainModel, ids: readonly number[]): Float32Array {
  const H = model.config.hiddenSize;
  const scale = Math.fround(model.config.embedScale);
  const x = new Float32Array(ids.length * H);
  ids.forEach((id, t) => {
    const row = x.subarray(t * H, (t + 1) * H);
    model.weights.embed.readRow(id, row);
    for (let i = 0; i < H; i++) row[i] = row[i]! * scale;
  });
  return x;
}

/**
 * The residual stream through every layer, keeping each layer's input (gradient checkpoints):
 * returns [x_0 .. x_L], x_L being the input of the final norm. With `keep`, the activations of
 * layers keepFrom.. are kept there too, at their layer's index (no recomputation in the backward
 * for those: the last layers, which the backward reaches first, as many as memory allows).
 */
export function modelForward(model: TrainModel, ctx: SequenceContext, ids: readonly number[], keep?: LayerActivations[], keepFrom = 0): Float32Array[] {
  const xs = [embedForward(model, ids)];
  model.weights.layers.forEach((L, i) => {
    const a = layerForward(ctx, L, i, xs[i]!);
    if (keep && i >= keepFrom) keep[i] = a;
    xs.push(a.out);
  });
  return xs;
}

/** f32 values one layer's activations take per token (LayerActivations). */
export function activationFloatsPerToken(c: ModelConfig): number {
  const H = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
  return 10 * H + 3 * qDim + 3 * kvDim + 3 * c.intermediateSize + 2 + c.numHeads + c.numKvHeads;
}
