/**
 * Explaining one SAE feature:
 * - logit lens: W_dec[f] (mapped into the residual stream: through o_proj and the post-attention
 *   norm's scale for attn.hook_z SAEs) times the final norm's scale (1 + w), projected on the
 *   tied embedding: the tokens the direction promotes (top) and suppresses (bottom);
 * - top-activating contexts over a corpus, with the feature's value on every token around the
 *   peak, and the feature's density on that corpus.
 */
import type { Backend, Matrix } from '../backend/backend.js';
import { ModelError } from '../errors.js';
import type { LanguageModel } from '../model/types.js';
import type { GemmaWeights } from '../model/weights.js';
import type { CorpusDocument } from './corpus.js';
import { captureActivationsSteps } from './features.js';
import { hostTensors, type TensorBackend } from '../backend/tensor.js';
import { readStep, runSteps, runStepsAsync, type Steps } from '../model/steps.js';
import { hookPointInfo, type JumpReluSae } from './sae.js';

export interface LensToken {
  id: number;
  value: number;
}

export interface LogitLens {
  /** Tokens the direction promotes most, largest first. */
  positive: LensToken[];
  /** Tokens it suppresses most, most negative first. */
  negative: LensToken[];
}

interface Unembedding {
  tensors: TensorBackend;
  embed: Matrix;
  finalNorm: Float32Array;
  weights: GemmaWeights;
}

/**
 * The model's tied embedding and norm weights. GemmaModel keeps them in a private field; read
 * them through a public `weights` when a model offers one.
 */
function unembedding(model: LanguageModel): Unembedding {
  const m = model as unknown as { weights?: GemmaWeights; w?: GemmaWeights; backend?: Backend | TensorBackend; tensors?: TensorBackend };
  const weights = m.weights ?? m.w;
  if (!weights || !m.backend || !weights.embed || !weights.finalNorm) throw new ModelError('this model does not expose its embedding and final norm (logit lens needs a GemmaModel)');
  return { tensors: m.tensors ?? hostTensors(m.backend), embed: weights.embed, finalNorm: weights.finalNorm, weights };
}

/** x · W[0:rows]^T for one vector, on the model's backend (one readback on a GPU). */
function* productSteps(tensors: TensorBackend, w: Matrix, x: Float32Array, rows: number): Steps<Float32Array> {
  const xt = tensors.alloc(x.length), out = tensors.alloc(rows);
  try {
    tensors.write(xt, x);
    tensors.matmul(w, xt, 1, out, rows);
    return (yield* readStep(tensors, out)).slice();
  } finally {
    tensors.free(xt);
    tensors.free(out);
  }
}

function* residualDirectionSteps(model: LanguageModel, sae: JumpReluSae, feature: number, hook: string | undefined): Steps<Float32Array> {
  const h = sae.checkModel(model.config, hook);
  const dir = sae.decoderRow(feature);
  const { point, layer } = hookPointInfo(h, model.config);
  if (point !== 'attn.hook_z') return dir.slice();
  const u = unembedding(model);
  const L = u.weights.layers[layer]!;
  const out = yield* productSteps(u.tensors, L.o, dir, model.config.hiddenSize);
  if (model.config.sandwichNorms) for (let i = 0; i < out.length; i++) out[i] = out[i]! * L.postAttnNorm[i]!;
  return out;
}

function* directionLogitsSteps(model: LanguageModel, dir: Float32Array): Steps<Float32Array> {
  const u = unembedding(model);
  const H = model.config.hiddenSize;
  if (dir.length !== H) throw new ModelError(`direction has ${dir.length} values, the residual stream ${H}`);
  const scaled = new Float32Array(H);
  for (let i = 0; i < H; i++) scaled[i] = dir[i]! * u.finalNorm[i]!;
  return yield* productSteps(u.tensors, u.embed, scaled, model.vocabSize);
}

function* logitLensSteps(model: LanguageModel, sae: JumpReluSae, feature: number, k: number, hook: string | undefined): Steps<LogitLens> {
  const logits = yield* directionLogitsSteps(model, yield* residualDirectionSteps(model, sae, feature, hook));
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const kk = Math.min(k, logits.length);
  return {
    positive: order.slice(0, kk).map((id) => ({ id, value: logits[id]! })),
    negative: order.slice(-kk).reverse().map((id) => ({ id, value: logits[id]! })),
  };
}

/** W_dec[f] as a residual-stream direction (host backends; see residualDirectionAsync). */
export function residualDirection(model: LanguageModel, sae: JumpReluSae, feature: number, hook = sae.hook): Float32Array {
  return runSteps(model, residualDirectionSteps(model, sae, feature, hook));
}

/** residualDirection on any backend. */
export function residualDirectionAsync(model: LanguageModel, sae: JumpReluSae, feature: number, hook = sae.hook): Promise<Float32Array> {
  return runStepsAsync(model, residualDirectionSteps(model, sae, feature, hook));
}

