/**
 * `gemma serve`: an OpenAI-compatible HTTP server over the continuous-batching scheduler.
 *
 *   POST /v1/chat/completions   chat (stream and non-stream)
 *   POST /v1/completions        text completion (stream and non-stream)
 *   GET  /v1/models             the served model
 *   GET  /health                liveness (no auth)
 *   GET  /metrics               Prometheus text
 *   GET  /                      the chat page (static files, no auth)
 *
 * Every error is answered in OpenAI's shape `{ error: { message, type, param, code } }`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { GemmaError } from '../errors.js';
import { defaultChatRenderer, gemmaTurnRenderer, type ChatRenderer } from '../generate/chat-session.js';
import type { GenerationChunk } from '../generate/generate.js';
import { randomSeed } from '../generate/sampler.js';
import { QueueFullError, Scheduler, type SchedulerOptions, type SequenceRequest, type SequenceResult } from '../generate/scheduler.js';
import type { LanguageModel } from '../model/types.js';
import type { ChatMessage, Tokenizer } from '../tokenizer/types.js';
import { packageRoot } from '../util/package-root.js';
import { RequestCounter, renderMetrics } from './metrics.js';
import {
  HttpError,
  chatLogprobEntry,
  defaultType,
  finishReasonOf,
  newId,
  nowSeconds,
  tokenInfo,
  wellFormed,
  type ChatLogprobContent,
  type OpenAIErrorBody,
} from './openai.js';
import { compileResponseFormat, type ResponseFormat } from '../generate/constraint/index.js';
import { prebuildTokenTable, type TablePrebuild } from '../generate/constraint/vocab.js';
import { chatRequestSchema, completionRequestSchema, describeZodError, responseFormatOf, unsupportedField, type ChatRequest } from './schemas.js';
import { chatMessagesOf, parseToolAnswer, toolConfigOf, toolResponseFormat, type ToolAnswer, type ToolConfig } from './tools.js';
import { setChoiceAborter } from './stream-control.js';

export interface ServerOptions extends SchedulerOptions {
  model: LanguageModel;
  tokenizer: Tokenizer | undefined;
  /** The id clients use in `model` (default "gemma"). */
  modelId?: string;
  /** Require `Authorization: Bearer <apiKey>` on /v1/* and /metrics. */
  apiKey?: string;
  /** Send CORS headers: true = any origin, a string = that origin. Off by default. */
  cors?: boolean | string;
  /** Largest request body in bytes (default 2 MiB). */
  bodyLimit?: number;
  /** Fastify's request log (default off). */
  logger?: boolean;
  /** Render chat messages to ids (default: the Gemma turn format from token ids). */
  render?: ChatRenderer;
  /**
   * Extend the app before the built-in routes are added: hooks (e.g. registerGuardHooks from
   * src/safety/server-routes.ts) and extra routes (registerModerationRoute). Runs after the
   * body parser, auth and CORS hooks, so added routes are protected by --api-key under /v1/.
   */
  configure?: (app: FastifyInstance) => void | Promise<void>;
  /**
   * Build the constraint's token table (response_format, tools) in a worker once listening, so
   * that the first constrained request does not pay for it (default true).
   */
  prebuildConstraint?: boolean;
}

export interface GemmaServer {
  app: FastifyInstance;
  scheduler: Scheduler;
  modelId: string;
  /** Listen; resolves to the base URL (http://host:port). */
  listen(options?: { port?: number; host?: string }): Promise<string>;
  close(): Promise<void>;
}

/** Where the chat page's static files live (works from src/ and dist/). */
export function publicDir(): string {
  return path.join(packageRoot(), 'src', 'server', 'public');
}

const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Routes that stay open when --api-key is set: the chat page (it asks for the key) and /health. */
/**
 * The exact token ids of a finished non-streamed chat completion (prompt and each choice), for
 * route extensions that look inside the model (the SAE `sae` field) without re-tokenizing text.
 */
export const completionIds = new WeakMap<object, { prompt: number[]; completions: number[][] }>();

