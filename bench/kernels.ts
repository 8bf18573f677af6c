/**
 * Kernel throughput of the wasm backend on a gemma-2b MLP-sized matrix [16384, 2048]:
 * `npx tsx bench/kernels.ts [dtypes] ` (or node dist/bench/kernels.js after a build).
 * Time is process CPU time divided by the thread count, so numbers stay meaningful on a busy
 * machine; GB/s = weight bytes streamed per call / time.
 */
import v8 from 'node:v8';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { dtypeByteLength, type DType } from '../src/formats/dtype.js';
import { randomTensor } from './synthetic.js';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const rows = Number(process.env.ROWS ?? 16384), cols = Number(process.env.COLS ?? 2048);
const dtypes = (process.argv[2] ?? 'f32,bf16,f16,q8_0,q4_0,q4_k,q6_k').split(',') as DType[];
const threadsList = (process.env.THREADS ?? '1,2').split(',').map(Number);
for (const threads of threadsList) {
  for (const relaxedSimd of [false, true]) {
    const b = await createWasmBackend({ threads, relaxedSimd });
    for (const dtype of dtypes) {
      const m = b.prepareMatrix({ dtype, rows, cols, data: randomTensor(dtype, rows * cols, 1 / Math.sqrt(cols)) });
      const bytes = dtypeByteLength(dtype, rows * cols);
      for (const n of [1, 16]) {
        const x = Float32Array.from({ length: n * cols }, () => Math.random() * 2 - 1);
        const out = new Float32Array(n * rows);
        b.matmul(m, x, n, out);
        const iters = n === 1 ? 40 : 5;
        const c0 = process.cpuUsage();
        const w0 = performance.now();
        for (let i = 0; i < iters; i++) b.matmul(m, x, n, out);
        const cu = process.cpuUsage(c0);
        const wall = (performance.now() - w0) / iters;
        const cpu = (cu.user + cu.system) / 1000 / iters / threads;
        console.log(`${b.name.padEnd(12)} threads=${threads} ${dtype.padEnd(5)} n=${String(n).padStart(2)}: cpu ${cpu.toFixed(2)} ms (${(bytes / cpu / 1e6).toFixed(1)} GB/s, ${((2 * rows * cols * n) / cpu / 1e6).toFixed(1)} GFLOP/s), wall ${wall.toFixed(2)} ms`);
      }
    }
    b.dispose();
  }
}
