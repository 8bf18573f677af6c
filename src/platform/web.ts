/**
 * The web build's entry point (`npm run build:web` bundles it into dist/web/index.js; package.json
 * maps the `browser` condition of `gemma-ts` to that file). The same library API as Node where the
 * code is platform-free; loadModel and loadTokenizer take URLs and File / Blob objects instead of
 * paths.
 *
 * @example
 * ```ts
 * import { loadModel, generate, encodeChat } from 'gemma-ts';   // resolves to dist/web/index.js in bundlers
 *
 * const { model, tokenizer } = await loadModel('https://example.org/models/demo/', { backend: 'wasm' });
 * const ids = encodeChat(tokenizer!, [{ role: 'user', content: 'Hi' }]);
 * for await (const chunk of generate(model, tokenizer, ids, { maxTokens: 32 })) output.textContent += chunk.text;
 * ```
 */

// Loading: URLs (range requests + Cache API) and File / Blob objects.
export { loadModel, loadTokenizer, type ModelInput, type WebLoadOptions } from './web-load.js';
export { clearCache, openUrl, blobByteSource, CHUNK_BYTES, type ByteSource, type DownloadProgress, type HttpSourceOptions } from './byte-source.js';
export { sharedMemoryAvailable } from './threads.js';
export type { LoadOptions, LoadedModel, BackendName } from '../model/create.js';
export { createModel } from '../model/create.js';
export { GemmaModel, type GemmaModelOptions } from '../model/gemma.js';
export { GemmaKVCache, type KVType } from '../model/kv-cache.js';
export type { LanguageModel, KVCache, ForwardOptions, ForwardResult, BatchItem, Hook, HookEvent } from '../model/types.js';
export { normalizeHfConfig, parameterCount, type ModelConfig, type LayerConfig, type GemmaFamily } from '../config/model-config.js';

// Backends.
export type { Backend } from '../backend/backend.js';
export { createJsBackend } from '../backend/js/index.js';
export { createWasmBackend, type WasmBackendOptions, type WasmBackendInstance } from '../backend/wasm/index.js';
export { createWebGpuBackend, GpuError, GpuDeviceLostError, GpuOutOfMemoryError, GpuUnavailableError, type WebGpuBackendOptions, type WebGpuBackendInstance } from '../backend/webgpu/index.js';
export { hostTensors, isTensorBackend, type Tensor, type TensorBackend, type TensorAttentionParams, type CacheType } from '../backend/tensor.js';

// Tokenizer and chat formatting.
export { SentencePieceTokenizer, type TokenizerData } from '../tokenizer/sentencepiece.js';
export { renderChat, encodeChat, GEMMA_CHAT_TEMPLATE, type ChatOptions } from '../tokenizer/chat.js';
export { tokenizerDataFromHFJson } from '../tokenizer/hf-json.js';
export { tokenizerDataFromModelProto } from '../tokenizer/spm-model.js';
export type { Tokenizer, ChatMessage, EncodeOptions, DecodeOptions, StreamDecoder } from '../tokenizer/types.js';

// Generation: streaming, sampling, chat sessions, structured output.
export { generate, generateText, DEFAULT_MAX_TOKENS, MAX_TOP_LOGPROBS } from '../generate/generate.js';
export type { GenerateOptions, GenerationChunk, GenerationResult, FinishReason, TopLogprob } from '../generate/generate.js';
export { ChatSession, type ChatRenderer, type ChatSessionOptions } from '../generate/chat-session.js';
export { Sampler, Rng, resolveSampling, type SamplingOptions, type ResolvedSampling, type TokenLogprob } from '../generate/sampler.js';
export { OutputConstraint, compileResponseFormat, type ResponseFormat, type JsonSchema } from '../generate/constraint/index.js';

// ShieldGemma: classification and guardrails (the classifier takes a loaded model).
export { ShieldClassifier, DEFAULT_THRESHOLD, type ClassifyRequest, type ClassifyResult, type ShieldClassifierOptions } from '../safety/classifier.js';
export { ShieldGuard, DEFAULT_REFUSAL, type GuardDecision, type GuardMode, type ShieldGuardOptions } from '../safety/guard.js';
export { SHIELD_POLICIES, type ShieldPolicy } from '../safety/templates.js';

// Interpretability: SAEs built from weights (loadSae(path) is Node-only), reading features, steering.
export { JumpReluSae, topFeatures, type SparseActs, type FeatureValue, type SaeWeights } from '../interpret/sae.js';
export { readFeatures, readFeaturesAsync, captureActivations, captureActivationsAsync } from '../interpret/features.js';
export { steeringHooks, clampHooks, type SteerSpec, type ClampSpec, type SteerOptions } from '../interpret/steering.js';

// Errors and version.
export { GemmaError, FormatError, ConfigError, TokenizerError, TemplateError, ModelError, UsageError, type GemmaErrorCode } from '../errors.js';
export { HubError, type HubErrorReason } from '../hub/errors.js';
export { VERSION } from '../version.js';
