/**
 * lm-evaluation-harness task YAML, read as it is: `include` chains, `!function` hooks, groups
 * and tags. Every key is checked against the harness's TaskConfig; anything else is an error
 * that names the task and the key.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { TaskError } from './errors.js';

/** `!function module.name` in a YAML: resolved against the built-in TypeScript hooks. */
export interface FunctionRef {
  kind: 'function';
  /** As written, e.g. "utils.process_docs". */
  name: string;
  /** `<directory of the YAML that names it>/<name>`, e.g. "hellaswag/utils.process_docs". */
  key: string;
}

export type Field = string | number | unknown[] | Record<string, unknown> | FunctionRef | null | undefined;

export interface MetricConfig {
  metric: string;
  aggregation?: string;
  higher_is_better?: boolean;
  [option: string]: unknown;
}

export interface FilterStep {
  function: string;
  [option: string]: unknown;
}

export interface TaskConfig {
  task: string;
  task_alias?: string;
  tag?: string | string[];
  dataset_path?: string;
  dataset_name?: string | null;
  dataset_kwargs?: Record<string, unknown> | null;
  training_split?: string | null;
  validation_split?: string | null;
  test_split?: string | null;
  fewshot_split?: string | null;
  process_docs?: FunctionRef | null;
  doc_to_text?: Field;
  doc_to_target?: Field;
  doc_to_choice?: Field;
  process_results?: FunctionRef | null;
  description?: string;
  target_delimiter?: string;
  fewshot_delimiter?: string;
  fewshot_config?: Record<string, unknown> | null;
  num_fewshot?: number | null;
  metric_list?: MetricConfig[] | null;
  output_type: OutputType;
  generation_kwargs?: Record<string, unknown> | null;
  repeats?: number;
  filter_list?: Array<{ name: string; filter: FilterStep[] }> | null;
  gen_prefix?: string | null;
  metadata?: Record<string, unknown> | null;
  should_decontaminate?: boolean;
  doc_to_decontamination_query?: Field;
  unsafe_code?: boolean;
  /** Directory of the YAML (relative dataset files resolve against it). */
  __dir?: string;
}

export interface GroupConfig {
  group: string;
  group_alias?: string;
  task: Array<string | Record<string, unknown>>;
  aggregate_metric_list?: Array<{ metric: string; aggregation?: string; weight_by_size?: boolean; filter_list?: string | string[] }>;
  metadata?: Record<string, unknown>;
  __dir?: string;
}

export const OUTPUT_TYPES = ['multiple_choice', 'loglikelihood', 'loglikelihood_rolling', 'generate_until'] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

/** The keys of the harness's TaskConfig. */
const TASK_KEYS = new Set([
  'task', 'task_alias', 'tag', 'group', 'group_alias', 'custom_dataset', 'dataset_path', 'dataset_name', 'dataset_kwargs',
  'training_split', 'validation_split', 'test_split', 'fewshot_split', 'process_docs', 'doc_to_text', 'doc_to_target',
  'doc_to_image', 'doc_to_audio', 'unsafe_code', 'doc_to_choice', 'process_results', 'use_prompt', 'description',
  'target_delimiter', 'fewshot_delimiter', 'fewshot_config', 'num_fewshot', 'metric_list', 'output_type',
  'generation_kwargs', 'repeats', 'filter_list', 'should_decontaminate', 'doc_to_decontamination_query', 'gen_prefix',
  'metadata', 'include', 'dataset_revision',
]);
const GROUP_KEYS = new Set(['group', 'group_alias', 'task', 'aggregate_metric_list', 'metadata', 'include']);
/** Keys the harness knows that gemma-ts does not run (images, audio, promptsource, Python datasets). */
const UNSUPPORTED_KEYS = new Set(['doc_to_image', 'doc_to_audio', 'use_prompt', 'custom_dataset']);
const FEWSHOT_KEYS = new Set(['sampler', 'split', 'process_docs', 'fewshot_indices', 'samples', 'doc_to_text', 'doc_to_choice', 'doc_to_target', 'gen_prefix', 'fewshot_delimiter', 'target_delimiter']);

/** Where task YAML text comes from: the disk, or the built-in copies of the harness's files. */
export interface TaskSource {
  read(file: string): string;
  exists(file: string): boolean;
}

