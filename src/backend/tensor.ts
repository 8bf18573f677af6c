/**
 * The backend boundary the forward pass is written against: activations are backend-owned
 * tensors (handles, like Matrix), operations enqueue work on them, and only what the model
 * needs comes back to the host (`read`: the logits rows to sample, a hook's activation).
 *
 * A GPU backend (webgpu/) implements this directly: its handles are ranges of GPU buffers and
 * `read` is the one await of a step. The CPU backends (js, wasm) implement the older,
 * synchronous `Backend` on host typed arrays; `hostTensors` turns one into a TensorBackend whose
 * handles ARE those typed arrays (a view is a subarray, `read` returns the array itself), so
 * they lose nothing and can also be read synchronously (`readSync`).
 */
import type { AttentionParams, Backend, Matrix, WeightMatrix } from './backend.js';
import { ModelError } from '../errors.js';
import { checkTargets, headLogProbsByRows } from './log-probs.js';

/** A flat tensor owned by a backend: f32 values (or, for an f16 KV cache, f16 values). */
export interface Tensor {
  readonly length: number;
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** Element type of a KV cache tensor. */
export type CacheType = 'f32' | 'f16';

/** Attention over a KV cache, on tensors (see AttentionParams for the semantics). */
export type TensorAttentionParams = Omit<AttentionParams, 'q' | 'k' | 'v' | 'out'> & {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  out: Tensor;
};

export interface TensorBackend {
  readonly name: string;
  /** Handles are host typed arrays: `readSync` works and reads cost nothing. */
  readonly host: boolean;
  /** Cache element types `allocCache` can hold. */
  readonly cacheTypes: readonly CacheType[];
  prepareMatrix(w: WeightMatrix): Matrix;
  prepareStacked?(parts: readonly WeightMatrix[]): Matrix;

  /** A zero-filled f32 activation tensor of `count` values (release with `free`). */
  alloc(count: number): Tensor;
  /**
   * Long-lived KV cache storage of `count` values (zero-filled) in the backend's own memory,
   * or undefined when the backend has none (the caller then uses a plain Float32Array).
   */
  allocCache(count: number, type: CacheType): Tensor | undefined;
  /** Return a tensor's memory (from alloc / allocCache); the handle must not be used again. */
  free(t: Tensor): void;
  /** Elements [offset, offset + length) of t, sharing its memory. */
  view(t: Tensor, offset: number, length: number): Tensor;
  /** t[offset ..] = data. */
  write(t: Tensor, data: Float32Array, offset?: number): void;
  /** The values of t (f32). One readback; on host backends the array itself (no copy). */
  read(t: Tensor): Promise<Float32Array>;
  /** Synchronous read, host backends only (the array itself: writes to it change the tensor). */
  readSync?(t: Tensor): Float32Array;
  /**
   * rows x cols values from src (row stride srcStride) to dst (row stride dstStride), converted
   * to dst's element type (an f16 cache tensor rounds to nearest even).
   */
  copyRows(src: Tensor, srcOffset: number, srcStride: number, dst: Tensor, dstOffset: number, dstStride: number, rows: number, cols: number): void;

