#!/usr/bin/env node
// Entry point of the `gemma` command (Node >= 22; also runs under Deno and Bun).
// Relaxed SIMD is on by default from Node 22 (V8 >= 11.4); Node 20 needs
// --experimental-wasm-relaxed-simd set here, before any WebAssembly is compiled (it is refused in
// NODE_OPTIONS). Newer V8s no longer know the flag and print an error for it, so it is set only
// when a tiny relaxed-SIMD module does not validate.
import v8 from 'node:v8';

// (func (result v128) (i16x8.relaxed_dot_i8x16_i7x16_s (v128.const 0) (v128.const 0)))
const zeros = new Array(16).fill(0);
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x2b, 0x01, 0x29, 0x00, 0xfd, 0x0c, ...zeros, 0xfd, 0x0c, ...zeros, 0xfd, 0x92, 0x02, 0x0b,
]);
if (!WebAssembly.validate(RELAXED_PROBE)) {
  try {
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // Runtimes without V8 flags: the plain SIMD kernels are picked at start-up.
  }
}
const { main } = await import('../dist/src/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
