/** `gemma tokenize` / `gemma detokenize`, driven through commander as the CLI does. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { TokenizerLoader } from '@lenml/tokenizers';
import { UsageError } from '../src/errors.js';
import { registerTokenizeCommands } from '../src/cli/tokenize.js';
import { realTokenizerDir, repoRoot } from './tokenizer-corpus.js';

async function run(args: string[]): Promise<string> {
  let out = '';
  const program = new Command().exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
  registerTokenizeCommands(program, { write: (s) => (out += s) });
  await program.parseAsync(args, { from: 'user' });
  return out;
}

/** Same, capturing real process.stdout (the default writer). */
async function runStdout(args: string[]): Promise<string> {
  let out = '';
  const program = new Command().exitOverride();
  registerTokenizeCommands(program);
  const orig = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = orig;
  }
  return out;
}

const gemini = realTokenizerDir('gemini');
const spmModel = path.join(repoRoot(), 'test/fixtures/tokenizer/spm-bpe.model');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-cli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

interface Ref {
  encode(text: string, opts?: { add_special_tokens: boolean }): number[];
  model: { tokens_to_ids: Map<string, number> };
}

test('tokenize --text prints the ids (comma-separated), as transformers.js computes them', async () => {
  const ref = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(gemini, 'tokenizer.json'), 'utf8')),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(gemini, 'tokenizer_config.json'), 'utf8')),
  } as never) as unknown as Ref;
  const text = 'Hello <start_of_turn>world\t\t  123 🌊';
  const parsed = Array.from(ref.encode(text)); // transformers.js parses specials and adds <bos>
  assert.equal(await runStdout(['tokenize', '--tokenizer', gemini, '--text', text, '--parse-special']), parsed.join(',') + '\n');
  const noBos = (await run(['tokenize', '--tokenizer', gemini, '--text', 'plain text 42', '--no-bos'])).trim();
  assert.equal(noBos, Array.from(ref.encode('plain text 42', { add_special_tokens: false })).join(','));
  // Without --parse-special the special-token text stays text.
  const plain = (await run(['tokenize', '--tokenizer', gemini, '--text', '<start_of_turn>'])).trim().split(',').map(Number);
  const sot = ref.model.tokens_to_ids.get('<start_of_turn>')!;
  assert.ok(parsed.includes(sot));
  assert.ok(!plain.includes(sot), '<start_of_turn> must not come from plain text');
  const ids = parsed.join(',');
  assert.equal(await run(['detokenize', '--tokenizer', gemini, '--ids', ids]), '<bos>' + text + '\n');
  assert.equal(await run(['detokenize', '--tokenizer', gemini, '--ids', ids, '--skip-special']), text.replace('<start_of_turn>', '') + '\n');
});

test('tokenize --input FILE.jsonl gives one {"ids": [...]} line per input line', async () => {
  const file = path.join(tmp, 'in.jsonl');
  const texts = ['first line', 'second\nwith newline', '', '日本語'];
  fs.writeFileSync(file, texts.map((t) => JSON.stringify({ text: t })).join('\n') + '\n\n');
  const out = await run(['tokenize', '--tokenizer', spmModel, '--input', file, '--no-bos']);
  const lines = out.trimEnd().split('\n');
  assert.equal(lines.length, texts.length);
  const ids = lines.map((l) => (JSON.parse(l) as { ids: number[] }).ids);
  for (let i = 0; i < texts.length; i++) {
    const single = (await run(['tokenize', '--tokenizer', spmModel, '--text', texts[i]!, '--no-bos'])).trim();
    assert.equal(ids[i]!.join(','), single);
  }
  assert.deepEqual(ids[2], []);
  // spm_encode agrees on a line when it is installed.
  if (spawnSync('spm_encode', ['--help'], { stdio: 'ignore' }).error === undefined) {
    const f = path.join(tmp, 'one.txt');
    fs.writeFileSync(f, 'first line\n');
    assert.equal(execFileSync('spm_encode', [`--model=${spmModel}`, '--output_format=id', f]).toString().trim(), ids[0]!.join(' '));
  }
});

test('bad usage: typed errors naming the problem', async () => {
  await assert.rejects(run(['tokenize', '--tokenizer', spmModel]), (e: unknown) => e instanceof UsageError && /exactly one of --text or --input/.test((e as Error).message));
  await assert.rejects(run(['tokenize', '--tokenizer', spmModel, '--text', 'a', '--input', 'x.jsonl']), UsageError);
  await assert.rejects(run(['tokenize', '--text', 'a']), /required option '--tokenizer <path>'/);
  await assert.rejects(run(['detokenize', '--tokenizer', spmModel, '--ids', '2,abc']), (e: unknown) => e instanceof UsageError && /"abc" is not a token id/.test((e as Error).message));
  await assert.rejects(run(['detokenize', '--tokenizer', spmModel, '--ids', '2,99999']), /token id 99999 is out of range/);
  const bad = path.join(tmp, 'bad.jsonl');
  fs.writeFileSync(bad, '{"text": "ok"}\n{"txt": 1}\n');
  await assert.rejects(run(['tokenize', '--tokenizer', spmModel, '--input', bad]), /bad\.jsonl:2 has no string "text" field/);
  fs.writeFileSync(bad, '{"text": "ok"\n');
  await assert.rejects(run(['tokenize', '--tokenizer', spmModel, '--input', bad]), /bad\.jsonl:1 is not valid JSON/);
  await assert.rejects(run(['tokenize', '--tokenizer', path.join(tmp, 'nope'), '--text', 'x']), /does not exist/);
});

test('gemma tokenize --parse-special on a text beginning with <bos>: two BOS ids on stdout (as transformers.js), the notice on stderr', () => {
  const ref = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(gemini, 'tokenizer.json'), 'utf8')),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(gemini, 'tokenizer_config.json'), 'utf8')),
  } as never) as unknown as Ref;
  const text = '<bos><start_of_turn>user\nHi';
  const bin = path.join(repoRoot(), 'bin', 'gemma.js');
  const r = spawnSync(process.execPath, [bin, 'tokenize', '--tokenizer', gemini, '--text', text, '--parse-special'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split(',').map(Number), Array.from(ref.encode(text)));
  assert.equal(r.stdout.trim().split(',').slice(0, 2).join(','), '2,2');
  assert.match(r.stderr, /^note: .*2 BOS tokens/m);
  // --no-bos: the text's own <bos> only, and nothing to warn about.
  const nob = spawnSync(process.execPath, [bin, 'tokenize', '--tokenizer', gemini, '--text', text, '--parse-special', '--no-bos'], { encoding: 'utf8' });
  assert.equal(nob.stdout.trim(), r.stdout.trim().split(',').slice(1).join(','));
  assert.equal(nob.stderr, '');
});