  /** out[t] = W[ids[t]] * scale (embedding rows). */
  embed(w: Matrix, ids: Int32Array, scale: number, out: Tensor): void;
  /** See Backend.matmul. */
  matmul(w: Matrix, x: Tensor, n: number, out: Tensor, rowLimit?: number, softcap?: number): void;
  /** See Backend.headLogProbs: out [n, 2] = (log p(targets[t]), argmax) per row; only out needs reading back. */
  headLogProbs(w: Matrix, x: Tensor, n: number, targets: Int32Array, out: Tensor, rowLimit?: number, softcap?: number): void;
  rmsNorm(x: Tensor, weight: Float32Array, rows: number, dim: number, eps: number): void;
  geluMul(gate: Tensor, up: Tensor, count: number): void;
  rope(x: Tensor, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, theta: number, scaling: number): void;
  attention(p: TensorAttentionParams): void;
  /** x += y over count values. */
  add(x: Tensor, y: Tensor, count: number): void;
  /** Optional: wait for the enqueued work and raise the errors it produced (a GPU's out of memory). */
  settle?(): Promise<void>;
  dispose(): void;
}

export function isTensorBackend(b: Backend | TensorBackend): b is TensorBackend {
  return typeof (b as TensorBackend).read === 'function' && typeof (b as TensorBackend).copyRows === 'function';
}

type HostArray = Float32Array | Uint16Array;

const f32 = (t: Tensor): Float32Array => {
  if (!(t instanceof Float32Array)) throw new ModelError('tensor was not created by a host backend (or is not f32)');
  return t;
};

const adapters = new WeakMap<Backend, TensorBackend>();

/** Plain Float32Arrays, no backend memory: caches created without a backend. */
const plainBackend = {} as Backend;

/**
 * The TensorBackend of a synchronous host backend (one adapter per backend). Without a backend:
 * plain arrays only (for caches created with no backend).
 */
export function hostTensors(backend?: Backend | TensorBackend): TensorBackend {
  if (backend && isTensorBackend(backend)) return backend;
  const b = backend ?? plainBackend;
  let a = adapters.get(b);
  if (!a) {
    a = createHostTensors(b);
    adapters.set(b, a);
  }
  return a;
}

function createHostTensors(b: Backend): TensorBackend {
  const canF16 = !!(b.allocF16 && b.freeF16 && b.writeF16);
  return {
    name: b.name ?? 'plain',
    host: true,
    cacheTypes: canF16 ? ['f32', 'f16'] : ['f32'],
    prepareMatrix: (w) => b.prepareMatrix(w),
    ...(b.prepareStacked ? { prepareStacked: (parts: readonly WeightMatrix[]) => b.prepareStacked!(parts) } : {}),

    alloc: (count) => new Float32Array(count),
    allocCache(count, type) {
      if (type === 'f16') {
        if (!canF16) throw new ModelError(`the ${b.name} backend has no f16 cache storage`);
        return b.allocF16!(count);
      }
      if (!b.allocF32 || !b.freeF32) return undefined;
      try {
        return b.allocF32(count);
      } catch (e) {
        // the backend's memory is exhausted (or gone): plain arrays still work, just slower
        if (e instanceof ModelError) return undefined;
        throw e;
      }
    },
    free(t) {
      if (t instanceof Uint16Array) b.freeF16?.(t);
      else if (t instanceof Float32Array) b.freeF32?.(t);
    },
    view: (t, offset, length) => (t as HostArray).subarray(offset, offset + length),
    write: (t, data, offset = 0) => f32(t).set(data, offset),
    read: (t) => Promise.resolve(f32(t)),
    readSync: f32,
    copyRows(src, srcOffset, srcStride, dst, dstOffset, dstStride, rows, cols) {
      const s = src as HostArray, d = dst as HostArray;
      const contiguous = rows === 1 || (srcStride === cols && dstStride === cols);
      const runs = contiguous ? 1 : rows;
      const len = contiguous ? rows * cols : cols;
      for (let r = 0; r < runs; r++) {
        const from = s.subarray(srcOffset + r * srcStride, srcOffset + r * srcStride + len);
        const at = dstOffset + r * dstStride;
        if (d instanceof Uint16Array && from instanceof Float32Array) b.writeF16!(d, at, from);
        else if ((d instanceof Uint16Array) === (from instanceof Uint16Array)) (d as Float32Array).set(from as Float32Array, at);
        else throw new ModelError('cannot copy f16 values into an f32 tensor');
      }
    },

    embed(w, ids, scale, out) {
      const x = f32(out);
      const H = w.cols;
      for (let t = 0; t < ids.length; t++) {
        const row = x.subarray(t * H, (t + 1) * H);
        b.getRow(w, ids[t]!, row);
        for (let i = 0; i < H; i++) row[i] = row[i]! * scale;
      }
    },
    matmul: (w, x, n, out, rowLimit, softcap) => b.matmul(w, f32(x), n, f32(out), rowLimit, softcap),
    headLogProbs(w, x, n, targets, out, rowLimit, softcap) {
      const rows = rowLimit ?? w.rows;
      if (b.headLogProbs) return b.headLogProbs(w, f32(x), n, targets, f32(out), rows, softcap);
      checkTargets(w, n, targets, rows);
      headLogProbsByRows((xs, c, o) => b.matmul(w, xs, c, o, rows, softcap), f32(x), w.cols, n, rows, targets, f32(out));
    },
    rmsNorm: (x, weight, rows, dim, eps) => b.rmsNorm(f32(x), weight, rows, dim, eps),
    geluMul: (gate, up, count) => b.geluMul(f32(gate), f32(up), count),
    rope: (x, nTokens, nHeads, headDim, positions, theta, scaling) => b.rope(f32(x), nTokens, nHeads, headDim, positions, theta, scaling),
    attention: (p) => b.attention({ ...p, q: f32(p.q), k: p.k as HostArray, v: p.v as HostArray, out: f32(p.out) }),
    add(x, y, count) {
      const a = f32(x), c = f32(y);
      for (let j = 0; j < count; j++) a[j] = a[j]! + c[j]!;
    },
    dispose: () => b.dispose?.(),
  };
}
