/**
 * LoRA adapters per request, as llama-server does it. The adapters (`gemma serve --lora`) are
 * loaded into the model once, by id in the order given; each has a global scale.
 *
 * - A request's `lora: [{id, scale}]` sets the scales of its own sequences: listed adapters get
 *   their scale, the others 0. Without the field (or with an empty list) the global scales apply.
 * - POST /lora-adapters `[{id, scale}]` sets the global scales the same way (unlisted -> 0).
 *
 * Sequences with different adapters share the scheduler's steps: the model adds each adapter's
 * delta per row, without merging.
 */
import { z } from 'zod';
import type { LanguageModel } from '../model/types.js';
import { HttpError } from './openai.js';

/** The largest |scale| accepted (llama.cpp takes any float; this keeps logits finite). */
export const MAX_LORA_SCALE = 100;

/** `[{id, scale}]`, the shape of both the request field and the POST body. */
export const loraListSchema = z
  .array(z.object({ id: z.number().int().min(0).max(1_000_000), scale: z.number().min(-MAX_LORA_SCALE).max(MAX_LORA_SCALE) }))
  .max(1024);

export type LoraList = z.infer<typeof loraListSchema>;

/**
 * The scale of every adapter of `model` under `list` (listed ids: their scale, others 0); a 400
 * naming the entry for an id the model does not have.
 */
export function loraScales(model: LanguageModel, list: LoraList, param: string, modelId?: string): number[] {
  const adapters = model.loraAdapters?.() ?? [];
  const which = modelId === undefined ? 'this server' : `model '${modelId}'`;
  const scales = adapters.map(() => 0);
  list.forEach(({ id, scale }, i) => {
    if (id >= adapters.length) {
      const have = adapters.length === 0 ? `${which} has no LoRA adapters (the default model takes them: --lora PATH)` : `${which} has ${adapters.length}: ids 0..${adapters.length - 1}, listed by GET /lora-adapters`;
      throw new HttpError(400, `${param}[${i}].id: no LoRA adapter with id ${id} (${have})`, { param: `${param}.${i}.id`, code: 'invalid_value' });
    }
    scales[id] = scale;
  });
  return scales;
}

/** A request's `lora` field as the scheduler's per-sequence scales (undefined: the global ones). */
export function requestLora(model: LanguageModel, list: LoraList | null | undefined, modelId?: string): number[] | undefined {
  if (!list || list.length === 0) return undefined;
  return loraScales(model, list, 'lora', modelId);
}
