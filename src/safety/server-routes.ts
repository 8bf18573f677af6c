/**
 * ShieldGemma on the fastify server (src/server):
 *
 *  - registerModerationRoute(app, classifier): POST /v1/moderations in OpenAI's moderation shape
 *    ({input: string | string[] | [{type: "text", text}]} -> {id, model, results: [{flagged,
 *    categories, category_scores}]}); extensions: "response" (classify a model answer to a single
 *    input), "policies", "threshold".
 *  - registerGuardHooks(app, guard): screens the prompt of /v1/chat/completions (last user
 *    message) and /v1/completions (text prompts) before generation, and the answer of
 *    non-streamed responses before they are sent. Blocked requests get the refusal in the normal
 *    response shape, finish_reason "content_filter", and the scores under "guard".
 *    Streamed answers are screened as the server writes their events: each choice's events are
 *    held back until its text so far has been screened (every chunkChars characters and at
 *    the finish event).
 *  - attachShieldGuard(app, {model, threshold, mode, log}): all of the above in one call, for
 *    `gemma serve --guard M`.
 *    The hooks also append the guard's counters to GET /metrics.
 *  - guardMetrics(guard): the same Prometheus text, for servers that build /metrics themselves.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ClassifyResult, ShieldClassifier } from './classifier.js';
import { classifyWith, jsonLineDecisionLog, ShieldGuard, type GuardClassifier, type GuardDecision, type GuardMode } from './guard.js';
import { loadShieldClassifier } from './load.js';
import type { ShieldPolicy } from './templates.js';
import { GemmaError } from '../errors.js';
import { abortChoice } from '../server/stream-control.js';

interface OpenAIError {
  error: { message: string; type: string; param: string | null; code: string | null };
}

function badRequest(message: string, param: string | null = null): OpenAIError {
  return { error: { message, type: 'invalid_request_error', param, code: 'invalid_value' } };
}

function moderationInputs(input: unknown): string[] | string {
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input) || input.length === 0) return 'input must be a string, an array of strings, or an array of {"type": "text", "text": ...} items';
  if (input.length > 64) return 'at most 64 inputs per request';
  const out: string[] = [];
  for (const x of input) {
    if (typeof x === 'string') out.push(x);
    else if (typeof x === 'object' && x !== null && (x as { type?: unknown }).type === 'text' && typeof (x as { text?: unknown }).text === 'string') out.push((x as { text: string }).text);
    else return 'input items must be strings or {"type": "text", "text": ...} objects (images are not supported)';
  }
  return out;
}

export interface ModerationRouteOptions {
  /** The id reported in "model" (default "shieldgemma"). */
  modelId?: string;
  /** Default threshold (0.5). */
  threshold?: number;
  policies?: ReadonlyArray<string | ShieldPolicy>;
}

/** POST /v1/moderations. */
export function registerModerationRoute(app: FastifyInstance, classifier: GuardClassifier, options: ModerationRouteOptions = {}): void {
  const modelId = options.modelId ?? 'shieldgemma';
  app.post('/v1/moderations', async (req: FastifyRequest, reply: FastifyReply) => {
    const body = req.body as Record<string, unknown> | undefined;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return reply.code(400).send(badRequest('expected a JSON object body'));
    const inputs = moderationInputs(body.input);
    if (typeof inputs === 'string') return reply.code(400).send(badRequest(inputs, 'input'));
    const response = body.response;
    if (response !== undefined && (typeof response !== 'string' || inputs.length !== 1)) {
      return reply.code(400).send(badRequest('"response" must be a string and needs exactly one input (the prompt it answers)', 'response'));
    }
    const threshold = body.threshold ?? options.threshold;
    if (threshold !== undefined && (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1))) {
      return reply.code(400).send(badRequest('threshold must be a number in [0, 1]', 'threshold'));
    }
    const policies = body.policies ?? options.policies;
    if (policies !== undefined && !Array.isArray(policies)) return reply.code(400).send(badRequest('policies must be an array', 'policies'));
    const results: ClassifyResult[] = [];
    try {
      for (const prompt of inputs) {
        results.push(
          await classifyWith(classifier, {
            prompt,
            ...(typeof response === 'string' ? { response } : {}),
            ...(threshold !== undefined ? { threshold } : {}),
            ...(policies !== undefined ? { policies: policies as Array<string | ShieldPolicy> } : {}),
          }),
        );
      }
    } catch (e) {
      if (e instanceof GemmaError && e.code === 'USAGE_ERROR') return reply.code(400).send(badRequest(e.message));
      return reply.code(500).send({ error: { message: `moderation failed: ${(e as Error).message}`, type: 'server_error', param: null, code: null } });
    }
    return { id: `modr-${randomUUID().replace(/-/g, '')}`, model: modelId, results };
  });
}

