/** `gemma sae features|explain|eval` on the golden checkpoints and the demo model. */
import assert from 'node:assert/strict';
import { encodeChat } from '../src/tokenizer/chat.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { runCli } from './helpers/cli.js';
import { addSteeringOptions, registerSaeCommands, steeringHooksFromCli, type SteeringFlags } from '../src/cli/sae.js';
import { ModelError, UsageError } from '../src/errors.js';
import { randomSae, saeArrays, writeNpz } from './helpers/npz-writer.js';
import { goldenDir, readGolden, repoRoot } from './helpers/paths.js';

/** The demo model's residual stream width (its config.json hidden_size). */
const demoHidden = (): number => (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'models', 'demo', 'config.json'), 'utf8')) as { hidden_size: number }).hidden_size;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sae-cli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const sae = (argv: string[]) => runCli(registerSaeCommands, ['sae', ...argv]);

const golden = (v: string) => path.join(goldenDir(), v);
const fixtureRes = path.join(repoRoot(), 'test/fixtures/sae/gemma-scope-tiny-pt-res/layer_1/width_48/average_l0_5/params.npz');

test('sae features --ids --json: the exact contract, values from the golden residual stream', async () => {
  const g = readGolden('gemma3').hidden_states;
  const r = await sae(['features', '--model', golden('gemma3'), '--sae', fixtureRes, '--ids', g.input_ids.join(','), '--top', '5', '--json']);
  assert.equal(r.error, undefined, String(r.error));
  const lines = r.stdout.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, 'one JSON line');
  const out = JSON.parse(lines[0]!) as { tokens: Array<{ id: number; features: Array<{ index: number; value: number }> }> };
  assert.deepEqual(Object.keys(out), ['tokens']);
  assert.deepEqual(out.tokens.map((t) => t.id), g.input_ids);
  out.tokens.forEach((tok, t) => {
    assert.deepEqual(Object.keys(tok), ['id', 'features']);
    const x = g.layers[1]![t]!;
    const want: Array<{ index: number; value: number }> = [];
    for (let j = 0; j < 48; j++) {
      let pre = Math.fround(0.05 * Math.sin(j));
      for (let i = 0; i < 64; i++) pre += x[i]! * Math.fround(0.3 * Math.sin(0.37 * i + 0.11 * j + 0.5));
      if (pre > Math.fround(0.1 + 0.01 * (j % 7))) want.push({ index: j, value: pre });
    }
    want.sort((a, b) => b.value - a.value);
    assert.deepEqual(tok.features.map((f) => f.index), want.slice(0, 5).map((f) => f.index), `token ${t}`);
    tok.features.forEach((f, k) => {
      assert.deepEqual(Object.keys(f), ['index', 'value']);
      assert.ok(Math.abs(f.value - want[k]!.value) < 1e-3);
    });
  });
  const human = await sae(['features', '--model', golden('gemma3'), '--sae', fixtureRes, '--ids', '2,17,311']);
  assert.equal(human.error, undefined, String(human.error));
  assert.match(human.stdout, /^blocks\.1\.hook_resid_post: 48 features, d_in 64\n/);
  assert.equal(human.stdout.trim().split('\n').length, 4);
});

test('sae features: usage errors and a d_in that does not fit the hook point', async () => {
  const both = await sae(['features', '--model', golden('gemma3'), '--sae', fixtureRes, '--ids', '2,5', '--prompt', 'hi']);
  assert.ok(both.error instanceof UsageError);
  const noTok = await sae(['features', '--model', golden('gemma3'), '--sae', fixtureRes, '--prompt', 'hi']);
  assert.ok(noTok.error instanceof UsageError && /no tokenizer/.test(noTok.error.message));
  const badId = await sae(['features', '--model', golden('gemma3'), '--sae', fixtureRes, '--ids', '2,9999']);
  assert.ok(badId.error instanceof UsageError);
  const att = await sae(['features', '--model', golden('gemma3'), '--sae', fixtureRes, '--hook', 'blocks.1.attn.hook_z', '--ids', '2,5']);
  assert.ok(att.error instanceof ModelError && /d_in is 64/.test(att.error.message), String(att.error));
  const plain = path.join(tmp, 'plain.npz');
  writeNpz(plain, saeArrays(randomSae(64, 8, 2)));
  const noHook = await sae(['features', '--model', golden('gemma3'), '--sae', plain, '--ids', '2,5']);
  assert.ok(noHook.error instanceof UsageError && /--hook/.test(noHook.error.message));
  const withHook = await sae(['features', '--model', golden('gemma3'), '--sae', plain, '--hook', 'blocks.0.hook_mlp_out', '--ids', '2,5', '--json']);
  assert.equal(withHook.error, undefined, String(withHook.error));
});

