/**
 * KV cache of one sequence. Global layers keep every position (storage grows on demand up to
 * maxTokens); sliding-window layers keep a ring buffer of window + chunk - 1 slots, enough for
 * a forward chunk of up to `chunk` tokens to see every key its window needs while it writes.
 * Each slot records the position it holds, so attention needs no copying or reordering.
 *
 * Keys and values are backend tensors (TensorBackend.allocCache): GPU buffers on webgpu, views on
 * the backend's memory on wasm (attention reads them in place instead of copying the cache in
 * on every call), plain Float32Arrays otherwise. `dispose()` returns that memory; a cache dropped without dispose returns it
 * when it is garbage-collected (FinalizationRegistry).
 *
 * KV type 'f16' (llama.cpp's default) stores keys and values as f16, rounded to nearest even:
 * half the memory, and half the bytes attention reads per generated token. It needs a backend
 * whose cacheTypes include f16 (the wasm backend); other backends keep f32, which is never less
 * exact. 'f32' (the default) keeps logits exact to the reference.
 */
import { ModelError } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import { hostTensors, type Tensor, type TensorBackend } from '../backend/tensor.js';
import type { ModelConfig } from '../config/model-config.js';
import type { KVCache } from './types.js';

/** Where a cache's keys and values live: a host backend (js, wasm) or a tensor backend (webgpu). */
export type KVAllocator = Backend | TensorBackend;

/** Element type of keys and values in a cache. */
export type KVType = 'f32' | 'f16';

/** The backend tensors a cache holds; kept apart from the cache so the finalizer can free them. */
class Storage {
  private readonly owned = new Set<Tensor>();
  /** The type actually stored: f16 only where the backend can hold and write it. */
  readonly type: KVType;
  readonly tensors: TensorBackend;
  constructor(
    private readonly backend: KVAllocator | undefined,
    requested: KVType,
  ) {
    this.tensors = hostTensors(backend);
    this.type = requested === 'f16' && this.tensors.cacheTypes.includes('f16') ? 'f16' : 'f32';
  }

  get allocator(): KVAllocator | undefined {
    return this.backend;
  }

  alloc(count: number): Tensor {
    const a = this.tensors.allocCache(count, this.type);
    if (!a) return new Float32Array(count);
    this.owned.add(a);
    return a;
  }

  free(a: Tensor): void {
    if (this.owned.delete(a)) this.tensors.free(a);
  }

  freeAll(): void {
    for (const a of [...this.owned]) this.free(a);
  }

  /** dst[dstOffset ..] = src[srcOffset .., count values] in the stored type. */
  copy(src: Tensor, srcOffset: number, dst: Tensor, dstOffset: number, count: number): void {
    if (count > 0) this.tensors.copyRows(src, srcOffset, count, dst, dstOffset, count, 1, count);
  }

  get backed(): boolean {
    return this.owned.size > 0;
  }
}

const finalizer = new FinalizationRegistry<Storage>((storage) => storage.freeAll());

export interface LayerCache {
  /** f32 values, or f16 values for an f16 cache (host backends: Float32Array / Uint16Array of f16 bits). */
  k: Tensor;
  v: Tensor;
  /** Position held by each slot, -1 = empty. */
  slotPositions: Int32Array;
  /** Number of slots. */
  slots: number;
  /** Ring buffer (sliding layer) or linear storage (global layer). */
  ring: boolean;
  window: number;
}

export class GemmaKVCache implements KVCache {
  readonly maxTokens: number;
  readonly layers: LayerCache[];
  private readonly kvDim: number;
  private _length = 0;
  private readonly storage: Storage;
  private _disposed = false;

  /**
   * `backend`: where k/v live (its allocF32 / freeF32); plain Float32Arrays without one (or
   * when it has no allocF32). The model passes its backend.
   */
  constructor(
    private readonly config: ModelConfig,
    maxTokens: number,
    private readonly chunk: number,
    backend?: KVAllocator,
    kvType: KVType = 'f32',
  ) {
    this.maxTokens = maxTokens;
    this.kvDim = config.numKvHeads * config.headDim;
    const storage = new Storage(backend, kvType);
    this.storage = storage;
    this.layers = config.layers.map((l) => {
      const ring = Number.isFinite(l.window) && l.window + chunk - 1 < maxTokens;
      const slots = ring ? l.window + chunk - 1 : Math.min(maxTokens, 64);
      return {
        k: storage.alloc(slots * this.kvDim),
        v: storage.alloc(slots * this.kvDim),
        slotPositions: new Int32Array(slots).fill(-1),
        slots,
        ring,
        window: l.window,
      };
    });
    finalizer.register(this, storage, this);
  }

  /** The tensor backend the keys and values live on. */
  get tensors(): TensorBackend {
    return this.storage.tensors;
  }

  /** Element type of the stored keys and values. */
  get kvType(): KVType {
    return this.storage.type;
  }

