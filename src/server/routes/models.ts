/**
 * GET /v1/models and /v1/models/:id: the models this server answers for (OpenAI's list shape,
 * with `status`: loaded, loading or unloaded, and llama-server's `meta` of a loaded model: n_ctx,
 * n_vocab).
 */
import type { RouteContext } from '../context.js';
import { HttpError } from '../openai.js';

export function registerModelRoutes(ctx: RouteContext): void {
  const modelObject = (id: string) => {
    const d = ctx.models.describe(id);
    if (!d) return undefined;
    return { id: d.id, object: 'model', created: d.created, owned_by: 'gemma-ts', status: d.status, ...(d.meta ? { meta: d.meta } : {}) };
  };
  ctx.app.get('/v1/models', async () => ({ object: 'list', data: ctx.models.ids().map(modelObject) }));
  ctx.app.get('/v1/models/:id', async (req) => {
    const id = (req.params as { id: string }).id;
    const m = modelObject(id);
    if (!m) throw new HttpError(404, `The model '${id}' does not exist`, { param: 'model', code: 'model_not_found' });
    return m;
  });
}
