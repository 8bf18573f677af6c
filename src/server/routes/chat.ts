/**
 * POST /v1/chat/completions: OpenAI's chat completion, streamed (SSE) or not, with n choices,
 * logprobs, structured output (response_format) and tools.
 */
import type { ServerResponse } from 'node:http';
import type { GenerationChunk } from '../../generate/generate.js';
import { randomSeed } from '../../generate/sampler.js';
import type { SequenceRequest, SequenceResult } from '../../generate/scheduler.js';
import type { ChatMessage } from '../../tokenizer/types.js';
import type { RouteContext } from '../context.js';
import { HttpError, chatLogprobEntry, finishReasonOf, newId, nowSeconds, type ChatLogprobContent } from '../openai.js';
import { abortOnDisconnect, allOrAbort, checkPrompt, maxTokensFor, parseBody, responseFormat, sequenceOptions, submitAll, toolFormat, usageOf } from '../request.js';
import { affinityKey, setAffinity } from '../affinity.js';
import { chatRequestSchema, responseFormatOf } from '../schemas.js';
import { chunkHead, finishStream, sse, sseJson, startSse } from '../sse.js';
import { chatMessagesOf, parseToolAnswer, toolConfigOf, type ToolAnswer } from '../tools.js';

/**
 * The exact token ids of a finished non-streamed chat completion (prompt and each choice), for
 * route extensions that look inside the model (the SAE `sae` field) without re-tokenizing text.
 */
export const completionIds = new WeakMap<object, { prompt: number[]; completions: number[][] }>();

/** Fields of UNSUPPORTED_FIELDS that the chat endpoint supports (tools.ts). */
const CHAT_FIELDS: ReadonlySet<string> = new Set(['tools', 'tool_choice']);

