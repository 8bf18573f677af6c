/**
 * The default model's LoRA adapters (llama-server's endpoints; API key required like /v1/*):
 *   GET  /lora-adapters   [{id, path, scale}]: the adapters and their global scales
 *   POST /lora-adapters   body [{id, scale}]: set the global scales (unlisted adapters -> 0)
 * Requests choose their own with the `lora` field (../lora.ts).
 */
import type { RouteContext } from '../context.js';
import { loraListSchema, loraScales } from '../lora.js';
import { HttpError } from '../openai.js';
import { describeZodError } from '../schemas.js';

export function registerLoraRoutes(ctx: RouteContext): void {
  const model = async () => (await ctx.models.resolve(ctx.models.ids()[0]!)).model;
  ctx.app.get('/lora-adapters', async () => ((await model()).loraAdapters?.() ?? []).map(({ id, path, scale }) => ({ id, path, scale })));
  ctx.app.post('/lora-adapters', async (req) => {
    if (!Array.isArray(req.body)) throw new HttpError(400, 'expected a JSON array [{"id": 0, "scale": 1.0}, ...] (Content-Type: application/json)', { code: 'invalid_value' });
    const parsed = loraListSchema.safeParse(req.body);
    if (!parsed.success) {
      const d = describeZodError(parsed.error);
      throw new HttpError(400, d.message, { param: d.param, code: 'invalid_value' });
    }
    const m = await model();
    const scales = loraScales(m, parsed.data, 'body');
    scales.forEach((s, id) => m.setLoraScale!(id, s));
    return { success: true };
  });
}
