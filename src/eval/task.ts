/**
 * A task ready to run: its config, documents and hooks. Builds each document's prompt exactly as
 * lm-evaluation-harness does (description, few-shot examples joined by the delimiters, the
 * document; or the same as one chat turn with --apply-chat-template), its requests, and turns the
 * model's answers into per-document metric values.
 */
import { dumpConfig, isFunctionRef, type Field, type FunctionRef, type MetricConfig, type TaskConfig } from './config.js';
import { loadSplit, type DatasetOptions, type Doc } from './dataset.js';
import { TaskError } from './errors.js';
import { buildFilters, type FilterPipeline } from './filters.js';
import { HOOKS, countBytes, countWords, type AggregationHook, type Hook, type MetricValue, type RequestResult } from './hooks.js';
import { literalEval, pythonRegex, renderTemplate, UndefinedVariableError } from './jinja.js';
import { DEFAULT_METRICS, METRIC_DEFAULTS, exactMatch, type AggregationName, type ExactMatchOptions } from './metrics.js';
import { PythonRandom } from './python-random.js';
import { TOXICITY_HOOKS } from './toxicity.js';

export interface ChatTemplateFn {
  (messages: Array<{ role: string; content: string }>, addGenerationPrompt: boolean): string;
}

export interface PromptOptions {
  numFewshot: number;
  /** Render the prompt as one chat turn with this template (the model's). */
  chatTemplate?: ChatTemplateFn;
  /** With a chat template: few-shot examples as user / assistant turns (the harness's fewshot_as_multiturn) rather than one user turn. */
  fewshotAsMultiturn?: boolean;
  systemInstruction?: string;
}

/**
 * A chat template as the harness calls Hugging Face's: with addGenerationPrompt false (a task with
 * gen_prefix) the final message is continued (`continue_final_message`): the text is cut right
 * after that message's content, as transformers cuts it.
 */
export function continuingChatTemplate(render: ChatTemplateFn): ChatTemplateFn {
  return (messages, add) => {
    const text = render(messages, add);
    const last = messages[messages.length - 1];
    if (add || !last) return text;
    const final = last.content;
    const at = text.lastIndexOf(final.trim());
    if (at < 0) throw new Error('the chat template does not contain the final message, so it cannot be continued');
    const lstripped = final.trimStart();
    return text.slice(0, at + (text.slice(at, at + lstripped.length) === final ? lstripped.length : final.trim().length));
  };
}

/** One request of a document: (context, continuation) to score, a text to score whole, or a context to continue. */
export type Request =
  | { type: 'loglikelihood'; docId: number; idx: number; context: string; continuation: string }
  | { type: 'loglikelihood_rolling'; docId: number; idx: number; text: string }
  | { type: 'generate_until'; docId: number; idx: number; context: string; until: string[]; maxGenToks: number; temperature: number; doSample: boolean; repeat: number; topP?: number };

export interface MetricSpec {
  name: string;
  aggregation: AggregationName;
  /** An `aggregation: !function` hook (its stderr is N/A, as in the harness). */
  custom?: (items: MetricValue[]) => number;
  higherIsBetter: boolean;
  options: Record<string, unknown>;
}

const SUPPORTED_METRICS = new Set([...Object.keys(METRIC_DEFAULTS)]);

/** Python's str.isdigit for ASCII. */
const isDigits = (s: string): boolean => /^[0-9]+$/.test(s);

export function resolveHook(task: string, field: string, ref: FunctionRef, kind: Hook['kind']): Hook {
  const hook = HOOKS[ref.key] ?? TOXICITY_HOOKS[ref.key] ?? TOXICITY_HOOKS[ref.name];
  if (!hook) throw new TaskError(task, field, `!function ${ref.name} (${ref.key}) is Python; gemma-ts has no built-in version of it`);
  if (hook.kind !== kind) throw new TaskError(task, field, `!function ${ref.name} is not a ${kind} hook`);
  return hook;
}

export class Task {
  readonly name: string;
  readonly config: TaskConfig;
  readonly outputType: TaskConfig['output_type'];
  readonly version: number | string;
  readonly metrics: MetricSpec[];
  readonly filters: FilterPipeline[];
  /** Evaluated documents (after process_docs and --limit). */
  docs: Doc[] = [];
  /** Size of the evaluation split before --limit. */
  originalSize = 0;
  fewshotDocs: Doc[] = [];
  private features = new Set<string>();
  private multipleInput = false;
  private rnd: PythonRandom;
  private readonly processResultsHook: Hook | undefined;
  /** process_results reads toxicity scores of the continuations (evaluate() scores them first). */
  readonly scoresToxicity: boolean;
  private readonly emOptions: ExactMatchOptions;

