/**
 * End to end on the demo model: `gemma eval --apply-chat-template` with a harness YAML over local
 * JSONL (test/fixtures/eval/demo_chat_arith*.yaml), asked as the demo's chats ask arithmetic. The
 * assertions hold for any demo weights worth shipping: the shape of results.json and the samples,
 * metrics in [0, 1], the table; and the skill thresholds below, which the demo's trainer sets from
 * the final model (models/demo/README.md gives its held-out scores).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { registerEvalCommand } from '../src/cli/eval.js';
import { runCli } from './helpers/cli.js';
import { repoRoot } from './helpers/paths.js';

/** Least share of answers that hold a number (the demo answers arithmetic with a bare number). */
const MIN_NUMERIC_ANSWERS = 0.9;
/**
 * Least exact-match rate and multiple-choice accuracy on the 8 questions: the trained demo scores
 * 8 / 8 on both (its held-out arithmetic is 400 / 400; models/demo/README.md).
 */
const MIN_EXACT_MATCH = 0.75;
const MIN_MC_ACC = 0.75;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-demo-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const fixtures = path.join(repoRoot(), 'test/fixtures/eval');

test('gemma eval --model demo --apply-chat-template: arithmetic as generation and as multiple choice', async () => {
  const out = path.join(tmp, 'out');
  const r = await runCli(registerEvalCommand, [
    'eval', '--backend', 'js', '--model', 'demo', '--apply-chat-template', '--batch-size', '8', '--log-samples', '--no-cache',
    '--tasks', `${fixtures}/demo_chat_arith.yaml,${fixtures}/demo_chat_arith_mc.yaml`, '--output-path', out,
  ]);
  assert.equal(r.error, undefined, String(r.error));
  const res = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  const gen = res.results.demo_chat_arith;
  const mc = res.results.demo_chat_arith_mc;
  const em = gen['exact_match,get-answer'];
  const acc = mc['acc,none'];
  for (const v of [em, acc]) assert.ok(typeof v === 'number' && v >= 0 && v <= 1, String(v));
  assert.equal(typeof gen['exact_match_stderr,get-answer'], 'number');
  assert.deepEqual(res['n-samples'].demo_chat_arith, { original: 8, effective: 8 });
  assert.equal(res.fewshot_as_multiturn, true);
  assert.match(r.stdout, /demo_chat_arith_mc\s*\|\s*1\|none\s*\|\s*0\|acc/);

  const samples = fs.readFileSync(path.join(out, 'samples_demo_chat_arith.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(samples.length, 8);
  // the prompt is the demo's chat template around the question
  assert.match(samples[0].arguments.gen_args_0.arg_0, /^<bos><start_of_turn>user\nWhat is \d+ [+-] \d+\?<end_of_turn>\n<start_of_turn>model\n$/);
  const raw: string[] = samples.map((s: { resps: string[][] }) => s.resps[0]![0]!);
  const numeric = raw.filter((t) => /-?\d+/.test(t)).length / raw.length;
  assert.ok(numeric >= MIN_NUMERIC_ANSWERS, `${numeric} of the answers hold a number: ${JSON.stringify(raw)}`);
  // exact match recomputed from the logged answers and targets
  const hits = samples.filter((s: { filtered_resps: string[]; target: string }) => s.filtered_resps[0] === s.target).length;
  assert.equal(em, hits / 8);
  assert.ok(em >= MIN_EXACT_MATCH, `exact match ${em}`);
  assert.ok(acc >= MIN_MC_ACC, `multiple-choice accuracy ${acc}`);
  const mcSamples = fs.readFileSync(path.join(out, 'samples_demo_chat_arith_mc.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  // under the chat template the choice follows the model turn directly (no target delimiter)
  assert.match(mcSamples[0].arguments.gen_args_0.arg_1, /^-?\d+$/);
});
