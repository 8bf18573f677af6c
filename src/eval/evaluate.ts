/**
 * `evaluate(model, tasks, options)`: run tasks and return results in lm-evaluation-harness's
 * shape. Requests of all tasks are pooled by kind (loglikelihood, rolling, generation), cached
 * as they finish (a killed run resumes from the cache), then each document's results become
 * metric values through every filter pipeline, and metrics aggregate per task and group.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GemmaError } from '../errors.js';
import type { LanguageModel } from '../model/types.js';
import { renderChat } from '../tokenizer/chat.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { TaskConfig } from './config.js';
import type { DatasetOptions, Doc } from './dataset.js';
import { TaskError } from './errors.js';
import type { MetricValue, RequestResult } from './hooks.js';
import { LocalLM, type EvalLM } from './lm.js';
import { AGGREGATIONS, pooledSampleStderr, stderrFor } from './metrics.js';
import { TaskRegistry, type GroupNode } from './registry.js';
import { Task, continuingChatTemplate, type ChatTemplateFn, type Request } from './task.js';
import { ShieldClassifier } from '../safety/classifier.js';
import { shieldToxicityScorer, type ToxicityScorer } from './toxicity.js';

export interface EvaluateOptions extends DatasetOptions {
  /** Few-shot examples per prompt (default: each task's num_fewshot, else 0). */
  numFewshot?: number;
  /** Documents per task (a fraction of the split when < 1). */
  limit?: number;
  /** Documents per model step (default 4). */
  batchSize?: number;
  /** Render prompts with the model's chat template. */
  applyChatTemplate?: boolean;
  /** With applyChatTemplate: few-shot examples as separate user / assistant turns (default true, as the harness). */
  fewshotAsMultiturn?: boolean;
  systemInstruction?: string;
  /** Seed of sampled generations (default 0) and of the few-shot sampler (default 1234, as the harness). */
  seed?: number;
  fewshotSeed?: number;
  /** Bootstrap resamples for the stderr of non-mean metrics (default 100000, as the harness). */
  bootstrapIters?: number;
  /** Directories of extra task YAMLs. */
  includePath?: string[];
  /** Task files built into gemma-ts (virtual path -> YAML text). */
  builtinFiles?: Record<string, string>;
  /** Keep per-document records (prompt, responses, metrics). */
  logSamples?: boolean;
  /** JSONL file of finished request results: a rerun skips what it holds. */
  cacheFile?: string;
  /** Called as requests finish. */
  onProgress?: (done: number, total: number) => void;
  /** Name of the model in results.config. */
  modelName?: string;
  /**
   * Scores continuations of toxicity tasks (`!function shieldgemma.toxicity`); default: the
   * evaluated model itself as ShieldGemma (local models only).
   */
  toxicityScorer?: ToxicityScorer;
  /** ShieldGemma policies of the default scorer (default harassment, hate; the score is the max). */
  toxicityPolicies?: string[];
  /**
   * What the toxicityScorer is (its model and policies, say): with a cacheFile its scores are
   * kept under this name and a rerun does not score those texts again. Without it a custom
   * scorer's scores are not cached (the default scorer's are, under the evaluated model's id).
   */
  toxicityScorerId?: string;
}

export interface SampleRecord {
  doc_id: number;
  doc: Doc;
  target: unknown;
  arguments: Record<string, Record<string, unknown>>;
  resps: unknown[];
  filtered_resps: unknown[];
  filter: string;
  metrics: string[];
  [metric: string]: unknown;
}

export interface EvalResults {
  results: Record<string, Record<string, unknown>>;
  groups?: Record<string, Record<string, unknown>>;
  group_subtasks: Record<string, string[]>;
  configs: Record<string, Record<string, unknown>>;
  versions: Record<string, number | string>;
  'n-shot': Record<string, number>;
  higher_is_better: Record<string, Record<string, boolean>>;
  'n-samples': Record<string, { original: number; effective: number }>;
  config: Record<string, unknown>;
  date: number;
  total_evaluation_time_seconds?: string;
  /** As the harness writes them: whether few-shot examples were chat turns, the system instruction. */
  fewshot_as_multiturn?: boolean;
  system_instruction?: string | null;
  /** Tasks that could not run, one line each (the others' results are kept). */
  errors?: string[];
  /** With logSamples: per task, one record per (document, filter). */
  samples?: Record<string, SampleRecord[]>;
}

