/**
 * The Gemma forward pass (Gemma 1, 2 and 3 text), driven by the normalized ModelConfig.
 * Read top to bottom: embed -> [norm, attention, (post-norm), residual, norm, MLP, (post-norm),
 * residual] x L -> final norm -> tied-embedding logits -> (soft-cap).
 *
 * One pass may carry several sequences (a "step" of segments): matrix products run once over
 * all their tokens, attention runs per segment on its own cache. Long prompts are processed in
 * steps of at most `chunkSize` tokens per sequence (bounded activation memory; the
 * sliding-window ring buffers are sized for it).
 *
 * The pass is written against TensorBackend: activations are backend tensors and every
 * operation enqueues work. It is a generator that yields a tensor whenever it needs its values
 * on the host (the logits rows callers asked for, an activation a hook reads, collected hidden
 * states) and is resumed with them: `forward` answers at once (host backends, whose tensors are
 * the typed arrays themselves), `forwardAsync` awaits one readback (webgpu) - one await per
 * step without hooks.
 */
import type { Backend, Matrix } from '../backend/backend.js';
import { hostTensors, type Tensor, type TensorBackend } from '../backend/tensor.js';
import type { ModelConfig } from '../config/model-config.js';
import { ModelError } from '../errors.js';
import { GemmaKVCache, type KVType } from './kv-cache.js';
import type { BatchItem, ForwardOptions, ForwardResult, Hook, KVCache, LanguageModel, LoraAdapterInfo } from './types.js';
import type { GemmaWeights, LoraDelta, LoraSlot } from './weights.js';
import type { WeightMatrix } from '../backend/backend.js';

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

/**
 * The scale of one LoRA adapter over a step's rows: undefined when it is off on every row, a
 * number when every row has the same one, else one value per row.
 */
type RowScale = number | Float32Array | undefined;

/** One linear layer's LoRA change: A [r, in], B [out, r] (f32), for {@link GemmaModel.addLoraAdapter}. */
export interface LoraLayerDelta {
  layer: number;
  slot: LoraSlot;
  A: WeightMatrix;
  B: WeightMatrix;
}

/** A forward pass: yields the tensors whose values it needs, resumed with those values. */
type Pass<T> = Generator<Tensor, T, Float32Array>;

/**
 * The Gemma 1 / 2 / 3 forward pass over a backend: one file that reads top to bottom.
 * Made by {@link loadModel} (or {@link createModel} from an open tensor source).
 */
export class GemmaModel implements LanguageModel {
  readonly config: ModelConfig;
  readonly vocabSize: number;
  /** The backend as given: a host Backend (js, wasm) or a TensorBackend (webgpu). */
  readonly backend: Backend | TensorBackend;
  /** The backend's tensor interface, which the forward pass runs on. */
  readonly tensors: TensorBackend;
  readonly chunkSize: number;
  readonly contextSize: number;
  readonly kvType: KVType;
  private readonly w: GemmaWeights;
  /** LoRA adapters by id: where they came from and their global scale. */
  private readonly adapters: LoraAdapterInfo[] = [];
  /** s * I_r matrices that scale rank-r rows on backends whose tensors the host cannot touch. */
  private readonly diagonals = new Map<string, Matrix>();

  constructor(config: ModelConfig, weights: GemmaWeights, backend: Backend | TensorBackend, options: GemmaModelOptions = {}) {
    this.config = config;
    this.w = weights;
    this.backend = backend;
    this.tensors = hostTensors(backend);
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
    return this.runSync(this.run([{ ids, cache, allPositions: options.allPositions, ...(options.lora ? { lora: options.lora } : {}), ...(options.targets ? { targets: options.targets } : {}) }], options.hooks, options.collectHidden ?? false))[0]!;
  }

  forwardBatch(items: readonly BatchItem[], options: Omit<ForwardOptions, 'allPositions' | 'collectHidden' | 'targets'> = {}): ForwardResult[] {
    return this.runSync(this.run(items, options.hooks, false));
  }

  async forwardAsync(ids: readonly number[], cache: KVCache, options: ForwardOptions = {}): Promise<ForwardResult> {
    return (await this.runAsync(this.run([{ ids, cache, allPositions: options.allPositions, ...(options.lora ? { lora: options.lora } : {}), ...(options.targets ? { targets: options.targets } : {}) }], options.hooks, options.collectHidden ?? false)))[0]!;
  }