test('sae features --prompt on the demo model (real tokenizer)', async () => {
  const file = path.join(tmp, 'demo-sae.npz');
  writeNpz(file, saeArrays(randomSae(demoHidden(), 64, 3)));
  const r = await sae(['features', '--model', 'demo', '--sae', file, '--hook', 'blocks.2.hook_resid_post', '--prompt', 'The cat sat on the mat.', '--json', '--top', '3']);
  assert.equal(r.error, undefined, String(r.error));
  const out = JSON.parse(r.stdout) as { tokens: Array<{ id: number; features: unknown[] }> };
  assert.equal(out.tokens[0]!.id, 2, 'starts with <bos>');
  assert.ok(out.tokens.length > 3);
  assert.ok(out.tokens.every((t) => t.features.length <= 3));
  const human = await sae(['features', '--model', 'demo', '--sae', file, '--hook', 'blocks.2.hook_resid_post', '--prompt', 'The cat']);
  assert.match(human.stdout, /"<bos>"/);
  // --chat: the prompt as an -it model sees it (the chat template's user and model turns)
  const chat = await sae(['features', '--model', 'demo', '--sae', file, '--hook', 'blocks.2.hook_resid_post', '--prompt', 'The cat', '--chat', '--system', 'Be brief.', '--json']);
  assert.equal(chat.error, undefined, String(chat.error));
  const { loadModel } = await import('../src/model/load.js');
  const { tokenizer } = await loadModel('demo', { backend: 'js' });
  const want = encodeChat(tokenizer!, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'The cat' }], { addGenerationPrompt: true });
  assert.deepEqual((JSON.parse(chat.stdout) as { tokens: Array<{ id: number }> }).tokens.map((t) => t.id), want);
  const bad = await sae(['features', '--model', 'demo', '--sae', file, '--hook', 'blocks.2.hook_resid_post', '--ids', '2,5', '--chat']);
  assert.match(String(bad.error), /--chat/);
});

test('sae eval and explain on a JSONL corpus', async () => {
  const corpus = path.join(tmp, 'corpus.jsonl');
  const seqs = readGolden('gemma2').sequences.filter((s) => s.input_ids.length > 1);
  fs.writeFileSync(corpus, seqs.map((s) => JSON.stringify({ ids: s.input_ids })).join('\n') + '\n');
  // Exact reconstruction: W_enc = [I, -I], W_dec = [I; -I], zero thresholds.
  const d = 64;
  const wEnc = new Float32Array(d * 2 * d);
  const wDec = new Float32Array(2 * d * d);
  for (let i = 0; i < d; i++) {
    wEnc[i * 2 * d + i] = 1;
    wEnc[i * 2 * d + d + i] = -1;
    wDec[i * d + i] = 1;
    wDec[(d + i) * d + i] = -1;
  }
  const dir = path.join(tmp, 'gemma-scope-x-pt-mlp', 'layer_2', 'width_128', 'average_l0_64');
  fs.mkdirSync(dir, { recursive: true });
  writeNpz(path.join(dir, 'params.npz'), saeArrays({ dIn: d, dSae: 2 * d, wEnc, wDec, bEnc: new Float32Array(2 * d), bDec: new Float32Array(d), threshold: new Float32Array(2 * d) }), { deflate: true });
  const densityFile = path.join(tmp, 'density.json');
  const r = await sae(['eval', '--model', golden('gemma2'), '--sae', dir, '--corpus', corpus, '--json', '--density', densityFile]);
  assert.equal(r.error, undefined, String(r.error));
  const m = JSON.parse(r.stdout) as Record<string, number | string>;
  assert.equal(m.hook, 'blocks.2.hook_mlp_out');
  assert.ok((m.fvu as number) < 1e-10);
  assert.ok(Math.abs(m.delta_loss as number) < 1e-5);
  assert.equal(m.tokens, seqs.reduce((a, s) => a + s.input_ids.length - 1, 0));
  const dens = JSON.parse(fs.readFileSync(densityFile, 'utf8')) as { density: number[] };
  assert.equal(dens.density.length, 128);
  // Each coordinate is positive or negative: feature i and d + i split the tokens between them.
  for (let i = 0; i < d; i++) assert.ok(Math.abs(dens.density[i]! + dens.density[d + i]! - 1) < 1e-6, `coordinate ${i}`);
  const human = await sae(['eval', '--model', golden('gemma2'), '--sae', dir, '--corpus', corpus, '--no-zero-ablation']);
  assert.match(human.stdout, /FVU\s+0\.00000/);
  assert.doesNotMatch(human.stdout, /CE loss score/);

  const ex = await sae(['explain', '--model', golden('gemma2'), '--sae', fixtureRes, '--feature', '3', '--corpus', corpus, '--contexts', '2', '--top', '4', '--json']);
  assert.equal(ex.error, undefined, String(ex.error));
  const e = JSON.parse(ex.stdout) as { feature: number; hook: string; logit_lens: { positive: unknown[]; negative: unknown[] }; contexts: unknown[]; density: number };
  assert.equal(e.feature, 3);
  assert.equal(e.logit_lens.positive.length, 4);
  assert.equal(e.logit_lens.negative.length, 4);
  assert.ok(e.contexts.length >= 1 && e.contexts.length <= 2);
  assert.ok(e.density > 0 && e.density <= 1);
  const exHuman = await sae(['explain', '--model', golden('gemma2'), '--sae', fixtureRes, '--feature', '3']);
  assert.match(exHuman.stdout, /logit lens, promoted:/);
  const badF = await sae(['explain', '--model', golden('gemma2'), '--sae', fixtureRes, '--feature', '48']);
  assert.ok(badF.error instanceof UsageError && /48 features/.test(badF.error.message));
  const noCorpus = await sae(['eval', '--model', golden('gemma2'), '--sae', fixtureRes, '--corpus', path.join(tmp, 'missing.jsonl')]);
  assert.ok(noCorpus.error instanceof UsageError);
  const badLine = path.join(tmp, 'bad.jsonl');
  fs.writeFileSync(badLine, '{"ids": [2, 5]}\n{oops\n');
  const bl = await sae(['eval', '--model', golden('gemma2'), '--sae', fixtureRes, '--corpus', badLine]);
  assert.ok(bl.error instanceof UsageError && /bad\.jsonl:2/.test(bl.error.message));
  const textCorpus = path.join(tmp, 'corpus.txt');
  fs.writeFileSync(textCorpus, 'plain text needs a tokenizer');
  const tc = await sae(['eval', '--model', golden('gemma2'), '--sae', fixtureRes, '--corpus', textCorpus]);
  assert.ok(tc.error instanceof UsageError && /no tokenizer/.test(tc.error.message));
});