function guardInfo(d: GuardDecision): Record<string, unknown> {
  return { stage: d.stage, action: d.action, flagged: d.flagged, categories: d.categories, category_scores: d.category_scores, ...(d.error !== undefined ? { error: d.error } : {}) };
}

type Body = Record<string, unknown>;

function partsText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'object' && p !== null && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('');
  return '';
}

/** The text a request asks about: the last user message, or the text prompt(s). undefined = cannot tell. */
function promptTexts(url: string, body: Body): string[] | undefined {
  if (url === '/v1/chat/completions') {
    const msgs = Array.isArray(body.messages) ? (body.messages as Array<Record<string, unknown>>) : [];
    const users = msgs.filter((m) => m && m.role === 'user');
    if (users.length === 0) return undefined;
    return [partsText(users[users.length - 1]!.content)];
  }
  const p = body.prompt;
  if (typeof p === 'string') return [p];
  if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) return p as string[];
  return undefined;
}

const GUARDED = new Set(['/v1/chat/completions', '/v1/completions']);

function refusalBody(url: string, body: Body, text: string, d: GuardDecision): Record<string, unknown> {
  const created = Math.floor(Date.now() / 1000);
  const model = typeof body.model === 'string' ? body.model : 'gemma';
  const usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  if (url === '/v1/chat/completions') {
    return {
      id: `chatcmpl-${randomUUID().replace(/-/g, '')}`,
      object: 'chat.completion',
      created,
      model,
      system_fingerprint: 'gemma-ts',
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: text }, logprobs: null, finish_reason: 'content_filter' }],
      usage,
      guard: guardInfo(d),
    };
  }
  return {
    id: `cmpl-${randomUUID().replace(/-/g, '')}`,
    object: 'text_completion',
    created,
    model,
    system_fingerprint: 'gemma-ts',
    choices: [{ index: 0, text, logprobs: null, finish_reason: 'content_filter' }],
    usage,
    guard: guardInfo(d),
  };
}

function sendRefusalStream(url: string, body: Body, reply: FastifyReply, text: string, d: GuardDecision): void {
  const full = refusalBody(url, body, text, d);
  const chat = url === '/v1/chat/completions';
  const base = { id: full.id, object: chat ? 'chat.completion.chunk' : 'text_completion', created: full.created, model: full.model, system_fingerprint: 'gemma-ts' };
  const events: unknown[] = chat
    ? [
        { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] },
        { ...base, choices: [{ index: 0, delta: { content: text, refusal: text }, logprobs: null, finish_reason: null }] },
        { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'content_filter' }], guard: guardInfo(d) },
      ]
    : [
        { ...base, choices: [{ index: 0, text, logprobs: null, finish_reason: null }] },
        { ...base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: 'content_filter' }], guard: guardInfo(d) },
      ];
  reply
    .code(200)
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('x-gemma-guard', 'blocked')
    .send(events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n');
}

/**
 * Guard the generation endpoints with hooks (no change to their handlers): prompts are screened
 * before generation; non-streamed answers before they are sent.
 */
