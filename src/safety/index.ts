/** ShieldGemma: safety classification, evaluation and guardrails. */
export { DEFAULT_THRESHOLD, ShieldClassifier, yesProbability, type ClassifyRequest, type ClassifyResult, type PolicyPrompt, type ShieldClassifierOptions } from './classifier.js';
export { cloneKVCache } from './cache.js';
export { parseEvalData, parseJsonl, parseShieldInput, runEval, runEvalAsync, type EvalExample, type EvalOptions, type EvalResult } from './eval.js';
export { DEFAULT_REFUSAL, jsonLineDecisionLog, ResponseScreen, ShieldGuard, type GuardClassifier, type GuardCounters, type GuardDecision, type GuardMode, type GuardStage, type ShieldGuardOptions } from './guard.js';
export { loadShieldClassifier, tokenizerOf, type LoadedShield } from './load.js';
export { averagePrecision, binaryMetrics, evaluateScores, optimalF1, type BinaryMetrics, type EvalReport, type ScoredExample } from './metrics.js';
export {
  buildShieldPrompt,
  findPolicy,
  policyText,
  POLICY_PREFIX,
  PROMPT_ONLY_TEMPLATE,
  PROMPT_RESPONSE_TEMPLATE,
  renderTemplate,
  resolvePolicies,
  SHIELD_POLICIES,
  validatePolicy,
  validateTemplate,
  type RenderedPrompt,
  type ShieldPolicy,
  type ShieldUseCase,
} from './templates.js';
