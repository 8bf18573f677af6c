/**
 * Continuous batching: many sequences share each model step.
 *
 * Every step runs ONE `model.forwardBatchAsync` over all active sequences: a decoding sequence
 * contributes its last sampled token, a sequence still reading its prompt contributes the next
 * slice of the prompt (at most `prefillChunk` prompt tokens per step in all, so decodes keep
 * flowing while a long prompt is read). New requests join between steps; each sequence has its
 * own KV cache; at most `parallel` sequences are active, up to `maxQueue` more wait, and a
 * request beyond that is refused with QueueFullError. Aborting a request's signal removes its
 * sequence at once (between steps) and releases its cache.
 *
 * Prefix reuse: the caches of finished sequences are kept in a small LRU together with the
 * tokens they hold. A new request whose prompt starts with some of those tokens (same system
 * prompt, previous turns of a chat) takes that cache, truncates it to the common prefix and
 * prefills only the rest. When a sliding-window layer no longer holds what the truncation needs,
 * the cache is emptied and the prompt prefilled in full.
 *
 * Per-sequence sampling, stop ids, stop strings and logprobs follow `generate()` exactly, so a
 * seeded request gives the same tokens batched or alone.
 */
import { ModelError, UsageError } from '../errors.js';
import type { BatchItem, KVCache, LanguageModel } from '../model/types.js';
import type { StreamDecoder, Tokenizer } from '../tokenizer/types.js';
import { checkPromptIds, MAX_TOP_LOGPROBS, type FinishReason, type GenerationChunk, type GenerationResult, type TopLogprob } from './generate.js';
import { Sampler, tokenLogprobs, usableVocab, type SamplingOptions } from './sampler.js';
import { StopStringMatcher, stopIdSet } from './stop.js';
import { OutputConstraint } from './constraint/index.js';

/** The wait queue is full: the caller should answer "too many requests". */
export class QueueFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueueFullError';
  }
}

export interface SequenceRequest extends SamplingOptions {
  promptIds: readonly number[];
  /** Most tokens to generate (stop token not counted). */
  maxTokens: number;
  stop?: readonly string[];
  /** Default: tokenizer.stopIds, else the config's eos ids. */
  stopIds?: readonly number[];
  ignoreEos?: boolean;
  logprobs?: boolean;
  /** 0..20; implies logprobs. */
  topLogprobs?: number;
  /** Drop control tokens from the text (default true). */
  skipSpecial?: boolean;
  /**
   * Scale of each of the model's LoRA adapters by id (BatchItem.lora; missing ids are off).
   * Default: the adapters' global scales at submission. Sequences with different scales share
   * steps; a cached prefix is reused only under the same scales.
   */
  lora?: readonly number[];
  /** Abort: the sequence ends with finishReason 'abort' and frees its cache at once. */
  signal?: AbortSignal;
  /** Called synchronously for every generated token (and a final id -1 chunk of released text). */
  onChunk?: (chunk: GenerationChunk) => void;
}

/** A finished sequence: generate()'s result without its cache (the scheduler keeps or frees it), with queue timings. */
export interface SequenceResult extends Omit<GenerationResult, 'cache' | 'timings'> {
  timings: {
    /** Time spent waiting for a slot. */
    queuedMs: number;
    /** From submit to the first generated token. */
    firstTokenMs: number;
    totalMs: number;
  };
}

export interface SchedulerOptions {
  /** Most sequences decoding at once (default 4). */
  parallel?: number;
  /** Most requests waiting for a slot (default 64); more are refused with QueueFullError. */
  maxQueue?: number;
  /** KV cache capacity of each sequence (default min(model context, 4096)). */
  contextSize?: number;
  /** Finished caches kept for prefix reuse (default = parallel; 0 disables reuse). */
  prefixCacheSize?: number;
  /** Prompt tokens read per step across all sequences (default 256). */
  prefillChunk?: number;
}

export interface SchedulerStats {
  active: number;
  queued: number;
  prefixCacheEntries: number;
  requestsStarted: number;
  requestsFinished: number;
  requestsAborted: number;
  requestsFailed: number;
  promptTokens: number;
  /** Prompt tokens that were found in a reused cache. */
  cachedPromptTokens: number;
  /** Prompt tokens run through the model. */
  prefillTokens: number;
  completionTokens: number;
  steps: number;
  /** Generated tokens per second over the last few seconds (0 when idle). */
  recentTokensPerSecond: number;
  /** Total wall time spent inside model steps (ms). */
  busyMs: number;
}

