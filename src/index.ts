/**
 * gemma-ts: Google's Gemma models (Gemma 1, 2 and 3 text) in TypeScript.
 *
 * Everything a program needs comes from this entry point (`import { ... } from 'gemma-ts'`); the
 * big optional parts have subpath entry points: `gemma-ts/server` (the OpenAI-compatible HTTP
 * server), `gemma-ts/formats` (GGUF / safetensors / npz readers and writers, quant codecs),
 * `gemma-ts/tokenizer`, `gemma-ts/safety`, `gemma-ts/interpret`, `gemma-ts/train` and `gemma-ts/eval`
 * (each module's full surface).
 *
 * @example
 * ```ts
 * import { loadModel, generate, encodeChat } from 'gemma-ts';
 *
 * const { model, tokenizer } = await loadModel('demo');
 * const ids = encodeChat(tokenizer!, [{ role: 'user', content: 'Hi' }]);
 * for await (const chunk of generate(model, tokenizer, ids, { maxTokens: 32, temperature: 0.7 })) {
 *   process.stdout.write(chunk.text);
 * }
 * ```
 *
 * @packageDocumentation
 * @module gemma-ts
 */

// Models: loading a checkpoint, the forward pass, KV caches, hook points.
export { loadModel, inspectModel, createModel, resolveModelPath, demoModelPath } from './model/load.js';
export type { LoadOptions, LoadedModel, ModelDescription, BackendName } from './model/load.js';
export { GemmaModel, type GemmaModelOptions } from './model/gemma.js';
export { GemmaKVCache, type KVType } from './model/kv-cache.js';
export type { LanguageModel, KVCache, ForwardOptions, ForwardResult, BatchItem, Hook, HookEvent } from './model/types.js';
export { normalizeHfConfig, parameterCount, type ModelConfig, type LayerConfig, type GemmaFamily, type NormalizeResult } from './config/model-config.js';

// Backends: the readable JS reference and WebAssembly SIMD + threads.
export type { Backend } from './backend/backend.js';
export { createJsBackend } from './backend/js/index.js';
export { createWasmBackend, type WasmBackendOptions, type WasmBackendInstance } from './backend/wasm/index.js';
export { createWebGpuBackend, GpuError, GpuDeviceLostError, GpuOutOfMemoryError, GpuUnavailableError, type WebGpuBackendOptions, type WebGpuBackendInstance } from './backend/webgpu/index.js';
export { hostTensors, isTensorBackend, type Tensor, type TensorBackend, type TensorAttentionParams, type CacheType } from './backend/tensor.js';

// Tokenizer and chat formatting.
export { loadTokenizer, loadTokenizerSync, SentencePieceTokenizer, renderChat, encodeChat, GEMMA_CHAT_TEMPLATE } from './tokenizer/index.js';
export type { Tokenizer, ChatMessage, ChatOptions, EncodeOptions, DecodeOptions, StreamDecoder, TokenizerData } from './tokenizer/index.js';

// Generation: streaming, sampling, stop rules, chat sessions, structured output, batching.
export { generate, generateText, ChatSession, Sampler, Rng, resolveSampling, DEFAULT_MAX_TOKENS, MAX_TOP_LOGPROBS } from './generate/index.js';
export { OutputConstraint, compileResponseFormat } from './generate/index.js';
export type {
  GenerateOptions, GenerationChunk, GenerationResult, FinishReason, TopLogprob, TokenLogprob, SamplingOptions, ResolvedSampling,
  ChatRenderer, ChatSessionOptions, ResponseFormat, JsonSchema,
} from './generate/index.js';
export { Scheduler, QueueFullError } from './generate/scheduler.js';
export type { SchedulerOptions, SchedulerStats, SequenceRequest, SequenceResult } from './generate/scheduler.js';

// ShieldGemma: classification and guardrails.
export { ShieldClassifier, loadShieldClassifier, ShieldGuard, SHIELD_POLICIES, DEFAULT_THRESHOLD, DEFAULT_REFUSAL, runEval as runShieldEval, runEvalAsync as runShieldEvalAsync } from './safety/index.js';
export type {
  ClassifyRequest, ClassifyResult, ShieldClassifierOptions, LoadedShield, ShieldGuardOptions, GuardDecision, GuardMode, ShieldPolicy,
  EvalExample as ShieldEvalExample, EvalResult as ShieldEvalResult,
} from './safety/index.js';

// Interpretability: Gemma Scope SAEs, reading features, steering.
export { loadSae, JumpReluSae, readFeatures, captureActivations, steeringHooks, clampHooks, evaluateSae, logitLens, topActivatingContexts } from './interpret/index.js';
export { readFeaturesAsync, captureActivationsAsync, evaluateSaeAsync, logitLensAsync, topActivatingContextsAsync } from './interpret/index.js';
export type { LoadSaeOptions, SparseActs, FeatureValue, FeaturesReport, TokenFeatures, ReadFeaturesOptions, SteerSpec, ClampSpec, SteerOptions, SaeEvalReport } from './interpret/index.js';

// Formats: read and write checkpoints; convert and quantize to GGUF.
export { readGGUF, writeGGUF, openGGUF, openSafetensors, writeSafetensors, convertToGGUF, quantizeModel, CONVERT_TYPES, QUANTIZE_TYPES } from './formats/index.js';
export type { GGUFFile, SafetensorsSource, TensorSource, TensorInfo, DType, ConvertOptions, ConvertResult, ConvertType, QuantizeType } from './formats/index.js';

// The Hugging Face Hub.
export { pullModel, cachedModelPath, defaultCacheDir, HubError, type PullOptions, type PullProgress, type HubErrorReason } from './hub/pull.js';

// Errors: every bad input is one of these, with a `code` to switch on.
export { GemmaError, FormatError, ConfigError, TokenizerError, TemplateError, ModelError, UsageError, type GemmaErrorCode } from './errors.js';

// The package version (from package.json).
export { VERSION } from './version.js';

// Training: full fine-tuning with an exact backward pass (finetune is an async iterator of step reports).
export { finetune, evaluateLoss, loadTrainModel, saveFullModel, loadDataset, TrainModel, addLoraLayers, loadAdapter, applyLora, mergeAdapter, savePeftAdapter, saveGgufAdapter } from './train/index.js';
export type { FinetuneOptions, FinetuneReport, StepReport, EvalReport, TrainExample, Dataset as TrainDataset, DataOptions as TrainDataOptions, LoraConfig, Adapter } from './train/index.js';

// Evaluation (lm-evaluation-harness tasks, metrics): src/eval
export { evaluate, formatTable, perplexityOfIds, memorization, TaskRegistry, LocalLM, RemoteLM, TaskError, type PerplexityReport, type EvaluateOptions, type EvalResults, type EvalLM, type TaskConfig } from './eval/index.js';
export { shieldToxicityScorer, type ToxicityScorer } from './eval/index.js';
