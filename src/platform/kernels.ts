/**
 * The wasm backend's kernel modules, Node flavour: the .wasm files that scripts/build-kernels.mjs
 * writes beside the backend. The browser flavour (kernels.browser.ts) embeds them in the bundle.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { ModelError } from '../errors.js';

export type KernelVariant = 'simd' | 'relaxed';

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'kernels'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return '';
}

export function kernelPath(variant: KernelVariant): string {
  const file = `kernels-${variant}.wasm`;
  const root = packageRoot();
  const candidates = [path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'backend', 'wasm', file)];
  if (root) candidates.push(path.join(root, 'dist', 'src', 'backend', 'wasm', file));
  for (const c of candidates) if (existsSync(c)) return path.resolve(c);
  throw new ModelError(`WebAssembly kernels not built: ${path.resolve(candidates.at(-1)!)} is missing (run \`npm run build\` or \`node scripts/build-kernels.mjs\`)`);
}

export function kernelBytes(variant: KernelVariant): Uint8Array {
  return readFileSync(kernelPath(variant));
}

/** Try to turn on relaxed SIMD (Node 20 needs a V8 flag set before compiling); false when that is impossible. */
export function enableRelaxedSimd(): boolean {
  try {
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    return true;
  } catch {
    return false;
  }
}
