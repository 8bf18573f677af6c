/**
 * The model side of an evaluation. `EvalLM` is what tasks ask of a model: loglikelihoods of
 * continuations, rolling loglikelihoods of whole texts, and generations. `LocalLM` answers with
 * a gemma-ts model in this process:
 * - text is encoded as lm-evaluation-harness encodes it for Gemma (<bos> first; trailing spaces of
 *   a context move to its continuation; the continuation's tokens are those of context +
 *   continuation past the context's);
 * - the requests of one document (a multiple-choice question's choices) share their longest
 *   common token prefix: it is prefilled once, its KV cache is cloned for each choice, and all
 *   the choices of `batchSize` documents run in one forwardBatch;
 * - rolling loglikelihoods use the harness's disjoint windows of at most `maxLength` tokens;
 * - generations run through the continuous-batching scheduler, longest prompts first.
 */
import { Scheduler } from '../generate/scheduler.js';
import type { KVCache, LanguageModel } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UsageError } from '../errors.js';

export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
  /** Requests with the same group (a document's choices) share their common prefix. */
  group?: number;
}

export interface GenerationRequest {
  context: string;
  until: string[];
  maxGenToks: number;
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus sampling (default 1 = off). */
  topP?: number;
  seed?: number;
}

export type Progress = (done: number) => void;

export interface EvalLM {
  /** Identifies the model in cached request results. */
  readonly id: string;
  loglikelihood(requests: LoglikelihoodRequest[], progress?: Progress): Promise<Array<[number, boolean]>>;
  loglikelihoodRolling(texts: string[], progress?: Progress): Promise<number[]>;
  generateUntil(requests: GenerationRequest[], progress?: Progress): Promise<string[]>;
}

/** Tokens of one scored pair: the model reads context + continuation[:-1] and predicts continuation. */
export interface TokenPair {
  context: number[];
  continuation: number[];
}

export interface LocalLMOptions {
  /** Documents (prefix groups) per forwardBatch (default 4). */
  batchSize?: number;
  /** Longest sequence the model reads (default: the model's context size). */
  maxLength?: number;
  /** Share each document's common prefix (default true; false = one plain forward per pair). */
  prefixSharing?: boolean;
  id?: string;
}

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

function commonPrefixLength(seqs: readonly number[][]): number {
  let n = Math.min(...seqs.map((s) => s.length));
  const first = seqs[0]!;
  for (const s of seqs) {
    let i = 0;
    while (i < n && s[i] === first[i]) i++;
    n = i;
  }
  return n;
}

export class LocalLM implements EvalLM {
  readonly id: string;
  readonly batchSize: number;
  readonly maxLength: number;
  readonly prefixSharing: boolean;

  constructor(
    readonly model: LanguageModel,
    readonly tokenizer: Tokenizer,
    options: LocalLMOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 4;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new UsageError(`batch size must be an integer >= 1, got ${this.batchSize}`);
    const ctx = (model as { contextSize?: number }).contextSize ?? model.config.maxPositionEmbeddings;
    this.maxLength = options.maxLength ?? ctx;
    this.prefixSharing = options.prefixSharing ?? true;
    this.id = options.id ?? 'local';
  }

  encode(text: string, addBos = true): number[] {
    return encodeText(this.tokenizer, text, addBos);
  }

  encodePair(context: string, continuation: string): TokenPair {
    return encodePair(this.tokenizer, context, continuation);
  }

  /** Left-truncate so that context + continuation[:-1] fits in maxLength tokens. */
  private fit(p: TokenPair): TokenPair {
    if (p.continuation.length === 0) throw new UsageError('a continuation encodes to no tokens');
    if (p.continuation.length > this.maxLength) throw new UsageError(`a continuation of ${p.continuation.length} tokens exceeds the maximum length ${this.maxLength}`);
    const over = p.context.length + p.continuation.length - 1 - this.maxLength;
    return over > 0 ? { context: p.context.slice(over), continuation: p.continuation } : p;
  }

