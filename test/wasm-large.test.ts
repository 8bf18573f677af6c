/**
 * Models over 4 GiB: a Gemma 2 2B-shaped BF16 checkpoint (5.2 GB of random weights, written by
 * this test into a temp dir as safetensors) loads on the wasm backend - its weights spread over
 * several WebAssembly memories - and produces finite logits. Skipped, saying so, when the
 * machine has less than 12 GiB of free memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { loadModel } from '../src/model/load.js';
import { shapeConfig, tensorShapes } from '../bench/synthetic.js';
import { f32ToBf16 } from '../src/formats/half.js';
import { rng } from './wasm-util.js';

const GiB = 1024 ** 3;

/** Stream a BF16 safetensors file of random weights (norm weights 0) without holding it in memory. */
function writeRandomBf16(file: string, tensors: { name: string; shape: number[] }[]): number {
  const r = rng(42);
  const pool = new Uint16Array(1 << 22); // 8 MiB of random bf16 values, reused at random offsets
  for (let i = 0; i < pool.length; i++) pool[i] = f32ToBf16((r() * 2 - 1) * 0.03);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 2;
    header[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = fs.openSync(file, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    const poolBytes = new Uint8Array(pool.buffer);
    const zeros = new Uint8Array(1 << 16);
    for (const t of tensors) {
      let left = t.shape.reduce((a, b) => a * b, 1) * 2;
      const norm = t.shape.length === 1;
      while (left > 0) {
        const start = norm ? 0 : 2 * Math.floor(r() * (pool.length / 2));
        const src = norm ? zeros : poolBytes;
        const n = Math.min(left, src.length - start);
        fs.writeSync(fd, src, start, n);
        left -= n;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return offset;
}

test('a >4 GiB BF16 checkpoint (Gemma 2 2B shapes) loads on the wasm backend and gives finite logits', async (t) => {
  const free = os.freemem();
  if (free < 12 * GiB) {
    const msg = `skipped: only ${(free / GiB).toFixed(1)} GiB of free memory (needs 12 GiB)`;
    console.log(`# wasm-large: ${msg}`);
    t.skip(msg);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-ts-large-'));
  try {
    const { raw, config } = shapeConfig('gemma-2-2b');
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw, torch_dtype: 'bfloat16' }));
    const weightBytes = writeRandomBf16(path.join(dir, 'model.safetensors'), tensorShapes(config));
    assert.ok(weightBytes > 4 * GiB, `checkpoint holds ${weightBytes} bytes`);
    const backend = await createWasmBackend({ threads: 2 });
    const rss0 = process.memoryUsage().rss;
    const { model } = await loadModel(dir, { backend, noTokenizer: true, contextSize: 64 });
    const shards = backend.memoryBytes();
    const wasmBytes = shards.reduce((a, b) => a + b, 0);
    assert.ok(shards.length >= 2, `weights should span several memories, got ${shards.length}`);
    assert.ok(shards.every((b) => b < 4 * GiB));
    assert.ok(wasmBytes > weightBytes, `wasm memories hold ${wasmBytes} bytes for ${weightBytes} bytes of weights`);
    const cache = model.createCache(64);
    const res = model.forward([2, 651, 6037, 576], cache);
    assert.equal(res.vocab, 256000);
    let finite = 0, nonzero = 0;
    for (const v of res.logits) {
      if (Number.isFinite(v)) finite++;
      if (v !== 0) nonzero++;
    }
    assert.equal(finite, res.logits.length, 'every logit is finite');
    assert.ok(nonzero > res.logits.length / 2, 'logits are not all zero');
    const next = model.forward([1000], cache);
    assert.ok(next.logits.every((v) => Number.isFinite(v)));
    const rss = process.memoryUsage().rss;
    console.log(`# wasm-large: ${(weightBytes / 1e9).toFixed(2)} GB of weights in ${shards.length} memories (${shards.map((b) => (b / GiB).toFixed(2)).join(' + ')} GiB); RSS ${(rss0 / 1e9).toFixed(2)} -> ${(rss / 1e9).toFixed(2)} GB`);
    model.dispose();
    backend.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
