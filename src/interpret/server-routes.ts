/**
 * Gemma Scope SAEs on the fastify server (src/server):
 *
 *   GET  /v1/sae                list the served SAEs
 *   POST /v1/sae/features       {prompt | ids, top?, sae?, feature?} -> the top features of every
 *                               token, as `gemma sae features --json` (plus each token's text, and
 *                               the chosen feature's value per token when `feature` is given)
 *   POST /v1/chat/completions   an optional "sae" field (true or {top, feature, sae}) returns the
 *                               top features of every answer token beside each choice, under
 *                               choices[i].sae (non-streamed requests)
 *   GET  /sae                   a page showing a prompt's tokens coloured by a feature's activation
 *
 * registerSaeRoutes(app, options) adds them; pass it in ServerOptions.configure.
 *
 * The chat completion's features come from one extra forward pass over the exact prompt ids
 * and generated ids the server ran (recorded in `completionIds`); activations are causal, so
 * they equal those seen during generation.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GemmaError } from '../errors.js';
import { defaultChatRenderer, gemmaTurnRenderer, type ChatRenderer } from '../generate/chat-session.js';
import type { LanguageModel } from '../model/types.js';
import type { ChatMessage, Tokenizer } from '../tokenizer/types.js';
import { packageRoot } from '../util/package-root.js';
import { completionIds } from '../server/server.js';
import { readFeaturesAsync } from './features.js';
import type { JumpReluSae } from './sae.js';

export interface SaeRouteOptions {
  model: LanguageModel;
  tokenizer: Tokenizer | undefined;
  /** SAEs by name; requests pick one with "sae" (default: the first). Hook points must be set. */
  saes: Record<string, JumpReluSae>;
  /** The server's chat renderer (default: Gemma turns from token ids, as the server does). */
  render?: ChatRenderer;
  /** Largest prompt accepted by /v1/sae/features (default 2048 tokens). */
  maxTokens?: number;
  /** Largest `top` (default 100). */
  maxTop?: number;
}

interface OpenAIError {
  error: { message: string; type: string; param: string | null; code: string | null };
}

function badRequest(message: string, param: string | null = null): OpenAIError {
  return { error: { message, type: 'invalid_request_error', param, code: 'invalid_value' } };
}

class BadRequest extends Error {
  constructor(message: string, readonly param: string | null = null) {
    super(message);
  }
}

type Body = Record<string, unknown>;

export function saePageFile(): string {
  return path.join(packageRoot(), 'src', 'interpret', 'public', 'sae.html');
}