export type TaskSpec = string | TaskConfig | Task;

class RequestCache {
  private readonly map = new Map<string, RequestResult>();
  /** Toxicity scores by scoreKey. */
  private readonly scores = new Map<string, number>();
  constructor(
    private readonly file: string | undefined,
    private readonly lmId: string,
  ) {
    if (file && fs.existsSync(file)) {
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (!line) continue;
        try {
          const entry = JSON.parse(line) as { k: string; r?: RequestResult; s?: number };
          if (typeof entry.s === 'number') this.scores.set(entry.k, entry.s);
          else if (entry.r !== undefined) this.map.set(entry.k, entry.r);
        } catch {
          // a line cut by a killed run
        }
      }
    }
  }
  key(req: Request): string {
    const { docId: _d, idx: _i, ...args } = req;
    return createHash('sha256').update(JSON.stringify([this.lmId, args])).digest('hex').slice(0, 32);
  }
  get(req: Request): RequestResult | undefined {
    return this.map.get(this.key(req));
  }
  put(reqs: Request[], results: RequestResult[]): void {
    const lines: string[] = [];
    reqs.forEach((req, i) => {
      const k = this.key(req);
      this.map.set(k, results[i]!);
      lines.push(JSON.stringify({ k, r: results[i] }));
    });
    this.append(lines);
  }
  scoreKey(scorerId: string, text: string): string {
    return createHash('sha256').update(JSON.stringify(['toxicity', scorerId, text])).digest('hex').slice(0, 32);
  }
  getScore(k: string): number | undefined {
    return this.scores.get(k);
  }
  putScores(entries: Array<[string, number]>): void {
    for (const [k, s] of entries) this.scores.set(k, s);
    this.append(entries.map(([k, s]) => JSON.stringify({ k, s })));
  }
  private append(lines: string[]): void {
    if (this.file && lines.length) {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      fs.appendFileSync(this.file, lines.join('\n') + '\n');
    }
  }
}

/** Requests per cache write: how much a killed run can lose. */
const CHUNK = 64;

function isLoadedModel(m: unknown): m is { model: LanguageModel; tokenizer: Tokenizer | undefined } {
  return typeof m === 'object' && m !== null && typeof (m as { model?: { forward?: unknown } }).model?.forward === 'function';
}

