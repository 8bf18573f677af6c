import { Readable } from 'node:stream';
import { Command } from 'commander';
import type { CliIO } from '../../src/cli/options.js';

export interface CliRun {
  stdout: string;
  stderr: string;
  /** What the command threw (commander's exit, a UsageError ...), if anything. */
  error?: unknown;
}

/**
 * Run one CLI command in-process: `register` adds it to a fresh commander program whose output
 * and the command's own stdout / stderr are captured; stdin is `opts.stdin` (default empty), and
 * `opts.loadModel` replaces the model loader.
 */
export async function runCli(
  register: (program: Command, io: CliIO) => void,
  argv: string[],
  opts: { stdin?: string; loadModel?: CliIO['loadModel'] } = {},
): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: { write: (s: string) => ((stdout += s), true) },
    stderr: { write: (s: string) => ((stderr += s), true) },
    stdin: Readable.from(opts.stdin !== undefined ? [Buffer.from(opts.stdin)] : []) as NodeJS.ReadableStream,
    ...(opts.loadModel ? { loadModel: opts.loadModel } : {}),
  };
  const program = new Command().exitOverride().configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) });
  register(program, io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return { stdout, stderr };
  } catch (error) {
    return { stdout, stderr, error };
  }
}
