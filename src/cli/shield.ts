/**
 * `gemma shield`: ShieldGemma safety classification.
 *
 *   gemma shield --model M --prompt TEXT [--response TEXT] [--policy NAME...] [--threshold T]
 *   gemma shield --model M --input FILE.jsonl        (lines {"prompt", "response"?}; "-" = stdin)
 *   gemma shield --model M --prompt TEXT --show-prompt
 *   gemma shield eval --model M --data FILE.jsonl    (lines {"prompt", "response"?, "label", "harm"?})
 *
 * Classification prints one JSON line per text: {"flagged", "categories", "category_scores"}
 * (OpenAI's moderation shape; scores are P(Yes)). --show-prompt prints, instead of scoring, one
 * line per policy {"policy": NAME, "prompt": EXACT_TEXT}. eval prints AU-PRC and optimal F1
 * (with its threshold) overall and per harm as one JSON object.
 */
import fs from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { FormatError, UsageError } from '../errors.js';
import type { LoadedModel } from '../model/load.js';
import { ShieldClassifier, type ShieldClassifierOptions } from '../safety/classifier.js';
import { parseEvalData, parseShieldInput, runEvalAsync, type ShieldInputLine } from '../safety/eval.js';
import { tokenizerOf } from '../safety/load.js';
import type { AttachGuardOptions } from '../safety/server-routes.js';
import { resolvePolicies, validatePolicy, type ShieldPolicy, type ShieldUseCase } from '../safety/templates.js';
import { addBackendOptions, collect, defaultIO, loadForCli, parseFloatFlag, parseIntFlag, readAll, safeWrite, type CliIO } from './options.js';

interface CommonFlags {
  model?: string;
  backend?: 'js' | 'wasm' | 'webgpu';
  threads?: number;
  policy?: string[];
  policyFile?: string;
  template?: string[];
  temperature?: number;
  prefixReuse?: boolean;
}

interface ShieldFlags extends CommonFlags {
  prompt?: string;
  response?: string;
  input?: string;
  threshold?: number;
  showPrompt?: boolean;
}

interface EvalFlags extends CommonFlags {
  data: string;
}

/** Flags of `gemma serve` for the guard (see addGuardOptions). */
export interface GuardFlags {
  guard?: string;
  guardThreshold?: number;
  guardMode?: 'block' | 'flag';
  guardChunk?: number;
}

/**
 * Add --guard MODEL, --guard-threshold T, --guard-mode block|flag, --guard-chunk N to a command
 * (for `gemma serve`); pass the parsed flags to guardOptionsFrom.
 */
export function addGuardOptions(cmd: Command): Command {
  return cmd
    .option('--guard <model>', 'screen prompts and answers with this ShieldGemma model (directory, .gguf or "demo"); adds POST /v1/moderations')
    .option('--guard-threshold <t>', 'block/flag when P(Yes) >= T for any policy (default 0.5)', parseFloatFlag((v) => v >= 0 && v <= 1, 'a number in [0, 1]'))
    .option('--guard-mode <mode>', 'block: refuse flagged requests and fail closed on guard errors; flag: serve them, report the scores (default block)', (v: string) => {
      if (v !== 'block' && v !== 'flag') throw new InvalidArgumentError('expected block or flag.');
      return v;
    })
    .option('--guard-chunk <chars>', 'screen streamed answers every N characters (default 400)', parseIntFlag(1));
}

/** attachShieldGuard options from the serve flags; undefined without --guard. */
export function guardOptionsFrom(flags: GuardFlags & { backend?: 'js' | 'wasm' | 'webgpu'; threads?: number }, log?: { write(s: string): unknown }): AttachGuardOptions | undefined {
  if (!flags.guard) return undefined;
  return {
    model: flags.guard,
    ...(flags.guardThreshold !== undefined ? { threshold: flags.guardThreshold } : {}),
    ...(flags.guardMode ? { mode: flags.guardMode } : {}),
    ...(flags.guardChunk ? { chunkChars: flags.guardChunk } : {}),
    ...(flags.backend ? { backend: flags.backend } : {}),
    ...(flags.threads ? { threads: flags.threads } : {}),
    ...(log ? { log } : {}),
  };
}