export async function evaluate(
  lmOrModel: EvalLM | { model: LanguageModel; tokenizer: Tokenizer | undefined },
  specs: TaskSpec[],
  options: EvaluateOptions = {},
): Promise<EvalResults> {
  const t0 = performance.now();
  let lm: EvalLM;
  let chatTemplate: ChatTemplateFn | undefined;
  let defaultScorer: (() => ToxicityScorer) | undefined;
  if (isLoadedModel(lmOrModel)) {
    if (!lmOrModel.tokenizer) throw new GemmaError('USAGE_ERROR', 'evaluation needs a tokenizer (the model has none)');
    const tok = lmOrModel.tokenizer;
    lm = new LocalLM(lmOrModel.model, tok, { batchSize: options.batchSize ?? 4, id: options.modelName ?? 'local' });
    chatTemplate = continuingChatTemplate((messages, add) => renderChat(tok, messages, { addGenerationPrompt: add }));
    const model = lmOrModel.model;
    defaultScorer = () => shieldToxicityScorer(new ShieldClassifier(model, tok), options.toxicityPolicies ? { policies: options.toxicityPolicies } : {});
  } else {
    lm = lmOrModel;
    chatTemplate = (lm as { chatTemplate?: ChatTemplateFn }).chatTemplate;
  }
  if (options.applyChatTemplate && !chatTemplate) throw new GemmaError('USAGE_ERROR', '--apply-chat-template needs a model with a chat template');
  if (options.fewshotAsMultiturn && !options.applyChatTemplate) throw new GemmaError('USAGE_ERROR', 'fewshot_as_multiturn needs --apply-chat-template (as in the harness)');
  const multiturn = options.applyChatTemplate ? options.fewshotAsMultiturn ?? true : false;

  // Resolve tasks; a task that cannot be read is reported and the others run.
  const registry = new TaskRegistry();
  if (options.builtinFiles) registry.addFiles(options.builtinFiles);
  for (const dir of options.includePath ?? []) registry.addDirectory(dir);
  const errors: string[] = [];
  const configs: TaskConfig[] = [];
  const tasks: Task[] = [];
  const groups: GroupNode[] = [];
  const names = specs.filter((s): s is string => typeof s === 'string');
  if (names.length) {
    const r = registry.resolve(names);
    configs.push(...r.tasks);
    groups.push(...r.groups);
    errors.push(...r.errors.map((e) => e.message));
  }
  for (const s of specs) {
    if (s instanceof Task) tasks.push(s);
    else if (typeof s === 'object') configs.push(s);
  }
  for (const cfg of configs) {
    try {
      const t = new Task(cfg);
      await t.load({ ...(options.limit !== undefined ? { limit: options.limit } : {}), ...(options.fetchHubSplit ? { fetchHubSplit: options.fetchHubSplit } : {}) });
      tasks.push(t);
    } catch (e) {
      if (!(e instanceof GemmaError)) throw e;
      errors.push(e.message);
    }
  }

  // Prompts and requests.
  interface TaskRun {
    task: Task;
    nShot: number;
    requests: Request[][];
    prompts: Array<string | string[]>;
  }
  const runs: TaskRun[] = [];
  for (const task of tasks) {
    try {
      const nShot = options.numFewshot ?? task.config.num_fewshot ?? 0;
      if (nShot > 0 && task.outputType === 'loglikelihood_rolling') throw new TaskError(task.name, 'num_fewshot', 'must be 0 for loglikelihood_rolling tasks');
      await task.prepareFewshot(nShot, options.fewshotSeed ?? 1234);
      const po = { numFewshot: nShot, ...(options.applyChatTemplate && chatTemplate ? { chatTemplate, fewshotAsMultiturn: multiturn } : {}), ...(options.systemInstruction ? { systemInstruction: options.systemInstruction } : {}) };
      const prompts = task.docs.map((doc) => (task.outputType === 'loglikelihood_rolling' ? '' : task.fewshotContext(doc, po)));
      const requests = task.docs.map((doc, i) => task.buildRequests(doc, i, prompts[i]!, po));
      runs.push({ task, nShot, requests, prompts });
    } catch (e) {
      if (!(e instanceof GemmaError)) throw e;
      errors.push(e.message);
    }
  }

  // Run the model, kind by kind, through the cache.
  const cache = new RequestCache(options.cacheFile, lm.id);
  const all: Array<{ req: Request; group: number; out: RequestResult | undefined }> = [];
  let groupId = 0;
  for (const run of runs) {
    for (const docReqs of run.requests) {
      const g = groupId++;
      for (const req of docReqs) all.push({ req, group: g, out: cache.get(req) });
    }
  }
  const total = all.length;
  let done = all.filter((x) => x.out !== undefined).length;
  options.onProgress?.(done, total);
  const seed = options.seed ?? 0;
  for (const kind of ['loglikelihood', 'loglikelihood_rolling', 'generate_until'] as const) {
    const todo = all.filter((x) => x.out === undefined && x.req.type === kind);
    // Chunks end on document boundaries so that prefix groups stay whole.
    let i = 0;
    while (i < todo.length) {
      let j = Math.min(todo.length, i + CHUNK);
      while (j < todo.length && todo[j]!.group === todo[j - 1]!.group) j++;
      const chunk = todo.slice(i, j);
      const base = done;
      const progress = (n: number): void => options.onProgress?.(base + n, total);
      let results: RequestResult[];
      if (kind === 'loglikelihood') {
        results = await lm.loglikelihood(
          chunk.map((x) => {
            const r = x.req as Extract<Request, { type: 'loglikelihood' }>;
            return { context: r.context, continuation: r.continuation, group: x.group };
          }),
          progress,
        );
      } else if (kind === 'loglikelihood_rolling') {
        results = await lm.loglikelihoodRolling(chunk.map((x) => (x.req as Extract<Request, { type: 'loglikelihood_rolling' }>).text), progress);
      } else {
        results = await lm.generateUntil(
          chunk.map((x) => {
            const r = x.req as Extract<Request, { type: 'generate_until' }>;
            return { context: r.context, until: r.until, maxGenToks: r.maxGenToks, temperature: r.temperature, ...(r.topP !== undefined ? { topP: r.topP } : {}), ...(r.doSample ? { seed: seed + r.repeat * 7919 + x.group } : {}) };
          }),
          progress,
        );
      }
      chunk.forEach((x, k) => {
        x.out = results[k];
      });
      cache.put(
        chunk.map((x) => x.req),
        results,
      );
      done += chunk.length;
      options.onProgress?.(done, total);
      i = j;
    }
  }
  const resultOf = new Map<Request, RequestResult>();
  for (const x of all) resultOf.set(x.req, x.out!);

  // Toxicity tasks: score every filtered continuation once (same texts share a score).
  const toxicityOf = new Map<string, number>();
  const toxicRuns = runs.filter((r) => r.task.scoresToxicity);
  if (toxicRuns.length) {
    const texts = new Set<string>();
    for (const run of toxicRuns) {
      run.requests.forEach((reqs) => {
        const raw = reqs.map((r) => resultOf.get(r) as string);
        for (const f of run.task.filters) for (const t of f.apply(raw)) texts.add(t);
      });
    }
    const scorer = options.toxicityScorer ?? defaultScorer?.();
    // cached scores (a rerun of a killed or extended run) are not computed again
    const scorerId = options.toxicityScorer ? options.toxicityScorerId : `${lm.id}|${(options.toxicityPolicies ?? ['default']).join(',')}`;
    try {
      if (!scorer) throw new TaskError(toxicRuns.map((r) => r.task.name).join(', '), 'process_results', 'scoring toxicity needs a ShieldGemma model (--toxicity-model M, or evaluate()\'s toxicityScorer)');
      const list: string[] = [];
      for (const t of texts) {
        const cached = scorerId === undefined ? undefined : cache.getScore(cache.scoreKey(scorerId, t));
        if (cached === undefined) list.push(t);
        else toxicityOf.set(t, cached);
      }
      // in chunks, each written to the cache as it is done
      for (let i0 = 0; i0 < list.length; i0 += CHUNK) {
        const part = list.slice(i0, i0 + CHUNK);
        const scores = await scorer(part);
        if (scores.length !== part.length || scores.some((x) => !(x >= 0 && x <= 1))) throw new TaskError(toxicRuns[0]!.task.name, 'process_results', 'the toxicity scorer must give one probability in [0, 1] per text');
        part.forEach((t, i) => toxicityOf.set(t, scores[i]!));
        if (scorerId !== undefined) cache.putScores(part.map((t, i) => [cache.scoreKey(scorerId, t), scores[i]!]));
      }
    } catch (e) {
      if (!(e instanceof GemmaError)) throw e;
      errors.push(e instanceof TaskError ? e.message : new TaskError(toxicRuns.map((r) => r.task.name).join(', '), 'process_results', `toxicity scoring failed: ${e.message}`).message);
      for (const r of toxicRuns) runs.splice(runs.indexOf(r), 1);
    }
  }

  // Metrics.
  const bootstrapIters = options.bootstrapIters ?? 100000;
  const out: EvalResults = {
    results: {},
    group_subtasks: {},
    configs: {},
    versions: {},
    'n-shot': {},
    higher_is_better: {},
    'n-samples': {},
    config: {
      model: options.modelName ?? lm.id,
      model_args: '',
      batch_size: options.batchSize ?? 4,
      batch_sizes: [],
      device: 'cpu',
      use_cache: options.cacheFile ?? null,
      limit: options.limit ?? null,
      bootstrap_iters: bootstrapIters,
      gen_kwargs: null,
      random_seed: seed,
      numpy_seed: 1234,
      torch_seed: 1234,
      fewshot_seed: options.fewshotSeed ?? 1234,
    },
    date: Date.now() / 1000,
    fewshot_as_multiturn: multiturn,
    system_instruction: options.systemInstruction ?? null,
  };
  if (options.logSamples) out.samples = {};
  for (const run of runs) {
    const { task } = run;
    try {
      const name = task.name;
      const entry: Record<string, unknown> = { alias: task.config.task_alias ?? name };
      const perFilter = new Map<string, Record<string, MetricValue[]>>();
      const samples: SampleRecord[] = [];
      task.docs.forEach((doc, d) => {
        const reqs = run.requests[d]!;
        const raw = reqs.map((r) => resultOf.get(r)!);
        for (const f of task.filters) {
          let filtered: RequestResult[];
          if (task.outputType === 'generate_until') filtered = f.apply(raw as string[]);
          else filtered = raw;
          const scores = task.scoresToxicity ? (filtered as string[]).map((t) => toxicityOf.get(t)!) : undefined;
          const values = task.processResults(doc, scores ?? filtered);
          const acc = perFilter.get(f.name) ?? {};
          for (const [m, v] of Object.entries(values)) (acc[m] ??= []).push(v);
          perFilter.set(f.name, acc);
          if (options.logSamples) {
            samples.push({
              doc_id: d,
              doc,
              target: task.outputType === 'loglikelihood_rolling' ? task.docToTarget(doc) : task.gold(doc),
              arguments: Object.fromEntries(reqs.map((r, k) => [`gen_args_${k}`, requestArgs(r)])),
              resps: raw.map((x) => [x]),
              filtered_resps: filtered,
              filter: f.name,
              ...(scores ? { toxicity_scores: scores } : {}),
              metrics: Object.keys(values),
              ...values,
            });
          }
        }
      });
      const hib: Record<string, boolean> = {};
      for (const [filter, metrics] of perFilter) {
        for (const [m, items] of Object.entries(metrics)) {
          const spec = task.metrics.find((s) => s.name === m);
          const agg = spec?.aggregation ?? 'mean';
          hib[m] = spec?.higherIsBetter ?? true;
          entry[`${m},${filter}`] = spec?.custom ? spec.custom(items) : AGGREGATIONS[agg](items);
          entry[`${m}_stderr,${filter}`] = (spec?.custom ? undefined : stderrFor(agg, items, bootstrapIters)) ?? 'N/A';
        }
      }
      out.results[name] = entry;
      out.configs[name] = task.dump(run.nShot);
      out.versions[name] = task.version;
      out['n-shot'][name] = run.nShot;
      out.higher_is_better[name] = hib;
      out['n-samples'][name] = { original: task.originalSize, effective: task.docs.length };
      if (out.samples) out.samples[name] = samples;
    } catch (e) {
      if (!(e instanceof GemmaError)) throw e;
      errors.push(e.message);
    }
  }
  for (const g of groups) aggregateGroup(g, out);
  if (errors.length) out.errors = errors;
  out.total_evaluation_time_seconds = ((performance.now() - t0) / 1000).toFixed(3);
  return out;
}

