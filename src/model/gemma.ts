/**
 * The Gemma forward pass (Gemma 1, 2 and 3 text), driven by the normalized ModelConfig.
 * Read top to bottom: embed -> [norm, attention, (post-norm), residual, norm, MLP, (post-norm),
 * residual] x L -> final norm -> tied-embedding logits -> (soft-cap).
 *
 * One pass may carry several sequences (a "step" of segments): matrix products run once over
 * all their tokens, attention runs per segment on its own cache. Long prompts are processed in
 * steps of at most `chunkSize` tokens per sequence (bounded activation memory; the
 * sliding-window ring buffers are sized for it).
 */
import type { Backend, Matrix } from '../backend/backend.js';
import type { ModelConfig } from '../config/model-config.js';
import { ModelError } from '../errors.js';
import { GemmaKVCache, type KVType } from './kv-cache.js';
import type { BatchItem, ForwardOptions, ForwardResult, Hook, KVCache, LanguageModel } from './types.js';
import type { GemmaWeights } from './weights.js';

export interface GemmaModelOptions {
  /** Logits row length; defaults to config.vocabSize (never past the embedding table). */
  vocabSize?: number;
  /** Tokens per sequence per forward step (default 256). */
  chunkSize?: number;
  /** Default context size of new caches (default min(maxPositionEmbeddings, 8192)). */
  contextSize?: number;
  /** Element type of new caches' keys and values (default 'f32'; see GemmaKVCache). */
  kvType?: KVType;
}

/** A slice of one sequence inside a step. */
interface Segment {
  item: number;
  ids: readonly number[];
  cache: GemmaKVCache;
  /** Row offset of the segment in the step's activations. */
  row: number;
}

type Hidden = NonNullable<ForwardResult['hidden']>;

export class GemmaModel implements LanguageModel {
  readonly config: ModelConfig;
  readonly vocabSize: number;
  readonly backend: Backend;
  readonly chunkSize: number;
  readonly contextSize: number;
  readonly kvType: KVType;
  private readonly w: GemmaWeights;

  constructor(config: ModelConfig, weights: GemmaWeights, backend: Backend, options: GemmaModelOptions = {}) {
    this.config = config;
    this.w = weights;
    this.backend = backend;
    const vocab = options.vocabSize ?? config.vocabSize;
    if (vocab > weights.embed.rows) throw new ModelError(`vocab size ${vocab} exceeds the embedding table (${weights.embed.rows} rows)`);
    this.vocabSize = vocab;
    this.chunkSize = options.chunkSize ?? 256;
    this.contextSize = options.contextSize ?? Math.min(config.maxPositionEmbeddings, 8192);
    this.kvType = options.kvType ?? 'f32';
  }

  createCache(maxTokens = this.contextSize): GemmaKVCache {
    if (!Number.isInteger(maxTokens) || maxTokens <= 0) throw new ModelError(`invalid context size ${maxTokens}`);
    return new GemmaKVCache(this.config, maxTokens, this.chunkSize, this.backend, this.kvType);
  }

  forward(ids: readonly number[], cache: KVCache, options: ForwardOptions = {}): ForwardResult {
    return this.run([{ ids, cache, allPositions: options.allPositions }], options.hooks, options.collectHidden ?? false)[0]!;
  }

  forwardBatch(items: readonly BatchItem[], options: Omit<ForwardOptions, 'allPositions' | 'collectHidden'> = {}): ForwardResult[] {
    return this.run(items, options.hooks, false);
  }

