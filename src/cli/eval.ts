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
import { evaluate, formatTable } from '../eval/evaluate.js';
import { BUILTIN_TASK_FILES } from '../eval/builtin.js';
import { fetchHubSplit } from '../eval/hub.js';
import { addModelOptions, defaultIO, loadForCli, parseIntFlag, type CliIO, type ModelFlags } from './options.js';

interface EvalFlags extends ModelFlags {
  tasks?: string;
  includePath?: string[];
  applyChatTemplate?: boolean;
  systemInstruction?: string;
  limit?: number;
  numFewshot?: number;
  batchSize?: number;
  outputPath?: string;
  logSamples?: boolean;
  seed?: number;
  bootstrapIters?: number;
  cache?: boolean;
}

function parseLimit(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (n >= 1 && !Number.isInteger(n))) throw new InvalidArgumentError('expected an integer >= 1 or a fraction in (0, 1).');
  return n;
}

export function registerEvalCommand(program: Command, io: CliIO = defaultIO()): void {
  const cmd = program
    .command('eval')
    .description('evaluate a model on lm-evaluation-harness tasks (YAML), write results.json')
    .option('--tasks <list>', 'comma-separated task / group / tag names or task YAML files')
    .option('--include-path <dir>', 'directory of extra task YAMLs (repeatable)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--apply-chat-template', "render prompts with the model's chat template")
    .option('--system-instruction <text>', 'system prompt placed before each prompt')
    .option('--limit <n>', 'documents per task (a fraction of the split when < 1)', parseLimit)
    .option('--num-fewshot <k>', 'few-shot examples per prompt (default: the task\'s num_fewshot, else 0)', parseIntFlag(0))
    .option('--batch-size <b>', 'documents per model step (default 4)', parseIntFlag(1, 4096))
    .option('--output-path <dir>', 'directory for results.json (and samples, cache)')
    .option('--log-samples', 'write samples_<task>.jsonl: prompt, continuations, loglikelihoods, filtered response, metrics')
    .option('--seed <n>', 'seed of sampled generations (default 0)', parseIntFlag(0))
    .option('--bootstrap-iters <n>', 'bootstrap resamples for non-mean stderrs (default 100000; 0 = none)', parseIntFlag(0))
    .option('--no-cache', 'ignore and do not write the request cache');
  addModelOptions(cmd);
  cmd.action(async (flags: EvalFlags) => {
    if (!flags.tasks) throw new UsageError('--tasks is required (names or YAML files, comma-separated)');
    if (!flags.outputPath) throw new UsageError('--output-path DIR is required');
    const specs = flags.tasks.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (specs.length === 0) throw new UsageError('--tasks names no task');
    const out = path.resolve(flags.outputPath);
    fs.mkdirSync(out, { recursive: true });
    const loaded = await loadForCli(flags, io);
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
    let results;
    try {
      results = await evaluate({ model: loaded.model, tokenizer: loaded.tokenizer }, specs, {
        builtinFiles: BUILTIN_TASK_FILES,
        fetchHubSplit,
        modelName: flags.model,
        onProgress,
        ...(flags.includePath ? { includePath: flags.includePath.map((d) => path.resolve(d)) } : {}),
        ...(flags.applyChatTemplate ? { applyChatTemplate: true } : {}),
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
    }
    const { samples, ...json } = results;
    fs.writeFileSync(path.join(out, 'results.json'), JSON.stringify(json, null, 2) + '\n');
    for (const [task, records] of Object.entries(samples ?? {})) {
      fs.writeFileSync(path.join(out, `samples_${task}.jsonl`), records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
    }
    if (Object.keys(results.results).length) io.stdout.write(formatTable(results));
    if (results.errors?.length) {
      // Partial results are written above; the failures make the command fail.
      throw new UsageError(results.errors.join('\nerror: '));
    }
  });
}
