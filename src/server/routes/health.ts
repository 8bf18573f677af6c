/**
 * Probes, no API key needed:
 *   GET /health       readiness: 200 {status: "ok", slots...} when the server takes requests;
 *                     503 {status: "loading" | "draining" | "error"} otherwise
 *   GET /health/live  liveness: 200 while the process runs (also while draining)
 */
import type { RouteContext } from '../context.js';

const STATUS_OF = { starting: 'loading', ready: 'ok', draining: 'draining', closed: 'draining', failed: 'error' } as const;

export function registerHealthRoutes(ctx: RouteContext): void {
  ctx.app.get('/health', async (_req, reply) => {
    const state = ctx.lifecycle.state;
    let active = 0;
    let queued = 0;
    let parallel = 0;
    for (const m of ctx.models.loaded()) {
      const s = m.scheduler.stats();
      active += s.active;
      queued += s.queued;
      parallel += m.scheduler.parallel;
    }
    const body = {
      status: STATUS_OF[state],
      model: ctx.models.ids()[0],
      slots_idle: Math.max(0, parallel - active),
      slots_processing: active,
      queue: queued,
      ...(state === 'failed' ? { error: ctx.lifecycle.error?.message ?? 'unknown error' } : {}),
      ...(state !== 'ready' ? { requests_in_flight: ctx.lifecycle.requestsInFlight } : {}),
    };
    if (state !== 'ready') reply.code(503);
    return body;
  });
  ctx.app.get('/health/live', async () => ({ status: 'alive' }));
}
