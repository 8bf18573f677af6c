/**
 * `gemma serve`: an OpenAI-compatible HTTP server over the continuous-batching scheduler.
 *
 *   POST /v1/chat/completions   chat (stream and non-stream)        routes/chat.ts
 *   POST /v1/completions        text completion                     routes/completions.ts
 *   GET  /v1/models             the served model(s)                 routes/models.ts
 *   GET  /health                readiness and slots (no auth)       routes/health.ts
 *   GET  /metrics               Prometheus text                     routes/metrics.ts
 *   GET  /                      the chat page (no auth)             routes/page.ts
 *
 * The core (app.ts) sets up fastify, JSON bodies, CORS, the API key and OpenAI-shaped errors
 * (`{ error: { message, type, param, code } }`); lifecycle.ts listens and shuts down.
 */
import type { FastifyInstance } from 'fastify';
import type { ChatRenderer } from '../generate/chat-session.js';
import { Scheduler, type SchedulerOptions } from '../generate/scheduler.js';
import type { LanguageModel } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { createApp } from './app.js';
import type { RouteContext } from './context.js';
import { Lifecycle } from './lifecycle.js';
import { registerChatRoutes } from './routes/chat.js';
import { registerCompletionRoutes } from './routes/completions.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMetricsRoute } from './routes/metrics.js';
import { registerModelRoutes } from './routes/models.js';
import { registerPageRoutes } from './routes/page.js';
import { servedModel, singleModel } from './served-model.js';

export { checkBearer, toErrorBody } from './app.js';
export { completionIds } from './routes/chat.js';
export { publicDir } from './routes/page.js';

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

export async function createServer(options: ServerOptions): Promise<GemmaServer> {
  const { model, tokenizer } = options;
  const modelId = options.modelId ?? 'gemma';
  const scheduler = new Scheduler(model, tokenizer, options);
  const core = createApp(options);
  const ctx: RouteContext = { ...core, models: singleModel(servedModel(modelId, model, tokenizer, scheduler, options.render)), startedAt: Date.now() };

  if (options.configure) await options.configure(core.app);
  registerPageRoutes(ctx);
  registerHealthRoutes(ctx);
  registerModelRoutes(ctx);
  registerMetricsRoute(ctx);
  registerChatRoutes(ctx);
  registerCompletionRoutes(ctx);

  const lifecycle = new Lifecycle(core.app, {
    tokenizers: () => (tokenizer && options.prebuildConstraint !== false ? [tokenizer] : []),
    schedulers: () => [scheduler],
  });
  return {
    app: core.app,
    scheduler,
    modelId,
    listen: (o) => lifecycle.listen(o),
    close: () => lifecycle.close(),
  };
}
