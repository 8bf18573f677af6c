/// <reference types="@webgpu/types" preserve="true" />
/**
 * The WebGPU backend: a TensorBackend whose tensors are ranges of GPU buffers. Operations are
 * encoded into one command encoder and submitted together; `read` submits, copies the tensor
 * into a mappable buffer and awaits it - the one await of a model step.
 *
 * - Weights keep their stored bytes (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k), decoded in the
 *   shaders; a matrix is split by whole rows into buffers of at most the binding limit
 *   (maxStorageBufferBindingSize, or the smaller `maxBindingBytes` given for tests), and each
 *   product runs once per part.
 * - Kernel parameters and small per-call arrays (token ids, positions) go into an upload arena
 *   written once per submit (queue order puts the write after the previous submit's work).
 *   Anything else written from the host (a hook's replacement, RoPE tables) first submits the
 *   work encoded so far, so it lands in order.
 * - Activations come from a pool of buffers by size (a model step allocates the same shapes
 *   every time); KV caches get buffers of their own.
 * - Device loss and GPU errors (out of memory, validation) surface as typed errors (errors.ts)
 *   at the next operation or read, never as a hang.
 */
import type { Matrix, WeightMatrix } from '../backend.js';
import type { CacheType, Tensor, TensorAttentionParams, TensorBackend } from '../tensor.js';
import { dtypeByteLength, type DType } from '../../formats/dtype.js';
import { ModelError } from '../../errors.js';
import { checkStackedParts } from '../weight-check.js';
import { checkTargets } from '../log-probs.js';
import { acquireDevice, releaseDevice, type AcquiredDevice, type DeviceOptions } from './device.js';
import { GpuDeviceLostError, GpuError, GpuOutOfMemoryError } from './errors.js';
import * as shaders from './shaders.js';

export { GpuError, GpuDeviceLostError, GpuOutOfMemoryError, GpuUnavailableError } from './errors.js';

export interface WebGpuBackendOptions extends DeviceOptions {
  /**
   * Largest buffer range one kernel binds, in bytes (default: the device's
   * maxStorageBufferBindingSize). Smaller values split weights into more buffers (for tests).
   */
  maxBindingBytes?: number;
  /**
   * Caches of at least this many slots use the attention split over slots (flash decoding:
   * ranges of 256 slots per workgroup, then a combine pass); shorter ones one workgroup per
   * (token, head). Default 512; tests force the split on small shapes with 1.
   */
  attentionSplitSlots?: number;
  /**
   * Use subgroup operations (subgroupAdd in the matrix-vector and RMSNorm reductions) when the
   * device offers the 'subgroups' feature (default true); false forces the shared-memory trees.
   */
  subgroups?: boolean;
}

const ALIGN = 256;
const SLOT = 256; // bytes of parameters per dispatch
const ARENA_BYTES = 4 << 20;
const MAX_GROUPS = 65535;
const USAGE_STORAGE = 0x80 | 0x8 | 0x4; // STORAGE | COPY_DST | COPY_SRC

class GpuTensor implements Tensor {
  constructor(
    readonly buffer: GPUBuffer,
    /** Offset in f32 elements. */
    readonly offset: number,
    readonly length: number,
    readonly kind: 'pool' | 'cache' | 'view',
    readonly owner: WebGpuBackend,
  ) {}
  get byteOffset(): number {
    return this.offset * 4;
  }
  get byteLength(): number {
    return this.length * 4;
  }
}

interface MatrixPart {
  buffer: GPUBuffer;
  rowStart: number;
  rows: number;
}

class GpuMatrix implements Matrix {
  constructor(
    readonly dtype: DType,
    readonly rows: number,
    readonly cols: number,
    readonly rowBytes: number,
    readonly parts: MatrixPart[],
    readonly owner: WebGpuBackend,
  ) {}
}

type Param = number | { f: number };
const f = (x: number): { f: number } => ({ f: x });

/** A bound range: the buffer from a 256-byte boundary, and the element offset of the data in it. */
interface Bound {
  resource: GPUBufferBinding;
  off: number;
}

const pipelineCache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

