/**
 * Flags shared by the model commands (run, chat, forward, info): model and backend selection,
 * sampling, and the glue around loadModel (progress bar, notices). Value parsers reject bad
 * values with commander's InvalidArgumentError, so the message names the flag.
 */
import fs from 'node:fs';
import cliProgress from 'cli-progress';
import { InvalidArgumentError, type Command } from 'commander';
import type { GenerateOptions } from '../generate/generate.js';
import type { SamplingOptions } from '../generate/sampler.js';
import { compileResponseFormat, type JsonSchema } from '../generate/constraint/index.js';
import { loadModel, type LoadedModel, type LoadOptions } from '../model/load.js';
import { defaultChatRenderer } from '../generate/chat-session.js';
import type { ChatMessage, Tokenizer } from '../tokenizer/types.js';

/** Where a command reads and writes; tests pass their own. */
export interface CliIO {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Defaults to loadModel from src/model/load.ts. */
  loadModel?: (spec: string, options?: LoadOptions) => Promise<LoadedModel>;
}

export function defaultIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
}

// ---------------------------------------------------------------- value parsers

export function parseIntFlag(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    const v = Number(value.trim());
    if (value.trim() === '' || !Number.isInteger(v) || v < min || v > max) {
      throw new InvalidArgumentError(`expected an integer${max === Number.MAX_SAFE_INTEGER ? ` >= ${min}` : ` in [${min}, ${max}]`}.`);
    }
    return v;
  };
}

export function parseFloatFlag(check: (v: number) => boolean, what: string): (value: string) => number {
  return (value: string) => {
    const v = Number(value.trim());
    if (value.trim() === '' || !Number.isFinite(v) || !check(v)) throw new InvalidArgumentError(`expected ${what}.`);
    return v;
  };
}

/** "2,17,311" (spaces allowed) -> [2, 17, 311]. */
export function parseIdList(value: string): number[] {
  const parts = value.split(/[\s,]+/).filter((s) => s !== '');
  if (parts.length === 0) throw new InvalidArgumentError('expected a comma-separated list of token ids.');
  return parts.map((p) => {
    const v = Number(p);
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(v)) throw new InvalidArgumentError(`"${p}" is not a token id (a non-negative integer).`);
    return v;
  });
}

/** Commander argument parser for repeatable flags: the values in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

// ---------------------------------------------------------------- option groups

export interface ModelFlags {
  model: string;
  /** --lora PATH[:SCALE] (repeatable): adapters applied without merging. */
  lora?: string[];
  /** --lora-init-without-apply (serve): adapters load with global scale 0. */
  loraInitWithoutApply?: boolean;
  backend?: 'js' | 'wasm' | 'webgpu';
  threads?: number;
  kvType?: 'f32' | 'f16';
}

/** --backend js|wasm|webgpu and --threads N. */
export function addBackendOptions(cmd: Command): Command {
  return cmd
    .option('--backend <name>', 'compute backend: js, wasm or webgpu', (v: string) => {
      if (v !== 'js' && v !== 'wasm' && v !== 'webgpu') throw new InvalidArgumentError('expected js, wasm or webgpu.');
      return v;
    })
    .option('--threads <n>', 'worker threads for the wasm backend', parseIntFlag(1, 256));
}

export function addModelOptions(cmd: Command): Command {
  return addBackendOptions(cmd.requiredOption('-m, --model <model>', 'model directory (Hugging Face layout), .gguf file, or "demo"'))
    .option('--kv-type <type>', 'KV cache element type: f32 (default, exact) or f16 (half the memory and bandwidth; wasm backend)', (v: string) => {
      if (v !== 'f32' && v !== 'f16') throw new InvalidArgumentError('expected f32 or f16.');
      return v;
    })
    .option('--lora <path[:scale]>', 'apply a LoRA adapter (PEFT directory) without merging, optionally scaled (repeatable; serve: the default model\'s adapters, chosen per request)', collect);
}

/** The sampling flags are the library's SamplingOptions plus the generation limits. */
export interface SamplingFlags extends SamplingOptions {
  maxTokens?: number;
  stop?: string[];
  ignoreEos?: boolean;
  /** --json-object: the output is one JSON object. */
  jsonObject?: boolean;
  /** --json-schema FILE: the parsed schema. */
  jsonSchema?: JsonSchema;
}

