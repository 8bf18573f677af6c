import assert from 'node:assert/strict';
import type { ForwardOptions, ForwardResult, KVCache, LanguageModel } from '../../src/model/types.js';
import type { Golden } from './paths.js';

export const LOGIT_TOL = 1e-4;
export const HIDDEN_REL_TOL = 1e-4;

function argmax(a: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (a[offset + i]! > a[offset + best]!) best = i;
  return best;
}

function maxAbsDiff(got: Float32Array, offset: number, want: number[]): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[offset + i]! - want[i]!));
  return m;
}

/**
 * A check is a generator that yields the forward calls it needs and is resumed with their
 * results, so one check runs through `forward` (checkLogits ...) or `forwardAsync`
 * (checkLogitsAsync ..., for asynchronous backends).
 */
type Call = { ids: readonly number[]; cache: KVCache; options?: ForwardOptions };
type Check = Generator<Call, void, ForwardResult>;

function runSync(model: LanguageModel, check: Check): void {
  let r = check.next();
  while (!r.done) r = check.next(model.forward(r.value.ids, r.value.cache, r.value.options));
}

async function runAsync(model: LanguageModel, check: Check): Promise<void> {
  let r = check.next();
  while (!r.done) r = check.next(await model.forwardAsync(r.value.ids, r.value.cache, r.value.options));
}

/** All-position logits of every golden sequence, within LOGIT_TOL. */
export const checkLogits = (model: LanguageModel, golden: Golden): void => runSync(model, logitsCheck(model, golden));
export const checkLogitsAsync = (model: LanguageModel, golden: Golden): Promise<void> => runAsync(model, logitsCheck(model, golden));
/** 20 greedy tokens through the KV cache: prefill once, then one token per step. */
export const checkGreedy = (model: LanguageModel, golden: Golden): void => runSync(model, greedyCheck(model, golden));
export const checkGreedyAsync = (model: LanguageModel, golden: Golden): Promise<void> => runAsync(model, greedyCheck(model, golden));
/** Embeddings, every layer's residual output and the final norm, within HIDDEN_REL_TOL of their scale. */
export const checkHidden = (model: LanguageModel, golden: Golden): void => runSync(model, hiddenCheck(model, golden));
export const checkHiddenAsync = (model: LanguageModel, golden: Golden): Promise<void> => runAsync(model, hiddenCheck(model, golden));

function* logitsCheck(model: LanguageModel, golden: Golden): Check {
  for (const seq of golden.sequences) {
    const cache = model.createCache(128);
    const r = yield { ids: seq.input_ids, cache, options: { allPositions: true } };
    assert.equal(r.rows, seq.input_ids.length);
    assert.equal(r.vocab, seq.all_logits[0]!.length, 'logits row length');
    let worst = 0;
    seq.all_logits.forEach((row, t) => (worst = Math.max(worst, maxAbsDiff(r.logits, t * r.vocab, row))));
    assert.ok(worst <= LOGIT_TOL, `${golden.variant} ${seq.name}: max |logit diff| ${worst} > ${LOGIT_TOL}`);
    const last = yield { ids: seq.input_ids, cache: model.createCache(128) };
    const lastDiff = maxAbsDiff(last.logits, 0, seq.last_logits);
    assert.ok(lastDiff <= LOGIT_TOL, `${golden.variant} ${seq.name}: last-position logits differ by ${lastDiff}`);
  }
}

function* greedyCheck(model: LanguageModel, golden: Golden): Check {
  for (const seq of golden.sequences) {
    const cache = model.createCache(128);
    let r = yield { ids: seq.input_ids, cache };
    const got: number[] = [];
    for (let i = 0; i < seq.greedy.num_new_tokens; i++) {
      const id = argmax(r.logits, 0, r.vocab);
      got.push(id);
      if (i + 1 < seq.greedy.num_new_tokens) r = yield { ids: [id], cache };
    }
    assert.deepEqual(got, seq.greedy.new_token_ids, `${golden.variant} ${seq.name}: greedy tokens`);
  }
}

function* hiddenCheck(model: LanguageModel, golden: Golden): Check {
  const hs = golden.hidden_states;
  const r = yield { ids: hs.input_ids, cache: model.createCache(128), options: { collectHidden: true } };
  assert.ok(r.hidden, 'hidden states collected');
  const cmp = (label: string, got: Float32Array, want: number[][]) => {
    const flat = want.flat();
    const scale = Math.max(...flat.map(Math.abs));
    const diff = maxAbsDiff(got, 0, flat);
    assert.ok(diff <= HIDDEN_REL_TOL * scale, `${golden.variant} ${label}: max diff ${diff} > ${HIDDEN_REL_TOL} x scale ${scale}`);
  };
  cmp('embeddings', r.hidden.embeddings, hs.embeddings);
  hs.layers.forEach((layer, i) => cmp(`layer ${i}`, r.hidden!.layers[i]!, layer));
  cmp('final norm', r.hidden.finalNorm, hs.final_norm);
}