  async loglikelihood(requests: LoglikelihoodRequest[], progress?: Progress): Promise<Array<[number, boolean]>> {
    const pairs = requests.map((r) => this.encodePair(r.context, r.continuation));
    const groups = new Map<number | string, number[]>();
    requests.forEach((r, i) => {
      const key = this.prefixSharing && r.group !== undefined ? r.group : `single-${i}`;
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [i]);
    });
    return this.scorePairs(pairs, [...groups.values()], progress);
  }

  /**
   * Score token pairs; `groups` lists pair indices that share a prefix. Runs `batchSize` groups
   * per step: one forwardBatch for their shared prefixes, one for every pair's remainder.
   */
  async scorePairs(pairsIn: TokenPair[], groups: number[][], progress?: Progress): Promise<Array<[number, boolean]>> {
    const pairs = pairsIn.map((p) => this.fit(p));
    const out = new Array<[number, boolean]>(pairs.length);
    // Longest first: batches of similar lengths waste less padding-free work and fail early on memory.
    const order = [...groups].sort((a, b) => Math.max(...b.map((i) => pairs[i]!.context.length)) - Math.max(...a.map((i) => pairs[i]!.context.length)));
    let done = 0;
    for (let g0 = 0; g0 < order.length; g0 += this.batchSize) {
      const chunk = order.slice(g0, g0 + this.batchSize);
      const plans = chunk.map((members) => {
        const inputs = members.map((i) => [...pairs[i]!.context, ...pairs[i]!.continuation.slice(0, -1)]);
        const starts = members.map((i) => pairs[i]!.context.length - 1);
        const shared = members.length > 1 ? Math.min(commonPrefixLength(inputs), ...starts) : 0;
        const longest = Math.max(...inputs.map((s) => s.length));
        return { members, inputs, starts, shared, longest, cache: undefined as KVCache | undefined };
      });
      const prefill = plans.filter((p) => p.shared > 0);
      for (const p of prefill) p.cache = this.model.createCache(p.longest);
      if (prefill.length) await this.model.forwardBatchAsync(prefill.map((p) => ({ ids: p.inputs[0]!.slice(0, p.shared), cache: p.cache! })));
      const items: Array<{ ids: number[]; cache: KVCache; targets: number[]; pair: number }> = [];
      const lead: Array<{ ids: number[]; cache: KVCache }> = [];
      for (const p of plans) {
        for (const [k, pairIndex] of p.members.entries()) {
          let cache: KVCache;
          if (p.cache) {
            const last = k === p.members.length - 1;
            const clone = (p.cache as { clone?: () => KVCache }).clone;
            if (last) cache = p.cache;
            else if (clone) cache = clone.call(p.cache);
            else {
              cache = this.model.createCache(p.longest);
              await this.model.forwardAsync(p.inputs[k]!.slice(0, p.shared), cache);
            }
          } else cache = this.model.createCache(p.longest);
          // Rows before the first scored position need no logits: they go in a first pass without
          // them (the LM head over the vocabulary costs as much as a fifth of a gemma-2b token).
          const ids = p.inputs[k]!;
          const scoredFrom = p.starts[k]!;
          if (scoredFrom > p.shared) lead.push({ ids: ids.slice(p.shared, scoredFrom), cache });
          // (shared <= scoredFrom by construction: the first row of the item is the first scored one)
          // position j of the item predicts continuation token j: scored where the logits are made
          items.push({ ids: ids.slice(scoredFrom), cache, targets: pairs[pairIndex]!.continuation, pair: pairIndex });
        }
      }
      if (lead.length) await this.model.forwardBatchAsync(lead);
      const results = await this.model.forwardBatchAsync(items);
      items.forEach((it, j) => {
        const { tokenLogProbs, argmax } = results[j]!;
        let ll = 0;
        let greedy = true;
        it.targets.forEach((target, t) => {
          ll += tokenLogProbs![t]!;
          greedy &&= argmax![t] === target;
        });
        out[it.pair] = [ll, greedy];
        it.cache.dispose?.();
      });
      done += items.length;
      progress?.(done);
      await yieldToLoop();
    }
    return out;
  }

  rollingWindows(tokens: number[]): TokenPair[] {
    return rollingWindows(tokens, this.maxLength, this.tokenizer.bosId);
  }

  async loglikelihoodRolling(texts: string[], progress?: Progress): Promise<number[]> {
    const pairs: TokenPair[] = [];
    const owner: number[] = [];
    texts.forEach((t, i) => {
      // The text's tokens without <bos>: <bos> is the first window's context (the harness would
      // also score a leading <bos> against itself for Gemma; that term carries no information).
      for (const w of this.rollingWindows(this.encode(t, false))) {
        pairs.push(w);
        owner.push(i);
      }
    });
    const scored = await this.scorePairs(pairs, pairs.map((_, i) => [i]), progress);
    const sums = new Array<number>(texts.length).fill(0);
    scored.forEach(([ll], i) => {
      sums[owner[i]!]! += ll;
    });
    return sums;
  }

  async generateUntil(requests: GenerationRequest[], progress?: Progress): Promise<string[]> {
    return generateWithScheduler(this.model, this.tokenizer, this.maxLength, this.batchSize, requests, progress);
  }
}