/** --json-schema FILE: read, parse and compile the schema now, so a bad one names the flag. */
export function parseSchemaFile(file: string): JsonSchema {
  let schema: JsonSchema;
  try {
    schema = JSON.parse(fs.readFileSync(file, 'utf8')) as JsonSchema;
  } catch (e) {
    throw new InvalidArgumentError(`cannot read a JSON schema from ${file}: ${(e as Error).message}`);
  }
  try {
    compileResponseFormat({ type: 'json_schema', schema });
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return schema;
}

/** CLI defaults: Gemma's recommended sampling (temperature 1, top-k 64, top-p 0.95). */
export const CLI_SAMPLING_DEFAULTS = { maxTokens: 256, temperature: 1, topK: 64, topP: 0.95, minP: 0 } as const;

export function addSamplingOptions(cmd: Command): Command {
  const d = CLI_SAMPLING_DEFAULTS;
  return cmd
    .option('-n, --max-tokens <n>', `most tokens to generate (default ${d.maxTokens})`, parseIntFlag(0))
    .option('-t, --temperature <t>', `sampling temperature, 0 = greedy (default ${d.temperature})`, parseFloatFlag((v) => v >= 0, 'a number >= 0'))
    .option('--top-k <k>', `keep the k most likely tokens, 0 = off (default ${d.topK})`, parseIntFlag(0))
    .option('--top-p <p>', `nucleus sampling mass in (0, 1], 1 = off (default ${d.topP})`, parseFloatFlag((v) => v > 0 && v <= 1, 'a number in (0, 1]'))
    .option('--min-p <p>', `drop tokens below p * p(best), 0 = off (default ${d.minP})`, parseFloatFlag((v) => v >= 0 && v <= 1, 'a number in [0, 1]'))
    .option('--repetition-penalty <r>', 'penalize tokens already in the context, 1 = off', parseFloatFlag((v) => v > 0, 'a number > 0'))
    .option('--presence-penalty <x>', 'OpenAI presence penalty, 0 = off', parseFloatFlag(() => true, 'a number'))
    .option('--frequency-penalty <x>', 'OpenAI frequency penalty, 0 = off', parseFloatFlag(() => true, 'a number'))
    .option('--seed <n>', 'random seed (same seed, same output)', parseIntFlag(0))
    .option('--stop <text>', 'stop when this text appears (repeatable)', collect)
    .option('--ignore-eos', 'do not stop at <eos> / <end_of_turn>')
    .option('--json-object', 'constrain the output to one JSON object (ends when it is complete)')
    .option('--json-schema <file>', 'constrain the output to one JSON value valid under the JSON schema in FILE', parseSchemaFile);
}

/** Sampling flags -> generate() options, CLI defaults filled in. */
export function generateOptionsFrom(f: SamplingFlags): GenerateOptions {
  const d = CLI_SAMPLING_DEFAULTS;
  const o: GenerateOptions = {
    maxTokens: f.maxTokens ?? d.maxTokens,
    temperature: f.temperature ?? d.temperature,
    topK: f.topK ?? d.topK,
    topP: f.topP ?? d.topP,
    minP: f.minP ?? d.minP,
  };
  if (f.repetitionPenalty !== undefined) o.repetitionPenalty = f.repetitionPenalty;
  if (f.presencePenalty !== undefined) o.presencePenalty = f.presencePenalty;
  if (f.frequencyPenalty !== undefined) o.frequencyPenalty = f.frequencyPenalty;
  if (f.seed !== undefined) o.seed = f.seed;
  if (f.stop?.length) o.stop = f.stop;
  if (f.ignoreEos) o.ignoreEos = true;
  if (f.jsonSchema !== undefined) o.responseFormat = { type: 'json_schema', schema: f.jsonSchema };
  else if (f.jsonObject) o.responseFormat = { type: 'json_object' };
  return o;
}

// ---------------------------------------------------------------- loading

/** Progress bars appear on a terminal for checkpoints at least this large. */
const PROGRESS_MIN_BYTES = 64 * 1024 * 1024;

/** Load a model for a command: progress bar on a TTY (stderr), notices on stderr. */
export async function loadForCli(flags: ModelFlags, io: CliIO, extra: LoadOptions = {}): Promise<LoadedModel> {
  let bar: cliProgress.SingleBar | undefined;
  const mb = (b: number): string => (b / 1048576).toFixed(0);
  const onProgress = (done: number, total: number): void => {
    if (!io.stderr.isTTY || total < PROGRESS_MIN_BYTES) return;
    if (!bar) {
      bar = new cliProgress.SingleBar(
        { stream: io.stderr as NodeJS.WritableStream, format: 'loading [{bar}] {percentage}% | {doneMb}/{totalMb} MB', hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, { doneMb: mb(0), totalMb: mb(total) });
    }
    bar.update(done, { doneMb: mb(done), totalMb: mb(total) });
  };
  const load = io.loadModel ?? loadModel;
  try {
    const loaded = await load(flags.model, {
      ...extra,
      ...(flags.backend ? { backend: flags.backend } : {}),
      ...(flags.threads ? { threads: flags.threads } : {}),
      ...(flags.kvType ? { kvType: flags.kvType } : {}),
      onProgress,
    });
    for (const n of loaded.notices) io.stderr.write(`note: ${n}\n`);
    if (flags.lora?.length) {
      // the adapter code (and the training code it reaches) loads only when an adapter is given
      const { applyLora, parseLoraSpec } = await import('../train/adapter.js');
      for (const spec of flags.lora) {
        const { path: p, scale } = parseLoraSpec(spec);
        applyLora(loaded.model, p, flags.loraInitWithoutApply ? 0 : scale);
      }
    }
    return loaded;
  } finally {
    bar?.stop();
  }
}

/** Write to stdout, ignoring a closed pipe (`gemma run ... | head`). */
export function safeWrite(io: CliIO, s: string): void {
  if (s === '') return;
  try {
    io.stdout.write(s);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
  }
}

/** Read all of stdin as UTF-8. */
export async function readAll(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** `--chat` prompts: the text as one user turn (after an optional system turn), model turn opened. */
export function chatPromptIds(tokenizer: Tokenizer, text: string, system?: string): number[] {
  const messages: ChatMessage[] = [];
  if (system !== undefined) messages.push({ role: 'system', content: system });
  messages.push({ role: 'user', content: text });
  return defaultChatRenderer(tokenizer)(messages, { addGenerationPrompt: true });
}
