/**
 * OpenAI tools / function calling for Gemma, which has no tool-call tokens: the generic format of
 * llama.cpp's server. The tools and the expected answer format are described in the system
 * instruction (folded into the first user turn by Gemma's chat format), and the answer is
 * constrained (src/generate/constraint) to one JSON object:
 *
 *   {"tool_calls": [{"name": "<tool>", "arguments": {...}}, ...]}   a call of declared tools
 *   {"response": "<text>"}                                          a plain answer (tool_choice "auto")
 *
 * Each call's `arguments` follows its tool's `parameters` schema (anyOf over the tools, each
 * alternative pinning `name` with const). The server maps the first form to `message.tool_calls`
 * (finish_reason "tool_calls") and the second to `message.content` (finish_reason "stop").
 *
 * The exact system text (toolSystemText), for tools f and g:
 *
 *   You can call these tools (one per line: name, description, parameters as a JSON schema):
 *   {"name":"f","description":"...","parameters":{...}}
 *   {"name":"g","parameters":{...}}
 *
 * followed by a blank line and one instruction (CALLS = `{"tool_calls": [{"name": "<tool name>",
 * "arguments": {<arguments>}}]}`):
 *
 *   auto:      To call tools, reply with only the JSON object CALLS (one or more calls). To answer
 *              without a tool, reply with only the JSON object {"response": "<your answer>"}.
 *   required:  Call tools: reply with only the JSON object CALLS (one or more calls).
 *   named f:   Call the tool "f": reply with only the JSON object {"tool_calls": [{"name": "f",
 *              "arguments": {<arguments>}}]}.
 *
 * (each on one line; "(exactly one call)" when parallel_tool_calls is false). tool_choice "none"
 * adds no text and no constraint. Conversation history: an assistant message's tool_calls render
 * as the JSON the model would have written (`{"tool_calls":[{"name":"f","arguments":{...}}]}`,
 * after its content if any); consecutive `tool` messages render as one user turn of
 * `Tool result (f, call_1): <content>` paragraphs.
 */
import { randomBytes } from 'node:crypto';
import type { JsonSchema, ResponseFormat } from '../generate/constraint/index.js';
import { jsonSchemaGrammar } from '../generate/constraint/index.js';
import type { ChatMessage } from '../tokenizer/types.js';
import { HttpError, wellFormed } from './openai.js';
import type { ChatMessageIn } from './schemas.js';

/** OpenAI allows 128 tools per request. */
export const MAX_TOOLS = 128;
const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export interface ToolSpec {
  name: string;
  description?: string;
  /** The arguments' JSON schema (absent: a function without parameters, arguments {}). */
  parameters?: Record<string, unknown>;
}

export type ToolChoice = { mode: 'none' } | { mode: 'auto' } | { mode: 'required' } | { mode: 'function'; name: string };

/** A request's tools, when they are in play (tool_choice is not "none" and there are tools). */
export interface ToolConfig {
  tools: ToolSpec[];
  choice: Exclude<ToolChoice, { mode: 'none' }>;
  parallel: boolean;
}

