/**
 * The fuzz corpus in the suite: every committed input of every target (fuzz/corpus: seeds;
 * fuzz/crashes: inputs that once crashed a parser) ends in success or the target's typed error,
 * quickly; a short seeded campaign per target keeps the harness itself working; files declaring
 * absurd sizes (a 1 TB tensor, 10^9 vocabulary entries) are refused before anything is allocated.
 * The long campaign is `npm run fuzz` (bench/fuzz.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { FormatError, TokenizerError } from '../src/errors.js';
import { GGUFValueType, readGGUF, writeGGUF } from '../src/formats/gguf.js';
import { openSafetensors } from '../src/formats/safetensors.js';
import { tokenizerFromGGUFMetadata } from '../src/tokenizer/gguf-vocab.js';
import { tokenizerFromJsonFile, tokenizerFromModelFile } from '../src/tokenizer/load.js';
import { inputsFor } from './fuzz-inputs.js';
import { committedInputs, fuzzTargets, isAllowed, type FuzzTarget } from './fuzz-targets.js';
import { tmpDir } from './gguf-testutil.js';
import { repoRoot } from './helpers/paths.js';

const targets = fuzzTargets();
after(async () => {
  for (const t of targets) await t.close?.();
});

async function outcome(t: FuzzTarget, input: Uint8Array): Promise<{ ok: boolean; error?: unknown; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  let r: { ok: boolean; error?: unknown };
  try {
    await t.run(input);
    r = { ok: true };
  } catch (e) {
    r = { ok: isAllowed(t, e), error: e };
  }
  const c = process.cpuUsage(cpu0);
  return { ...r, cpuMs: (c.user + c.system) / 1000 };
}

for (const t of targets) {
  test(`fuzz corpus of ${t.name}: every committed input ends in success or ${t.allowed.map((c) => c.name).join(' / ') || 'a non-5xx answer'}`, async () => {
    const inputs = committedInputs(t.name);
    // The real spm_train models of the tokenizer tests too (the corpus seed is a small hand-made one).
    if (t.name === 'tokenizer-model') {
      const fixtures = path.join(repoRoot(), 'test', 'fixtures', 'tokenizer');
      for (const f of fs.readdirSync(fixtures).filter((x) => x.endsWith('.model'))) inputs.push({ file: path.join(fixtures, f), bytes: new Uint8Array(fs.readFileSync(path.join(fixtures, f))) });
    }
    assert.ok(inputs.some((i) => i.file.includes(`${path.sep}corpus${path.sep}`)), `fuzz/corpus/${t.name} has seeds`);
    for (const { file, bytes } of inputs) {
      const r = await outcome(t, bytes);
      assert.ok(r.ok, `${path.relative(repoRoot(), file)}: ${String((r.error as Error)?.stack ?? r.error)}`);
      assert.ok(r.cpuMs < 1000, `${file}: ${r.cpuMs.toFixed(0)} ms of CPU`);
    }
  });
}

test('a short seeded campaign per target (300 inputs each) finds nothing', async () => {
  for (const t of targets) {
    const seeds = committedInputs(t.name).filter((i) => i.file.includes(`${path.sep}corpus${path.sep}`)).map((i) => i.bytes);
    const result = await fc.check(
      fc.asyncProperty(inputsFor(t, seeds), async (input) => {
        const r = await outcome(t, input);
        if (!r.ok) throw r.error;
      }),
      { numRuns: 300, seed: 20261203 },
    );
    assert.ok(!result.failed, `${t.name}: ${String(result.errorInstance)} on ${JSON.stringify(Buffer.from((result.counterexample?.[0] as Uint8Array) ?? []).toString('latin1').slice(0, 200))}`);
  }
});

// ------------------------------------------------------------------ resource limits

const dir = tmpDir('gemma-limits-');
const TB = 1024 ** 4;

/** Run `fn`, which must throw `cls` with a message matching `re`, without allocating more than 64 MB. */
function refusedCheaply(fn: () => unknown, cls: new (...a: never[]) => Error, re: RegExp): void {
  const before = process.memoryUsage();
  assert.throws(fn, (e: unknown) => e instanceof cls && re.test((e as Error).message));
  const after = process.memoryUsage();
  const grew = after.arrayBuffers - before.arrayBuffers + Math.max(0, after.heapUsed - before.heapUsed);
  assert.ok(grew < 64 * 2 ** 20, `allocated ${(grew / 2 ** 20).toFixed(0)} MB before refusing`);
}