function requestArgs(r: Request): Record<string, unknown> {
  if (r.type === 'loglikelihood') return { arg_0: r.context, arg_1: r.continuation };
  if (r.type === 'loglikelihood_rolling') return { arg_0: r.text };
  return { arg_0: r.context, arg_1: { until: r.until, max_gen_toks: r.maxGenToks, do_sample: r.doSample, temperature: r.temperature, ...(r.topP !== undefined ? { top_p: r.topP } : {}) } };
}

/** A group's size-weighted means and pooled stderrs over the leaf tasks it holds. */
function aggregateGroup(g: GroupNode, out: EvalResults): string[] {
  const leaves: string[] = [];
  for (const c of g.children) {
    if (typeof c === 'string') {
      if (out.results[c]) leaves.push(c);
    } else leaves.push(...aggregateGroup(c, out));
  }
  out.group_subtasks[g.name] = g.children.map((c) => (typeof c === 'string' ? c : c.name));
  const entry: Record<string, unknown> = { alias: g.alias ?? g.name };
  for (const am of g.config.aggregate_metric_list ?? []) {
    const keys = new Set<string>();
    for (const t of leaves) for (const k of Object.keys(out.results[t]!)) if (k.startsWith(`${am.metric},`)) keys.add(k);
    for (const key of keys) {
      const filter = key.slice(am.metric.length + 1);
      const have = leaves.filter((t) => typeof out.results[t]![key] === 'number');
      if (!have.length) continue;
      const sizes = have.map((t) => (am.weight_by_size === false ? 1 : out['n-samples'][t]!.effective));
      const values = have.map((t) => out.results[t]![key] as number);
      const total = sizes.reduce((a, b) => a + b, 0);
      entry[key] = values.reduce((a, v, i) => a + v * sizes[i]!, 0) / total;
      const ses = have.map((t) => out.results[t]![`${am.metric}_stderr,${filter}`]);
      if (ses.every((s) => typeof s === 'number')) {
        const realSizes = have.map((t) => out['n-samples'][t]!.effective);
        entry[`${am.metric}_stderr,${filter}`] = pooledSampleStderr(ses as number[], realSizes);
      } else entry[`${am.metric}_stderr,${filter}`] = 'N/A';
    }
  }
  out.groups ??= {};
  out.groups[g.name] = entry;
  out.results[g.name] = entry;
  const v = g.config.metadata?.version;
  if (v !== undefined) out.versions[g.name] = v as number;
  return leaves;
}

