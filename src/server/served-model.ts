/**
 * One model as the routes see it: the loaded model, its tokenizer, its scheduler, and the id
 * clients name in `model`. The registry maps request names to served models.
 */
import { defaultChatRenderer, gemmaTurnRenderer, type ChatRenderer } from '../generate/chat-session.js';
import type { Scheduler } from '../generate/scheduler.js';
import type { LanguageModel } from '../model/types.js';
import type { ChatMessage, Tokenizer } from '../tokenizer/types.js';
import { HttpError } from './openai.js';

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

/** The models a server answers for, by the name requests give in `model`. */
export interface ModelRegistry {
  /** Every id clients may name, in the order /v1/models lists them. */
  ids(): string[];
  /** /v1/models' entry of one id (undefined: not served). */
  describe(id: string): { id: string; created: number; meta?: Record<string, number> } | undefined;
  /** The model a request names, ready to take sequences; a 404 `model_not_found` otherwise. */
  resolve(name: string): Promise<ServedModel>;
  /** Models loaded now. */
  loaded(): ServedModel[];
}

/** The registry of a server with one model. */
export function singleModel(served: ServedModel): ModelRegistry {
  return {
    ids: () => [served.id],
    describe: (id) =>
      id === served.id ? { id, created: served.created, meta: { n_ctx: served.scheduler.contextSize, n_vocab: served.model.vocabSize } } : undefined,
    async resolve(name) {
      if (name !== served.id) throw new HttpError(404, `The model '${name}' does not exist (this server serves '${served.id}')`, { param: 'model', code: 'model_not_found' });
      return served;
    },
    loaded: () => [served],
  };
}
