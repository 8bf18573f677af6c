/**
 * The fast backend: AssemblyScript kernels compiled to WebAssembly SIMD128 (relaxed SIMD where the
 * runtime has it), run by a fixed pool of worker threads over shared memories.
 *
 * Weights are copied (and repacked) at prepareMatrix time into one of several shared
 * WebAssembly.Memory "shards" (one wasm32 memory holds < 4 GiB); each shard has its own kernel
 * instance on every thread and a scratch area at its start that receives the activations of a
 * matmul, its 8-bit quantization and its output. Matmul splits the output rows (4-row groups)
 * over the threads, one synchronization per kernel call.
 */
import type { AttentionParams, Backend, Matrix, WeightMatrix } from '../backend.js';
import { dtypeByteLength, type DType } from '../../formats/dtype.js';
import { decodeF16, f16ToF32, f32ToF16 } from '../../formats/half.js';
import { ModelError, UsageError } from '../../errors.js';
import { checkStackedParts } from '../weight-check.js';
import { checkTargets } from '../log-probs.js';
import { KERNELS, compileKernels, relaxedSimdAvailable, type KernelVariant } from './module.js';
import { ThreadPool } from './pool.js';
import * as ops from './ops.js';

/** Options of {@link createWasmBackend}. */
export interface WasmBackendOptions {
  /** Worker count including the calling thread (default: physical cores). 1 = no workers. */
  threads?: number;
  /** Use the relaxed-SIMD kernels: undefined = when available, true = require, false = never. */
  relaxedSimd?: boolean;
  /** Largest size of one weight memory in bytes (default and maximum: 4 GiB - 64 KiB). For tests. */
  shardBytes?: number;
  /** Scratch bytes per shard for activations (default 32 MiB). For tests. */
  scratchBytes?: number;
}

const PAGE = 65536;
const MAX_PAGES = 65535; // keep views below 2^32 bytes
const CONST_BYTES = 512;
const SCRATCH_BASE = PAGE;
const ALIGN = 64;

const K = Object.fromEntries(KERNELS.map((n, i) => [n, i])) as Record<(typeof KERNELS)[number], number>;

export { physicalCores } from '../../util/cpu.js';
import { physicalCores } from '../../util/cpu.js';

interface Shard {
  readonly index: number;
  /** Weight shards take matrices; the work shard holds attention / element-wise operands. */
  readonly weights: boolean;
  readonly memory: WebAssembly.Memory;
  top: number;
  u8: Uint8Array;
  f32: Float32Array;
}

/**
 * Arrays handed out by allocF32 (KV caches): a first-fit heap above the scratch area of a
 * non-weight shard, with a sorted, coalesced free list. Attention runs on the shard that holds
 * the cache, with q / out / positions copied into that shard's scratch area.
 */
interface Heap {
  readonly shard: Shard;
  /** Free ranges below shard.top, sorted by ptr, coalesced. */
  readonly free: Array<{ ptr: number; bytes: number }>;
  /** Live allocations: ptr -> bytes. */
  readonly live: Map<number, number>;
  /** Bytes below this offset may hold old data (above it the memory was never handed out). */
  dirty: number;
}

class WasmMatrix implements Matrix {
  constructor(
    readonly dtype: DType,
    readonly rows: number,
    readonly cols: number,
    readonly shard: number,
    readonly ptr: number,
    /** Row stride in elements (plain types), a multiple of 8. */
    readonly colsPad: number,
    readonly groups: number,
    readonly owner: WasmBackend,
  ) {}
}

/** Repacked bytes per 4-row group and 32 values. */
const BLOCK_BYTES: Partial<Record<DType, number>> = { q8_0: 136, q4_0: 72, q4_k: 76, q6_k: 138 };

const FLOAT_KERNEL: Partial<Record<DType, number>> = { f32: K.mm_f32, bf16: K.mm_bf16, f16: K.mm_f16 };

class WasmBackend implements Backend {
  readonly name: string;
  readonly variant: KernelVariant;
  readonly threads: number;
  private readonly shards: Shard[] = [];
  private readonly shardLimit: number;
  private readonly scratchBytes: number;
  private disposed = false;
  private readonly heaps: Heap[] = [];
  /** Every buffer object a heap view was made on (a shared memory's buffer changes on grow). */
  private readonly heapOf = new WeakMap<ArrayBufferLike, Heap>();

  constructor(
    private readonly module: WebAssembly.Module,
    private readonly pool: ThreadPool,
    firstMemory: WebAssembly.Memory,
    variant: KernelVariant,
    shardLimit: number,
    scratchBytes: number,
  ) {
    this.variant = variant;
    this.threads = pool.threads;
    this.name = `wasm-${variant}`;
    this.shardLimit = shardLimit;
    this.scratchBytes = scratchBytes;
    this.registerShard(firstMemory);
  }

  private registerShard(memory: WebAssembly.Memory, weights = true): Shard {
    const buf = memory.buffer;
    const s: Shard = { index: this.shards.length, weights, memory, top: SCRATCH_BASE + this.scratchBytes, u8: new Uint8Array(buf), f32: new Float32Array(buf) };
    writeConstants(s.u8);
    this.shards.push(s);
    return s;
  }

  private views(s: Shard): Shard {
    const buf = s.memory.buffer;
    if (buf.byteLength !== s.u8.byteLength) {
      s.u8 = new Uint8Array(buf);
      s.f32 = new Float32Array(buf);
    }
    return s;
  }

