/**
 * `gemma eval`: lm-evaluation-harness tasks on a gemma-ts model.
 *
 *   gemma eval --model M --tasks NAME_OR_YAML[,...] [--include-path DIR] [--apply-chat-template]
 *              [--limit N] [--num-fewshot K] [--batch-size B] --output-path DIR [--log-samples]
 *
 * Writes DIR/results.json (the harness's shape), DIR/samples_<task>.jsonl with --log-samples,
 * keeps finished request results in DIR/.request-cache.jsonl (a rerun resumes), prints the table.
 */
import fs from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { InvalidArgumentError, type Command } from 'commander';
import { UsageError } from '../errors.js';
import { evaluate, formatTable, type EvalResults } from '../eval/evaluate.js';
import { renderReport } from '../eval/report.js';
import { BUILTIN_TASK_FILES } from '../eval/builtin.js';
import { fetchHubSplit } from '../eval/hub.js';
import { formatPerplexity, perplexityOfIds } from '../eval/perplexity.js';
import { RemoteLM } from '../eval/remote.js';
import { formatSxs, humanRatings, judgePairs, summarize, type Judge, type SxsReport } from '../eval/sxs.js';
import { parseCsv } from '../eval/dataset.js';
import { Scheduler } from '../generate/scheduler.js';
import { encodeChat } from '../tokenizer/chat.js';
import OpenAI from 'openai';
import type { EvalLM } from '../eval/lm.js';
import { resolveModelPath } from '../model/load.js';
import type { LanguageModel } from '../model/types.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { formatMemorization, memorization } from '../eval/memorization.js';
import { shieldToxicityScorer, type ToxicityScorer } from '../eval/toxicity.js';
import { ShieldClassifier } from '../safety/classifier.js';
import { resolvePolicies } from '../safety/templates.js';
import { addBackendOptions, defaultIO, loadForCli, parseIntFlag, type CliIO, type ModelFlags } from './options.js';

interface EvalFlags extends ModelFlags {
  tasks?: string;
  includePath?: string[];
  applyChatTemplate?: boolean;
  fewshotAsMultiturn?: boolean;
  systemInstruction?: string;
  limit?: number;
  numFewshot?: number;
  batchSize?: number;
  outputPath?: string;
  logSamples?: boolean;
  seed?: number;
  bootstrapIters?: number;
  cache?: boolean;
  report?: string;
  compare?: string[];
  toxicityModel?: string;
  toxicityPolicies?: string;
  // sxs
  prompts?: string;
  answersA?: string;
  answersB?: string;
  modelA?: string;
  modelB?: string;
  judge?: string;
  judgeModel?: string;
  ratings?: string;
  maxTokens?: number;
  baseUrl?: string;
  concurrency?: number;
  apiKey?: string;
  // perplexity
  data?: string;
  ctx?: number;
  reference?: string;
  pplMode?: 'chunks' | 'rolling';
  chunks?: number;
  json?: boolean;
  // memorization
  corpus?: string;
  prefix?: number;
  suffix?: number;
  n?: number;
  unit?: 'token' | 'char';
}

function parseLimit(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (n >= 1 && !Number.isInteger(n))) throw new InvalidArgumentError('expected an integer >= 1 or a fraction in (0, 1).');
  return n;
}