/** HF-style encoding: special-token text parsed, <bos> added unless the text starts with it. */
export function encodeText(tokenizer: Tokenizer, text: string, addBos = true): number[] {
  const bos = tokenizer.idToPiece(tokenizer.bosId);
  const hasBos = bos !== undefined && text.startsWith(bos);
  return tokenizer.encode(text, { addBos: addBos && !hasBos, parseSpecial: true });
}

/** The harness's _encode_pair (and its empty-context rule). */
export function encodePair(tokenizer: Tokenizer, context: string, continuation: string): TokenPair {
  if (context === '') {
    const cont = encodeText(tokenizer, continuation, false);
    const bos = tokenizer.bosId;
    return cont[0] === bos ? { context: cont.slice(0, 1), continuation: cont.slice(1) } : { context: [bos], continuation: cont };
  }
  const trimmed = context.replace(/\s+$/u, '');
  const spaces = context.slice(trimmed.length);
  const ctx = trimmed === '' ? context : trimmed;
  const cont = trimmed === '' ? continuation : spaces + continuation;
  const whole = encodeText(tokenizer, ctx + cont);
  const c = encodeText(tokenizer, ctx);
  return { context: c, continuation: whole.slice(c.length) };
}

/** The harness's rolling windows: disjoint (context, prediction) token windows of at most maxLength. */
export function rollingWindows(tokens: number[], max: number, prefix: number): TokenPair[] {
  const windows: TokenPair[] = [];
  if (tokens.length === 0) return windows;
  const first = Math.min(max, tokens.length);
  windows.push({ context: [prefix], continuation: tokens.slice(0, first) });
  let predicted = first;
  while (predicted < tokens.length) {
    const n = Math.min(tokens.length - predicted, max);
    const end = predicted + n;
    const input = tokens.slice(Math.max(0, end - max - 1), end - 1);
    const pred = tokens.slice(end - n, end);
    windows.push({ context: input.slice(0, input.length - (pred.length - 1)), continuation: pred });
    predicted += n;
  }
  return windows;
}

/** Generations through the continuous-batching scheduler, longest prompts first, cut at `until`. */
export async function generateWithScheduler(model: LanguageModel, tokenizer: Tokenizer, maxLength: number, parallel: number, requests: GenerationRequest[], progress?: Progress): Promise<string[]> {
  const ctx = Math.min(maxLength, model.config.maxPositionEmbeddings);
  const scheduler = new Scheduler(model, tokenizer, { parallel, maxQueue: requests.length + 1, contextSize: ctx, prefixCacheSize: parallel });
  const prompts = requests.map((r) => {
    const ids = encodeText(tokenizer, r.context);
    const keep = Math.max(1, ctx - r.maxGenToks);
    return ids.length > keep ? ids.slice(ids.length - keep) : ids;
  });
  const order = requests.map((_, i) => i).sort((a, b) => prompts[b]!.length - prompts[a]!.length);
  const out = new Array<string>(requests.length);
  let done = 0;
  try {
    await Promise.all(
      order.map(async (i) => {
        const r = requests[i]!;
        const res = await scheduler.submit({
          promptIds: prompts[i]!,
          maxTokens: r.maxGenToks,
          temperature: r.temperature,
          topK: 0,
          topP: r.topP ?? 1,
          ...(r.seed !== undefined ? { seed: r.seed } : {}),
          stop: r.until.filter((u) => u.length > 0),
        });
        out[i] = cutAtStop(res.text, r.until);
        progress?.(++done);
      }),
    );
  } finally {
    scheduler.close();
  }
  return out;
}

/** The text before the first `until` string (the harness's post-processing). */
export function cutAtStop(text: string, until: readonly string[]): string {
  let s = text;
  for (const u of until) if (u.length > 0) s = s.split(u)[0]!;
  return s;
}
