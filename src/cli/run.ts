/**
 * `gemma run --model M [PROMPT]`: stream a completion to stdout.
 *
 * The prompt comes from the arguments, else from stdin; `--chat` wraps it in the chat template
 * as one user turn; `--prompt-ids 2,17,311` gives token ids directly (no tokenizer needed).
 * `--json` prints one line {"ids": [...new token ids...], "text": "..."} instead of streaming;
 * a model without a tokenizer gives "text": "".
 */
import { addSteeringOptions, steeringHooksFromCli, type SteeringFlags } from './sae.js';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { generate } from '../generate/generate.js';
import {
  addModelOptions,
  addSamplingOptions,
  chatPromptIds,
  defaultIO,
  generateOptionsFrom,
  loadForCli,
  parseIdList,
  readAll,
  safeWrite,
  type CliIO,
  type ModelFlags,
  type SamplingFlags,
} from './options.js';

interface RunFlags extends ModelFlags, SamplingFlags {
  promptIds?: number[];
  chat?: boolean;
  system?: string;
  json?: boolean;
  verbose?: boolean;
}

export function registerRunCommand(program: Command, io: CliIO = defaultIO()): void {
  const cmd = program
    .command('run')
    .description('generate a completion and stream it to stdout')
    .argument('[prompt...]', 'the prompt (read from stdin when absent)')
    .option('--chat', 'apply the chat template (the prompt is one user turn)')
    .option('--system <text>', 'system prompt (with --chat)')
    .option('--prompt-ids <ids>', 'prompt as comma-separated token ids instead of text', parseIdList)
    .option('--json', 'print {"ids": [...], "text": "..."} on one line at the end')
    .option('-v, --verbose', 'print the seed, timings and finish reason on stderr');
  addModelOptions(cmd);
  addSamplingOptions(cmd);
  addSteeringOptions(cmd);
  cmd.action(async (promptWords: string[], flags: RunFlags & SteeringFlags) => {
    if (flags.promptIds && promptWords.length > 0) throw new UsageError('give either a PROMPT or --prompt-ids, not both');
    if (flags.promptIds && flags.chat) throw new UsageError('--chat needs a text prompt, not --prompt-ids');
    if (flags.system !== undefined && !flags.chat) throw new UsageError('--system needs --chat');
    let text: string | undefined;
    if (!flags.promptIds) {
      if (promptWords.length > 0) text = promptWords.join(' ');
      else if (io.stdin.isTTY) throw new UsageError('no prompt: give PROMPT, pipe it on stdin, or use --prompt-ids');
      else text = (await readAll(io.stdin)).replace(/\r?\n$/, '');
    }

    const loaded = await loadForCli(flags, io);
    const { model, tokenizer } = loaded;
    const ac = new AbortController();
    const onSigint = (): void => ac.abort();
    process.once('SIGINT', onSigint);
    try {
      let ids: readonly number[];
      if (flags.promptIds) ids = flags.promptIds;
      else {
        if (!tokenizer) throw new UsageError(`${flags.model} has no tokenizer: give the prompt as --prompt-ids`);
        ids = flags.chat ? chatPromptIds(tokenizer, text!, flags.system) : tokenizer.encode(text!);
      }
      const options = generateOptionsFrom(flags);
      if (options.seed === undefined) options.seed = Math.floor(Math.random() * 2 ** 31);
      const hooks = await steeringHooksFromCli(model, flags);
      const it = generate(model, tokenizer, ids, { ...options, ...(hooks ? { hooks } : {}), signal: ac.signal });
      let step = await it.next();
      while (!step.done) {
        if (!flags.json) safeWrite(io, step.value.text);
        step = await it.next();
      }
      const result = step.value;
      if (flags.json) safeWrite(io, `{"ids": ${JSON.stringify(result.ids)}, "text": ${JSON.stringify(result.text)}}\n`);
      else safeWrite(io, '\n');
      if (flags.verbose) {
        const t = result.timings;
        io.stderr.write(
          `seed ${options.seed}; prompt ${result.usage.promptTokens} tokens, prefill ${t.prefillMs.toFixed(1)} ms ` +
            `(${t.prefillTokensPerSecond.toFixed(1)} tok/s); ${result.usage.completionTokens} tokens generated, ` +
            `decode ${t.decodeTokensPerSecond.toFixed(2)} tok/s; finish: ${result.finishReason}\n`,
        );
      }
    } finally {
      process.removeListener('SIGINT', onSigint);
      model.dispose();
    }
  });
}