  /** Reserve `bytes` in some shard (first fit), adding a shard when none has room. */
  private alloc(bytes: number): { shard: Shard; ptr: number } {
    const need = Math.ceil(bytes / ALIGN) * ALIGN;
    const base = SCRATCH_BASE + this.scratchBytes;
    if (base + need > this.shardLimit) {
      throw new ModelError(`a ${need}-byte weight matrix does not fit in one WebAssembly memory (limit ${this.shardLimit - base} bytes per matrix)`);
    }
    let shard = this.shards.find((s) => s.weights && s.top + need <= this.shardLimit);
    if (!shard) {
      const memory = newMemory(this.scratchBytes);
      this.pool.addShard(this.module, memory);
      shard = this.registerShard(memory);
    }
    const ptr = shard.top;
    shard.top += need;
    const pages = Math.ceil(shard.top / PAGE);
    const have = shard.memory.buffer.byteLength / PAGE;
    if (pages > have) {
      try {
        shard.memory.grow(pages - have);
      } catch (e) {
        shard.top = ptr;
        throw new ModelError(`cannot grow WebAssembly memory to ${pages * PAGE} bytes: ${(e as Error).message}`, { cause: e });
      }
    }
    this.views(shard);
    return { shard, ptr };
  }

  private work: Shard | undefined;

  /** The work memory, grown so that [SCRATCH_BASE, SCRATCH_BASE + bytes) exists. */
  private workArea(bytes: number): Shard {
    if (!this.work) {
      const memory = newMemory(this.scratchBytes);
      this.pool.addShard(this.module, memory);
      this.work = this.registerShard(memory, false);
    }
    const s = this.work;
    const pages = Math.ceil((SCRATCH_BASE + bytes) / PAGE);
    const have = s.memory.buffer.byteLength / PAGE;
    if (pages > MAX_PAGES) throw new ModelError(`attention operands of ${bytes} bytes exceed one WebAssembly memory`);
    if (pages > have) {
      try {
        s.memory.grow(pages - have);
      } catch (e) {
        throw new ModelError(`cannot grow WebAssembly memory to ${pages * PAGE} bytes: ${(e as Error).message}`, { cause: e });
      }
    }
    return this.views(s);
  }

  private check(): void {
    if (this.disposed) throw new ModelError('the wasm backend was disposed');
  }

  private own(w: Matrix): WasmMatrix {
    if (!(w instanceof WasmMatrix) || w.owner !== this) throw new ModelError('matrix was not prepared by this wasm backend');
    return w;
  }

  prepareMatrix(w: WeightMatrix): Matrix {
    return this.prepareStacked([w]);
  }

  /**
   * One matrix whose rows are the parts' rows in order, written straight from each part's bytes
   * to its final place (no concatenated copy). Parts share dtype and cols; every part but the
   * last has a multiple of 4 rows (the interleaved groups), else they are concatenated first.
   */
  prepareStacked(parts: readonly WeightMatrix[]): Matrix {
    this.check();
    const { dtype, cols } = checkStackedParts(parts);
    if (parts.slice(0, -1).some((w) => w.rows % 4 !== 0)) {
      const data = new Uint8Array(parts.reduce((a, w) => a + w.data.byteLength, 0));
      let at = 0;
      for (const w of parts) {
        data.set(w.data, at);
        at += w.data.byteLength;
      }
      return this.prepareStacked([{ dtype, rows: parts.reduce((a, w) => a + w.rows, 0), cols, data }]);
    }
    const rows = parts.reduce((a, w) => a + w.rows, 0);
    const groups = Math.ceil(rows / 4);
    switch (dtype) {
      case 'f32':
      case 'bf16':
      case 'f16': {
        const es = dtype === 'f32' ? 4 : 2;
        const colsPad = Math.ceil(cols / 8) * 8;
        const { shard, ptr } = this.alloc(groups * 4 * colsPad * es);
        const u8 = shard.u8;
        let row = 0;
        for (const { data, rows: n } of parts) {
          const at = ptr + row * colsPad * es;
          if (colsPad === cols) u8.set(data, at);
          else for (let r = 0; r < n; r++) u8.set(data.subarray(r * cols * es, (r + 1) * cols * es), at + r * colsPad * es);
          row += n;
        }
        return new WasmMatrix(dtype, rows, cols, shard.index, ptr, colsPad, groups, this);
      }
      case 'q8_0':
      case 'q4_0':
      case 'q4_k':
      case 'q6_k': {
        const groupBytes = (cols / 32) * BLOCK_BYTES[dtype]!;
        const { shard, ptr } = this.alloc(groups * groupBytes);
        let row = 0;
        for (const w of parts) {
          this.repackInto(dtype, w.rows, cols, w.data, shard, ptr + (row / 4) * groupBytes);
          row += w.rows;
        }
        return new WasmMatrix(dtype, rows, cols, shard.index, ptr, cols, groups, this);
      }
      default:
        throw new ModelError(`the wasm backend does not support ${String(dtype)} weights`);
    }
  }

