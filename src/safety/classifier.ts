/**
 * ShieldGemma classification: P(Yes) = softmax over the logits of the "Yes" and "No" tokens at
 * the last position of the prompt (optionally divided by a temperature first), one prompt per
 * (text, policy).
 *
 * The prompts of one text differ only from the policy line on, so the common token prefix is
 * prefilled once; each policy then continues from its own copy of that cache, and all policies'
 * suffixes run in one batched forward pass (one pass over the weights). forwardBatch takes
 * sequences of different lengths without padding and returns each one's last real position.
 *
 * The result has the OpenAI moderation shape: {flagged, categories, category_scores}. The
 * default threshold 0.5 is ours: Google publishes no operating threshold for ShieldGemma.
 */
import { ModelError, TokenizerError, UsageError } from '../errors.js';
import type { KVCache, LanguageModel } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { cloneKVCache } from './cache.js';
import { batchStep, forwardStep, runSteps, runStepsAsync, type Steps } from '../model/steps.js';
import { buildShieldPrompt, resolvePolicies, validatePolicy, validateTemplate, type RenderedPrompt, type ShieldPolicy, type ShieldUseCase } from './templates.js';

/** Our default decision threshold on P(Yes) (not published by Google). */
export const DEFAULT_THRESHOLD = 0.5;

export interface ClassifyRequest {
  prompt: string;
  /** Given: classify the response (prompt-response use case); absent: classify the prompt. */
  response?: string;
  /** Official policy names/ids or custom policies; default the four official harms. */
  policies?: ReadonlyArray<string | ShieldPolicy>;
  /** flagged when P(Yes) >= threshold (default 0.5). */
  threshold?: number;
  /** Divide the Yes/No logits by this before the softmax (default 1). */
  temperature?: number;
}

/** OpenAI moderation shape. */
export interface ClassifyResult {
  flagged: boolean;
  categories: Record<string, boolean>;
  category_scores: Record<string, number>;
}

export interface ShieldClassifierOptions {
  /** Own templates per use case (Python str.format placeholders {user_content}, {model_content}, {harm_text}). */
  templates?: Partial<Record<ShieldUseCase, string>>;
  threshold?: number;
  temperature?: number;
  /** Prefill the prompt prefix shared by all policies once (default true). */
  reusePrefix?: boolean;
  /** Run the policies of one text in one forwardBatch call (default true). */
  batch?: boolean;
  /** Piece names of the answer tokens (default "Yes" / "No"). */
  yesPiece?: string;
  noPiece?: string;
}

export interface PolicyPrompt {
  policy: ShieldPolicy;
  prompt: RenderedPrompt;
  ids: number[];
}

/** P(Yes) from the two logits: softmax([yes, no] / T)[0], computed stably. */
export function yesProbability(yesLogit: number, noLogit: number, temperature = 1): number {
  const d = (noLogit - yesLogit) / temperature;
  if (Number.isNaN(d)) return Number.NaN;
  return d >= 0 ? Math.exp(-d) / (1 + Math.exp(-d)) : 1 / (1 + Math.exp(d));
}

function checkThreshold(t: number): number {
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || t > 1) throw new UsageError(`threshold must be a number in [0, 1], got ${String(t)}`);
  return t;
}

function checkTemperature(t: number): number {
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw new UsageError(`temperature must be a number > 0, got ${String(t)}`);
  return t;
}

const SPECIAL_CANDIDATE = /<[^<>\s]{1,48}>/g;

/**
 * ShieldGemma scoring: `classify({ prompt, response? })` gives P(Yes) per policy in OpenAI's
 * moderation shape (`flagged`, `categories`, `category_scores`).
 */
export class ShieldClassifier {
  readonly model: LanguageModel;
  readonly tokenizer: Tokenizer;
  private readonly options: ShieldClassifierOptions;
  private answerIds: { yes: number; no: number } | undefined;
  /** Forward passes run (tests and the bench read it). */
  forwardCalls = 0;
  /** Tokens fed to the model. */
  tokensProcessed = 0;

