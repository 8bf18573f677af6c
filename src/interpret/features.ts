/**
 * Reading an SAE's features on a prompt, and hook plumbing shared by reading, evaluation and
 * steering.
 */
import { ModelError, UsageError } from '../errors.js';
import type { Hook, HookEvent, LanguageModel } from '../model/types.js';
import { topFeatures, type FeatureValue, type JumpReluSae, type SparseActs } from './sae.js';
import { forwardStep, runSteps, runStepsAsync, type Steps } from '../model/steps.js';

export interface TokenFeatures {
  id: number;
  /** Active features, largest value first (at most `top`). */
  features: FeatureValue[];
}

/** The `gemma sae features --json` document. */
export interface FeaturesReport {
  tokens: TokenFeatures[];
}

/** Chain several hook records: for one name, each hook sees the previous one's output. */
export function mergeHooks(...records: Array<Record<string, Hook> | undefined>): Record<string, Hook> {
  const byName = new Map<string, Hook[]>();
  for (const r of records) {
    if (!r) continue;
    for (const [name, h] of Object.entries(r)) byName.set(name, [...(byName.get(name) ?? []), h]);
  }
  const out: Record<string, Hook> = {};
  for (const [name, hooks] of byName) {
    out[name] = hooks.length === 1
      ? hooks[0]!
      : (e: HookEvent) => {
          let act = e.activation;
          for (const h of hooks) {
            const r = h({ ...e, activation: act });
            if (r && r !== act) {
              if (r.length !== act.length) throw new ModelError(`hook ${e.name} returned ${r.length} values, expected ${act.length}`);
              act = r;
            }
          }
          return act === e.activation ? undefined : act;
        };
  }
  return out;
}

/**
 * A hook that copies the activations of one sequence into `sink` [nTokens, dim] by absolute
 * position (minus `firstPosition`), across forward chunks.
 */
export function captureHook(sink: { data: Float32Array | undefined; dim: number }, nTokens: number, firstPosition = 0, item = 0): Hook {
  return (e) => {
    if (!sink.data) {
      sink.dim = e.dim;
      sink.data = new Float32Array(nTokens * e.dim);
    }
    for (let r = 0; r < e.nTokens; r++) {
      if (e.items[r] !== item) continue;
      const t = e.positions[r]! - firstPosition;
      if (t < 0 || t >= nTokens) continue;
      sink.data.set(e.activation.subarray(r * e.dim, (r + 1) * e.dim), t * e.dim);
    }
  };
}

/** Run the prompt and return the activations at `hook` [ids.length, dim]. */
export function* captureActivationsSteps(model: LanguageModel, ids: readonly number[], hook: string, extraHooks?: Record<string, Hook>): Steps<{ data: Float32Array; dim: number }> {
  if (ids.length === 0) throw new UsageError('the prompt is empty');
  const sink: { data: Float32Array | undefined; dim: number } = { data: undefined, dim: 0 };
  const cache = model.createCache(ids.length);
  try {
    yield* forwardStep(ids, cache, { hooks: mergeHooks(extraHooks, { [hook]: captureHook(sink, ids.length) }) });
  } finally {
    cache.dispose?.();
  }
  if (!sink.data) throw new ModelError(`hook point ${hook} never fired (does the model have that layer?)`);
  return { data: sink.data, dim: sink.dim };
}

/** Run the prompt and return the activations at `hook` [ids.length, dim] (host backends; see captureActivationsAsync). */
export function captureActivations(model: LanguageModel, ids: readonly number[], hook: string, extraHooks?: Record<string, Hook>): { data: Float32Array; dim: number } {
  return runSteps(model, captureActivationsSteps(model, ids, hook, extraHooks));
}

/** captureActivations on any backend (webgpu reads the activations back asynchronously). */
export function captureActivationsAsync(model: LanguageModel, ids: readonly number[], hook: string, extraHooks?: Record<string, Hook>): Promise<{ data: Float32Array; dim: number }> {
  return runStepsAsync(model, captureActivationsSteps(model, ids, hook, extraHooks));
}

export interface ReadFeaturesOptions {
  /** Features per token (default 10). */
  top?: number;
  /** Hook point (default: the SAE's own). */
  hook?: string;
  /** Hooks applied during the run (e.g. steering). */
  hooks?: Record<string, Hook>;
}

type FeaturesResult = FeaturesReport & { acts: SparseActs[]; hook: string };

function* readFeaturesSteps(model: LanguageModel, sae: JumpReluSae, ids: readonly number[], options: ReadFeaturesOptions): Steps<FeaturesResult> {
  const top = options.top ?? 10;
  if (!Number.isInteger(top) || top < 1) throw new UsageError(`--top must be a positive integer, got ${top}`);
  const hook = sae.checkModel(model.config, options.hook ?? sae.hook);
  const { data } = yield* captureActivationsSteps(model, ids, hook, options.hooks);
  const acts = sae.encode(data, ids.length);
  return { tokens: ids.map((id, t) => ({ id, features: topFeatures(acts[t]!, top) })), acts, hook };
}

/** The top active features of every token of `ids`, and the full sparse activations (host backends; see readFeaturesAsync). */
export function readFeatures(model: LanguageModel, sae: JumpReluSae, ids: readonly number[], options: ReadFeaturesOptions = {}): FeaturesResult {
  return runSteps(model, readFeaturesSteps(model, sae, ids, options));
}

/** readFeatures on any backend, webgpu included. */
export function readFeaturesAsync(model: LanguageModel, sae: JumpReluSae, ids: readonly number[], options: ReadFeaturesOptions = {}): Promise<FeaturesResult> {
  return runStepsAsync(model, readFeaturesSteps(model, sae, ids, options));
}