export function registerEvalCommand(program: Command, io: CliIO = defaultIO()): void {
  const cmd = program
    .command('eval')
    .description('evaluate a model: lm-evaluation-harness tasks (default), or `eval perplexity` (perplexity / KL divergence)')
    .argument('[mode]', 'perplexity | memorization | sxs (default: harness tasks)')
    .option('--tasks <list>', 'comma-separated task / group / tag names or task YAML files')
    .option('--include-path <dir>', 'directory of extra task YAMLs (repeatable)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--apply-chat-template', "render prompts with the model's chat template")
    .option('--fewshot-as-multiturn [bool]', 'with --apply-chat-template: few-shot examples as user / assistant turns (default true, as the harness; false = one user turn)', (v: string) => {
      if (!['true', 'false', '1', '0', 'yes', 'no'].includes(v.toLowerCase())) throw new InvalidArgumentError('expected true or false.');
      return ['true', '1', 'yes'].includes(v.toLowerCase());
    })
    .option('--system-instruction <text>', 'system prompt placed before each prompt')
    .option('--limit <n>', 'documents per task (a fraction of the split when < 1)', parseLimit)
    .option('--num-fewshot <k>', 'few-shot examples per prompt (default: the task\'s num_fewshot, else 0)', parseIntFlag(0))
    .option('--batch-size <b>', 'documents per model step (default 4)', parseIntFlag(1, 4096))
    .option('--output-path <dir>', 'directory for results.json (and samples, cache)')
    .option('--log-samples', 'write samples_<task>.jsonl: prompt, continuations, loglikelihoods, filtered response, metrics')
    .option('--seed <n>', 'seed of sampled generations (default 0)', parseIntFlag(0))
    .option('--bootstrap-iters <n>', 'bootstrap resamples for non-mean stderrs (default 100000; 0 = none)', parseIntFlag(0))
    .option('--no-cache', 'ignore and do not write the request cache')
    .option('--report <file>', 'also write a self-contained HTML report with charts (any mode)')
    .option('--compare <results.json>', 'with --report: results of other models to chart against (repeatable)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--toxicity-model <model>', 'ShieldGemma model that scores the continuations of toxicity tasks (default: the evaluated model)')
    .option('--toxicity-policies <list>', 'ShieldGemma policies of the toxicity score, comma-separated (default harassment,hate; the score is the max)')
    .option('--base-url <url>', 'evaluate the model an OpenAI-compatible server serves (gemma serve, vLLM ...); --model then names the tokenizer')
    .option('--concurrency <n>', 'with --base-url: requests in flight (default 4)', parseIntFlag(1, 1024))
    .option('--api-key <key>', 'with --base-url: bearer token (default $OPENAI_API_KEY)')
    .option('--data <file>', 'perplexity: the corpus (plain text)')
    .option('--ctx <n>', 'perplexity: tokens per chunk / window (default 512)', parseIntFlag(2))
    .option('--reference <model>', 'perplexity: reference model for the KL-divergence report (e.g. the f32 / bf16 checkpoint)')
    .option('--ppl-mode <mode>', 'perplexity: chunks (llama.cpp, default) or rolling (lm-evaluation-harness windows)', (v: string) => {
      if (v !== 'chunks' && v !== 'rolling') throw new InvalidArgumentError('expected chunks or rolling.');
      return v;
    })
    .option('--chunks <n>', 'perplexity: score at most N chunks / windows', parseIntFlag(1))
    .option('--json', 'perplexity / memorization: print the report as JSON')
    .option('--prompts <file>', 'sxs: prompts JSONL ({"prompt"} / {"question"} / {"text"} or strings, optional "id")')
    .option('--answers-a <file>', 'sxs: answers of model A (JSONL {"answer"} / {"response"} / {"text"} or strings, in prompt order or by "id")')
    .option('--answers-b <file>', 'sxs: answers of model B')
    .option('--model-a <model>', 'sxs: generate the answers of A with this gemma-ts model')
    .option('--model-b <model>', 'sxs: generate the answers of B with this gemma-ts model')
    .option('--judge <judge>', 'sxs: a gemma-ts model, or the base URL of an OpenAI-compatible endpoint')
    .option('--judge-model <name>', 'sxs: model name at the judge endpoint (default: the first of /v1/models)')
    .option('--ratings <csv>', 'sxs: human ratings instead of a judge (columns: winner = A / B / tie, optional id, prompt)')
    .option('--max-tokens <n>', 'sxs: most tokens per generated answer / judgment (default 512)', parseIntFlag(1))
    .option('--corpus <file>', 'memorization: JSONL ({"text"} or a string per line) or plain text (one document)')
    .option('--prefix <n>', 'memorization: prompt tokens (default 50)', parseIntFlag(1))
    .option('--suffix <n>', 'memorization: tokens to continue and compare (default 50)', parseIntFlag(1))
    .option('--n <n>', 'memorization: most examples (default 10000)', parseIntFlag(1))
    .option('--unit <unit>', 'memorization: edit distance in token (default) or char', (v: string) => {
      if (v !== 'token' && v !== 'char') throw new InvalidArgumentError('expected token or char.');
      return v;
    });
  // --model is not required: `eval sxs` names its models with --model-a / --model-b / --judge.
  addBackendOptions(cmd.option('-m, --model <model>', 'model directory (Hugging Face layout), .gguf file, or "demo"')).option('--kv-type <type>', 'KV cache element type: f32 or f16', (v: string) => {
    if (v !== 'f32' && v !== 'f16') throw new InvalidArgumentError('expected f32 or f16.');
    return v;
  });
  cmd.action(async (mode: string | undefined, flags: EvalFlags) => {
    if (mode === 'perplexity') return runPerplexity(flags, io);
    if (mode === 'memorization') return runMemorization(flags, io);
    if (mode === 'sxs') return runSxs(flags, io);
    if (!flags.model) throw new UsageError('--model is required');
    if (mode !== undefined) throw new UsageError(`unknown eval mode "${mode}" (expected perplexity, memorization, sxs, or none for harness tasks)`);
    if (!flags.tasks) throw new UsageError('--tasks is required (names or YAML files, comma-separated)');
    if (!flags.outputPath) throw new UsageError('--output-path DIR is required');
    const specs = flags.tasks.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (specs.length === 0) throw new UsageError('--tasks names no task');
    const out = path.resolve(flags.outputPath);
    fs.mkdirSync(out, { recursive: true });
    let target: EvalLM | { model: LanguageModel; tokenizer: Tokenizer | undefined };
    if (flags.baseUrl) {
      const tokenizer = await loadTokenizer(resolveModelPath(flags.model));
      target = new RemoteLM(tokenizer, { baseUrl: flags.baseUrl, ...(flags.concurrency ? { concurrency: flags.concurrency } : {}), ...(flags.apiKey ? { apiKey: flags.apiKey } : {}) });
    } else {
      const loaded = await loadForCli(flags, io);
      target = { model: loaded.model, tokenizer: loaded.tokenizer };
    }
    let bar: cliProgress.SingleBar | undefined;
    const onProgress = (done: number, total: number): void => {
      if (!io.stderr.isTTY || total === 0) return;
      if (!bar) {
        bar = new cliProgress.SingleBar(
          { stream: io.stderr as NodeJS.WritableStream, format: 'eval [{bar}] {value}/{total} requests | {percentage}% | ETA {eta_formatted}', hideCursor: true, clearOnComplete: true, etaBuffer: 50 },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, done);
      }
      bar.update(done);
    };
    const policies = flags.toxicityPolicies?.split(',').map((p) => p.trim()).filter((p) => p !== '');
    if (policies) resolvePolicies(policies); // an unknown policy fails before any model work
    let scorerModel: LanguageModel | undefined;
    let toxicityScorer: ToxicityScorer | undefined;
    if (flags.toxicityModel) {
      const shield = await loadForCli({ ...flags, model: flags.toxicityModel }, io);
      if (!shield.tokenizer) throw new UsageError(`${flags.toxicityModel} has no tokenizer`);
      scorerModel = shield.model;
      toxicityScorer = shieldToxicityScorer(new ShieldClassifier(shield.model, shield.tokenizer), policies ? { policies } : {});
    }
    let results;
    try {
      results = await evaluate(target, specs, {
        ...(toxicityScorer ? { toxicityScorer, toxicityScorerId: `${path.resolve(flags.toxicityModel!)}|${(policies ?? ['default']).join(',')}` } : {}),
        ...(policies ? { toxicityPolicies: policies } : {}),
        builtinFiles: BUILTIN_TASK_FILES,
        fetchHubSplit,
        modelName: flags.model,
        onProgress,
        ...(flags.includePath ? { includePath: flags.includePath.map((d) => path.resolve(d)) } : {}),
        ...(flags.applyChatTemplate ? { applyChatTemplate: true } : {}),
        ...(flags.fewshotAsMultiturn !== undefined ? { fewshotAsMultiturn: flags.fewshotAsMultiturn } : {}),
        ...(flags.systemInstruction !== undefined ? { systemInstruction: flags.systemInstruction } : {}),
        ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
        ...(flags.numFewshot !== undefined ? { numFewshot: flags.numFewshot } : {}),
        ...(flags.batchSize !== undefined ? { batchSize: flags.batchSize } : {}),
        ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
        ...(flags.bootstrapIters !== undefined ? { bootstrapIters: flags.bootstrapIters } : {}),
        ...(flags.cache !== false ? { cacheFile: path.join(out, '.request-cache.jsonl') } : {}),
        ...(flags.logSamples ? { logSamples: true } : {}),
      });
    } finally {
      bar?.stop();
      scorerModel?.dispose();
    }
    const { samples, ...json } = results;
    fs.writeFileSync(path.join(out, 'results.json'), JSON.stringify(json, null, 2) + '\n');
    for (const [task, records] of Object.entries(samples ?? {})) {
      fs.writeFileSync(path.join(out, `samples_${task}.jsonl`), records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
    }
    if (Object.keys(results.results).length) io.stdout.write(formatTable(results));
    if (flags.report) {
      const all: Record<string, EvalResults> = { [flags.model]: json as EvalResults };
      for (const f of flags.compare ?? []) {
        const other = JSON.parse(fs.readFileSync(f, 'utf8')) as EvalResults;
        all[String(other.config?.model ?? f)] = other;
      }
      fs.writeFileSync(flags.report, await renderReport({ results: all }));
    }
    if (results.errors?.length) {
      // Partial results are written above; the failures make the command fail.
      throw new UsageError(results.errors.join('\nerror: '));
    }
  });
}

async function runPerplexity(flags: EvalFlags, io: CliIO): Promise<void> {
  if (!flags.model) throw new UsageError('eval perplexity needs --model');
  if (!flags.data) throw new UsageError('eval perplexity needs --data FILE (a text corpus)');
  if (!fs.existsSync(flags.data)) throw new UsageError(`no such file: ${flags.data}`);
  const text = fs.readFileSync(flags.data, 'utf8');
  const loaded = await loadForCli(flags, io);
  if (!loaded.tokenizer) throw new UsageError(`${flags.model} has no tokenizer; eval perplexity reads text`);
  const reference = flags.reference ? await loadForCli({ ...flags, model: flags.reference }, io) : undefined;
  const ids = loaded.tokenizer.encode(text, { addBos: true });
  let bar: cliProgress.SingleBar | undefined;
  try {
    const report = await perplexityOfIds(loaded.model, ids, {
      ...(flags.ctx !== undefined ? { ctx: flags.ctx } : {}),
      ...(flags.pplMode ? { mode: flags.pplMode } : {}),
      ...(reference ? { reference: reference.model } : {}),
      ...(flags.chunks !== undefined ? { maxChunks: flags.chunks } : {}),
      bosId: loaded.tokenizer.bosId,
      onProgress: (done, total) => {
        if (!io.stderr.isTTY) return;
        if (!bar) {
          bar = new cliProgress.SingleBar({ stream: io.stderr as NodeJS.WritableStream, format: 'perplexity [{bar}] {value}/{total} chunks | ETA {eta_formatted}', clearOnComplete: true }, cliProgress.Presets.shades_classic);
          bar.start(total, 0);
        }
        bar.update(done);
      },
    });
    bar?.stop();
    io.stdout.write(flags.json ? JSON.stringify(report) + '\n' : formatPerplexity(report));
    if (flags.report) fs.writeFileSync(flags.report, await renderReport({ perplexity: report, title: `Perplexity of ${flags.model}` }));
    if (flags.outputPath) {
      fs.mkdirSync(flags.outputPath, { recursive: true });
      fs.writeFileSync(path.join(flags.outputPath, 'perplexity.json'), JSON.stringify(report, null, 2) + '\n');
    }
  } finally {
    bar?.stop();
    reference?.model.dispose();
  }
}

/** Corpus documents: JSONL of {"text"} objects or strings, else the whole file as one document. */
function readCorpus(file: string): string[] {
  if (!/\.jsonl?$/.test(file)) return [fs.readFileSync(file, 'utf8')];
  return readJsonlTexts(file, ['text']).map((r) => r.text);
}

async function runMemorization(flags: EvalFlags, io: CliIO): Promise<void> {
  if (!flags.model) throw new UsageError('eval memorization needs --model');
  if (!flags.corpus) throw new UsageError('eval memorization needs --corpus FILE');
  if (!fs.existsSync(flags.corpus)) throw new UsageError(`no such file: ${flags.corpus}`);
  const docs = readCorpus(flags.corpus);
  const loaded = await loadForCli(flags, io);
  if (!loaded.tokenizer) throw new UsageError(`${flags.model} has no tokenizer; eval memorization reads text`);
  const report = await memorization(loaded.model, loaded.tokenizer, docs, {
    ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
    ...(flags.suffix !== undefined ? { suffix: flags.suffix } : {}),
    ...(flags.n !== undefined ? { n: flags.n } : {}),
    ...(flags.unit ? { unit: flags.unit } : {}),
    ...(flags.batchSize !== undefined ? { parallel: flags.batchSize } : {}),
  });
  io.stdout.write(flags.json ? JSON.stringify(report) + '\n' : formatMemorization(report));
  if (flags.outputPath) {
    fs.mkdirSync(flags.outputPath, { recursive: true });
    fs.writeFileSync(path.join(flags.outputPath, 'memorization.json'), JSON.stringify(report, null, 2) + '\n');
  }
}

/** Records of a JSONL file: strings, or objects with one of `keys`. */
function readJsonlTexts(file: string, keys: string[]): Array<{ id: string; text: string }> {
  if (!fs.existsSync(file)) throw new UsageError(`no such file: ${file}`);
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      let v: unknown;
      try {
        v = JSON.parse(l);
      } catch {
        throw new UsageError(`${file}:${i + 1}: not JSON`);
      }
      if (typeof v === 'string') return { id: String(i), text: v };
      const o = v as Record<string, unknown>;
      const key = keys.find((k) => typeof o[k] === 'string');
      if (!key) throw new UsageError(`${file}:${i + 1}: expected a string or an object with ${keys.join(' / ')}`);
      return { id: o.id !== undefined ? String(o.id) : String(i), text: o[key] as string };
    });
}

