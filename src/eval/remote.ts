/**
 * `RemoteLM`: the same requests against any OpenAI-compatible server (gemma serve replicas behind
 * a load balancer, vLLM ...), as lm-evaluation-harness's `local-completions` does. Text is
 * tokenized here, with the model's tokenizer, exactly as LocalLM tokenizes it, and sent as token
 * ids; loglikelihoods come from `/v1/completions` with `echo: true`, `logprobs: 1` and
 * `max_tokens: 0` (the prompt's token logprobs; the continuation's are summed, and it is greedy
 * when each continuation token is the server's top-1). Generations use the same endpoint with the
 * task's stop strings. Up to `concurrency` requests are in flight.
 */
import OpenAI from 'openai';
import type { Tokenizer } from '../tokenizer/types.js';
import { GemmaError } from '../errors.js';
import { renderChat } from '../tokenizer/chat.js';
import { cutAtStop, encodePair, encodeText, rollingWindows, type EvalLM, type GenerationRequest, type LoglikelihoodRequest, type Progress, type TokenPair } from './lm.js';
import { continuingChatTemplate } from './task.js';

export interface RemoteLMOptions {
  baseUrl: string;
  /** Model name sent to the server (default: the first of GET /v1/models). */
  model?: string;
  apiKey?: string;
  /** Requests in flight (default 4). */
  concurrency?: number;
  /** Longest sequence sent (default 8192). */
  maxLength?: number;
}

/** Run `f` over `items` with at most `limit` in flight; results in order. */
async function pool<T, R>(items: readonly T[], limit: number, f: (x: T, i: number) => Promise<R>, progress?: Progress): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!, i);
      progress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export class RemoteLM implements EvalLM {
  readonly id: string;
  private readonly client: OpenAI;
  private servedModel: string | undefined;
  private readonly concurrency: number;
  private readonly maxLength: number;
  private readonly local: { encodePair(c: string, x: string): TokenPair; encode(t: string): number[] };

  constructor(
    readonly tokenizer: Tokenizer,
    options: RemoteLMOptions,
  ) {
    this.client = new OpenAI({ baseURL: options.baseUrl.replace(/\/+$/, '').replace(/(\/v1)?$/, '/v1'), apiKey: options.apiKey ?? process.env.OPENAI_API_KEY ?? 'unused', maxRetries: 3 });
    this.servedModel = options.model;
    this.concurrency = options.concurrency ?? 4;
    this.maxLength = options.maxLength ?? 8192;
    this.id = `remote:${options.baseUrl}:${options.model ?? ''}`;
    this.local = { encode: (t) => encodeText(tokenizer, t), encodePair: (c, x) => encodePair(tokenizer, c, x) };
  }

  /** The tokenizer's chat template, for --apply-chat-template. */
  readonly chatTemplate = continuingChatTemplate((messages, addGenerationPrompt) => renderChat(this.tokenizer, messages, { addGenerationPrompt }));

  private async modelName(): Promise<string> {
    if (this.servedModel) return this.servedModel;
    try {
      const list = await this.client.models.list();
      this.servedModel = list.data[0]?.id;
    } catch (e) {
      throw new GemmaError('NETWORK_ERROR', `cannot list models at the server: ${(e as Error).message}`);
    }
    if (!this.servedModel) throw new GemmaError('NETWORK_ERROR', 'the server lists no model; pass the model name');
    return this.servedModel;
  }

  /** Sum of the last `n` prompt-token logprobs of `ids`, and whether each was the top-1. */
  private async scoreIds(ids: number[], n: number): Promise<[number, boolean]> {
    const model = await this.modelName();
    let res;
    try {
      res = await this.client.completions.create({ model, prompt: ids, echo: true, logprobs: 1, max_tokens: 0, temperature: 0 });
    } catch (e) {
      throw new GemmaError('NETWORK_ERROR', `completion request failed: ${(e as Error).message}`);
    }
    const lp = res.choices[0]?.logprobs;
    if (!lp?.token_logprobs || lp.token_logprobs.length < ids.length) throw new GemmaError('NETWORK_ERROR', 'the server did not return prompt logprobs (it needs echo + logprobs support)');
    let ll = 0;
    let greedy = true;
    const from = ids.length - n;
    for (let i = from; i < ids.length; i++) {
      const x = lp.token_logprobs[i];
      if (typeof x !== 'number') throw new GemmaError('NETWORK_ERROR', `no logprob for prompt token ${i}`);
      ll += x;
      const top = lp.top_logprobs?.[i];
      const best = top ? Math.max(...Object.values(top)) : x;
      greedy &&= x >= best;
    }
    return [ll, greedy];
  }

  private fit(p: TokenPair): number[] {
    const ids = [...p.context, ...p.continuation];
    return ids.length > this.maxLength + 1 ? ids.slice(ids.length - this.maxLength - 1) : ids;
  }

  async loglikelihood(requests: LoglikelihoodRequest[], progress?: Progress): Promise<Array<[number, boolean]>> {
    return pool(
      requests,
      this.concurrency,
      (r) => {
        const p = this.local.encodePair(r.context, r.continuation);
        return this.scoreIds(this.fit(p), p.continuation.length);
      },
      progress,
    );
  }

  async loglikelihoodRolling(texts: string[], progress?: Progress): Promise<number[]> {
    const jobs: Array<{ owner: number; pair: TokenPair }> = [];
    texts.forEach((t, owner) => {
      const toks = encodeText(this.tokenizer, t, false);
      for (const pair of rollingWindows(toks, this.maxLength, this.tokenizer.bosId)) jobs.push({ owner, pair });
    });
    const scored = await pool(jobs, this.concurrency, (j) => this.scoreIds([...j.pair.context, ...j.pair.continuation], j.pair.continuation.length), progress);
    const sums = new Array<number>(texts.length).fill(0);
    scored.forEach(([ll], i) => (sums[jobs[i]!.owner]! += ll));
    return sums;
  }

  async generateUntil(requests: GenerationRequest[], progress?: Progress): Promise<string[]> {
    const model = await this.modelName();
    return pool(
      requests,
      this.concurrency,
      async (r) => {
        const ids = this.local.encode(r.context);
        const res = await this.client.completions.create({
          model,
          prompt: ids,
          max_tokens: r.maxGenToks,
          temperature: r.temperature,
          ...(r.topP !== undefined ? { top_p: r.topP } : {}),
          ...(r.seed !== undefined ? { seed: r.seed } : {}),
          ...(r.until.length ? { stop: r.until.slice(0, 4) } : {}),
        });
        return cutAtStop(res.choices[0]?.text ?? '', r.until);
      },
      progress,
    );
  }
}
