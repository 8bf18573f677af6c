/**
 * The training matrix products in WebAssembly SIMD (kernels/train.ts, built to
 * dist/src/train/train-kernels.wasm): one general product C (+)= A B, with A read through
 * strides so that dy^T needs no copy. Operands are copied into the module's memory per call
 * (O(size) against the product's O(size x n)); the forward product x W^T multiplies by a
 * transposed copy of W. Falls back to the JS kernels when a dimension is not a multiple of 4.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelError } from '../errors.js';
import { jsMatmul, type MatmulKernels } from './matmul.js';

const PAGE = 65536;
const BASE = 4096;

type Gemm = (a: number, sr: number, sk: number, b: number, c: number, r0: number, r1: number, m: number, K: number, accumulate: number) => void;

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
  private f32: Float32Array;

  constructor() {
    compiled ??= new WebAssembly.Module(readFileSync(kernelFile()));
    this.memory = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true });
    const inst = new WebAssembly.Instance(compiled, { env: { memory: this.memory, abort: () => { throw new ModelError('training kernel abort'); } } });
    this.gemm = inst.exports.gemm as Gemm;
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
    // W^T [in, out]
    for (let o = 0; o < outDim; o++) {
      const src = o * inDim;
      for (let i = 0; i < inDim; i++) m[wo + i * outDim + o] = w[src + i]!;
    }
    this.gemm(xo * 4, inDim, 1, wo * 4, yo * 4, 0, n, outDim, inDim, 0);
    y.set(m.subarray(yo, yo + n * outDim));
  }

  dyw(dy: Float32Array, w: Float32Array, n: number, inDim: number, outDim: number, dx: Float32Array): void {
    if (inDim % 4 || outDim % 4) return jsMatmul.dyw(dy, w, n, inDim, outDim, dx);
    const ao = BASE / 4, bo = ao + n * outDim, co = bo + outDim * inDim;
    const m = this.reserve(co + n * inDim - BASE / 4);
    m.set(dy.subarray(0, n * outDim), ao);
    m.set(w.subarray(0, outDim * inDim), bo);
    m.set(dx.subarray(0, n * inDim), co);
    this.gemm(ao * 4, outDim, 1, bo * 4, co * 4, 0, n, inDim, outDim, 1);
    dx.set(m.subarray(co, co + n * inDim));
  }

  dytx(dy: Float32Array, x: Float32Array, n: number, inDim: number, outDim: number, dw: Float32Array): void {
    if (inDim % 4 || outDim % 4) return jsMatmul.dytx(dy, x, n, inDim, outDim, dw);
    const ao = BASE / 4, bo = ao + n * outDim, co = bo + n * inDim;
    const m = this.reserve(co + outDim * inDim - BASE / 4);
    m.set(dy.subarray(0, n * outDim), ao);
    m.set(x.subarray(0, n * inDim), bo);
    m.set(dw.subarray(0, outDim * inDim), co);
    this.gemm(ao * 4, 1, outDim, bo * 4, co * 4, 0, outDim, inDim, n, 1);
    dw.set(m.subarray(co, co + outDim * inDim));
  }
}

export function createWasmMatmul(): MatmulKernels {
  return new WasmMatmul();
}