/** A gemma-ts model as a chat responder (greedy): (system, user) -> text. */
async function modelResponder(spec: string, flags: EvalFlags, io: CliIO): Promise<{ respond: Judge; dispose(): void }> {
  const loaded = await loadForCli({ ...flags, model: spec }, io);
  const tokenizer = loaded.tokenizer;
  if (!tokenizer) throw new UsageError(`${spec} has no tokenizer`);
  const scheduler = new Scheduler(loaded.model, tokenizer, { parallel: 4, maxQueue: 1 << 20, contextSize: Math.min(loaded.model.config.maxPositionEmbeddings, 8192) });
  const maxTokens = flags.maxTokens ?? 512;
  return {
    respond: async (system, user) => {
      const messages = system ? [{ role: 'system', content: system }, { role: 'user', content: user }] : [{ role: 'user', content: user }];
      const promptIds = encodeChat(tokenizer, messages, { addGenerationPrompt: true });
      const r = await scheduler.submit({ promptIds, maxTokens: Math.min(maxTokens, scheduler.contextSize - promptIds.length), temperature: 0 });
      return r.text;
    },
    dispose: () => {
      scheduler.close();
      loaded.model.dispose();
    },
  };
}

/** An OpenAI-compatible endpoint as a judge (temperature 0). */
function endpointJudge(baseUrl: string, model: string | undefined, apiKey: string | undefined, maxTokens: number): Judge {
  const client = new OpenAI({ baseURL: baseUrl.replace(/\/+$/, '').replace(/(\/v1)?$/, '/v1'), apiKey: apiKey ?? process.env.OPENAI_API_KEY ?? 'unused', maxRetries: 3 });
  let name = model;
  return async (system, user) => {
    name ??= (await client.models.list()).data[0]?.id;
    if (!name) throw new UsageError('the judge endpoint lists no model; pass --judge-model');
    const r = await client.chat.completions.create({ model: name, temperature: 0, max_tokens: maxTokens, messages: [{ role: 'system', content: system }, { role: 'user', content: user }] });
    return r.choices[0]?.message?.content ?? '';
  };
}