export interface ToolCallOut {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

function bad(param: string, message: string): HttpError {
  return new HttpError(400, message, { param, code: 'invalid_value' });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Schema compiler messages name response_format; here the problem is in a tool's parameters. */
function paramsError(i: number, e: unknown): HttpError {
  const msg = (e as Error).message.replace(/^response_format schema/, `tools[${i}].function.parameters`);
  return bad('tools', msg.startsWith(`tools[${i}]`) ? msg : `tools[${i}].function.parameters: ${msg}`);
}

/** Parameter schemas that compiled (JSON text), most recent last: a client resends the same tools. */
const validParameters = new Set<string>();

/** 400 unless the schema compiles with the structured-output compiler. */
function checkParameters(schema: Record<string, unknown>, i: number): void {
  let key: string;
  try {
    key = JSON.stringify(schema);
  } catch (e) {
    // nested past the engine's stack (the compiler itself refuses depths over 128)
    throw paramsError(i, new Error(`not serializable as JSON (${(e as Error).message})`));
  }
  if (validParameters.delete(key)) {
    validParameters.add(key);
    return;
  }
  try {
    if (!jsonSchemaGrammar(schema).initial()) throw new Error('it accepts no JSON value');
  } catch (e) {
    throw paramsError(i, e);
  }
  validParameters.add(key);
  if (validParameters.size > 256) validParameters.delete(validParameters.values().next().value!);
}

/**
 * The request's `tools`, `tool_choice` and `parallel_tool_calls`, validated (400s with param
 * "tools" / "tool_choice" / "parallel_tool_calls" naming the problem); undefined when no tools
 * are in play (none given, or tool_choice "none").
 */
export function toolConfigOf(rawTools: unknown, rawChoice: unknown, rawParallel: unknown): ToolConfig | undefined {
  const tools: ToolSpec[] = [];
  if (rawTools !== undefined && rawTools !== null) {
    if (!Array.isArray(rawTools)) throw bad('tools', 'tools must be an array of {"type": "function", "function": {"name", "description"?, "parameters"?}}');
    if (rawTools.length > MAX_TOOLS) throw bad('tools', `at most ${MAX_TOOLS} tools per request, got ${rawTools.length}`);
    const seen = new Set<string>();
    rawTools.forEach((t, i) => {
      if (!isObject(t) || t.type !== 'function') throw bad('tools', `tools[${i}]: only {"type": "function", "function": {...}} tools are supported`);
      const f = t.function;
      if (!isObject(f)) throw bad('tools', `tools[${i}].function must be an object {"name", "description"?, "parameters"?}`);
      if (typeof f.name !== 'string' || !NAME.test(f.name)) throw bad('tools', `tools[${i}].function.name must be 1-64 characters of a-z, A-Z, 0-9, _ and -, got ${JSON.stringify(f.name)}`);
      if (seen.has(f.name)) throw bad('tools', `tools[${i}].function.name: the name "${f.name}" is declared twice`);
      seen.add(f.name);
      if (f.description !== undefined && f.description !== null && typeof f.description !== 'string') throw bad('tools', `tools[${i}].function.description must be a string`);
      if (f.strict !== undefined && f.strict !== null && typeof f.strict !== 'boolean') throw bad('tools', `tools[${i}].function.strict must be a boolean`);
      const spec: ToolSpec = { name: f.name };
      if (typeof f.description === 'string' && f.description !== '') spec.description = wellFormed(f.description);
      if (f.parameters !== undefined && f.parameters !== null) {
        if (!isObject(f.parameters)) throw bad('tools', `tools[${i}].function.parameters must be a JSON schema object`);
        checkParameters(f.parameters, i);
        spec.parameters = f.parameters;
      }
      tools.push(spec);
    });
  }
  let choice: ToolChoice;
  if (rawChoice === undefined || rawChoice === null) choice = tools.length ? { mode: 'auto' } : { mode: 'none' };
  else if (rawChoice === 'none' || rawChoice === 'auto' || rawChoice === 'required') choice = { mode: rawChoice };
  else if (isObject(rawChoice) && rawChoice.type === 'function' && isObject(rawChoice.function) && typeof rawChoice.function.name === 'string') {
    const name = rawChoice.function.name;
    if (!tools.some((t) => t.name === name)) throw bad('tool_choice', `tool_choice names the function "${name}", which is not in tools`);
    choice = { mode: 'function', name };
  } else throw bad('tool_choice', 'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name"}}');
  if (choice.mode === 'required' && tools.length === 0) throw bad('tool_choice', 'tool_choice "required" needs tools');
  if (rawParallel !== undefined && rawParallel !== null && typeof rawParallel !== 'boolean') throw bad('parallel_tool_calls', 'parallel_tool_calls must be a boolean');
  if (choice.mode === 'none' || tools.length === 0) return undefined;
  return { tools, choice, parallel: rawParallel !== false };
}

// ------------------------------------------------------------ prompt

const ARGS = '{<arguments>}';

/** The system instruction describing the tools and the answer format (see the module comment). */
export function toolSystemText(config: ToolConfig): string {
  const lines = config.tools.map((t) =>
    JSON.stringify({ name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: t.parameters ?? { type: 'object', properties: {} } }),
  );
  const count = config.parallel ? '(one or more calls)' : '(exactly one call)';
  const calls = `{"tool_calls": [{"name": "<tool name>", "arguments": ${ARGS}}]}`;
  const choice = config.choice;
  const instruction =
    choice.mode === 'auto'
      ? `To call tools, reply with only the JSON object ${calls} ${count}. To answer without a tool, reply with only the JSON object {"response": "<your answer>"}.`
      : choice.mode === 'required'
        ? `Call tools: reply with only the JSON object ${calls} ${count}.`
        : `Call the tool ${JSON.stringify(choice.name)}: reply with only the JSON object {"tool_calls": [{"name": ${JSON.stringify(choice.name)}, "arguments": ${ARGS}}]}.`;
  return `You can call these tools (one per line: name, description, parameters as a JSON schema):\n${lines.join('\n')}\n\n${instruction}`;
}

function textOf(content: ChatMessageIn['content']): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return wellFormed(content);
  return wellFormed(content.map((p) => p.text).join(''));
}

/** An assistant message's tool calls as the JSON the model writes (arguments parsed back when they are JSON). */
function callsJson(calls: NonNullable<ChatMessageIn['tool_calls']>): string {
  return JSON.stringify({
    tool_calls: calls.map((c) => {
      let args: unknown = c.function.arguments;
      if (typeof args === 'string') {
        try {
          const parsed: unknown = JSON.parse(args);
          JSON.stringify(parsed); // nested too deeply to write back: keep the string
          args = parsed;
        } catch {
          // not JSON (or too deep): kept as the string it is
        }
      }
      return { name: c.function.name, arguments: args };
    }),
  });
}

/**
 * The request's messages as plain chat messages for the Gemma turn renderer: `developer` as
 * `system`; assistant tool calls as their JSON; runs of `tool` messages as one user turn of
 * "Tool result (name, id): content" paragraphs; and, when tools are in play, the tool
 * instruction (toolSystemText) as a system message after the leading system messages (so it
 * follows the caller's own system prompt in the first user turn). Throws a 400 for a tool message
 * without tool_call_id.
 */
export function chatMessagesOf(messages: readonly ChatMessageIn[], tools: ToolConfig | undefined): ChatMessage[] {
  const out: ChatMessage[] = [];
  const names = new Map<string, string>(); // tool_call_id -> function name
  let toolRun: string[] | undefined;
  messages.forEach((m, i) => {
    if (m.role === 'tool') {
      const id = m.tool_call_id;
      if (typeof id !== 'string' || id === '') throw bad(`messages.${i}.tool_call_id`, `messages[${i}]: a tool message needs its tool_call_id`);
      const name = names.get(id) ?? (typeof m.name === 'string' && m.name ? m.name : undefined);
      const para = `Tool result (${name ? `${name}, ` : ''}${id}): ${textOf(m.content).trim()}`;
      if (toolRun) toolRun.push(para);
      else {
        toolRun = [para];
        out.push({ role: 'user', content: '' });
      }
      out[out.length - 1]!.content = toolRun.join('\n\n');
      return;
    }
    toolRun = undefined;
    const role = m.role === 'developer' ? 'system' : m.role;
    let content = textOf(m.content);
    if ((m.role === 'assistant' || m.role === 'model') && m.tool_calls && m.tool_calls.length) {
      for (const c of m.tool_calls) names.set(c.id, c.function.name);
      const json = callsJson(m.tool_calls);
      content = content.trim() ? `${content.trim()}\n${json}` : json;
    }
    out.push({ role, content });
  });
  if (tools) {
    let at = 0;
    while (at < out.length && out[at]!.role === 'system') at++;
    out.splice(at, 0, { role: 'system', content: toolSystemText(tools) });
  }
  return out;
}

// ------------------------------------------------------------ output constraint

const VALUE_KEYWORDS = new Set(['const', 'enum', 'default', 'examples']);
const SCHEMA_MAPS = new Set(['properties', '$defs', 'definitions', 'patternProperties', 'dependentSchemas']);

/** Prefix a tool schema's local $refs (`#...` -> `BASE...`) so that they resolve inside the composed schema. */
function rebase(schema: unknown, base: string): unknown {
  if (Array.isArray(schema)) return schema.map((s) => rebase(s, base));
  if (!isObject(schema)) return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === '$ref' && typeof v === 'string' && (v === '#' || v.startsWith('#/'))) out[k] = base + v.slice(1);
    else if (VALUE_KEYWORDS.has(k)) out[k] = v; // values, not schemas
    else if (SCHEMA_MAPS.has(k) && isObject(v)) out[k] = Object.fromEntries(Object.entries(v).map(([name, s]) => [name, rebase(s, base)]));
    else out[k] = rebase(v, base);
  }
  return out;
}