  constructor(config: TaskConfig) {
    this.config = config;
    this.name = config.task;
    this.outputType = config.output_type;
    const meta = config.metadata ?? {};
    this.version = (meta.version as number | string | undefined) ?? 0;
    this.processResultsHook = config.process_results ? resolveHook(this.name, 'process_results', config.process_results, 'process_results') : undefined;
    this.scoresToxicity = Object.values<Hook>(TOXICITY_HOOKS).includes(this.processResultsHook!);
    this.metrics = this.buildMetrics(config.metric_list ?? null);
    this.filters = buildFilters(this.name, config.filter_list);
    const em = (config.metric_list ?? []).find((m) => m.metric === 'exact_match') ?? ({} as MetricConfig);
    this.emOptions = {
      ignore_case: em.ignore_case === true,
      ignore_punctuation: em.ignore_punctuation === true,
      ignore_numbers: em.ignore_numbers === true,
      regexes_to_ignore: ((em.regexes_to_ignore as string[] | undefined) ?? []).map((r) => pythonRegex(r)),
    };
    this.rnd = new PythonRandom(1234);
    // Hooks named in the config are checked now, before any model work.
    for (const f of ['doc_to_text', 'doc_to_target', 'doc_to_choice'] as const) {
      const v = config[f];
      if (isFunctionRef(v)) resolveHook(this.name, f, v, 'doc');
    }
    if (config.process_docs) resolveHook(this.name, 'process_docs', config.process_docs, 'process_docs');
  }

  private buildMetrics(list: MetricConfig[] | null): MetricSpec[] {
    const entries: MetricConfig[] = list ?? DEFAULT_METRICS[this.outputType]!.map((metric) => ({ metric }));
    return entries.map((m, i) => {
      const def = METRIC_DEFAULTS[m.metric];
      const agg = m.aggregation;
      const { metric: _m, aggregation: _a, higher_is_better, hf_evaluate: _h, ...options } = m;
      if (isFunctionRef(agg)) {
        const hook = resolveHook(this.name, `metric_list[${i}].aggregation`, agg, 'aggregation') as AggregationHook;
        return { name: m.metric, aggregation: 'mean' as AggregationName, custom: hook.fn, higherIsBetter: higher_is_better ?? true, options };
      }
      if (!def && !this.processResultsHook) throw new TaskError(this.name, `metric_list[${i}].metric`, `unsupported metric "${m.metric}" (built in: ${[...SUPPORTED_METRICS].join(', ')})`);
      const aggregation = (agg ?? def?.aggregation ?? 'mean') as AggregationName;
      if (!['mean', 'median', 'perplexity', 'weighted_perplexity', 'bits_per_byte', 'f1', 'matthews_corrcoef'].includes(aggregation)) {
        throw new TaskError(this.name, `metric_list[${i}].aggregation`, `unsupported aggregation "${String(aggregation)}"`);
      }
      return { name: m.metric, aggregation, higherIsBetter: higher_is_better ?? def?.higherIsBetter ?? true, options };
    });
  }

  /** Read the splits, apply process_docs and the limit (N documents, or a fraction when < 1). */
  async load(options: DatasetOptions & { limit?: number } = {}): Promise<void> {
    const cfg = this.config;
    const evalSplit = cfg.test_split || cfg.validation_split!;
    const processDocs = cfg.process_docs ? (resolveHook(this.name, 'process_docs', cfg.process_docs, 'process_docs') as Extract<Hook, { kind: 'process_docs' }>).fn : (d: Doc[]) => d;
    const all = processDocs(await loadSplit(cfg, evalSplit, options));
    if (all.length === 0) throw new TaskError(this.name, cfg.test_split ? 'test_split' : 'validation_split', `split "${evalSplit}" has no documents`);
    this.originalSize = all.length;
    const limit = options.limit;
    const n = limit === undefined ? all.length : limit < 1 ? Math.ceil(all.length * limit) : Math.min(all.length, limit);
    this.docs = all.slice(0, n);
    this.features = new Set(Object.keys(all[0]!));
    this.fewshotDocs = [];
    const fewshotSplit = (cfg.fewshot_config?.split as string | undefined) ?? cfg.fewshot_split ?? cfg.training_split ?? cfg.validation_split ?? undefined;
    this.fewshotSplit = fewshotSplit ?? evalSplit;
    const fsSamples = cfg.fewshot_config?.samples;
    if (Array.isArray(fsSamples)) this.fewshotDocs = fsSamples as Doc[];
    else this.fewshotLoader = async () => (fewshotSplit ? processDocs(await loadSplit(cfg, fewshotSplit, options)) : all);
    const first = this.docs[0]!;
    const text = this.docToText(first);
    this.multipleInput = typeof text === 'number' && cfg.doc_to_choice !== undefined && cfg.doc_to_choice !== null;
    this.docToTarget(first);
    if (cfg.doc_to_choice !== undefined && cfg.doc_to_choice !== null) this.docToChoice(first);
  }

