/**
 * POST /v1/completions: OpenAI's legacy text completion, streamed (SSE) or not; prompts as text,
 * token ids, or arrays of either (prompts x n choices), with echo and legacy logprobs.
 */
import type { ServerResponse } from 'node:http';
import type { GenerationChunk } from '../../generate/generate.js';
import { randomSeed } from '../../generate/sampler.js';
import type { SequenceRequest } from '../../generate/scheduler.js';
import type { Tokenizer } from '../../tokenizer/types.js';
import type { RouteContext } from '../context.js';
import { HttpError, finishReasonOf, newId, nowSeconds, tokenInfo, wellFormed } from '../openai.js';
import { abortOnDisconnect, allOrAbort, checkPrompt, maxTokensFor, parseBody, responseFormat, sequenceOptions, submitAll, usageOf } from '../request.js';
import { affinityKey, setAffinity } from '../affinity.js';
import { completionRequestSchema, type CompletionRequest } from '../schemas.js';
import type { ServedModel } from '../served-model.js';
import { chunkHead, finishStream, sse, sseJson, startSse } from '../sse.js';

/** Most choices one request may ask for (prompts x n). */
const MAX_CHOICES = 16;

interface Prompt {
  ids: number[];
  text: string;
}

/** The request's prompt(s) as token ids and text (text prompts need a tokenizer). */
function promptsOf(served: ServedModel, raw: CompletionRequest['prompt']): Prompt[] {
  const { tokenizer } = served;
  const fromIds = (ids: number[]): Prompt => ({ ids, text: tokenizer ? tokenizer.decode(ids) : '' });
  const fromText = (s: string): Prompt => {
    if (!tokenizer) throw new HttpError(400, 'this model has no tokenizer: give the prompt as token ids', { param: 'prompt', code: 'no_tokenizer' });
    const t = wellFormed(s);
    return { ids: tokenizer.encode(t), text: t };
  };
  if (typeof raw === 'string') return [fromText(raw)];
  if (raw.length > 0 && typeof raw[0] === 'number') return [fromIds(raw as number[])];
  if (raw.length > 0 && typeof raw[0] === 'string') return (raw as string[]).map(fromText);
  return (raw as number[][]).map(fromIds);
}

type LogprobEntry = { id: number; logprob: number; topLogprobs?: { id: number; logprob: number }[] };

/** Legacy completions logprobs: tokens, token_logprobs, top_logprobs, text_offset from `offset0`. */
function legacyLogprobs(tokenizer: Tokenizer | undefined, entries: readonly LogprobEntry[], offset0: number) {
  let offset = offset0;
  const tokens: string[] = [];
  const text_offset: number[] = [];
  for (const e of entries) {
    const t = tokenInfo(tokenizer, e.id).token;
    tokens.push(t);
    text_offset.push(offset);
    offset += t.length;
  }
  return {
    tokens,
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries((e.topLogprobs ?? []).map((t) => [tokenInfo(tokenizer, t.id).token, t.logprob]))),
    text_offset,
  };
}

