import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { normalizeHfConfig } from '../src/config/model-config.js';
import { ModelError } from '../src/errors.js';
import { openSafetensors } from '../src/formats/safetensors.js';
import { createModel } from '../src/model/load.js';
import type { HookEvent } from '../src/model/types.js';
import { goldenDir, readGolden } from './helpers/paths.js';

async function golden(variant: string, chunkSize?: number) {
  const dir = path.join(goldenDir(), variant);
  const { config } = normalizeHfConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')));
  const source = openSafetensors(path.join(dir, 'model.safetensors'));
  const model = await createModel(source, config, { backend: 'js', chunkSize });
  source.close();
  return model;
}

const ids = readGolden('gemma3').hidden_states.input_ids;

test('hooks: every hook point fires once per layer with [nTokens, hidden] activations', async () => {
  const model = await golden('gemma3');
  const seen: string[] = [];
  model.forward(ids, model.createCache(64), {
    hooks: { '*': (e: HookEvent) => { seen.push(e.name); assert.equal(e.activation.length, e.nTokens * e.dim); assert.equal(e.dim, e.name.endsWith('hook_z') ? 4 * 32 : 64); assert.equal(e.nTokens, ids.length); } },
  });
  const expected = [0, 1, 2, 3].flatMap((i) => ['hook_resid_pre', 'attn.hook_z', 'hook_attn_out', 'hook_mlp_out', 'hook_resid_post'].map((h) => `blocks.${i}.${h}`));
  assert.deepEqual(seen, expected);
});

test('hooks: resid_post equals the golden residual stream; resid_pre of layer i+1 equals resid_post of i', async () => {
  const model = await golden('gemma3');
  const g = readGolden('gemma3').hidden_states;
  const acts: Record<string, Float32Array> = {};
  model.forward(ids, model.createCache(64), { hooks: { '*': (e) => { acts[e.name] = e.activation.slice(); } } });
  for (let i = 0; i < 4; i++) {
    const want = g.layers[i]!.flat();
    const got = acts[`blocks.${i}.hook_resid_post`]!;
    const scale = Math.max(...want.map(Math.abs));
    assert.ok(want.every((w, j) => Math.abs(w - got[j]!) <= 1e-4 * scale), `layer ${i}`);
    if (i < 3) assert.deepEqual(acts[`blocks.${i + 1}.hook_resid_pre`], got);
  }
  // resid_post = resid_pre + attn_out + mlp_out
  const pre = acts['blocks.2.hook_resid_pre']!, a = acts['blocks.2.hook_attn_out']!, m = acts['blocks.2.hook_mlp_out']!, post = acts['blocks.2.hook_resid_post']!;
  for (let j = 0; j < post.length; j++) assert.ok(Math.abs(pre[j]! + a[j]! + m[j]! - post[j]!) < 1e-5);
});

test('hooks: a replacement changes the output; returning the same values does not', async () => {
  const model = await golden('gemma2');
  const base = model.forward(ids, model.createCache(64)).logits;
  const same = model.forward(ids, model.createCache(64), { hooks: { 'blocks.1.hook_mlp_out': (e) => e.activation.slice() } }).logits;
  assert.deepEqual(same, base);
  const zeroed = model.forward(ids, model.createCache(64), { hooks: { 'blocks.1.hook_mlp_out': (e) => new Float32Array(e.activation.length) } }).logits;
  assert.ok(zeroed.some((v, i) => Math.abs(v - base[i]!) > 1e-3), 'zeroing an MLP output must move the logits');
  assert.throws(() => model.forward(ids, model.createCache(64), { hooks: { 'blocks.0.hook_attn_out': () => new Float32Array(3) } }), ModelError);
});

test('KV cache: truncate and re-run gives the same logits as a fresh prefill', async () => {
  for (const [variant, chunk] of [['gemma2', 256], ['gemma3', 2]] as const) {
    const model = await golden(variant, chunk);
    const seq = readGolden(variant).sequences.find((s) => s.name === 'len40')!.input_ids;
    const cache = model.createCache(64);
    model.forward(seq.slice(0, 30), cache);
    assert.equal(cache.length, 30);
    cache.truncate(28);
    const r = model.forward(seq.slice(28, 35), cache);
    const fresh = model.forward(seq.slice(0, 35), model.createCache(64));
    const diff = Math.max(...r.logits.map((v, i) => Math.abs(v - fresh.logits[i]!)));
    assert.ok(diff < 1e-5, `${variant}: ${diff}`);
  }
});

test('KV cache: a ring buffer that lost the needed positions refuses to truncate', async () => {
  const model = await golden('gemma3', 2); // window 6 -> 7 ring slots
  const seq = readGolden('gemma3').sequences.find((s) => s.name === 'len40')!.input_ids;
  const cache = model.createCache(64);
  model.forward(seq, cache);
  assert.throws(() => cache.truncate(10), /no longer holds position/);
  assert.throws(() => cache.truncate(41), ModelError);
});

