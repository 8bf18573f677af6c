/**
 * A multi-turn chat that keeps its KV cache between turns.
 *
 * Each turn renders the whole conversation with the chat template and compares it with the
 * tokens already in the cache: the common prefix stays, the cache is truncated to it when the
 * rendering differs (e.g. the answer re-tokenizes differently, or the template trims it), and
 * only the rest is prefilled. The model's own answer tokens stay in the cache, so turn N
 * prefills just `<end_of_turn>\n<start_of_turn>user\n...<start_of_turn>model\n`.
 */
import { TokenizerError, UsageError } from '../errors.js';
import type { KVCache, LanguageModel } from '../model/types.js';
import { encodeChat } from '../tokenizer/chat.js';
import type { ChatMessage, Tokenizer } from '../tokenizer/types.js';
import { generate, type GenerateOptions, type GenerationChunk, type GenerationResult } from './generate.js';

/** Renders a conversation to token ids (with <bos>), optionally ending with the model-turn header. */
export type ChatRenderer = (messages: readonly ChatMessage[], options: { addGenerationPrompt: boolean }) => number[];

export interface ChatSessionOptions extends Omit<GenerateOptions, 'cache' | 'signal'> {
  /** A system prompt, sent as the first message of every conversation (also after reset()). */
  system?: string;
  /** KV cache capacity in tokens. Default: min(the model's context, 8192). */
  contextSize?: number;
  /** How to turn messages into ids. Default: defaultChatRenderer(tokenizer). */
  render?: ChatRenderer;
}

/**
 * The Gemma chat format, built from token ids so that user text can never inject control
 * tokens: `<bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n...`.
 * A system message is prepended to the first user turn (as Gemma's templates do); roles
 * `assistant` and `model` both render as `model`; contents are trimmed like the templates do.
 */
export function gemmaTurnRenderer(tokenizer: Tokenizer): ChatRenderer {
  const special = (piece: string): number => {
    const id = tokenizer.pieceToId(piece);
    if (id === undefined) throw new TokenizerError(`the tokenizer has no ${piece} token: it is not a Gemma chat tokenizer`);
    return id;
  };
  const sot = special('<start_of_turn>');
  const eot = special('<end_of_turn>');
  const text = (s: string): number[] => tokenizer.encode(s, { addBos: false, parseSpecial: false });
  return (messages, { addGenerationPrompt }) => {
    const ids = [tokenizer.bosId];
    let pendingSystem: string | undefined;
    for (const m of messages) {
      if (m.role === 'system') {
        pendingSystem = (pendingSystem ? pendingSystem + '\n\n' : '') + m.content.trim();
        continue;
      }
      const role = m.role === 'assistant' || m.role === 'model' ? 'model' : m.role === 'user' ? 'user' : undefined;
      if (!role) throw new UsageError(`unknown chat role "${m.role}" (expected system, user, assistant or model)`);
      let content = m.content.trim();
      if (pendingSystem !== undefined && role === 'user') {
        content = pendingSystem + '\n\n' + content;
        pendingSystem = undefined;
      }
      ids.push(sot, ...text(`${role}\n${content}`), eot, ...text('\n'));
    }
    if (addGenerationPrompt) ids.push(sot, ...text('model\n'));
    return ids;
  };
}

/**
 * The renderer sessions and `run --chat` use by default: the checkpoint's own chat template
 * (Gemma's built-in one when it has none), through encodeChat.
 */
