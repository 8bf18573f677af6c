/**
 * The training matrix products in WebAssembly SIMD (kernels/train.ts, built to
 * dist/src/train/train-kernels.wasm): one general product C (+)= A B, with A read through
 * strides so that dy^T needs no copy, and the forward product x W^T as dot products along rows
 * (gemm_nt). Operands are copied into the module's memory per call (O(size) against the
 * product's O(size x n)). Falls back to the JS kernels when a dimension is not a multiple of 4.
 *
 * Threads: `WasmMatmul.create({ threads })` splits each product over the wasm backend's worker
 * pool (src/backend/wasm/pool.ts) by output rows; each output element is summed by one thread in a
 * fixed order, so results are bit-identical for every thread count (training stays deterministic).
 * Frozen weights in their stored type (LoRA bases, the tied embedding) are decoded block by block
 * inside the module (f16 / bf16 / Q8_0 / Q4_0 / Q6_K by threaded kernels, other types by the JS
 * decoders) and multiplied there, never held as f32.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ThreadPool } from '../backend/wasm/pool.js';
import { decodeRow, rowBytes } from '../backend/js/decode.js';
import { ModelError, UsageError } from '../errors.js';
import type { DType } from '../formats/dtype.js';
import { physicalCores } from '../platform/threads.js';
import { jsMatmul, type FrozenWeight, type MatmulKernels } from './matmul.js';
import type { AttentionShape } from './ops.js';

const PAGE = 65536;
const BASE = 4096;
const K_BLOCK = 128;

/** Kernels the pool runs (f(start, end, ...args) over output-row units), by index. */
const POOL_KERNELS = ['gemm_t', 'gemm_nt_t', 'dequant_t'] as const;
const K_GEMM = 0, K_GEMM_NT = 1, K_DEQUANT = 2;
/** dequant_t's kind per stored type (others are decoded in JS). */
const DEQUANT_KIND: Partial<Record<DType, number>> = { f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q6_k: 5 };
type KernelFn = (...args: number[]) => void;

/** Rows of a frozen weight decoded per block: about 2 MB of f32, a multiple of K_BLOCK when possible. */
function frozenBlockRows(cols: number): number {
  const rows = Math.floor((1 << 19) / cols);
  return rows >= K_BLOCK ? rows - (rows % K_BLOCK) : Math.max(4, rows - (rows % 4));
}

type AttnFwd = (q: number, k: number, v: number, out: number, lse: number, n: number, nHeads: number, nKv: number, hd: number, window: number, scale: number, cap: number, doc: number, scratch: number) => void;
type AttnBwd = (q: number, k: number, v: number, dout: number, lse: number, dq: number, dk: number, dv: number, n: number, nHeads: number, nKv: number, hd: number, window: number, scale: number, cap: number, doc: number, scratch: number) => void;


/** The kernel's window argument: Infinity (global layers) as the largest i32. */
function windowArg(w: number): number {
  return Number.isFinite(w) ? w : 0x7fffffff;
}

function kernelFile(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'train-kernels.wasm'), path.join(here, '..', '..', 'dist', 'src', 'train', 'train-kernels.wasm')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new ModelError(`training kernels not built: ${candidates[0]} is missing (run \`npm run build\`)`);
  return found;
}

let compiled: WebAssembly.Module | undefined;

function compiledKernels(): WebAssembly.Module {
  return (compiled ??= new WebAssembly.Module(readFileSync(kernelFile())));
}

function newMemory(): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true });
}

export interface WasmMatmulOptions {
  /** Worker threads (the calling thread included); default: the physical cores. 1 = no workers. */
  threads?: number;
}

export class WasmMatmul implements MatmulKernels {
  readonly name = 'wasm';
  private readonly memory: WebAssembly.Memory;
  private readonly attnFwd: AttnFwd;
  private readonly attnBwd: AttnBwd;
  /** The pool kernels on this thread (used when there is no pool). */
  private readonly local: KernelFn[];
  private f32: Float32Array;

