/**
 * The training kernels: each forward op the backward pass needs, with its hand-written backward
 * beside it (llm.c style). Activations are f32 arrays laid out [tokens, features]; sums run in
 * JS numbers (f64). The matrix products live in ./matmul.ts. Every op also takes Float64Arrays,
 * which is how the finite-difference tests check each backward in float64.
 */

/** f32 activations in training; f64 in the finite-difference tests. */
export type Vec = Float32Array | Float64Array;

// ---------------------------------------------------------------- RMSNorm with (1 + w)

/**
 * y = x * rsqrt(mean(x^2) + eps) * (1 + w) per row of `dim`; x is not modified. `rstd` (one per
 * row) receives the reciprocal RMS the backward needs. `w` is the stored weight (without the 1).
 */
export function rmsNormForward(x: Vec, w: Vec, rows: number, dim: number, eps: number, y: Vec, rstd: Vec): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i]! * x[o + i]!;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    rstd[r] = inv;
    for (let i = 0; i < dim; i++) y[o + i] = x[o + i]! * inv * (1 + w[i]!);
  }
}

/**
 * Backward of rmsNormForward: dx (+)= d/dx, dw += sum over rows of dy * x * rstd.
 * With n = x * rstd: dx = rstd * (g - n * mean(g * n)), where g = dy * (1 + w).
 */
export function rmsNormBackward(x: Vec, w: Vec, rstd: Vec, dy: Vec, rows: number, dim: number, dx: Vec, dw: Vec | undefined, accumulate: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const inv = rstd[r]!;
    let dot = 0;
    for (let i = 0; i < dim; i++) {
      const ni = x[o + i]! * inv;
      const gi = dy[o + i]! * (1 + w[i]!);
      dot += gi * ni;
      if (dw) dw[i] = dw[i]! + dy[o + i]! * ni;
    }
    const mean = dot / dim;
    for (let i = 0; i < dim; i++) {
      const ni = x[o + i]! * inv;
      const d = inv * (dy[o + i]! * (1 + w[i]!) - ni * mean);
      dx[o + i] = accumulate ? dx[o + i]! + d : d;
    }
  }
}

// ---------------------------------------------------------------- GeGLU with tanh GELU

const GELU_K = Math.sqrt(2 / Math.PI);

/** act = gelu_tanh(gate) * up. */
export function gegluForward(gate: Vec, up: Vec, count: number, act: Vec): void {
  for (let i = 0; i < count; i++) {
    const g = gate[i]!;
    act[i] = 0.5 * g * (1 + Math.tanh(GELU_K * (g + 0.044715 * g * g * g))) * up[i]!;
  }
}

/** dgate = dact * up * gelu'(gate), dup = dact * gelu(gate) (written, not accumulated). */
export function gegluBackward(gate: Vec, up: Vec, dact: Vec, count: number, dgate: Vec, dup: Vec): void {
  for (let i = 0; i < count; i++) {
    const g = gate[i]!;
    const u = GELU_K * (g + 0.044715 * g * g * g);
    const th = Math.tanh(u);
    const gelu = 0.5 * g * (1 + th);
    const dgelu = 0.5 * (1 + th) + 0.5 * g * (1 - th * th) * GELU_K * (1 + 3 * 0.044715 * g * g);
    const d = dact[i]!;
    dgate[i] = d * up[i]! * dgelu;
    dup[i] = d * gelu;
  }
}

// ---------------------------------------------------------------- RoPE (rotate-half, linear scaling)

/** cos / sin tables [n, headDim/2] for positions 0..n-1 (the backend's formula, in f64). */
export interface RopeTable {
  cos: Float64Array;
  sin: Float64Array;
  half: number;
}

export function ropeTable(n: number, headDim: number, theta: number, scaling: number, positions?: Int32Array): RopeTable {
  const half = headDim >> 1;
  const cos = new Float64Array(n * half);
  const sin = new Float64Array(n * half);
  for (let i = 0; i < half; i++) {
    const inv = 1 / Math.pow(theta, (2 * i) / headDim);
    for (let t = 0; t < n; t++) {
      const a = ((positions ? positions[t]! : t) / scaling) * inv;
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  return { cos, sin, half };
}

/**
 * In place on x [n, heads * headDim]: the rotation (inverse = false) or its transpose, which is
 * the backward of the rotation (inverse = true).
 */
export function ropeApply(x: Vec, n: number, heads: number, table: RopeTable, inverse: boolean): void {
  const { cos, sin, half } = table;
  const hd = 2 * half;
  const sgn = inverse ? -1 : 1;
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * hd;
      for (let i = 0; i < half; i++) {
        const c = cos[t * half + i]!, s = sgn * sin[t * half + i]!;
        const x0 = x[o + i]!, x1 = x[o + i + half]!;
        x[o + i] = x0 * c - x1 * s;
        x[o + i + half] = x1 * c + x0 * s;
      }
    }
  }
}

// ---------------------------------------------------------------- causal attention (GQA, window, soft-cap)

export interface AttentionShape {
  n: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Key s is visible from query t when s <= t and t - s < window (Infinity = global). */
  window: number;
  scale: number;
  /** scores = cap * tanh(scores / cap); 0 = none. */
  softcap: number;
  /**
   * Optional document id per position (packed sequences): keys of another document are not
   * visible. Undefined = one document.
   */
  doc?: Int32Array;
}