  /**
   * Block-quantized weights: raw rows go through the shard's scratch area in chunks of 4-row
   * groups and a wasm kernel rewrites them in the 4-row interleaved layout at their final place.
   *   q8_0: per group and 32-block, f16 d[4] + 4 x 32 i8                      (136 bytes)
   *   q4_0: per group and 32-block, f16 d[4] + 4 x 16 nibble bytes            (72 bytes)
   *   q4_k: per group and 256-super-block f32 d[4], dmin[4]; per 32-sub-block u8 sc[4], m[4]
   *         + 4 x 16 nibble bytes                                            (608 = 8 x 76 bytes)
   *   q6_k: per group and 256-super-block f32 d[4]; per 32-block i8 sc[4] x 2 halves
   *         + 4 x 32 u6 bytes                                                (1104 = 8 x 138 bytes)
   */
  private repackInto(dtype: DType, rows: number, cols: number, data: Uint8Array, shard: Shard, ptr: number): void {
    const nb = cols / 32;
    const groupBytes = nb * BLOCK_BYTES[dtype]!;
    const groups = Math.ceil(rows / 4);
    const rowBytes = dtypeByteLength(dtype, cols);
    const chunkGroups = Math.min(groups, Math.floor(this.scratchBytes / (4 * rowBytes)));
    if (chunkGroups < 1) throw new ModelError(`${dtype} rows of ${cols} values are too long for the wasm scratch area`);
    const kernel = { q8_0: K.repack_q8_0, q4_0: K.repack_q4_0, q4_k: K.repack_q4_k, q6_k: K.repack_q6_k }[dtype as 'q8_0'];
    const count = dtype === 'q8_0' || dtype === 'q4_0' ? nb : cols / 256;
    for (let g0 = 0; g0 < groups; g0 += chunkGroups) {
      const gs = Math.min(chunkGroups, groups - g0);
      const r0 = g0 * 4;
      const nRows = Math.min(rows - r0, gs * 4);
      this.views(shard).u8.set(data.subarray(r0 * rowBytes, (r0 + nRows) * rowBytes), SCRATCH_BASE);
      this.pool.run(shard.index, kernel, gs, [SCRATCH_BASE, ptr + g0 * groupBytes, count, nRows], gs > 1);
    }
  }

  matmul(w: Matrix, x: Float32Array, n: number, out: Float32Array, rowLimit?: number, softcap?: number): void {
    const rows = rowLimit ?? w.rows;
    if (out.length < n * rows) throw new ModelError(`matmul output holds ${out.length} values, needs ${n} x ${rows}`);
    this.product(w, x, n, rows, softcap, 0, (t0, c, oPtr, f32) => out.set(f32.subarray(oPtr >> 2, (oPtr >> 2) + c * rows), t0 * rows));
  }

  /**
   * The LM head's scoring (Backend.headLogProbs): each chunk's logits stay in the scratch area,
   * where the log_probs kernel reduces them (rows split over the threads); 2 floats a row come out.
   */
  headLogProbs(w: Matrix, x: Float32Array, n: number, targets: Int32Array, out: Float32Array, rowLimit?: number, softcap?: number): void {
    const rows = rowLimit ?? w.rows;
    if (out.length < 2 * n) throw new ModelError(`headLogProbs output holds ${out.length} values, needs ${n} x 2`);
    checkTargets(w, n, targets, rows);
    this.product(w, x, n, rows, softcap, 12, (t0, c, oPtr, f32, extra) => {
      const i32 = new Int32Array(f32.buffer, f32.byteOffset, f32.length);
      i32.set(targets.subarray(t0, t0 + c), extra >> 2);
      const res = extra + c * 4;
      this.pool.run(this.own(w).shard, K.log_probs, c, [oPtr, rows, rows, extra, res], c >= 2);
      out.set(f32.subarray(res >> 2, (res >> 2) + 2 * c), 2 * t0);
    });
  }