export function registerCompletionRoutes(ctx: RouteContext): void {
  ctx.app.post('/v1/completions', async (req, reply) => {
    const body = parseBody(completionRequestSchema, req.body);
    const served = await ctx.models.resolve(body.model, reply.raw);
    const { tokenizer } = served;
    if (body.suffix) throw new HttpError(400, 'suffix is not supported', { param: 'suffix', code: 'unsupported_value' });
    const nLogprobs = body.logprobs ?? null;
    if (body.echo && nLogprobs !== null && body.stream === true) throw new HttpError(400, 'echo together with logprobs is not supported when streaming', { param: 'echo', code: 'unsupported_value' });
    const prompts = promptsOf(served, body.prompt);
    for (const p of prompts) checkPrompt(served, p.ids, 'prompt');
    setAffinity(reply, affinityKey(req, body.user, () => prompts[0]?.ids ?? [], ctx.affinityTokens));
    const n = body.n ?? 1;
    if (prompts.length * n > MAX_CHOICES) throw new HttpError(400, `at most ${MAX_CHOICES} completions per request (prompts x n = ${prompts.length * n})`, { param: 'n', code: 'invalid_value' });
    const id = newId('cmpl');
    const createdAt = nowSeconds();
    const baseSeed = body.seed ?? randomSeed();
    const controller = new AbortController();
    const stream = body.stream === true;
    let res: ServerResponse | undefined;
    const echo = body.echo === true;
    const format = responseFormat(served, body.response_format);

    const chunkOf = (index: number, text: string, finish: string | null, logprobs: unknown = null) => ({
      id,
      object: 'text_completion',
      created: createdAt,
      model: served.id,
      system_fingerprint: 'gemma-ts',
      choices: [{ index, text, logprobs, finish_reason: finish }],
    });

    const seqs: SequenceRequest[] = [];
    const offsets: number[] = [];
    prompts.forEach((p, pi) => {
      const maxTokens = maxTokensFor(served, body.max_tokens, p.ids.length, 16);
      for (let i = 0; i < n; i++) {
        const index = pi * n + i;
        // = JSON.stringify(chunkOf(index, text, null, lp)) with the fixed part serialized once.
        const head = stream ? `${chunkHead(id, 'text_completion', createdAt, served.id, index)}"text":` : '';
        offsets.push(0);
        seqs.push({
          ...sequenceOptions(served, body, index, baseSeed, format),
          promptIds: p.ids,
          maxTokens,
          logprobs: nLogprobs !== null,
          topLogprobs: nLogprobs ?? 0,
          ...(stream
            ? {
                onChunk: (c: GenerationChunk) => {
                  if (!res) return;
                  const lp = nLogprobs !== null && c.id >= 0 && c.logprob !== undefined ? legacyLogprobs(tokenizer, [{ id: c.id, logprob: c.logprob, topLogprobs: c.topLogprobs }], offsets[index]!) : null;
                  if (c.text === '' && !lp) return;
                  offsets[index] += c.text.length;
                  sseJson(res, `${head}${JSON.stringify(c.text)},"logprobs":${JSON.stringify(lp)},"finish_reason":null}]}`);
                },
              }
            : {}),
        });
      }
    });
    const pending = submitAll(served, seqs, controller, reply.raw);
    abortOnDisconnect(reply.raw, controller);
    const promptTokens = prompts.reduce((a, p) => a + p.ids.length, 0);

    if (stream) {
      res = startSse(ctx, req, reply);
      if (echo) seqs.forEach((_s, index) => sse(res!, chunkOf(index, prompts[Math.floor(index / n)]!.text, null)));
      await finishStream(
        res,
        pending,
        controller,
        (i, reason) => chunkOf(i, '', reason),
        body.stream_options?.include_usage
          ? (results) => ({ id, object: 'text_completion', created: createdAt, model: served.id, choices: [], usage: usageOf(results, promptTokens, results[0]!.usage.cachedTokens) })
          : undefined,
      );
      return reply;
    }

    const results = await allOrAbort(pending, controller);
    // echo + logprobs: the prompt's own token logprobs first (the first token has none), as
    // OpenAI's legacy API and vLLM give them; evaluation harnesses score continuations this way.
    const promptLp = echo && nLogprobs !== null ? await Promise.all(prompts.map((p) => promptLogprobs(served, p.ids, nLogprobs))) : undefined;
    return {
      id,
      object: 'text_completion',
      created: createdAt,
      model: served.id,
      system_fingerprint: 'gemma-ts',
      choices: results.map((r, index) => ({
        index,
        text: (echo ? prompts[Math.floor(index / n)]!.text : '') + r.text,
        logprobs: nLogprobs !== null ? withPrompt(legacyLogprobs(tokenizer, [...(promptLp?.[Math.floor(index / n)] ?? []), ...(r.logprobs ?? [])], 0)) : null,
        finish_reason: finishReasonOf(r.finishReason),
      })),
      usage: usageOf(results, promptTokens, results.reduce((a, r, i) => a + (i % n === 0 ? r.usage.cachedTokens : 0), 0)),
    };
  });
}

/**
 * log p(ids[i] | ids[<i]) for every prompt token after the first, with the top `top` alternatives
 * (through the async forward: every backend, webgpu too). Without alternatives the model scores
 * the prompt's own next tokens (`targets`) and no logits rows come back.
 */
async function promptLogprobs(served: ServedModel, ids: number[], top: number): Promise<LogprobEntry[]> {
  if (ids.length < 2) return ids.map((id) => ({ id, logprob: Number.NaN }));
  const { model } = served;
  const cache = model.createCache(ids.length);
  try {
    if (top === 0) {
      const res = await model.forwardAsync(ids.slice(0, -1), cache, { targets: ids.slice(1) });
      return ids.map((id, i) => ({ id, logprob: i === 0 ? Number.NaN : res.tokenLogProbs![i - 1]! }));
    }
    const res = await model.forwardAsync(ids.slice(0, -1), cache, { allPositions: true });
    const V = res.vocab;
    const out: LogprobEntry[] = [{ id: ids[0]!, logprob: Number.NaN }];
    const lp = new Float64Array(V);
    for (let i = 1; i < ids.length; i++) {
      const row = res.logits.subarray((i - 1) * V, i * V);
      let max = -Infinity;
      for (let v = 0; v < V; v++) if (row[v]! > max) max = row[v]!;
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(row[v]! - max);
      const lse = max + Math.log(sum);
      for (let v = 0; v < V; v++) lp[v] = row[v]! - lse;
      const entry: LogprobEntry = { id: ids[i]!, logprob: lp[ids[i]!]! };
      if (top > 0) {
        // the `top` largest by insertion into a short sorted list (top <= 5)
        const best: number[] = [];
        for (let v = 0; v < V; v++) {
          if (best.length === top && lp[v]! <= lp[best[top - 1]!]!) continue;
          let k = best.length === top ? top - 1 : best.length;
          while (k > 0 && lp[best[k - 1]!]! < lp[v]!) k--;
          best.splice(k, 0, v);
          if (best.length > top) best.pop();
        }
        entry.topLogprobs = best.map((id) => ({ id, logprob: lp[id]! }));
      }
      out.push(entry);
    }
    return out;
  } finally {
    cache.dispose?.();
  }
}

/** The first prompt token has no logprob: null in JSON (NaN marks it). */
function withPrompt<T extends { token_logprobs: number[]; top_logprobs: Array<Record<string, number>> }>(lp: T): T {
  return {
    ...lp,
    token_logprobs: lp.token_logprobs.map((x) => (Number.isNaN(x) ? null : x)) as unknown as number[],
    top_logprobs: lp.top_logprobs.map((t, i) => (Number.isNaN(lp.token_logprobs[i]!) ? null : t)) as unknown as Array<Record<string, number>>,
  };
}
