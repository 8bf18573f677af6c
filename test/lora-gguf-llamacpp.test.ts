/**
 * Issue 13's GGUF proof: the adapter.gguf that `gemma finetune --method lora` writes
 * (saveGgufAdapter), put on our `gemma convert`-ed base GGUF and loaded by llama.cpp itself
 * (node-llama-cpp's prebuilt CPU binary, LoRA given at context creation), gives the logits of
 * `gemma forward --lora` (the PEFT adapter applied by gemma-ts without merging) within 4e-3.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { convertToGGUF } from '../src/formats/convert.js';
import { loadModel } from '../src/model/load.js';
import { applyLora } from '../src/train/adapter.js';
import { writeRandomAdapter } from './helpers/lora.js';
import { goldenDir, repoRoot } from './helpers/paths.js';

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
type Token = import('node-llama-cpp').Token;
type Item = import('node-llama-cpp').ControlledEvaluateInputItem;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-lora-gguf-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// As in test/convert-llamacpp: llama.cpp's CPU GELU goes through an f16 table (~1e-3 relative on
// the MLP activations), so f32 GGUF logits differ from ours by up to ~2e-3; a wrong adapter
// rule (names, transposition, alpha, the query-scale fold) moves them by far more (checked below).
const TOL = 4e-3;

const CASES: Array<{ name: string; dir: string; targets: string; rslora?: boolean; ids: number[] }> = [
  { name: 'gemma2 (soft-caps, query-scale fold on attn_q)', dir: path.join(goldenDir(), 'gemma2'), targets: 'all-linear', ids: [2, 306, 214, 297, 56, 207, 375, 155, 508, 146, 180, 282] },
  { name: 'gemma1_mqa (MQA)', dir: path.join(goldenDir(), 'gemma1_mqa'), targets: 'q_proj,k_proj,v_proj,o_proj', ids: [2, 306, 214, 297, 56, 207, 375, 155, 508, 146] },
  { name: 'gemma3 (QK-norm, rsLoRA)', dir: path.join(goldenDir(), 'gemma3'), targets: 'all-linear', rslora: true, ids: [2, 306, 214, 297, 56, 207, 375, 155, 508, 146] },
  { name: 'the demo model (bf16 base)', dir: path.join(repoRoot(), 'models', 'demo'), targets: 'all-linear', ids: [2, 105, 506, 307, 119, 45, 230, 611, 87, 106] },
];

/** A random LoRA adapter (nonzero B) written in both layouts: PEFT directory and adapter.gguf. */
async function writeAdapter(base: string, targets: string, rslora: boolean, out: string): Promise<{ peft: string; gguf: string }> {
  const gguf = path.join(out, 'adapter.gguf');
  await writeRandomAdapter(base, out, { targets, rank: 4, alpha: 8, rslora, seed: 21, spread: 0.15, gguf });
  return { peft: out, gguf };
}

/** All-position logits of gemma-ts on the base checkpoint with the PEFT adapter at `scale` (none: the base). */
async function ours(base: string, ids: number[], peft?: string, scale = 1): Promise<Float32Array[]> {
  const { model } = await loadModel(base, { backend: 'js' });
  try {
    if (peft) applyLora(model, peft, scale);
    const r = model.forward(ids, model.createCache(64), { allPositions: true });
    return Array.from({ length: r.rows }, (_, i) => r.logits.slice(i * r.vocab, (i + 1) * r.vocab));
  } finally {
    model.dispose();
  }
}

const llamaP = getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, usePrebuiltBinaries: true });

/** All-position logits of llama.cpp on the GGUF base, with the GGUF adapter at `scale` when given. */
async function llamaCpp(file: string, ids: number[], lora?: { file: string; scale: number }): Promise<Float32Array[]> {
  const model = await (await llamaP).loadModel({ modelPath: file });
  const ctx = await model.createContext({
    contextSize: 64, batchSize: 64, threads: 1, sequences: 1, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', swaFullCache: true,
    ...(lora ? { lora: { adapters: [{ filePath: lora.file, scale: lora.scale }] } } : {}),
  });
  try {
    const res = await ctx.getSequence().controlledEvaluate(ids.map((t): Item => [t as Token, { generateNext: { logits: true } }]));
    return res.map((o) => {
      const m = o!.next.logits!;
      const a = new Float32Array(m.size);
      for (const [t, v] of m) a[t] = v;
      return a;
    });
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

/**
 * The tolerance for logits of this size: llama.cpp's f16 GELU table errs relative to the
 * activations, so larger logits (the trained demo reaches |logit| ~20; the random goldens stay
 * under 10) get a proportionally larger bound: TOL x max(1, max|logit| / 10).
 */
function tolFor(rows: Float32Array[]): number {
  let m = 0;
  for (const r of rows) for (const v of r) m = Math.max(m, Math.abs(v));
  return TOL * Math.max(1, m / 10);
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((row, i) => {
    const ref = b[i]!;
    const n = Math.min(row.length, ref.length);
    assert.ok(n > 0 && Math.abs(row.length - ref.length) <= 256, `row ${i}: ${row.length} vs ${ref.length} logits`);
    for (let j = 0; j < n; j++) m = Math.max(m, Math.abs(row[j]! - ref[j]!));
  });
  return m;
}

for (const c of CASES) {
  test(`${c.name}: adapter.gguf on the converted base in llama.cpp = gemma forward --lora, within ${TOL}`, async () => {
    const work = path.join(tmp, path.basename(c.dir));
    fs.mkdirSync(work, { recursive: true });
    const base = path.join(work, 'base-f32.gguf');
    await convertToGGUF(c.dir, base, { type: 'f32' });
    const { peft, gguf } = await writeAdapter(c.dir, c.targets, c.rslora === true, path.join(work, 'adapter'));

    const ourBase = await ours(c.dir, c.ids);
    const tol = tolFor(ourBase);
    const baseDiff = maxAbsDiff(await llamaCpp(base, c.ids), ourBase);
    assert.ok(baseDiff < tol, `the base alone: ${baseDiff} (tolerance ${tol})`);
    for (const scale of [1, 0.5]) {
      const want = await ours(c.dir, c.ids, peft, scale);
      const got = await llamaCpp(base, c.ids, { file: gguf, scale });
      const d = maxAbsDiff(got, want);
      console.log(`# ${c.name}, scale ${scale}: max |logit difference| ${d.toExponential(2)} (base alone ${baseDiff.toExponential(2)})`);
      assert.ok(d < tol, `scale ${scale}: max |difference| ${d} (tolerance ${tol})`);
      // the adapter matters: llama.cpp with it differs from our base by far more than the tolerance
      assert.ok(maxAbsDiff(got, await ours(c.dir, c.ids)) > 50 * TOL, 'the adapter changes the logits');
    }
  });
}