export function registerSaeRoutes(app: FastifyInstance, options: SaeRouteOptions): void {
  const { model, tokenizer, saes } = options;
  const names = Object.keys(saes);
  if (!names.length) throw new GemmaError('USAGE_ERROR', 'registerSaeRoutes needs at least one SAE');
  for (const n of names) saes[n]!.checkModel(model.config);
  const maxTokens = options.maxTokens ?? 2048;
  const maxTop = options.maxTop ?? 100;
  let renderer = options.render;

  const pickSae = (v: unknown): [string, JumpReluSae] => {
    if (v === undefined || v === null) return [names[0]!, saes[names[0]!]!];
    if (typeof v !== 'string' || !saes[v]) throw new BadRequest(`unknown SAE ${JSON.stringify(v)} (served: ${names.join(', ')})`, 'sae');
    return [v, saes[v]!];
  };
  const intIn = (v: unknown, param: string, lo: number, hi: number, fallback?: number): number | undefined => {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new BadRequest(`${param} must be an integer in [${lo}, ${hi}]`, param);
    return v;
  };
  const tokenText = (id: number) => (tokenizer ? tokenizer.decode([id]) : `<${id}>`);

  /** Features of `ids` (rows from `from` on), in the API's shape. */
  const features = async (sae: JumpReluSae, ids: number[], top: number, feature: number | undefined, from = 0) => {
    const r = await readFeaturesAsync(model, sae, ids, { top });
    return r.tokens.slice(from).map((t, k) => {
      const acts = r.acts[from + k]!;
      const out: Record<string, unknown> = { id: t.id, token: tokenText(t.id), features: t.features };
      if (feature !== undefined) {
        const j = acts.indices.indexOf(feature);
        out.value = j >= 0 ? acts.values[j]! : 0;
      }
      return out;
    });
  };

  app.get('/v1/sae', async () => ({
    object: 'list',
    data: names.map((n) => ({ id: n, object: 'sae', hook: saes[n]!.hook, d_in: saes[n]!.dIn, d_sae: saes[n]!.dSae })),
  }));

  app.post('/v1/sae/features', async (req: FastifyRequest, reply: FastifyReply) => {
    const body = req.body as Body | undefined;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return reply.code(400).send(badRequest('expected a JSON object body'));
    try {
      const [name, sae] = pickSae(body.sae);
      const top = intIn(body.top, 'top', 1, maxTop, 10)!;
      const feature = intIn(body.feature, 'feature', 0, sae.dSae - 1);
      let ids: number[];
      if ((body.prompt === undefined) === (body.ids === undefined)) throw new BadRequest('give exactly one of "prompt" and "ids"');
      if (body.ids !== undefined) {
        if (!Array.isArray(body.ids) || body.ids.length === 0 || !body.ids.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < model.vocabSize)) {
          throw new BadRequest(`ids must be a non-empty array of token ids below ${model.vocabSize}`, 'ids');
        }
        ids = body.ids as number[];
      } else {
        if (typeof body.prompt !== 'string') throw new BadRequest('prompt must be a string', 'prompt');
        if (!tokenizer) throw new BadRequest('this model has no tokenizer: give "ids"', 'prompt');
        ids = tokenizer.encode(body.prompt);
      }
      if (ids.length > maxTokens) throw new BadRequest(`the prompt has ${ids.length} tokens; at most ${maxTokens}`, body.ids !== undefined ? 'ids' : 'prompt');
      return { object: 'sae.features', sae: name, hook: sae.hook, d_sae: sae.dSae, ...(feature !== undefined ? { feature } : {}), tokens: await features(sae, ids, top, feature) };
    } catch (e) {
      if (e instanceof BadRequest) return reply.code(400).send(badRequest(e.message, e.param));
      if (e instanceof GemmaError && (e.code === 'USAGE_ERROR' || e.code === 'MODEL_ERROR')) return reply.code(400).send(badRequest(e.message));
      throw e;
    }
  });

  // ---------------------------------------------------------------- "sae" on chat completions
  interface SaeAsk {
    name: string;
    sae: JumpReluSae;
    top: number;
    feature: number | undefined;
    messages: ChatMessage[];
  }
  const asked = new WeakMap<FastifyRequest, SaeAsk>();

  app.addHook('preHandler', async (req, reply) => {
    if (req.method !== 'POST' || req.routeOptions.url !== '/v1/chat/completions') return;
    const body = req.body as Body | undefined;
    if (typeof body !== 'object' || body === null || body.sae === undefined || body.sae === null || body.sae === false) return;
    try {
      if (body.stream === true) throw new BadRequest('"sae" is supported on non-streamed chat completions only (stream: false)', 'sae');
      if (!tokenizer) throw new BadRequest('this model has no tokenizer', 'sae');
      const spec = body.sae === true ? {} : body.sae;
      if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new BadRequest('"sae" must be true or an object {top, feature, sae}', 'sae');
      const s = spec as Body;
      const [name, sae] = pickSae(s.sae);
      const top = intIn(s.top, 'sae.top', 1, maxTop, 10)!;
      const feature = intIn(s.feature, 'sae.feature', 0, sae.dSae - 1);
      const msgs = Array.isArray(body.messages) ? (body.messages as Body[]) : [];
      const messages: ChatMessage[] = msgs.map((m) => ({
        role: m.role === 'developer' ? 'system' : String(m.role),
        content: typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? m.content.map((p) => (p && typeof (p as Body).text === 'string' ? (p as Body).text as string : '')).join('') : '',
      }));
      asked.set(req, { name, sae, top, feature, messages });
    } catch (e) {
      if (e instanceof BadRequest) return reply.code(400).send(badRequest(e.message, e.param));
      throw e;
    }
    return undefined;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const ask = asked.get(req);
    if (!ask || reply.statusCode !== 200 || typeof payload !== 'string') return payload;
    let doc: { choices?: Array<{ message?: { content?: string }; sae?: unknown }> };
    try {
      doc = JSON.parse(payload);
    } catch {
      return payload;
    }
    if (!Array.isArray(doc.choices)) return payload;
    if (!renderer) {
      try {
        renderer = gemmaTurnRenderer(tokenizer!);
      } catch {
        renderer = defaultChatRenderer(tokenizer!);
      }
    }
    // The server records the exact ids it ran; re-render and re-tokenize only as a fallback.
    const exact = completionIds.get(req);
    const prompt = exact ? exact.prompt : renderer(ask.messages, { addGenerationPrompt: true });
    for (const [ci, choice] of doc.choices.entries()) {
      const answer = exact?.completions[ci] ?? tokenizer!.encode(choice.message?.content ?? '', { addBos: false });
      const ids = [...prompt, ...answer];
      choice.sae = {
        sae: ask.name,
        hook: ask.sae.hook,
        ...(ask.feature !== undefined ? { feature: ask.feature } : {}),
        tokens: answer.length ? await features(ask.sae, ids, ask.top, ask.feature, prompt.length) : [],
      };
    }
    return JSON.stringify(doc);
  });

  // ---------------------------------------------------------------- the page
  app.get('/sae', async (_req, reply) => {
    reply.header('content-type', 'text/html; charset=utf-8');
    return reply.send(fs.readFileSync(saePageFile(), 'utf8'));
  });
}