class WebGpuBackend implements TensorBackend {
  readonly name = 'webgpu';
  readonly host = false;
  readonly cacheTypes: readonly CacheType[] = ['f32'];
  readonly maxBinding: number;
  /** Caches of this many slots or more use the split attention. */
  readonly splitSlots: number;
  /** The kernels use subgroup operations (the device has them and they were not turned off). */
  readonly subgroups: boolean;
  /** Optional features the device offers (shader-f16 is not used yet: see README). */
  readonly features: { shaderF16: boolean; subgroups: boolean };
  /** Compiled kernels, per device (a reused device keeps them). */
  private readonly pipelines: Map<string, GPUComputePipeline>;
  private encoder: GPUCommandEncoder | undefined;
  private readonly arena: GPUBuffer;
  private staged: Uint8Array;
  private arenaUsed = 0;
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly readPool = new Map<number, GPUBuffer[]>();
  private readonly live = new Set<GPUBuffer>();
  /** Buffers freed while encoded work still refers to them: destroyed at the next flush. */
  private readonly doomed: GPUBuffer[] = [];
  private liveBytes = 0;
  private readonly norms = new WeakMap<Float32Array, GPUBuffer>();
  private readonly ropeTables: Array<{ positions: Int32Array; key: string; buffer: GPUBuffer }> = [];
  private lostInfo: string | undefined;
  private readonly lost: Promise<never>;
  private gpuError: GpuError | undefined;
  private disposed = false;
  /** Dispatches per kernel since creation (kernelDispatches()). */
  private readonly dispatches = new Map<string, number>();

  readonly device: GPUDevice;
  readonly description: string;

  constructor(
    private readonly acquired: AcquiredDevice,
    options: WebGpuBackendOptions,
  ) {
    const maxBindingBytes = options.maxBindingBytes;
    this.splitSlots = options.attentionSplitSlots ?? 512;
    this.subgroups = acquired.features.subgroups && options.subgroups !== false;
    this.features = acquired.features;
    const device = acquired.device;
    this.device = device;
    this.description = acquired.description;
    this.pipelines = pipelineCache.get(device) ?? new Map();
    pipelineCache.set(device, this.pipelines);
    const limit = device.limits.maxStorageBufferBindingSize;
    this.maxBinding = Math.floor(Math.min(limit, maxBindingBytes ?? limit, device.limits.maxBufferSize) / ALIGN) * ALIGN;
    if (this.maxBinding < 4096) throw new ModelError(`maxBindingBytes ${maxBindingBytes} is below 4 KiB`);
    // a reused device outlives this backend: its lost handler must not keep the backend alive
    const self = new WeakRef(this);
    this.lost = device.lost.then((info) => {
      const why = info.message || info.reason || 'unknown reason';
      const b = self.deref();
      if (b) b.lostInfo = why;
      throw new GpuDeviceLostError(`the GPU device was lost (${why})`);
    });
    this.lost.catch(() => {}); // observed by whoever races it
    device.onuncapturederror = (e: GPUUncapturedErrorEvent) => {
      if (this.gpuError) return;
      const err = e.error;
      const oom = err.constructor?.name === 'GPUOutOfMemoryError' || /out of memory/i.test(err.message);
      this.gpuError = oom ? new GpuOutOfMemoryError(`GPU out of memory: ${err.message}`) : new GpuError('validation', `WebGPU error: ${err.message}`);
    };
    this.arena = this.createBuffer(ARENA_BYTES, 0x40 | 0x80 | 0x8); // UNIFORM | STORAGE | COPY_DST
    this.staged = new Uint8Array(ARENA_BYTES);
  }

  // ---------------------------------------------------------------- buffers and errors

  private check(): void {
    if (this.disposed) throw new ModelError('the webgpu backend was disposed');
    if (this.lostInfo !== undefined) throw new GpuDeviceLostError(`the GPU device was lost (${this.lostInfo})`);
    if (this.gpuError) throw this.gpuError;
  }

  private createBuffer(size: number, usage: number, mapped = false): GPUBuffer {
    let buffer: GPUBuffer;
    try {
      buffer = this.device.createBuffer({ size: Math.max(16, Math.ceil(size / 4) * 4), usage, mappedAtCreation: mapped });
    } catch (e) {
      throw new GpuOutOfMemoryError(`cannot allocate a GPU buffer of ${size} bytes: ${(e as Error).message}`, { cause: e });
    }
    this.live.add(buffer);
    this.liveBytes += buffer.size;
    return buffer;
  }

