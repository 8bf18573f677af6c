/**
 * Request bodies of the OpenAI-compatible endpoints, validated with zod. Unknown fields are
 * ignored (like llama.cpp's server); known fields must have the right type and range.
 */
import { z } from 'zod';
import type { JsonSchema, ResponseFormat } from '../generate/constraint/index.js';
import { loraListSchema } from './lora.js';

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** Limits that keep one request from asking for absurd amounts of work. */
export const LIMITS = {
  maxN: 16,
  maxStops: 16,
  maxStopLength: 256,
  maxMessages: 4096,
  maxTopLogprobs: 20,
  maxCompletionLogprobs: 5,
} as const;

const stop = z
  .union([z.string().min(1).max(LIMITS.maxStopLength), z.array(z.string().min(1).max(LIMITS.maxStopLength)).max(LIMITS.maxStops)])
  .nullish();

/** Sampling fields shared by both endpoints (OpenAI's plus llama.cpp's extras). */
const sampling = {
  model: z.string().min(1).max(512),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  max_tokens: int(0, Number.MAX_SAFE_INTEGER).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  top_k: int(0, 1_000_000).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(100).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  seed: int(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER).nullish(),
  n: int(1, LIMITS.maxN).nullish(),
  stop,
  ignore_eos: z.boolean().nullish(),
  user: z.string().max(512).nullish(),
  // token id (as a string, OpenAI's JSON shape) -> bias in [-100, 100]
  logit_bias: z
    .record(z.string().regex(/^\d{1,9}$/, 'logit_bias keys are token ids'), z.number().min(-100).max(100))
    .refine((b) => Object.keys(b).length <= 1024, 'logit_bias holds at most 1024 tokens')
    .nullish(),
  // Checked by responseFormatOf (error messages name the schema keyword at fault).
  response_format: z.unknown().nullish(),
  // llama-server's per-request LoRA scales [{id, scale}] (lora.ts).
  lora: loraListSchema.nullish(),
};

/**
 * OpenAI's response_format -> the generator's: {"type": "text"}, {"type": "json_object"} (with
 * llama.cpp's optional "schema"), {"type": "json_schema", "json_schema": {"name", "schema",
 * "strict"?, "description"?}}. Throws an Error whose message says what is wrong (the caller
 * answers 400 with param "response_format").
 */
export function responseFormatOf(raw: unknown): ResponseFormat | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error('response_format must be an object such as {"type": "json_object"}');
  const rf = raw as Record<string, unknown>;
  switch (rf.type) {
    case 'text':
      return undefined;
    case 'json_object':
      return rf.schema === undefined || rf.schema === null ? { type: 'json_object' } : { type: 'json_object', schema: rf.schema as JsonSchema };
    case 'json_schema': {
      const js = rf.json_schema;
      if (typeof js !== 'object' || js === null || Array.isArray(js)) throw new Error('response_format.json_schema must be an object {"name", "schema", "strict"?}');
      const j = js as Record<string, unknown>;
      if (j.name !== undefined && (typeof j.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(j.name))) throw new Error('response_format.json_schema.name must be 1-64 characters of a-z, A-Z, 0-9, _ and -');
      if (j.strict !== undefined && j.strict !== null && typeof j.strict !== 'boolean') throw new Error('response_format.json_schema.strict must be a boolean');
      if (j.schema === undefined || j.schema === null) throw new Error('response_format.json_schema.schema is required');
      return { type: 'json_schema', schema: j.schema as JsonSchema };
    }
    default:
      throw new Error(`response_format.type must be "text", "json_object" or "json_schema", got ${JSON.stringify(rf.type)}`);
  }
}

/** Fields that must be absent or empty: [field, why]. */
export const UNSUPPORTED_FIELDS: ReadonlyArray<readonly [string, string]> = [
  ['tools', 'tool calling is only supported on /v1/chat/completions'],
  ['functions', 'function calling is not supported'],
  ['tool_choice', 'tool calling is only supported on /v1/chat/completions'],
  ['function_call', 'function calling is not supported'],
  ['audio', 'audio output is not supported'],
  ['prediction', 'predicted outputs are not supported'],
];

/** The first unsupported feature a raw body asks for, if any (fields in `allowed` are supported by the endpoint). */
export function unsupportedField(body: unknown, allowed?: ReadonlySet<string>): { field: string; why: string } | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  for (const [field, why] of UNSUPPORTED_FIELDS) {
    if (allowed?.has(field)) continue;
    const v = b[field];
    if (v === undefined || v === null || v === 'none' || v === 'auto') continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0) continue;
    return { field, why };
  }
  const mod = b.modalities;
  if (Array.isArray(mod) && mod.some((m) => m !== 'text')) return { field: 'modalities', why: 'only text output is supported' };
  return undefined;
}

const textPart = z.object({ type: z.literal('text'), text: z.string() });

/** An assistant message's tool call (OpenAI's shape; arguments as a JSON string, or an object as some clients send). */
const toolCallIn = z.object({
  id: z.string().min(1).max(256),
  type: z.literal('function').nullish(),
  function: z.object({ name: z.string().min(1).max(256), arguments: z.union([z.string(), z.record(z.string(), z.unknown())]) }),
});

export const chatMessageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'model', 'tool']),
  content: z.union([z.string(), z.array(textPart).max(1024)]).nullish(),
  name: z.string().max(256).nullish(),
  /** Assistant messages: the calls it made (content may then be null). */
  tool_calls: z.array(toolCallIn).max(1024).nullish(),
  /** Tool messages: the call this is the result of (required for role "tool"; checked by the route). */
  tool_call_id: z.string().max(256).nullish(),
});

export const chatRequestSchema = z.object({
  ...sampling,
  messages: z.array(chatMessageSchema).min(1).max(LIMITS.maxMessages),
  max_completion_tokens: int(0, Number.MAX_SAFE_INTEGER).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: int(0, LIMITS.maxTopLogprobs).nullish(),
  // Checked by toolConfigOf (tools.ts: error messages name the tool and the schema keyword at fault).
  tools: z.unknown().nullish(),
  tool_choice: z.unknown().nullish(),
  parallel_tool_calls: z.boolean().nullish(),
});

const tokenIds = z.array(int(0, 2 ** 31 - 1)).min(1);

export const completionRequestSchema = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1).max(LIMITS.maxN), tokenIds, z.array(tokenIds).min(1).max(LIMITS.maxN)]),
  echo: z.boolean().nullish(),
  logprobs: int(0, LIMITS.maxCompletionLogprobs).nullish(),
  suffix: z.string().nullish(),
  best_of: int(1, 1).nullish(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type ChatMessageIn = z.infer<typeof chatMessageSchema>;

/** One line naming the first problems of a failed parse, and the field at fault. */
export function describeZodError(error: z.ZodError): { message: string; param: string | null } {
  const issues = error.issues.slice(0, 3);
  const param = issues[0] && issues[0].path.length ? issues[0].path.join('.') : null;
  const message = issues
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
  return { message: `invalid request: ${message}`, param };
}