  /**
   * x[n, cols] · W[0:rows]^T (soft-capped), in token chunks that fit the scratch area; `onChunk`
   * takes each chunk's product [c, rows] at oPtr of the shard's memory, with `extraPerToken`
   * bytes per token of its own scratch at `extra`.
   */
  private product(w: Matrix, x: Float32Array, n: number, rows: number, softcap: number | undefined, extraPerToken: number, onChunk: (t0: number, c: number, oPtr: number, f32: Float32Array, extra: number) => void): void {
    this.check();
    const m = this.own(w);
    if (!Number.isInteger(rows) || rows < 0 || rows > m.rows) throw new ModelError(`rowLimit ${rows} outside [0, ${m.rows}]`);
    if (!Number.isInteger(n) || n < 0) throw new ModelError(`bad token count ${n}`);
    if (x.length < n * m.cols) throw new ModelError(`matmul input holds ${x.length} values, needs ${n} x ${m.cols}`);
    if (n === 0 || rows === 0) return;
    const s = this.views(this.shards[m.shard]!);
    const cols = m.cols;
    const colsPad = m.colsPad;
    const groups = Math.ceil(rows / 4);
    const floatKernel = FLOAT_KERNEL[m.dtype];
    const quant = floatKernel === undefined;
    const nb = cols / 32;
    // scratch layout per token chunk: x f32 [c, colsPad] | (xq16 | xq8 | xd | xs) | out [c, rows]
    const a = (v: number) => Math.ceil(v / ALIGN) * ALIGN;
    const perToken = colsPad * 4 + (quant ? cols * 3 + nb * 16 : 0) + rows * 4 + extraPerToken;
    // 16-bit weights with several tokens: each thread decodes a 4-row group to f32 once (tmp area)
    const tiled = (m.dtype === 'bf16' || m.dtype === 'f16') && n >= 4;
    const tmpBytes = tiled ? this.threads * 16 * colsPad : 0;
    const chunk = Math.min(n, Math.floor((this.scratchBytes - tmpBytes - 10 * ALIGN) / perToken), 256);
    if (chunk < 1) throw new ModelError(`matrix [${m.rows}, ${cols}] is too large for the wasm scratch area`);
    const xPtr = SCRATCH_BASE;
    const xq16 = a(xPtr + chunk * colsPad * 4);
    const xq8 = a(xq16 + (quant ? chunk * cols * 2 : 0));
    const xd = a(xq8 + (quant ? chunk * cols : 0));
    const xs = a(xd + (quant ? chunk * nb * 4 : 0));
    const xh = a(xs + (quant ? chunk * nb * 4 : 0));
    const oPtr = a(xh + (quant ? chunk * nb * 8 : 0));
    const tmp = a(oPtr + chunk * rows * 4);
    const extra = a(tmp + tmpBytes);
    const f32 = s.f32;
    for (let t0 = 0; t0 < n; t0 += chunk) {
      const c = Math.min(chunk, n - t0);
      if (colsPad === cols) {
        f32.set(x.subarray(t0 * cols, (t0 + c) * cols), xPtr >> 2);
      } else {
        for (let t = 0; t < c; t++) {
          const d = (xPtr >> 2) + t * colsPad;
          f32.set(x.subarray((t0 + t) * cols, (t0 + t + 1) * cols), d);
          f32.fill(0, d + cols, d + colsPad);
        }
      }
      const work = c * groups * 4 * cols;
      // the workers spin between calls, so a round trip costs a few microseconds: with 2 threads
      // 0.5M multiply-adds take 33 us inline and 19 us split (bf16 512x128, 8 tokens); only
      // calls below ~64k run inline
      const parallel = work >= 1 << 16;
      // subnormal activations cost x86 a microcode assist per multiply: flush them (the 8-bit path does it while quantizing)
      if (!quant) this.pool.run(m.shard, K.flush_subnormals, (c * colsPad) >> 2, [xPtr], false);
      if (tiled && c >= 4) {
        this.pool.run(m.shard, K.mm_half_tiled, groups, [m.ptr, xPtr, oPtr, c, colsPad, rows, rows, tmp, m.dtype === 'bf16' ? 0 : 1], parallel);
      } else if (!quant) {
        this.pool.run(m.shard, floatKernel, groups, [m.ptr, xPtr, oPtr, c, colsPad, rows, rows], parallel);
      } else {
        this.pool.run(m.shard, K.quantize_x, c, [xPtr, colsPad, cols, xq16, xq8, xd, xs, xh], c >= 8);
        switch (m.dtype) {
          case 'q8_0':
            this.pool.run(m.shard, K.mm_q8_0, groups, [m.ptr, xq16, xd, oPtr, c, nb, rows, rows], parallel);
            break;
          case 'q4_0':
            this.pool.run(m.shard, K.mm_q4_0, groups, [m.ptr, xq16, xq8, xd, xs, oPtr, c, nb, rows, rows], parallel);
            break;
          case 'q4_k':
            this.pool.run(m.shard, K.mm_q4_k, groups, [m.ptr, xq16, xq8, xd, xs, oPtr, c, nb, rows, rows], parallel);
            break;
          case 'q6_k':
            this.pool.run(m.shard, K.mm_q6_k, groups, [m.ptr, xq16, xq8, xd, xh, oPtr, c, nb, rows, rows], parallel);
            break;
          default:
            throw new ModelError(`no wasm kernel for ${m.dtype}`);
        }
      }
      if (softcap && softcap > 0) {
        // in place on the product, before it leaves wasm memory
        const vecs = (c * rows) >> 2;
        this.pool.run(m.shard, K.softcap_vec, vecs, [oPtr, softcap], vecs >= 1 << 14);
        if (vecs * 4 < c * rows) ops.softcap(f32.subarray((oPtr >> 2) + vecs * 4, (oPtr >> 2) + c * rows), c * rows - vecs * 4, softcap);
      }
      onChunk(t0, c, oPtr, f32, extra);
    }
  }

