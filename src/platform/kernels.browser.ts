/**
 * The wasm backend's kernel modules, browser flavour: scripts/build-web.mjs embeds the built .wasm
 * files (base64) as the virtual module `gemma-ts:embedded-kernels`, so the bundle works from any
 * static server or bundler without locating extra files.
 */
import { KERNEL_WASM_BASE64 } from 'gemma-ts:embedded-kernels';

export type KernelVariant = 'simd' | 'relaxed';

const decoded = new Map<KernelVariant, Uint8Array>();

export function kernelBytes(variant: KernelVariant): Uint8Array {
  let bytes = decoded.get(variant);
  if (!bytes) {
    const bin = atob(KERNEL_WASM_BASE64[variant]);
    bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    decoded.set(variant, bytes);
  }
  return bytes;
}

/** Browsers have relaxed SIMD or not; there is no flag to set. */
export function enableRelaxedSimd(): boolean {
  return false;
}