function addCommonOptions(cmd: Command): Command {
  return addBackendOptions(cmd.option('-m, --model <model>', 'ShieldGemma model directory (Hugging Face layout), .gguf file, or "demo"'))
    .option('--policy <name>', 'harm policy: dangerous, harassment, hate, sexual (repeatable; default all four)', collect)
    .option('--policy-file <file>', 'custom policies: JSON array of {"id", "name", "description"} (or {"id", "guideline": {"prompt_only", "prompt_response"}})')
    .option('--template <file>', 'own prompt template (Python str.format placeholders {user_content}, {harm_text}, and {model_content} for the prompt-response template); repeatable', collect)
    .option('--temperature <t>', 'divide the Yes/No logits by T before the softmax (default 1)', parseFloatFlag((v) => v > 0, 'a number > 0'))
    .option('--no-prefix-reuse', 'prefill every policy prompt in full (for comparisons)');
}

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${what} ${file}: ${(e as Error).message}`);
  }
}

/** Custom policies from --policy-file, official ones from --policy. */
function policiesFrom(flags: CommonFlags): { selected: Array<string | ShieldPolicy> | undefined; custom: ShieldPolicy[] } {
  let custom: ShieldPolicy[] = [];
  if (flags.policyFile) {
    let raw: unknown;
    try {
      raw = JSON.parse(readText(flags.policyFile, 'policy file'));
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new FormatError(`${flags.policyFile} is not valid JSON: ${(e as Error).message}`);
    }
    custom = (Array.isArray(raw) ? raw : [raw]).map(validatePolicy);
  }
  const byId = new Map(custom.map((p) => [p.id, p]));
  if (flags.policy?.length) {
    return { selected: flags.policy.map((n) => byId.get(n) ?? resolvePolicies([n])[0]!), custom };
  }
  return { selected: custom.length ? custom : undefined, custom };
}

function templatesFrom(flags: CommonFlags): Partial<Record<ShieldUseCase, string>> | undefined {
  if (!flags.template?.length) return undefined;
  const out: Partial<Record<ShieldUseCase, string>> = {};
  for (const f of flags.template) {
    const t = readText(f, 'template');
    const useCase: ShieldUseCase = t.includes('{model_content}') ? 'prompt_response' : 'prompt_only';
    if (out[useCase] !== undefined) throw new UsageError(`two ${useCase} templates given (${f})`);
    out[useCase] = t;
  }
  return out;
}

function requireModel<T extends CommonFlags>(flags: T): asserts flags is T & { model: string } {
  if (!flags.model) throw new UsageError('--model is required (a ShieldGemma directory, .gguf file, or "demo")');
}

async function openClassifier(flags: CommonFlags & { model: string }, io: CliIO, extra: ShieldClassifierOptions): Promise<{ loaded: LoadedModel; classifier: ShieldClassifier }> {
  const loaded = await loadForCli({ model: flags.model, ...(flags.backend ? { backend: flags.backend } : {}), ...(flags.threads ? { threads: flags.threads } : {}) }, io);
  try {
    const tokenizer = await tokenizerOf(loaded);
    const templates = templatesFrom(flags);
    const classifier = new ShieldClassifier(loaded.model, tokenizer, {
      ...extra,
      ...(templates ? { templates } : {}),
      ...(flags.temperature !== undefined ? { temperature: flags.temperature } : {}),
      ...(flags.prefixReuse === false ? { reusePrefix: false } : {}),
    });
    return { loaded, classifier };
  } catch (e) {
    loaded.model.dispose();
    throw e;
  }
}

export function registerShieldCommands(program: Command, io: CliIO = defaultIO()): void {
  const shield = program
    .command('shield')
    .description('ShieldGemma safety classification of a prompt (or a prompt and its response)')
    .option('-p, --prompt <text>', 'the user prompt to classify')
    .option('-r, --response <text>', "the model's response to classify (prompt-response use case)")
    .option('-i, --input <file>', 'JSONL file of {"prompt", "response"?} lines ("-" = stdin); prints one JSON result per line')
    .option('--threshold <t>', 'flag a policy when P(Yes) >= T (default 0.5, our choice: Google publishes none)', parseFloatFlag((v) => v >= 0 && v <= 1, 'a number in [0, 1]'))
    .option('--show-prompt', 'print the exact prompt text fed to the model per policy instead of scoring');
  addCommonOptions(shield);
  shield.action(async (flags: ShieldFlags) => {
    requireModel(flags);
    if (flags.input !== undefined && (flags.prompt !== undefined || flags.response !== undefined)) throw new UsageError('give either --input or --prompt/--response, not both');
    if (flags.input === undefined && flags.prompt === undefined) throw new UsageError('nothing to classify: give --prompt TEXT or --input FILE.jsonl');
    // Read the input before loading the model, so bad input fails fast.
    let lines: ShieldInputLine[];
    if (flags.input !== undefined) {
      const text = flags.input === '-' ? await readAll(io.stdin) : readText(flags.input, 'input');
      lines = parseShieldInput(text);
    } else {
      lines = [flags.response !== undefined ? { prompt: flags.prompt!, response: flags.response } : { prompt: flags.prompt! }];
    }
    const { selected } = policiesFrom(flags);
    const { loaded, classifier } = await openClassifier(flags, io, flags.threshold !== undefined ? { threshold: flags.threshold } : {});
    try {
      for (const line of lines) {
        const req = { ...line, ...(selected ? { policies: selected } : {}) };
        if (flags.showPrompt) {
          for (const p of classifier.prompts(req)) safeWrite(io, JSON.stringify({ policy: p.policy.id, prompt: p.prompt.text }) + '\n');
          continue;
        }
        safeWrite(io, JSON.stringify(await classifier.classifyAsync(req)) + '\n');
      }
    } finally {
      loaded.model.dispose();
    }
  });

  const evalCmd = shield
    .command('eval')
    .description('evaluate ShieldGemma on labelled JSONL data: AU-PRC and optimal F1, overall and per harm')
    .requiredOption('-d, --data <file>', 'JSONL lines {"prompt", "response"?, "label": 0|1, "harm"?}');
  addCommonOptions(evalCmd);
  evalCmd.action(async function (this: Command) {
    // Options shared with `shield` may be parsed by the parent command: read both levels.
    const flags = this.optsWithGlobals<EvalFlags>();
    requireModel(flags);
    const data = parseEvalData(readText(flags.data, 'data file'));
    const { selected, custom } = policiesFrom(flags);
    const { loaded, classifier } = await openClassifier(flags, io, {});
    try {
      const t0 = performance.now();
      const r = await runEvalAsync(classifier, data, {
        ...(selected ? { policies: selected } : {}),
        customPolicies: custom,
        onProgress: (done, total) => {
          if (io.stderr.isTTY) io.stderr.write(`\rscored ${done}/${total}`);
        },
      });
      if (io.stderr.isTTY) io.stderr.write('\n');
      const report = { examples: data.length, seconds: (performance.now() - t0) / 1000, overall: r.overall, per_harm: r.per_harm };
      safeWrite(io, JSON.stringify(report, null, 2) + '\n');
    } finally {
      loaded.model.dispose();
    }
  });
}