test('bad input to forward is a ModelError', async () => {
  const model = await golden('gemma1_mqa');
  assert.throws(() => model.forward([], model.createCache(8)), /at least one token/);
  assert.throws(() => model.forward([2, 512], model.createCache(8)), /token id 512 is outside the vocabulary/);
  assert.throws(() => model.forward([2, -1], model.createCache(8)), ModelError);
  assert.throws(() => model.forward([2, 3, 4], model.createCache(2)), /exceed the context size 2/);
  assert.throws(() => model.createCache(0), ModelError);
});

test('forwardBatch: mixed prefill and decode sequences equal separate forward calls', async () => {
  for (const [variant, chunk] of [['gemma2', 256], ['gemma3', 4]] as const) {
    const model = await golden(variant, chunk);
    const seqs = readGolden(variant).sequences.map((s) => s.input_ids); // lengths 1, 7, 40
    const caches = seqs.map(() => model.createCache(64));
    const refCaches = seqs.map(() => model.createCache(64));
    // Step 1: prefill all three at once (all positions for the second).
    const batch = model.forwardBatch(seqs.map((ids, i) => ({ ids, cache: caches[i]!, allPositions: i === 1 })));
    seqs.forEach((ids, i) => {
      const ref = model.forward(ids, refCaches[i]!, { allPositions: i === 1 });
      assert.equal(batch[i]!.rows, ref.rows);
      const diff = Math.max(...batch[i]!.logits.map((v, j) => Math.abs(v - ref.logits[j]!)));
      assert.ok(diff < 1e-5, `${variant} prefill item ${i}: ${diff}`);
    });
    // Step 2: one decode token each, plus a 3-token extension for the first.
    const next = [[5, 6, 7], [8], [9]];
    const b2 = model.forwardBatch(next.map((ids, i) => ({ ids, cache: caches[i]! })));
    next.forEach((ids, i) => {
      const ref = model.forward(ids, refCaches[i]!);
      const diff = Math.max(...b2[i]!.logits.map((v, j) => Math.abs(v - ref.logits[j]!)));
      assert.ok(diff < 1e-5, `${variant} decode item ${i}: ${diff}`);
      assert.equal(caches[i]!.length, refCaches[i]!.length);
    });
  }
});

test('forwardBatch rejects the same cache twice', async () => {
  const model = await golden('gemma1_mqa');
  const cache = model.createCache(8);
  assert.throws(() => model.forwardBatch([{ ids: [2], cache }, { ids: [3], cache }]), /same cache appears twice/);
});

test('targets: scored positions give the log-softmax of the logits path at the target and its argmax, batched, across chunks, with holes', async () => {
  const { rowLogProb } = await import('../src/backend/log-probs.js');
  for (const [variant, chunk] of [['gemma2', 256], ['gemma3', 4]] as const) {
    const model = await golden(variant, chunk);
    const V = model.vocabSize;
    const seqs = readGolden(variant).sequences.map((s) => s.input_ids); // lengths 1, 7, 40
    // targets: the next token of the sequence, -1 on every third position and past the end
    const targetsOf = (ids: readonly number[]) => ids.map((_, t) => (t % 3 === 2 || t + 1 >= ids.length ? -1 : ids[t + 1]!));
    const batch = model.forwardBatch(seqs.map((ids, i) => ({ ids, cache: model.createCache(64), targets: targetsOf(ids), allPositions: i === 2 })));
    seqs.forEach((ids, i) => {
      const ref = model.forward(ids, model.createCache(64), { allPositions: true });
      const got = batch[i]!;
      assert.equal(got.rows, i === 2 ? ids.length : 0, 'logits rows only with allPositions');
      if (i === 2) assert.ok(Math.max(...got.logits.map((v, j) => Math.abs(v - ref.logits[j]!))) < 1e-5);
      const targets = targetsOf(ids);
      targets.forEach((target, t) => {
        if (target < 0) {
          assert.ok(Number.isNaN(got.tokenLogProbs![t]) && got.argmax![t] === -1, `${variant} item ${i} position ${t} is not scored`);
          return;
        }
        const want = rowLogProb(ref.logits, t * V, V, target);
        assert.ok(Math.abs(got.tokenLogProbs![t]! - want.logProb) < 1e-5, `${variant} item ${i} position ${t}: ${got.tokenLogProbs![t]} vs ${want.logProb}`);
        assert.equal(got.argmax![t], want.argmax);
      });
    });
    const cache = model.createCache(64);
    assert.throws(() => model.forward([2, 3], cache, { targets: [4] }), /targets has 1 entries for 2 tokens/);
    assert.throws(() => model.forward([2, 3], cache, { targets: [4, V] }), { name: 'ModelError', message: new RegExp(`target ${V} is outside the vocabulary`) });
    assert.equal(cache.length, 0, 'a refused call leaves the cache alone');
  }
});
