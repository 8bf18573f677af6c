/**
 * `gemma serve`: an OpenAI-compatible HTTP server over the continuous-batching scheduler.
 *
 *   POST /v1/chat/completions   chat (stream and non-stream)        routes/chat.ts
 *   POST /v1/completions        text completion                     routes/completions.ts
 *   GET  /v1/models             the served model(s)                 routes/models.ts
 *   GET  /health                readiness and slots (no auth)       routes/health.ts
 *   GET  /metrics               Prometheus text                     routes/metrics.ts
 *   GET/POST /lora-adapters     LoRA adapters' global scales        routes/lora.ts
 *   GET  /                      the chat page (no auth)             routes/page.ts
 *
 * The core (app.ts) sets up fastify, JSON bodies, CORS, the API key and OpenAI-shaped errors
 * (`{ error: { message, type, param, code } }`); lifecycle.ts listens and shuts down.
 */
import type { FastifyInstance } from 'fastify';
import { UsageError } from '../errors.js';
import type { ChatRenderer } from '../generate/chat-session.js';
import type { Scheduler, SchedulerOptions } from '../generate/scheduler.js';
import type { LanguageModel } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { DEFAULT_AFFINITY_TOKENS } from './affinity.js';
import { createApp } from './app.js';
import type { RouteContext } from './context.js';
import { Lifecycle, type DrainResult, type ServerState } from './lifecycle.js';
import { ModelPool, type ModelSource } from './model-pool.js';
import { registerChatRoutes } from './routes/chat.js';
import { registerCompletionRoutes } from './routes/completions.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerLoraRoutes } from './routes/lora.js';
import { registerMetricsRoute } from './routes/metrics.js';
import { registerModelRoutes } from './routes/models.js';
import { registerPageRoutes } from './routes/page.js';

export { checkBearer, toErrorBody } from './app.js';
export type { DrainResult, ServerState } from './lifecycle.js';
export type { LoadedParts, ModelSource } from './model-pool.js';
export { completionIds } from './routes/chat.js';
export { publicDir } from './routes/page.js';

export interface ServerOptions extends SchedulerOptions {
  /** The one model served (loaded already; the caller keeps ownership). Or give `models`. */
  model?: LanguageModel;
  tokenizer?: Tokenizer | undefined;
  /** The id clients use in `model` for `model` (default "gemma"). */
  modelId?: string;
  /**
   * Several models by id, loaded on first use (the first one, the default, at once) and owned by
   * the server (released on unload and close). Instead of `model`.
   */
  models?: ModelSource[];
  /** Most models loaded at once; the least recently used idle one is unloaded (default: all). */
  maxLoaded?: number;
  /** Most weight bytes (ModelSource.bytes) loaded at once (default: no limit). */
  memoryBudget?: number;
  /** Require `Authorization: Bearer <apiKey>` on /v1/* and /metrics. */
  apiKey?: string;
  /** Send CORS headers: true = any origin, a string = that origin. Off by default. */
  cors?: boolean | string;
  /** Largest request body in bytes (default 2 MiB). */
  bodyLimit?: number;
  /** Fastify's request log (default off). */
  logger?: boolean;
  /** Sent as `X-Gemma-Replica` on every response (which replica answered, behind a balancer). */
  replicaName?: string;
  /** Prompt tokens hashed into the `X-Gemma-Affinity` key when a request has no session id or user (default 64). */
  affinityTokens?: number;
  /** Render chat messages to ids (default: the Gemma turn format from token ids). */
  render?: ChatRenderer;
  /**
   * Extend the app before the built-in routes are added: hooks (e.g. registerGuardHooks from
   * src/safety/server-routes.ts) and extra routes (registerModerationRoute). Runs after the
   * body parser, auth, CORS and lifecycle hooks, so added routes are protected by --api-key
   * under /v1/ and refused while draining.
   */
  configure?: (app: FastifyInstance) => void | Promise<void>;
  /**
   * More work the server waits for before it reports ready (e.g. the guard's and SAE's models,
   * registered through LateRoutes): started when the server is created, beside the default
   * model's load; /health stays 503 until both are done, and a failure is the server's failure.
   */
  loading?: (server: GemmaServer) => Promise<void>;
  /**
   * Build the constraint's token table (response_format, tools) in a worker once listening, so
   * that the first constrained request does not pay for it (default true).
   */
  prebuildConstraint?: boolean;
}

