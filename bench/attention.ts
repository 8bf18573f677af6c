/**
 * Decode-time attention of the wasm backend over KV caches that are not in the CPU caches:
 * `npm run bench:attention -- [--threads 2] [--kv f16|f32]`.
 * One query token, gemma-2-2b (8 heads, 4 KV heads) and gemma-2b (8 heads, 1 KV head) shapes,
 * head_dim 256; 26 layers' caches used in rotation (as a decode step does), so each call reads
 * its K / V rows from memory. Prints ms per call (one layer), next to the reference (js) backend
 * on the same caches as the peer, and the ratio.
 */
import v8 from 'node:v8';
import { parseArgs } from 'node:util';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { createJsBackend } from '../src/backend/js/index.js';
import type { AttentionParams } from '../src/backend/backend.js';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const { values } = parseArgs({ options: { threads: { type: 'string', default: '2' }, kv: { type: 'string', default: 'f16' } } });
if (values.kv !== 'f16' && values.kv !== 'f32') throw new Error('--kv must be f16 or f32');
const f32 = values.kv === 'f32';
const b = await createWasmBackend({ threads: Number(values.threads) });
const js = createJsBackend();
const LAYERS = 26;
const rows: string[] = [];
for (const [name, nHeads, nKvHeads, headDim] of [['gemma-2-2b', 8, 4, 256], ['gemma-2b', 8, 1, 256]] as const) {
  for (const nSlots of [544, 2048, 4096]) {
    const len = nSlots * nKvHeads * headDim;
    const src = Float32Array.from({ length: len }, () => Math.random() - 0.5);
    const caches = Array.from({ length: LAYERS }, () => {
      if (f32) {
        const k = b.allocF32!(len), v = b.allocF32!(len);
        k.set(src);
        v.set(src);
        return { k, v };
      }
      const k = b.allocF16!(len), v = b.allocF16!(len);
      b.writeF16!(k, 0, src);
      b.writeF16!(v, 0, src);
      return { k, v };
    });
    const q = Float32Array.from({ length: nHeads * headDim }, () => Math.random() - 0.5);
    const base = {
      q, out: new Float32Array(q.length), nTokens: 1, nSlots, nHeads, nKvHeads, headDim, scale: 0.06, softcap: 50, window: Infinity,
      queryPositions: Int32Array.from([nSlots - 1]), slotPositions: Int32Array.from({ length: nSlots }, (_, i) => i),
    };
    const time = (backend: typeof b | typeof js, n: number): number => {
      const call = (i: number) => backend.attention({ ...base, ...caches[i % LAYERS]! } as AttentionParams);
      for (let i = 0; i < LAYERS; i++) call(i);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) call(i);
      return (performance.now() - t0) / n;
    };
    const wasmMs = time(b, 20 * LAYERS), jsMs = time(js, LAYERS);
    rows.push(`${name.padEnd(10)} ${String(nSlots).padStart(5)} slots: wasm ${wasmMs.toFixed(3)} ms per layer, js ${jsMs.toFixed(3)} ms, ratio ${(jsMs / wasmMs).toFixed(1)}x`);
    for (const { k, v } of caches) {
      if (f32) {
        b.freeF32!(k as Float32Array);
        b.freeF32!(v as Float32Array);
      } else {
        b.freeF16!(k as Uint16Array);
        b.freeF16!(v as Uint16Array);
      }
    }
  }
}
console.log(`bench:attention  ${values.kv} cache, ${b.name}, ${values.threads} threads\n${rows.join('\n')}`);
b.dispose();
