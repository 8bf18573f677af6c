/**
 * The OpenAI-compatible HTTP server (fastify), public as `gemma-ts/server`:
 *
 * ```ts
 * import { loadModel } from 'gemma-ts';
 * import { createServer } from 'gemma-ts/server';
 * const { model, tokenizer } = await loadModel('demo');
 * const server = await createServer({ model, tokenizer });
 * console.log(await server.listen({ port: 8080 }));
 * ```
 *
 * @packageDocumentation
 * @module gemma-ts/server
 */
export { createServer, type ServerOptions, type GemmaServer } from '../server/server.js';
export type { SchedulerOptions } from '../generate/scheduler.js';
// Extensions the `gemma serve` flags use: ShieldGemma guardrails / moderation (--guard) and SAE routes (--sae).
export { attachShieldGuard, registerGuardHooks, registerModerationRoute, type AttachGuardOptions, type ModerationRouteOptions } from '../safety/server-routes.js';
export { registerSaeRoutes, type SaeRouteOptions } from '../interpret/server-routes.js';
