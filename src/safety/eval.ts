/**
 * `shield eval`: score a labelled JSONL set and report AU-PRC and optimal F1, overall and per
 * harm. Lines: {"prompt": str, "response"?: str, "label": 0|1, "harm"?: str}.
 * A line naming a harm is scored against that policy only; a line without one is scored against
 * every selected policy and its score is the largest P(Yes) ("violates any policy").
 */
import { FormatError, UsageError } from '../errors.js';
import type { ClassifyRequest, ShieldClassifier } from './classifier.js';
import { evaluateScores, type EvalReport, type ScoredExample } from './metrics.js';
import { findPolicy, type ShieldPolicy } from './templates.js';

export interface EvalExample {
  prompt: string;
  response?: string;
  label: 0 | 1;
  harm?: string;
}

export interface ShieldInputLine {
  prompt: string;
  response?: string;
}

/** Parse JSONL (blank lines skipped); errors name the line. */
export function parseJsonl(text: string, what = 'input'): Array<{ line: number; value: Record<string, unknown> }> {
  const out: Array<{ line: number; value: Record<string, unknown> }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new FormatError(`${what} line ${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(`${what} line ${i + 1}: expected a JSON object`);
    out.push({ line: i + 1, value: v as Record<string, unknown> });
  });
  return out;
}

function textField(v: Record<string, unknown>, key: string, line: number, what: string, required: boolean): string | undefined {
  const x = v[key];
  if (x === undefined || x === null) {
    if (required) throw new FormatError(`${what} line ${line}: "${key}" is missing`);
    return undefined;
  }
  if (typeof x !== 'string') throw new FormatError(`${what} line ${line}: "${key}" must be a string`);
  return x;
}

/** Lines of `shield --input`: {"prompt", "response"?}. */
export function parseShieldInput(text: string): ShieldInputLine[] {
  return parseJsonl(text, 'input').map(({ line, value }) => {
    const prompt = textField(value, 'prompt', line, 'input', true)!;
    const response = textField(value, 'response', line, 'input', false);
    return response === undefined ? { prompt } : { prompt, response };
  });
}

/** Lines of `shield eval --data`. */
export function parseEvalData(text: string): EvalExample[] {
  const rows = parseJsonl(text, 'data').map(({ line, value }) => {
    const prompt = textField(value, 'prompt', line, 'data', true)!;
    const response = textField(value, 'response', line, 'data', false);
    const harm = textField(value, 'harm', line, 'data', false);
    const label = value.label;
    if (label !== 0 && label !== 1 && label !== true && label !== false) throw new FormatError(`data line ${line}: "label" must be 0 or 1`);
    const ex: EvalExample = { prompt, label: label === 1 || label === true ? 1 : 0 };
    if (response !== undefined) ex.response = response;
    if (harm !== undefined) ex.harm = harm;
    return ex;
  });
  if (rows.length === 0) throw new FormatError('data: no examples');
  return rows;
}

export interface EvalOptions {
  /** Policies for lines without a harm (default the four official ones). */
  policies?: ReadonlyArray<string | ShieldPolicy>;
  /** Custom policies a line's "harm" may name (by id). */
  customPolicies?: readonly ShieldPolicy[];
  temperature?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalResult extends EvalReport {
  scores: number[];
}

/** Score labelled examples and report AU-PRC and the optimal F1 with its threshold, overall and per harm (`gemma shield eval`; host backends, see runEvalAsync). */
export function runEval(classifier: ShieldClassifier, data: readonly EvalExample[], options: EvalOptions = {}): EvalResult {
  const examples = evalRequests(data, options);
  const scored = examples.map((e, i) => scoredExample(e, classifier.scores(e.req), i, data.length, options));
  return { ...evaluateScores(scored), scores: scored.map((s) => s.score) };
}

/** runEval on any backend, webgpu included. */
export async function runEvalAsync(classifier: ShieldClassifier, data: readonly EvalExample[], options: EvalOptions = {}): Promise<EvalResult> {
  const examples = evalRequests(data, options);
  const scored: ScoredExample[] = [];
  for (const [i, e] of examples.entries()) scored.push(scoredExample(e, await classifier.scoresAsync(e.req), i, data.length, options));
  return { ...evaluateScores(scored), scores: scored.map((s) => s.score) };
}

interface EvalRequest {
  req: ClassifyRequest;
  label: EvalExample['label'];
  harmId: string | undefined;
}

/** The classification request of each example (its harm's policy alone when it names one); checked before anything runs. */
function evalRequests(data: readonly EvalExample[], options: EvalOptions): EvalRequest[] {
  const custom = new Map((options.customPolicies ?? []).map((p) => [p.id, p]));
  return data.map((ex, i) => {
    let policies: ReadonlyArray<string | ShieldPolicy> | undefined = options.policies;
    let harmId: string | undefined;
    if (ex.harm !== undefined) {
      const p = custom.get(ex.harm) ?? findPolicy(ex.harm);
      if (!p) throw new UsageError(`data example ${i + 1}: unknown harm "${ex.harm}"`);
      policies = [p];
      harmId = p.id;
    }
    const req = { prompt: ex.prompt, ...(ex.response !== undefined ? { response: ex.response } : {}), ...(policies ? { policies } : {}), ...(options.temperature !== undefined ? { temperature: options.temperature } : {}) };
    return { req, label: ex.label, harmId };
  });
}

function scoredExample(e: EvalRequest, s: Record<string, number>, i: number, total: number, options: EvalOptions): ScoredExample {
  options.onProgress?.(i + 1, total);
  const score = Math.max(...Object.values(s));
  return e.harmId === undefined ? { score, label: e.label } : { score, label: e.label, harm: e.harmId };
}
