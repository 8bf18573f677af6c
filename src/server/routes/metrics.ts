/**
 * GET /metrics: Prometheus text (metrics.ts) of the request counters, the schedulers (summed
 * over the served models), the lifecycle and the event-loop delay histogram (event-loop.ts).
 */
import type { RouteContext } from '../context.js';
import { backendMemoryBytes, renderMetrics, sumStats } from '../metrics.js';

export function registerMetricsRoute(ctx: RouteContext): void {
  ctx.app.get('/metrics', async (_req, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    const loaded = ctx.models.loaded();
    const backend = loaded.map((m) => backendMemoryBytes(m.model)).filter((b): b is number => b !== undefined);
    const text = renderMetrics(ctx.requests, sumStats(ctx.models.stats()), {
      parallel: loaded.reduce((a, m) => a + m.scheduler.parallel, 0),
      contextSize: loaded.reduce((a, m) => Math.max(a, m.scheduler.contextSize), 0),
      uptimeSeconds: (Date.now() - ctx.startedAt) / 1000,
      requestsInFlight: ctx.lifecycle.requestsInFlight,
      ready: ctx.lifecycle.state === 'ready',
      modelsLoaded: loaded.length,
      modelLoads: ctx.models.loads,
      modelUnloads: ctx.models.unloads,
      ...(backend.length ? { backendMemoryBytes: backend.reduce((a, b) => a + b, 0) } : {}),
    });
    return text + ctx.lifecycle.eventLoop.render();
  });
}