  private destroyBuffer(b: GPUBuffer): void {
    if (!this.live.delete(b)) return;
    this.liveBytes -= b.size;
    b.destroy();
  }

  /** How many times each kernel was dispatched (keys like "mv:q8_0", "attention-part"): which paths ran. */
  kernelDispatches(): Record<string, number> {
    return Object.fromEntries(this.dispatches);
  }

  /** Bytes of GPU buffers held now (weights, caches, pooled activations, staging). */
  memoryBytes(): number {
    return this.liveBytes;
  }

  private own(t: Tensor): GpuTensor {
    if (!(t instanceof GpuTensor) || t.owner !== this) throw new ModelError('tensor was not created by this webgpu backend');
    return t;
  }

  private ownMatrix(w: Matrix): GpuMatrix {
    if (!(w instanceof GpuMatrix) || w.owner !== this) throw new ModelError('matrix was not prepared by this webgpu backend');
    return w;
  }

  /** Bind `count` elements of t from element `at`. */
  private bind(t: GpuTensor, at = 0, count = t.length - at): Bound {
    const start = (t.offset + at) * 4;
    const aligned = Math.floor(start / ALIGN) * ALIGN;
    const size = Math.max(16, start + Math.max(count, 1) * 4 - aligned);
    if (size > this.maxBinding) throw new GpuError('limit', `a ${size}-byte tensor range exceeds the GPU binding limit (${this.maxBinding} bytes)`);
    if (aligned + size > t.buffer.size) return { resource: { buffer: t.buffer, offset: aligned, size: t.buffer.size - aligned }, off: (start - aligned) / 4 };
    return { resource: { buffer: t.buffer, offset: aligned, size }, off: (start - aligned) / 4 };
  }

  // ---------------------------------------------------------------- encoding

  /** Copy bytes into the upload arena (submitted with the next flush); its binding. */
  private stage(bytes: Uint8Array): Bound {
    const size = Math.max(16, Math.ceil(bytes.byteLength / 16) * 16);
    if (size > ARENA_BYTES) throw new GpuError('limit', `${bytes.byteLength} bytes of kernel inputs exceed the upload arena`);
    if (this.arenaUsed + size > ARENA_BYTES) this.flush();
    const at = this.arenaUsed;
    this.staged.set(bytes, at);
    this.arenaUsed = Math.ceil((at + size) / ALIGN) * ALIGN;
    return { resource: { buffer: this.arena, offset: at, size }, off: 0 };
  }

  private params(values: readonly Param[]): GPUBufferBinding {
    const bytes = new Uint8Array(SLOT);
    const dv = new DataView(bytes.buffer);
    values.forEach((v, i) => {
      if (typeof v === 'object') dv.setFloat32(i * 4, v.f, true);
      else if (v < 0) dv.setInt32(i * 4, v, true);
      else dv.setUint32(i * 4, v, true);
    });
    return { ...this.stage(bytes).resource, size: SLOT };
  }

  /** Submit everything encoded so far (with the arena's contents). */
  private flush(): void {
    if (!this.encoder) return;
    if (this.arenaUsed > 0) this.device.queue.writeBuffer(this.arena, 0, this.staged, 0, this.arenaUsed);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = undefined;
    this.arenaUsed = 0;
    // destroyed after the submit that uses them (their last work still completes)
    for (const b of this.doomed.splice(0)) this.destroyBuffer(b);
  }

