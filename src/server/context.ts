/**
 * What a route module is given: the app core (fastify, request counter, CORS headers) and the
 * registry of served models. Each routes/*.ts exports one `registerXRoutes(ctx)`.
 */
import type { App } from './app.js';
import type { ModelRegistry } from './served-model.js';

export interface RouteContext extends App {
  models: ModelRegistry;
  /** Date.now() when the server was created (process_uptime_seconds). */
  startedAt: number;
}
