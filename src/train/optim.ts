/**
 * Optimizers (SGD, AdamW with decoupled weight decay), the learning-rate schedule (linear
 * warmup, then constant / linear / cosine decay, as Hugging Face's schedulers) and clipping by
 * the global gradient norm. All updates are element-wise in a fixed order: the same inputs give
 * bit-identical weights.
 */
import { UsageError } from '../errors.js';
import type { Param } from './params.js';

export type OptimizerName = 'adamw' | 'sgd';
export type ScheduleName = 'constant' | 'linear' | 'cosine';

export interface OptimizerOptions {
  optimizer: OptimizerName;
  /** Peak learning rate. */
  lr: number;
  /** Decoupled weight decay (AdamW, and SGD); never applied to norm weights. */
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** SGD momentum (0 = plain SGD). */
  momentum: number;
}

export const OPTIMIZER_DEFAULTS: Omit<OptimizerOptions, 'lr'> = { optimizer: 'adamw', weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0 };

/** Serializable optimizer state (for checkpoints). */
export interface OptimizerState {
  step: number;
  /** Per parameter name: AdamW's first and second moments, or SGD's momentum buffer. */
  slots: Map<string, Float32Array[]>;
}

export class Optimizer {
  readonly state: OptimizerState = { step: 0, slots: new Map() };
  constructor(readonly options: OptimizerOptions) {
    if (!(options.lr >= 0)) throw new UsageError(`learning rate must be >= 0, got ${options.lr}`);
  }

  private slots(p: Param, count: number): Float32Array[] {
    let s = this.state.slots.get(p.name);
    if (!s) {
      s = Array.from({ length: count }, () => new Float32Array(p.data.length));
      this.state.slots.set(p.name, s);
    }
    return s;
  }

  /** One update of every parameter that has a gradient, at learning rate `lr`. */
  step(params: readonly Param[], lr: number): void {
    const o = this.options;
    this.state.step++;
    const t = this.state.step;
    for (const p of params) {
      const g = p.grad;
      if (!g) continue;
      const w = p.data;
      const decay = p.kind === 'norm' ? 0 : o.weightDecay;
      if (o.optimizer === 'sgd') {
        if (decay > 0) {
          const f = 1 - lr * decay;
          for (let i = 0; i < w.length; i++) w[i] = w[i]! * f;
        }
        if (o.momentum > 0) {
          const [buf] = this.slots(p, 1) as [Float32Array];
          for (let i = 0; i < w.length; i++) {
            const b = t === 1 ? g[i]! : o.momentum * buf[i]! + g[i]!;
            buf[i] = b;
            w[i] = w[i]! - lr * b;
          }
        } else {
          for (let i = 0; i < w.length; i++) w[i] = w[i]! - lr * g[i]!;
        }
        continue;
      }
      // AdamW, as torch.optim.AdamW: decay first, then the bias-corrected Adam step.
      const [m, v] = this.slots(p, 2) as [Float32Array, Float32Array];
      if (decay > 0) {
        const f = 1 - lr * decay;
        for (let i = 0; i < w.length; i++) w[i] = w[i]! * f;
      }
      const bc1 = 1 - Math.pow(o.beta1, t);
      const bc2Sqrt = Math.sqrt(1 - Math.pow(o.beta2, t));
      const stepSize = lr / bc1;
      for (let i = 0; i < w.length; i++) {
        const gi = g[i]!;
        const mi = (m[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi);
        const vi = (v[i] = o.beta2 * v[i]! + (1 - o.beta2) * gi * gi);
        w[i] = w[i]! - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + o.eps);
      }
    }
  }
}

export interface ScheduleOptions {
  lr: number;
  schedule: ScheduleName;
  /** Warmup steps (linear from 0). */
  warmup: number;
  totalSteps: number;
}

/** Learning rate of update number `step` (0-based), as Hugging Face's get_*_schedule_with_warmup. */
export function learningRate(s: ScheduleOptions, step: number): number {
  if (step < s.warmup) return (s.lr * step) / Math.max(1, s.warmup);
  if (s.schedule === 'constant') return s.lr;
  const progress = (step - s.warmup) / Math.max(1, s.totalSteps - s.warmup);
  if (s.schedule === 'linear') return s.lr * Math.max(0, 1 - progress);
  return s.lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

/** The L2 norm of all gradients together. */
export function globalGradNorm(params: readonly Param[]): number {
  let ss = 0;
  for (const p of params) {
    const g = p.grad;
    if (!g) continue;
    for (let i = 0; i < g.length; i++) ss += g[i]! * g[i]!;
  }
  return Math.sqrt(ss);
}

/** Scale every gradient by maxNorm / norm when the global norm exceeds maxNorm (torch's clip_grad_norm_). */
export function clipGradients(params: readonly Param[], norm: number, maxNorm: number): void {
  if (!(maxNorm > 0) || !(norm > maxNorm)) return;
  const f = maxNorm / (norm + 1e-6);
  for (const p of params) {
    const g = p.grad;
    if (!g) continue;
    for (let i = 0; i < g.length; i++) g[i] = g[i]! * f;
  }
}