export function defaultChatRenderer(tokenizer: Tokenizer): ChatRenderer {
  return (messages, { addGenerationPrompt }) => encodeChat(tokenizer, [...messages], { addGenerationPrompt });
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * A multi-turn chat that keeps its KV cache between turns: `send(text)` streams the answer as
 * {@link GenerationChunk}s, `ask(text)` returns the whole {@link GenerationResult}.
 */
export class ChatSession {
  readonly model: LanguageModel;
  readonly tokenizer: Tokenizer;
  private readonly options: ChatSessionOptions;
  private readonly render: ChatRenderer;
  private cache: KVCache;
  /** The ids the cache holds, position by position. */
  private cacheIds: number[] = [];
  private history: ChatMessage[] = [];
  private busy = false;
  /** Tokens prefilled by the last turn (the new tokens past the common prefix). */
  lastPrefillTokens = 0;

  constructor(model: LanguageModel, tokenizer: Tokenizer, options: ChatSessionOptions = {}) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.options = options;
    this.render = options.render ?? defaultChatRenderer(tokenizer);
    const ctx = options.contextSize ?? Math.min(model.config.maxPositionEmbeddings, 8192);
    if (!Number.isInteger(ctx) || ctx <= 0) throw new UsageError(`contextSize must be a positive integer, got ${String(ctx)}`);
    this.cache = model.createCache(ctx);
    this.reset();
  }

  /** The conversation so far (system message first when there is one). */
  get messages(): readonly ChatMessage[] {
    return this.history;
  }

  /** Tokens currently held in the KV cache. */
  get cachedTokens(): number {
    return this.cache.length;
  }

  /** Forget the conversation (the system prompt stays) and empty the cache. */
  reset(): void {
    if (this.busy) throw new UsageError('cannot reset a chat session while a turn is running');
    this.history = this.options.system ? [{ role: 'system', content: this.options.system }] : [];
    this.cache.truncate(0);
    this.cacheIds = [];
  }

  /**
   * Send a user turn and stream the answer. The turn is added to the conversation when the
   * answer ends (also on abort, with what was generated); on an error it is dropped.
   */
  async *send(content: string, options: Omit<GenerateOptions, 'cache'> = {}): AsyncGenerator<GenerationChunk, GenerationResult, void> {
    if (this.busy) throw new UsageError('a chat turn is already running in this session');
    if (typeof content !== 'string') throw new UsageError('a chat message must be a string');
    this.busy = true;
    try {
      const messages: ChatMessage[] = [...this.history, { role: 'user', content }];
      const ids = this.render(messages, { addGenerationPrompt: true });
      if (ids.length >= this.cache.maxTokens) {
        throw new UsageError(`the conversation has ${ids.length} tokens and the context holds ${this.cache.maxTokens}: start over (reset)`);
      }
      const keep = Math.min(commonPrefix(this.cacheIds, ids), this.cache.length);
      if (keep < this.cache.length) {
        try {
          this.cache.truncate(keep);
        } catch {
          // A ring-buffer layer no longer holds that position: start from an empty cache.
          this.cache.truncate(0);
        }
      }
      // From here on the cache's first positions hold `ids` (generated tokens follow).
      this.cacheIds = ids;
      // generate() re-feeds the last prompt token when the whole prompt is cached.
      this.lastPrefillTokens = ids.length - Math.min(this.cache.length, ids.length - 1);
      const { system: _s, contextSize: _c, render: _r, ...defaults } = this.options;
      let result: GenerationResult;
      try {
        result = yield* generate(this.model, this.tokenizer, ids, { ...defaults, ...options, cache: this.cache });
      } catch (e) {
        this.cache.truncate(0);
        this.cacheIds = [];
        throw e;
      }
      this.cacheIds = [...ids, ...result.ids].slice(0, this.cache.length);
      this.history = [...messages, { role: 'model', content: result.text }];
      return result;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Release the session's KV cache now (backend memory for the wasm backend; otherwise it is
   * returned when the session is garbage-collected). The session cannot be used afterwards.
   */
  dispose(): void {
    if (this.busy) throw new UsageError('cannot dispose a chat session while a turn is running');
    this.cache.dispose?.();
    this.cacheIds = [];
  }

  /** Send a user turn and wait for the whole answer. */
  async ask(content: string, options: Omit<GenerateOptions, 'cache'> = {}): Promise<GenerationResult> {
    const it = this.send(content, options);
    for (;;) {
      const step = await it.next();
      if (step.done) return step.value;
    }
  }
}