  get length(): number {
    return this._length;
  }

  get disposed(): boolean {
    return this._disposed;
  }

  /** Whether k/v live in backend memory (allocF32) rather than plain arrays. */
  get backendMemory(): boolean {
    return this.storage.backed;
  }

  /**
   * Return the cache's backend memory; the cache is unusable afterwards (forward throws).
   * Idempotent. Plain-array caches need no dispose, but may be disposed too.
   */
  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    finalizer.unregister(this);
    this.storage.freeAll();
    for (const layer of this.layers) Object.assign(layer, { k: new Float32Array(0), v: new Float32Array(0), slotPositions: new Int32Array(0), slots: 0 });
    this._length = 0;
  }

  /** An independent copy (same backend storage kind), e.g. to continue one prefix several ways. */
  clone(): GemmaKVCache {
    this.checkLive();
    const dst = new GemmaKVCache(this.config, this.maxTokens, this.chunk, this.storage.allocator, this.storage.type);
    for (let i = 0; i < this.layers.length; i++) {
      const s = this.layers[i]!;
      const d = dst.layers[i]!;
      if (d.slots !== s.slots) dst.resize(d, s.slots);
      this.storage.copy(s.k, 0, d.k, 0, s.k.length);
      this.storage.copy(s.v, 0, d.v, 0, s.v.length);
      d.slotPositions.set(s.slotPositions);
    }
    dst._length = this._length;
    return dst;
  }

  private checkLive(): void {
    if (this._disposed) throw new ModelError('the KV cache was disposed');
  }

  /** Give a (linear) layer `slots` slots, keeping what it holds. */
  private resize(layer: LayerCache, slots: number): void {
    const n = Math.min(slots, layer.slots) * this.kvDim;
    const k = this.storage.alloc(slots * this.kvDim);
    const v = this.storage.alloc(slots * this.kvDim);
    this.storage.copy(layer.k, 0, k, 0, n);
    this.storage.copy(layer.v, 0, v, 0, n);
    this.storage.free(layer.k);
    this.storage.free(layer.v);
    const sp = new Int32Array(slots).fill(-1);
    sp.set(layer.slotPositions.subarray(0, Math.min(slots, layer.slots)));
    Object.assign(layer, { k, v, slotPositions: sp, slots });
  }

  /** Slot that holds (or will hold) `pos` on layer `layer`, growing linear storage as needed. */
  private slotFor(layer: LayerCache, pos: number): number {
    if (layer.ring) return pos % layer.slots;
    if (pos >= layer.slots) this.resize(layer, Math.min(this.maxTokens, Math.max(pos + 1, layer.slots * 2)));
    return pos;
  }

  /** Store k/v rows [n, kvDim] of the given positions on one layer. */
  write(layerIndex: number, k: Tensor, v: Tensor, positions: Int32Array): void {
    this.checkLive();
    const layer = this.layers[layerIndex]!;
    const d = this.kvDim;
    const st = this.storage;
    // rows go in runs of consecutive slots (one conversion call per run for an f16 cache)
    let t = 0;
    while (t < positions.length) {
      const pos = positions[t]!;
      if (pos >= this.maxTokens) throw new ModelError(`position ${pos} is past the context size ${this.maxTokens}`);
      const s = this.slotFor(layer, pos);
      layer.slotPositions[s] = pos;
      let e = t + 1;
      while (e < positions.length && positions[e]! < this.maxTokens && this.slotFor(layer, positions[e]!) === s + (e - t)) {
        layer.slotPositions[s + (e - t)] = positions[e]!;
        e++;
      }
      st.copy(k, t * d, layer.k, s * d, (e - t) * d);
      st.copy(v, t * d, layer.v, s * d, (e - t) * d);
      t = e;
    }
  }

  /** Called by the model after all layers of a chunk have been written. */
  advance(n: number): void {
    this._length += n;
  }

  truncate(n: number): void {
    this.checkLive();
    if (!Number.isInteger(n) || n < 0 || n > this._length) throw new ModelError(`cannot truncate a cache of ${this._length} tokens to ${n}`);
    for (const layer of this.layers) {
      if (layer.ring) {
        // Every position the next token's window needs must still be held.
        for (let p = Math.max(0, n - layer.window + 1); p < n; p++) {
          if (layer.slotPositions[p % layer.slots] !== p) {
            throw new ModelError(`cannot truncate to ${n} tokens: the sliding-window cache no longer holds position ${p}; start a new cache`);
          }
        }
      }
    }
    for (const layer of this.layers) {
      for (let s = 0; s < layer.slots; s++) if (layer.slotPositions[s]! >= n) layer.slotPositions[s] = -1;
    }
    this._length = n;
  }

  /** Bytes held by the cache now. */
  byteLength(): number {
    return this.layers.reduce((a, l) => a + l.k.byteLength + l.v.byteLength + l.slotPositions.byteLength, 0);
  }
}
