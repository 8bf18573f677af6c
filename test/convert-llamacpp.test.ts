// Converted GGUF files run in llama.cpp itself (node-llama-cpp's prebuilt CPU binary) and give the
// reference implementation's logits: proof that `gemma convert` writes what llama.cpp expects
// (names, metadata, (1 + w) norms, layer pattern, RoPE bases and scaling, soft-caps, query scale).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { convertToGGUF, quantizeModel, type OutputType } from '../src/formats/convert.js';
import { readGGUF, readTensorData, writeGGUF } from '../src/formats/gguf.js';
import { dequantizeAll } from '../src/formats/quant.js';
import { loadModel } from '../src/model/load.js';
import { goldenDir, repoRoot, tmpDir, writeSyntheticModel } from './gguf-testutil.js';

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
type Token = import('node-llama-cpp').Token;
type Item = import('node-llama-cpp').ControlledEvaluateInputItem;
const withLogits = (t: number): Item => [t as Token, { generateNext: { logits: true } }];
type Llama = Awaited<ReturnType<typeof getLlama>>;

const VARIANTS = ['gemma1_mqa', 'gemma1_mha', 'gemma2', 'gemma3', 'gemma3_rope_scaled'];

interface GoldenSeq {
  name: string;
  input_ids: number[];
  all_logits: number[][];
  argmax_all: number[];
  greedy: { new_token_ids: number[]; min_top2_logit_margin: number };
}

const out = tmpDir('llamacpp');
after(() => fs.rmSync(out, { recursive: true, force: true }));
let llamaP: Promise<Llama> | undefined;
function llama(): Promise<Llama> {
  llamaP ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, usePrebuiltBinaries: true });
  return llamaP;
}

function argmax(v: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[b]!) b = i;
  return b;
}

/**
 * Runs `fn` with a llama.cpp context on `file`: f32 KV cache, no flash attention, full SWA cache,
 * so that the only approximations left are llama.cpp's own kernels.
 */