test('safetensors: a header declaring a 1 TB tensor is refused before allocation', () => {
  const f = path.join(dir, 'huge.safetensors');
  const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [TB / 4], data_offsets: [0, TB] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(f, Buffer.concat([len, header, Buffer.alloc(16)]));
  refusedCheaply(() => openSafetensors(f), FormatError, /outside the file/);
});

test('GGUF: a 1 TB tensor and a 10^9-entry vocabulary array are refused before allocation', () => {
  const f = path.join(dir, 'huge.gguf');
  writeGGUF(f, { metadata: [{ key: 'general.architecture', type: GGUFValueType.STRING, value: 'gemma' }], tensors: [{ name: 'w', dtype: 'f32', shape: [8], data: new Uint8Array(32) }] });
  // Patch the tensor's first dimension to 2^38 elements (1 TB of f32): the dims follow its name.
  const b = fs.readFileSync(f);
  const at = b.indexOf(Buffer.from('w')) + 1 + 4; // name, then n_dims (u32)
  b.writeBigUInt64LE(BigInt(TB / 4), at);
  fs.writeFileSync(f, b);
  refusedCheaply(() => readGGUF(f), FormatError, /lies outside the file/);

  // tokenizer.ggml.tokens declared with 10^9 strings in a small file.
  const g = path.join(dir, 'vocab.gguf');
  writeGGUF(g, { metadata: [{ key: 'tokenizer.ggml.tokens', type: { array: GGUFValueType.STRING }, value: ['a', 'b'] }], tensors: [] });
  const v = fs.readFileSync(g);
  const countAt = v.indexOf(Buffer.from('tokenizer.ggml.tokens')) + 'tokenizer.ggml.tokens'.length + 4 + 4; // key, value type, item type
  assert.equal(v.readBigUInt64LE(countAt), 2n);
  v.writeBigUInt64LE(1_000_000_000n, countAt);
  fs.writeFileSync(g, v);
  refusedCheaply(() => readGGUF(g), FormatError, /1000000000 .* cannot fit/);
  // And metadata that says 10^9 tokens without the array: nothing is sized from it.
  refusedCheaply(() => tokenizerFromGGUFMetadata(new Map<string, unknown>([['tokenizer.ggml.tokens', { length: 1e9 }]])), TokenizerError, /./);
});

test('tokenizer.json: an id of 10^9, or a few entries with huge ids, are refused before allocation', () => {
  const base = { model: { type: 'BPE', vocab: { a: 0, b: 1 } as Record<string, number>, merges: [] as string[] } };
  const f = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(f, JSON.stringify({ ...base, model: { ...base.model, vocab: { a: 0, b: 1_000_000_000 } } }));
  refusedCheaply(() => tokenizerFromJsonFile(f, {}), TokenizerError, /bad id/);
  fs.writeFileSync(f, JSON.stringify({ ...base, model: { ...base.model, vocab: { a: 0, b: 99_999_999 } } }));
  refusedCheaply(() => tokenizerFromJsonFile(f, {}), TokenizerError, /ids must be dense/);
  fs.writeFileSync(f, JSON.stringify({ ...base, added_tokens: [{ id: 50_000_000, content: '<x>', special: true }] }));
  refusedCheaply(() => tokenizerFromJsonFile(f, {}), TokenizerError, /ids must be dense/);
});

test('tokenizer.model: a trainer_spec claiming 10^9 pieces allocates nothing for them', () => {
  // The seed model with vocab_size (trainer field 4) = 10^9: the pieces listed are what counts.
  const seed = committedInputs('tokenizer-model').find((i) => i.file.includes(`${path.sep}corpus${path.sep}`))!.bytes;
  const f = path.join(dir, 'tokenizer.model');
  const b = Buffer.from(seed);
  const trainerAt = b.indexOf(Buffer.from([0x20, 11])); // field 4 varint = 11 pieces
  assert.ok(trainerAt > 0);
  const patched = Buffer.concat([b.subarray(0, trainerAt), Buffer.from([0x20, 0x80, 0x94, 0xeb, 0xdc, 0x03]), b.subarray(trainerAt + 2)]);
  // The trainer_spec's length prefix grows by 4 bytes.
  const lenAt = patched.lastIndexOf(0x12, trainerAt); // field 2, wire 2
  patched[lenAt + 1] = patched[lenAt + 1]! + 4;
  fs.writeFileSync(f, patched);
  const before = process.memoryUsage().arrayBuffers;
  const tok = tokenizerFromModelFile(f, {});
  assert.equal(tok.vocabSize, 11);
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 2 ** 20);
});
