/**
 * SAE evaluation with the SAE spliced into the forward pass, as the Gemma Scope report measures
 * it. The <bos> position is excluded everywhere: its activation is neither reconstructed nor
 * counted, and predictions made at <bos> do not enter the losses.
 *
 * - FVU (fraction of variance unexplained): sum ||x - x̂||² / sum ||x - mean(x)||² over all
 *   counted tokens, mean taken over the corpus.
 * - L0: mean number of active features per token.
 * - delta LM loss: next-token cross-entropy with x̂ substituted at the hook point minus the
 *   clean cross-entropy. Also the zero-ablation loss and the "CE loss score"
 *   (CE_zero - CE_sae) / (CE_zero - CE_clean) SAELens reports.
 * - Feature density: fraction of tokens on which each feature fires; dead = never fires.
 */
import { UsageError } from '../errors.js';
import type { Hook, LanguageModel } from '../model/types.js';
import type { CorpusDocument } from './corpus.js';
import { captureHook, mergeHooks } from './features.js';
import type { JumpReluSae } from './sae.js';
import { forwardStep, runSteps, runStepsAsync, type Steps } from '../model/steps.js';

export interface SaeEvalOptions {
  hook?: string;
  /** <bos> id: tokens with this id are excluded (default config.bosId). */
  bosId?: number;
  /** Also run the zero-ablation pass for the CE loss score (default true). */
  zeroAblation?: boolean;
  onProgress?: (doneDocuments: number, totalDocuments: number, doneTokens: number) => void;
}

export interface SaeEvalReport {
  hook: string;
  documents: number;
  /** Counted tokens (<bos> excluded). */
  tokens: number;
  fvu: number;
  explainedVariance: number;
  mse: number;
  l0: number;
  /** Mean next-token cross-entropy (nats) clean, with the SAE, and with the activation zeroed. */
  ceClean: number;
  ceSae: number;
  ceZero?: number;
  deltaLoss: number;
  ceLossScore?: number;
  /** Predictions counted in the losses. */
  predictions: number;
  deadFeatures: number;
  /** Features firing on more than 10% of tokens. */
  denseFeatures: number;
  /** Per feature: fraction of counted tokens on which it fires. */
  density: Float32Array;
}

/** A hook replacing the rows of one sequence with `rows(t)` (undefined: keep) by position. */
export function spliceHook(replacement: (t: number) => Float32Array | undefined, firstPosition = 0): Hook {
  return (e) => {
    for (let r = 0; r < e.nTokens; r++) {
      const rep = replacement(e.positions[r]! - firstPosition);
      if (rep) e.activation.set(rep, r * e.dim);
    }
  };
}

/** FVU, L0, delta LM loss and the CE loss score of an SAE spliced into the model over a corpus (`gemma sae eval`; host backends, see evaluateSaeAsync). */
export function evaluateSae(model: LanguageModel, sae: JumpReluSae, docs: readonly CorpusDocument[], options: SaeEvalOptions = {}): SaeEvalReport {
  return runSteps(model, evaluateSaeSteps(model, sae, docs, options));
}

/** evaluateSae on any backend, webgpu included. */
export function evaluateSaeAsync(model: LanguageModel, sae: JumpReluSae, docs: readonly CorpusDocument[], options: SaeEvalOptions = {}): Promise<SaeEvalReport> {
  return runStepsAsync(model, evaluateSaeSteps(model, sae, docs, options));
}

/**
 * Summed next-token cross-entropy over the counted positions of `ids` (their next tokens scored
 * in the model's head: no vocabulary-wide logits rows come back), on a fresh cache.
 */
