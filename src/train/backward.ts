/**
 * The backward pass: ./forward.ts read bottom to top, one step at a time (no tape, no graph).
 * Each layer is recomputed from its saved input (gradient checkpointing), then its gradient
 * flows back: residual -> (post-norm) -> down -> GeGLU -> gate / up -> pre-MLP norm ->
 * residual -> (post-norm) -> o_proj -> attention -> RoPE^T -> (QK-norm) -> q / k / v ->
 * input norm. Parameter gradients are accumulated (+=) into each Param's grad.
 */
import { activationFloatsPerToken, attentionShape, layerForward, modelForward, preMlpNorm, sequenceContext, type LayerActivations, type SequenceContext } from './forward.js';
import { headForwardBackward } from './loss.js';
import { attentionBackward, gegluBackward, rmsNormBackward, ropeApply } from './ops.js';
import type { TrainExample } from './data.js';
import type { TrainLayer, TrainModel } from './params.js';

/** Given d(loss)/d(layer output), accumulate the layer's parameter gradients and return d(loss)/d(layer input). */
export function layerBackward(ctx: SequenceContext, L: TrainLayer, layer: number, a: LayerActivations, dOut: Float32Array): Float32Array {
  const c = ctx.config;
  const n = ctx.n;
  const H = c.hiddenSize, I = c.intermediateSize;
  const qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
  const f = (len: number) => new Float32Array(len);

  // MLP block, reversed: out = x1 + postFfnNorm(down(geglu(gate(h2), up(h2)))).
  const dx1 = Float32Array.from(dOut);
  let dMlpOut = dOut;
  if (c.sandwichNorms) {
    dMlpOut = f(n * H);
    rmsNormBackward(a.mlpOut, L.postFfnNorm!.data, a.mlpRstd, dOut, n, H, dMlpOut, L.postFfnNorm!.grad, false);
  }
  const dAct = f(n * I);
  L.down.backward(dMlpOut, a.act, n, dAct);
  const dGate = f(n * I), dUp = f(n * I);
  gegluBackward(a.gate, a.up, dAct, n * I, dGate, dUp);
  const dh2 = f(n * H);
  L.gate.backward(dGate, a.h2, n, dh2);
  L.up.backward(dUp, a.h2, n, dh2);
  const norm2 = preMlpNorm(c, L);
  rmsNormBackward(a.x1, norm2.data, a.h2Rstd, dh2, n, H, dx1, norm2.grad, true);

  // Attention block, reversed: x1 = x + postAttnNorm(o(attention(rope(qkNorm(q(h))), ...))).
  const dx = Float32Array.from(dx1);
  let dAttnOut = dx1;
  if (c.sandwichNorms) {
    dAttnOut = f(n * H);
    rmsNormBackward(a.attnOut, L.postAttnNorm.data, a.attnRstd, dx1, n, H, dAttnOut, L.postAttnNorm.grad, false);
  }
  const dAtt = f(n * qDim);
  L.o.backward(dAttnOut, a.att, n, dAtt);
  const dq = f(n * qDim), dk = f(n * kvDim), dv = f(n * kvDim);
  const shape = attentionShape(ctx, layer);
  if (!ctx.kernels.attentionBackward?.(a.q, a.k, a.v, dAtt, a.lse, shape, dq, dk, dv)) attentionBackward(a.q, a.k, a.v, dAtt, shape, dq, dk, dv);
  ropeApply(dq, n, c.numHeads, ctx.rope[layer]!, true);
  ropeApply(dk, n, c.numKvHeads, ctx.rope[layer]!, true);
  let dqRaw = dq, dkRaw = dk;
  if (L.qNorm && L.kNorm) {
    dqRaw = f(n * qDim);
    dkRaw = f(n * kvDim);
    rmsNormBackward(a.qRaw, L.qNorm.data, a.qRstd, dq, n * c.numHeads, c.headDim, dqRaw, L.qNorm.grad, false);
    rmsNormBackward(a.kRaw, L.kNorm.data, a.kRstd, dk, n * c.numKvHeads, c.headDim, dkRaw, L.kNorm.grad, false);
  }
  const dh = f(n * H);
  L.q.backward(dqRaw, a.h, n, dh);
  L.k.backward(dkRaw, a.h, n, dh);
  L.v.backward(dv, a.h, n, dh);
  rmsNormBackward(a.x, L.inputNorm.data, a.hRstd, dh, n, H, dx, L.inputNorm.grad, true);
  return dx;
}

/** Backward of the embedding lookup x sqrt(H): the input use of the tied table. */
export function embedBackward(model: TrainModel, ids: readonly number[], dx: Float32Array): void {
  const G = model.weights.embed.param?.grad;
  if (!G) return;
  const H = model.config.hiddenSize;
  const scale = Math.fround(model.config.embedScale);
  ids.forEach((id, t) => {
    for (let i = 0; i < H; i++) G[id * H + i] = G[id * H + i]! + dx[t * H + i]! * scale;
  });
}

export interface SequenceLoss {
  /** Sum of the targets' cross-entropies. */
  lossSum: number;
  count: number;
}

/**
 * Forward and backward of one sequence: accumulates lossScale * d(sum of CE)/d(param) into the
 * gradients. `ex.targets[j] = 1` marks token j as a target (undefined: every token after the first).
 */
export function sequenceForwardBackward(model: TrainModel, ex: TrainExample, lossScale: number): SequenceLoss {
  const { ids, targets } = ex;
  const ctx = sequenceContext(model, ids.length, ex.doc, ex.positions);
  // Gradient checkpointing for the layers whose activations do not fit the budget (the first
  // ones: the backward reaches them last); the others keep theirs from the forward.
  const layerBytes = 4 * ids.length * activationFloatsPerToken(model.config);
  const nLayers = model.config.numLayers;
  const keepFrom = Math.max(0, nLayers - Math.floor(model.activationBudget / layerBytes));
  const kept: LayerActivations[] = [];
  const xs = modelForward(model, ctx, ids, kept, keepFrom);
  const head = headForwardBackward(model, xs[xs.length - 1]!, ids, targets, lossScale);
  let dx = head.dx!;
  for (let i = model.config.numLayers - 1; i >= 0; i--) {
    const L = model.weights.layers[i]!;
    const acts = kept[i] ?? layerForward(ctx, L, i, xs[i]!);
    kept.length = i; // release as we go
    xs[i + 1] = new Float32Array(0);
    dx = layerBackward(ctx, L, i, acts, dx);
  }
  embedBackward(model, ids, dx);
  return { lossSum: head.lossSum, count: head.count };
}

/** Loss only (no gradients): validation. */
export function sequenceLoss(model: TrainModel, ex: TrainExample): SequenceLoss {
  const { ids, targets } = ex;
  const ctx = sequenceContext(model, ids.length, ex.doc, ex.positions);
  const xs = modelForward(model, ctx, ids);
  const head = headForwardBackward(model, xs[xs.length - 1]!, ids, targets, undefined);
  return { lossSum: head.lossSum, count: head.count };
}
