/**
 * Built-in tasks render byte for byte as lm-evaluation-harness renders them: the fixture
 * (test/fixtures/eval/rendered.json) was made by scripts/eval-fixtures.py with Python's jinja2 from
 * the harness's own YAMLs and hooks.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BUILTIN_TASK_FILES } from '../src/eval/builtin.js';
import { TaskRegistry } from '../src/eval/registry.js';
import { Task } from '../src/eval/task.js';
import { repoRoot } from './helpers/paths.js';

interface Fixture {
  task: string;
  num_fewshot: number;
  docs: Array<Record<string, unknown>>;
  fewshot_docs: Array<Record<string, unknown>>;
  rendered: Array<{ contexts: string[]; continuations: string[] }>;
}

const { fixtures } = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'test/fixtures/eval/rendered.json'), 'utf8')) as { fixtures: Fixture[] };

test('every built-in task name resolves (mmlu and its 57 subjects, safety tasks)', () => {
  const r = new TaskRegistry();
  r.addFiles(BUILTIN_TASK_FILES);
  const res = r.resolve(['mmlu', 'hellaswag', 'arc_easy', 'arc_challenge', 'piqa', 'boolq', 'winogrande', 'gsm8k', 'truthfulqa_mc1', 'truthfulqa_mc2', 'lambada_openai', 'wikitext', 'crows_pairs', 'winogender', 'toxigen', 'bbq', 'bbq_generate', 'realtoxicityprompts', 'realtoxicityprompts_shieldgemma']);
  assert.deepEqual(res.errors, []);
  assert.equal(res.tasks.filter((t) => t.task.startsWith('mmlu_')).length, 57);
  assert.ok(res.tasks.some((t) => t.task === 'crows_pairs_french_age'));
  assert.equal(res.groups.find((g) => g.name === 'mmlu')?.children.length, 4);
});

for (const fx of fixtures) {
  test(`${fx.task} (${fx.num_fewshot}-shot) renders as the harness`, async () => {
    const r = new TaskRegistry();
    r.addFiles(BUILTIN_TASK_FILES);
    const res = r.resolve([fx.task]);
    assert.deepEqual(res.errors, []);
    const task = new Task(res.tasks[0]!);
    task.useDocs(fx.docs, fx.fewshot_docs);
    // process_docs may drop documents (bbq_ambig): the harness rendered the ones it kept.
    assert.equal(task.docs.length, fx.rendered.length);
    fx.rendered.forEach((_, i) => {
      const doc = task.docs[i]!;
      const ctx = task.outputType === 'loglikelihood_rolling' ? '' : task.fewshotContext(doc, { numFewshot: fx.num_fewshot });
      const reqs = task.buildRequests(doc, i, ctx, { numFewshot: fx.num_fewshot });
      const want = fx.rendered[i]!;
      const contexts = reqs.map((q) => (q.type === 'loglikelihood_rolling' ? '' : q.context));
      const continuations = reqs.flatMap((q) => (q.type === 'loglikelihood' ? [q.continuation] : q.type === 'loglikelihood_rolling' ? [q.text] : []));
      assert.deepEqual(contexts, want.contexts);
      assert.deepEqual(continuations, want.continuations);
    });
  });
}
