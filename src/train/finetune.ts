/**
 * The training loop: `finetune(model, data, options)` is an async iterator of step reports (and
 * evaluation reports). Step k takes the next batchSize x gradAccum examples of the (seeded,
 * optionally shuffled) epoch order, averages the cross-entropy over all their target tokens,
 * clips by the global norm, and applies one optimizer update at the scheduled learning rate.
 */
import { UsageError } from '../errors.js';
import { mulberry32 } from '../util/mulberry32.js';
import { sequenceForwardBackward, sequenceLoss } from './backward.js';
import type { Dataset, TrainExample } from './data.js';
import { clipGradients, globalGradNorm, learningRate, Optimizer, OPTIMIZER_DEFAULTS, type OptimizerName, type ScheduleName } from './optim.js';
import type { TrainModel } from './params.js';

export interface FinetuneOptions {
  optimizer?: OptimizerName;
  /** Peak learning rate (default 1e-5). */
  lr?: number;
  /** Number of optimizer steps; default: `epochs` passes over the training set. */
  steps?: number;
  /** Passes over the training data when `steps` is not given (default 1). */
  epochs?: number;
  batchSize?: number;
  gradAccum?: number;
  /** Clip the global gradient norm to this (default 1; 0 = off). */
  maxGradNorm?: number;
  /** Linear warmup steps (default 0). */
  warmup?: number;
  schedule?: ScheduleName;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  momentum?: number;
  seed?: number;
  /** Shuffle the examples each epoch (default true). */
  shuffle?: boolean;
  /** Validation loss every K steps (and after the last step) when there is validation data; 0 = never. */
  evalEvery?: number;
  /** Called after step k's update, awaited (checkpoints). */
  onStep?: (state: LoopState) => void | Promise<void>;
  /** Start after this many finished steps (resume), with this optimizer state. */
  startStep?: number;
  optimizerState?: Optimizer['state'];
  signal?: AbortSignal;
}

export interface StepReport {
  type: 'step';
  step: number;
  /** Mean cross-entropy of the step's targets, before its update. */
  loss: number;
  /** Learning rate of the update. */
  lr: number;
  /** Tokens in the step's sequences. */
  tokens: number;
  /** Target tokens (the loss's denominator). */
  targets: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Tokens per second of this step (forward + backward + update). */
  tokensPerSecond: number;
  /** Seconds since the start. */
  elapsed: number;
  totalSteps: number;
}

export interface EvalReport {
  type: 'eval';
  step: number;
  /** Mean cross-entropy over every target of the validation set. */
  valLoss: number;
  valTargets: number;
}

export type FinetuneReport = StepReport | EvalReport;

export interface LoopState {
  step: number;
  totalSteps: number;
  model: TrainModel;
  optimizer: Optimizer;
}

interface Resolved {
  lr: number;
  batchSize: number;
  gradAccum: number;
  steps: number;
  maxGradNorm: number;
  warmup: number;
  schedule: ScheduleName;
  seed: number;
  shuffle: boolean;
  evalEvery: number;
}

function positiveInt(v: number | undefined, fallback: number, name: string, min = 1): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < min) throw new UsageError(`${name} must be an integer >= ${min}, got ${x}`);
  return x;
}

function resolve(o: FinetuneOptions, nTrain: number): Resolved {
  const batchSize = positiveInt(o.batchSize, 1, 'batchSize');
  const gradAccum = positiveInt(o.gradAccum, 1, 'gradAccum');
  const epochs = o.epochs ?? 1;
  if (!(epochs > 0)) throw new UsageError(`epochs must be > 0, got ${epochs}`);
  const steps = o.steps !== undefined ? positiveInt(o.steps, 1, 'steps') : Math.max(1, Math.ceil((epochs * nTrain) / (batchSize * gradAccum)));
  const lr = o.lr ?? 1e-5;
  const maxGradNorm = o.maxGradNorm ?? 1;
  if (!(maxGradNorm >= 0)) throw new UsageError(`maxGradNorm must be >= 0, got ${maxGradNorm}`);
  return {
    lr, batchSize, gradAccum, steps, maxGradNorm,
    warmup: positiveInt(o.warmup, 0, 'warmup', 0),
    schedule: o.schedule ?? 'constant',
    seed: o.seed ?? 0,
    shuffle: o.shuffle ?? true,
    evalEvery: positiveInt(o.evalEvery, 0, 'evalEvery', 0),
  };
}

/**
 * The example order: epoch after epoch, each a permutation drawn from the seeded generator
 * (or the file order without shuffling). Example number i of the run is order(i).
 */
