/**
 * The `gemma` command line. Each command lives in its own file and only parses flags and calls
 * the library; this file wires them together and turns errors into one clear line.
 */
import { Command, CommanderError } from 'commander';
import { GemmaError } from '../errors.js';
import { VERSION } from '../version.js';

export async function buildProgram(): Promise<Command> {
  const program = new Command('gemma')
    .description('gemma-ts: run Google Gemma models in TypeScript')
    .version(VERSION)
    .showHelpAfterError();
  const commands = await import('./commands.js');
  for (const register of commands.ALL_COMMANDS) register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof GemmaError) {
      process.stderr.write(`error: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
