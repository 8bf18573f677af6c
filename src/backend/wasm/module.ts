/**
 * Locating, choosing and compiling the kernel module. Two builds come out of
 * scripts/build-kernels.mjs: plain SIMD128 and relaxed SIMD. Relaxed SIMD is used when the runtime
 * validates it (Node 20 needs `--experimental-wasm-relaxed-simd`, which we try to set through
 * v8.setFlagsFromString before compiling anything).
 */
import { ModelError } from '../../errors.js';
import { enableRelaxedSimd, kernelBytes, type KernelVariant } from '../../platform/kernels.js';

export type { KernelVariant };

let relaxedChecked: boolean | undefined;

/** Whether this runtime compiles relaxed-SIMD modules (enabling the V8 flag if needed). */
export function relaxedSimdAvailable(): boolean {
  if (relaxedChecked !== undefined) return relaxedChecked;
  const bytes = kernelBytes('relaxed');
  let ok = WebAssembly.validate(bytes);
  if (!ok && enableRelaxedSimd()) ok = WebAssembly.validate(bytes);
  relaxedChecked = ok;
  return ok;
}

const compiled = new Map<KernelVariant, Promise<WebAssembly.Module>>();

export function compileKernels(variant: KernelVariant): Promise<WebAssembly.Module> {
  let p = compiled.get(variant);
  if (!p) {
    const bytes = kernelBytes(variant);
    p = WebAssembly.compile(bytes).catch((e: unknown) => {
      compiled.delete(variant);
      throw new ModelError(`cannot compile the ${variant} WebAssembly kernels: ${(e as Error).message}`, { cause: e });
    });
    compiled.set(variant, p);
  }
  return p;
}

/** Names of the kernel exports the thread pool can run; index = command id. */
export const KERNELS = ['mm_f32', 'mm_bf16', 'mm_f16', 'mm_q8_0', 'mm_q4_0', 'quantize_x', 'gelu_mul', 'attention', 'mm_q4_k', 'mm_q6_k', 'mm_half_tiled', 'repack_q8_0', 'repack_q4_0', 'repack_q4_k', 'repack_q6_k', 'flush_subnormals', 'softcap_vec', 'f32_to_f16', 'attention_split', 'attention_combine', 'log_probs'] as const;
export type KernelName = (typeof KERNELS)[number];
