/**
 * gemma tokenize --tokenizer PATH (--text TEXT | --input FILE.jsonl) [--no-bos] [--parse-special]
 * gemma detokenize --tokenizer PATH --ids 2,651,...
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { loadTokenizer } from '../tokenizer/load.js';

export interface TokenizeIO {
  /** Where output goes (default: process.stdout). */
  write(text: string): void;
  /** Where notices go, one line each (default: process.stderr as `note: ...`). */
  notice?(text: string): void;
}

const stdoutIO: TokenizeIO = { write: (s) => void process.stdout.write(s) };
const stderrNotice = (s: string): void => void process.stderr.write(`note: ${s}\n`);

interface TokenizeOpts {
  tokenizer: string;
  text?: string;
  input?: string;
  bos: boolean;
  parseSpecial?: boolean;
}

interface DetokenizeOpts {
  tokenizer: string;
  ids: string;
  skipSpecial?: boolean;
}

export function parseIds(s: string): number[] {
  const trimmed = s.trim().replace(/^\[|\]$/g, '');
  if (trimmed.length === 0) return [];
  return trimmed.split(/[\s,]+/).filter((x) => x.length > 0).map((x) => {
    if (!/^\d+$/.test(x)) throw new UsageError(`--ids: "${x}" is not a token id (expected comma-separated integers such as 2,651,1000)`);
    return Number(x);
  });
}

export function registerTokenizeCommands(program: Command, io: TokenizeIO = stdoutIO): void {
  program
    .command('tokenize')
    .description('print the token ids of a text (or of each {"text": ...} line of a JSONL file)')
    .requiredOption('--tokenizer <path>', 'tokenizer.json, tokenizer.model, .gguf file or model directory')
    .option('--text <text>', 'text to tokenize')
    .option('--input <file.jsonl>', 'JSONL file: each line {"text": "..."} gives one line {"ids": [...]}')
    .option('--no-bos', 'do not prepend <bos>')
    .option('--parse-special', 'recognize special tokens such as <start_of_turn> in the text')
    .action(async (opts: TokenizeOpts) => {
      if ((opts.text === undefined) === (opts.input === undefined)) throw new UsageError('tokenize: give exactly one of --text or --input');
      const tok = await loadTokenizer(opts.tokenizer);
      const notice = io.notice ?? stderrNotice;
      const enc = { addBos: opts.bos, parseSpecial: opts.parseSpecial === true };
      if (opts.text !== undefined) {
        io.write(tok.encode(opts.text, { ...enc, onNotice: notice }).join(',') + '\n');
        return;
      }
      let content: string;
      try {
        content = fs.readFileSync(opts.input!, 'utf8');
      } catch (e) {
        throw new UsageError(`tokenize: cannot read --input ${opts.input}: ${(e as Error).message}`);
      }
      const lines = content.split(/\r?\n/);
      const out: string[] = [];
      lines.forEach((line, i) => {
        if (line.trim().length === 0) return;
        let obj: unknown;
        try {
          obj = JSON.parse(line);
        } catch {
          throw new UsageError(`tokenize: ${opts.input}:${i + 1} is not valid JSON`);
        }
        if (typeof obj !== 'object' || obj === null || typeof (obj as { text?: unknown }).text !== 'string') {
          throw new UsageError(`tokenize: ${opts.input}:${i + 1} has no string "text" field`);
        }
        const onNotice = (m: string): void => notice(`${opts.input}:${i + 1}: ${m}`);
        out.push(JSON.stringify({ ids: tok.encode((obj as { text: string }).text, { ...enc, onNotice }) }) + '\n');
      });
      io.write(out.join(''));
    });

  program
    .command('detokenize')
    .description('print the text of comma-separated token ids')
    .requiredOption('--tokenizer <path>', 'tokenizer.json, tokenizer.model, .gguf file or model directory')
    .requiredOption('--ids <ids>', 'comma-separated token ids, e.g. 2,651,1000')
    .option('--skip-special', 'drop control tokens such as <bos> from the text')
    .action(async (opts: DetokenizeOpts) => {
      const ids = parseIds(opts.ids);
      const tok = await loadTokenizer(opts.tokenizer);
      for (const id of ids) {
        if (tok.idToPiece(id) === undefined) throw new UsageError(`detokenize: token id ${id} is out of range`);
      }
      io.write(tok.decode(ids, { skipSpecial: opts.skipSpecial === true }) + '\n');
    });
}