/** Fields of UNSUPPORTED_FIELDS that the chat endpoint supports (tools.ts). */
const CHAT_FIELDS: ReadonlySet<string> = new Set(['tools', 'tool_choice']);

const PUBLIC_ROUTES = new Set(['/', '/index.html', '/app.js', '/style.css', '/health', '/sae']);

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time check of an Authorization header against the key (hashes have equal length). */
export function checkBearer(header: string | undefined, key: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  const given = m ? m[1]!.trim() : '';
  const ok = timingSafeEqual(sha256(given), sha256(key));
  return ok && m !== null;
}

export async function createServer(options: ServerOptions): Promise<GemmaServer> {
  const { model, tokenizer } = options;
  const modelId = options.modelId ?? 'gemma';
  const scheduler = new Scheduler(model, tokenizer, options);
  const requests = new RequestCounter();
  const started = Date.now();
  const created = nowSeconds();
  let renderer: ChatRenderer | undefined = options.render;
  const apiKey = options.apiKey;
  if (apiKey !== undefined && apiKey.length === 0) throw new HttpError(500, 'the API key must not be empty');
  const corsOrigin = options.cors === true ? '*' : typeof options.cors === 'string' ? options.cors : undefined;

  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.bodyLimit ?? 2 * 1024 * 1024, return503OnClosing: true });

  // JSON bodies: strict UTF-8, then JSON.parse.
  app.removeAllContentTypeParsers(); // only JSON bodies: anything else is a 415
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body as Buffer);
    } catch {
      done(new HttpError(400, 'the request body is not valid UTF-8', { code: 'invalid_utf8' }), undefined);
      return;
    }
    if (text.trim() === '') {
      done(new HttpError(400, 'the request body is empty; expected a JSON object', { code: 'invalid_json' }), undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (e) {
      done(new HttpError(400, `the request body is not valid JSON: ${(e as Error).message}`, { code: 'invalid_json' }), undefined);
    }
  });

  const corsHeaders = (): Record<string, string> =>
    corsOrigin ? { 'access-control-allow-origin': corsOrigin, vary: 'Origin' } : {};

  app.addHook('onRequest', async (req, reply) => {
    if (corsOrigin) {
      reply.headers(corsHeaders());
      if (req.method === 'OPTIONS') {
        reply
          .code(204)
          .headers({
            'access-control-allow-methods': 'GET, POST, OPTIONS',
            'access-control-allow-headers': 'authorization, content-type',
            'access-control-max-age': '600',
          })
          .send();
        return reply;
      }
    }
    // With a key, everything but the page and /health needs it (unknown paths too: 401 before 404).
    const route = req.routeOptions.url;
    if (apiKey !== undefined && (route === undefined || !PUBLIC_ROUTES.has(route))) {
      if (!checkBearer(req.headers.authorization, apiKey)) {
        throw new HttpError(401, 'invalid or missing API key: send "Authorization: Bearer <key>"', { code: 'invalid_api_key' });
      }
    }
    return undefined;
  });

  app.addHook('onResponse', async (req, reply) => {
    requests.add(req.routeOptions.url ?? 'unmatched', reply.statusCode);
  });

  app.setErrorHandler((error: unknown, _req, reply) => {
    const body = toErrorBody(error);
    reply.code(body.status).send(body.body);
  });

  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(new HttpError(404, `no route ${req.method} ${req.url.split('?')[0]}`, { code: 'not_found' }).body());
  });

  if (options.configure) await options.configure(app);

  // ------------------------------------------------------------ static page

  const dir = publicDir();
  const serveStatic = (file: string) => async (_req: FastifyRequest, reply: FastifyReply) => {
    const p = path.join(dir, file);
    let data: Buffer;
    try {
      data = await fs.promises.readFile(p);
    } catch {
      throw new HttpError(404, `the chat page is not installed (${p} missing)`, { code: 'not_found' });
    }
    reply.type(STATIC_TYPES[path.extname(file)] ?? 'application/octet-stream').header('cache-control', 'no-cache').send(data);
  };
  app.get('/', serveStatic('index.html'));
  app.get('/index.html', serveStatic('index.html'));
  app.get('/app.js', serveStatic('app.js'));
  app.get('/style.css', serveStatic('style.css'));

  // ------------------------------------------------------------ info endpoints

  app.get('/health', async () => {
    const s = scheduler.stats();
    return { status: 'ok', model: modelId, slots_idle: Math.max(0, scheduler.parallel - s.active), slots_processing: s.active, queue: s.queued };
  });

  const modelObject = () => ({ id: modelId, object: 'model', created, owned_by: 'gemma-ts', meta: { n_ctx: scheduler.contextSize, n_vocab: model.vocabSize } });
  app.get('/v1/models', async () => ({ object: 'list', data: [modelObject()] }));
  app.get('/v1/models/:id', async (req) => {
    const id = (req.params as { id: string }).id;
    if (id !== modelId) throw new HttpError(404, `The model '${id}' does not exist`, { param: 'model', code: 'model_not_found' });
    return modelObject();
  });

  app.get('/metrics', async (_req, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return renderMetrics(requests, scheduler.stats(), { parallel: scheduler.parallel, contextSize: scheduler.contextSize, uptimeSeconds: (Date.now() - started) / 1000 });
  });

  // ------------------------------------------------------------ shared request plumbing

  function parse<T>(schema: z.ZodType<T>, body: unknown, allowed?: ReadonlySet<string>): T {
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

  function checkModel(name: string): void {
    if (name !== modelId) throw new HttpError(404, `The model '${name}' does not exist (this server serves '${modelId}')`, { param: 'model', code: 'model_not_found' });
  }

  function checkPrompt(ids: readonly number[], what: string): void {
    if (ids.length >= scheduler.contextSize) {
      throw new HttpError(
        400,
        `This model's maximum context length is ${scheduler.contextSize} tokens, but your ${what} has ${ids.length} tokens (at least one token must be left for the answer). Shorten the ${what}.`,
        { param: what === 'prompt' ? 'prompt' : 'messages', code: 'context_length_exceeded' },
      );
    }
    const limit = model.vocabSize;
    for (const id of ids) {
      if (id >= limit) throw new HttpError(400, `token id ${id} is out of range (the model has ${limit} tokens)`, { param: 'prompt', code: 'invalid_value' });
    }
  }

  /** The request's response_format, checked and compiled (400 naming the problem, param "response_format"). */
  function responseFormat(raw: unknown): ResponseFormat | undefined {
    try {
      const rf = responseFormatOf(raw);
      compileResponseFormat(rf); // cached: the sequences reuse this grammar
      if (rf && !tokenizer) throw new Error('structured output needs a tokenizer; this model has none');
      return rf;
    } catch (e) {
      throw new HttpError(400, (e as Error).message, { param: 'response_format', code: 'invalid_value' });
    }
  }

  /** The constraint of a tool answer (tools.ts), compiled now (cached for the sequences). */
  function toolFormat(config: ToolConfig): ResponseFormat {
    const rf = toolResponseFormat(config);
    try {
      compileResponseFormat(rf);
    } catch (e) {
      throw new HttpError(400, `tools: ${(e as Error).message}`, { param: 'tools', code: 'invalid_value' });
    }
    return rf;
  }

  type Sampling = Pick<ChatRequest, 'temperature' | 'top_p' | 'top_k' | 'min_p' | 'repetition_penalty' | 'presence_penalty' | 'frequency_penalty' | 'seed' | 'stop' | 'ignore_eos' | 'logit_bias'>;
  function sequenceOptions(r: Sampling, index: number, baseSeed: number, format: ResponseFormat | undefined): Omit<SequenceRequest, 'promptIds' | 'maxTokens'> {
    const stop = r.stop === null || r.stop === undefined ? [] : typeof r.stop === 'string' ? [r.stop] : r.stop;
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
      ...(r.logit_bias ? { logitBias: biasMap(r.logit_bias) } : {}),
      ...(format ? { responseFormat: format } : {}),
    };
  }

  /** OpenAI's logit_bias ({"token id": bias}) as the sampler's map; ids must be in the vocabulary. */
  function biasMap(b: Record<string, number>): Map<number, number> {
    const limit = model.vocabSize;
    const m = new Map<number, number>();
    for (const [k, v] of Object.entries(b)) {
      const id = Number(k);
      if (id >= limit) throw new HttpError(400, `logit_bias: token id ${id} is out of range (the model has ${limit} tokens)`, { param: 'logit_bias', code: 'invalid_value' });
      m.set(id, v);
    }
    return m;
  }

  /**
   * Submit every sequence of a request at once; on a full queue none of them stays queued. Each
   * sequence has its own signal, aborted with the request's controller or alone through the
   * response's choice aborter (stream-control.ts: a guard that blocks one choice stops it).
   */
  function submitAll(reqs: SequenceRequest[], controller: AbortController, res: ServerResponse): Array<Promise<SequenceResult>> {
    const out: Array<Promise<SequenceResult>> = [];
    const choices = reqs.map(() => new AbortController());
    const abortAll = () => choices.forEach((c) => c.abort());
    if (controller.signal.aborted) abortAll();
    else controller.signal.addEventListener('abort', abortAll, { once: true });
    setChoiceAborter(res, (index) => choices[index]?.abort());
    try {
      for (let i = 0; i < reqs.length; i++) out.push(scheduler.submit({ ...reqs[i]!, signal: choices[i]!.signal }));
    } catch (e) {
      controller.abort();
      for (const p of out) p.catch(() => undefined);
      if (e instanceof QueueFullError) throw new HttpError(429, e.message, { code: 'rate_limit_exceeded' });
      throw e;
    }
    return out;
  }

  /** Abort the request's sequences when the client goes away before the answer is complete. */
  function abortOnDisconnect(res: ServerResponse, controller: AbortController): void {
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    if (res.destroyed) controller.abort(); // gone before we started listening
  }

  function startSse(req: FastifyRequest, reply: FastifyReply): ServerResponse {
    // Headers set by hooks (CORS, extensions) go out with the stream too.
    const hookHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(reply.getHeaders())) if (typeof v === 'string' || typeof v === 'number') hookHeaders[k] = String(v);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...hookHeaders,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...corsHeaders(),
    });
    requests.add(req.routeOptions.url ?? 'unmatched', 200);
    return res;
  }

  function sse(res: ServerResponse, data: unknown): void {
    if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** An already serialized event (the per-token chunks, built from a fixed prefix). */
  function sseJson(res: ServerResponse, json: string): void {
    if (!res.writableEnded && !res.destroyed) res.write(`data: ${json}\n\n`);
  }

  /**
   * The serialized start of a chunk, up to and including the choice's `"index":i,`: the chunk
   * objects' fixed fields in their JSON.stringify order, so each token only serializes its own text.
   */
  function chunkHead(id: string, object: string, createdAt: number, index: number): string {
    return `{"id":${JSON.stringify(id)},"object":${JSON.stringify(object)},"created":${JSON.stringify(createdAt)},"model":${JSON.stringify(modelId)},"system_fingerprint":"gemma-ts","choices":[{"index":${JSON.stringify(index)},`;
  }

  function endSse(res: ServerResponse): void {
    if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
  }

  /** After the headers of a stream went out, an error can only be reported in the stream. */
  function sseError(res: ServerResponse, e: unknown): void {
    sse(res, toErrorBody(e).body);
    endSse(res);
  }

  /**
   * The end of a streamed answer: each choice's finish chunk as its sequence ends (none for an
   * aborted one), then the optional usage chunk and [DONE]; a failure is reported in the stream.
   */
  async function finishStream(
    res: ServerResponse,
    pending: Promise<SequenceResult>[],
    controller: AbortController,
    finishChunk: (index: number, reason: ReturnType<typeof finishReasonOf>, result: SequenceResult) => unknown,
    usageChunk: ((results: SequenceResult[]) => unknown) | undefined,
    /** Chunks sent before a choice's finish chunk (a buffered tool answer). */
    lastChunks?: (index: number, result: SequenceResult) => unknown[],
  ): Promise<void> {
    try {
      const results = await Promise.all(
        pending.map((p, i) =>
          p.then((r) => {
            if (r.finishReason !== 'abort') {
              for (const c of lastChunks?.(i, r) ?? []) sse(res, c);
              sse(res, finishChunk(i, finishReasonOf(r.finishReason), r));
            }
            return r;
          }),
        ),
      );
      if (usageChunk) sse(res, usageChunk(results));
      endSse(res);
    } catch (e) {
      controller.abort();
      sseError(res, e);
    }
  }

  /** Every choice's result; on a failure the other choices are cancelled. */
  async function allOrAbort(pending: Promise<SequenceResult>[], controller: AbortController): Promise<SequenceResult[]> {
    try {
      return await Promise.all(pending);
    } catch (e) {
      controller.abort();
      throw e;
    }
  }

  function usageOf(results: readonly SequenceResult[], promptTokens: number, cached: number) {
    const completion = results.reduce((a, r) => a + r.usage.completionTokens, 0);
    return {
      prompt_tokens: promptTokens,
      completion_tokens: completion,
      total_tokens: promptTokens + completion,
      prompt_tokens_details: { cached_tokens: cached },
    };
  }

  function maxTokensFor(asked: number | null | undefined, promptLength: number, fallback: number): number {
    const room = scheduler.contextSize - promptLength;
    return Math.min(asked ?? fallback, room);
  }

  // ------------------------------------------------------------ chat completions

  app.post('/v1/chat/completions', async (req, reply) => {
    const body = parse(chatRequestSchema, req.body, CHAT_FIELDS);
    checkModel(body.model);
    if (!tokenizer) throw new HttpError(400, 'this model has no tokenizer: use /v1/completions with token ids', { code: 'no_tokenizer' });
    const tools = toolConfigOf(body.tools, body.tool_choice, body.parallel_tool_calls);
    if (tools && responseFormatOf(body.response_format) !== undefined) {
      throw new HttpError(400, 'response_format cannot be combined with tools (unless tool_choice is "none"): the tool answer is already constrained', { param: 'response_format', code: 'invalid_value' });
    }
    const messages: ChatMessage[] = chatMessagesOf(body.messages, tools);
    if (!messages.some((m) => m.role === 'user')) throw new HttpError(400, 'messages must contain at least one user message', { param: 'messages', code: 'invalid_value' });
    let ids: number[];
    try {
      if (!renderer) {
        // Token-level Gemma turns (user text can never become control tokens); the checkpoint's
        // Jinja template when the tokenizer has no turn tokens.
        try {
          renderer = gemmaTurnRenderer(tokenizer);
        } catch {
          renderer = defaultChatRenderer(tokenizer);
        }
      }
      ids = renderer(messages, { addGenerationPrompt: true });
    } catch (e) {
      throw new HttpError(400, `cannot render the conversation: ${(e as Error).message}`, { param: 'messages' });
    }
    checkPrompt(ids, 'messages');
    const maxTokens = maxTokensFor(body.max_completion_tokens ?? body.max_tokens, ids.length, Infinity);
    const n = body.n ?? 1;
    const nTop = body.top_logprobs ?? 0;
    if (nTop > 0 && !body.logprobs) throw new HttpError(400, 'top_logprobs requires logprobs: true', { param: 'top_logprobs', code: 'invalid_value' });
    const wantLogprobs = body.logprobs === true;
    const id = newId('chatcmpl');
    const createdAt = nowSeconds();
    const baseSeed = body.seed ?? randomSeed();
    const controller = new AbortController();
    const stream = body.stream === true;
    const format = tools ? toolFormat(tools) : responseFormat(body.response_format);
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
      model: modelId,
      system_fingerprint: 'gemma-ts',
      choices: [{ index, delta, logprobs, finish_reason: finish }],
    });

    const seqs: SequenceRequest[] = [];
    for (let i = 0; i < n; i++) {
      // = JSON.stringify(chunkOf(i, { content }, null, lp)) with the fixed part serialized once.
      const head = stream ? `${chunkHead(id, 'chat.completion.chunk', createdAt, i)}"delta":{"content":` : '';
      seqs.push({
        ...sequenceOptions(body, i, baseSeed, format),
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
    const pending = submitAll(seqs, controller, reply.raw);
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
      res = startSse(req, reply);
      for (let i = 0; i < n; i++) sse(res, chunkOf(i, { role: 'assistant', content: '' }, null));
      await finishStream(res, pending, controller, (i, _reason, r) => chunkOf(i, {}, finishOf(r)), body.stream_options?.include_usage
        ? (results) => ({ id, object: 'chat.completion.chunk', created: createdAt, model: modelId, system_fingerprint: 'gemma-ts', choices: [], usage: usageOf(results, ids.length, results[0]!.usage.cachedTokens) })
        : undefined, tools ? toolChunks : undefined);
      return reply;
    }

    const results = await allOrAbort(pending, controller);
    completionIds.set(req, { prompt: ids, completions: results.map((r) => r.ids) });
    return {
      id,
      object: 'chat.completion',
      created: createdAt,
      model: modelId,
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

  // ------------------------------------------------------------ completions

  app.post('/v1/completions', async (req, reply) => {
    const body = parse(completionRequestSchema, req.body);
    checkModel(body.model);
    if (body.suffix) throw new HttpError(400, 'suffix is not supported', { param: 'suffix', code: 'unsupported_value' });
    const nLogprobs = body.logprobs ?? null;
    if (body.echo && nLogprobs !== null) throw new HttpError(400, 'echo together with logprobs is not supported', { param: 'echo', code: 'unsupported_value' });
    // Normalize the prompt(s) to token ids.
    const raw = body.prompt;
    let prompts: Array<{ ids: number[]; text: string }>;
    const fromIds = (ids: number[]) => ({ ids, text: tokenizer ? tokenizer.decode(ids) : '' });
    const fromText = (s: string) => {
      if (!tokenizer) throw new HttpError(400, 'this model has no tokenizer: give the prompt as token ids', { param: 'prompt', code: 'no_tokenizer' });
      const t = wellFormed(s);
      return { ids: tokenizer.encode(t), text: t };
    };
    if (typeof raw === 'string') prompts = [fromText(raw)];
    else if (raw.length > 0 && typeof raw[0] === 'number') prompts = [fromIds(raw as number[])];
    else if (raw.length > 0 && typeof raw[0] === 'string') prompts = (raw as string[]).map(fromText);
    else prompts = (raw as number[][]).map(fromIds);
    for (const p of prompts) checkPrompt(p.ids, 'prompt');
    const n = body.n ?? 1;
    if (prompts.length * n > 16) throw new HttpError(400, `at most 16 completions per request (prompts x n = ${prompts.length * n})`, { param: 'n', code: 'invalid_value' });
    const id = newId('cmpl');
    const createdAt = nowSeconds();
    const baseSeed = body.seed ?? randomSeed();
    const controller = new AbortController();
    const stream = body.stream === true;
    let res: ServerResponse | undefined;
    const echo = body.echo === true;
    const format = responseFormat(body.response_format);

    const legacyLogprobs = (entries: Array<{ id: number; logprob: number; topLogprobs?: { id: number; logprob: number }[] }>, offset0: number) => {
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
    };
    const chunkOf = (index: number, text: string, finish: string | null, logprobs: unknown = null) => ({
      id,
      object: 'text_completion',
      created: createdAt,
      model: modelId,
      system_fingerprint: 'gemma-ts',
      choices: [{ index, text, logprobs, finish_reason: finish }],
    });

    const seqs: SequenceRequest[] = [];
    const offsets: number[] = [];
    prompts.forEach((p, pi) => {
      const maxTokens = maxTokensFor(body.max_tokens, p.ids.length, 16);
      for (let i = 0; i < n; i++) {
        const index = pi * n + i;
        // = JSON.stringify(chunkOf(index, text, null, lp)) with the fixed part serialized once.
        const head = stream ? `${chunkHead(id, 'text_completion', createdAt, index)}"text":` : '';
        offsets.push(0);
        seqs.push({
          ...sequenceOptions(body, index, baseSeed, format),
          promptIds: p.ids,
          maxTokens,
          logprobs: nLogprobs !== null,
          topLogprobs: nLogprobs ?? 0,
          ...(stream
            ? {
                onChunk: (c: GenerationChunk) => {
                  if (!res) return;
                  const lp = nLogprobs !== null && c.id >= 0 && c.logprob !== undefined ? legacyLogprobs([{ id: c.id, logprob: c.logprob, topLogprobs: c.topLogprobs }], offsets[index]!) : null;
                  if (c.text === '' && !lp) return;
                  offsets[index] += c.text.length;
                  sseJson(res, `${head}${JSON.stringify(c.text)},"logprobs":${JSON.stringify(lp)},"finish_reason":null}]}`);
                },
              }
            : {}),
        });
      }
    });
    const pending = submitAll(seqs, controller, reply.raw);
    abortOnDisconnect(reply.raw, controller);
    const promptTokens = prompts.reduce((a, p) => a + p.ids.length, 0);

    if (stream) {
      res = startSse(req, reply);
      if (echo) seqs.forEach((_s, index) => sse(res!, chunkOf(index, prompts[Math.floor(index / n)]!.text, null)));
      await finishStream(res, pending, controller, (i, reason) => chunkOf(i, '', reason), body.stream_options?.include_usage
        ? (results) => ({ id, object: 'text_completion', created: createdAt, model: modelId, choices: [], usage: usageOf(results, promptTokens, results[0]!.usage.cachedTokens) })
        : undefined);
      return reply;
    }

    const results = await allOrAbort(pending, controller);
    return {
      id,
      object: 'text_completion',
      created: createdAt,
      model: modelId,
      system_fingerprint: 'gemma-ts',
      choices: results.map((r, index) => ({
        index,
        text: (echo ? prompts[Math.floor(index / n)]!.text : '') + r.text,
        logprobs: nLogprobs !== null ? legacyLogprobs(r.logprobs ?? [], 0) : null,
        finish_reason: finishReasonOf(r.finishReason),
      })),
      usage: usageOf(results, promptTokens, results.reduce((a, r, i) => a + (i % n === 0 ? r.usage.cachedTokens : 0), 0)),
    };
  });

  let prebuild: TablePrebuild | undefined;
  return {
    app,
    scheduler,
    modelId,
    async listen({ port = 8080, host = '127.0.0.1' } = {}) {
      await app.listen({ port, host });
      // After listen: startup is not delayed; the build runs in a worker (vocab.ts).
      if (tokenizer && options.prebuildConstraint !== false && !prebuild) prebuild = prebuildTokenTable(tokenizer);
      const addr = app.server.address();
      const p = typeof addr === 'object' && addr ? addr.port : port;
      const h = host.includes(':') ? `[${host}]` : host;
      return `http://${h}:${p}`;
    },
    async close() {
      prebuild?.cancel();
      scheduler.close();
      await app.close();
    },
  };
}

/** Any thrown value -> an HTTP status and OpenAI's error body. */
export function toErrorBody(error: unknown): { status: number; body: OpenAIErrorBody } {
  if (error instanceof HttpError) return { status: error.statusCode, body: error.body() };
  if (error instanceof QueueFullError) return { status: 429, body: new HttpError(429, error.message, { code: 'rate_limit_exceeded' }).body() };
  if (error instanceof GemmaError) {
    const status = error.code === 'MODEL_ERROR' || error.code === 'FORMAT_ERROR' ? 500 : 400;
    return { status, body: new HttpError(status, error.message, { code: error.code.toLowerCase() }).body() };
  }
  const e = error as { statusCode?: unknown; code?: unknown; message?: unknown };
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600) {
    const status = e.statusCode;
    const message = status === 413 ? 'the request body is too large' : typeof e.message === 'string' ? e.message : 'bad request';
    return { status, body: { error: { message, type: defaultType(status), param: null, code: typeof e.code === 'string' ? e.code : null } } };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { status: 500, body: { error: { message: `internal error: ${message}`, type: 'server_error', param: null, code: null } } };
}
