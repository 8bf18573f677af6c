#!/usr/bin/env node
// Compiles kernels/kernels.ts (AssemblyScript) into two WebAssembly modules:
//   dist/src/backend/wasm/kernels-simd.wasm     SIMD128 + threads (shared memory)
//   dist/src/backend/wasm/kernels-relaxed.wasm  the same with relaxed SIMD
// The backend picks one at start-up (src/backend/wasm/module.ts).
import asc from 'assemblyscript/asc';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'dist', 'src', 'backend', 'wasm');
mkdirSync(outDir, { recursive: true });

const common = [
  path.join(root, 'kernels', 'kernels.ts'),
  '-O3', '--noAssert', '--runtime', 'stub',
  '--importMemory', '--sharedMemory', '--initialMemory', '1', '--maximumMemory', '65536',
  '--memoryBase', '1024',
];
const builds = [
  { file: 'kernels-simd.wasm', features: 'simd,threads' },
  { file: 'kernels-relaxed.wasm', features: 'simd,threads,relaxed-simd' },
];
for (const b of builds) {
  const { error, stderr } = await asc.main([...common, '--enable', b.features, '--outFile', path.join(outDir, b.file)]);
  if (error) {
    console.error(stderr.toString());
    console.error(`build-kernels: ${b.file} failed: ${error.message}`);
    process.exit(1);
  }
}
// The training kernels (src/train/wasm-matmul.ts): SIMD128 + threads, no relaxed SIMD (no FMA:
// the same sums on every runtime).
{
  const trainOut = path.join(root, 'dist', 'src', 'train');
  mkdirSync(trainOut, { recursive: true });
  const { error, stderr } = await asc.main([
    path.join(root, 'kernels', 'train.ts'), '-O3', '--noAssert', '--runtime', 'stub', '--importMemory', '--sharedMemory',
    '--initialMemory', '1', '--maximumMemory', '65536', '--memoryBase', '1024', '--enable', 'simd,threads',
    '--outFile', path.join(trainOut, 'train-kernels.wasm'),
  ]);
  if (error) {
    console.error(stderr.toString());
    console.error(`build-kernels: train-kernels.wasm failed: ${error.message}`);
    process.exit(1);
  }
}
console.log(`build-kernels: wrote ${builds.map((b) => b.file).join(', ')} to ${path.relative(root, outDir)}`);
