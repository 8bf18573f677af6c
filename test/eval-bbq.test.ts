/**
 * bbq's metrics equal the harness's: test/fixtures/eval/bbq-metrics.json holds the per-document
 * values and the aggregations that its own utils.py computes (scripts/eval-fixtures.py) for fixed
 * loglikelihoods (multiple choice) and fixed generations (generate_until). Rendering is checked
 * with the other built-in tasks in eval-builtin.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BUILTIN_TASK_FILES } from '../src/eval/builtin.js';
import { evaluate } from '../src/eval/evaluate.js';
import type { EvalLM, GenerationRequest, LoglikelihoodRequest } from '../src/eval/lm.js';
import { TaskRegistry } from '../src/eval/registry.js';
import { Task } from '../src/eval/task.js';
import { repoRoot } from './helpers/paths.js';

interface Side {
  per_doc: Array<Record<string, number | Array<number | null>>>;
  aggregated: Record<string, number | null>;
}
const fx = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'test/fixtures/eval/bbq-metrics.json'), 'utf8')) as {
  docs: Array<Record<string, unknown>>;
  lls: number[][];
  generations: string[];
  multiple_choice: Side;
  generate_until: Side;
};

function task(name: string): Task {
  const r = new TaskRegistry();
  r.addFiles(BUILTIN_TASK_FILES);
  const res = r.resolve([name]);
  assert.deepEqual(res.errors, []);
  const t = new Task(res.tasks[0]!);
  t.useDocs(fx.docs);
  return t;
}

/** A model whose answers are the fixture's: the i-th choice of document g gets lls[g][i]; generations in document order. */
function fixtureLM(): EvalLM {
  return {
    id: 'fixture',
    loglikelihood: async (reqs: LoglikelihoodRequest[]) => {
      const seen = new Map<number, number>();
      return reqs.map((r) => {
        const k = seen.get(r.group!) ?? 0;
        seen.set(r.group!, k + 1);
        return [fx.lls[r.group!]![k]!, false] as [number, boolean];
      });
    },
    loglikelihoodRolling: async () => {
      throw new Error('unused');
    },
    generateUntil: async (reqs: GenerationRequest[]) => reqs.map((_, i) => fx.generations[i]!),
  };
}

const same = (got: unknown, want: unknown, where: string): void => {
  if (want === null) assert.ok(typeof got === 'number' && Number.isNaN(got), `${where}: ${String(got)} should be NaN`);
  else if (Array.isArray(want)) {
    assert.ok(Array.isArray(got), where);
    want.forEach((w, i) => same((got as unknown[])[i], w, `${where}[${i}]`));
  } else assert.ok(Math.abs((got as number) - (want as number)) < 1e-12, `${where}: ${String(got)} != ${String(want)}`);
};

for (const [name, side] of [
  ['bbq', 'multiple_choice'],
  ['bbq_generate', 'generate_until'],
] as const) {
  test(`${name}: per-document values and aggregations equal the harness's utils.py`, async () => {
    const want = fx[side];
    const t = task(name);
    t.docs.forEach((doc, i) => {
      const results = side === 'multiple_choice' ? fx.lls[i]!.map((ll) => [ll, false] as [number, boolean]) : [fx.generations[i]!];
      const got = t.processResults(doc, results);
      assert.deepEqual(Object.keys(got).sort(), Object.keys(want.per_doc[i]!).sort());
      for (const [k, v] of Object.entries(want.per_doc[i]!)) same(got[k], v, `doc ${i} ${k}`);
    });
    const res = await evaluate(fixtureLM(), [t], { bootstrapIters: 10 });
    assert.equal(res.errors, undefined);
    const entry = res.results[name]!;
    for (const [k, v] of Object.entries(want.aggregated)) same(entry[`${k},none`], v, k);
    // mean metrics get a stderr, the custom aggregations none (as in the harness)
    assert.equal(typeof entry['acc_stderr,none'], 'number');
    assert.equal(entry['amb_bias_score_stderr,none'], 'N/A');
    assert.equal(res.higher_is_better[name]!.disamb_bias_score, false);
  });
}

test('bbq_ambig / bbq_disambig keep only their context condition', () => {
  assert.deepEqual(task('bbq_ambig').docs.map((d) => d.example_id), [0, 2, 4]);
  assert.deepEqual(task('bbq_disambig').docs.map((d) => d.example_id), [1, 3, 5]);
  // 2 named answers + the 10 "unknown" phrasings; an unknown gold answer accepts every phrasing
  const t = task('bbq');
  assert.equal(t.docToChoice(t.docs[0]!).length, 12);
  assert.deepEqual(t.gold(t.docs[0]!), 2);
});