  getRow(w: Matrix, row: number, out: Float32Array): void {
    this.check();
    const m = this.own(w);
    if (!Number.isInteger(row) || row < 0 || row >= m.rows) throw new ModelError(`row ${row} outside [0, ${m.rows})`);
    if (out.length < m.cols) throw new ModelError(`getRow output holds ${out.length} values, needs ${m.cols}`);
    const s = this.views(this.shards[m.shard]!);
    const cols = m.cols;
    switch (m.dtype) {
      case 'f32': {
        const p = (m.ptr >> 2) + row * m.colsPad;
        out.set(s.f32.subarray(p, p + cols));
        return;
      }
      case 'bf16': {
        const o = new Uint32Array(out.buffer, out.byteOffset, cols);
        const u8 = s.u8;
        const p = m.ptr + row * m.colsPad * 2;
        for (let i = 0; i < cols; i++) o[i] = (u8[p + 2 * i]! << 16) | (u8[p + 2 * i + 1]! << 24);
        return;
      }
      case 'f16':
        decodeF16(s.u8, m.ptr + row * m.colsPad * 2, cols, out);
        return;
      case 'q8_0':
      case 'q4_0': {
        const q8 = m.dtype === 'q8_0';
        const nb = cols / 32;
        const dstBlock = q8 ? 136 : 72;
        const lane = row & 3;
        const gBase = m.ptr + (row >> 2) * nb * dstBlock;
        const u8 = s.u8;
        for (let b = 0; b < nb; b++) {
          const blk = gBase + b * dstBlock;
          const d = f16ToF32(u8[blk + 2 * lane]! | (u8[blk + 2 * lane + 1]! << 8));
          if (q8) {
            const q = blk + 8 + lane * 32;
            for (let j = 0; j < 32; j++) out[b * 32 + j] = d * ((u8[q + j]! << 24) >> 24);
          } else {
            const q = blk + 8 + lane * 16;
            for (let j = 0; j < 16; j++) {
              const byte = u8[q + j]!;
              out[b * 32 + j] = d * ((byte & 15) - 8);
              out[b * 32 + j + 16] = d * ((byte >> 4) - 8);
            }
          }
        }
        return;
      }
      case 'q4_k': {
        const nb = cols / 32;
        const lane = row & 3;
        const gBase = m.ptr + (row >> 2) * nb * 76;
        const u8 = s.u8;
        for (let b = 0; b < nb; b++) {
          const sbp = gBase + (b >> 3) * 608;
          const blk = sbp + 32 + (b & 7) * 72;
          const sc = Math.fround(s.f32[(sbp >> 2) + lane]! * u8[blk + lane]!);
          const mn = Math.fround(s.f32[(sbp >> 2) + 4 + lane]! * u8[blk + 4 + lane]!);
          const q = blk + 8 + 16 * lane;
          for (let j = 0; j < 16; j++) {
            const byte = u8[q + j]!;
            out[b * 32 + j] = Math.fround(sc * (byte & 15)) - mn;
            out[b * 32 + j + 16] = Math.fround(sc * (byte >> 4)) - mn;
          }
        }
        return;
      }
      case 'q6_k': {
        const nb = cols / 32;
        const lane = row & 3;
        const gBase = m.ptr + (row >> 2) * nb * 138;
        const u8 = s.u8;
        const i8 = (p: number) => (u8[p]! << 24) >> 24;
        for (let b = 0; b < nb; b++) {
          const sbp = gBase + (b >> 3) * 1104;
          const d = s.f32[(sbp >> 2) + lane]!;
          const blk = sbp + 16 + (b & 7) * 136;
          const s0 = Math.fround(d * i8(blk + lane));
          const s1 = Math.fround(d * i8(blk + 4 + lane));
          const q = blk + 8 + 32 * lane;
          for (let j = 0; j < 16; j++) out[b * 32 + j] = s0 * (u8[q + j]! - 32);
          for (let j = 16; j < 32; j++) out[b * 32 + j] = s1 * (u8[q + j]! - 32);
        }
        return;
      }
      default:
        throw new ModelError(`getRow: unsupported dtype ${m.dtype}`);
    }
  }

  rmsNorm(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): void {
    ops.rmsNorm(x, weight, rows, dim, eps);
  }

  geluMul(gate: Float32Array, up: Float32Array, count: number): void {
    this.check();
    if (count < 64) {
      ops.geluMul(gate, up, count);
      return;
    }
    const vecs = Math.ceil(count / 4);
    const gBytes = Math.ceil((vecs * 16) / ALIGN) * ALIGN;
    const s = this.workArea(2 * gBytes);
    const g = SCRATCH_BASE >> 2;
    const u = (SCRATCH_BASE + gBytes) >> 2;
    s.f32.set(gate.subarray(0, count), g);
    s.f32.set(up.subarray(0, count), u);
    // one decode step's MLP row (9k-16k values) already gains from both threads
    this.pool.run(s.index, K.gelu_mul, vecs, [SCRATCH_BASE, SCRATCH_BASE + gBytes], count >= 1 << 13);
    gate.set(s.f32.subarray(g, g + count));
  }

  rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, theta: number, scaling: number): void {
    ops.rope(x, nTokens, nHeads, headDim, positions, theta, scaling);
  }

  allocF32(count: number): Float32Array {
    const { h, ptr } = this.heapAlloc(count, 4);
    return new Float32Array(h.shard.memory.buffer, ptr, count);
  }

  allocF16(count: number): Uint16Array {
    const { h, ptr } = this.heapAlloc(count, 2);
    return new Uint16Array(h.shard.memory.buffer, ptr, count);
  }

  freeF16(a: Uint16Array): void {
    this.heapFree(a);
  }

  writeF16(dst: Uint16Array, offset: number, src: Float32Array): void {
    this.check();
    const n = src.length;
    if (!Number.isInteger(offset) || offset < 0 || offset + n > dst.length) throw new ModelError(`writeF16: ${n} values at ${offset} overrun an array of ${dst.length}`);
    const h = this.heapOf.get(dst.buffer);
    if (!h || n > this.scratchBytes / 4) {
      for (let i = 0; i < n; i++) dst[offset + i] = f32ToF16(src[i]!);
      return;
    }
    const s = this.views(h.shard);
    s.f32.set(src, SCRATCH_BASE >> 2);
    this.pool.run(s.index, K.f32_to_f16, n, [SCRATCH_BASE, dst.byteOffset + offset * 2], false);
  }

  /** Reserve count elements of `size` bytes in a heap memory (zero-filled), adding one when all are full. */
  private heapAlloc(count: number, size: number): { h: Heap; ptr: number } {
    this.check();
    if (!Number.isInteger(count) || count < 0) throw new ModelError(`alloc: bad element count ${count}`);
    const need = Math.max(ALIGN, Math.ceil((count * size) / ALIGN) * ALIGN);
    if (SCRATCH_BASE + this.scratchBytes + need > this.shardLimit) {
      throw new ModelError(`an array of ${count * size} bytes does not fit in one WebAssembly memory (limit ${this.shardLimit - SCRATCH_BASE - this.scratchBytes} bytes)`);
    }
    for (const h of this.heaps) {
      const ptr = this.heapTake(h, need);
      if (ptr >= 0) return this.heapMark(h, ptr);
    }
    const memory = newMemory(this.scratchBytes);
    this.pool.addShard(this.module, memory);
    const h: Heap = { shard: this.registerShard(memory, false), free: [], live: new Map(), dirty: 0 };
    this.heaps.push(h);
    const ptr = this.heapTake(h, need);
    if (ptr < 0) throw new ModelError(`cannot grow WebAssembly memory for an array of ${count * size} bytes`);
    return this.heapMark(h, ptr);
  }

  private heapMark(h: Heap, ptr: number): { h: Heap; ptr: number } {
    this.heapOf.set(h.shard.memory.buffer, h);
    return { h, ptr };
  }

  freeF32(a: Float32Array): void {
    this.heapFree(a);
  }

  private heapFree(a: Float32Array | Uint16Array): void {
    if (this.disposed) return;
    const h = this.heapOf.get(a.buffer);
    if (!h) return;
    const ptr = a.byteOffset;
    const bytes = h.live.get(ptr);
    if (bytes === undefined) return;
    h.live.delete(ptr);
    const free = h.free;
    let i = 0;
    while (i < free.length && free[i]!.ptr < ptr) i++;
    free.splice(i, 0, { ptr, bytes });
    // coalesce with the next, then the previous range
    if (i + 1 < free.length && ptr + bytes === free[i + 1]!.ptr) {
      free[i]!.bytes += free[i + 1]!.bytes;
      free.splice(i + 1, 1);
    }
    if (i > 0 && free[i - 1]!.ptr + free[i - 1]!.bytes === ptr) {
      free[i - 1]!.bytes += free[i]!.bytes;
      free.splice(i, 1);
    }
    const last = free[free.length - 1];
    if (last && last.ptr + last.bytes === h.shard.top) {
      h.shard.top = last.ptr;
      free.pop();
    }
  }

  /** Reserve `need` bytes (a multiple of ALIGN) of heap `h`, zero-filled; -1 when it has no room. */
  private heapTake(h: Heap, need: number): number {
    const s = h.shard;
    let ptr = -1;
    const free = h.free;
    for (let i = 0; i < free.length; i++) {
      const f = free[i]!;
      if (f.bytes < need) continue;
      ptr = f.ptr;
      if (f.bytes === need) free.splice(i, 1);
      else {
        f.ptr += need;
        f.bytes -= need;
      }
      break;
    }
    if (ptr < 0) {
      if (s.top + need > this.shardLimit) return -1;
      const pages = Math.ceil((s.top + need) / PAGE);
      const have = s.memory.buffer.byteLength / PAGE;
      if (pages > have) {
        try {
          s.memory.grow(pages - have);
        } catch {
          return -1;
        }
      }
      ptr = s.top;
      s.top += need;
    }
    h.live.set(ptr, need);
    const u8 = this.views(s).u8;
    if (ptr < h.dirty) u8.fill(0, ptr, Math.min(ptr + need, h.dirty));
    h.dirty = Math.max(h.dirty, ptr + need);
    return ptr;
  }

  /** Bytes of allocF32 arrays live now, and bytes the heaps span (live + free), over all heap memories. */
  heapUsage(): { liveBytes: number; heapBytes: number; memories: number } {
    let liveBytes = 0, heapBytes = 0;
    for (const h of this.heaps) {
      for (const b of h.live.values()) liveBytes += b;
      heapBytes += h.shard.top - SCRATCH_BASE - this.scratchBytes;
    }
    return { liveBytes, heapBytes, memories: this.heaps.length };
  }

  attention(p: AttentionParams): void {
    this.check();
    const { nTokens, nSlots, nHeads, nKvHeads, headDim } = p;
    if (headDim % 4 !== 0 || nHeads % nKvHeads !== 0 || nTokens === 0) {
      ops.attention(p);
      return;
    }
    const qLen = nTokens * nHeads * headDim;
    const kvLen = nSlots * nKvHeads * headDim;
    const f16 = p.k instanceof Uint16Array;
    if (f16 !== p.v instanceof Uint16Array) throw new ModelError('attention: k and v must have the same element type');
    const kvBytes = kvLen * (f16 ? 2 : 4);
    if (p.q.length < qLen || p.out.length < qLen || p.k.length < kvLen || p.v.length < kvLen) throw new ModelError('attention operands are shorter than their shapes');
    if (p.queryPositions.length < nTokens || p.slotPositions.length < nSlots) throw new ModelError('attention positions are shorter than nTokens / nSlots');
    const a = (v: number) => Math.ceil(v / ALIGN) * ALIGN;
    const window = p.window >= 0x7fffffff ? 0x7fffffff : Math.max(0, Math.floor(p.window));
    // query heads sharing a KV head run together (hpu per unit; the kernel takes them in pairs)
    // so each K / V row is read from memory once per group; the group is split only as far as
    // needed to keep >= 2 units per thread.
    const heads = nTokens * nHeads;
    const parallel = heads > 1 && heads * nSlots * headDim >= 1 << 15;
    // Few query tokens over many slots (decoding): split by slot ranges, R per token, each thread
    // streaming whole cache rows; the ranges' partial softmax results are merged afterwards.
    const ranges = parallel && headDim % 8 === 0 && nTokens < this.threads ? Math.min(2 * this.threads, Math.floor(nSlots / 64)) : 1;
    const group = nHeads / nKvHeads;
    let hpu = group;
    if (parallel) while (hpu > 1 && heads / hpu < 2 * this.threads) hpu = hpu % 2 === 0 ? hpu / 2 : 1;
    const units = ranges > 1 ? nTokens * ranges : heads / hpu;
    // per thread: the scores of hpu heads over the slots (rounded up to 4), 5 f32 rows of
    // headDim (widened f16 K / V rows) and hpu floats (see the kernel); split: the scores of all
    // heads over one range, and per unit its partial outputs, maxima and sums
    const scoreBytes =
      ranges > 1
        ? this.threads * a(nHeads * Math.ceil(Math.ceil(nSlots / ranges) / 4) * 16)
        : this.threads * a(hpu * (Math.ceil(nSlots / 4) * 4) * 4 + 5 * headDim * 4 + hpu * 4);
    const partBytes = ranges > 1 ? units * nHeads * (headDim + 2) * 4 : 0;
    const run = (shard: number, q: number, k: number, v: number, out: number, qpos: number, spos: number, ml: number, scores: number, part: number, i32: Int32Array): void => {
      if (ranges > 1) {
        i32.set([ranges, scores, scoreBytes / this.threads, f16 ? 1 : 0], ml >> 2);
        this.pool.run(shard, K.attention_split, units, [q, k, v, part, qpos, spos, nSlots, nHeads, nKvHeads, headDim, window, p.scale, p.softcap, ml]);
        this.pool.run(shard, K.attention_combine, nTokens, [part, out, ranges, nHeads, headDim], false);
      } else {
        i32.set([hpu, scores, scoreBytes / this.threads, f16 ? 1 : 0], ml >> 2);
        this.pool.run(shard, K.attention, units, [q, k, v, out, qpos, spos, nSlots, nHeads, nKvHeads, headDim, window, p.scale, p.softcap, ml], parallel);
      }
    };
    // K and V already in one heap memory (a KV cache from allocF32): read them in place
    const kh = this.heapOf.get(p.k.buffer);
    if (kh && kh === this.heapOf.get(p.v.buffer)) {
      const qIn = this.heapOf.get(p.q.buffer) === kh;
      const outIn = this.heapOf.get(p.out.buffer) === kh;
      // scratch of that memory: [q] [out] qpos spos (q / out only when they live elsewhere)
      let at = SCRATCH_BASE;
      const take = (bytes: number) => {
        const ptr = at;
        at = a(at + bytes);
        return ptr;
      };
      const q = qIn ? p.q.byteOffset : take(qLen * 4);
      const out = outIn ? p.out.byteOffset : take(qLen * 4);
      const qpos = take(nTokens * 4);
      const spos = take(nSlots * 4);
      const ml = take(16);
      const scores = take(scoreBytes);
      const part = take(partBytes);
      const end = at;
      if (end <= SCRATCH_BASE + this.scratchBytes) {
        const s = this.views(kh.shard);
        const f32 = s.f32;
        if (!qIn) f32.set(p.q.subarray(0, qLen), q >> 2);
        const i32 = new Int32Array(f32.buffer);
        i32.set(p.queryPositions.subarray(0, nTokens), qpos >> 2);
        i32.set(p.slotPositions.subarray(0, nSlots), spos >> 2);
        run(s.index, q, p.k.byteOffset, p.v.byteOffset, out, qpos, spos, ml, scores, part, i32);
        if (!outIn) p.out.set(f32.subarray(out >> 2, (out >> 2) + qLen));
        return;
      }
    }
    const q = SCRATCH_BASE;
    const k = a(q + qLen * 4);
    const v = a(k + kvBytes);
    const out = a(v + kvBytes);
    const qpos = a(out + qLen * 4);
    const spos = a(qpos + nTokens * 4);
    const ml = a(spos + nSlots * 4);
    const scores = a(ml + 16);
    const part = a(scores + scoreBytes);
    const end = a(part + partBytes);
    const s = this.workArea(end - SCRATCH_BASE);
    const f32 = s.f32;
    f32.set(p.q.subarray(0, qLen), q >> 2);
    if (f16) {
      const u16 = new Uint16Array(f32.buffer);
      u16.set(p.k.subarray(0, kvLen), k >> 1);
      u16.set(p.v.subarray(0, kvLen), v >> 1);
    } else {
      f32.set(p.k.subarray(0, kvLen), k >> 2);
      f32.set(p.v.subarray(0, kvLen), v >> 2);
    }
    const i32 = new Int32Array(f32.buffer);
    i32.set(p.queryPositions.subarray(0, nTokens), qpos >> 2);
    i32.set(p.slotPositions.subarray(0, nSlots), spos >> 2);
    run(s.index, q, k, v, out, qpos, spos, ml, scores, part, i32);
    p.out.set(f32.subarray(out >> 2, (out >> 2) + qLen));
  }

  softcap(x: Float32Array, count: number, cap: number): void {
    this.check();
    if (count < 64) {
      ops.softcap(x, count, cap);
      return;
    }
    // the final soft-cap over a 256k-entry logits row: ~3 ms in TypeScript, ~0.2 ms here
    const vecs = count >> 2;
    const s = this.workArea(vecs * 16);
    const base = SCRATCH_BASE >> 2;
    s.f32.set(x.subarray(0, vecs * 4), base);
    this.pool.run(s.index, K.softcap_vec, vecs, [SCRATCH_BASE, cap], vecs >= 1 << 14);
    x.set(s.f32.subarray(base, base + vecs * 4));
    if (vecs * 4 < count) ops.softcap(x.subarray(vecs * 4, count), count - vecs * 4, cap);
  }

  /** Bytes of WebAssembly memory held, per shard. */
  memoryBytes(): number[] {
    return this.shards.map((s) => s.memory.buffer.byteLength);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.dispose();
    this.shards.length = 0;
    this.heaps.length = 0;
  }
}