  constructor(model: LanguageModel, tokenizer: Tokenizer, options: ShieldClassifierOptions = {}) {
    if (!model || !tokenizer) throw new UsageError('ShieldClassifier needs a model and a tokenizer');
    if (options.threshold !== undefined) checkThreshold(options.threshold);
    if (options.temperature !== undefined) checkTemperature(options.temperature);
    for (const [useCase, t] of Object.entries(options.templates ?? {})) if (t !== undefined) validateTemplate(t, useCase as ShieldUseCase);
    this.model = model;
    this.tokenizer = tokenizer;
    this.options = options;
  }

  /** Token ids of "Yes" and "No"; a TokenizerError names a missing piece. */
  get yesNoIds(): { yes: number; no: number } {
    if (this.answerIds) return this.answerIds;
    const yesPiece = this.options.yesPiece ?? 'Yes';
    const noPiece = this.options.noPiece ?? 'No';
    const yes = this.tokenizer.pieceToId(yesPiece);
    const no = this.tokenizer.pieceToId(noPiece);
    const missing = [yes === undefined ? yesPiece : undefined, no === undefined ? noPiece : undefined].filter((x) => x !== undefined);
    if (missing.length > 0) {
      throw new TokenizerError(
        `the tokenizer has no ${missing.map((m) => `"${m}"`).join(' or ')} piece: ShieldGemma scoring reads the logits of the "${yesPiece}" and "${noPiece}" tokens (is this a ShieldGemma / Gemma 2 tokenizer?)`,
      );
    }
    if (yes! >= this.model.vocabSize || no! >= this.model.vocabSize) {
      throw new ModelError(`the answer tokens (${yes}, ${no}) are outside the model's vocabulary of ${this.model.vocabSize}`);
    }
    this.answerIds = { yes: yes!, no: no! };
    return this.answerIds;
  }

  /**
   * Token ids of a rendered prompt: <bos>, then the text. Special tokens (<start_of_turn> ...)
   * are recognized only in the template's own text, never in the caller's prompt or response;
   * between them the text is encoded as one piece, as a tokenizer reading the whole string does.
   */
  encodePrompt(rendered: RenderedPrompt): number[] {
    const tok = this.tokenizer;
    const ids: number[] = [tok.bosId];
    let run = '';
    const flush = (): void => {
      if (run) ids.push(...tok.encode(run, { addBos: false, parseSpecial: false }));
      run = '';
    };
    for (const part of rendered.parts) {
      if (part.untrusted) {
        run += part.text;
        continue;
      }
      let last = 0;
      for (const m of part.text.matchAll(SPECIAL_CANDIDATE)) {
        const id = tok.pieceToId(m[0]);
        if (id === undefined || !tok.isSpecial(id)) continue;
        run += part.text.slice(last, m.index);
        flush();
        ids.push(id);
        last = m.index + m[0].length;
      }
      run += part.text.slice(last);
    }
    flush();
    // A template that starts with <bos> itself gets no second one.
    if (ids.length > 1 && ids[1] === tok.bosId) ids.shift();
    return ids;
  }

  private policiesOf(req: ClassifyRequest): ShieldPolicy[] {
    const list = req.policies;
    if (list !== undefined && !Array.isArray(list)) throw new UsageError('policies must be an array');
    if (!list || list.length === 0) return resolvePolicies(undefined);
    const out = list.map((p) => (typeof p === 'string' ? resolvePolicies([p])[0]! : validatePolicy(p)));
    const seen = new Set<string>();
    for (const p of out) {
      if (seen.has(p.id)) throw new UsageError(`policy "${p.id}" appears twice`);
      seen.add(p.id);
    }
    return out;
  }

  /** The exact prompts (text and ids) fed to the model, one per policy. */
  prompts(req: ClassifyRequest): PolicyPrompt[] {
    if (typeof req !== 'object' || req === null) throw new UsageError('classify needs {prompt, response?, policies?}');
    if (typeof req.prompt !== 'string') throw new UsageError('prompt must be a string');
    if (req.response !== undefined && req.response !== null && typeof req.response !== 'string') throw new UsageError('response must be a string');
    const response = req.response ?? undefined;
    const useCase: ShieldUseCase = response === undefined ? 'prompt_only' : 'prompt_response';
    const template = this.options.templates?.[useCase];
    return this.policiesOf(req).map((policy) => {
      const prompt = buildShieldPrompt(policy, req.prompt, response, template !== undefined ? { template } : {});
      return { policy, prompt, ids: this.encodePrompt(prompt) };
    });
  }