export interface GemmaServer {
  app: FastifyInstance;
  /** The default model's scheduler (throws while it is not loaded). */
  readonly scheduler: Scheduler;
  /** The default model's id. */
  modelId: string;
  models: ModelPool;
  /** Resolves once the default model (and ServerOptions.loading) is loaded (at once with `model`); rejects if it fails. */
  readonly ready: Promise<void>;
  readonly state: ServerState;
  /** Requests accepted and not yet answered (streams until their last byte). */
  readonly requestsInFlight: number;
  /** Listen; resolves to the base URL (http://host:port). */
  listen(options?: { port?: number; host?: string }): Promise<string>;
  /** Stop taking requests (503 + Retry-After, /health 503) and wait for accepted ones, at most timeoutMs. */
  drain(timeoutMs: number): Promise<DrainResult>;
  /** drain(), then close(): the graceful stop of SIGTERM. */
  shutdown(timeoutMs: number): Promise<DrainResult>;
  /** Stop now: running sequences are aborted, sockets closed, models owned by the server released. */
  close(): Promise<void>;
}

/**
 * The OpenAI-compatible HTTP server (`gemma serve`) over a loaded model: chat / text completions
 * (streamed or not), models, health, metrics, the chat page. `listen()` resolves to its URL.
 */
export async function createServer(options: ServerOptions): Promise<GemmaServer> {
  if ((options.model === undefined) === (options.models === undefined)) throw new UsageError('createServer needs either `model` or `models`');
  const given = options.model;
  const sources: ModelSource[] = given
    ? [{ id: options.modelId ?? 'gemma', load: async () => ({ model: given, tokenizer: options.tokenizer, release: () => undefined }) }]
    : options.models!;
  const defaultId = sources[0]!.id;
  let lifecycle: Lifecycle | undefined;
  let pool: ModelPool;
  try {
    pool = new ModelPool(sources, {
      scheduler: options,
      ...(options.maxLoaded !== undefined ? { maxLoaded: options.maxLoaded } : {}),
      ...(options.memoryBudget !== undefined ? { memoryBudget: options.memoryBudget } : {}),
      ...(options.render ? { render: options.render } : {}),
      onLoaded: (served) => lifecycle?.prebuild(served.tokenizer),
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const core = createApp(options);
  lifecycle = new Lifecycle(core.app, pool, { prebuildConstraint: options.prebuildConstraint !== false });
  const life = lifecycle;
  const ctx: RouteContext = { ...core, models: pool, lifecycle: life, affinityTokens: options.affinityTokens ?? DEFAULT_AFFINITY_TOKENS, startedAt: Date.now() };

  const modelReady = pool.preload(defaultId);
  modelReady.catch(() => undefined); // reported through `ready` and /health
  if (given) await modelReady; // a given model is ready at once; bad scheduler options throw here

  if (options.configure) await options.configure(core.app);
  registerPageRoutes(ctx);
  registerHealthRoutes(ctx);
  registerModelRoutes(ctx);
  registerMetricsRoute(ctx);
  registerChatRoutes(ctx);
  registerCompletionRoutes(ctx);
  registerLoraRoutes(ctx);

  let ready: Promise<void> = Promise.resolve();
  const server: GemmaServer = {
    app: core.app,
    get scheduler() {
      const s = pool.peek(defaultId);
      if (!s) throw new Error(`the model '${defaultId}' is not loaded`);
      return s.scheduler;
    },
    modelId: defaultId,
    models: pool,
    get ready() {
      return ready;
    },
    get state() {
      return life.state;
    },
    get requestsInFlight() {
      return life.requestsInFlight;
    },
    listen: (o) => life.listen(o),
    drain: (timeoutMs) => life.drain(timeoutMs),
    async shutdown(timeoutMs) {
      const r = await life.drain(timeoutMs);
      await life.close();
      return r;
    },
    close: () => life.close(),
  };
  const extra = options.loading ? options.loading(server) : Promise.resolve();
  ready = Promise.all([modelReady, extra]).then(
    () => life.markReady(),
    (e: unknown) => {
      life.markFailed(e as Error);
      throw e;
    },
  );
  ready.catch(() => undefined); // reported through `ready` and /health
  if (given && !options.loading) await ready;
  return server;
}
