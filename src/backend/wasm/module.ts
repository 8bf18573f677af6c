/**
 * Locating, choosing and compiling the kernel module. Two builds come out of
 * scripts/build-kernels.mjs: plain SIMD128 and relaxed SIMD. Relaxed SIMD is used when the runtime
 * validates it (Node 20 needs `--experimental-wasm-relaxed-simd`, which we try to set through
 * v8.setFlagsFromString before compiling anything).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { ModelError } from '../../errors.js';

export type KernelVariant = 'simd' | 'relaxed';

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'kernels'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  // Installed package without kernels/ sources: the .wasm files sit beside this module.
  return '';
}

export function kernelPath(variant: KernelVariant): string {
  const file = `kernels-${variant}.wasm`;
  const here = path.join(path.dirname(fileURLToPath(import.meta.url)), file);
  if (existsSync(here)) return here;
  const root = packageRoot();
  const built = root ? path.join(root, 'dist', 'src', 'backend', 'wasm', file) : here;
  if (existsSync(built)) return built;
  throw new ModelError(`WebAssembly kernels not built: ${built} is missing (run \`npm run build\` or \`node scripts/build-kernels.mjs\`)`);
}

let relaxedChecked: boolean | undefined;

/** Whether this runtime compiles relaxed-SIMD modules (enabling the V8 flag if needed). */
export function relaxedSimdAvailable(): boolean {
  if (relaxedChecked !== undefined) return relaxedChecked;
  const bytes = readFileSync(kernelPath('relaxed'));
  let ok = WebAssembly.validate(bytes);
  if (!ok) {
    try {
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
      ok = WebAssembly.validate(bytes);
    } catch {
      ok = false;
    }
  }
  relaxedChecked = ok;
  return ok;
}

const compiled = new Map<KernelVariant, Promise<WebAssembly.Module>>();

export function compileKernels(variant: KernelVariant): Promise<WebAssembly.Module> {
  let p = compiled.get(variant);
  if (!p) {
    const bytes = readFileSync(kernelPath(variant));
    p = WebAssembly.compile(bytes).catch((e: unknown) => {
      compiled.delete(variant);
      throw new ModelError(`cannot compile the ${variant} WebAssembly kernels: ${(e as Error).message}`, { cause: e });
    });
    compiled.set(variant, p);
  }
  return p;
}

/** Names of the kernel exports the thread pool can run; index = command id. */
export const KERNELS = ['mm_f32', 'mm_bf16', 'mm_f16', 'mm_q8_0', 'mm_q4_0', 'quantize_x', 'gelu_mul', 'attention', 'mm_q4_k', 'mm_q6_k', 'mm_half_tiled', 'repack_q8_0', 'repack_q4_0', 'repack_q4_k', 'repack_q6_k', 'flush_subnormals', 'softcap_vec', 'f32_to_f16', 'attention_split', 'attention_combine'] as const;
export type KernelName = (typeof KERNELS)[number];
