/**
 * `gemma merge --model M --lora A[:SCALE] [--lora B ...] --out DIR|FILE.gguf [--type T]`: add the
 * adapters' scale * B A into the base weights and write the merged checkpoint (a Hugging Face
 * directory in the input's dtypes, or a GGUF file).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { convertToGGUF, CONVERT_TYPES, type ConvertType } from '../formats/convert.js';
import { checkAdapter, loadAdapter, mergeIntoParams, parseLoraSpec } from '../train/adapter.js';
import { loadTrainModel, saveFullModel } from '../train/checkpoint-io.js';
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
      const { model } = await loadTrainModel(flags.model, { backend: 'js', grads: false });
      for (const spec of flags.lora) {
        const { path: p, scale } = parseLoraSpec(spec);
        const adapter = loadAdapter(p);
        checkAdapter(adapter, model.config);
        mergeIntoParams(model, adapter, scale);
      }
      if (!flags.out.endsWith('.gguf')) {
        saveFullModel(model, flags.out);
        safeWrite(io, `wrote ${flags.out}\n`);
        return;
      }
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-merge-'));
      try {
        saveFullModel(model, tmp);
        const stored = [...model.checkpoint.dtypes.values()].find((d) => d !== 'f32') ?? 'f32';
        const type = flags.type ?? ((CONVERT_TYPES as readonly string[]).includes(stored) ? (stored as ConvertType) : 'f16');
        await convertToGGUF(tmp, flags.out, { type });
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
      safeWrite(io, `wrote ${flags.out}\n`);
    });
}
