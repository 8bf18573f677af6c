/**
 * Model-driven computations written once for both model boundaries. A computation that runs
 * forward passes (ShieldGemma scoring, SAE reading / evaluation, the logit lens) is a generator
 * that yields what it needs from the model - a forward call, a batch, a tensor's values - and is
 * resumed with the answer. `runSteps` answers at once through the synchronous `forward` (host
 * backends: js, wasm); `runStepsAsync` awaits `forwardAsync` and tensor reads, so the same code
 * works on every backend, webgpu included.
 */
import type { Tensor, TensorBackend } from '../backend/tensor.js';
import { ModelError } from '../errors.js';
import type { BatchItem, ForwardOptions, ForwardResult, KVCache, LanguageModel } from './types.js';

export type StepRequest =
  | { kind: 'forward'; ids: readonly number[]; cache: KVCache; options?: ForwardOptions }
  | { kind: 'batch'; items: readonly BatchItem[]; options?: Omit<ForwardOptions, 'allPositions' | 'collectHidden' | 'targets'> }
  | { kind: 'read'; tensors: TensorBackend; tensor: Tensor };

type Answer = ForwardResult[] | Float32Array;

/** A computation over a model: yields requests, resumed with their answers, returns T. */
export type Steps<T> = Generator<StepRequest, T, Answer>;

/** One forward call (see LanguageModel.forward). */
export function* forwardStep(ids: readonly number[], cache: KVCache, options?: ForwardOptions): Steps<ForwardResult> {
  const r = (yield { kind: 'forward', ids, cache, ...(options ? { options } : {}) }) as ForwardResult[];
  return r[0]!;
}

/** One batched forward call (see LanguageModel.forwardBatch). */
export function* batchStep(items: readonly BatchItem[], options?: Omit<ForwardOptions, 'allPositions' | 'collectHidden' | 'targets'>): Steps<ForwardResult[]> {
  return (yield { kind: 'batch', items, ...(options ? { options } : {}) }) as ForwardResult[];
}

/** The values of a backend tensor (one readback on a GPU). */
export function* readStep(tensors: TensorBackend, tensor: Tensor): Steps<Float32Array> {
  return (yield { kind: 'read', tensors, tensor }) as Float32Array;
}

/** Run a computation through the synchronous model boundary (host backends; webgpu throws a ModelError naming the async twin). */
export function runSteps<T>(model: LanguageModel, steps: Steps<T>): T {
  let r = steps.next();
  while (!r.done) {
    const q = r.value;
    let answer: Answer;
    if (q.kind === 'forward') answer = [model.forward(q.ids, q.cache, q.options)];
    else if (q.kind === 'batch') answer = model.forwardBatch(q.items, q.options);
    else {
      if (!q.tensors.readSync) throw new ModelError(`the ${q.tensors.name} backend is asynchronous: use the Async variant of this function`);
      answer = q.tensors.readSync(q.tensor);
    }
    r = steps.next(answer);
  }
  return r.value;
}

/** Run a computation through the asynchronous boundary (every backend). */
export async function runStepsAsync<T>(model: LanguageModel, steps: Steps<T>): Promise<T> {
  let r = steps.next();
  while (!r.done) {
    const q = r.value;
    let answer: Answer;
    try {
      if (q.kind === 'forward') answer = [await model.forwardAsync(q.ids, q.cache, q.options)];
      else if (q.kind === 'batch') answer = await model.forwardBatchAsync(q.items, q.options);
      else answer = await q.tensors.read(q.tensor);
    } catch (e) {
      steps.return(undefined as T); // runs the computation's finally blocks
      throw e;
    }
    r = steps.next(answer);
  }
  return r.value;
}
