/**
 * `gemma merge --model M --lora A[:SCALE] [--lora B ...] --out DIR|FILE.gguf [--type T]`: add the
 * adapters' scale * B A into the base weights and write the merged checkpoint (a Hugging Face
 * directory in the input's dtypes, or a GGUF file).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { CONVERT_TYPES, type ConvertType } from '../formats/convert.js';
import { collect, defaultIO, safeWrite, type CliIO } from './options.js';

interface MergeFlags {
  model: string;
  lora: string[];
  out: string;
  type?: ConvertType;
}

export function registerMergeCommand(program: Command, io: CliIO = defaultIO()): void {
  program
    .command('merge')
    .description('merge LoRA adapters into a model and write the result (directory or .gguf)')
    .requiredOption('-m, --model <model>', 'base model directory, .gguf file, or "demo"')
    .requiredOption('--lora <path[:scale]>', 'PEFT adapter directory, optionally with a multiplier (repeatable)', collect)
    .requiredOption('--out <path>', 'output: a directory (safetensors) or a .gguf file')
    .option('--type <type>', `GGUF output type: ${CONVERT_TYPES.join(', ')} (default: the base's, else f16)`, (v: string) => {
      if (!(CONVERT_TYPES as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected ${CONVERT_TYPES.join(', ')}.`);
      return v as ConvertType;
    })
    .action(async (flags: MergeFlags) => {
      const { mergeAdapter } = await import('../train/adapter.js'); // loaded with the command only
      await mergeAdapter(flags.model, flags.lora, flags.out, { type: flags.type });
      safeWrite(io, `wrote ${flags.out}\n`);
    });
}
