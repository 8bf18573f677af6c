/**
 * Streaming generation: one prefill call for the prompt's new tokens, then one forward per
 * generated token through the KV cache.
 *
 *   for await (const chunk of generate(model, tokenizer, ids, { maxTokens: 64, seed: 1 })) {
 *     process.stdout.write(chunk.text);
 *   }
 *
 * The generator's return value (the `value` of the final `{ done: true }` step) is the
 * GenerationResult; `generateText` runs a whole generation and returns it.
 */
import { ModelError, UsageError } from '../errors.js';
import type { ForwardOptions, KVCache, LanguageModel } from '../model/types.js';
import type { StreamDecoder, Tokenizer } from '../tokenizer/types.js';
import { Sampler, tokenLogprobs, usableVocab, type SamplingOptions } from './sampler.js';
import { StopStringMatcher, stopIdSet } from './stop.js';
import { OutputConstraint } from './constraint/index.js';

export const DEFAULT_MAX_TOKENS = 512;
export const MAX_TOP_LOGPROBS = 20;

/** Options of {@link generate} and {@link generateText}: sampling, stop rules, logprobs, structured output, cache reuse. */
export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate (the stop token not counted). Default 512. */
  maxTokens?: number;
  /** Stop strings, matched in the decoded text (also across token boundaries); not included in the text. */
  stop?: readonly string[];
  /** Ids that end generation, not included in ids or text. Default: tokenizer.stopIds, else the config's eos ids. */
  stopIds?: readonly number[];
  /** Never stop on stop ids (generate up to maxTokens or a stop string). */
  ignoreEos?: boolean;
  /** Report each token's log-probability under the model (log-softmax of the raw logits). */
  logprobs?: boolean;
  /** Also report the N most likely alternatives at each step (0..20); implies logprobs. */
  topLogprobs?: number;
  /** Abort: generation ends with finishReason 'abort' and what was generated so far. */
  signal?: AbortSignal;
  /**
   * Reuse a KV cache: its first cache.length tokens must be the first tokens of `promptIds`
   * (the caller keeps track); only promptIds[cache.length..] are prefilled. Without a cache a
   * fresh one sized for prompt + maxTokens is created.
   */
  cache?: KVCache;
  /** Drop control tokens (<start_of_turn> ...) from the text (default true). */
  skipSpecial?: boolean;
  /** Hooks passed to every forward call (steering, reading activations). */
  hooks?: ForwardOptions['hooks'];
}

export interface TopLogprob {
  id: number;
  logprob: number;
  /** The token's text when a tokenizer is known. */
  text?: string;
}

/** One step of {@link generate}: the token id and the text it completes. */
export interface GenerationChunk {
  /** The generated token id; -1 for a final chunk that only releases held-back text. */
  id: number;
  /** New text (may be '': a partial UTF-8 character, or text held back as a possible stop-string start). */
  text: string;
  /** log p(id) under the model, when logprobs were asked for. */
  logprob?: number;
  topLogprobs?: TopLogprob[];
}

/** Why generation ended: a stop id, maxTokens, a stop string, or the abort signal. */
export type FinishReason = 'stop' | 'length' | 'stop_string' | 'abort';

/** A finished generation: the return value of {@link generate} and the result of {@link generateText}. */
export interface GenerationResult {
  /** Generated ids (a stop id that ended generation is not included). */
  ids: number[];
  /** The full generated text, cut before a stop string. */
  text: string;
  /**
   * 'stop': a stop id; 'length': maxTokens or the context is full; 'stop_string': a stop
   * string; 'abort': the signal fired.
   */
  finishReason: FinishReason;
  /** The stop id or stop string that ended generation. */
  stopId?: number;
  stopString?: string;
  /** Per generated token, when logprobs were asked for. */
  logprobs?: { id: number; logprob: number; topLogprobs?: TopLogprob[] }[];
  usage: {
    promptTokens: number;
    /** Prompt tokens that were already in the reused cache (not prefilled again). */
    cachedTokens: number;
    completionTokens: number;
  };
  timings: {
    /** Wall time of the prefill forward call (ms) and the tokens it processed. */
    prefillMs: number;
    prefillTokens: number;
    prefillTokensPerSecond: number;
    /** Wall time of the one-token forward calls (ms) and their count. */
    decodeMs: number;
    decodeTokens: number;
    decodeTokensPerSecond: number;
    totalMs: number;
  };
  /** The cache used (the one passed in, or the fresh one): it holds prompt + ids[0..cache.length - prompt). */
  cache: KVCache;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function checkInt(name: string, v: number | undefined, fallback: number, min: number, max = Infinity): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new UsageError(`${name} must be an integer in [${min}, ${max === Infinity ? '∞' : max}], got ${String(v)}`);
  }
  return v;
}