  /** Use these documents instead of reading the dataset (tests, callers with their own data); process_docs applies. */
  useDocs(docs: Doc[], fewshotDocs: Doc[] = []): void {
    const cfg = this.config;
    const processDocs = cfg.process_docs ? (resolveHook(this.name, 'process_docs', cfg.process_docs, 'process_docs') as Extract<Hook, { kind: 'process_docs' }>).fn : (d: Doc[]) => d;
    this.docs = processDocs(docs);
    this.originalSize = this.docs.length;
    this.features = new Set(Object.keys(this.docs[0] ?? {}));
    this.fewshotDocs = processDocs(fewshotDocs);
    this.fewshotSplit = (cfg.fewshot_config?.split as string | undefined) ?? cfg.fewshot_split ?? cfg.training_split ?? cfg.validation_split ?? '';
    this.fewshotLoader = undefined;
    const first = this.docs[0];
    if (first) this.multipleInput = typeof this.docToText(first) === 'number' && cfg.doc_to_choice !== undefined && cfg.doc_to_choice !== null;
  }

  private fewshotSplit = '';
  private fewshotLoader: (() => Promise<Doc[]>) | undefined;

  /** Load the few-shot pool when examples are wanted. */
  async prepareFewshot(numFewshot: number, seed = 1234): Promise<void> {
    this.rnd = new PythonRandom(seed);
    if (numFewshot > 0 && this.fewshotDocs.length === 0 && this.fewshotLoader) this.fewshotDocs = await this.fewshotLoader();
    if (numFewshot > 0 && this.fewshotDocs.length < numFewshot) {
      throw new TaskError(this.name, 'num_fewshot', `${numFewshot} few-shot examples asked for, the few-shot split holds ${this.fewshotDocs.length}`);
    }
  }

  private fieldError(field: string, e: unknown): TaskError {
    if (e instanceof TaskError) return e;
    if (e instanceof UndefinedVariableError) return new TaskError(this.name, field, `the dataset has no column "${e.variable}"`);
    return new TaskError(this.name, field, (e as Error).message);
  }

  private resolve(field: string, spec: Field, doc: Doc, kind: 'text' | 'target' | 'choice'): unknown {
    try {
      if (typeof spec === 'number') return spec;
      if (Array.isArray(spec)) return spec;
      if (isFunctionRef(spec)) return (resolveHook(this.name, field, spec, 'doc') as Extract<Hook, { kind: 'doc' }>).fn(doc);
      if (spec && typeof spec === 'object') return Object.values(spec);
      if (typeof spec !== 'string') throw new TaskError(this.name, field, 'expected a template, a field name, a number or a list');
      if (this.features.has(spec)) {
        if (!(spec in doc)) throw new TaskError(this.name, field, `the dataset has no column "${spec}"`);
        return doc[spec];
      }
      // A bare identifier that is not a column names a column the dataset lacks (as a template it would render as itself).
      if (/^[A-Za-z_]\w*$/.test(spec)) throw new TaskError(this.name, field, `the dataset has no column "${spec}"`);
      const s = renderTemplate(spec, doc);
      const hasChoices = this.config.doc_to_choice !== undefined && this.config.doc_to_choice !== null;
      if (kind === 'choice') return literalEval(s);
      if (isDigits(s) && hasChoices) return Number(s);
      if (kind === 'target' && s.length >= 2 && s.startsWith('[') && s.endsWith(']')) {
        try {
          return literalEval(s);
        } catch {
          return s;
        }
      }
      return s;
    } catch (e) {
      throw this.fieldError(field, e);
    }
  }