  /** Single-threaded kernels; `WasmMatmul.create` adds worker threads. */
  constructor(memory: WebAssembly.Memory = newMemory(), private readonly pool?: ThreadPool) {
    this.memory = memory;
    const inst = new WebAssembly.Instance(compiledKernels(), { env: { memory: this.memory, abort: () => { throw new ModelError('training kernel abort'); } } });
    this.local = POOL_KERNELS.map((k) => inst.exports[k] as KernelFn);
    this.attnFwd = inst.exports.attn_fwd as AttnFwd;
    this.attnBwd = inst.exports.attn_bwd as AttnBwd;
    this.f32 = new Float32Array(this.memory.buffer);
  }

  /** Kernels on `threads` threads (a worker pool over the module's shared memory). */
  static async create(options: WasmMatmulOptions = {}): Promise<WasmMatmul> {
    const threads = options.threads ?? physicalCores();
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new UsageError(`threads must be an integer from 1 to 256, got ${String(options.threads)}`);
    if (threads === 1) return new WasmMatmul();
    const memory = newMemory();
    const pool = await ThreadPool.create(compiledKernels(), memory, threads, POOL_KERNELS);
    return new WasmMatmul(memory, pool);
  }

  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  /** Stop the worker threads (they do not keep the process alive in any case). */
  dispose(): void {
    this.pool?.dispose();
  }

  /** Pool kernel `k` over output-row units [0, units), split over the threads. */
  private run(k: number, units: number, args: number[]): void {
    if (this.pool) this.pool.run(0, k, units, args, units > 1);
    else this.local[k]!(0, units, ...args);
  }

  private gemm(a: number, sr: number, sk: number, b: number, c: number, rows: number, m: number, K: number, accumulate: number): void {
    this.run(K_GEMM, Math.ceil(rows / 4), [a, sr, sk, b, c, rows, m, K, accumulate]);
  }

  private gemmNT(a: number, b: number, c: number, rows: number, m: number, K: number, ldc: number): void {
    this.run(K_GEMM_NT, Math.ceil(rows / 2), [a, b, c, rows, m, K, ldc]);
  }

  /** Room for `floats` values from BASE on; returns the f32 view. */
  private reserve(floats: number): Float32Array {
    const need = BASE + floats * 4;
    const have = this.memory.buffer.byteLength;
    if (need > have) {
      const pages = Math.ceil((need - have) / PAGE);
      try {
        this.memory.grow(pages);
      } catch (e) {
        throw new ModelError(`training kernels: cannot grow WebAssembly memory to ${need} bytes: ${(e as Error).message}`, { cause: e });
      }
    }
    if (this.f32.length * 4 !== this.memory.buffer.byteLength) this.f32 = new Float32Array(this.memory.buffer);
    return this.f32;
  }

  xwt(x: Float32Array, w: Float32Array, n: number, inDim: number, outDim: number, y: Float32Array): void {
    if (inDim % 4 || outDim % 4) return jsMatmul.xwt(x, w, n, inDim, outDim, y);
    const xo = BASE / 4, wo = xo + n * inDim, yo = wo + inDim * outDim;
    const m = this.reserve(yo + n * outDim - BASE / 4);
    m.set(x.subarray(0, n * inDim), xo);
    m.set(w.subarray(0, outDim * inDim), wo);
    this.gemmNT(xo * 4, wo * 4, yo * 4, n, outDim, inDim, outDim);
    y.set(m.subarray(yo, yo + n * outDim));
  }

  dyw(dy: Float32Array, w: Float32Array, n: number, inDim: number, outDim: number, dx: Float32Array): void {
    if (inDim % 4 || outDim % 4) return jsMatmul.dyw(dy, w, n, inDim, outDim, dx);
    const ao = BASE / 4, bo = ao + n * outDim, co = bo + outDim * inDim;
    const m = this.reserve(co + n * inDim - BASE / 4);
    m.set(dy.subarray(0, n * outDim), ao);
    m.set(w.subarray(0, outDim * inDim), bo);
    m.set(dx.subarray(0, n * inDim), co);
    // K (= out) in blocks, so that the block of W each row tile streams stays in cache
    for (let k0 = 0; k0 < outDim; k0 += K_BLOCK) {
      this.gemm((ao + k0) * 4, outDim, 1, (bo + k0 * inDim) * 4, co * 4, n, inDim, Math.min(K_BLOCK, outDim - k0), 1);
    }
    dx.set(m.subarray(co, co + n * inDim));
  }