export const diskSource: TaskSource = {
  read: (f) => fs.readFileSync(f, 'utf8'),
  exists: (f) => fs.existsSync(f),
};

function functionTag(dir: string): YAML.ScalarTag {
  return {
    tag: '!function',
    resolve: (value: string): FunctionRef => ({ kind: 'function', name: value, key: `${path.basename(dir)}/${value}` }),
  } as YAML.ScalarTag;
}

export function isFunctionRef(v: unknown): v is FunctionRef {
  return typeof v === 'object' && v !== null && (v as FunctionRef).kind === 'function';
}

/** Parse one YAML file, following `include` (relative to the including file) and resolving `!function` tags. */
export function readYamlConfig(file: string, source: TaskSource = diskSource, seen: string[] = []): Record<string, unknown> {
  const label = path.basename(file);
  if (seen.includes(file)) throw new TaskError(undefined, 'include', `${label} includes itself (${[...seen, file].map((f) => path.basename(f)).join(' -> ')})`);
  let text: string;
  try {
    text = source.read(file);
  } catch (e) {
    throw new TaskError(undefined, seen.length ? 'include' : undefined, `cannot read ${file}: ${(e as Error).message}`);
  }
  const dir = path.dirname(file);
  let raw: unknown;
  try {
    raw = YAML.parse(text, { customTags: [functionTag(dir)], merge: true });
  } catch (e) {
    throw new TaskError(undefined, undefined, `${label} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new TaskError(undefined, undefined, `${label} is not a YAML mapping`);
  let cfg = raw as Record<string, unknown>;
  const inc = cfg.include;
  if (inc !== undefined) {
    const list = Array.isArray(inc) ? inc : [inc];
    let base: Record<string, unknown> = {};
    for (const item of list) {
      if (typeof item !== 'string') throw new TaskError(typeof cfg.task === 'string' ? cfg.task : undefined, 'include', 'expected a file name');
      const target = path.isAbsolute(item) ? item : path.join(dir, item);
      base = { ...base, ...readYamlConfig(target, source, [...seen, file]) };
    }
    const { include: _drop, ...rest } = cfg;
    cfg = { ...base, ...rest };
  }
  if (cfg.__dir === undefined) cfg.__dir = dir;
  return cfg;
}

export function isGroupConfig(cfg: Record<string, unknown>): boolean {
  return typeof cfg.group === 'string' && Array.isArray(cfg.task);
}

/** Check a task config's keys and fields; fill the harness's defaults. */
export function validateTaskConfig(raw: Record<string, unknown>): TaskConfig {
  const name = typeof raw.task === 'string' ? raw.task : undefined;
  if (name === undefined) throw new TaskError(undefined, 'task', 'missing (every task YAML names its task)');
  for (const key of Object.keys(raw)) {
    if (key === '__dir') continue;
    if (!TASK_KEYS.has(key)) throw new TaskError(name, key, 'unknown key (not a field of lm-evaluation-harness task configs)');
    if (UNSUPPORTED_KEYS.has(key) && raw[key] !== null && raw[key] !== undefined) throw new TaskError(name, key, 'is not supported by gemma-ts (text tasks only)');
  }
  const outputType = raw.output_type ?? 'generate_until';
  if (!OUTPUT_TYPES.includes(outputType as OutputType)) {
    throw new TaskError(name, 'output_type', `unsupported output_type "${String(outputType)}" (expected ${OUTPUT_TYPES.join(', ')})`);
  }
  const cfg = { target_delimiter: ' ', fewshot_delimiter: '\n\n', description: '', repeats: 1, ...raw, output_type: outputType } as TaskConfig;
  if (raw.group !== undefined && cfg.tag === undefined) cfg.tag = raw.group as string; // old-style `group:` on a task is a tag
  delete (cfg as unknown as Record<string, unknown>).group;
  if (!cfg.dataset_path) throw new TaskError(name, 'dataset_path', 'missing');
  if (!cfg.test_split && !cfg.validation_split) {
    // Without a split name, local data_files with one split (or a "test" split) say which.
    const df = (cfg.dataset_kwargs ?? {}).data_files;
    const splits = df && typeof df === 'object' && !Array.isArray(df) ? Object.keys(df) : typeof df === 'string' || Array.isArray(df) ? ['train'] : [];
    const inferred = splits.includes('test') ? 'test' : splits.length === 1 ? splits[0] : undefined;
    if (!inferred) throw new TaskError(name, 'test_split', 'missing (a task needs test_split or validation_split)');
    cfg.test_split = inferred;
  }
  if (cfg.output_type !== 'loglikelihood_rolling' && cfg.doc_to_text === undefined) throw new TaskError(name, 'doc_to_text', 'missing');
  if (cfg.doc_to_target === undefined) throw new TaskError(name, 'doc_to_target', 'missing');
  if (cfg.output_type === 'multiple_choice' && (cfg.doc_to_choice === undefined || cfg.doc_to_choice === null)) {
    throw new TaskError(name, 'doc_to_choice', 'missing (output_type multiple_choice needs the choices)');
  }
  for (const k of ['target_delimiter', 'fewshot_delimiter', 'description'] as const) {
    if (typeof cfg[k] !== 'string') throw new TaskError(name, k, 'expected a string');
  }
  if (cfg.num_fewshot !== undefined && cfg.num_fewshot !== null && (!Number.isInteger(cfg.num_fewshot) || cfg.num_fewshot < 0)) throw new TaskError(name, 'num_fewshot', 'expected an integer >= 0');
  if (!Number.isInteger(cfg.repeats) || cfg.repeats! < 1) throw new TaskError(name, 'repeats', 'expected an integer >= 1');
  if (cfg.fewshot_config) {
    for (const k of Object.keys(cfg.fewshot_config)) if (!FEWSHOT_KEYS.has(k)) throw new TaskError(name, `fewshot_config.${k}`, 'unknown key');
    const sampler = cfg.fewshot_config.sampler ?? 'default';
    if (sampler !== 'default' && sampler !== 'first_n') throw new TaskError(name, 'fewshot_config.sampler', `unsupported sampler "${String(sampler)}" (expected default or first_n)`);
  }
  if (cfg.metric_list) {
    if (!Array.isArray(cfg.metric_list)) throw new TaskError(name, 'metric_list', 'expected a list');
    cfg.metric_list.forEach((m, i) => {
      if (!m || typeof m.metric !== 'string') throw new TaskError(name, `metric_list[${i}].metric`, 'missing');
    });
  }
  if (cfg.filter_list) {
    if (!Array.isArray(cfg.filter_list)) throw new TaskError(name, 'filter_list', 'expected a list');
    cfg.filter_list.forEach((f, i) => {
      if (!f || typeof f.name !== 'string') throw new TaskError(name, `filter_list[${i}].name`, 'missing');
      if (!Array.isArray(f.filter)) throw new TaskError(name, `filter_list[${i}].filter`, 'missing');
    });
  }
  if (cfg.generation_kwargs) {
    const until = cfg.generation_kwargs.until;
    if (until !== undefined && typeof until !== 'string' && !(Array.isArray(until) && until.every((u) => typeof u === 'string'))) {
      throw new TaskError(name, 'generation_kwargs.until', 'expected a string or a list of strings');
    }
    const topP = cfg.generation_kwargs.top_p;
    if (topP !== undefined && (typeof topP !== 'number' || !(topP > 0 && topP <= 1))) throw new TaskError(name, 'generation_kwargs.top_p', 'expected a number in (0, 1]');
  }
  return cfg;
}

export function validateGroupConfig(raw: Record<string, unknown>): GroupConfig {
  const name = raw.group as string;
  for (const key of Object.keys(raw)) {
    if (key !== '__dir' && !GROUP_KEYS.has(key)) throw new TaskError(name, key, 'unknown key in a group config');
  }
  return raw as unknown as GroupConfig;
}

/** The dumped config in results.json (the harness's TaskConfig.to_dict: no nulls, hooks as names). */
export function dumpConfig(cfg: TaskConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const conv = (v: unknown): unknown => {
    if (isFunctionRef(v)) return v.name;
    if (Array.isArray(v)) return v.map(conv);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null && x !== undefined).map(([k, x]) => [k, conv(x)]));
    return v;
  };
  for (const [k, v] of Object.entries(cfg)) {
    if (k.startsWith('__') || v === null || v === undefined) continue;
    out[k] = conv(v);
  }
  return out;
}