  docToText(doc: Doc, spec: Field = this.config.doc_to_text): string | number {
    return this.resolve('doc_to_text', spec ?? '', doc, 'text') as string | number;
  }
  docToTarget(doc: Doc, spec: Field = this.config.doc_to_target): string | number | unknown[] {
    return this.resolve('doc_to_target', spec, doc, 'target') as string | number | unknown[];
  }
  docToChoice(doc: Doc, spec: Field = this.config.doc_to_choice): string[] {
    const v = this.resolve('doc_to_choice', spec, doc, 'choice');
    if (!Array.isArray(v)) throw new TaskError(this.name, 'doc_to_choice', 'must give a list');
    return v.map(String);
  }

  private fewshotSample(doc: Doc, n: number): Doc[] {
    if (n === 0) return [];
    const sameSplit = this.fewshotSplit === (this.config.test_split || this.config.validation_split);
    const sampler = (this.config.fewshot_config?.sampler as string | undefined) ?? 'default';
    const pool = this.fewshotDocs;
    const notDoc = (d: Doc): boolean => JSON.stringify(d) !== JSON.stringify(doc);
    if (sampler === 'first_n') return (sameSplit ? pool.filter(notDoc) : pool).slice(0, n);
    if (!sameSplit) return this.rnd.sample(pool, n);
    return this.rnd.sample(pool, Math.min(pool.length, n + 1)).filter(notDoc).slice(0, n);
  }

  /** The prompt(s) of a document: one string, or one per choice for multiple-input tasks (winogrande). */
  fewshotContext(doc: Doc, o: PromptOptions): string | string[] {
    const cfg = this.config;
    type Msg = { role: string; content: string; delim: string };
    const msgs: Msg[] = [];
    const descSpec = cfg.description ?? '';
    const description = descSpec ? (this.features.has(descSpec) ? String(doc[descSpec]) : this.renderField('description', descSpec, doc)) : '';
    const system = maybeDelimit(o.systemInstruction, description, cfg.fewshot_delimiter!);
    if (system) msgs.push({ role: 'system', content: system, delim: '' });
    const fs = (cfg.fewshot_config ?? {}) as Record<string, unknown>;
    const fsTarget = (fs.target_delimiter as string | undefined) ?? cfg.target_delimiter!;
    const fsDelim = (fs.fewshot_delimiter as string | undefined) ?? cfg.fewshot_delimiter!;
    const fsGenPrefix = (fs.gen_prefix as string | undefined) ?? cfg.gen_prefix ?? undefined;
    for (const ex of this.fewshotSample(doc, o.numFewshot)) {
      let q = this.docToText(ex, (fs.doc_to_text as Field) ?? cfg.doc_to_text);
      const hasChoices = (fs.doc_to_choice ?? cfg.doc_to_choice) !== undefined && (fs.doc_to_choice ?? cfg.doc_to_choice) !== null;
      let c = hasChoices ? this.docToChoice(ex, (fs.doc_to_choice as Field) ?? cfg.doc_to_choice) : undefined;
      const a = this.docToTarget(ex, (fs.doc_to_target as Field) ?? cfg.doc_to_target);
      if (this.multipleInput) {
        q = c![q as number]!;
        c = undefined;
      }
      msgs.push(...qaTurn(String(q), c, a, fsGenPrefix ? this.renderField('gen_prefix', fsGenPrefix, ex) : undefined, fsTarget, fsDelim));
    }
    const genPrefix = cfg.gen_prefix ? this.renderField('gen_prefix', cfg.gen_prefix, doc) : undefined;
    const render = (messages: Msg[]): string => {
      if (!o.chatTemplate) return messages.map((m) => m.content + m.delim).join('');
      return o.chatTemplate(o.fewshotAsMultiturn ? messages.map(({ role, content }) => ({ role, content })) : singleTurn(messages), !genPrefix);
    };
    if (this.multipleInput) {
      return this.docToChoice(doc).map((choice) => render([...msgs.map((m) => ({ ...m })), ...qaTurn(choice, undefined, undefined, genPrefix, '', '')]));
    }
    const q = this.docToText(doc);
    const c = cfg.doc_to_choice !== undefined && cfg.doc_to_choice !== null ? this.docToChoice(doc) : undefined;
    msgs.push(...qaTurn(String(q), c, undefined, genPrefix, cfg.target_delimiter!, ''));
    return render(msgs);
  }

