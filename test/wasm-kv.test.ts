/**
 * KV caches in wasm memory (Backend.allocF32): attention reads them in place. Logits must equal
 * those of a plain-array cache (copied into wasm memory on every call) token for token, caches
 * must give their memory back on dispose (and at garbage collection), and views must stay valid
 * when the shared memory grows.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { normalizeHfConfig } from '../src/config/model-config.js';
import { openSafetensors } from '../src/formats/safetensors.js';
import { createModel } from '../src/model/load.js';
import { GemmaKVCache } from '../src/model/kv-cache.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { createJsBackend } from '../src/backend/js/index.js';
import { ModelError } from '../src/errors.js';
import { f32ToF16 } from '../src/formats/half.js';
import type { AttentionParams } from '../src/backend/backend.js';
import { goldenDir } from './helpers/paths.js';
import { randArray, rng } from './wasm-util.js';

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

for (const variant of ['gemma2', 'gemma3'] as const) {
  describe(`KV cache in wasm memory, golden ${variant}`, async () => {
    const dir = path.join(goldenDir(), variant);
    const { config } = normalizeHfConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')));
    const source = openSafetensors(path.join(dir, 'model.safetensors'));
    const backend = await createWasmBackend({ threads: 2 });
    // chunk 3: sliding layers are ring buffers of window + 2 slots; global layers grow 64 -> 128
    const model = await createModel(source, config, { backend, chunkSize: 3 });
    source.close();
    const maxTokens = 128;

    test('greedy decode of 64 tokens gives identical logits with the cache in wasm memory and in JS arrays', () => {
      const wasmCache = model.createCache(maxTokens);
      const jsCache = new GemmaKVCache(model.config, maxTokens, model.chunkSize);
      assert.equal(wasmCache.backendMemory, true);
      assert.equal(jsCache.backendMemory, false);
      assert.ok(wasmCache.layers.some((l) => l.ring) && wasmCache.layers.some((l) => !l.ring), 'both ring and linear layers');
      const prompt = [2, 17, 301, 45, 9, 88, 123, 7];
      const all = model.forward(prompt, wasmCache, { allPositions: true }).logits;
      assert.deepEqual(all, model.forward(prompt, jsCache, { allPositions: true }).logits, 'prefill logits');
      let a = all.subarray(all.length - model.vocabSize);
      let b: Float32Array;
      for (let i = 0; i < 64; i++) {
        const next = argmax(a);
        a = model.forward([next], wasmCache).logits;
        b = model.forward([next], jsCache).logits;
        assert.deepEqual(a, b, `decode step ${i}`);
      }
      assert.equal(wasmCache.length, prompt.length + 64);
      assert.ok(wasmCache.layers.every((l) => l.ring || l.slots === maxTokens), 'linear layers grew (old storage freed)');
      const live = backend.heapUsage().liveBytes;
      assert.equal(live, wasmCache.byteLength() - wasmCache.layers.reduce((s, l) => s + l.slotPositions.byteLength, 0));
      wasmCache.dispose();
      assert.equal(backend.heapUsage().liveBytes, 0);
    });

    test('batched decode (forwardBatch) on wasm-memory caches equals separate JS-array decodes', () => {
      const prompts = [[2, 5, 9], [2, 40, 41, 42, 43, 44, 45], [2, 300]];
      const wasmCaches = prompts.map(() => model.createCache(maxTokens));
      const jsCaches = prompts.map(() => new GemmaKVCache(model.config, maxTokens, model.chunkSize));
      let feed: number[][] = prompts;
      for (let step = 0; step < 53; step++) {
        const got = model.forwardBatch(feed.map((ids, i) => ({ ids, cache: wasmCaches[i]! }))).map((r) => r.logits);
        const want = feed.map((ids, i) => model.forward(ids, jsCaches[i]!).logits);
        got.forEach((g, i) => assert.deepEqual(g, want[i], `step ${step}, sequence ${i}`));
        feed = got.map((g) => [argmax(g)]);
      }
      for (const c of wasmCaches) c.dispose();
      assert.equal(backend.heapUsage().liveBytes, 0);
    });

    test('dispose frees: a new cache reuses the same wasm memory', () => {
      const first = model.createCache(maxTokens);
      model.forward([2, 3, 4], first);
      const offsets = first.layers.map((l) => [l.k.byteOffset, l.v.byteOffset]);
      const usage = backend.heapUsage();
      const mem = backend.memoryBytes();
      assert.ok(usage.liveBytes > 0);
      first.dispose();
      first.dispose(); // idempotent
      assert.deepEqual(backend.heapUsage(), { liveBytes: 0, heapBytes: 0, memories: usage.memories });
      assert.throws(() => model.forward([5], first), ModelError);
      assert.throws(() => first.truncate(0), ModelError);
      for (let round = 0; round < 5; round++) {
        const again = model.createCache(maxTokens);
        assert.deepEqual(again.layers.map((l) => [l.k.byteOffset, l.v.byteOffset]), offsets, 'same places');
        // reused memory comes back zeroed
        assert.ok(again.layers.every((l) => (l.k as Float32Array).every((x) => x === 0) && (l.v as Float32Array).every((x) => x === 0)));
        model.forward([2, 3, 4], again);
        assert.deepEqual(backend.heapUsage(), usage);
        again.dispose();
      }
      assert.deepEqual(backend.memoryBytes(), mem, 'no memory grew');
    });

    test('clone copies into new wasm memory', () => {
      const a = model.createCache(maxTokens);
      const ref = new GemmaKVCache(model.config, maxTokens, model.chunkSize);
      const ids = Array.from({ length: 70 }, (_, i) => (i * 37 + 2) % 500);
      model.forward(ids, a);
      model.forward(ids, ref);
      const b = a.clone();
      assert.equal(b.backendMemory, true);
      assert.notEqual(b.layers[0]!.k.byteOffset, a.layers[0]!.k.byteOffset);
      a.dispose();
      assert.deepEqual(model.forward([11], b).logits, model.forward([11], ref).logits);
      b.dispose();
      assert.equal(backend.heapUsage().liveBytes, 0);
    });

    test('dispose model', () => {
      model.dispose();
    });
  });
}

test('allocF32: first fit, coalescing, zeroed reuse; views survive memory.grow and attention reads them in place', async () => {
  for (const threads of [1, 2]) {
    const b = await createWasmBackend({ threads, scratchBytes: 65536 });
    const x = b.allocF32(1000), y = b.allocF32(3000), z = b.allocF32(10);
    y.fill(7);
    b.freeF32(y);
    b.freeF32(y); // double free: ignored
    b.freeF32(new Float32Array(4)); // foreign array: ignored
    const w = b.allocF32(500);
    assert.equal(w.byteOffset, y.byteOffset, 'first fit takes the freed range');
    assert.ok(w.every((v) => v === 0), 'reused memory is zeroed');
    b.freeF32(w);
    b.freeF32(x);
    const big = b.allocF32(4000); // x + y ranges coalesced
    assert.equal(big.byteOffset, x.byteOffset);
    b.freeF32(big);

    // attention with k/v allocated before a large grow of the same memory
    const r = rng(3 + threads);
    const nSlots = 40, nHeads = 4, nKvHeads = 2, headDim = 16, nTokens = 3;
    const kvLen = nSlots * nKvHeads * headDim;
    const k = b.allocF32(kvLen), v = b.allocF32(kvLen);
    const before = k.buffer.byteLength;
    const huge = b.allocF32(16 << 20); // 64 MiB: the memory grows
    assert.ok(b.memoryBytes().reduce((s, m) => s + m, 0) > before + (60 << 20));
    assert.equal(k.length, kvLen, 'views are not detached');
    k.set(randArray(kvLen, r));
    v.set(randArray(kvLen, r));
    const slotPositions = Int32Array.from({ length: nSlots }, (_, i) => (i < 35 ? i : -1));
    const base = {
      nTokens, nSlots, nHeads, nKvHeads, headDim, queryPositions: Int32Array.of(32, 33, 34), slotPositions,
      window: 20, scale: 0.25, softcap: 30, q: randArray(nTokens * nHeads * headDim, r),
    };
    const outPlace = new Float32Array(nTokens * nHeads * headDim);
    const outCopy = new Float32Array(nTokens * nHeads * headDim);
    const outJs = new Float32Array(nTokens * nHeads * headDim);
    b.attention({ ...base, k, v, out: outPlace } as AttentionParams);
    b.attention({ ...base, k: k.slice(), v: v.slice(), out: outCopy } as AttentionParams);
    createJsBackend().attention({ ...base, k: k.slice(), v: v.slice(), out: outJs } as AttentionParams);
    assert.deepEqual(outPlace, outCopy);
    for (let i = 0; i < outJs.length; i++) assert.ok(Math.abs(outJs[i]! - outPlace[i]!) < 1e-5);
    // q and out in the same memory too
    const qIn = b.allocF32(base.q.length), outIn = b.allocF32(base.q.length);
    qIn.set(base.q);
    b.attention({ ...base, q: qIn, k, v, out: outIn } as AttentionParams);
    assert.deepEqual(outIn, outPlace);
    for (const a of [k, v, huge, qIn, outIn, z]) b.freeF32(a);
    assert.deepEqual(b.heapUsage(), { liveBytes: 0, heapBytes: 0, memories: 1 });
    b.dispose();
    b.freeF32(k); // after dispose: no-op
    assert.throws(() => b.allocF32(10), ModelError);
  }
});

test('the JS backend has no allocF32: caches use plain arrays and dispose still works', () => {
  const { config } = normalizeHfConfig(JSON.parse(fs.readFileSync(path.join(goldenDir(), 'gemma2', 'config.json'), 'utf8')));
  const c = new GemmaKVCache(config, 32, 4, createJsBackend());
  assert.equal(c.backendMemory, false);
  c.dispose();
  assert.equal(c.byteLength(), 0);
});

test('a cache dropped without dispose gives its wasm memory back when garbage-collected', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const { config } = normalizeHfConfig(JSON.parse(fs.readFileSync(path.join(goldenDir(), 'gemma2', 'config.json'), 'utf8')));
  const b = await createWasmBackend({ threads: 1 });
  (() => {
    for (let i = 0; i < 4; i++) new GemmaKVCache(config, 64, 4, b).write(0, new Float32Array(64), new Float32Array(64), Int32Array.of(0));
  })();
  assert.ok(b.heapUsage().liveBytes > 0);
  for (let i = 0; i < 100 && b.heapUsage().liveBytes > 0; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(b.heapUsage().liveBytes, 0);
  b.dispose();
});

describe('f16 KV cache (kvType f16)', () => {
  test('writeF16 rounds exactly like the reference f32 -> f16 conversion (nearest even, subnormals, overflow, NaN)', async () => {
    const b = await createWasmBackend({ threads: 1 });
    const specials = [0, -0, 1, -1, 65504, 65519.996, 65520, -65520, 1e6, Infinity, -Infinity, 2 ** -14, 2 ** -24, 2 ** -25, 1.5 * 2 ** -25, 2 ** -26, 6.1e-5, 5.96e-8, 1e-30, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -30, 0.1, -3.14159];
    const r = rng(99);
    const src = new Float32Array(5000);
    src.set(specials);
    for (let i = specials.length; i < src.length; i++) src[i] = (r() - 0.5) * 10 ** Math.floor(r() * 12 - 8);
    const dst = b.allocF16(src.length + 3);
    b.writeF16(dst, 3, src);
    for (let i = 0; i < src.length; i++) assert.equal(dst[3 + i], f32ToF16(src[i]!), `value ${src[i]}`);
    const nan = new Float32Array([NaN]);
    b.writeF16(dst, 0, nan);
    assert.equal(dst[0]! & 0x7c00, 0x7c00);
    assert.notEqual(dst[0]! & 0x3ff, 0, 'NaN stays NaN');
    assert.throws(() => b.writeF16(dst, dst.length - 1, src.subarray(0, 2)), ModelError);
    b.freeF16(dst);
    assert.equal(b.heapUsage().liveBytes, 0);
    b.dispose();
  });

  test('attention over f16 keys / values equals the reference on the decoded values (in place and copied, 1 and 2 threads)', async () => {
    for (const threads of [1, 2]) {
      const b = await createWasmBackend({ threads });
      const r = rng(7 + threads);
      for (const { nHeads, nKvHeads, headDim, nTokens, softcap, window, nSlots = 45 } of [
        { nHeads: 8, nKvHeads: 4, headDim: 64, nTokens: 1, softcap: 50, window: Infinity },
        { nHeads: 8, nKvHeads: 1, headDim: 20, nTokens: 3, softcap: 0, window: 9 },
        { nHeads: 4, nKvHeads: 2, headDim: 36, nTokens: 5, softcap: 30, window: Infinity },
        // decoding over many slots (split into slot ranges on 2 threads), with a window
        { nHeads: 8, nKvHeads: 4, headDim: 64, nTokens: 1, softcap: 50, window: Infinity, nSlots: 300 },
        { nHeads: 6, nKvHeads: 2, headDim: 32, nTokens: 1, softcap: 0, window: 50, nSlots: 300 },
        { nHeads: 8, nKvHeads: 1, headDim: 64, nTokens: 1, softcap: 30, window: 100, nSlots: 300 },
        // prefill-like (split by heads): a group of 8 heads taken in pairs
        { nHeads: 8, nKvHeads: 1, headDim: 32, nTokens: 3, softcap: 0, window: 9 },
        { nHeads: 16, nKvHeads: 2, headDim: 64, nTokens: 4, softcap: 20, window: Infinity, nSlots: 120 },
      ]) {
        const valid = nSlots - 5;
        const kvLen = nSlots * nKvHeads * headDim;
        const k = b.allocF16(kvLen), v = b.allocF16(kvLen);
        b.writeF16(k, 0, randArray(kvLen, r));
        b.writeF16(v, 0, randArray(kvLen, r));
        const slotPositions = Int32Array.from({ length: nSlots }, (_, i) => (i < valid ? i : -1));
        const base = {
          nTokens, nSlots, nHeads, nKvHeads, headDim, slotPositions, window, scale: 0.2, softcap,
          queryPositions: Int32Array.from({ length: nTokens }, (_, t) => valid - nTokens + t), q: randArray(nTokens * nHeads * headDim, r),
        };
        const len = nTokens * nHeads * headDim;
        const outPlace = new Float32Array(len), outCopy = new Float32Array(len), outJs = new Float32Array(len);
        b.attention({ ...base, k, v, out: outPlace } as AttentionParams);
        b.attention({ ...base, k: k.slice(), v: v.slice(), out: outCopy } as AttentionParams);
        createJsBackend().attention({ ...base, k: k.slice(), v: v.slice(), out: outJs } as AttentionParams);
        assert.deepEqual(outPlace, outCopy);
        for (let i = 0; i < len; i++) assert.ok(Math.abs(outJs[i]! - outPlace[i]!) < 2e-5, `${headDim}/${nTokens}: ${outJs[i]} vs ${outPlace[i]}`);
        b.freeF16(k);
        b.freeF16(v);
      }
      assert.equal(b.heapUsage().liveBytes, 0);
      b.dispose();
    }
  });

  test('a golden model decodes with an f16 cache: half the bytes, logits close to the f32 cache, clone and dispose work', async () => {
    const dir = path.join(goldenDir(), 'gemma2');
    const { config } = normalizeHfConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')));
    const source = openSafetensors(path.join(dir, 'model.safetensors'));
    const backend = await createWasmBackend({ threads: 2 });
    const f16Model = await createModel(source, config, { backend, chunkSize: 3, kvType: 'f16' });
    source.close();
    const c16 = f16Model.createCache(96);
    const c32 = new GemmaKVCache(config, 96, 3, backend, 'f32');
    assert.equal(c16.kvType, 'f16');
    assert.equal(c32.kvType, 'f32');
    const prompt = [2, 17, 301, 45, 9, 88, 123, 7, 19, 250];
    let a = f16Model.forward(prompt, c16).logits;
    let want = f16Model.forward(prompt, c32).logits;
    const scale = Math.max(...want.map(Math.abs));
    let worst = 0;
    for (let step = 0; step < 40; step++) {
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - want[i]!));
      const next = argmax(want);
      a = f16Model.forward([next], c16).logits;
      want = f16Model.forward([next], c32).logits;
    }
    // f16 keeps 11 significant bits: differences stay at that level, far from the logits' scale
    assert.ok(worst < 1e-2 * scale, `max |logit diff| ${worst} vs scale ${scale}`);
    assert.ok(worst > 0, 'the f16 cache really rounds');
    const bytes = (c: GemmaKVCache) => c.layers.reduce((s, l) => s + l.k.byteLength + l.v.byteLength, 0);
    assert.equal(bytes(c16) * 2, bytes(c32));
    const copy = c16.clone();
    assert.equal(copy.kvType, 'f16');
    assert.deepEqual(f16Model.forward([5], copy).logits, f16Model.forward([5], c16).logits);
    for (const c of [c16, c32, copy]) c.dispose();
    assert.equal(backend.heapUsage().liveBytes, 0);
    // a backend without f16 storage keeps f32
    assert.equal(new GemmaKVCache(config, 16, 3, createJsBackend(), 'f16').kvType, 'f32');
    f16Model.dispose();
  });
});
