/**
 * Chat formatting with the checkpoint's own Jinja chat_template (@huggingface/jinja), or a
 * built-in Gemma template when the checkpoint has none:
 *   <bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n
 * The built-in one maps assistant -> model and, like Gemma 3's, folds a system message into the
 * first user turn. Whatever a template raises becomes a TemplateError with its message.
 */
import { Template } from '@huggingface/jinja';
import { TemplateError } from '../errors.js';
import type { ChatMessage, Tokenizer } from './types.js';

/** Gemma's chat template (Jinja), used for checkpoints that ship none. */
export const GEMMA_CHAT_TEMPLATE =
  "{{ bos_token }}" +
  "{%- if messages[0]['role'] == 'system' -%}" +
  "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}" +
  "{%- set loop_messages = messages[1:] -%}" +
  "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}" +
  "{%- for message in loop_messages -%}" +
  "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}" +
  "{%- endif -%}" +
  "{%- if message['role'] == 'assistant' or message['role'] == 'model' -%}{%- set role = 'model' -%}" +
  "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}" +
  "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + (message['content'] | trim) + '<end_of_turn>\n' }}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

export interface ChatOptions {
  /** Append the "<start_of_turn>model\n" prompt (default true). */
  addGenerationPrompt?: boolean;
  /** A Jinja template to use instead of the tokenizer's. */
  template?: string;
  /** Extra variables for the template (e.g. tools, documents). */
  variables?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new TemplateError(`chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
    if (compiled.size > 32) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

function checkMessages(messages: ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new TemplateError('messages must be an array of {role, content}');
  if (messages.length === 0) throw new TemplateError('messages is empty');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new TemplateError(`message ${i} is not an object`);
    if (typeof m.role !== 'string' || m.role.length === 0) throw new TemplateError(`message ${i} has no role`);
    if (typeof m.content !== 'string') throw new TemplateError(`message ${i} (${m.role}) has no text content`);
  });
}

/** Renders the conversation to text (special tokens as literal text, e.g. "<bos><start_of_turn>user\n..."). */
export function renderChat(tokenizer: Tokenizer, messages: ChatMessage[], options: ChatOptions = {}): string {
  checkMessages(messages);
  const source = options.template ?? tokenizer.chatTemplate ?? GEMMA_CHAT_TEMPLATE;
  const template = compile(source);
  const piece = (id: number): string | undefined => (id >= 0 ? tokenizer.idToPiece(id) : undefined);
  const vars: Record<string, unknown> = {
    ...options.variables,
    messages: messages.map((m) => ({ ...m })),
    add_generation_prompt: options.addGenerationPrompt ?? true,
    bos_token: piece(tokenizer.bosId) ?? '',
    eos_token: piece(tokenizer.eosId) ?? '',
    pad_token: piece(tokenizer.padId) ?? '',
  };
  const unk = tokenizer.pieceToId('<unk>');
  if (unk !== undefined) vars.unk_token = '<unk>';
  try {
    return template.render(vars);
  } catch (e) {
    throw new TemplateError((e as Error).message, { cause: e });
  }
}

/**
 * Renders, then encodes with the template's special tokens parsed and no extra <bos> (the
 * template has it). Message contents stay plain text: a user who types "<start_of_turn>" gets
 * those characters, not the control token (the special-token injection hole stays closed).
 * Contents are located in the rendered text in order (as written or trimmed, as templates do);
 * one that holds special-token text and cannot be located is refused.
 */
export function encodeChat(tokenizer: Tokenizer, messages: ChatMessage[], options: ChatOptions = {}): number[] {
  const text = renderChat(tokenizer, messages, options);
  const ranges: Array<[number, number]> = [];
  let from = 0;
  for (const m of messages) {
    for (const candidate of [m.content, m.content.trim()]) {
      if (candidate.length === 0) break;
      const at = text.indexOf(candidate, from);
      if (at >= 0) {
        ranges.push([at, at + candidate.length]);
        from = at + candidate.length;
        break;
      }
    }
  }
  const ids = tokenizer.encode(text, { parseSpecial: true, addBos: false, plainRanges: ranges });
  // A content the template changed beyond trimming: accept only if it holds no special text.
  for (const m of messages) {
    const inside = ranges.some(([s, e]) => text.slice(s, e) === m.content || text.slice(s, e) === m.content.trim());
    if (!inside && hasSpecialText(tokenizer, m.content)) {
      throw new TemplateError(`cannot keep the ${m.role} message as plain text: the template rewrote content that contains special-token text`);
    }
  }
  return ids;
}

function hasSpecialText(tokenizer: Tokenizer, s: string): boolean {
  return tokenizer.encode(s, { parseSpecial: true, addBos: false }).some((id) => tokenizer.isSpecial(id));
}
