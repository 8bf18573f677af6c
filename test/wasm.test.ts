/**
 * wasm-backend specifics: weights spread over several memories (shards), activation chunking
 * through a small scratch area, thread-count handling, kernel-build selection, typed errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWasmBackend, physicalCores } from '../src/backend/wasm/index.js';
import { relaxedSimdAvailable } from '../src/backend/wasm/module.js';
import { createJsBackend } from '../src/backend/js/index.js';
import type { DType } from '../src/formats/dtype.js';
import { encode, rng } from './wasm-util.js';

function rand(n: number, r: () => number): Float32Array {
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

test('weights spread over several shards agree with single-shard results (1 and 2 threads)', async () => {
  const r = rng(5);
  const rows = 300, cols = 256; // f32: 300 KiB per matrix
  const mats = Array.from({ length: 6 }, (_, i) => ({ dtype: (['f32', 'bf16', 'q8_0', 'q4_0', 'f16', 'f32'] as DType[])[i]!, values: rand(rows * cols, r) }));
  const x = rand(3 * cols, r);
  const ref = await createWasmBackend({ threads: 1 });
  const want = mats.map(({ dtype, values }) => {
    const m = ref.prepareMatrix({ dtype, rows, cols, data: encode(dtype, values) });
    const out = new Float32Array(3 * rows);
    ref.matmul(m, x, 3, out);
    return out;
  });
  assert.equal(ref.memoryBytes().length, 1);
  ref.dispose();
  for (const threads of [1, 2]) {
    // scratch 64 KiB + at most one ~300 KiB matrix per shard
    const b = await createWasmBackend({ threads, shardBytes: 65536 * 8, scratchBytes: 65536 });
    const prepared = mats.map(({ dtype, values }) => b.prepareMatrix({ dtype, rows, cols, data: encode(dtype, values) }));
    assert.ok(b.memoryBytes().length >= 3, `expected several shards, got ${b.memoryBytes().length}`);
    prepared.forEach((m, i) => {
      const out = new Float32Array(3 * rows);
      b.matmul(m, x, 3, out);
      assert.deepEqual(out, want[i], `${mats[i]!.dtype} matmul on shard ${i} with ${threads} threads`);
    });
    b.dispose();
  }
});

test('long inputs are processed in token chunks through a small scratch area', async () => {
  const r = rng(6);
  const rows = 40, cols = 1024, n = 45;
  const values = rand(rows * cols, r);
  const x = rand(n * cols, r);
  const big = await createWasmBackend({ threads: 2 });
  const small = await createWasmBackend({ threads: 2, scratchBytes: 65536 }); // ~10 tokens per chunk
  for (const dtype of ['bf16', 'q8_0'] as DType[]) {
    const data = encode(dtype, values);
    const a = new Float32Array(n * rows);
    const c = new Float32Array(n * rows);
    big.matmul(big.prepareMatrix({ dtype, rows, cols, data }), x, n, a);
    small.matmul(small.prepareMatrix({ dtype, rows, cols, data }), x, n, c);
    // chunks may take different kernel paths (a short last chunk skips the prefill tiling), so
    // results agree to f32 summation-order differences, not bit for bit
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(c[i]! - a[i]!) <= 2e-5 * (1 + Math.abs(a[i]!)), `${dtype} output ${i}: ${c[i]} vs ${a[i]}`);
  }
  // one token that cannot fit the scratch area is a typed error
  const wide = small.prepareMatrix({ dtype: 'f32', rows: 4, cols: 20000, data: new Uint8Array(4 * 20000 * 4) });
  assert.throws(() => small.matmul(wide, new Float32Array(20000), 1, new Float32Array(4)), { name: 'ModelError' });
  big.dispose();
  small.dispose();
});

test('thread options and kernel builds', async () => {
  assert.ok(physicalCores() >= 1);
  await assert.rejects(createWasmBackend({ threads: 0 }), { name: 'UsageError' });
  await assert.rejects(createWasmBackend({ threads: 1.5 }), { name: 'UsageError' });
  const plain = await createWasmBackend({ threads: 1, relaxedSimd: false });
  assert.equal(plain.variant, 'simd');
  plain.dispose();
  const auto = await createWasmBackend({ threads: 1 });
  assert.equal(auto.variant, relaxedSimdAvailable() ? 'relaxed' : 'simd');
  auto.dispose();
  const def = await createWasmBackend();
  assert.equal(def.threads, physicalCores());
  def.dispose();
});

test('typed errors: foreign matrices, bad shapes, use after dispose', async () => {
  const b = await createWasmBackend({ threads: 2 });
  const js = createJsBackend();
  const jm = js.prepareMatrix({ dtype: 'f32', rows: 2, cols: 8, data: new Uint8Array(64) });
  assert.throws(() => b.matmul(jm, new Float32Array(8), 1, new Float32Array(2)), { name: 'ModelError' });
  const m = b.prepareMatrix({ dtype: 'f32', rows: 2, cols: 8, data: new Uint8Array(64) });
  assert.throws(() => b.matmul(m, new Float32Array(7), 1, new Float32Array(2)), { name: 'ModelError' });
  assert.throws(() => b.matmul(m, new Float32Array(8), 1, new Float32Array(1)), { name: 'ModelError' });
  assert.throws(() => b.matmul(m, new Float32Array(8), 1, new Float32Array(3), 3), { name: 'ModelError' });
  assert.throws(() => b.prepareMatrix({ dtype: 'q4_0', rows: 2, cols: 40, data: new Uint8Array(0) }), { name: 'ModelError' });
  assert.throws(() => b.prepareMatrix({ dtype: 'f32', rows: 0, cols: 8, data: new Uint8Array(0) }), { name: 'ModelError' });
  b.dispose();
  assert.throws(() => b.matmul(m, new Float32Array(8), 1, new Float32Array(2)), { name: 'ModelError' });
});

test('threaded element-wise kernels give the same results as one thread', async () => {
  const r = rng(8);
  const one = await createWasmBackend({ threads: 1 });
  const two = await createWasmBackend({ threads: 2 });
  const count = 100003; // over the parallel threshold, not a multiple of 4
  const gate = rand(count, r).map((v) => v * 8);
  const up = rand(count, r);
  const a = gate.slice();
  const b = gate.slice();
  one.geluMul(a, up, count);
  two.geluMul(b, up, count);
  assert.deepEqual(b, a);
  one.dispose();
  two.dispose();
});

test('f16 weights decode exactly in the matmul kernel (subnormals, signs, extremes)', async () => {
  const b = await createWasmBackend({ threads: 1 });
  const bits = [0x0001, 0x8001, 0x03ff, 0x8400, 0x3c00, 0xbc00, 0x7bff, 0xfbff, 0x0000, 0x8000, 0x3555, 0x2e66, 0x0200, 0x83ff, 0x5640, 0xc7d0];
  const cols = bits.length;
  const data = new Uint8Array(new Uint16Array(bits).buffer);
  const m = b.prepareMatrix({ dtype: 'f16', rows: 1, cols, data });
  const want = new Float32Array(cols);
  b.getRow(m, 0, want);
  for (let c = 0; c < cols; c++) {
    const x = new Float32Array(cols);
    x[c] = 1;
    const out = new Float32Array(1);
    b.matmul(m, x, 1, out);
    assert.ok(out[0] === want[c], `f16 bits 0x${bits[c]!.toString(16)}: ${out[0]} vs ${want[c]}`); // === : a sum of -0 is +0
  }
  b.dispose();
});