/**
 * The JSON schema of the answer: the tool_calls form (auto, required, named) or the response
 * form (auto only). Each tool's parameters sit under $defs (their local $refs rebased).
 */
export function toolAnswerSchema(config: ToolConfig): Record<string, unknown> {
  const choice = config.choice;
  const tools = choice.mode === 'function' ? config.tools.filter((t) => t.name === choice.name) : config.tools;
  const defs: Record<string, unknown> = {};
  const calls = tools.map((t, i) => {
    const key = `tool${i}`;
    defs[key] = rebase(t.parameters ?? { type: 'object', properties: {} }, `#/$defs/${key}`);
    return {
      type: 'object',
      properties: { name: { const: t.name }, arguments: { $ref: `#/$defs/${key}` } },
      required: ['name', 'arguments'],
      additionalProperties: false,
    };
  });
  const one = choice.mode === 'function' || !config.parallel;
  const callsForm = {
    type: 'object',
    properties: { tool_calls: { type: 'array', items: calls.length === 1 ? calls[0] : { anyOf: calls }, minItems: 1, ...(one ? { maxItems: 1 } : {}) } },
    required: ['tool_calls'],
    additionalProperties: false,
  };
  const responseForm = { type: 'object', properties: { response: { type: 'string' } }, required: ['response'], additionalProperties: false };
  const root = choice.mode === 'auto' ? { anyOf: [callsForm, responseForm] } : callsForm;
  return { $defs: defs, ...root };
}

