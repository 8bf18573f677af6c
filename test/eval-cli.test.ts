/** `gemma eval` end to end on the demo model with harness YAML over local JSONL, resumption, and bad input. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { registerEvalCommand } from '../src/cli/eval.js';
import { runCli } from './helpers/cli.js';
import { repoRoot } from './helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-cli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const fixtures = path.join(repoRoot(), 'test/fixtures/eval');

const gemmaEval = async (argv: string[]) => {
  const r = await runCli(registerEvalCommand, ['eval', '--backend', 'js', ...argv]);
  return { ...r, error: r.error as Error | undefined };
};

const readJson = (f: string): Record<string, any> => JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, any>;

test('multiple choice + generation tasks: results.json in the harness shape, samples, table', async () => {
  const out = path.join(tmp, 'run1');
  const r = await gemmaEval(['--model', 'demo', '--tasks', `${fixtures}/arith.yaml,${fixtures}/arith_gen.yaml`, '--output-path', out, '--log-samples', '--batch-size', '2']);
  assert.equal(r.error, undefined, r.error?.message);
  const res = readJson(path.join(out, 'results.json'));
  const mc = res.results.demo_arith;
  assert.equal(typeof mc['acc,none'], 'number');
  assert.ok(mc['acc,none'] >= 0 && mc['acc,none'] <= 1);
  assert.equal(typeof mc['acc_stderr,none'], 'number');
  assert.equal(typeof mc['acc_norm,none'], 'number');
  assert.equal(typeof res.results.demo_arith_gen['exact_match,strict-match'], 'number');
  assert.equal(typeof res.results.demo_arith_gen['exact_match,flexible-extract'], 'number');
  assert.deepEqual(res['n-shot'], { demo_arith: 0, demo_arith_gen: 0 });
  assert.deepEqual(res['n-samples'].demo_arith, { original: 3, effective: 3 });
  assert.equal(res.versions.demo_arith, 1);
  assert.deepEqual(res.higher_is_better.demo_arith, { acc: true, acc_norm: true });
  assert.equal(res.configs.demo_arith.output_type, 'multiple_choice');
  assert.equal(typeof res.config.model, 'string');
  assert.equal(typeof res.date, 'number');
  // samples: one line per document (and filter); lls of each choice, the metric
  const lines = fs.readFileSync(path.join(out, 'samples_demo_arith.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.equal(lines[0].arguments.gen_args_0.arg_0, 'Question: What is 1 + 2?\nAnswer:');
  assert.equal(lines[0].arguments.gen_args_3.arg_1, ' 12');
  assert.equal(lines[0].resps.length, 4);
  const lls = lines.map((l: any) => l.resps.map((x: any) => x[0][0]));
  // acc recomputed from the logged loglikelihoods
  const acc = lines.reduce((s: number, l: any, i: number) => s + (lls[i].indexOf(Math.max(...lls[i])) === l.target ? 1 : 0), 0) / 3;
  assert.equal(acc, mc['acc,none']);
  const gen = fs.readFileSync(path.join(out, 'samples_demo_arith_gen.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(gen.length, 6); // 3 documents x 2 filters
  assert.match(r.stdout, /\|Tasks\s*\|Version\|Filter\s*\|n-shot\|Metric/);
  assert.match(r.stdout, /demo_arith\s*\|\s*1\|none/);

  // Resumable: a second run takes every request from the cache and gives the same numbers.
  const cacheLines = fs.readFileSync(path.join(out, '.request-cache.jsonl'), 'utf8').trim().split('\n').length;
  assert.equal(cacheLines, 12 + 3);
  const r2 = await gemmaEval(['--model', 'demo', '--tasks', `${fixtures}/arith.yaml,${fixtures}/arith_gen.yaml`, '--output-path', out]);
  assert.equal(r2.error, undefined);
  assert.equal(fs.readFileSync(path.join(out, '.request-cache.jsonl'), 'utf8').trim().split('\n').length, cacheLines);
  const res2 = readJson(path.join(out, 'results.json'));
  assert.deepEqual(res2.results, res.results);
});

function writeTask(name: string, yaml: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(fixtures, 'arith.jsonl'), path.join(dir, 'arith.jsonl'));
  fs.writeFileSync(path.join(dir, 'task.yaml'), yaml);
  return path.join(dir, 'task.yaml');
}

const base = `task: bad
dataset_path: json
dataset_kwargs: {data_files: {test: arith.jsonl}}
output_type: multiple_choice
doc_to_text: "{{a}} + {{b}} ="
doc_to_choice: "{{choices}}"
doc_to_target: label
`;

test('bad input: one line naming the task and field; the good task\'s results are kept', async () => {
  const cases: Array<[string, string, RegExp]> = [
    ['unknown-key', base + 'doc_to_txet: x\n', /^task "bad", doc_to_txet: unknown key/],
    ['output-type', base.replace('multiple_choice', 'multiple_guess'), /^task "bad", output_type: unsupported output_type "multiple_guess"/],
    ['missing-field', base.replace('doc_to_target: label\n', ''), /^task "bad", doc_to_target: missing/],
    ['missing-column', base.replace('{{b}}', '{{c}}'), /^task "bad", doc_to_text: the dataset has no column "c"/],
    ['missing-column-field', base.replace('doc_to_choice: "{{choices}}"', 'doc_to_choice: options'), /^task "bad", doc_to_choice: the dataset has no column "options"/],
    ['python-hook', base + 'process_docs: !function utils.my_filter\n', /^task "bad", process_docs: !function utils.my_filter .* is Python/],
    ['hub', base.replace('dataset_path: json', 'dataset_path: nobody/no-such-dataset'), /^task "bad", dataset_path: Hub dataset nobody\/no-such-dataset .*cannot reach the Hugging Face Hub/],
  ];
  const saved = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = 'http://127.0.0.1:9'; // nothing listens on the discard port
  try {
    for (const [name, yaml, re] of cases) {
      const file = writeTask(name, yaml);
      const out = path.join(tmp, `out-${name}`);
      const r = await gemmaEval(['--model', 'demo', '--tasks', `${file},${fixtures}/arith.yaml`, '--output-path', out, '--limit', '1', '--no-cache']);
      assert.ok(r.error, `${name}: no error`);
      assert.match(r.error!.message, re, name);
      assert.ok(!r.error!.message.includes('\n'), `${name}: one line`);
      const res = readJson(path.join(out, 'results.json'));
      assert.equal(typeof res.results.demo_arith['acc,none'], 'number', `${name}: partial results kept`);
      assert.equal(res.errors.length, 1);
    }
  } finally {
    if (saved === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = saved;
  }
});