interface Sequence {
  req: SequenceRequest;
  prompt: readonly number[];
  /** The LoRA scales its tokens run under (undefined: the model has no adapters). */
  lora: readonly number[] | undefined;
  /** `lora` as a key: caches are reused only under the same scales. */
  loraKey: string;
  maxTokens: number;
  nTop: number;
  wantLogprobs: boolean;
  sampler: Sampler;
  matcher: StopStringMatcher;
  stopIds: Set<number>;
  /** The sequence's own structured-output state, if it has a response format. */
  constraint: OutputConstraint | undefined;
  decoder: StreamDecoder | undefined;
  cache?: KVCache;
  /** Tokens held in the cache, position by position. */
  fed: number[];
  /** Next prompt position to feed. */
  prefillPos: number;
  cachedTokens: number;
  /** Token sampled but not yet fed. */
  pending?: number;
  ids: number[];
  context: number[];
  lp: NonNullable<SequenceResult['logprobs']>;
  text: string;
  t0: number;
  tAdmit: number;
  tFirst: number;
  state: 'queued' | 'active' | 'done';
  resolve: (r: SequenceResult) => void;
  reject: (e: unknown) => void;
  onAbort?: () => void;
}

interface PrefixEntry {
  ids: number[];
  cache: KVCache;
  loraKey: string;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function positiveInt(name: string, v: number | undefined, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < min) throw new UsageError(`${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

/**
 * Continuous batching: requests submitted at any time share each model step (one pass over the
 * weights), join between steps, reuse cached prompt prefixes, and can be aborted (what `gemma
 * serve` runs on).
 */
export class Scheduler {
  readonly model: LanguageModel;
  readonly tokenizer: Tokenizer | undefined;
  readonly parallel: number;
  readonly maxQueue: number;
  readonly contextSize: number;
  readonly prefixCacheSize: number;
  readonly prefillChunk: number;

  private readonly queue: Sequence[] = [];
  private active: Sequence[] = [];
  private readonly prefix: PrefixEntry[] = []; // most recently used last
  private running = false;
  private closed = false;
  /** Tokens generated per step over the last 5 s: times and counts from `recentHead` on. */
  private readonly recentT: number[] = [];
  private readonly recentN: number[] = [];
  private recentHead = 0;
  private recentSum = 0;
  /** Text of single token ids for top logprobs (a token decodes alone the same way every time). */
  private readonly pieceText = new Map<number, string>();
  private readonly counters = {
    requestsStarted: 0,
    requestsFinished: 0,
    requestsAborted: 0,
    requestsFailed: 0,
    promptTokens: 0,
    cachedPromptTokens: 0,
    prefillTokens: 0,
    completionTokens: 0,
    steps: 0,
    busyMs: 0,
  };

  constructor(model: LanguageModel, tokenizer: Tokenizer | undefined, options: SchedulerOptions = {}) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.parallel = positiveInt('parallel', options.parallel, 4);
    this.maxQueue = positiveInt('maxQueue', options.maxQueue, 64, 0);
    const ctxMax = model.config.maxPositionEmbeddings;
    this.contextSize = positiveInt('contextSize', options.contextSize, Math.min(ctxMax, 4096), 2);
    if (this.contextSize > ctxMax) throw new UsageError(`context size ${this.contextSize} exceeds the model's ${ctxMax} positions`);
    this.prefixCacheSize = positiveInt('prefixCacheSize', options.prefixCacheSize, this.parallel, 0);
    this.prefillChunk = positiveInt('prefillChunk', options.prefillChunk, 256);
  }

  stats(): SchedulerStats {
    const now = performance.now();
    this.trimRecent(now);
    let tps = 0;
    if (this.recentHead < this.recentT.length) {
      const span = Math.max(1000, now - this.recentT[this.recentHead]!);
      tps = (this.recentSum * 1000) / span;
    }
    return {
      active: this.active.length,
      queued: this.queue.length,
      prefixCacheEntries: this.prefix.length,
      ...this.counters,
      recentTokensPerSecond: tps,
    };
  }

  /** Drop the per-step token counts older than 5 s (a head index: no array shifting per step). */
  private trimRecent(now: number): void {
    const t = this.recentT;
    let h = this.recentHead;
    while (h < t.length && now - t[h]! > 5000) this.recentSum -= this.recentN[h++]!;
    if (h === t.length) {
      t.length = 0;
      this.recentN.length = 0;
      this.recentSum = 0; // no drift from the running sum
      h = 0;
    } else if (h > 1024 && h * 2 > t.length) {
      t.splice(0, h);
      this.recentN.splice(0, h);
      h = 0;
    }
    this.recentHead = h;
  }

