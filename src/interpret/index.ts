/** Interpretability with Gemma Scope SAEs: loading, reading features, evaluation, explanation, steering. */
export { JumpReluSae, RowMatrix, loadSae, hookPointFromPath, hookPointInfo, hookName, resolveSaeFile, topFeatures } from './sae.js';
export type { SparseActs, FeatureValue, SaeWeights, LoadSaeOptions } from './sae.js';
export { readFeatures, readFeaturesAsync, captureActivations, captureActivationsAsync, captureHook, mergeHooks } from './features.js';
export type { FeaturesReport, TokenFeatures, ReadFeaturesOptions } from './features.js';
export { readCorpus } from './corpus.js';
export type { CorpusDocument, CorpusOptions } from './corpus.js';
export { evaluateSae, evaluateSaeAsync, spliceHook } from './metrics.js';
export type { SaeEvalReport, SaeEvalOptions } from './metrics.js';
export {
  logitLens, logitLensAsync, directionLogits, directionLogitsAsync, residualDirection, residualDirectionAsync, topActivatingContexts, topActivatingContextsAsync,
} from './explain.js';
export type { LogitLens, ActivatingContext, TopContexts, TopContextsOptions } from './explain.js';
export {
  steeringHooks, clampHooks, steeringHooksFromFlags, clampHooksFromFlags, interventionHooksFromFlags, parseFeatureFlag,
} from './steering.js';
export type { SteerSpec, ClampSpec, SteerOptions, FlagOptions, FeatureFlag } from './steering.js';