export function exampleOrder(n: number, shuffle: boolean, seed: number): (i: number) => number {
  const epochs: Int32Array[] = [];
  const rng = mulberry32(seed);
  return (i: number) => {
    const e = Math.floor(i / n);
    while (epochs.length <= e) {
      const perm = Int32Array.from({ length: n }, (_, j) => j);
      if (shuffle) {
        for (let j = n - 1; j > 0; j--) {
          const r = Math.floor(rng() * (j + 1));
          const tmp = perm[j]!;
          perm[j] = perm[r]!;
          perm[r] = tmp;
        }
      }
      epochs.push(perm);
    }
    return epochs[e]![i % n]!;
  };
}

/** Mean validation loss over every target of `examples`. */
export function evaluateLoss(model: TrainModel, examples: readonly TrainExample[]): { loss: number; targets: number } {
  let sum = 0, count = 0;
  for (const ex of examples) {
    const r = sequenceLoss(model, ex);
    sum += r.lossSum;
    count += r.count;
  }
  return { loss: count > 0 ? sum / count : NaN, targets: count };
}

function toDataset(data: Dataset | readonly TrainExample[]): Dataset {
  return Array.isArray(data) ? { train: data as TrainExample[], valid: [] } : (data as Dataset);
}

const tick = () => new Promise<void>((r) => setImmediate(r));

export async function* finetune(model: TrainModel, data: Dataset | readonly TrainExample[], options: FinetuneOptions = {}): AsyncGenerator<FinetuneReport> {
  const ds = toDataset(data);
  if (ds.train.length === 0) throw new UsageError('no training examples');
  const r = resolve(options, ds.train.length);
  const optimizer = new Optimizer({
    ...OPTIMIZER_DEFAULTS,
    optimizer: options.optimizer ?? OPTIMIZER_DEFAULTS.optimizer,
    lr: r.lr,
    weightDecay: options.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay,
    beta1: options.beta1 ?? OPTIMIZER_DEFAULTS.beta1,
    beta2: options.beta2 ?? OPTIMIZER_DEFAULTS.beta2,
    eps: options.eps ?? OPTIMIZER_DEFAULTS.eps,
    momentum: options.momentum ?? OPTIMIZER_DEFAULTS.momentum,
  });
  if (options.optimizerState) {
    optimizer.state.step = options.optimizerState.step;
    for (const [k, v] of options.optimizerState.slots) optimizer.state.slots.set(k, v);
  }
  const order = exampleOrder(ds.train.length, r.shuffle, r.seed);
  const perStep = r.batchSize * r.gradAccum;
  const params = model.trainable();
  const start = performance.now();
  const evaluate = (step: number): EvalReport => {
    const v = evaluateLoss(model, ds.valid);
    return { type: 'eval', step, valLoss: v.loss, valTargets: v.targets };
  };

  for (let step = (options.startStep ?? 0) + 1; step <= r.steps; step++) {
    if (options.signal?.aborted) return;
    const t0 = performance.now();
    const batch: TrainExample[] = [];
    for (let j = 0; j < perStep; j++) batch.push(ds.train[order((step - 1) * perStep + j)]!);
    let targets = 0, tokens = 0;
    for (const ex of batch) {
      tokens += ex.ids.length;
      targets += countTargets(ex);
    }
    model.zeroGrad();
    let lossSum = 0;
    for (const [j, ex] of batch.entries()) {
      model.dropoutKey = (r.seed * 1000003 + step * 4099 + j) | 0;
      lossSum += sequenceForwardBackward(model, ex, targets > 0 ? 1 / targets : 0).lossSum;
      await tick();
    }
    model.dropoutKey = undefined;
    const gradNorm = globalGradNorm(params);
    clipGradients(params, gradNorm, r.maxGradNorm);
    const lr = learningRate({ lr: r.lr, schedule: r.schedule, warmup: r.warmup, totalSteps: r.steps }, step - 1);
    if (targets > 0) optimizer.step(params, lr);
    const now = performance.now();
    yield {
      type: 'step', step, loss: targets > 0 ? lossSum / targets : NaN, lr, tokens, targets, gradNorm,
      tokensPerSecond: tokens / ((now - t0) / 1000), elapsed: (now - start) / 1000, totalSteps: r.steps,
    };
    await options.onStep?.({ step, totalSteps: r.steps, model, optimizer });
    if (ds.valid.length > 0 && r.evalEvery > 0 && (step % r.evalEvery === 0 || step === r.steps)) yield evaluate(step);
  }
}

/** Number of target tokens of an example. */
export function countTargets(ex: TrainExample): number {
  if (!ex.targets) return ex.ids.length - 1;
  let c = 0;
  for (let j = 1; j < ex.ids.length; j++) c += ex.targets[j]!;
  return c;
}