  attention(q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionShape, out: Float32Array, lse: Float32Array): boolean {
    if (p.headDim % 4) return false;
    const qLen = p.n * p.nHeads * p.headDim, kvLen = p.n * p.nKvHeads * p.headDim;
    const [qo, ko, vo, oo, lo, dco, sco, end] = layout([qLen, kvLen, kvLen, qLen, p.n * p.nHeads, p.doc ? p.n : 0, 3 * p.n, 0]) as [number, number, number, number, number, number, number, number];
    const m = this.reserve(end - BASE / 4);
    m.set(q.subarray(0, qLen), qo);
    m.set(k.subarray(0, kvLen), ko);
    m.set(v.subarray(0, kvLen), vo);
    if (p.doc) new Int32Array(m.buffer).set(p.doc.subarray(0, p.n), dco);
    this.attnFwd(qo * 4, ko * 4, vo * 4, oo * 4, lo * 4, p.n, p.nHeads, p.nKvHeads, p.headDim, windowArg(p.window), p.scale, p.softcap, p.doc ? dco * 4 : 0, sco * 4);
    out.set(m.subarray(oo, oo + qLen));
    lse.set(m.subarray(lo, lo + p.n * p.nHeads));
    return true;
  }

  attentionBackward(q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, lse: Float32Array, p: AttentionShape, dq: Float32Array, dk: Float32Array, dv: Float32Array): boolean {
    if (p.headDim % 4) return false;
    const qLen = p.n * p.nHeads * p.headDim, kvLen = p.n * p.nKvHeads * p.headDim;
    const offs = layout([qLen, kvLen, kvLen, qLen, p.n * p.nHeads, qLen, kvLen, kvLen, p.doc ? p.n : 0, 3 * p.n, 0]);
    const [qo, ko, vo, go, lo, dqo, dko, dvo, dco, sco, end] = offs as [number, number, number, number, number, number, number, number, number, number, number];
    const m = this.reserve(end - BASE / 4);
    m.set(q.subarray(0, qLen), qo);
    m.set(k.subarray(0, kvLen), ko);
    m.set(v.subarray(0, kvLen), vo);
    m.set(dout.subarray(0, qLen), go);
    m.set(lse.subarray(0, p.n * p.nHeads), lo);
    m.fill(0, dqo, dvo + kvLen);
    if (p.doc) new Int32Array(m.buffer).set(p.doc.subarray(0, p.n), dco);
    this.attnBwd(qo * 4, ko * 4, vo * 4, go * 4, lo * 4, dqo * 4, dko * 4, dvo * 4, p.n, p.nHeads, p.nKvHeads, p.headDim, windowArg(p.window), p.scale, p.softcap, p.doc ? dco * 4 : 0, sco * 4);
    dq.set(m.subarray(dqo, dqo + qLen));
    dk.set(m.subarray(dko, dko + kvLen));
    dv.set(m.subarray(dvo, dvo + kvLen));
    return true;
  }

  dytx(dy: Float32Array, x: Float32Array, n: number, inDim: number, outDim: number, dw: Float32Array): void {
    if (inDim % 4 || outDim % 4) return jsMatmul.dytx(dy, x, n, inDim, outDim, dw);
    const ao = BASE / 4, bo = ao + n * outDim, co = bo + n * inDim;
    const m = this.reserve(co + outDim * inDim - BASE / 4);
    m.set(dy.subarray(0, n * outDim), ao);
    m.set(x.subarray(0, n * inDim), bo);
    m.set(dw.subarray(0, outDim * inDim), co);
    for (let k0 = 0; k0 < n; k0 += K_BLOCK) {
      this.gemm((ao + k0 * outDim) * 4, 1, outDim, (bo + k0 * inDim) * 4, co * 4, outDim, inDim, Math.min(K_BLOCK, n - k0), 1);
    }
    dw.set(m.subarray(co, co + outDim * inDim));
  }