async function withLlamaCpp<T>(file: string, fn: (evalLogits: (ids: number[]) => Promise<Float32Array[]>, greedy: (ids: number[], n: number) => Promise<number[]>) => Promise<T>): Promise<T> {
  const l = await llama();
  const model = await l.loadModel({ modelPath: file });
  const ctx = await model.createContext({
    contextSize: 128, batchSize: 64, threads: 1, sequences: 1, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', swaFullCache: true,
    batching: { dispatchSchedule: (dispatch: () => void) => dispatch() },
  });
  const seq = ctx.getSequence();
  const toArray = (m: Map<number, number>, n: number): Float32Array => {
    const a = new Float32Array(n);
    for (const [t, v] of m) a[t] = v;
    return a;
  };
  try {
    const evalLogits = async (ids: number[]): Promise<Float32Array[]> => {
      await seq.clearHistory();
      const res = await seq.controlledEvaluate(ids.map(withLogits));
      return res.map((o) => {
        const m = o!.next.logits!;
        return toArray(m, m.size);
      });
    };
    const greedy = async (ids: number[], n: number): Promise<number[]> => {
      await seq.clearHistory();
      const last = (res: Awaited<ReturnType<typeof seq.controlledEvaluate>>): number => {
        const m = res[res.length - 1]!.next.logits!;
        return argmax(toArray(m, m.size));
      };
      const items: Item[] = ids.map((t, i) => (i === ids.length - 1 ? withLogits(t) : (t as Token)));
      let tok = last(await seq.controlledEvaluate(items));
      const outIds = [tok];
      while (outIds.length < n) {
        tok = last(await seq.controlledEvaluate([withLogits(tok)]));
        outIds.push(tok);
      }
      return outIds;
    };
    return await fn(evalLogits, greedy);
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

async function convertVariant(v: string, type: OutputType): Promise<string> {
  const file = path.join(out, `${v}.${type}.gguf`);
  if (!fs.existsSync(file)) await convertToGGUF(path.join(goldenDir(), v), file, { type });
  return file;
}

/** Our model (loadModel, reference JS backend) on a GGUF file: all-position logits of `ids`. */
async function ourLogits(file: string, ids: number[]): Promise<Float32Array[]> {
  const { model } = await loadModel(file, { backend: 'js' });
  const r = model.forward(ids, model.createCache(128), { allPositions: true });
  model.dispose();
  return Array.from({ length: r.rows }, (_, i) => r.logits.slice(i * r.vocab, (i + 1) * r.vocab));
}

function maxAbsDiff(a: Float32Array[], b: ArrayLike<number>[]): number {
  let m = 0;
  a.forEach((row, i) => {
    const ref = b[i]!;
    if (row.length !== ref.length) throw new Error(`row ${i}: ${row.length} vs ${ref.length} logits`);
    for (let j = 0; j < row.length; j++) m = Math.max(m, Math.abs(row[j]! - ref[j]!));
  });
  return m;
}

function argmaxAgreement(a: Float32Array[], b: ArrayLike<number>[]): number {
  let n = 0;
  a.forEach((row, i) => { if (argmax(row) === argmax(b[i]!)) n++; });
  return n / a.length;
}

function golden(v: string): GoldenSeq[] {
  return (JSON.parse(fs.readFileSync(path.join(goldenDir(), v, 'golden.json'), 'utf8')) as { sequences: GoldenSeq[] }).sequences;
}

// llama.cpp's CPU GELU goes through a float16 lookup table (GGML_GELU_FP16), which moves the
// MLP activations by up to ~1e-3 relative; on these checkpoints that shows as logit differences
// of 0.4e-3..2e-3 (measured). 4e-3 leaves headroom while any wrong rule moves logits by 0.18 to 2.6.
const LLAMA_CPP_TOL = 4e-3;

test('llama.cpp loads every converted golden checkpoint (F32) and reproduces the reference logits', async () => {
  for (const v of VARIANTS) {
    const file = await convertVariant(v, 'f32');
    await withLlamaCpp(file, async (evalLogits, greedy) => {
      for (const s of golden(v)) {
        const logits = await evalLogits(s.input_ids);
        assert.equal(logits.length, s.input_ids.length);
        let maxDiff = 0;
        logits.forEach((row, i) => {
          assert.equal(row.length, s.all_logits[i]!.length, `${v} ${s.name}: vocabulary size`);
          for (let j = 0; j < row.length; j++) maxDiff = Math.max(maxDiff, Math.abs(row[j]! - s.all_logits[i]![j]!));
          assert.equal(argmax(row), s.argmax_all[i], `${v} ${s.name}: argmax at position ${i}`);
        });
        assert.ok(maxDiff < LLAMA_CPP_TOL, `${v} ${s.name}: max |llama.cpp - reference| = ${maxDiff}`);
        // ours on the same GGUF file against llama.cpp
        const ours = await ourLogits(file, s.input_ids);
        const d = maxAbsDiff(ours, logits);
        assert.ok(d < LLAMA_CPP_TOL, `${v} ${s.name}: max |gemma-ts - llama.cpp| on the GGUF = ${d}`);
        // 20 greedy tokens through llama.cpp's KV cache (one token per step).
        const ids = await greedy(s.input_ids, s.greedy.new_token_ids.length);
        assert.deepEqual(ids, s.greedy.new_token_ids, `${v} ${s.name}: greedy tokens`);
      }
    });
  }
});

/** An F32 GGUF holding our decoding (quant.ts) of every tensor of `file`. */
function dequantizedCopy(file: string): string {
  const g = readGGUF(file);
  const outFile = file.replace(/\.gguf$/, '.dequantized.gguf');
  writeGGUF(outFile, {
    metadata: g.entries.filter((e) => e.key !== 'general.file_type' && e.key !== 'general.quantization_version'),
    tensors: g.tensors.map((t) => ({
      name: t.name, dtype: 'f32' as const, shape: t.shape,
      data: () => new Uint8Array(dequantizeAll(t.dtype, readTensorData(g, t), t.shape.reduce((a, b) => a * b, 1)).buffer),
    })),
  });
  return outFile;
}

// Q8_0 / Q4_0 files: llama.cpp on the quantized file against llama.cpp on an F32 file holding
// quant.ts's decoding of the same blocks. The one remaining difference is llama.cpp quantizing
// the activations to Q8_0 blocks before each quantized matmul (~0.4% per element); these random
// checkpoints amplify perturbations strongly (Q8_0 weight rounding alone moves their logits by
// 0.08-0.21), and the measured difference is 0.07-0.29. A decoding mismatch (nibble order,
// scale placement, sign) would change the weights themselves and move logits by their whole
// range (1-2). Tolerance: max difference 0.5. Their top-2 margins are small (median ~0.1), so a
// 0.3 perturbation may flip a few near-ties: require the same argmax in >= 85% of positions
// (measured: 90-100%).
const ACT_QUANT_TOL = 0.5;
const MIN_AGREEMENT = 0.85;

test('Q8_0 / Q4_0 files: llama.cpp decodes them as quant.ts does, and agrees with gemma-ts', async () => {
  for (const v of VARIANTS) {
    for (const type of ['q8_0', 'q4_0'] as const) {
      const file = await convertVariant(v, type);
      const s = golden(v).find((x) => x.name === 'len40')!;
      const q = await withLlamaCpp(file, (evalLogits) => evalLogits(s.input_ids));
      const d = await withLlamaCpp(dequantizedCopy(file), (evalLogits) => evalLogits(s.input_ids));
      const ours = await ourLogits(file, s.input_ids);
      // llama.cpp on the quantized file vs on our decoding of it: activation quantization only.
      const qd = maxAbsDiff(q, d);
      assert.ok(qd < ACT_QUANT_TOL, `${v} ${type}: max |llama.cpp quantized - dequantized| = ${qd}`);
      assert.ok(argmaxAgreement(q, d) >= MIN_AGREEMENT, `${v} ${type}: llama.cpp argmax agreement ${argmaxAgreement(q, d)}`);
      // gemma-ts on the quantized file computes in f32 on the decoded weights: it must equal
      // llama.cpp on the decoded F32 file to the F32 tolerance ...
      const od = maxAbsDiff(ours, d);
      assert.ok(od < LLAMA_CPP_TOL, `${v} ${type}: max |gemma-ts - llama.cpp on decoded F32| = ${od}`);
      // ... and agree with llama.cpp on the quantized file like the line above.
      const oq = maxAbsDiff(ours, q);
      assert.ok(oq < ACT_QUANT_TOL, `${v} ${type}: max |gemma-ts - llama.cpp quantized| = ${oq}`);
      assert.ok(argmaxAgreement(ours, q) >= MIN_AGREEMENT, `${v} ${type}: gemma-ts / llama.cpp argmax agreement ${argmaxAgreement(ours, q)}`);
    }
  }
});

test('Q4_K / Q6_K / Q4_K_M files (hidden 256, real K-quant blocks) load in llama.cpp and agree with gemma-ts', async () => {
  const hf = path.join(out, 'synthetic');
  writeSyntheticModel(hf, 'bf16');
  const ids = [2, 17, 311, 5, 77, 201, 123, 9, 64, 250, 31, 7, 99, 180, 42, 3, 260, 11, 150, 77];
  for (const type of ['q4_k', 'q6_k', 'q4_k_m'] as const) {
    const file = path.join(out, `synthetic.${type}.gguf`);
    await quantizeModel(hf, file, { type });
    const kinds = new Set(readGGUF(file).tensors.map((t) => t.dtype));
    assert.ok(kinds.has(type === 'q6_k' ? 'q6_k' : 'q4_k'), `${type}: ${[...kinds].join(',')}`);
    const q = await withLlamaCpp(file, (evalLogits) => evalLogits(ids));
    const d = await withLlamaCpp(dequantizedCopy(file), (evalLogits) => evalLogits(ids));
    const ours = await ourLogits(file, ids);
    const od = maxAbsDiff(ours, d);
    assert.ok(od < LLAMA_CPP_TOL, `${type}: max |gemma-ts - llama.cpp on decoded F32| = ${od}`);
    const qd = maxAbsDiff(q, d);
    assert.ok(qd < ACT_QUANT_TOL, `${type}: max |llama.cpp quantized - decoded| = ${qd}`);
    assert.ok(argmaxAgreement(ours, q) >= MIN_AGREEMENT, `${type}: gemma-ts / llama.cpp argmax agreement ${argmaxAgreement(ours, q)}`);
  }
});

test('the demo model with its real tokenizer: llama.cpp tokenizes like gemma-ts and computes the same logits', async () => {
  const { loadTokenizer } = await import('../src/tokenizer/load.js');
  const demo = path.join(repoRoot(), 'models', 'demo');
  const file = path.join(out, 'demo.f32.gguf');
  const res = await convertToGGUF(demo, file, { type: 'f32' });
  assert.ok(!res.notices.some((n) => /placeholder/.test(n)), 'the demo tokenizer is written, not a placeholder');
  const tok = await loadTokenizer(demo);
  const l = await llama();
  const model = await l.loadModel({ modelPath: file });
  try {
    for (const text of ['Hello world', 'The quick brown fox, 123!', '  leading spaces\nnew line', 'Yes', 'ünïcödé 日本語 🙂', 'a<b>c</b> tab\there']) {
      assert.deepEqual(Array.from(model.tokenize(text)), tok.encode(text, { addBos: false }), JSON.stringify(text));
    }
    const md = model.fileInfo.metadata as unknown as { tokenizer: { chat_template?: string } };
    assert.equal(md.tokenizer.chat_template, tok.chatTemplate);
  } finally {
    await model.dispose();
  }
  const ids = tok.encode('Question: is the sky blue? Answer:');
  const theirs = await withLlamaCpp(file, (evalLogits) => evalLogits(ids));
  const ours = await ourLogits(file, ids);
  const d = maxAbsDiff(ours, theirs.map((r) => r.subarray(0, ours[0]!.length)));
  // The trained demo's logits reach |logit| ~20 (the goldens' stay under 10); llama.cpp's f16 GELU
  // table errs relative to the activations, so the bound scales with them.
  let top = 0;
  for (const r of ours) for (const v of r) top = Math.max(top, Math.abs(v));
  const tol = LLAMA_CPP_TOL * Math.max(1, top / 10);
  assert.ok(d < tol, `demo: max |gemma-ts - llama.cpp| = ${d} (max |logit| ${top}, tolerance ${tol})`);
});
