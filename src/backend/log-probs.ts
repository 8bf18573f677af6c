/**
 * The LM head's scoring reduction, the readable reference: the log-softmax of a logits row at a
 * target token, and the row's argmax (its first maximum). Backends that fuse it into the head's
 * product (`headLogProbs`) must agree with this; host backends without one use it directly.
 */
import type { Matrix } from './backend.js';
import { ModelError } from '../errors.js';

/** log softmax(logits[offset .. offset + vocab))[target] (in f64) and the first argmax. */
export function rowLogProb(logits: Float32Array, offset: number, vocab: number, target: number): { logProb: number; argmax: number } {
  let max = -Infinity;
  let argmax = 0;
  for (let v = 0; v < vocab; v++) {
    const x = logits[offset + v]!;
    if (x > max) {
      max = x;
      argmax = v;
    }
  }
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v]! - max);
  return { logProb: logits[offset + target]! - max - Math.log(sum), argmax };
}

/** Check headLogProbs arguments; throws ModelError naming the problem. */
export function checkTargets(w: Matrix, n: number, targets: Int32Array, rowLimit: number): void {
  if (targets.length < n) throw new ModelError(`headLogProbs needs ${n} targets, got ${targets.length}`);
  for (let t = 0; t < n; t++) {
    const id = targets[t]!;
    if (!(id >= 0 && id < rowLimit)) throw new ModelError(`target ${id} (row ${t}) is outside the vocabulary [0, ${rowLimit}) of the [${w.rows}, ${w.cols}] head`);
  }
}

/**
 * headLogProbs from a plain matmul: the products of at most ~16M logits at a time, each row then
 * reduced by rowLogProb. out[2t] = log p(targets[t]), out[2t + 1] = argmax.
 */
export function headLogProbsByRows(matmul: (x: Float32Array, n: number, out: Float32Array) => void, x: Float32Array, cols: number, n: number, vocab: number, targets: Int32Array, out: Float32Array): void {
  const per = Math.max(1, Math.min(n, Math.floor((1 << 24) / vocab)));
  const logits = new Float32Array(per * vocab);
  for (let t0 = 0; t0 < n; t0 += per) {
    const c = Math.min(per, n - t0);
    matmul(x.subarray(t0 * cols, (t0 + c) * cols), c, logits);
    for (let r = 0; r < c; r++) {
      const { logProb, argmax } = rowLogProb(logits, r * vocab, vocab, targets[t0 + r]!);
      out[2 * (t0 + r)] = logProb;
      out[2 * (t0 + r) + 1] = argmax;
    }
  }
}
