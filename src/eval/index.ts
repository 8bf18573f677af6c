/** Evaluation: lm-evaluation-harness tasks, metrics and filters, the local model runner. */
export { evaluate, formatTable } from './evaluate.js';
export type { EvaluateOptions, EvalResults, SampleRecord, TaskSpec } from './evaluate.js';
export { Task } from './task.js';
export type { Request, PromptOptions, MetricSpec, ChatTemplateFn } from './task.js';
export { TaskRegistry } from './registry.js';
export type { GroupNode, ResolvedTasks } from './registry.js';
export { readYamlConfig, validateTaskConfig, OUTPUT_TYPES } from './config.js';
export type { TaskConfig, GroupConfig, MetricConfig, FunctionRef } from './config.js';
export { loadSplit, parseCsv, parseJsonDocs, readParquet } from './dataset.js';
export type { Doc, DatasetOptions } from './dataset.js';
export { LocalLM, cutAtStop } from './lm.js';
export type { EvalLM, LocalLMOptions, LoglikelihoodRequest, GenerationRequest, TokenPair } from './lm.js';
export * as metrics from './metrics.js';
export { buildFilters, regexFilter, majorityVote } from './filters.js';
export { TaskError } from './errors.js';
export { renderTemplate, literalEval } from './jinja.js';
export { perplexityOfIds, formatPerplexity } from './perplexity.js';
export type { PerplexityOptions, PerplexityReport, KlReport } from './perplexity.js';