  private pipeline(key: string, code: () => string): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code: code() });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** Encode one dispatch: `groups` workgroups (a count, split over y past 65535, or [x, y]). */
  private dispatch(key: string, code: () => string, params: readonly Param[], bindings: readonly GPUBufferBinding[], groups: number | [number, number]): void {
    this.check();
    const [x, y] = typeof groups === 'number' ? [Math.min(groups, MAX_GROUPS), Math.ceil(groups / MAX_GROUPS)] : groups;
    if (x === 0 || y === 0) return;
    const pipeline = this.pipeline(key, code);
    this.dispatches.set(key, (this.dispatches.get(key) ?? 0) + 1);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: this.params(params) }, ...bindings.map((resource, i) => ({ binding: i + 1, resource }))];
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    this.encoder ??= this.device.createCommandEncoder();
    const pass = this.encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(x, y);
    pass.end();
  }

  // ---------------------------------------------------------------- tensors

  alloc(count: number): Tensor {
    this.check();
    const bytes = Math.max(ALIGN, Math.ceil((count * 4) / ALIGN) * ALIGN);
    const free = this.pool.get(bytes);
    const buffer = free?.pop() ?? this.createBuffer(bytes, USAGE_STORAGE);
    return new GpuTensor(buffer, 0, count, 'pool', this);
  }

  allocCache(count: number, type: CacheType): Tensor {
    this.check();
    if (type !== 'f32') throw new ModelError(`the webgpu backend has no ${type} cache storage`);
    if (count * 4 > this.maxBinding) throw new GpuError('limit', `a KV cache layer of ${count * 4} bytes exceeds the GPU binding limit (${this.maxBinding} bytes); use a smaller context`);
    return new GpuTensor(this.createBuffer(count * 4, USAGE_STORAGE), 0, count, 'cache', this); // new buffers are zero
  }

  free(t: Tensor): void {
    if (this.disposed || !(t instanceof GpuTensor) || t.owner !== this) return;
    // work encoded but not yet submitted may still use it (a cache that grew: the copy into the new storage)
    if (t.kind === 'cache') {
      if (this.encoder) this.doomed.push(t.buffer);
      else this.destroyBuffer(t.buffer);
    }
    else if (t.kind === 'pool' && this.live.has(t.buffer)) {
      const list = this.pool.get(t.buffer.size) ?? [];
      list.push(t.buffer);
      this.pool.set(t.buffer.size, list);
    }
  }

  view(t: Tensor, offset: number, length: number): Tensor {
    const g = this.own(t);
    if (offset < 0 || length < 0 || offset + length > g.length) throw new ModelError(`view [${offset}, ${offset + length}) outside a tensor of ${g.length}`);
    return new GpuTensor(g.buffer, g.offset + offset, length, 'view', this);
  }

  write(t: Tensor, data: Float32Array, offset = 0): void {
    this.check();
    const g = this.own(t);
    if (offset + data.length > g.length) throw new ModelError(`writing ${data.length} values at ${offset} into a tensor of ${g.length}`);
    this.flush();
    this.device.queue.writeBuffer(g.buffer, (g.offset + offset) * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  async read(t: Tensor): Promise<Float32Array> {
    this.check();
    const g = this.own(t);
    const bytes = Math.max(4, g.length * 4);
    const size = Math.ceil(bytes / ALIGN) * ALIGN;
    const staging = this.readPool.get(size)?.pop() ?? this.createBuffer(size, 0x1 | 0x8); // MAP_READ | COPY_DST
    this.encoder ??= this.device.createCommandEncoder();
    if (g.length > 0) this.encoder.copyBufferToBuffer(g.buffer, g.byteOffset, staging, 0, g.length * 4);
    this.flush();
    try {
      await Promise.race([staging.mapAsync(0x1), this.lost]);
    } catch (e) {
      this.check();
      throw new GpuError('validation', `reading a tensor back failed: ${(e as Error).message}`, { cause: e });
    }
    const out = new Float32Array(g.length);
    out.set(new Float32Array(staging.getMappedRange(0, g.length * 4)));
    staging.unmap();
    if (this.live.has(staging)) {
      const list = this.readPool.get(size) ?? [];
      list.push(staging);
      this.readPool.set(size, list);
    }
    this.check();
    return out;
  }

  /** Wait for all submitted work and raise any error it produced (out of memory, validation, device loss). */
  async settle(): Promise<void> {
    this.check();
    this.flush();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), this.lost]);
    this.check();
  }

  copyRows(src: Tensor, srcOffset: number, srcStride: number, dst: Tensor, dstOffset: number, dstStride: number, rows: number, cols: number): void {
    const s = this.own(src), d = this.own(dst);
    if (rows === 0 || cols === 0) return;
    const sb = this.bind(s, srcOffset, (rows - 1) * srcStride + cols);
    const db = this.bind(d, dstOffset, (rows - 1) * dstStride + cols);
    this.dispatch('copy', () => shaders.COPY, [rows, cols, sb.off, srcStride, db.off, dstStride], [sb.resource, db.resource], Math.ceil((rows * cols) / 64));
  }

  // ---------------------------------------------------------------- weights

  prepareMatrix(w: WeightMatrix): Matrix {
    return this.prepareStacked([w]);
  }

  /** One matrix whose rows are the parts' rows in order, streamed into buffers of whole rows. */
  prepareStacked(parts: readonly WeightMatrix[]): Matrix {
    this.check();
    const { dtype, cols } = checkStackedParts(parts);
    const rows = parts.reduce((a, w) => a + w.rows, 0);
    const rowBytes = dtypeByteLength(dtype, cols);
    const perPart = Math.floor(this.maxBinding / rowBytes);
    if (perPart < 1) throw new GpuError('limit', `one ${dtype} row of ${cols} values (${rowBytes} bytes) exceeds the GPU binding limit (${this.maxBinding} bytes)`);
    const out: MatrixPart[] = [];
    // stream the source rows into part buffers with queue writes (Dawn copies them at once; buffers
    // mapped at creation instead kept their shadow copy after being destroyed, ~weights per load)
    this.flush();
    let src = 0, srcRow = 0;
    for (let rowStart = 0; rowStart < rows; rowStart += perPart) {
      const n = Math.min(perPart, rows - rowStart);
      const buffer = this.createBuffer(n * rowBytes, 0x80 | 0x8);
      // rows of 4k + 2 bytes (Q8_0 / Q4_0 with an odd block count) cannot be written piecewise
      const joined = rowBytes % 4 !== 0 ? new Uint8Array(n * rowBytes) : undefined;
      let done = 0;
      while (done < n) {
        const w = parts[src]!;
        const take = Math.min(n - done, w.rows - srcRow);
        const bytes = w.data.subarray(srcRow * rowBytes, (srcRow + take) * rowBytes);
        if (joined) joined.set(bytes, done * rowBytes);
        else writeBytes(this.device.queue, buffer, done * rowBytes, bytes);
        done += take;
        srcRow += take;
        if (srcRow === w.rows) {
          src++;
          srcRow = 0;
        }
      }
      if (joined) writeBytes(this.device.queue, buffer, 0, joined);
      out.push({ buffer, rowStart, rows: n });
    }
    return new GpuMatrix(dtype, rows, cols, rowBytes, out, this);
  }

  /** The f32 buffer of a norm weight vector, uploaded once. */
  private normBuffer(w: Float32Array): GPUBuffer {
    let b = this.norms.get(w);
    if (!b) {
      b = this.createBuffer(w.byteLength, 0x80 | 0x8);
      this.flush();
      this.device.queue.writeBuffer(b, 0, w.buffer, w.byteOffset, w.byteLength);
      this.norms.set(w, b);
    }
    return b;
  }

  // ---------------------------------------------------------------- kernels

  embed(w: Matrix, ids: Int32Array, scale: number, out: Tensor): void {
    const m = this.ownMatrix(w);
    const o = this.own(out);
    const n = ids.length;
    if (o.length < n * m.cols) throw new ModelError(`embedding output holds ${o.length} values, needs ${n} x ${m.cols}`);
    if (n === 0) return;
    const idb = this.stage(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
    const ob = this.bind(o, 0, n * m.cols);
    for (const part of m.parts) {
      if (!ids.some((id) => id >= part.rowStart && id < part.rowStart + part.rows)) continue;
      this.dispatch(`embed:${m.dtype}`, () => shaders.embedShader(m.dtype), [n, m.cols, m.rowBytes, part.rowStart, part.rows, ob.off, 0, f(scale)], [{ buffer: part.buffer }, idb.resource, ob.resource], Math.ceil((n * m.cols) / 64));
    }
  }

  matmul(w: Matrix, x: Tensor, n: number, out: Tensor, rowLimit?: number, softcap?: number): void {
    const m = this.ownMatrix(w);
    const xt = this.own(x), ot = this.own(out);
    const rows = rowLimit ?? m.rows;
    if (!Number.isInteger(rows) || rows < 0 || rows > m.rows) throw new ModelError(`rowLimit ${rows} outside [0, ${m.rows}]`);
    if (xt.length < n * m.cols) throw new ModelError(`matmul input holds ${xt.length} values, needs ${n} x ${m.cols}`);
    if (ot.length < n * rows) throw new ModelError(`matmul output holds ${ot.length} values, needs ${n} x ${rows}`);
    if (n === 0 || rows === 0) return;
    const cap = softcap && softcap > 0 ? softcap : 0;
    // tokens per dispatch: inputs and outputs within one binding
    const chunk = Math.max(1, Math.min(n, Math.floor((this.maxBinding - ALIGN) / (4 * Math.max(m.cols, rows)))));
    for (let t0 = 0; t0 < n; t0 += chunk) {
      const c = Math.min(chunk, n - t0);
      const xb = this.bind(xt, t0 * m.cols, c * m.cols);
      const ob = this.bind(ot, t0 * rows, c * rows);
      for (const part of m.parts) {
        if (part.rowStart >= rows) break;
        const pr = Math.min(part.rows, rows - part.rowStart);
        const params: Param[] = [pr, m.cols, m.rowBytes, part.rowStart, c, xb.off, m.cols, ob.off, rows, f(cap)];
        const bindings = [{ buffer: part.buffer }, xb.resource, ob.resource];
        // the kernel follows n, not the chunk, so a smaller binding limit gives the same sums
        if (n <= 8) this.dispatch(`mv:${m.dtype}${this.subgroups ? ':sg' : ''}`, () => shaders.matvecShader(m.dtype, this.subgroups), params, bindings, pr);
        else this.dispatch(`mm:${m.dtype}`, () => shaders.matmulShader(m.dtype), params, bindings, [Math.ceil(pr / 32), Math.ceil(c / 32)]);
      }
    }
  }

  /** Backend.headLogProbs: the head's product for up to 64 rows at a time into a pooled tensor, then LOG_PROBS on it. */
  headLogProbs(w: Matrix, x: Tensor, n: number, targets: Int32Array, out: Tensor, rowLimit?: number, softcap?: number): void {
    const m = this.ownMatrix(w);
    const xt = this.own(x), ot = this.own(out);
    const rows = rowLimit ?? m.rows;
    checkTargets(w, n, targets, rows);
    if (ot.length < 2 * n) throw new ModelError(`headLogProbs output holds ${ot.length} values, needs ${n} x 2`);
    if (xt.length < n * m.cols) throw new ModelError(`headLogProbs input holds ${xt.length} values, needs ${n} x ${m.cols}`);
    if (n === 0) return;
    const per = Math.max(1, Math.min(n, 64, Math.floor((this.maxBinding - ALIGN) / (4 * rows))));
    const logits = this.alloc(per * rows);
    try {
      for (let t0 = 0; t0 < n; t0 += per) {
        const c = Math.min(per, n - t0);
        this.matmul(w, this.view(xt, t0 * m.cols, c * m.cols), c, logits, rows, softcap);
        const lb = this.bind(this.own(logits), 0, c * rows);
        const tb = this.stage(new Uint8Array(targets.buffer, targets.byteOffset + t0 * 4, c * 4));
        const ob = this.bind(ot, 2 * t0, 2 * c);
        this.dispatch('log-probs', () => shaders.LOG_PROBS, [c, rows, lb.off, ob.off], [lb.resource, tb.resource, ob.resource], c);
      }
    } finally {
      this.free(logits);
    }
  }

  rmsNorm(x: Tensor, weight: Float32Array, rows: number, dim: number, eps: number): void {
    const xt = this.own(x);
    if (weight.length < dim) throw new ModelError(`norm weight holds ${weight.length} values, needs ${dim}`);
    const xb = this.bind(xt, 0, rows * dim);
    this.dispatch(`rmsnorm${this.subgroups ? ':sg' : ''}`, () => shaders.rmsNormShader(this.subgroups), [rows, dim, xb.off, f(eps)], [xb.resource, { buffer: this.normBuffer(weight) }], rows);
  }

  geluMul(gate: Tensor, up: Tensor, count: number): void {
    const gb = this.bind(this.own(gate), 0, count), ub = this.bind(this.own(up), 0, count);
    this.dispatch('gelu', () => shaders.GELU_MUL, [count, gb.off, ub.off], [gb.resource, ub.resource], Math.ceil(count / 64));
  }

  add(x: Tensor, y: Tensor, count: number): void {
    const xb = this.bind(this.own(x), 0, count), yb = this.bind(this.own(y), 0, count);
    this.dispatch('add', () => shaders.ADD, [count, xb.off, yb.off], [xb.resource, yb.resource], Math.ceil(count / 64));
  }

  /** x = cap * tanh(x / cap) over count values (not used by the forward pass: matmul fuses it). */
  softcap(x: Tensor, count: number, cap: number): void {
    const xb = this.bind(this.own(x), 0, count);
    this.dispatch('softcap', () => shaders.SOFTCAP, [count, xb.off, f(cap)], [xb.resource], Math.ceil(count / 64));
  }

  rope(x: Tensor, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, theta: number, scaling: number): void {
    const xb = this.bind(this.own(x), 0, nTokens * nHeads * headDim);
    const table = this.ropeTable(positions.subarray(0, nTokens), theta, scaling, headDim);
    this.dispatch('rope', () => shaders.ROPE, [nTokens, nHeads, headDim, xb.off], [xb.resource, { buffer: table }], Math.ceil((nTokens * nHeads * (headDim >> 1)) / 64));
  }

  /** cos | sin [nTokens, headDim / 2] in f64 rounded to f32, kept for the few latest position sets (every layer of a step shares them). */
  private ropeTable(positions: Int32Array, theta: number, scaling: number, headDim: number): GPUBuffer {
    const key = `${theta}/${scaling}/${headDim}`;
    const hit = this.ropeTables.find((e) => e.key === key && e.positions.length === positions.length && e.positions.every((p, i) => p === positions[i]));
    if (hit) return hit.buffer;
    const half = headDim >> 1;
    const n = positions.length;
    const cs = new Float32Array(2 * n * half);
    for (let t = 0; t < n; t++) {
      const pos = positions[t]! / scaling;
      for (let i = 0; i < half; i++) {
        const a = pos * (1 / Math.pow(theta, (2 * i) / headDim));
        cs[t * half + i] = Math.cos(a);
        cs[n * half + t * half + i] = Math.sin(a);
      }
    }
    const buffer = this.createBuffer(cs.byteLength, 0x80 | 0x8);
    this.flush();
    this.device.queue.writeBuffer(buffer, 0, cs);
    this.ropeTables.push({ positions: positions.slice(), key, buffer });
    if (this.ropeTables.length > 8) {
      this.flush(); // work already encoded may still read the evicted table: submitted first, it keeps its buffer
      this.destroyBuffer(this.ropeTables.shift()!.buffer);
    }
    return buffer;
  }

  attention(p: TensorAttentionParams): void {
    const { nTokens, nSlots, nHeads, nKvHeads, headDim } = p;
    if (nHeads % nKvHeads !== 0) throw new ModelError(`attention: ${nHeads} heads do not group over ${nKvHeads} KV heads`);
    if (nTokens === 0) return;
    const q = this.own(p.q), k = this.own(p.k), v = this.own(p.v), out = this.own(p.out);
    const kvDim = nKvHeads * headDim;
    if (q.length < nTokens * nHeads * headDim || out.length < nTokens * nHeads * headDim || k.length < nSlots * kvDim || v.length < nSlots * kvDim) {
      throw new ModelError('attention operands are shorter than their shapes');
    }
    const window = p.window >= 0x7fffffff ? 0x7fffffff : Math.max(0, Math.floor(p.window));
    const kb = this.bind(k, 0, nSlots * kvDim), vb = this.bind(v, 0, nSlots * kvDim);
    // query positions | slot positions, staged together
    const pos = new Int32Array(nTokens + nSlots);
    pos.set(p.queryPositions.subarray(0, nTokens));
    pos.set(p.slotPositions.subarray(0, nSlots), nTokens);
    const posb = this.stage(new Uint8Array(pos.buffer));
    const split = nSlots >= this.splitSlots;
    const nChunks = Math.ceil(nSlots / shaders.SPLIT_SLOTS);
    // scratch per token: the scores [heads, slots], or the split's partials [heads, chunks, 2 + headDim];
    // tokens go in chunks whose scratch fits one binding (and 64 MiB), at most 65535 (token, head) groups
    const perToken = (split ? nHeads * nChunks * (headDim + 2) : nHeads * Math.max(nSlots, 1)) * 4;
    const chunk = Math.max(1, Math.min(nTokens, Math.floor(Math.min(this.maxBinding, 64 << 20) / perToken), split ? Math.floor(MAX_GROUPS / nHeads) : nTokens));
    const scratch = this.alloc((chunk * perToken) / 4) as GpuTensor;
    const scalars: Param[] = [nSlots, nHeads, nKvHeads, headDim, window, f(p.scale), f(p.softcap > 0 ? p.softcap : 0)];
    try {
      for (let t0 = 0; t0 < nTokens; t0 += chunk) {
        const c = Math.min(chunk, nTokens - t0);
        const qb = this.bind(q, t0 * nHeads * headDim, c * nHeads * headDim);
        const ob = this.bind(out, t0 * nHeads * headDim, c * nHeads * headDim);
        const sb = this.bind(scratch, 0, (c * perToken) / 4);
        if (split) {
          this.dispatch(`attention-part${this.subgroups ? ':sg' : ''}`, () => shaders.attentionPartShader(this.subgroups), [c, ...scalars, qb.off, sb.off, kb.off, vb.off, t0, nTokens, nChunks], [qb.resource, kb.resource, vb.resource, sb.resource, posb.resource], [c * nHeads, nChunks]);
          this.dispatch('attention-combine', () => shaders.ATTENTION_COMBINE, [c * nHeads, headDim, nChunks, sb.off, ob.off], [sb.resource, ob.resource], c * nHeads);
        } else {
          this.dispatch(`attention${this.subgroups ? ':sg' : ''}`, () => shaders.attentionShader(this.subgroups), [c, ...scalars, qb.off, ob.off, kb.off, vb.off, t0, nTokens], [qb.resource, kb.resource, vb.resource, ob.resource, posb.resource, sb.resource], c * nHeads);
        }
      }
    } finally {
      this.free(scratch);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.encoder = undefined;
    for (const b of [...this.live]) this.destroyBuffer(b);
    this.doomed.length = 0;
    this.pool.clear();
    this.readPool.clear();
    this.ropeTables.length = 0;
    this.staged = new Uint8Array(0); // something in Dawn's bindings may still reference this object
    this.device.onuncapturederror = null;
    // the device (and its compiled kernels) serves the next backend, unless it was lost
    if (this.lostInfo === undefined) releaseDevice(this.acquired);
  }
}

/** queue.writeBuffer of any byte range: whole 4-byte words, the ragged tail padded with zeros. */
function writeBytes(queue: GPUQueue, buffer: GPUBuffer, at: number, bytes: Uint8Array): void {
  if (at % 4 !== 0) throw new ModelError('weight rows must start at 4-byte offsets');
  const whole = bytes.byteLength & ~3;
  if (whole > 0) {
    if (bytes.byteOffset % 4 === 0) queue.writeBuffer(buffer, at, bytes.buffer, bytes.byteOffset, whole);
    else queue.writeBuffer(buffer, at, bytes.slice(0, whole));
  }
  if (whole < bytes.byteLength) {
    const tail = new Uint8Array(4);
    tail.set(bytes.subarray(whole));
    queue.writeBuffer(buffer, at + whole, tail);
  }
}

export type WebGpuBackendInstance = TensorBackend & {
  readonly description: string;
  readonly maxBinding: number;
  readonly device: GPUDevice;
  memoryBytes(): number;
  kernelDispatches(): Record<string, number>;
  readonly splitSlots: number;
  readonly subgroups: boolean;
  readonly features: { shaderF16: boolean; subgroups: boolean };
  settle(): Promise<void>;
  softcap(x: Tensor, count: number, cap: number): void;
};

/**
 * A WebGPU backend on the browser's GPU, or in Node on Dawn (Vulkan first, then OpenGL ES).
 * Throws GpuUnavailableError when no adapter can be created.
 */
export async function createWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackendInstance> {
  return new WebGpuBackend(await acquireDevice(options), options);
}
