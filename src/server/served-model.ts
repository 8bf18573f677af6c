/**
 * One model as the routes see it: the loaded model, its tokenizer, its scheduler, and the id
 * clients name in `model`. The registry (model-pool.ts) maps request names to served models.
 */
import { defaultChatRenderer, gemmaTurnRenderer, type ChatRenderer } from '../generate/chat-session.js';
import type { Scheduler } from '../generate/scheduler.js';
import type { LanguageModel } from '../model/types.js';
import type { ChatMessage, Tokenizer } from '../tokenizer/types.js';

export interface ServedModel {
  readonly id: string;
  readonly model: LanguageModel;
  readonly tokenizer: Tokenizer | undefined;
  readonly scheduler: Scheduler;
  /** Unix seconds, reported by /v1/models. */
  readonly created: number;
  /** Chat messages -> prompt ids (throws on messages the renderer cannot express). */
  renderChat(messages: ChatMessage[]): number[];
}

/**
 * A served model over a loaded model and its scheduler. `render` overrides how chats become ids;
 * by default token-level Gemma turns (user text can never become control tokens), or the
 * checkpoint's Jinja template when the tokenizer has no turn tokens.
 */
export function servedModel(id: string, model: LanguageModel, tokenizer: Tokenizer | undefined, scheduler: Scheduler, render?: ChatRenderer): ServedModel {
  let renderer = render;
  return {
    id,
    model,
    tokenizer,
    scheduler,
    created: Math.floor(Date.now() / 1000),
    renderChat(messages) {
      if (!renderer) {
        if (!tokenizer) throw new Error('this model has no tokenizer');
        try {
          renderer = gemmaTurnRenderer(tokenizer);
        } catch {
          renderer = defaultChatRenderer(tokenizer);
        }
      }
      return renderer(messages, { addGenerationPrompt: true });
    },
  };
}

/** Something that ends (a response): a model stays loaded while a request holds it. */
export interface Lease {
  once(event: 'close', listener: () => void): unknown;
}

/** /v1/models' entry of one model. */
export interface ModelDescription {
  id: string;
  created: number;
  status: 'loaded' | 'loading' | 'unloaded';
  /** llama-server's meta of a loaded model. */
  meta?: Record<string, number>;
}

/** The models a server answers for, by the name requests give in `model`. */
export interface ModelRegistry {
  /** Every id clients may name, in the order /v1/models lists them (the default first). */
  ids(): string[];
  describe(id: string): ModelDescription | undefined;
  /**
   * The model a request names, loaded if need be and held until `lease` closes; a 404
   * `model_not_found` for names not served.
   */
  resolve(name: string, lease?: Lease): Promise<ServedModel>;
  /** Models loaded now. */
  loaded(): ServedModel[];
}