  /** Refuse new work, cancel waiting and running sequences. */
  close(): void {
    this.closed = true;
    for (const s of [...this.queue, ...this.active]) this.finish(s, 'abort');
    for (const e of this.prefix) e.cache.dispose?.();
    this.prefix.length = 0;
  }

  /**
   * Queue a sequence. Throws QueueFullError (synchronously) when the queue is full and
   * UsageError for bad options; the promise resolves when the sequence ends (also on abort).
   */
  submit(req: SequenceRequest): Promise<SequenceResult> {
    if (this.closed) throw new QueueFullError('the server is shutting down');
    checkPromptIds(this.model, req.promptIds);
    if (req.promptIds.length >= this.contextSize) {
      throw new UsageError(`the prompt has ${req.promptIds.length} tokens but the context holds ${this.contextSize} (at least one must be left to generate)`);
    }
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 0) throw new UsageError(`maxTokens must be an integer >= 0, got ${String(req.maxTokens)}`);
    const nTop = req.topLogprobs ?? 0;
    if (!Number.isInteger(nTop) || nTop < 0 || nTop > MAX_TOP_LOGPROBS) throw new UsageError(`topLogprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${String(nTop)}`);
    const sampler = new Sampler(req);
    const matcher = new StopStringMatcher(req.stop ?? []);
    const stopIds = req.ignoreEos ? new Set<number>() : stopIdSet(req.stopIds ?? this.tokenizer?.stopIds ?? this.model.config.eosIds);
    const constraint = OutputConstraint.create(req.responseFormat, this.tokenizer, stopIds);
    const adapters = this.model.loraAdapters?.() ?? [];
    if (req.lora) {
      if (req.lora.length > adapters.length) throw new UsageError(`LoRA scales for ${req.lora.length} adapters, but the model has ${adapters.length}`);
      for (const v of req.lora) if (!Number.isFinite(v)) throw new UsageError(`LoRA scale ${v} is not a finite number`);
    }
    const lora = adapters.length ? adapters.map((a, id) => (req.lora ? (req.lora[id] ?? 0) : a.scale)) : undefined;
    if (this.active.length + this.queue.length >= this.parallel + this.maxQueue) {
      throw new QueueFullError(`too many requests: ${this.active.length} running and ${this.queue.length} waiting (the queue holds ${this.maxQueue})`);
    }
    return new Promise<SequenceResult>((resolve, reject) => {
      const seq: Sequence = {
        req,
        prompt: [...req.promptIds],
        lora,
        loraKey: lora ? lora.join(',') : '',
        maxTokens: Math.min(req.maxTokens, this.contextSize - req.promptIds.length),
        nTop,
        wantLogprobs: req.logprobs === true || nTop > 0,
        sampler,
        matcher,
        stopIds,
        constraint,
        decoder: this.tokenizer?.createStreamDecoder({ skipSpecial: req.skipSpecial ?? true }),
        fed: [],
        prefillPos: 0,
        cachedTokens: 0,
        ids: [],
        context: [...req.promptIds],
        lp: [],
        text: '',
        t0: performance.now(),
        tAdmit: 0,
        tFirst: 0,
        state: 'queued',
        resolve,
        reject,
      };
      if (req.signal) {
        if (req.signal.aborted) {
          this.counters.requestsStarted++;
          this.finish(seq, 'abort');
          return;
        }
        seq.onAbort = () => this.finish(seq, 'abort');
        req.signal.addEventListener('abort', seq.onAbort, { once: true });
      }
      this.counters.requestsStarted++;
      this.counters.promptTokens += seq.prompt.length;
      this.queue.push(seq);
      this.kick();
    });
  }

  // ------------------------------------------------------------ the loop

  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        this.admit();
        if (this.active.length === 0) break;
        await this.step();
        // Let I/O (new requests, disconnects, socket writes) run between steps.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
    }
    if (this.queue.length) this.kick();
  }

  private admit(): void {
    while (this.active.length < this.parallel && this.queue.length) {
      const seq = this.queue.shift()!;
      try {
        this.acquireCache(seq);
      } catch (e) {
        this.fail(seq, e);
        continue;
      }
      seq.state = 'active';
      seq.tAdmit = performance.now();
      this.active.push(seq);
      if (seq.maxTokens === 0) this.finish(seq, 'length');
    }
  }

  private acquireCache(seq: Sequence): void {
    const prompt = seq.prompt;
    let best = -1;
    let bestLen = 0;
    for (let i = 0; i < this.prefix.length; i++) {
      if (this.prefix[i]!.loraKey !== seq.loraKey) continue; // keys and values computed under other adapters
      const c = commonPrefix(this.prefix[i]!.ids, prompt);
      if (c > bestLen) {
        bestLen = c;
        best = i;
      }
    }
    let cache: KVCache;
    let fed: number[];
    if (best >= 0) {
      const entry = this.prefix.splice(best, 1)[0]!;
      cache = entry.cache;
      // At least one prompt token must run to get the next token's logits.
      const keep = Math.min(bestLen, prompt.length - 1, cache.length);
      try {
        cache.truncate(keep);
      } catch {
        cache.truncate(0);
      }
      fed = prompt.slice(0, cache.length);
    } else {
      if (this.prefix.length > 0 && this.prefix.length >= this.prefixCacheSize) {
        cache = this.prefix.shift()!.cache; // recycle the least recently used cache
        cache.truncate(0);
      } else cache = this.model.createCache(this.contextSize);
      fed = [];
    }
    seq.cache = cache;
    seq.fed = fed;
    seq.prefillPos = cache.length;
    seq.cachedTokens = cache.length;
    this.counters.cachedPromptTokens += cache.length;
  }

  private async step(): Promise<void> {
    const t = performance.now();
    const batch: Array<{ seq: Sequence; ids: number[]; last: boolean }> = [];
    let budget = this.prefillChunk;
    for (const seq of this.active) {
      if (seq.pending !== undefined) {
        batch.push({ seq, ids: [seq.pending], last: true });
      } else {
        const remaining = seq.prompt.length - seq.prefillPos;
        if (budget <= 0 && batch.length > 0) continue;
        const n = Math.min(remaining, Math.max(budget, 1));
        budget -= n;
        batch.push({ seq, ids: seq.prompt.slice(seq.prefillPos, seq.prefillPos + n), last: n === remaining });
      }
    }
    const inputs = new Array<BatchItem>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const seq = batch[i]!.seq;
      inputs[i] = seq.lora ? { ids: batch[i]!.ids, cache: seq.cache!, lora: seq.lora } : { ids: batch[i]!.ids, cache: seq.cache! };
    }
    let results;
    try {
      results = await this.model.forwardBatchAsync(inputs);
    } catch (e) {
      for (const b of batch) this.fail(b.seq, e);
      return;
    } finally {
      this.counters.steps++;
    }
    let generated = 0;
    for (let i = 0; i < batch.length; i++) {
      const { seq, ids, last } = batch[i]!;
      if (seq.state === 'done') continue; // aborted while the step ran (an asynchronous backend)
      if (ids.length === 1) seq.fed.push(ids[0]!);
      else for (const id of ids) seq.fed.push(id);
      if (seq.pending === undefined) {
        seq.prefillPos += ids.length;
        this.counters.prefillTokens += ids.length;
      }
      seq.pending = undefined;
      if (!last) continue;
      const out = results[i]!;
      try {
        this.next(seq, out.logits.subarray((out.rows - 1) * out.vocab, out.rows * out.vocab), out.vocab);
        generated++;
      } catch (e) {
        this.fail(seq, e);
      }
    }
    const now = performance.now();
    this.counters.busyMs += now - t;
    if (generated) {
      this.recentT.push(now);
      this.recentN.push(generated);
      this.recentSum += generated;
      this.trimRecent(now); // bounded even when nobody reads the stats
    }
  }

  /** Sample the next token of `seq` from its logits row and emit it (mirrors generate()). */
  private next(seq: Sequence, row: Float32Array, vocab: number): void {
    const n = usableVocab(vocab, this.tokenizer?.vocabSize);
    if (n <= 0) throw new ModelError('the model returned an empty logits row');
    const id = seq.constraint ? seq.constraint.sample(seq.sampler, row, n, seq.context, seq.ids) : seq.sampler.sample(row, n, seq.context, seq.ids);
    seq.constraint?.advance(id);
    if (!seq.tFirst) seq.tFirst = performance.now();
    let logprob: number | undefined;
    let tops: TopLogprob[] | undefined;
    if (seq.wantLogprobs) {
      // The log-softmax of the raw row at `id` and its top entries, without a row-sized array.
      const lp = tokenLogprobs(row, n, id, seq.nTop);
      logprob = lp.logprob;
      if (seq.nTop > 0) tops = lp.top.map((e) => this.withText(e));
    }
    if (seq.stopIds.has(id)) {
      this.release(seq, 'stop', id);
      return;
    }
    seq.ids.push(id);
    seq.context.push(id);
    this.counters.completionTokens++;
    if (seq.wantLogprobs) seq.lp.push({ id, logprob: logprob!, ...(tops ? { topLogprobs: tops } : {}) });
    // The constrained value is complete: nothing may follow it.
    const complete = seq.constraint?.finished === true;
    const last = seq.ids.length >= seq.maxTokens || complete;
    let piece = seq.decoder ? seq.decoder.push(id) : '';
    if (last && seq.decoder) piece += seq.decoder.flush();
    const pushed = seq.matcher.push(piece);
    let chunkText = pushed.text;
    if (!pushed.stopped && last) chunkText += seq.matcher.flush();
    seq.text += chunkText;
    const chunk: GenerationChunk = { id, text: chunkText };
    if (logprob !== undefined) chunk.logprob = logprob;
    if (tops) chunk.topLogprobs = tops;
    this.emit(seq, chunk);
    if (seq.state === 'done') return; // the callback aborted it
    if (pushed.stopped) {
      this.finish(seq, 'stop_string', { stopString: pushed.match });
      return;
    }
    if (last) {
      this.finish(seq, complete ? 'stop' : 'length');
      return;
    }
    if (seq.cache!.length + 1 > seq.cache!.maxTokens) {
      this.release(seq, 'length');
      return;
    }
    seq.pending = id;
  }

  private withText(e: { id: number; logprob: number }): TopLogprob {
    const tok = this.tokenizer;
    if (!tok) return e;
    let text = this.pieceText.get(e.id);
    if (text === undefined) {
      text = tok.decode([e.id]);
      if (this.pieceText.size >= 65536) this.pieceText.clear();
      this.pieceText.set(e.id, text);
    }
    return { ...e, text };
  }

  private emit(seq: Sequence, chunk: GenerationChunk): void {
    try {
      seq.req.onChunk?.(chunk);
    } catch {
      // A failing consumer (closed socket) must not take the batch down; it aborts its request.
    }
  }

  /** End with released held-back text (stop id, context full, abort). */
  private release(seq: Sequence, reason: FinishReason, stopId?: number): void {
    const tail = seq.decoder ? seq.decoder.flush() : '';
    const pushed = seq.matcher.push(tail);
    let released = pushed.text;
    let extra: { stopId?: number; stopString?: string } = stopId !== undefined ? { stopId } : {};
    if (pushed.stopped) {
      reason = 'stop_string';
      extra = { stopString: pushed.match };
    } else released += seq.matcher.flush();
    seq.text += released;
    if (released) this.emit(seq, { id: -1, text: released });
    if (seq.state !== 'done') this.finish(seq, reason, extra);
  }

  private detach(seq: Sequence): void {
    if (seq.onAbort) seq.req.signal?.removeEventListener('abort', seq.onAbort);
    if (seq.state === 'queued') {
      const i = this.queue.indexOf(seq);
      if (i >= 0) this.queue.splice(i, 1);
    } else if (seq.state === 'active') {
      const i = this.active.indexOf(seq);
      if (i >= 0) this.active.splice(i, 1);
    }
    seq.state = 'done';
  }

  private finish(seq: Sequence, reason: FinishReason, extra: { stopId?: number; stopString?: string } = {}): void {
    if (seq.state === 'done') return;
    const wasActive = seq.state === 'active';
    this.detach(seq);
    if (reason === 'abort') this.counters.requestsAborted++;
    else this.counters.requestsFinished++;
    if (seq.cache) {
      // Keep the cache for prefix reuse: it holds exactly `fed`.
      if (this.prefixCacheSize > 0 && !this.closed && seq.cache.length === seq.fed.length && seq.cache.length > 0) {
        this.prefix.push({ ids: seq.fed, cache: seq.cache, loraKey: seq.loraKey });
        while (this.prefix.length > this.prefixCacheSize) this.prefix.shift()!.cache.dispose?.();
      } else seq.cache.dispose?.(); // frees backend (wasm) memory now rather than at garbage collection
      seq.cache = undefined;
    }
    const now = performance.now();
    seq.resolve({
      ids: seq.ids,
      text: seq.text,
      finishReason: reason,
      ...extra,
      ...(seq.wantLogprobs ? { logprobs: seq.lp } : {}),
      usage: { promptTokens: seq.prompt.length, cachedTokens: seq.cachedTokens, completionTokens: seq.ids.length },
      timings: {
        queuedMs: (wasActive ? seq.tAdmit : now) - seq.t0,
        firstTokenMs: seq.tFirst ? seq.tFirst - seq.t0 : 0,
        totalMs: now - seq.t0,
      },
    });
  }

  private fail(seq: Sequence, e: unknown): void {
    if (seq.state === 'done') return;
    this.detach(seq);
    seq.cache?.dispose?.(); // state unknown: drop it
    seq.cache = undefined;
    this.counters.requestsFailed++;
    seq.reject(e);
  }
}
