/**
 * What a route module is given: the app core (fastify, request counter, CORS headers), the
 * served models and the server's lifecycle. Each routes/*.ts exports one `registerXRoutes(ctx)`.
 */
import type { App } from './app.js';
import type { Lifecycle } from './lifecycle.js';
import type { ModelPool } from './model-pool.js';

export interface RouteContext extends App {
  models: ModelPool;
  lifecycle: Lifecycle;
  /** Prompt tokens hashed into the affinity key (affinity.ts). */
  affinityTokens: number;
  /** Date.now() when the server was created (process_uptime_seconds). */
  startedAt: number;
}