/** First key visible from query t. */
function firstKey(p: AttentionShape, t: number): number {
  let s0 = p.window === Infinity ? 0 : Math.max(0, t - p.window + 1);
  if (p.doc) while (p.doc[s0] !== p.doc[t]) s0++;
  return s0;
}

/** Softmax weights of query t, head h over keys s0..t into prob[0..t-s0]; returns s0. Also fills capped scores. */
function attnRow(q: Vec, k: Vec, p: AttentionShape, t: number, h: number, prob: Float64Array, tanhOut: Float64Array | undefined): number {
  const { nHeads, nKvHeads, headDim, scale, softcap } = p;
  const group = nHeads / nKvHeads;
  const qDim = nHeads * headDim, kvDim = nKvHeads * headDim;
  const qo = t * qDim + h * headDim;
  const ko = Math.floor(h / group) * headDim;
  const s0 = firstKey(p, t);
  let max = -Infinity;
  for (let s = s0; s <= t; s++) {
    const kb = s * kvDim + ko;
    let d = 0;
    for (let i = 0; i < headDim; i++) d += q[qo + i]! * k[kb + i]!;
    d *= scale;
    if (softcap > 0) {
      const th = Math.tanh(d / softcap);
      if (tanhOut) tanhOut[s - s0] = th;
      d = softcap * th;
    }
    prob[s - s0] = d;
    if (d > max) max = d;
  }
  let sum = 0;
  for (let s = s0; s <= t; s++) {
    const e = Math.exp(prob[s - s0]! - max);
    prob[s - s0] = e;
    sum += e;
  }
  for (let s = s0; s <= t; s++) prob[s - s0] = prob[s - s0]! / sum;
  return s0;
}

/** out[t, h] = sum_s softmax_s(score(q_t,h, k_s)) v_s over the visible keys. */
export function attentionForward(q: Vec, k: Vec, v: Vec, p: AttentionShape, out: Vec): void {
  const { n, nHeads, nKvHeads, headDim } = p;
  const group = nHeads / nKvHeads;
  const qDim = nHeads * headDim, kvDim = nKvHeads * headDim;
  const prob = new Float64Array(n);
  const acc = new Float64Array(headDim);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < nHeads; h++) {
      const s0 = attnRow(q, k, p, t, h, prob, undefined);
      const vo = Math.floor(h / group) * headDim;
      acc.fill(0);
      for (let s = s0; s <= t; s++) {
        const w = prob[s - s0]!;
        const vb = s * kvDim + vo;
        for (let i = 0; i < headDim; i++) acc[i] = acc[i]! + w * v[vb + i]!;
      }
      const oo = t * qDim + h * headDim;
      for (let i = 0; i < headDim; i++) out[oo + i] = acc[i]!;
    }
  }
}

/**
 * Backward of attentionForward, recomputing each row's softmax: dq, dk, dv are written (zeroed
 * here first). Per row: dv_s += p_s dout; dp_s = dout . v_s; dscore_s = p_s (dp_s - sum p dp);
 * through the soft-cap: * (1 - tanh^2); then dq += dscore * scale * k_s, dk_s += dscore * scale * q.
 */
export function attentionBackward(q: Vec, k: Vec, v: Vec, dout: Vec, p: AttentionShape, dq: Vec, dk: Vec, dv: Vec): void {
  const { n, nHeads, nKvHeads, headDim, scale, softcap } = p;
  const group = nHeads / nKvHeads;
  const qDim = nHeads * headDim, kvDim = nKvHeads * headDim;
  dq.fill(0, 0, n * qDim);
  dk.fill(0, 0, n * kvDim);
  dv.fill(0, 0, n * kvDim);
  const prob = new Float64Array(n);
  const th = softcap > 0 ? new Float64Array(n) : undefined;
  const dp = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < nHeads; h++) {
      const s0 = attnRow(q, k, p, t, h, prob, th);
      const ko = Math.floor(h / group) * headDim;
      const qo = t * qDim + h * headDim;
      let dsum = 0;
      for (let s = s0; s <= t; s++) {
        const vb = s * kvDim + ko;
        const w = prob[s - s0]!;
        let d = 0;
        for (let i = 0; i < headDim; i++) {
          const g = dout[qo + i]!;
          d += g * v[vb + i]!;
          dv[vb + i] = dv[vb + i]! + w * g;
        }
        dp[s - s0] = d;
        dsum += w * d;
      }
      for (let s = s0; s <= t; s++) {
        let ds = prob[s - s0]! * (dp[s - s0]! - dsum);
        if (th) ds *= 1 - th[s - s0]! * th[s - s0]!;
        ds *= scale;
        const kb = s * kvDim + ko;
        for (let i = 0; i < headDim; i++) {
          dq[qo + i] = dq[qo + i]! + ds * k[kb + i]!;
          dk[kb + i] = dk[kb + i]! + ds * q[qo + i]!;
        }
      }
    }
  }
}

// ---------------------------------------------------------------- small helpers

/** a[i] += b[i]. */
export function addInto(a: Vec, b: Vec, count = a.length): void {
  for (let i = 0; i < count; i++) a[i] = a[i]! + b[i]!;
}