/** The response format that constrains a tool answer. */
export function toolResponseFormat(config: ToolConfig): ResponseFormat {
  return { type: 'json_schema', schema: toolAnswerSchema(config) as JsonSchema };
}

/** A finished tool answer: calls, a plain response, or undefined when the text is not a complete answer. */
export type ToolAnswer = { kind: 'calls'; calls: ToolCallOut[] } | { kind: 'response'; text: string };

export function newToolCallId(): string {
  return `call_${randomBytes(12).toString('hex')}`;
}

/** Parse a generated tool answer (undefined when it is cut or not one of the two forms). */
export function parseToolAnswer(text: string): ToolAnswer | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(v)) return undefined;
  if (Array.isArray(v.tool_calls) && v.tool_calls.length > 0) {
    const calls: ToolCallOut[] = [];
    for (const c of v.tool_calls) {
      if (!isObject(c) || typeof c.name !== 'string') return undefined;
      let args: string;
      try {
        args = JSON.stringify(c.arguments ?? {});
      } catch {
        return undefined; // nested past the engine's stack (a very long generation): the raw text is returned
      }
      calls.push({ id: newToolCallId(), type: 'function', function: { name: c.name, arguments: args } });
    }
    return { kind: 'calls', calls };
  }
  if (typeof v.response === 'string') return { kind: 'response', text: v.response };
  return undefined;
}