  forwardBatchAsync(items: readonly BatchItem[], options: Omit<ForwardOptions, 'allPositions' | 'collectHidden' | 'targets'> = {}): Promise<ForwardResult[]> {
    return this.runAsync(this.run(items, options.hooks, false));
  }

  /** Drive a pass synchronously: each read is answered at once (host backends only). */
  private runSync<T>(pass: Pass<T>): T {
    const readSync = this.tensors.readSync;
    if (!readSync) throw new ModelError(`the ${this.tensors.name} backend is asynchronous: use forwardAsync / forwardBatchAsync`);
    let r = pass.next();
    while (!r.done) r = pass.next(readSync(r.value));
    return r.value;
  }

  /** Drive a pass, awaiting each read. */
  private async runAsync<T>(pass: Pass<T>): Promise<T> {
    let r = pass.next();
    while (!r.done) {
      let values: Float32Array;
      try {
        values = await this.tensors.read(r.value);
      } catch (e) {
        pass.return(undefined as T); // runs the pass's finally blocks (its tensors are freed)
        throw e;
      }
      r = pass.next(values);
    }
    return r.value;
  }

  private validate(items: readonly BatchItem[]): GemmaKVCache[] {
    const seen = new Set<KVCache>();
    return items.map(({ ids, cache, targets }) => {
      if (!(cache instanceof GemmaKVCache)) throw new ModelError('cache was not created by this model');
      if (seen.has(cache)) throw new ModelError('the same cache appears twice in one batch');
      if (cache.disposed) throw new ModelError('the KV cache was disposed');
      if (!this.tensors.host && cache.tensors !== this.tensors) throw new ModelError(`the KV cache does not live on this model's ${this.tensors.name} backend`);
      seen.add(cache);
      if (ids.length === 0) throw new ModelError('forward needs at least one token');
      if (targets) {
        if (targets.length !== ids.length) throw new ModelError(`targets has ${targets.length} entries for ${ids.length} tokens (one per position, -1 = not scored)`);
        for (const t of targets) if (!Number.isInteger(t) || t < -1 || t >= this.vocabSize) throw new ModelError(`target ${t} is outside the vocabulary [0, ${this.vocabSize}) (-1 = not scored)`);
      }
      if (cache.length + ids.length > cache.maxTokens) {
        throw new ModelError(`${cache.length} cached + ${ids.length} new tokens exceed the context size ${cache.maxTokens}`);
      }
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= this.w.embed.rows) throw new ModelError(`token id ${id} is outside the vocabulary [0, ${this.w.embed.rows})`);
      }
      return cache;
    });
  }

  private *run(items: readonly BatchItem[], hooks: Record<string, Hook> | undefined, collectHidden: boolean): Pass<ForwardResult[]> {
    const caches = this.validate(items);
    const itemScales = this.itemLoraScales(items);
    const b = this.tensors;
    const H = this.config.hiddenSize;
    const V = this.vocabSize;
    // logits arrays are made when their rows arrive (a single read is used as it is)
    const results: Array<Omit<ForwardResult, 'logits'> & { logits: Float32Array | undefined }> = items.map((it) => ({
      logits: undefined,
      rows: it.allPositions ? it.ids.length : it.targets ? 0 : 1,
      vocab: V,
      ...(it.targets ? { tokenLogProbs: new Float32Array(it.ids.length).fill(NaN), argmax: new Int32Array(it.ids.length).fill(-1) } : {}),
    }));
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
      const x = yield* this.runStep(segs, rowsTotal, hooks, hidden, start, this.rowScales(segs, rowsTotal, itemScales));

      // Final norm + logits, only for the rows callers want.
      const wanted: Array<{ seg: Segment; from: number; count: number; outRow: number }> = [];
      for (const seg of segs) {
        const it = items[seg.item]!;
        const n = seg.ids.length;
        if (it.allPositions) wanted.push({ seg, from: 0, count: n, outRow: start });
        else if (!it.targets && start + n === it.ids.length) wanted.push({ seg, from: n - 1, count: 1, outRow: 0 });
      }
      if (hidden) {
        b.rmsNorm(x, this.w.finalNorm, rowsTotal, H, this.config.rmsNormEps);
        hidden.finalNorm.set(yield x, start * H);
      }
      // Scored positions (targets): their rows go through the head's scoring reduction.
      const scored: Array<{ item: number; pos: number; row: number; target: number }> = [];
      for (const seg of segs) {
        const targets = items[seg.item]!.targets;
        if (!targets) continue;
        for (let t = 0; t < seg.ids.length; t++) {
          const target = targets[start + t]!;
          if (target >= 0) scored.push({ item: seg.item, pos: start + t, row: seg.row + t, target });
        }
      }
      if (scored.length) {
        const sx = b.alloc(scored.length * H);
        const so = b.alloc(scored.length * 2);
        try {
          // contiguous runs of rows in one copy each
          for (let i = 0; i < scored.length; ) {
            let j = i + 1;
            while (j < scored.length && scored[j]!.row === scored[j - 1]!.row + 1) j++;
            b.copyRows(x, scored[i]!.row * H, H, sx, i * H, H, j - i, H);
            i = j;
          }
          if (!hidden) b.rmsNorm(sx, this.w.finalNorm, scored.length, H, this.config.rmsNormEps);
          b.headLogProbs(this.w.embed, sx, scored.length, Int32Array.from(scored, (s) => s.target), so, V, this.config.finalSoftcap);
          const values = yield so;
          scored.forEach((s, i) => {
            results[s.item]!.tokenLogProbs![s.pos] = values[2 * i]!;
            results[s.item]!.argmax![s.pos] = values[2 * i + 1]!;
          });
        } finally {
          b.free(sx);
          b.free(so);
        }
      }
      const nRows = wanted.reduce((a, w) => a + w.count, 0);
      if (nRows === 0) {
        b.free(x);
        continue;
      }
      const gathered = b.alloc(nRows * H);
      const logits = b.alloc(nRows * V);
      try {
        let r = 0;
        for (const w of wanted) {
          b.copyRows(x, (w.seg.row + w.from) * H, H, gathered, r * H, H, w.count, H);
          r += w.count;
        }
        b.free(x);
        if (!hidden) b.rmsNorm(gathered, this.w.finalNorm, nRows, H, this.config.rmsNormEps);
        b.matmul(this.w.embed, gathered, nRows, logits, V, this.config.finalSoftcap);
        const values = yield logits;
        r = 0;
        for (const w of wanted) {
          const res = results[w.seg.item]!;
          const rows = values.subarray(r * V, (r + w.count) * V);
          if (w.count === res.rows) res.logits = wanted.length === 1 ? rows : rows.slice();
          else (res.logits ??= new Float32Array(res.rows * V)).set(rows, w.outRow * V);
          r += w.count;
        }
      } finally {
        b.free(gathered);
        b.free(logits);
      }
    }
    return results.map((r) => ({ ...r, logits: r.logits ?? new Float32Array(0) }));
  }

  /** Run one step through every layer; returns the residual stream [rows, H] (before the final norm). */
  private *runStep(segs: Segment[], n: number, hooks: Record<string, Hook> | undefined, hidden: Hidden | undefined, offset: number, loraScales: readonly RowScale[]): Pass<Tensor> {
    const c = this.config;
    const b = this.tensors;
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const positions = new Int32Array(n);
    const itemOf = new Int32Array(n);
    const ids = new Int32Array(n);
    for (const s of segs) {
      for (let t = 0; t < s.ids.length; t++) {
        positions[s.row + t] = s.cache.length + t;
        itemOf[s.row + t] = s.item;
        ids[s.row + t] = s.ids[t]!;
      }
    }

    /** Show a hook the activation t ([n, dim]); keep what it changed in place or returned. */
    const hook = function* (name: string, layer: number, t: Tensor, dim: number): Pass<void> {
      const fn = hooks?.[name] ?? hooks?.['*'];
      if (!fn) return;
      const act = yield t;
      const replaced = fn({ name, layer, activation: act, nTokens: n, dim, positions, items: itemOf });
      if (replaced !== undefined && replaced !== act) {
        if (replaced.length !== act.length) throw new ModelError(`hook ${name} returned ${replaced.length} values, expected ${act.length}`);
        act.set(replaced);
      }
      if (!b.host) b.write(t, act);
    };

    // Embedding, scaled by sqrt(hidden) (f32 constant).
    const x = b.alloc(n * H);
    b.embed(this.w.embed, ids, Math.fround(c.embedScale), x);
    if (hidden) hidden.embeddings.set(yield x, offset * H);

    const h = b.alloc(n * H);
    const q = b.alloc(n * qDim);
    const k = b.alloc(n * kvDim);
    const v = b.alloc(n * kvDim);
    const att = b.alloc(n * qDim);
    const attnOut = b.alloc(n * H);
    const gate = b.alloc(n * c.intermediateSize);
    const up = b.alloc(n * c.intermediateSize);
    const mlpOut = b.alloc(n * H);
    // output of a stacked q|k|v or gate|up matrix, split by project()
    const stacked = b.alloc(this.w.layers.some((L) => L.qkv.length === 1 || L.gateUp.length === 1) ? n * Math.max(qDim + 2 * kvDim, 2 * c.intermediateSize) : 0);
    const qScale = 1 / Math.sqrt(c.queryPreAttnScalar);

    try {
      for (let i = 0; i < c.numLayers; i++) {
        const L = this.w.layers[i]!;
        const lc = c.layers[i]!;
        if (hooks) yield* hook(`blocks.${i}.hook_resid_pre`, i, x, H);

        // Attention block.
        b.copyRows(x, 0, n * H, h, 0, n * H, 1, n * H);
        b.rmsNorm(h, L.inputNorm, n, H, c.rmsNormEps);
        this.project(L.qkv, h, n, [q, k, v], [qDim, kvDim, kvDim], stacked);
        if (L.lora) for (const [slot, y, d] of [['q', q, qDim], ['k', k, kvDim], ['v', v, kvDim]] as const) this.applyLora(L.lora[slot], h, n, y, d, loraScales);
        if (L.qNorm && L.kNorm) {
          b.rmsNorm(q, L.qNorm, n * c.numHeads, c.headDim, c.rmsNormEps);
          b.rmsNorm(k, L.kNorm, n * c.numKvHeads, c.headDim, c.rmsNormEps);
        }
        b.rope(q, n, c.numHeads, c.headDim, positions, lc.ropeTheta, lc.ropeScaling);
        b.rope(k, n, c.numKvHeads, c.headDim, positions, lc.ropeTheta, lc.ropeScaling);
        for (const s of segs) {
          const r0 = s.row, r1 = s.row + s.ids.length;
          s.cache.write(i, b.view(k, r0 * kvDim, (r1 - r0) * kvDim), b.view(v, r0 * kvDim, (r1 - r0) * kvDim), positions.subarray(r0, r1));
          const lcache = s.cache.layers[i]!;
          // a linear layer's slot is the position: slots past the last query are never visible, and
          // the storage grows by doubling, so attend over the used prefix only
          const nSlots = lcache.ring ? lcache.slots : Math.min(lcache.slots, positions[r1 - 1]! + 1);
          b.attention({
            q: b.view(q, r0 * qDim, (r1 - r0) * qDim), k: lcache.k, v: lcache.v, nTokens: r1 - r0, nSlots,
            nHeads: c.numHeads, nKvHeads: c.numKvHeads, headDim: c.headDim,
            queryPositions: positions.subarray(r0, r1), slotPositions: lcache.slotPositions,
            window: lc.window, scale: qScale, softcap: c.attnSoftcap, out: b.view(att, r0 * qDim, (r1 - r0) * qDim),
          });
        }
        // blocks.{i}.attn.hook_z: the concatenated head outputs [n, nHeads * headDim] before o_proj.
        if (hooks) yield* hook(`blocks.${i}.attn.hook_z`, i, att, qDim);
        b.matmul(L.o, att, n, attnOut);
        if (L.lora) this.applyLora(L.lora.o, att, n, attnOut, H, loraScales);
        if (c.sandwichNorms) b.rmsNorm(attnOut, L.postAttnNorm, n, H, c.rmsNormEps);
        if (hooks) yield* hook(`blocks.${i}.hook_attn_out`, i, attnOut, H);
        b.add(x, attnOut, n * H);

        // MLP block.
        b.copyRows(x, 0, n * H, h, 0, n * H, 1, n * H);
        b.rmsNorm(h, c.sandwichNorms ? L.preFfnNorm! : L.postAttnNorm, n, H, c.rmsNormEps);
        this.project(L.gateUp, h, n, [gate, up], [c.intermediateSize, c.intermediateSize], stacked);
        if (L.lora) for (const [slot, y] of [['gate', gate], ['up', up]] as const) this.applyLora(L.lora[slot], h, n, y, c.intermediateSize, loraScales);
        b.geluMul(gate, up, n * c.intermediateSize);
        b.matmul(L.down, gate, n, mlpOut);
        if (L.lora) this.applyLora(L.lora.down, gate, n, mlpOut, H, loraScales);
        if (c.sandwichNorms) b.rmsNorm(mlpOut, L.postFfnNorm!, n, H, c.rmsNormEps);
        if (hooks) yield* hook(`blocks.${i}.hook_mlp_out`, i, mlpOut, H);
        b.add(x, mlpOut, n * H);

        if (hooks) yield* hook(`blocks.${i}.hook_resid_post`, i, x, H);
        if (hidden) hidden.layers[i]!.set(yield x, offset * H);
      }
      for (const s of segs) s.cache.advance(s.ids.length);
    } catch (e) {
      b.free(x);
      throw e;
    } finally {
      for (const t of [h, q, k, v, att, attnOut, gate, up, mlpOut, stacked]) b.free(t);
    }
    return x;
  }

  /**
   * outs[j] = x · W_j^T for the row blocks W_j of `dims` rows each, given either one stacked
   * matrix (its output [n, sum(dims)], written to `stacked`, is split per token) or one matrix
   * per block.
   */
  private project(mats: readonly Matrix[], x: Tensor, n: number, outs: Tensor[], dims: readonly number[], stacked: Tensor): void {
    const b = this.tensors;
    if (mats.length === outs.length) {
      mats.forEach((m, j) => b.matmul(m, x, n, outs[j]!));
      return;
    }
    const total = dims.reduce((a, d) => a + d, 0);
    b.matmul(mats[0]!, x, n, stacked);
    let at = 0;
    for (let j = 0; j < outs.length; j++) {
      b.copyRows(stacked, at, total, outs[j]!, 0, dims[j]!, n, dims[j]!);
      at += dims[j]!;
    }
  }

  /** Each item's scale of every adapter: its own (missing ids off) or the global ones. */
  private itemLoraScales(items: readonly BatchItem[]): Array<readonly number[]> {
    const globals = this.adapters.map((a) => a.scale);
    return items.map((it) => {
      if (!it.lora) return globals;
      for (const v of it.lora) if (!Number.isFinite(v)) throw new ModelError(`LoRA scale ${v} is not a finite number`);
      if (it.lora.length > this.adapters.length) throw new ModelError(`LoRA scales for ${it.lora.length} adapters, but the model has ${this.adapters.length}`);
      return this.adapters.map((_, id) => it.lora![id] ?? 0);
    });
  }

  /** Each adapter's scale over a step's rows (segments are contiguous rows of one item). */
  private rowScales(segs: readonly Segment[], n: number, itemScales: ReadonlyArray<readonly number[]>): RowScale[] {
    return this.adapters.map((_, id) => {
      const first = itemScales[segs[0]!.item]![id]!;
      if (segs.every((s) => itemScales[s.item]![id] === first)) return first === 0 ? undefined : first;
      const rows = new Float32Array(n);
      for (const s of segs) rows.fill(itemScales[s.item]![id]!, s.row, s.row + s.ids.length);
      return rows;
    });
  }

  /** y += s * B (A x) for each adapter on this linear layer, s per row (LoRA without merging). */
  private applyLora(list: readonly LoraDelta[] | undefined, x: Tensor, n: number, y: Tensor, outDim: number, scales: readonly RowScale[]): void {
    if (!list) return;
    const b = this.tensors;
    for (const { A, B, adapter, rank } of list) {
      const s = scales[adapter];
      if (s === undefined) continue;
      const u = b.alloc(n * rank), z = b.alloc(n * outDim);
      b.matmul(A, x, n, u);
      const scaled = s === 1 ? u : this.scaleRows(u, n, rank, s);
      b.matmul(B, scaled, n, z);
      b.add(y, z, n * outDim);
      if (scaled !== u) b.free(scaled);
      b.free(u);
      b.free(z);
    }
  }

  /** Rows of u [n, r] times their scale: in place on host tensors, else into a new tensor (s * I products). */
  private scaleRows(u: Tensor, n: number, r: number, s: number | Float32Array): Tensor {
    const b = this.tensors;
    const scaleOf = (row: number) => (typeof s === 'number' ? s : s[row]!);
    if (b.readSync) {
      const v = b.readSync(u);
      for (let t = 0; t < n; t++) {
        const k = scaleOf(t);
        for (let j = t * r; j < (t + 1) * r; j++) v[j] = v[j]! * k;
      }
      return u;
    }
    const out = b.alloc(n * r);
    for (let t0 = 0; t0 < n; ) {
      const k = scaleOf(t0);
      let t1 = t0 + 1;
      while (t1 < n && scaleOf(t1) === k) t1++;
      if (k === 1) b.copyRows(u, t0 * r, r, out, t0 * r, r, t1 - t0, r);
      else if (k !== 0) b.matmul(this.diagonal(r, k), b.view(u, t0 * r, (t1 - t0) * r), t1 - t0, b.view(out, t0 * r, (t1 - t0) * r));
      t0 = t1;
    }
    return out;
  }

  private diagonal(r: number, k: number): Matrix {
    const key = `${r}:${k}`;
    let m = this.diagonals.get(key);
    if (!m) {
      const d = new Float32Array(r * r);
      for (let i = 0; i < r; i++) d[i * r + i] = k;
      if (this.diagonals.size >= 256) this.diagonals.clear();
      m = this.tensors.prepareMatrix({ dtype: 'f32', rows: r, cols: r, data: new Uint8Array(d.buffer) });
      this.diagonals.set(key, m);
    }
    return m;
  }

  /**
   * Load a LoRA adapter without merging: per linear layer A [r, in] and B [out, r] (f32, with
   * the adapter's alpha / r already multiplied into B). Each layer then computes
   * W x + s * B (A x) where s is the adapter's scale for that token's sequence (BatchItem.lora),
   * else its global `scale`. The base weights are not touched. Returns the adapter's id.
   */
  addLoraAdapter(deltas: readonly LoraLayerDelta[], options: { path?: string; scale?: number } = {}): number {
    const c = this.config;
    const qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
    const shapes: Record<LoraSlot, [number, number]> = {
      q: [qDim, c.hiddenSize], k: [kvDim, c.hiddenSize], v: [kvDim, c.hiddenSize], o: [c.hiddenSize, qDim],
      gate: [c.intermediateSize, c.hiddenSize], up: [c.intermediateSize, c.hiddenSize], down: [c.hiddenSize, c.intermediateSize],
    };
    const scale = options.scale ?? 1;
    if (!Number.isFinite(scale)) throw new ModelError(`LoRA scale ${scale} is not a finite number`);
    for (const d of deltas) {
      if (!this.w.layers[d.layer]) throw new ModelError(`LoRA on layer ${d.layer}: the model has ${this.w.layers.length} layers`);
      const [out, inDim] = shapes[d.slot];
      if (d.A.cols !== inDim || d.B.rows !== out || d.A.rows !== d.B.cols) {
        throw new ModelError(`LoRA on layer ${d.layer} ${d.slot}: A [${d.A.rows}, ${d.A.cols}] and B [${d.B.rows}, ${d.B.cols}] do not fit the weight [${out}, ${inDim}]`);
      }
    }
    const id = this.adapters.length;
    for (const d of deltas) {
      const lists = (this.w.layers[d.layer]!.lora ??= {});
      (lists[d.slot] ??= []).push({ A: this.tensors.prepareMatrix(d.A), B: this.tensors.prepareMatrix(d.B), adapter: id, rank: d.A.rows });
    }
    this.adapters.push({ id, path: options.path ?? `adapter ${id}`, scale });
    return id;
  }

  /** One linear layer's LoRA (B already scaled) as an adapter of its own at scale 1. */
  addLora(layer: number, slot: LoraSlot, A: WeightMatrix, B: WeightMatrix): void {
    this.addLoraAdapter([{ layer, slot, A, B }]);
  }

  loraAdapters(): readonly LoraAdapterInfo[] {
    return this.adapters.map((a) => ({ ...a }));
  }

  setLoraScale(id: number, scale: number): void {
    const a = this.adapters[id];
    if (!Number.isInteger(id) || !a) throw new ModelError(`no LoRA adapter with id ${id} (the model has ${this.adapters.length})`);
    if (!Number.isFinite(scale)) throw new ModelError(`LoRA scale ${scale} is not a finite number`);
    a.scale = scale;
  }

  dispose(): void {
    this.tensors.dispose();
  }
}
