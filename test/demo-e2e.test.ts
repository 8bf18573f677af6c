/**
 * End to end on the shipped demo model: loadModel('demo') with its tokenizer, logits over the
 * tokenizer's 1000 pieces (not the 1024-row padded table), the tied LM head checked against the
 * embedding rows read straight from model.safetensors, and the KV-cache path (one token at a
 * time, past the 512-token sliding window) against a single prefill.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../src/model/load.js';
import { repoRoot } from './helpers/paths.js';

const DEMO = path.join(repoRoot(), 'models', 'demo');

/** Rows [0, rows) of model.embed_tokens.weight (BF16), decoded independently of src/formats. */
function embeddingRows(rows: number, hidden: number): Float64Array {
  const buf = fs.readFileSync(path.join(DEMO, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const t = (JSON.parse(buf.toString('utf8', 8, 8 + n)) as Record<string, { data_offsets: [number, number] }>)['model.embed_tokens.weight']!;
  const base = 8 + n + t.data_offsets[0];
  const out = new Float64Array(rows * hidden);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < rows * hidden; i++) {
    u[0] = buf.readUInt16LE(base + 2 * i) << 16;
    out[i] = f[0]!;
  }
  return out;
}

test('demo e2e: loadModel("demo") gives finite logits over the tokenizer vocab; LM head = tied embeddings', async () => {
  const { model, tokenizer, config } = await loadModel('demo', { backend: 'js' });
  try {
    assert.ok(tokenizer, 'the demo model ships a tokenizer');
    assert.equal(tokenizer.vocabSize, 1000);
    assert.equal(config.vocabSize, 1024, 'padded embedding table');
    assert.equal(model.vocabSize, tokenizer.vocabSize);
    const ids = tokenizer.encode('Hello');
    assert.equal(ids[0], 2, 'starts with <bos>');
    const r = model.forward(ids, model.createCache(64), { collectHidden: true });
    assert.equal(r.rows, 1);
    assert.equal(r.vocab, 1000);
    assert.equal(r.logits.length, 1000);
    let min = Infinity, max = -Infinity;
    for (const v of r.logits) {
      assert.ok(Number.isFinite(v));
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    assert.ok(max - min > 1e-3, 'logits are not constant');
    // Gemma 3 has no final soft-cap: logits[v] = finalNorm(x_last) . E[v].
    const H = config.hiddenSize;
    const last = r.hidden!.finalNorm.subarray((ids.length - 1) * H, ids.length * H);
    const E = embeddingRows(1000, H);
    let worst = 0;
    for (let v = 0; v < 1000; v++) {
      let s = 0;
      for (let k = 0; k < H; k++) s += last[k]! * E[v * H + k]!;
      worst = Math.max(worst, Math.abs(s - r.logits[v]!));
    }
    assert.ok(worst < 1e-4 * Math.max(1, max - min), `LM head differs from the tied embedding by ${worst}`);
  } finally {
    model.dispose();
  }
});

test('demo e2e: token-by-token decoding past the sliding window matches one prefill', async () => {
  const { model, tokenizer } = await loadModel('demo', { backend: 'js' });
  try {
    const text = fs.readFileSync(path.join(repoRoot(), 'scripts', 'demo-corpus', 'prose.txt'), 'utf8');
    const ids = tokenizer!.encode(text).slice(0, 560);
    assert.equal(ids.length, 560, 'prompt longer than the 512-token window');
    const full = model.forward(ids, model.createCache(1024), { allPositions: true });
    const cache = model.createCache(1024);
    model.forward(ids.slice(0, 500), cache);
    let worst = 0;
    for (let t = 500; t < ids.length; t++) {
      const step = model.forward([ids[t]!], cache);
      for (let v = 0; v < step.vocab; v++) worst = Math.max(worst, Math.abs(step.logits[v]! - full.logits[t * full.vocab + v]!));
    }
    assert.equal(cache.length, 560);
    assert.ok(worst < 1e-4, `decode vs prefill max |diff| ${worst}`);
  } finally {
    model.dispose();
  }
});