  private renderField(field: string, template: string, doc: Doc): string {
    try {
      return renderTemplate(template, doc);
    } catch (e) {
      throw this.fieldError(field, e);
    }
  }

  /** The requests of a document, given its prompt. */
  buildRequests(doc: Doc, docId: number, ctx: string | string[], o: PromptOptions): Request[] {
    const cfg = this.config;
    switch (this.outputType) {
      case 'loglikelihood':
        return [{ type: 'loglikelihood', docId, idx: 0, context: ctx as string, continuation: String(this.docToTarget(doc)) }];
      case 'loglikelihood_rolling':
        return [{ type: 'loglikelihood_rolling', docId, idx: 0, text: String(this.docToTarget(doc)) }];
      case 'multiple_choice': {
        let delim = cfg.target_delimiter!;
        if (o.chatTemplate) delim = cfg.gen_prefix && !/\s$/u.test(cfg.gen_prefix) ? cfg.target_delimiter! : '';
        if (this.multipleInput) {
          const cont = String(this.docToTarget(doc));
          return (ctx as string[]).map((c, idx) => ({ type: 'loglikelihood' as const, docId, idx, context: c, continuation: `${delim}${cont}` }));
        }
        return this.docToChoice(doc).map((choice, idx) => ({ type: 'loglikelihood' as const, docId, idx, context: ctx as string, continuation: `${delim}${choice}` }));
      }
      case 'generate_until': {
        const g = cfg.generation_kwargs ?? {};
        const untilRaw = g.until ?? [cfg.fewshot_delimiter!];
        const until = typeof untilRaw === 'string' ? [untilRaw] : (untilRaw as string[]);
        const doSample = g.do_sample === true;
        const temperature = doSample ? Number(g.temperature ?? 1) : 0;
        const maxGenToks = Number(g.max_gen_toks ?? 256);
        const topP = doSample && g.top_p !== undefined ? { topP: Number(g.top_p) } : {};
        return Array.from({ length: cfg.repeats ?? 1 }, (_, repeat) => ({ type: 'generate_until' as const, docId, idx: 0, context: ctx as string, until, maxGenToks, temperature, doSample, repeat, ...topP }));
      }
    }
  }

  /** The gold answer as the harness's process_results sees it (an index, a list of indices, or text). */
  gold(doc: Doc): unknown {
    if (this.outputType === 'multiple_choice') {
      const choices = this.docToChoice(doc);
      const g = this.multipleInput ? this.docToText(doc) : this.docToTarget(doc);
      const toIndex = (x: unknown): number => (typeof x === 'number' ? (x < choices.length ? x : -100) : choices.indexOf(String(x)) >= 0 ? choices.indexOf(String(x)) : -100);
      return Array.isArray(g) ? g.map(toIndex) : toIndex(g);
    }
    if (this.outputType === 'generate_until') {
      let g = this.docToTarget(doc);
      if (this.config.doc_to_choice !== undefined && this.config.doc_to_choice !== null) g = this.docToChoice(doc)[g as number]!;
      return Array.isArray(g) ? g.map(String) : String(g);
    }
    return this.docToTarget(doc);
  }

