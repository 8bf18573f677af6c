/**
 * The training matrix products in WebAssembly SIMD (kernels/train.ts, built to
 * dist/src/train/train-kernels.wasm): one general product C (+)= A B, with A read through
 * strides so that dy^T needs no copy, and the forward product x W^T as dot products along rows
 * (gemm_nt). Operands are copied into the module's memory per call (O(size) against the
 * product's O(size x n)). Falls back to the JS kernels when a dimension is not a multiple of 4.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelError } from '../errors.js';
import { jsMatmul, type MatmulKernels } from './matmul.js';
import type { AttentionShape } from './ops.js';

const PAGE = 65536;
const BASE = 4096;
const K_BLOCK = 128;

type Gemm = (a: number, sr: number, sk: number, b: number, c: number, r0: number, r1: number, m: number, K: number, accumulate: number) => void;
type AttnFwd = (q: number, k: number, v: number, out: number, lse: number, n: number, nHeads: number, nKv: number, hd: number, window: number, scale: number, cap: number, doc: number, scratch: number) => void;
type AttnBwd = (q: number, k: number, v: number, dout: number, lse: number, dq: number, dk: number, dv: number, n: number, nHeads: number, nKv: number, hd: number, window: number, scale: number, cap: number, doc: number, scratch: number) => void;
type GemmNT = (a: number, b: number, c: number, r0: number, r1: number, m: number, K: number) => void;

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

export class WasmMatmul implements MatmulKernels {
  readonly name = 'wasm';
  private readonly memory: WebAssembly.Memory;
  private readonly gemm: Gemm;
  private readonly gemmNT: GemmNT;
  private readonly attnFwd: AttnFwd;
  private readonly attnBwd: AttnBwd;
  private f32: Float32Array;

  constructor() {
    compiled ??= new WebAssembly.Module(readFileSync(kernelFile()));
    this.memory = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true });
    const inst = new WebAssembly.Instance(compiled, { env: { memory: this.memory, abort: () => { throw new ModelError('training kernel abort'); } } });
    this.gemm = inst.exports.gemm as Gemm;
    this.gemmNT = inst.exports.gemm_nt as GemmNT;
    this.attnFwd = inst.exports.attn_fwd as AttnFwd;
    this.attnBwd = inst.exports.attn_bwd as AttnBwd;
    this.f32 = new Float32Array(this.memory.buffer);
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
    this.gemmNT(xo * 4, wo * 4, yo * 4, 0, n, outDim, inDim);
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
      this.gemm((ao + k0) * 4, outDim, 1, (bo + k0 * inDim) * 4, co * 4, 0, n, inDim, Math.min(K_BLOCK, outDim - k0), 1);
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
      this.gemm((ao + k0 * outDim) * 4, 1, outDim, (bo + k0 * inDim) * 4, co * 4, 0, outDim, inDim, Math.min(K_BLOCK, n - k0), 1);
    }
    dw.set(m.subarray(co, co + outDim * inDim));
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

export function createWasmMatmul(): MatmulKernels {
  return new WasmMatmul();
}
