/**
 * What every generating route does with a request: validate the body, check the prompt against
 * the model, turn OpenAI's sampling fields into the scheduler's, submit the sequences and cancel
 * them when the client goes away, and count usage.
 */
import type { ServerResponse } from 'node:http';
import type { z } from 'zod';
import { compileResponseFormat, type ResponseFormat } from '../generate/constraint/index.js';
import { QueueFullError, type SequenceRequest, type SequenceResult } from '../generate/scheduler.js';
import { requestLora } from './lora.js';
import { HttpError, wellFormed } from './openai.js';
import { responseFormatOf, unsupportedField, describeZodError, type ChatRequest } from './schemas.js';
import type { ServedModel } from './served-model.js';
import { setChoiceAborter } from './stream-control.js';
import { toolResponseFormat, type ToolConfig } from './tools.js';

/** The body checked against a schema: unsupported fields and invalid values are 400s naming the field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown, allowed?: ReadonlySet<string>): T {
  if (body === undefined) throw new HttpError(400, 'expected a JSON body (Content-Type: application/json)', { code: 'invalid_json' });
  const unsupported = unsupportedField(body, allowed);
  if (unsupported) throw new HttpError(400, `${unsupported.field}: ${unsupported.why} by this server`, { param: unsupported.field, code: 'unsupported_parameter' });
  const r = schema.safeParse(body);
  if (!r.success) {
    const d = describeZodError(r.error);
    throw new HttpError(400, d.message, { param: d.param, code: 'invalid_value' });
  }
  return r.data;
}

/** A prompt must leave room for one answer token and name only ids of the vocabulary. */
export function checkPrompt(served: ServedModel, ids: readonly number[], what: string): void {
  const contextSize = served.scheduler.contextSize;
  if (ids.length >= contextSize) {
    throw new HttpError(
      400,
      `This model's maximum context length is ${contextSize} tokens, but your ${what} has ${ids.length} tokens (at least one token must be left for the answer). Shorten the ${what}.`,
      { param: what === 'prompt' ? 'prompt' : 'messages', code: 'context_length_exceeded' },
    );
  }
  const limit = served.model.vocabSize;
  for (const id of ids) {
    if (id >= limit) throw new HttpError(400, `token id ${id} is out of range (the model has ${limit} tokens)`, { param: 'prompt', code: 'invalid_value' });
  }
}

/** The request's response_format, checked and compiled (400 naming the problem, param "response_format"). */
export function responseFormat(served: ServedModel, raw: unknown): ResponseFormat | undefined {
  try {
    const rf = responseFormatOf(raw);
    compileResponseFormat(rf); // cached: the sequences reuse this grammar
    if (rf && !served.tokenizer) throw new Error('structured output needs a tokenizer; this model has none');
    return rf;
  } catch (e) {
    throw new HttpError(400, (e as Error).message, { param: 'response_format', code: 'invalid_value' });
  }
}

/** The constraint of a tool answer (tools.ts), compiled now (cached for the sequences). */
export function toolFormat(config: ToolConfig): ResponseFormat {
  const rf = toolResponseFormat(config);
  try {
    compileResponseFormat(rf);
  } catch (e) {
    throw new HttpError(400, `tools: ${(e as Error).message}`, { param: 'tools', code: 'invalid_value' });
  }
  return rf;
}

export type Sampling = Pick<ChatRequest, 'temperature' | 'top_p' | 'top_k' | 'min_p' | 'repetition_penalty' | 'presence_penalty' | 'frequency_penalty' | 'seed' | 'stop' | 'ignore_eos' | 'logit_bias' | 'lora'>;

/** OpenAI's sampling fields as the scheduler's options for choice `index`. */
export function sequenceOptions(served: ServedModel, r: Sampling, index: number, baseSeed: number, format: ResponseFormat | undefined): Omit<SequenceRequest, 'promptIds' | 'maxTokens'> {
  const stop = r.stop === null || r.stop === undefined ? [] : typeof r.stop === 'string' ? [r.stop] : r.stop;
  const lora = requestLora(served.model, r.lora, served.id);
  let temperature = r.temperature ?? 1;
  if (r.top_p === 0) temperature = 0; // top_p 0 keeps only the most likely token
  return {
    temperature,
    topP: r.top_p ? r.top_p : 1,
    topK: r.top_k ?? 0,
    minP: r.min_p ?? 0,
    repetitionPenalty: r.repetition_penalty ?? 1,
    presencePenalty: r.presence_penalty ?? 0,
    frequencyPenalty: r.frequency_penalty ?? 0,
    seed: baseSeed + index,
    stop: stop.map(wellFormed),
    ignoreEos: r.ignore_eos ?? false,
    ...(r.logit_bias ? { logitBias: biasMap(served, r.logit_bias) } : {}),
    ...(format ? { responseFormat: format } : {}),
    ...(lora ? { lora } : {}),
  };
}

/** OpenAI's logit_bias ({"token id": bias}) as the sampler's map; ids must be in the vocabulary. */
function biasMap(served: ServedModel, b: Record<string, number>): Map<number, number> {
  const limit = served.model.vocabSize;
  const m = new Map<number, number>();
  for (const [k, v] of Object.entries(b)) {
    const id = Number(k);
    if (id >= limit) throw new HttpError(400, `logit_bias: token id ${id} is out of range (the model has ${limit} tokens)`, { param: 'logit_bias', code: 'invalid_value' });
    m.set(id, v);
  }
  return m;
}

/** The answer's token budget: what the client asked (or the route's default), within the context. */
export function maxTokensFor(served: ServedModel, asked: number | null | undefined, promptLength: number, fallback: number): number {
  const room = served.scheduler.contextSize - promptLength;
  return Math.min(asked ?? fallback, room);
}

/**
 * Submit every sequence of a request at once; on a full queue none of them stays queued. Each
 * sequence has its own signal, aborted with the request's controller or alone through the
 * response's choice aborter (stream-control.ts: a guard that blocks one choice stops it).
 */
export function submitAll(served: ServedModel, reqs: SequenceRequest[], controller: AbortController, res: ServerResponse): Array<Promise<SequenceResult>> {
  const out: Array<Promise<SequenceResult>> = [];
  const choices = reqs.map(() => new AbortController());
  const abortAll = () => choices.forEach((c) => c.abort());
  if (controller.signal.aborted) abortAll();
  else controller.signal.addEventListener('abort', abortAll, { once: true });
  setChoiceAborter(res, (index) => choices[index]?.abort());
  try {
    for (let i = 0; i < reqs.length; i++) out.push(served.scheduler.submit({ ...reqs[i]!, signal: choices[i]!.signal }));
  } catch (e) {
    controller.abort();
    for (const p of out) p.catch(() => undefined);
    if (e instanceof QueueFullError) throw new HttpError(429, e.message, { code: 'rate_limit_exceeded' });
    throw e;
  }
  return out;
}

/** Abort the request's sequences when the client goes away before the answer is complete. */
export function abortOnDisconnect(res: ServerResponse, controller: AbortController): void {
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  if (res.destroyed) controller.abort(); // gone before we started listening
}

/** Every choice's result; on a failure the other choices are cancelled. */
export async function allOrAbort(pending: Promise<SequenceResult>[], controller: AbortController): Promise<SequenceResult[]> {
  try {
    return await Promise.all(pending);
  } catch (e) {
    controller.abort();
    throw e;
  }
}

export function usageOf(results: readonly SequenceResult[], promptTokens: number, cached: number) {
  const completion = results.reduce((a, r) => a + r.usage.completionTokens, 0);
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
    prompt_tokens_details: { cached_tokens: cached },
  };
}