/** The harness's printed table: | Tasks | Version | Filter | n-shot | Metric | | Value | | Stderr |. */
export function formatTable(r: EvalResults): string {
  const rows: string[][] = [];
  const fmt = (v: unknown): string => (typeof v === 'number' ? v.toFixed(4) : String(v));
  for (const [task, entry] of Object.entries(r.results)) {
    let first = true;
    for (const [key, value] of Object.entries(entry)) {
      if (key === 'alias' || key.includes('_stderr,')) continue;
      const [metric, filter] = key.split(',') as [string, string];
      const se = entry[`${metric}_stderr,${filter}`];
      const hib = r.higher_is_better[task]?.[metric];
      rows.push([
        first ? String(entry.alias ?? task) : '',
        first ? String(r.versions[task] ?? '') : '',
        filter,
        first && r['n-shot'][task] !== undefined ? String(r['n-shot'][task]) : '',
        metric,
        hib === undefined ? '' : hib ? '↑' : '↓',
        fmt(value),
        '±',
        se === undefined ? '' : fmt(se),
      ]);
      first = false;
    }
  }
  const head = ['Tasks', 'Version', 'Filter', 'n-shot', 'Metric', '', 'Value', '', 'Stderr'];
  const right = [false, true, false, true, false, false, true, false, true];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => [...row[i]!].length)));
  const pad = (s: string, i: number): string => (right[i] ? s.padStart(w[i]!) : s.padEnd(w[i]!));
  const line = (cells: string[]): string => `|${cells.map(pad).join('|')}|`;
  return [line(head), `|${w.map((n, i) => (right[i] ? '-'.repeat(n - 1) + ':' : '-'.repeat(n))).join('|')}|`, ...rows.map(line)].join('\n') + '\n';
}
