/**
 * KV cache of one sequence. Global layers keep every position (storage grows on demand up to
 * maxTokens); sliding-window layers keep a ring buffer of window + chunk - 1 slots, enough for
 * a forward chunk of up to `chunk` tokens to see every key its window needs while it writes.
 * Each slot records the position it holds, so attention needs no copying or reordering.
 *
 * Keys and values live in the backend's memory when it offers `allocF32` (the wasm backend:
 * attention reads them in place instead of copying the cache in on every call), else in plain
 * Float32Arrays. `dispose()` returns that memory; a cache dropped without dispose returns it
 * when it is garbage-collected (FinalizationRegistry).
 *
 * KV type 'f16' (llama.cpp's default) stores keys and values as f16, rounded to nearest even:
 * half the memory, and half the bytes attention reads per generated token. It needs a backend
 * with allocF16 / writeF16 (the wasm backend); other backends keep f32, which is never less
 * exact. 'f32' (the default) keeps logits exact to the reference.
 */
import { ModelError } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { ModelConfig } from '../config/model-config.js';
import type { KVCache } from './types.js';

/** The part of a backend the cache uses for its storage. */
export type KVAllocator = Pick<Backend, 'allocF32' | 'freeF32' | 'allocF16' | 'freeF16' | 'writeF16'>;

/** Element type of keys and values in a cache. */
export type KVType = 'f32' | 'f16';

type KVArray = Float32Array | Uint16Array;

/** The backend arrays a cache holds; kept apart from the cache so the finalizer can free them. */
class Storage {
  private readonly owned = new Set<KVArray>();
  /** The type actually stored: f16 only where the backend can hold and write it. */
  readonly type: KVType;
  constructor(
    private readonly backend: KVAllocator | undefined,
    requested: KVType,
  ) {
    this.type = requested === 'f16' && backend?.allocF16 && backend.freeF16 && backend.writeF16 ? 'f16' : 'f32';
  }

  get allocator(): KVAllocator | undefined {
    return this.backend;
  }

  alloc(count: number): KVArray {
    const b = this.backend;
    if (this.type === 'f16') {
      const a = b!.allocF16!(count);
      this.owned.add(a);
      return a;
    }
    if (b?.allocF32 && b.freeF32) {
      let a: Float32Array | undefined;
      try {
        a = b.allocF32(count);
      } catch (e) {
        // the backend's memory is exhausted (or gone): plain arrays still work, just slower
        if (!(e instanceof ModelError)) throw e;
      }
      if (a) {
        this.owned.add(a);
        return a;
      }
    }
    return new Float32Array(count);
  }

  free(a: KVArray): void {
    if (!this.owned.delete(a)) return;
    if (a instanceof Uint16Array) this.backend!.freeF16!(a);
    else this.backend!.freeF32!(a);
  }

  freeAll(): void {
    for (const a of [...this.owned]) this.free(a);
  }

  /** dst[offset ..] = src in the stored type. */
  write(dst: KVArray, offset: number, src: Float32Array): void {
    if (dst instanceof Uint16Array) this.backend!.writeF16!(dst, offset, src);
    else dst.set(src, offset);
  }

  get backed(): boolean {
    return this.owned.size > 0;
  }
}

const finalizer = new FinalizationRegistry<Storage>((storage) => storage.freeAll());

export interface LayerCache {
  /** f32 values, or f16 bits for an f16 cache. */
  k: Float32Array | Uint16Array;
  v: Float32Array | Uint16Array;
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
    if (backend?.allocF32 || storage.type === 'f16') finalizer.register(this, storage, this);
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
      copyInto(d.k, s.k);
      copyInto(d.v, s.v);
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
    copyInto(k, layer.k.subarray(0, n));
    copyInto(v, layer.v.subarray(0, n));
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
  write(layerIndex: number, k: Float32Array, v: Float32Array, positions: Int32Array): void {
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
      st.write(layer.k, s * d, k.subarray(t * d, e * d));
      st.write(layer.v, s * d, v.subarray(t * d, e * d));
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

/** dst[0 ..] = src for two arrays of the same element type. */
function copyInto(dst: KVArray, src: KVArray): void {
  if (dst instanceof Uint16Array && src instanceof Uint16Array) dst.set(src);
  else if (dst instanceof Float32Array && src instanceof Float32Array) dst.set(src);
  else throw new ModelError('KV cache arrays of different element types');
}