async function runSxs(flags: EvalFlags, io: CliIO): Promise<void> {
  let report: SxsReport;
  if (flags.ratings) {
    if (!fs.existsSync(flags.ratings)) throw new UsageError(`no such file: ${flags.ratings}`);
    report = summarize(humanRatings(fs.readFileSync(flags.ratings, 'utf8'), parseCsv), { ...(flags.seed !== undefined ? { seed: flags.seed } : {}) });
  } else {
    if (!flags.prompts) throw new UsageError('eval sxs needs --prompts FILE (or --ratings CSV)');
    if (!flags.judge) throw new UsageError('eval sxs needs --judge (a gemma-ts model or an OpenAI-compatible URL)');
    if (!!flags.answersA === !!flags.modelA) throw new UsageError('give exactly one of --answers-a FILE and --model-a MODEL');
    if (!!flags.answersB === !!flags.modelB) throw new UsageError('give exactly one of --answers-b FILE and --model-b MODEL');
    const prompts = readJsonlTexts(flags.prompts, ['prompt', 'question', 'text']);
    const answers = async (file: string | undefined, model: string | undefined): Promise<string[]> => {
      if (file) {
        const list = readJsonlTexts(file, ['answer', 'response', 'text', 'output']);
        const byId = new Map(list.map((a) => [a.id, a.text]));
        return prompts.map((p, i) => {
          const a = byId.get(p.id) ?? list[i]?.text;
          if (a === undefined) throw new UsageError(`${file}: no answer for prompt ${p.id}`);
          return a;
        });
      }
      const r = await modelResponder(model!, flags, io);
      try {
        return await Promise.all(prompts.map((p) => r.respond('', p.text)));
      } finally {
        r.dispose();
      }
    };
    const a = await answers(flags.answersA, flags.modelA);
    const b = await answers(flags.answersB, flags.modelB);
    const maxTokens = flags.maxTokens ?? 512;
    const local = /^https?:\/\//.test(flags.judge) ? undefined : await modelResponder(flags.judge, flags, io);
    const judge = local ? local.respond : endpointJudge(flags.judge, flags.judgeModel, flags.apiKey, maxTokens);
    try {
      report = await judgePairs(
        prompts.map((p, i) => ({ id: p.id, prompt: p.text, answerA: a[i]!, answerB: b[i]! })),
        judge,
        { concurrency: flags.concurrency ?? 4, ...(flags.seed !== undefined ? { seed: flags.seed } : {}) },
      );
    } finally {
      local?.dispose();
    }
  }
  io.stdout.write(flags.json ? JSON.stringify(report) + '\n' : formatSxs(report));
  if (flags.report) fs.writeFileSync(flags.report, await renderReport({ sxs: report, title: 'Side by side' }));
  if (flags.outputPath) {
    fs.mkdirSync(flags.outputPath, { recursive: true });
    fs.writeFileSync(path.join(flags.outputPath, 'sxs.json'), JSON.stringify(report, null, 2) + '\n');
  }
}