export function registerGuardHooks(app: FastifyInstance, guard: ShieldGuard): void {
  /** Per request: the screened prompt texts, completions per prompt (n), the prompt decision. */
  const seen = new WeakMap<FastifyRequest, { texts: string[]; n: number; prompt: GuardDecision }>();

  app.addHook('preHandler', async (req, reply) => {
    const url = req.routeOptions.url ?? '';
    if (req.method !== 'POST' || !GUARDED.has(url)) return;
    const body = req.body as Body | undefined;
    if (typeof body !== 'object' || body === null) return; // the handler answers the 400
    const texts = promptTexts(url, body);
    const requestId = String(req.id);
    let decision: GuardDecision | undefined;
    if (texts === undefined) {
      // Token-id prompts (or no user message): nothing to read. Block mode fails closed.
      if (url !== '/v1/completions') return;
      decision = guard.unscreenable('prompt', 'token-id prompts cannot be screened', { requestId });
    } else {
      for (const t of texts) {
        const d = await guard.screenPrompt(t, { requestId });
        if (!decision || d.action === 'block' || (d.flagged && !decision.flagged)) decision = d;
        if (d.action === 'block') break;
      }
    }
    if (!decision) return;
    const n = typeof body.n === 'number' && Number.isInteger(body.n) && body.n > 0 ? body.n : 1;
    if (texts !== undefined) seen.set(req, { texts, n, prompt: decision });
    reply.header('x-gemma-guard', decision.action === 'block' ? 'blocked' : decision.flagged ? 'flagged' : 'allowed');
    if (decision.action !== 'block') {
      if (body.stream === true && texts !== undefined) screenStream(reply, guard, url, texts, n, requestId);
      return;
    }
    const text = guard.refusal(decision);
    if (body.stream === true) {
      sendRefusalStream(url, body, reply, text, decision);
      return reply;
    }
    reply.code(200).type('application/json; charset=utf-8').send(refusalBody(url, body, text, decision));
    return reply;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const url = req.routeOptions.url ?? '';
    // The guard's counters join the server's Prometheus text.
    if (req.method === 'GET' && url === '/metrics' && reply.statusCode === 200 && typeof payload === 'string') return payload + guard.metricsText();
    if (req.method !== 'POST' || !GUARDED.has(url) || reply.statusCode !== 200 || typeof payload !== 'string') return payload;
    const info = seen.get(req);
    if (info === undefined) return payload;
    let out: Record<string, unknown>;
    try {
      out = JSON.parse(payload) as Record<string, unknown>;
    } catch {
      return payload;
    }
    if (out.guard !== undefined || !Array.isArray(out.choices)) return payload; // our own refusal, or not a completion
    const choices = out.choices as Array<Record<string, unknown>>;
    const decisions: GuardDecision[] = [];
    for (const [k, c] of choices.entries()) {
      const index = typeof c.index === 'number' ? c.index : k;
      const prompt = info.texts[Math.min(Math.floor(index / info.n), info.texts.length - 1)]!;
      const message = c.message as Record<string, unknown> | undefined;
      const answer = message ? (typeof message.content === 'string' ? message.content : '') : typeof c.text === 'string' ? c.text : '';
      const d = await guard.screenResponse(prompt, answer, { requestId: String(req.id) });
      decisions.push(d);
      if (d.action === 'block') {
        const text = guard.refusal(d);
        if (message) Object.assign(message, { content: text, refusal: text });
        else c.text = text;
        c.finish_reason = 'content_filter';
        c.logprobs = null;
      }
    }
    // Attach the most severe decision of the request (a flagged prompt in flag mode included).
    const all = [info.prompt, ...decisions];
    const worst = all.find((d) => d.action === 'block') ?? all.find((d) => d.flagged) ?? decisions[0];
    if (worst) {
      out.guard = guardInfo(worst);
      reply.header('x-gemma-guard', worst.action === 'block' ? 'blocked' : worst.flagged ? 'flagged' : 'allowed');
    }
    return JSON.stringify(out);
  });
}

/**
 * Screen a streamed answer the server writes as server-sent events: every event of a choice is
 * held back until the guard has screened the text so far (every guard.chunkChars characters, and
 * at the choice's finish event). A blocked choice gets the refusal and finish_reason
 * "content_filter" with the scores under "guard"; its held and later events are dropped and its
 * generation is cancelled (the server's choice aborter, stream-control.ts).
 */