/** Logit-lens scores of every token for a residual direction: E · (dir * (1 + w_final)) (host backends; see directionLogitsAsync). */
export function directionLogits(model: LanguageModel, dir: Float32Array): Float32Array {
  return runSteps(model, directionLogitsSteps(model, dir));
}

/** directionLogits on any backend. */
export function directionLogitsAsync(model: LanguageModel, dir: Float32Array): Promise<Float32Array> {
  return runStepsAsync(model, directionLogitsSteps(model, dir));
}

/** Top k promoted and suppressed tokens of feature f's decoder direction (host backends; see logitLensAsync). */
export function logitLens(model: LanguageModel, sae: JumpReluSae, feature: number, k = 10, hook = sae.hook): LogitLens {
  return runSteps(model, logitLensSteps(model, sae, feature, k, hook));
}

/** logitLens on any backend, webgpu included. */
export function logitLensAsync(model: LanguageModel, sae: JumpReluSae, feature: number, k = 10, hook = sae.hook): Promise<LogitLens> {
  return runStepsAsync(model, logitLensSteps(model, sae, feature, k, hook));
}

export interface ActivatingContext {
  /** Document index in the corpus. */
  document: number;
  /** Position of the peak token in the document. */
  position: number;
  value: number;
  /** Tokens of the window around the peak and the feature's value on each. */
  tokens: Array<{ id: number; value: number; position: number }>;
}

export interface TopContextsOptions {
  hook?: string;
  /** Contexts to keep (default 10). */
  k?: number;
  /** Tokens shown before and after the peak (default 12 and 4). */
  before?: number;
  after?: number;
  /** <bos> id (its activation is ignored; default config.bosId). */
  bosId?: number;
  onProgress?: (doneDocuments: number, totalDocuments: number) => void;
}

export interface TopContexts {
  contexts: ActivatingContext[];
  /** Fraction of counted tokens on which the feature fires. */
  density: number;
  maxValue: number;
  tokens: number;
}

/** The k highest-activating contexts of a feature over a corpus (at most one peak per window; host backends, see topActivatingContextsAsync). */
export function topActivatingContexts(model: LanguageModel, sae: JumpReluSae, feature: number, docs: readonly CorpusDocument[], options: TopContextsOptions = {}): TopContexts {
  return runSteps(model, topContextsSteps(model, sae, feature, docs, options));
}

/** topActivatingContexts on any backend, webgpu included. */
export function topActivatingContextsAsync(model: LanguageModel, sae: JumpReluSae, feature: number, docs: readonly CorpusDocument[], options: TopContextsOptions = {}): Promise<TopContexts> {
  return runStepsAsync(model, topContextsSteps(model, sae, feature, docs, options));
}

function* topContextsSteps(model: LanguageModel, sae: JumpReluSae, feature: number, docs: readonly CorpusDocument[], options: TopContextsOptions): Steps<TopContexts> {
  const hook = sae.checkModel(model.config, options.hook ?? sae.hook);
  sae.checkFeature(feature);
  const k = options.k ?? 10;
  const before = options.before ?? 12;
  const after = options.after ?? 4;
  const bos = options.bosId ?? model.config.bosId;
  let best: ActivatingContext[] = [];
  let fired = 0, tokens = 0, maxValue = 0;
  for (const [di, doc] of docs.entries()) {
    const { data } = yield* captureActivationsSteps(model, doc.ids, hook);
    const acts = sae.featureActivation(data, doc.ids.length, feature);
    const peaks: number[] = [];
    for (let t = 0; t < acts.length; t++) {
      if (doc.ids[t] === bos) {
        acts[t] = 0;
        continue;
      }
      tokens++;
      if (acts[t]! > 0) {
        fired++;
        peaks.push(t);
      }
      if (acts[t]! > maxValue) maxValue = acts[t]!;
    }
    peaks.sort((a, b) => acts[b]! - acts[a]! || a - b);
    const chosen: number[] = [];
    for (const t of peaks) {
      if (chosen.length >= k) break;
      if (chosen.some((c) => Math.abs(c - t) <= before)) continue;
      chosen.push(t);
    }
    for (const t of chosen) {
      const from = Math.max(0, t - before);
      const to = Math.min(doc.ids.length, t + after + 1);
      const window = [];
      for (let p = from; p < to; p++) window.push({ id: doc.ids[p]!, value: acts[p]!, position: p });
      best.push({ document: di, position: t, value: acts[t]!, tokens: window });
    }
    best.sort((a, b) => b.value - a.value || a.document - b.document || a.position - b.position);
    best = best.slice(0, k);
    options.onProgress?.(di + 1, docs.length);
  }
  return { contexts: best, density: tokens ? fired / tokens : 0, maxValue, tokens };
}