  /** P(Yes) per policy id (host backends; see scoresAsync). */
  scores(req: ClassifyRequest): Record<string, number> {
    return runSteps(this.model, this.scoreSteps(req));
  }

  /** scores on any backend, webgpu included. */
  scoresAsync(req: ClassifyRequest): Promise<Record<string, number>> {
    return runStepsAsync(this.model, this.scoreSteps(req));
  }

  private *scoreSteps(req: ClassifyRequest): Steps<Record<string, number>> {
    const temperature = checkTemperature(req.temperature ?? this.options.temperature ?? 1);
    const { yes, no } = this.yesNoIds;
    const prompts = this.prompts(req);
    const lastLogits = yield* this.runPrompts(prompts.map((p) => p.ids));
    const out: Record<string, number> = {};
    prompts.forEach((p, i) => {
      const row = lastLogits[i]!;
      out[p.policy.id] = yesProbability(row[yes]!, row[no]!, temperature);
    });
    return out;
  }

  /** Flagged categories and P(Yes) scores (host backends; see classifyAsync). */
  classify(req: ClassifyRequest): ClassifyResult {
    const threshold = checkThreshold(req.threshold ?? this.options.threshold ?? DEFAULT_THRESHOLD);
    return decide(threshold, this.scores(req));
  }

  /** classify on any backend, webgpu included. */
  async classifyAsync(req: ClassifyRequest): Promise<ClassifyResult> {
    const threshold = checkThreshold(req.threshold ?? this.options.threshold ?? DEFAULT_THRESHOLD);
    return decide(threshold, await this.scoresAsync(req));
  }

  /** Last-position logits of each sequence. */
  private *runPrompts(seqs: number[][]): Steps<Float32Array[]> {
    const model = this.model;
    const maxLen = Math.max(...seqs.map((s) => s.length));
    const limit = model.config.maxPositionEmbeddings;
    if (maxLen > limit) throw new UsageError(`the ShieldGemma prompt is ${maxLen} tokens, more than the model's ${limit} positions: shorten the text`);
    const reuse = this.options.reusePrefix !== false && seqs.length > 1;
    const batch = this.options.batch !== false;
    let prefix = 0;
    if (reuse) {
      const minLen = Math.min(...seqs.map((s) => s.length));
      while (prefix < minLen - 1 && seqs.every((s) => s[prefix] === seqs[0]![prefix])) prefix++;
    }
    const caches: KVCache[] = [];
    if (prefix > 0) {
      const base = model.createCache(maxLen);
      yield* this.forward([{ ids: seqs[0]!.slice(0, prefix), cache: base }], false);
      for (let i = 0; i < seqs.length - 1; i++) {
        const c = cloneKVCache(model, base);
        if (!c) {
          // Cannot copy this cache kind: prefill each sequence in full instead.
          prefix = 0;
          caches.length = 0;
          break;
        }
        caches.push(c);
      }
      if (prefix > 0) caches.push(base);
    }
    if (prefix === 0) for (let i = 0; i < seqs.length; i++) caches.push(model.createCache(maxLen));
    const items = seqs.map((s, i) => ({ ids: s.slice(prefix), cache: caches[i]! }));
    return yield* this.forward(items, batch);
  }

  private *forward(items: Array<{ ids: number[]; cache: KVCache }>, batch: boolean): Steps<Float32Array[]> {
    for (const it of items) this.tokensProcessed += it.ids.length;
    if (batch && items.length > 1) {
      this.forwardCalls++;
      return (yield* batchStep(items)).map((r) => r.logits);
    }
    const out: Float32Array[] = [];
    for (const it of items) {
      this.forwardCalls++;
      out.push((yield* forwardStep(it.ids, it.cache)).logits);
    }
    return out;
  }
}

function decide(threshold: number, scores: Record<string, number>): ClassifyResult {
  const categories: Record<string, boolean> = {};
  let flagged = false;
  for (const [id, s] of Object.entries(scores)) {
    categories[id] = s >= threshold;
    flagged ||= categories[id]!;
  }
  return { flagged, categories, category_scores: scores };
}
