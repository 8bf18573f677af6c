/**
 * `gemma forward --model M --ids 2,17,311 [--all-positions] --json`
 * prints {"logits": [[...V floats...], ...]} (the last position only unless --all-positions).
 * Floats are printed with JavaScript's shortest round-trip form of the float32 value widened to
 * float64, so parsing them back gives the exact float32 logits.
 */
import type { Command } from 'commander';
import { checkPromptIds } from '../generate/generate.js';
import { addModelOptions, defaultIO, loadForCli, parseIdList, safeWrite, type CliIO, type ModelFlags } from './options.js';

interface ForwardFlags extends ModelFlags {
  ids: number[];
  allPositions?: boolean;
  json?: boolean;
}

/** One logits row as a JSON array (non-finite values become null, as JSON has no Infinity). */
export function floatsToJson(row: Float32Array): string {
  const parts = new Array<string>(row.length);
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    parts[i] = Number.isFinite(v) ? String(v) : 'null';
  }
  return '[' + parts.join(',') + ']';
}

export function registerForwardCommand(program: Command, io: CliIO = defaultIO()): void {
  const cmd = program
    .command('forward')
    .description('run one forward pass over token ids and print the logits')
    .requiredOption('--ids <ids>', 'comma-separated token ids, e.g. 2,17,311', parseIdList)
    .option('--all-positions', 'logits for every position (default: the last one)')
    .option('--json', 'print {"logits": [[...], ...]} on one line');
  addModelOptions(cmd);
  cmd.action(async (flags: ForwardFlags) => {
    const loaded = await loadForCli(flags, io);
    const { model } = loaded;
    try {
      checkPromptIds(model, flags.ids);
      const cache = model.createCache(Math.max(flags.ids.length, 1));
      const r = await model.forwardAsync(flags.ids, cache, { allPositions: flags.allPositions === true });
      const rows: Float32Array[] = [];
      for (let i = 0; i < r.rows; i++) rows.push(r.logits.subarray(i * r.vocab, (i + 1) * r.vocab));
      if (flags.json) {
        safeWrite(io, '{"logits": [' + rows.map(floatsToJson).join(', ') + ']}\n');
        return;
      }
      // Human form: the five most likely next tokens at each row.
      const first = flags.allPositions ? 0 : flags.ids.length - 1;
      rows.forEach((row, i) => {
        const top = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b).slice(0, 5);
        const show = top.map((id) => {
          const piece = loaded.tokenizer?.idToPiece(id);
          return `${id}${piece !== undefined ? ` ${JSON.stringify(piece)}` : ''}: ${row[id]!.toFixed(4)}`;
        });
        safeWrite(io, `position ${first + i} (id ${flags.ids[first + i]}): ${show.join(', ')}\n`);
      });
    } finally {
      model.dispose();
    }
  });
}