  /** Rows [r0, r1) of a frozen weight as f32 at float offset `fo`, via its raw bytes at float offset `bo`. */
  private decodeFrozen(w: FrozenWeight, r0: number, r1: number, fo: number, bo: number): void {
    const rb = rowBytes(w.dtype, w.cols);
    const bytes = w.data.subarray(r0 * rb, r1 * rb);
    const kind = DEQUANT_KIND[w.dtype];
    if (w.dtype === 'f32') {
      new Uint8Array(this.memory.buffer).set(bytes, fo * 4);
    } else if (kind !== undefined) {
      new Uint8Array(this.memory.buffer).set(bytes, bo * 4);
      this.run(K_DEQUANT, r1 - r0, [kind, bo * 4, fo * 4, w.cols]);
    } else {
      for (let r = r0; r < r1; r++) decodeRow(w.dtype, w.data, r, w.cols, this.f32.subarray(fo + (r - r0) * w.cols, fo + (r - r0 + 1) * w.cols));
    }
  }

  /** Room for a frozen weight's decoded block (f32) and its raw bytes, after `floats` values. */
  private frozenLayout(w: FrozenWeight, sizes: number[]): { block: number; offs: number[] } {
    const block = Math.min(frozenBlockRows(w.cols), w.rows);
    const offs = layout([...sizes, block * w.cols, Math.ceil((block * rowBytes(w.dtype, w.cols)) / 4), 0]);
    this.reserve(offs[offs.length - 1]! - BASE / 4);
    return { block, offs };
  }

  xwtFrozen(x: Float32Array, w: FrozenWeight, n: number, y: Float32Array): boolean {
    const { rows, cols } = w;
    if (rows % 4 || cols % 4) return false;
    const { block, offs } = this.frozenLayout(w, [n * cols, n * rows]);
    const [xo, yo, fo, bo] = offs as [number, number, number, number];
    this.f32.set(x.subarray(0, n * cols), xo);
    for (let r0 = 0; r0 < rows; r0 += block) {
      const r1 = Math.min(rows, r0 + block);
      this.decodeFrozen(w, r0, r1, fo, bo);
      // y[:, r0:r1] = x W[r0:r1]^T, written in place (row stride: rows)
      this.gemmNT(xo * 4, fo * 4, (yo + r0) * 4, n, r1 - r0, cols, rows);
    }
    y.set(this.f32.subarray(yo, yo + n * rows));
    return true;
  }

  dywFrozen(dy: Float32Array, w: FrozenWeight, n: number, dx: Float32Array): boolean {
    const { rows, cols } = w;
    if (rows % 4 || cols % 4) return false;
    const { block, offs } = this.frozenLayout(w, [n * rows, n * cols]);
    const [ao, co, fo, bo] = offs as [number, number, number, number];
    this.f32.set(dy.subarray(0, n * rows), ao);
    this.f32.set(dx.subarray(0, n * cols), co);
    for (let r0 = 0; r0 < rows; r0 += block) {
      const r1 = Math.min(rows, r0 + block);
      this.decodeFrozen(w, r0, r1, fo, bo);
      // dx += dy[:, k0:k1] W[k0:k1], K in blocks as dyw
      for (let k0 = r0; k0 < r1; k0 += K_BLOCK) {
        this.gemm((ao + k0) * 4, rows, 1, (fo + (k0 - r0) * cols) * 4, co * 4, n, cols, Math.min(K_BLOCK, r1 - k0), 1);
      }
    }
    dx.set(this.f32.subarray(co, co + n * cols));
    return true;
  }
}

/** Lay out arrays one after another from BASE (f32 offsets); returns their offsets. */
function layout(sizes: number[]): number[] {
  let at = BASE / 4;
  return sizes.map((len) => {
    const o = at;
    at += Math.ceil(len / 16) * 16;
    return o;
  });
}

/** The wasm kernels on `threads` threads (default: the physical cores). */
export function createWasmMatmul(options: WasmMatmulOptions = {}): Promise<WasmMatmul> {
  return WasmMatmul.create(options);
}
