/**
 * The head and the loss: final RMSNorm -> tied-embedding logits -> (soft-cap) -> cross-entropy
 * of each target token, with its backward, in chunks of positions so that the [n, vocab] logits
 * of a whole sequence are never held at once. Only positions whose next token is a target are
 * computed at all (prompt tokens of chat data cost no logits).
 */
import { rmsNormBackward, rmsNormForward } from './ops.js';
import type { TrainModel } from './params.js';

/** Positions per logits chunk. */
export const LOSS_CHUNK = 32;

export interface HeadResult {
  /** Sum of the cross-entropies (nats) of the targets. */
  lossSum: number;
  /** Number of targets. */
  count: number;
  /** d(lossScale * lossSum)/d x_L [n, H], when a backward was asked for. */
  dx?: Float32Array;
}

/**
 * Positions t whose next token ids[t + 1] is a target (targets[t + 1] = 1). `targets`
 * undefined = every next token.
 */
export function targetPositions(n: number, targets: Uint8Array | undefined): number[] {
  const out: number[] = [];
  for (let t = 0; t + 1 < n; t++) if (!targets || targets[t + 1]) out.push(t);
  return out;
}

/** Logits of the given rows of x_L [rows.length, V] (final norm, tied embedding, soft-cap). */
function logitsOf(model: TrainModel, xL: Float32Array, rows: number[], xn: Float32Array, rstd: Float32Array, xRows: Float32Array, logits: Float32Array): void {
  const c = model.config;
  const H = c.hiddenSize, V = c.vocabSize;
  rows.forEach((t, r) => xRows.set(xL.subarray(t * H, (t + 1) * H), r * H));
  rmsNormForward(xRows, model.weights.finalNorm.data, rows.length, H, c.rmsNormEps, xn, rstd);
  model.weights.embed.forward(xn, rows.length, logits);
  const cap = c.finalSoftcap;
  if (cap > 0) for (let i = 0; i < rows.length * V; i++) logits[i] = cap * Math.tanh(logits[i]! / cap);
}

/**
 * Cross-entropy of predicting ids[t + 1] at each target position t; with `lossScale`, also the
 * backward: dx_L and the gradients of the embedding (its output use) and of the final norm,
 * scaled by lossScale (1 / the number of targets of the whole optimizer step).
 */
export function headForwardBackward(model: TrainModel, xL: Float32Array, ids: readonly number[], targets: Uint8Array | undefined, lossScale: number | undefined): HeadResult {
  const c = model.config;
  const H = c.hiddenSize, V = c.vocabSize;
  const n = ids.length;
  const positions = targetPositions(n, targets);
  const chunk = Math.min(LOSS_CHUNK, Math.max(1, positions.length));
  const xRows = new Float32Array(chunk * H), xn = new Float32Array(chunk * H), rstd = new Float32Array(chunk);
  const logits = new Float32Array(chunk * V);
  const backward = lossScale !== undefined;
  const dx = backward ? new Float32Array(n * H) : undefined;
  const dxn = backward ? new Float32Array(chunk * H) : undefined;
  const dRows = backward ? new Float32Array(chunk * H) : undefined;
  const cap = c.finalSoftcap;
  let lossSum = 0;
  for (let p0 = 0; p0 < positions.length; p0 += chunk) {
    const rows = positions.slice(p0, p0 + chunk);
    const m = rows.length;
    logitsOf(model, xL, rows, xn, rstd, xRows, logits);
    for (let r = 0; r < m; r++) {
      const o = r * V;
      const target = ids[rows[r]! + 1]!;
      let max = -Infinity;
      for (let i = 0; i < V; i++) if (logits[o + i]! > max) max = logits[o + i]!;
      let sum = 0;
      for (let i = 0; i < V; i++) sum += Math.exp(logits[o + i]! - max);
      const lse = max + Math.log(sum);
      lossSum += lse - logits[o + target]!;
      if (!backward) continue;
      // dlogit_i = (softmax_i - [i = target]) * scale, then through the soft-cap.
      for (let i = 0; i < V; i++) {
        let d = Math.exp(logits[o + i]! - lse);
        if (i === target) d -= 1;
        d *= lossScale;
        if (cap > 0) {
          const th = logits[o + i]! / cap;
          d *= 1 - th * th;
        }
        logits[o + i] = d;
      }
    }
    if (!backward) continue;
    const sub = logits.subarray(0, m * V);
    dxn!.fill(0);
    // dxn = dlogits E; E's gradient (its output use) when it trains
    model.weights.embed.backward(sub, xn.subarray(0, m * H), m, dxn!);
    rmsNormBackward(xRows, model.weights.finalNorm.data, rstd, dxn!, m, H, dRows!, model.weights.finalNorm.grad, false);
    rows.forEach((t, r) => dx!.set(dRows!.subarray(r * H, (r + 1) * H), t * H));
  }
  return { lossSum, count: positions.length, dx };
}

/** All-position logits [n, V] of the training forward (for tests and evaluation). */
export function headLogits(model: TrainModel, xL: Float32Array, n: number): Float32Array {
  const H = model.config.hiddenSize, V = model.config.vocabSize;
  const rows = Array.from({ length: n }, (_, t) => t);
  const out = new Float32Array(n * V);
  logitsOf(model, xL, rows, new Float32Array(n * H), new Float32Array(n), new Float32Array(n * H), out);
  return out;
}