  private validate(items: readonly BatchItem[]): GemmaKVCache[] {
    const seen = new Set<KVCache>();
    return items.map(({ ids, cache }) => {
      if (!(cache instanceof GemmaKVCache)) throw new ModelError('cache was not created by this model');
      if (seen.has(cache)) throw new ModelError('the same cache appears twice in one batch');
      if (cache.disposed) throw new ModelError('the KV cache was disposed');
      seen.add(cache);
      if (ids.length === 0) throw new ModelError('forward needs at least one token');
      if (cache.length + ids.length > cache.maxTokens) {
        throw new ModelError(`${cache.length} cached + ${ids.length} new tokens exceed the context size ${cache.maxTokens}`);
      }
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= this.w.embed.rows) throw new ModelError(`token id ${id} is outside the vocabulary [0, ${this.w.embed.rows})`);
      }
      return cache;
    });
  }

  private run(items: readonly BatchItem[], hooks: Record<string, Hook> | undefined, collectHidden: boolean): ForwardResult[] {
    const caches = this.validate(items);
    const H = this.config.hiddenSize;
    const V = this.vocabSize;
    const results: ForwardResult[] = items.map((it) => {
      const rows = it.allPositions ? it.ids.length : 1;
      return { logits: new Float32Array(rows * V), rows, vocab: V };
    });
    const hidden: Hidden | undefined = collectHidden
      ? { embeddings: new Float32Array(items[0]!.ids.length * H), layers: this.config.layers.map(() => new Float32Array(items[0]!.ids.length * H)), finalNorm: new Float32Array(items[0]!.ids.length * H) }
      : undefined;
    if (hidden) results[0]!.hidden = hidden;

    const maxLen = Math.max(...items.map((it) => it.ids.length));
    for (let start = 0; start < maxLen; start += this.chunkSize) {
      // One step: up to chunkSize tokens of every sequence that still has tokens.
      const segs: Segment[] = [];
      let rowsTotal = 0;
      items.forEach((it, i) => {
        if (start >= it.ids.length) return;
        const ids = it.ids.slice(start, start + this.chunkSize);
        segs.push({ item: i, ids, cache: caches[i]!, row: rowsTotal });
        rowsTotal += ids.length;
      });
      const x = this.runStep(segs, rowsTotal, hooks, hidden, start);

      // Final norm + logits, only for the rows callers want.
      const wanted: Array<{ seg: Segment; from: number; count: number; outRow: number }> = [];
      for (const seg of segs) {
        const it = items[seg.item]!;
        const n = seg.ids.length;
        if (it.allPositions) wanted.push({ seg, from: 0, count: n, outRow: start });
        else if (start + n === it.ids.length) wanted.push({ seg, from: n - 1, count: 1, outRow: 0 });
      }
      if (hidden) {
        this.backend.rmsNorm(x, this.w.finalNorm, rowsTotal, H, this.config.rmsNormEps);
        hidden.finalNorm.set(x, start * H);
      }
      const nRows = wanted.reduce((a, w) => a + w.count, 0);
      if (nRows === 0) continue;
      const gathered = new Float32Array(nRows * H);
      let r = 0;
      for (const w of wanted) {
        gathered.set(x.subarray((w.seg.row + w.from) * H, (w.seg.row + w.from + w.count) * H), r * H);
        r += w.count;
      }
      if (!hidden) this.backend.rmsNorm(gathered, this.w.finalNorm, nRows, H, this.config.rmsNormEps);
      const cap = this.config.finalSoftcap;
      if (wanted.length === 1 && wanted[0]!.outRow === 0) {
        // one sequence's rows (a decode step, a prompt's last token): straight into its result
        this.backend.matmul(this.w.embed, gathered, nRows, results[wanted[0]!.seg.item]!.logits, V, cap);
        continue;
      }
      const logits = new Float32Array(nRows * V);
      this.backend.matmul(this.w.embed, gathered, nRows, logits, V, cap);
      r = 0;
      for (const w of wanted) {
        results[w.seg.item]!.logits.set(logits.subarray(r * V, (r + w.count) * V), w.outRow * V);
        r += w.count;
      }
    }
    return results;
  }

  /** Run one step through every layer; returns the residual stream [rows, H] (before the final norm). */
  private runStep(segs: Segment[], n: number, hooks: Record<string, Hook> | undefined, hidden: Hidden | undefined, offset: number): Float32Array {
    const c = this.config;
    const b = this.backend;
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const positions = new Int32Array(n);
    const itemOf = new Int32Array(n);
    for (const s of segs) {
      for (let t = 0; t < s.ids.length; t++) {
        positions[s.row + t] = s.cache.length + t;
        itemOf[s.row + t] = s.item;
      }
    }

    // Embedding, scaled by sqrt(hidden) (f32 constant).
    let x: Float32Array = new Float32Array(n * H);
    const scale = Math.fround(c.embedScale);
    for (const s of segs) {
      for (let t = 0; t < s.ids.length; t++) {
        const row = x.subarray((s.row + t) * H, (s.row + t + 1) * H);
        b.getRow(this.w.embed, s.ids[t]!, row);
        for (let i = 0; i < H; i++) row[i] = row[i]! * scale;
      }
    }
    if (hidden) hidden.embeddings.set(x, offset * H);

    const hook = (name: string, layer: number, act: Float32Array): Float32Array => {
      if (!hooks) return act;
      const fn = hooks[name] ?? hooks['*'];
      if (!fn) return act;
      const replaced = fn({ name, layer, activation: act, nTokens: n, dim: H, positions, items: itemOf });
      if (replaced === undefined || replaced === act) return act;
      if (replaced.length !== act.length) throw new ModelError(`hook ${name} returned ${replaced.length} values, expected ${act.length}`);
      act.set(replaced);
      return act;
    };

    // blocks.{i}.attn.hook_z: the concatenated head outputs [n, nHeads * headDim] before o_proj.
    const hookZ = (layer: number, z: Float32Array) => {
      const name = `blocks.${layer}.attn.hook_z`;
      const fn = hooks?.[name] ?? hooks?.['*'];
      if (!fn) return;
      const replaced = fn({ name, layer, activation: z, nTokens: n, dim: qDim, positions, items: itemOf });
      if (replaced === undefined || replaced === z) return;
      if (replaced.length !== z.length) throw new ModelError(`hook ${name} returned ${replaced.length} values, expected ${z.length}`);
      z.set(replaced);
    };

    const h = new Float32Array(n * H);
    const q = new Float32Array(n * qDim);
    const k = new Float32Array(n * kvDim);
    const v = new Float32Array(n * kvDim);
    const att = new Float32Array(n * qDim);
    const attnOut = new Float32Array(n * H);
    const gate = new Float32Array(n * c.intermediateSize);
    const up = new Float32Array(n * c.intermediateSize);
    const mlpOut = new Float32Array(n * H);
    const qScale = 1 / Math.sqrt(c.queryPreAttnScalar);

    for (let i = 0; i < c.numLayers; i++) {
      const L = this.w.layers[i]!;
      const lc = c.layers[i]!;
      x = hook(`blocks.${i}.hook_resid_pre`, i, x);

      // Attention block.
      h.set(x);
      b.rmsNorm(h, L.inputNorm, n, H, c.rmsNormEps);
      this.project(L.qkv, h, n, [q, k, v], [qDim, kvDim, kvDim]);
      if (L.qNorm && L.kNorm) {
        b.rmsNorm(q, L.qNorm, n * c.numHeads, c.headDim, c.rmsNormEps);
        b.rmsNorm(k, L.kNorm, n * c.numKvHeads, c.headDim, c.rmsNormEps);
      }
      b.rope(q, n, c.numHeads, c.headDim, positions, lc.ropeTheta, lc.ropeScaling);
      b.rope(k, n, c.numKvHeads, c.headDim, positions, lc.ropeTheta, lc.ropeScaling);
      for (const s of segs) {
        const r0 = s.row, r1 = s.row + s.ids.length;
        s.cache.write(i, k.subarray(r0 * kvDim, r1 * kvDim), v.subarray(r0 * kvDim, r1 * kvDim), positions.subarray(r0, r1));
        const lcache = s.cache.layers[i]!;
        // a linear layer's slot is the position: slots past the last query are never visible, and
        // the storage grows by doubling, so attend over the used prefix only
        const nSlots = lcache.ring ? lcache.slots : Math.min(lcache.slots, positions[r1 - 1]! + 1);
        b.attention({
          q: q.subarray(r0 * qDim, r1 * qDim), k: lcache.k, v: lcache.v, nTokens: r1 - r0, nSlots,
          nHeads: c.numHeads, nKvHeads: c.numKvHeads, headDim: c.headDim,
          queryPositions: positions.subarray(r0, r1), slotPositions: lcache.slotPositions,
          window: lc.window, scale: qScale, softcap: c.attnSoftcap, out: att.subarray(r0 * qDim, r1 * qDim),
        });
      }
      hookZ(i, att);
      b.matmul(L.o, att, n, attnOut);
      if (c.sandwichNorms) b.rmsNorm(attnOut, L.postAttnNorm, n, H, c.rmsNormEps);
      const a = hook(`blocks.${i}.hook_attn_out`, i, attnOut);
      for (let j = 0; j < x.length; j++) x[j] = x[j]! + a[j]!;

      // MLP block.
      h.set(x);
      b.rmsNorm(h, c.sandwichNorms ? L.preFfnNorm! : L.postAttnNorm, n, H, c.rmsNormEps);
      this.project(L.gateUp, h, n, [gate, up], [c.intermediateSize, c.intermediateSize]);
      b.geluMul(gate, up, gate.length);
      b.matmul(L.down, gate, n, mlpOut);
      if (c.sandwichNorms) b.rmsNorm(mlpOut, L.postFfnNorm!, n, H, c.rmsNormEps);
      const m = hook(`blocks.${i}.hook_mlp_out`, i, mlpOut);
      for (let j = 0; j < x.length; j++) x[j] = x[j]! + m[j]!;

      x = hook(`blocks.${i}.hook_resid_post`, i, x);
      if (hidden) hidden.layers[i]!.set(x, offset * H);
    }
    for (const s of segs) s.cache.advance(s.ids.length);
    return x;
  }

  private stackOut = new Float32Array(0);

  /**
   * outs[j] = x · W_j^T for the row blocks W_j of `dims` rows each, given either one stacked
   * matrix (its output [n, sum(dims)] is split per token) or one matrix per block.
   */
  private project(mats: readonly Matrix[], x: Float32Array, n: number, outs: Float32Array[], dims: readonly number[]): void {
    const b = this.backend;
    if (mats.length === outs.length) {
      mats.forEach((m, j) => b.matmul(m, x, n, outs[j]!));
      return;
    }
    const total = dims.reduce((a, d) => a + d, 0);
    if (this.stackOut.length < n * total) this.stackOut = new Float32Array(n * total);
    const y = this.stackOut;
    b.matmul(mats[0]!, x, n, y);
    for (let t = 0; t < n; t++) {
      let at = t * total;
      for (let j = 0; j < outs.length; j++) {
        const d = dims[j]!;
        outs[j]!.set(y.subarray(at, at + d), t * d);
        at += d;
      }
    }
  }

  dispose(): void {
    this.backend.dispose();
  }
}