function* crossEntropy(model: LanguageModel, ids: readonly number[], hooks: Record<string, Hook>, counted: (t: number) => boolean): Steps<{ sum: number; n: number }> {
  const targets = ids.map((_, t) => (t + 1 < ids.length && counted(t) ? ids[t + 1]! : -1));
  const bad = targets.find((id) => id >= model.vocabSize);
  if (bad !== undefined) throw new UsageError(`token id ${bad} is outside the model's vocabulary (${model.vocabSize})`);
  const cache = model.createCache(ids.length);
  try {
    const res = yield* forwardStep(ids, cache, { targets, hooks });
    let sum = 0;
    let n = 0;
    targets.forEach((id, t) => {
      if (id < 0) return;
      sum -= res.tokenLogProbs![t]!;
      n++;
    });
    return { sum, n };
  } finally {
    cache.dispose?.();
  }
}

function* evaluateSaeSteps(model: LanguageModel, sae: JumpReluSae, docs: readonly CorpusDocument[], options: SaeEvalOptions): Steps<SaeEvalReport> {
  const hook = sae.checkModel(model.config, options.hook ?? sae.hook);
  const bos = options.bosId ?? model.config.bosId;
  const zero = options.zeroAblation ?? true;
  const d = sae.dIn;
  const counts = new Float64Array(sae.dSae);
  let tokens = 0, sse = 0, sumSq = 0, l0 = 0;
  const sum = new Float64Array(d);
  let ceClean = 0, ceSae = 0, ceZero = 0, predictions = 0;
  let doneTokens = 0;
  const zeros = new Float32Array(d);
  for (const [di, doc] of docs.entries()) {
    const ids = doc.ids;
    const n = ids.length;
    const counted = (t: number) => ids[t] !== bos;
    const sink: { data: Float32Array | undefined; dim: number } = { data: undefined, dim: 0 };
    const c = yield* crossEntropy(model, ids, mergeHooks({ [hook]: captureHook(sink, n) }), counted);
    const x = sink.data!;
    const acts = sae.encode(x, n);
    const recon = sae.decode(acts);
    for (let t = 0; t < n; t++) {
      if (!counted(t)) continue;
      tokens++;
      l0 += acts[t]!.indices.length;
      for (const f of acts[t]!.indices) counts[f]++;
      for (let i = 0; i < d; i++) {
        const v = x[t * d + i]!;
        const e = v - recon[t * d + i]!;
        sse += e * e;
        sumSq += v * v;
        sum[i] += v;
      }
    }
    const s = yield* crossEntropy(model, ids, { [hook]: spliceHook((t) => (t >= 0 && t < n && counted(t) ? recon.subarray(t * d, (t + 1) * d) : undefined)) }, counted);
    ceClean += c.sum;
    ceSae += s.sum;
    predictions += c.n;
    if (zero) {
      ceZero += (yield* crossEntropy(model, ids, { [hook]: spliceHook((t) => (t >= 0 && t < n && counted(t) ? zeros : undefined)) }, counted)).sum;
    }
    doneTokens += n;
    options.onProgress?.(di + 1, docs.length, doneTokens);
  }
  if (tokens === 0) throw new UsageError('the corpus has no tokens besides <bos>');
  let meanSq = 0;
  for (let i = 0; i < d; i++) meanSq += sum[i]! * sum[i]!;
  const variance = sumSq - meanSq / tokens;
  const fvu = variance > 0 ? sse / variance : sse === 0 ? 0 : Infinity;
  const density = Float32Array.from(counts, (v) => v / tokens);
  const p = Math.max(1, predictions);
  const report: SaeEvalReport = {
    hook,
    documents: docs.length,
    tokens,
    fvu,
    explainedVariance: 1 - fvu,
    mse: sse / (tokens * d),
    l0: l0 / tokens,
    ceClean: ceClean / p,
    ceSae: ceSae / p,
    deltaLoss: (ceSae - ceClean) / p,
    predictions,
    deadFeatures: density.reduce((a, v) => a + (v === 0 ? 1 : 0), 0),
    denseFeatures: density.reduce((a, v) => a + (v > 0.1 ? 1 : 0), 0),
    density,
  };
  if (zero) {
    report.ceZero = ceZero / p;
    const denom = ceZero - ceClean;
    if (denom !== 0) report.ceLossScore = (ceZero - ceSae) / denom;
  }
  return report;
}