test('sae explain --corpus with a text file on the demo model', async () => {
  const file = path.join(tmp, 'demo-explain.npz');
  writeNpz(file, saeArrays(randomSae(demoHidden(), 32, 9)));
  const text = path.join(tmp, 'book.txt');
  fs.writeFileSync(text, 'Once upon a time there was a cat.\n\nThe cat liked to sit on the mat in the sun.\n\nOne day the cat saw a dog.');
  const r = await sae(['explain', '--model', 'demo', '--sae', file, '--hook', 'blocks.1.hook_resid_post', '--feature', '1', '--corpus', text, '--ctx', '8']);
  assert.equal(r.error, undefined, String(r.error));
  assert.match(r.stdout, /feature 1 of 32 at blocks\.1\.hook_resid_post/);
  assert.match(r.stdout, /density [\d.]+% of \d+ tokens/);
});

test('addSteeringOptions + steeringHooksFromCli: repeatable --steer/--clamp flags for run and chat', async () => {
  const { loadModel } = await import('../src/model/load.js');
  const { generateText } = await import('../src/generate/generate.js');
  const { model } = await loadModel(golden('gemma3'));
  const file = path.join(tmp, 'steer.npz');
  writeNpz(file, saeArrays(randomSae(64, 16, 12)));
  const prompt = readGolden('gemma3').hidden_states.input_ids;
  const outputs: number[][] = [];
  const program = new Command().exitOverride();
  const cmd = program.command('gen');
  addSteeringOptions(cmd);
  cmd.action(async (flags: SteeringFlags) => {
    const hooks = await steeringHooksFromCli(model, flags);
    const r = await generateText(model, undefined, prompt, { maxTokens: 10, temperature: 0, ignoreEos: true, ...(hooks ? { hooks } : {}) });
    outputs.push(r.ids);
  });
  await program.parseAsync(['gen'], { from: 'user' });
  await program.parseAsync(['gen', '--steer', `${file}:3:0`, '--sae-hook', 'blocks.1.hook_resid_post'], { from: 'user' });
  await program.parseAsync(['gen', '--steer', `${file}:3:60`, '--steer', `${file}:5:-30`, '--clamp', `${file}:7:4`, '--sae-hook', 'blocks.1.hook_resid_post'], { from: 'user' });
  assert.deepEqual(outputs[1], outputs[0], 'c = 0 leaves the output identical');
  assert.notDeepEqual(outputs[2], outputs[0], 'steering changes the output');
  await assert.rejects(program.parseAsync(['gen', '--steer', `${file}:3:1`], { from: 'user' }), (e: Error) => e instanceof UsageError && /--hook|hook point/.test(e.message));
  model.dispose();
});