export function registerChatRoutes(ctx: RouteContext): void {
  ctx.app.post('/v1/chat/completions', async (req, reply) => {
    const body = parseBody(chatRequestSchema, req.body, CHAT_FIELDS);
    const served = await ctx.models.resolve(body.model, reply.raw);
    const { tokenizer } = served;
    if (!tokenizer) throw new HttpError(400, 'this model has no tokenizer: use /v1/completions with token ids', { code: 'no_tokenizer' });
    const tools = toolConfigOf(body.tools, body.tool_choice, body.parallel_tool_calls);
    if (tools && responseFormatOf(body.response_format) !== undefined) {
      throw new HttpError(400, 'response_format cannot be combined with tools (unless tool_choice is "none"): the tool answer is already constrained', { param: 'response_format', code: 'invalid_value' });
    }
    const messages: ChatMessage[] = chatMessagesOf(body.messages, tools);
    if (!messages.some((m) => m.role === 'user')) throw new HttpError(400, 'messages must contain at least one user message', { param: 'messages', code: 'invalid_value' });
    let ids: number[];
    try {
      ids = served.renderChat(messages);
    } catch (e) {
      throw new HttpError(400, `cannot render the conversation: ${(e as Error).message}`, { param: 'messages' });
    }
    checkPrompt(served, ids, 'messages');
    // The conversation's start (up to the first user turn) begins every later turn's prompt.
    const firstUser = messages.findIndex((m) => m.role === 'user');
    setAffinity(reply, affinityKey(req, body.user, () => (firstUser === messages.length - 1 ? ids : served.renderChat(messages.slice(0, firstUser + 1))), ctx.affinityTokens));
    const maxTokens = maxTokensFor(served, body.max_completion_tokens ?? body.max_tokens, ids.length, Infinity);
    const n = body.n ?? 1;
    const nTop = body.top_logprobs ?? 0;
    if (nTop > 0 && !body.logprobs) throw new HttpError(400, 'top_logprobs requires logprobs: true', { param: 'top_logprobs', code: 'invalid_value' });
    const wantLogprobs = body.logprobs === true;
    const id = newId('chatcmpl');
    const createdAt = nowSeconds();
    const baseSeed = body.seed ?? randomSeed();
    const controller = new AbortController();
    const stream = body.stream === true;
    const format = tools ? toolFormat(tools) : responseFormat(served, body.response_format);
    let res: ServerResponse | undefined;
    // A complete tool answer, parsed once per choice (its call ids are drawn then).
    const answers = new Map<SequenceResult, ToolAnswer | undefined>();
    const answerOf = (r: SequenceResult): ToolAnswer | undefined => {
      if (!tools || r.finishReason === 'length') return undefined;
      if (!answers.has(r)) answers.set(r, parseToolAnswer(r.text));
      return answers.get(r);
    };

    const chunkOf = (index: number, delta: Record<string, unknown>, finish: string | null, logprobs: { content: ChatLogprobContent[] } | null = null) => ({
      id,
      object: 'chat.completion.chunk',
      created: createdAt,
      model: served.id,
      system_fingerprint: 'gemma-ts',
      choices: [{ index, delta, logprobs, finish_reason: finish }],
    });

    const seqs: SequenceRequest[] = [];
    for (let i = 0; i < n; i++) {
      // = JSON.stringify(chunkOf(i, { content }, null, lp)) with the fixed part serialized once.
      const head = stream ? `${chunkHead(id, 'chat.completion.chunk', createdAt, served.id, i)}"delta":{"content":` : '';
      seqs.push({
        ...sequenceOptions(served, body, i, baseSeed, format),
        promptIds: ids,
        maxTokens,
        logprobs: wantLogprobs,
        topLogprobs: nTop,
        // A tool answer is buffered until it is complete (toolChunks).
        ...(stream && !tools
          ? {
              onChunk: (c: GenerationChunk) => {
                if (!res) return;
                if (c.text === '' && c.id < 0) return;
                const lp = wantLogprobs && c.id >= 0 && c.logprob !== undefined ? { content: [chatLogprobEntry(tokenizer, c.id, c.logprob, c.topLogprobs)] } : null;
                if (c.text === '' && !lp) return;
                sseJson(res, `${head}${JSON.stringify(c.text)}},"logprobs":${JSON.stringify(lp)},"finish_reason":null}]}`);
              },
            }
          : {}),
      });
    }
    const pending = submitAll(served, seqs, controller, reply.raw);
    abortOnDisconnect(reply.raw, controller);

    const logprobsOf = (r: SequenceResult) => (wantLogprobs ? { content: (r.logprobs ?? []).map((l) => chatLogprobEntry(tokenizer, l.id, l.logprob, l.topLogprobs)), refusal: null } : null);

    /**
     * A buffered tool answer as stream chunks: per call one chunk with index, id, type, name and
     * empty arguments, then one with the arguments string (OpenAI's delta shape); a plain answer
     * (or text cut by max_tokens / a stop string) as one content chunk. Logprobs ride on the first.
     */
    const toolChunks = (i: number, r: SequenceResult): unknown[] => {
      if (!tools) return [];
      const answer = answerOf(r);
      const lp = logprobsOf(r);
      const lpOut = lp ? { content: lp.content } : null;
      if (answer?.kind === 'calls') {
        const out: unknown[] = [];
        answer.calls.forEach((c, k) => {
          out.push(chunkOf(i, { tool_calls: [{ index: k, id: c.id, type: 'function', function: { name: c.function.name, arguments: '' } }] }, null, k === 0 ? lpOut : null));
          out.push(chunkOf(i, { tool_calls: [{ index: k, function: { arguments: c.function.arguments } }] }, null));
        });
        return out;
      }
      const text = answer?.kind === 'response' ? answer.text : r.text;
      return text === '' && !lpOut ? [] : [chunkOf(i, { content: text }, null, lpOut)];
    };
    const finishOf = (r: SequenceResult): string => (answerOf(r)?.kind === 'calls' ? 'tool_calls' : finishReasonOf(r.finishReason));

    if (stream) {
      res = startSse(ctx, req, reply);
      for (let i = 0; i < n; i++) sse(res, chunkOf(i, { role: 'assistant', content: '' }, null));
      await finishStream(
        res,
        pending,
        controller,
        (i, _reason, r) => chunkOf(i, {}, finishOf(r)),
        body.stream_options?.include_usage
          ? (results) => ({ id, object: 'chat.completion.chunk', created: createdAt, model: served.id, system_fingerprint: 'gemma-ts', choices: [], usage: usageOf(results, ids.length, results[0]!.usage.cachedTokens) })
          : undefined,
        tools ? toolChunks : undefined,
      );
      return reply;
    }

    const results = await allOrAbort(pending, controller);
    completionIds.set(req, { prompt: ids, completions: results.map((r) => r.ids) });
    return {
      id,
      object: 'chat.completion',
      created: createdAt,
      model: served.id,
      system_fingerprint: 'gemma-ts',
      choices: results.map((r, index) => {
        const answer = answerOf(r);
        return {
          index,
          message:
            answer?.kind === 'calls'
              ? { role: 'assistant', content: null, tool_calls: answer.calls, refusal: null }
              : { role: 'assistant', content: answer?.kind === 'response' ? answer.text : r.text, refusal: null },
          logprobs: logprobsOf(r),
          finish_reason: finishOf(r),
        };
      }),
      usage: usageOf(results, ids.length, results[0]!.usage.cachedTokens),
    };
  });
}