function newMemory(scratchBytes: number): WebAssembly.Memory {
  const pages = Math.ceil((SCRATCH_BASE + scratchBytes) / PAGE);
  try {
    return new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
  } catch (e) {
    throw new ModelError(`cannot create a shared WebAssembly memory: ${(e as Error).message}`, { cause: e });
  }
}

/** Vector constants the kernels load at entry (see kernels/kernels.ts). */
function writeConstants(u8: Uint8Array): void {
  const dv = new DataView(u8.buffer, 0, CONST_BYTES);
  for (let i = 0; i < 16; i++) {
    dv.setUint8(0 + i, 0x0f);
    dv.setUint8(16 + i, 8);
  }
  for (let i = 0; i < 4; i++) {
    dv.setFloat32(32 + 4 * i, 2 ** 112, true);
    dv.setUint32(48 + 4 * i, 0x7fff, true);
    dv.setUint32(64 + 4 * i, 0x8000, true);
    dv.setUint32(80 + 4 * i, 0x7c00, true);
    dv.setUint32(96 + 4 * i, 0x7f800000, true);
    dv.setUint32(112 + 4 * i, 0, true);
    dv.setFloat32(128 + 4 * i, Math.LOG2E, true);
    dv.setFloat32(144 + 4 * i, 0.693359375, true);
    dv.setFloat32(160 + 4 * i, -2.12194440e-4, true);
    dv.setFloat32(176 + 4 * i, 1 / 2, true);
    dv.setFloat32(192 + 4 * i, 1 / 6, true);
    dv.setFloat32(208 + 4 * i, 1 / 24, true);
    dv.setFloat32(224 + 4 * i, 1 / 120, true);
    dv.setFloat32(240 + 4 * i, 1 / 720, true);
    dv.setFloat32(256 + 4 * i, 1, true);
    dv.setInt32(272 + 4 * i, 127, true);
    dv.setFloat32(288 + 4 * i, 88, true);
    dv.setFloat32(304 + 4 * i, -87, true);
    dv.setFloat32(320 + 4 * i, -2 * Math.sqrt(2 / Math.PI), true);
    dv.setFloat32(336 + 4 * i, 0.044715, true);
    dv.setUint32(352 + 4 * i, 0xffff0000, true);
    dv.setUint32(368 + 4 * i, 0x20202020, true);
    dv.setUint32(384 + 4 * i, 0x03030303, true);
    dv.setUint32(400 + 4 * i, 0x8fffffff, true);
    dv.setUint32(416 + 4 * i, 0x7fffffff, true);
    dv.setUint32(432 + 4 * i, 0x007fffff, true);
    dv.setFloat32(448 + 4 * i, 0.3125, true);
  }
}

