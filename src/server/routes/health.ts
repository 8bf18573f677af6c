/**
 * GET /health: the server's state and its slots (llama-server's shape), no API key needed.
 */
import type { RouteContext } from '../context.js';

export function registerHealthRoutes(ctx: RouteContext): void {
  ctx.app.get('/health', async () => {
    const [first] = ctx.models.loaded();
    let active = 0;
    let queued = 0;
    let parallel = 0;
    for (const m of ctx.models.loaded()) {
      const s = m.scheduler.stats();
      active += s.active;
      queued += s.queued;
      parallel += m.scheduler.parallel;
    }
    return { status: 'ok', model: first?.id ?? ctx.models.ids()[0], slots_idle: Math.max(0, parallel - active), slots_processing: active, queue: queued };
  });
}
