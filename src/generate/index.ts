/** Generation: sampling, stop rules, streaming generation and chat sessions. */
export { Rng, Sampler, resolveSampling, applyPenalties, truncatedCandidates, logSoftmax, topLogprobs, argmax, usableVocab } from './sampler.js';
export type { SamplingOptions, ResolvedSampling, Candidates, TokenLogprob, TokenFilter } from './sampler.js';
export { StopStringMatcher, stopIdSet } from './stop.js';
export type { StopPush } from './stop.js';
export { generate, generateText, checkPromptIds, DEFAULT_MAX_TOKENS, MAX_TOP_LOGPROBS } from './generate.js';
export type { GenerateOptions, GenerationChunk, GenerationResult, FinishReason, TopLogprob } from './generate.js';
export { ChatSession, defaultChatRenderer, gemmaTurnRenderer } from './chat-session.js';
export type { ChatRenderer, ChatSessionOptions } from './chat-session.js';
export { OutputConstraint, compileResponseFormat, jsonObjectGrammar, jsonSchemaGrammar } from './constraint/index.js';
export type { ResponseFormat, JsonSchema } from './constraint/index.js';