/** The wasm backend: a {@link Backend} with its kernel variant, thread count and memory statistics. */
export type WasmBackendInstance = Backend & {
  readonly variant: KernelVariant;
  readonly threads: number;
  memoryBytes(): number[];
  allocF32(count: number): Float32Array;
  freeF32(a: Float32Array): void;
  allocF16(count: number): Uint16Array;
  freeF16(a: Uint16Array): void;
  writeF16(dst: Uint16Array, offset: number, src: Float32Array): void;
  heapUsage(): { liveBytes: number; heapBytes: number; memories: number };
};

/**
 * The fast CPU backend: WebAssembly SIMD kernels (relaxed SIMD where the runtime has it) on worker
 * threads over shared memories. Pass it as `loadModel(spec, { backend })`; the model then owns it
 * (`model.dispose()` disposes it).
 */
export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackendInstance> {
  const threads = options.threads ?? physicalCores();
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new UsageError(`threads must be an integer from 1 to 256, got ${String(options.threads)}`);
  let variant: KernelVariant;
  if (options.relaxedSimd === false) variant = 'simd';
  else if (relaxedSimdAvailable()) variant = 'relaxed';
  else if (options.relaxedSimd === true) throw new ModelError('relaxed SIMD is not available in this runtime (Node 20 needs v8 flag --experimental-wasm-relaxed-simd)');
  else variant = 'simd';
  const maxShard = MAX_PAGES * PAGE;
  const shardLimit = Math.min(options.shardBytes ?? maxShard, maxShard);
  const scratchBytes = Math.ceil((options.scratchBytes ?? 32 * 1024 * 1024) / PAGE) * PAGE;
  if (shardLimit < SCRATCH_BASE + scratchBytes + PAGE) throw new UsageError(`shardBytes ${shardLimit} is smaller than the scratch area`);
  const module = await compileKernels(variant);
  const memory = newMemory(scratchBytes);
  const pool = await ThreadPool.create(module, memory, threads, KERNELS);
  return new WasmBackend(module, pool, memory, variant, shardLimit, scratchBytes);
}
