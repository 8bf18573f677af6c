/**
 * GET /metrics: Prometheus text (metrics.ts) of the request counters and the scheduler.
 */
import type { RouteContext } from '../context.js';
import { renderMetrics } from '../metrics.js';

export function registerMetricsRoute(ctx: RouteContext): void {
  ctx.app.get('/metrics', async (_req, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    const [served] = ctx.models.loaded();
    const scheduler = served!.scheduler;
    return renderMetrics(ctx.requests, scheduler.stats(), { parallel: scheduler.parallel, contextSize: scheduler.contextSize, uptimeSeconds: (Date.now() - ctx.startedAt) / 1000 });
  });
}