function screenStream(reply: FastifyReply, guard: ShieldGuard, url: string, prompts: string[], n: number, requestId: string): void {
  const res = reply.raw;
  const origWrite = res.write.bind(res) as (chunk: string) => boolean;
  const origEnd = res.end.bind(res) as (chunk?: string) => unknown;
  const chat = url === '/v1/chat/completions';
  interface ChoiceState {
    screen: ReturnType<ShieldGuard['responseScreen']>;
    held: string[];
    done: boolean;
  }
  const choices = new Map<number, ChoiceState>();
  const stateOf = (index: number): ChoiceState => {
    let st = choices.get(index);
    if (!st) {
      // Text completions with several prompts: choice index = prompt index * n + i.
      const prompt = prompts[Math.min(Math.floor(index / n), prompts.length - 1)]!;
      st = { screen: guard.responseScreen(prompt, { requestId }), held: [], done: false };
      choices.set(index, st);
    }
    return st;
  };
  const refusalEvents = (base: Record<string, unknown>, index: number, d: GuardDecision): string => {
    const text = guard.refusal(d);
    const ev = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}): string => `data: ${JSON.stringify({ ...base, choices: [{ index, logprobs: null, ...choice }], ...extra })}\n\n`;
    return chat
      ? ev({ delta: { content: text, refusal: text }, finish_reason: null }) + ev({ delta: {}, finish_reason: 'content_filter' }, { guard: guardInfo(d) })
      : ev({ text, finish_reason: null }) + ev({ text: '', finish_reason: 'content_filter' }, { guard: guardInfo(d) });
  };

  const handleEvent = async (raw: string): Promise<void> => {
    const m = /^data: (.*)$/s.exec(raw.trim());
    let ev: Record<string, unknown> | undefined;
    if (m && m[1] !== '[DONE]') {
      try {
        ev = JSON.parse(m[1]!) as Record<string, unknown>;
      } catch {
        ev = undefined;
      }
    }
    const list = ev && Array.isArray(ev.choices) ? (ev.choices as Array<Record<string, unknown>>) : undefined;
    if (!ev || !list || list.length !== 1) {
      origWrite(raw); // [DONE], usage, errors: pass through in order
      return;
    }
    const c = list[0]!;
    const index = typeof c.index === 'number' ? c.index : 0;
    const st = stateOf(index);
    if (st.screen.blocked || st.done) return;
    const delta = chat ? ((c.delta as Record<string, unknown> | undefined)?.content ?? '') : (c.text ?? '');
    const text = typeof delta === 'string' ? delta : '';
    const { id, object, created, model, system_fingerprint } = ev;
    const base = { id, object, created, model, system_fingerprint };
    st.held.push(raw);
    if (c.finish_reason !== null && c.finish_reason !== undefined) {
      if (text) await st.screen.push(text);
      const end = await st.screen.finish();
      st.done = true;
      if (end.decision.action === 'block') {
        st.held = [];
        origWrite(refusalEvents(base, index, end.decision));
        return;
      }
      for (const h of st.held) origWrite(h);
      st.held = [];
      return;
    }
    if (!text) return;
    const r = await st.screen.push(text);
    if (!r.decision) return;
    if (r.decision.action === 'block') {
      st.held = [];
      origWrite(refusalEvents(base, index, r.decision));
      abortChoice(res, index); // nothing more of it will be shown: stop generating it
      return;
    }
    for (const h of st.held) origWrite(h);
    st.held = [];
  };

  let chain: Promise<void> = Promise.resolve();
  let pending = '';
  const enqueue = (chunk: unknown): void => {
    pending += typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk ?? '');
    let k: number;
    while ((k = pending.indexOf('\n\n')) >= 0) {
      const raw = pending.slice(0, k + 2);
      pending = pending.slice(k + 2);
      chain = chain.then(() => handleEvent(raw)).catch(() => undefined);
    }
  };
  (res as unknown as { write: (chunk: unknown) => boolean }).write = (chunk: unknown): boolean => {
    enqueue(chunk);
    return true;
  };
  (res as unknown as { end: (chunk?: unknown) => unknown }).end = (chunk?: unknown): unknown => {
    if (chunk !== undefined && typeof chunk !== 'function') enqueue(chunk);
    chain = chain.then(async () => {
      // Choices that never sent a finish event (aborted): screen what was held, then release or refuse.
      for (const st of choices.values()) {
        if (st.done || st.screen.blocked || st.held.length === 0) continue;
        const end = await st.screen.finish();
        if (end.decision.action !== 'block') for (const h of st.held) origWrite(h);
        st.held = [];
      }
      if (pending) origWrite(pending);
      origEnd();
    });
    return res;
  };
}

export interface AttachGuardOptions {
  /** ShieldGemma checkpoint: directory, .gguf file, or "demo". */
  model: string;
  threshold?: number;
  mode?: GuardMode;
  backend?: 'js' | 'wasm' | 'webgpu';
  threads?: number;
  /** Streamed answers are screened every this many characters (default 400). */
  chunkChars?: number;
  /** The decision log: one JSON line per decision (default: none). */
  log?: { write(s: string): unknown };
  /** Model id reported by /v1/moderations (default "shieldgemma"). */
  modelId?: string;
}

/**
 * One call for `gemma serve --guard M`: loads the ShieldGemma model, registers POST
 * /v1/moderations and the guard hooks (prompts, answers, streams, /metrics) on the server's
 * fastify app (before it listens). dispose() frees the guard model.
 */
export async function attachShieldGuard(app: FastifyInstance, options: AttachGuardOptions): Promise<{ guard: ShieldGuard; classifier: ShieldClassifier; dispose(): void }> {
  const { classifier, loaded } = await loadShieldClassifier(options.model, {
    ...(options.backend ? { backend: options.backend } : {}),
    ...(options.threads ? { threads: options.threads } : {}),
  });
  try {
    void classifier.yesNoIds; // a checkpoint without Yes/No pieces fails here, at start-up
    const guard = new ShieldGuard({
      classifier,
      ...(options.threshold !== undefined ? { threshold: options.threshold } : {}),
      ...(options.mode ? { mode: options.mode } : {}),
      ...(options.chunkChars ? { chunkChars: options.chunkChars } : {}),
      ...(options.log ? { onDecision: jsonLineDecisionLog(options.log) } : {}),
    });
    registerModerationRoute(app, classifier, { modelId: options.modelId ?? 'shieldgemma', threshold: guard.threshold });
    registerGuardHooks(app, guard);
    return { guard, classifier, dispose: () => loaded.model.dispose() };
  } catch (e) {
    loaded.model.dispose();
    throw e;
  }
}

/** The guard's counters as Prometheus text (append to the /metrics body). */
export function guardMetrics(guard: ShieldGuard): string {
  return guard.metricsText();
}