/** Validate prompt ids against the model's embedding table. */
export function checkPromptIds(model: LanguageModel, ids: readonly number[]): void {
  if (ids.length === 0) throw new UsageError('the prompt is empty: give at least one token (e.g. <bos>)');
  const limit = Math.max(model.config.vocabSize, model.vocabSize);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= limit) throw new UsageError(`token id ${String(id)} is out of range (the model has ${limit} ids)`);
  }
}

/**
 * Stream a generation. Yields one chunk per generated token (plus possibly a final id -1 chunk
 * with released text) and returns the GenerationResult.
 */
export async function* generate(
  model: LanguageModel,
  tokenizer: Tokenizer | undefined,
  promptIds: readonly number[],
  options: GenerateOptions = {},
): AsyncGenerator<GenerationChunk, GenerationResult, void> {
  const t0 = performance.now();
  checkPromptIds(model, promptIds);
  const maxTokens = checkInt('maxTokens', options.maxTokens, DEFAULT_MAX_TOKENS, 0);
  const nTop = checkInt('topLogprobs', options.topLogprobs, 0, 0, MAX_TOP_LOGPROBS);
  const wantLogprobs = options.logprobs === true || nTop > 0;
  const sampler = new Sampler(options);
  const matcher = new StopStringMatcher(options.stop ?? []);
  const stopIds = options.ignoreEos ? new Set<number>() : stopIdSet(options.stopIds ?? tokenizer?.stopIds ?? model.config.eosIds);
  const constraint = OutputConstraint.create(options.responseFormat, tokenizer, stopIds);
  const decoder: StreamDecoder | undefined = tokenizer?.createStreamDecoder({ skipSpecial: options.skipSpecial ?? true });
  const forwardOptions: ForwardOptions | undefined = options.hooks ? { hooks: options.hooks } : undefined;
  const signal = options.signal;

  // The cache: reuse (only the new tail is prefilled) or a fresh one.
  let cache: KVCache;
  if (options.cache) {
    cache = options.cache;
    if (cache.length >= promptIds.length) cache.truncate(promptIds.length - 1);
  } else {
    const ctx = model.config.maxPositionEmbeddings;
    if (promptIds.length > ctx) throw new UsageError(`the prompt has ${promptIds.length} tokens but the model's context holds ${ctx}`);
    cache = model.createCache(Math.min(ctx, promptIds.length + Math.max(1, maxTokens)));
  }
  if (promptIds.length > cache.maxTokens) throw new UsageError(`the prompt has ${promptIds.length} tokens but the KV cache holds ${cache.maxTokens}`);
  const cachedTokens = cache.length;
  const vocabLimit = tokenizer?.vocabSize;

  const ids: number[] = [];
  const context: number[] = [...promptIds];
  const lpList: NonNullable<GenerationResult['logprobs']> = [];
  let text = '';
  let finishReason: FinishReason = 'length';
  let stopId: number | undefined;
  let stopString: string | undefined;
  let prefillMs = 0;
  let decodeMs = 0;
  let decodeTokens = 0;
  const prefillTokens = promptIds.length - cachedTokens;

  const pieceText = (id: number): string | undefined => (tokenizer ? tokenizer.decode([id]) : undefined);

  const finish = (): GenerationResult => {
    const totalMs = performance.now() - t0;
    return {
      ids,
      text,
      finishReason,
      ...(stopId !== undefined ? { stopId } : {}),
      ...(stopString !== undefined ? { stopString } : {}),
      ...(wantLogprobs ? { logprobs: lpList } : {}),
      usage: { promptTokens: promptIds.length, cachedTokens, completionTokens: ids.length },
      timings: {
        prefillMs,
        prefillTokens,
        prefillTokensPerSecond: prefillMs > 0 ? (prefillTokens * 1000) / prefillMs : 0,
        decodeMs,
        decodeTokens,
        decodeTokensPerSecond: decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : 0,
        totalMs,
      },
      cache,
    };
  };

  if (signal?.aborted) {
    finishReason = 'abort';
    return finish();
  }
  if (maxTokens === 0) return finish();

  // Prefill: one call with every new prompt token.
  let t = performance.now();
  let out = await model.forwardAsync(promptIds.slice(cache.length), cache, forwardOptions);
  prefillMs = performance.now() - t;

  for (;;) {
    const row = out.logits.subarray((out.rows - 1) * out.vocab, out.rows * out.vocab);
    const n = usableVocab(out.vocab, vocabLimit);
    if (n <= 0) throw new ModelError('the model returned an empty logits row');
    const id = constraint ? constraint.sample(sampler, row, n, context, ids) : sampler.sample(row, n, context, ids);
    constraint?.advance(id);

    let logprob: number | undefined;
    let tops: TopLogprob[] | undefined;
    if (wantLogprobs) {
      const lp = tokenLogprobs(row, n, id, nTop);
      logprob = lp.logprob;
      if (nTop > 0) {
        tops = lp.top.map((e) => {
          const s = pieceText(e.id);
          return s === undefined ? e : { ...e, text: s };
        });
      }
    }

    if (stopIds.has(id)) {
      finishReason = 'stop';
      stopId = id;
      const tail = decoder ? decoder.flush() : '';
      const pushed = matcher.push(tail);
      let released = pushed.text;
      if (pushed.stopped) {
        finishReason = 'stop_string';
        stopString = pushed.match;
        stopId = undefined;
      } else released += matcher.flush();
      text += released;
      if (released) yield { id: -1, text: released };
      break;
    }

    ids.push(id);
    context.push(id);
    if (wantLogprobs) lpList.push({ id, logprob: logprob!, ...(tops ? { topLogprobs: tops } : {}) });
    // The constrained value is complete: nothing may follow it.
    const complete = constraint?.finished === true;
    const last = ids.length >= maxTokens || complete;
    let piece = decoder ? decoder.push(id) : '';
    if (last && decoder) piece += decoder.flush();
    const pushed = matcher.push(piece);
    let chunkText = pushed.text;
    if (pushed.stopped) {
      finishReason = 'stop_string';
      stopString = pushed.match;
    } else if (last) {
      chunkText += matcher.flush();
      if (complete) finishReason = 'stop';
    }
    text += chunkText;
    const chunk: GenerationChunk = { id, text: chunkText };
    if (logprob !== undefined) chunk.logprob = logprob;
    if (tops) chunk.topLogprobs = tops;
    yield chunk;
    if (pushed.stopped || last) break;

    await yieldToEventLoop();
    if (signal?.aborted || cache.length + 1 > cache.maxTokens) {
      finishReason = signal?.aborted ? 'abort' : 'length';
      const tail = (decoder ? decoder.flush() : '');
      const p2 = matcher.push(tail);
      let released = p2.text;
      if (p2.stopped) {
        finishReason = 'stop_string';
        stopString = p2.match;
      } else released += matcher.flush();
      text += released;
      if (released) yield { id: -1, text: released };
      break;
    }
    t = performance.now();
    out = await model.forwardAsync([id], cache, forwardOptions);
    decodeMs += performance.now() - t;
    decodeTokens++;
  }
  return finish();
}

/** Run a whole generation and return its result. A string prompt is encoded with <bos>. */
export async function generateText(
  model: LanguageModel,
  tokenizer: Tokenizer | undefined,
  prompt: string | readonly number[],
  options: GenerateOptions = {},
): Promise<GenerationResult> {
  let ids: readonly number[];
  if (typeof prompt === 'string') {
    if (!tokenizer) throw new UsageError('a text prompt needs a tokenizer; this model has none (give token ids)');
    ids = tokenizer.encode(prompt);
  } else ids = prompt;
  const it = generate(model, tokenizer, ids, options);
  for (;;) {
    const step = await it.next();
    if (step.done) return step.value;
  }
}
