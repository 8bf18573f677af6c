/**
 * `gemma pull ORG/NAME [--revision R] [--include GLOB]...`: download a checkpoint from the
 * Hugging Face Hub into the cache and print its directory (usable as `--model DIR`).
 */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { pullModel, defaultCacheDir, type PullProgress } from '../hub/pull.js';
import { collect } from './options.js';

export interface PullIO {
  stdout: Pick<NodeJS.WriteStream, 'write'>;
  stderr: Pick<NodeJS.WriteStream, 'write'> & { isTTY?: boolean };
}

function human(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = bytes, u = 0;
  while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

interface PullFlags {
  revision: string;
  include: string[];
  cacheDir?: string;
  endpoint?: string;
  quiet?: boolean;
}

export function registerPullCommand(program: Command, io: PullIO = { stdout: process.stdout, stderr: process.stderr }): void {
  program
    .command('pull')
    .description('download a Gemma checkpoint from the Hugging Face Hub into the local cache (resumable)')
    .argument('<repo>', 'model id ORG/NAME, e.g. google/gemma-3-1b-it')
    .option('-r, --revision <rev>', 'branch, tag or commit', 'main')
    .option('--include <glob>', 'also download files matching GLOB, e.g. "*.gguf" (repeatable)', collect, [] as string[])
    .option('--cache-dir <dir>', `cache root (default: ${defaultCacheDir()})`)
    .option('--endpoint <url>', 'Hub URL (default: $HF_ENDPOINT or https://huggingface.co)')
    .option('-q, --quiet', 'no progress output')
    .addHelpText(
      'after',
      `
Downloads config.json, generation_config.json, tokenizer files and *.safetensors (plus what
--include adds) into <cache>/<ORG>--<NAME>/<revision> and prints that directory.
Gated models (all of Google's Gemma): set HF_TOKEN to an access token and accept the license
on the model's page first. Interrupted downloads continue where they stopped.
Environment: HF_TOKEN, HF_ENDPOINT, GEMMA_TS_CACHE (cache root; default ~/.cache/gemma-ts).`,
    )
    .action(async (repo: string, flags: PullFlags) => {
      const ac = new AbortController();
      const onSigint = (): void => ac.abort();
      process.once('SIGINT', onSigint);
      const tty = !flags.quiet && io.stderr.isTTY === true;
      let bar: cliProgress.SingleBar | undefined;
      let current = '';
      const onProgress = (p: PullProgress): void => {
        if (flags.quiet) return;
        if (tty) {
          if (!bar) {
            bar = new cliProgress.SingleBar(
              { stream: io.stderr as NodeJS.WriteStream, format: ' {bar} {percentage}% | {done}/{size} | {files} | {file}', hideCursor: true, clearOnComplete: false, barsize: 30 },
              cliProgress.Presets.shades_classic,
            );
            bar.start(Math.max(1, p.total), 0, { done: human(0), size: human(p.total), files: '', file: '' });
          }
          bar.update(p.bytes, { done: human(p.bytes), size: human(p.total), files: `${p.filesDone}/${p.filesTotal} files`, file: p.file });
        } else if (p.file !== current || p.phase !== 'download') {
          if (p.phase === 'skip') io.stderr.write(`cached       ${p.file} (${human(p.fileTotal)})\n`);
          else if (p.phase === 'done') io.stderr.write(`downloaded   ${p.file} (${human(p.fileTotal)})\n`);
          current = p.phase === 'download' ? p.file : '';
        }
      };
      try {
        const dir = await pullModel(repo, {
          revision: flags.revision,
          include: flags.include,
          cacheDir: flags.cacheDir,
          endpoint: flags.endpoint,
          onProgress,
          signal: ac.signal,
        });
        bar?.stop();
        io.stdout.write(`${dir}\n`);
      } catch (e) {
        bar?.stop();
        if (ac.signal.aborted && !flags.quiet) io.stderr.write('interrupted: run the same command again to continue the download\n');
        throw e;
      } finally {
        process.removeListener('SIGINT', onSigint);
      }
    });
}