  /** Per-document metric values from the (filtered) results of its requests. */
  processResults(doc: Doc, results: RequestResult[]): Record<string, MetricValue> {
    if (this.processResultsHook) return (this.processResultsHook as Extract<Hook, { kind: 'process_results' }>).fn(doc, results);
    const want = new Set(this.metrics.map((m) => m.name));
    const out: Record<string, MetricValue> = {};
    if (this.outputType === 'loglikelihood') {
      const [ll, greedy] = results[0] as [number, boolean];
      if (want.has('perplexity')) out.perplexity = ll;
      if (want.has('acc')) out.acc = greedy ? 1 : 0;
    } else if (this.outputType === 'loglikelihood_rolling') {
      const ll = results[0] as number;
      const text = String(this.docToTarget(doc));
      if (want.has('word_perplexity')) out.word_perplexity = [ll, countWords(text)];
      if (want.has('byte_perplexity')) out.byte_perplexity = [ll, countBytes(text)];
      if (want.has('bits_per_byte')) out.bits_per_byte = [ll, countBytes(text)];
    } else if (this.outputType === 'multiple_choice') {
      const lls = results.map((r) => (r as [number, boolean])[0]);
      const greedy = results.map((r) => (r as [number, boolean])[1]);
      const choices = this.docToChoice(doc);
      const argmax = (xs: number[]): number => xs.reduce((best, x, i) => (x > xs[best]! ? i : best), 0);
      const pred = argmax(lls);
      const predNorm = argmax(lls.map((l, i) => l / choices[i]!.length));
      const predBytes = argmax(lls.map((l, i) => l / countBytes(choices[i]!)));
      const gold = this.gold(doc) as number | number[];
      const hit = (p: number): number => (Array.isArray(gold) ? (gold.includes(p) ? 1 : 0) : p === gold ? 1 : 0);
      if (want.has('acc')) out.acc = hit(pred);
      if (want.has('acc_norm')) out.acc_norm = hit(predNorm);
      if (want.has('acc_bytes')) out.acc_bytes = hit(predBytes);
      if (want.has('f1')) out.f1 = [gold as number, pred];
      if (want.has('mcc')) out.mcc = [gold as number, pred];
      if (want.has('exact_match')) out.exact_match = Array.isArray(gold) ? (gold.some((g) => g !== -100 && greedy[g]) ? 1 : 0) : gold !== -100 && greedy[gold] ? 1 : 0;
      if (want.has('likelihood')) out.likelihood = lls[gold as number] ?? 0;
    } else {
      const pred = String(results[0]);
      const gold = this.gold(doc) as string | string[];
      for (const m of this.metrics) {
        if (m.name !== 'exact_match') continue;
        out.exact_match = Array.isArray(gold) ? (gold.some((g) => exactMatch(pred, g, this.emOptions) === 1) ? 1 : 0) : exactMatch(pred, gold, this.emOptions);
      }
    }
    return out;
  }

  /** The config as results.json reports it. */
  dump(numFewshot: number): Record<string, unknown> {
    return { ...dumpConfig(this.config), num_fewshot: numFewshot };
  }
}

/** Join prefix and suffix, adding the delimiter only if neither has whitespace at the join. */
export function maybeDelimit(prefix: string | undefined, suffix: string | undefined, delimiter = ' '): string {
  if (!prefix) return suffix ?? '';
  if (!suffix) return prefix;
  return /\s$/u.test(prefix) || /^\s/u.test(suffix) ? prefix + suffix : prefix + delimiter + suffix;
}

function qaTurn(q: string, c: string[] | undefined, a: unknown, genPrefix: string | undefined, tgtDelim: string, fewDelim: string): Array<{ role: string; content: string; delim: string }> {
  const hasAnswer = a !== undefined && a !== null && a !== '';
  const needs = genPrefix !== undefined && genPrefix !== '' && q !== '' && !(/\s$/u.test(q) || /^\s/u.test(genPrefix));
  const msgs = [{ role: 'user', content: q, delim: hasAnswer && !genPrefix ? tgtDelim : genPrefix && needs ? tgtDelim : '' }];
  if (hasAnswer) {
    const text = c && typeof a === 'number' ? c[a]! : Array.isArray(a) ? String(a[0]) : String(a);
    msgs.push({ role: 'assistant', content: maybeDelimit(genPrefix, text, ' '), delim: fewDelim });
  } else if (genPrefix) msgs.push({ role: 'assistant', content: genPrefix, delim: '' });
  return msgs;
}

/** The harness's multiturn_to_singleturn: everything but the system prompt (and a final assistant prefix) as one user turn. */
function singleTurn(messages: Array<{ role: string; content: string; delim: string }>): Array<{ role: string; content: string }> {
  const [system, rest] = messages[0]?.role === 'system' ? [messages[0], messages.slice(1)] : [undefined, messages];
  const out: Array<{ role: string; content: string }> = [];
  if (system) out.push({ role: 'system', content: system.content });
  const last = rest[rest.length - 1];
  if (last?.role === 'assistant') {
    const user = rest.slice(0, -1);
    out.push({ role: 'user', content: user.map((m, i) => m.content + (i === user.length - 1 ? '' : m.delim)).join('') });
    out.push({ role: 'assistant', content: last.content });
  } else out.push({ role: 'user', content: rest.map((m, i) => m.content + (i === rest.length - 1 ? '' : m.delim)).join('') });
  return out;
}
