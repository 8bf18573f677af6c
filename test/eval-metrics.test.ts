/** Metrics, filters and statistics against hand-computed values. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildFilters, majorityVote, regexFilter } from '../src/eval/filters.js';
import { literalEval, pythonRegex, renderTemplate } from '../src/eval/jinja.js';
import {
  AGGREGATIONS,
  binomialCI,
  bitsPerByte,
  bootstrapCI,
  exactMatch,
  f1Score,
  matthewsCorrcoef,
  meanStderr,
  passAtK,
  perplexity,
  pooledSampleStderr,
  weightedPerplexity,
} from '../src/eval/metrics.js';
import { PythonRandom } from '../src/eval/python-random.js';
import { Task } from '../src/eval/task.js';
import { validateTaskConfig } from '../src/eval/config.js';

const close = (a: number, b: number, tol = 1e-12): void => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

test('mean stderr: sample stddev / sqrt(n)', () => {
  // [1, 0, 1, 1]: mean 0.75, sum of squares 3 * 0.0625 + 0.5625 = 0.75, var 0.25, sd 0.5, se 0.25
  close(meanStderr([1, 0, 1, 1]), 0.25);
});

test('perplexity, word / byte perplexity and bits per byte', () => {
  // lls -1 and -3: mean -2 -> e^2
  close(perplexity([-1, -3]), Math.exp(2));
  // (-4 over 2 words) + (-6 over 3 words) = -10 / 5 -> e^2
  close(weightedPerplexity([[-4, 2], [-6, 3]]), Math.exp(2));
  // -10 nats over 5 bytes = 2 nats/byte = 2 / ln 2 bits
  close(bitsPerByte([[-4, 2], [-6, 3]]), 2 / Math.LN2);
});

test('f1 and mcc by hand', () => {
  // gold/pred: (1,1) (1,0) (0,1) (0,0) (1,1): tp 2, fp 1, fn 1 -> f1 = 4 / 6
  const items: Array<[number, number]> = [[1, 1], [1, 0], [0, 1], [0, 0], [1, 1]];
  close(f1Score(items), 4 / 6);
  // tp 2 tn 1 fp 1 fn 1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
  close(matthewsCorrcoef(items), 1 / 6);
  close(AGGREGATIONS.matthews_corrcoef(items), 1 / 6);
});

test('acc, acc_norm (characters) and acc_bytes pick different answers', () => {
  const cfg = validateTaskConfig({ task: 't', dataset_path: 'json', test_split: 'test', output_type: 'multiple_choice', doc_to_text: 'q', doc_to_target: 'label', doc_to_choice: 'choices', metric_list: [{ metric: 'acc' }, { metric: 'acc_norm' }, { metric: 'acc_bytes' }] });
  const t = new Task(cfg);
  (t as unknown as { features: Set<string> }).features = new Set(['choices', 'label']);
  // choices "a" (1 char, 1 byte), "éé" (2 chars, 4 bytes), "bbbb" (4 chars, 4 bytes)
  const doc = { choices: ['a', 'éé', 'bbbb'], label: 1 };
  // lls: -2, -3, -4.4 -> acc: argmax = 0; per char: -2, -1.5, -1.1 -> 2; per byte: -2, -0.75, -1.1 -> 1
  const r = t.processResults(doc, [[-2, false], [-3, false], [-4.4, true]]);
  assert.deepEqual(r, { acc: 0, acc_norm: 0, acc_bytes: 1 } as never);
});

test('exact_match with ignore_case, ignore_punctuation and regexes_to_ignore', () => {
  const gsm = { ignore_case: true, regexes_to_ignore: [',', '\\$', '(?s).*#### ', '\\.$'].map((r) => pythonRegex(r)) };
  assert.equal(exactMatch('1,234', 'She paid...\n#### 1234', gsm), 1);
  assert.equal(exactMatch('$12.', 'x #### 12', gsm), 1);
  assert.equal(exactMatch('13', 'x #### 12', gsm), 0);
  assert.equal(exactMatch('Hello, World!', 'hello world', { ignore_case: true, ignore_punctuation: true }), 1);
  assert.equal(exactMatch('Hello, World!', 'hello world', { ignore_case: true }), 0);
});

test('filters: gsm8k strict / flexible extraction, majority vote', () => {
  const strict = regexFilter('#### (\\-?[0-9\\.\\,]+)');
  assert.deepEqual(strict(['so #### 42.', 'no answer']), ['42.', '[invalid]']);
  // flexible: last match of either group; tuples keep the first non-empty group
  const flex = regexFilter('(-?[$0-9.,]{2,})|(-?[0-9]+)', -1);
  assert.deepEqual(flex(['3 apples and 12 pears cost $15.50']), ['$15.50']);
  assert.deepEqual(flex(['it is 7']), ['7']);
  assert.equal(majorityVote(['b', 'a', 'a', 'b', 'c']), 'b'); // tie: the first seen
  const [pipe] = buildFilters('t', [{ name: 'maj@3', filter: [{ function: 'majority_vote' }, { function: 'take_first' }] }]);
  assert.deepEqual(pipe!.apply(['1', '2', '2']), ['2']);
});

test('pass@k unbiased estimator and maj@k', () => {
  // n=5, c=2, k=1: 2/5; k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
  close(passAtK(5, 2, 1), 0.4);
  close(passAtK(5, 2, 2), 0.7);
  close(passAtK(5, 0, 3), 0);
  assert.equal(passAtK(5, 4, 2), 1);
});

test('pooled stderr of size-weighted group means', () => {
  // sizes 10 and 30, stderrs 0.1 and 0.2: var = (9*0.01*10 + 29*0.04*30) / 38 / 40
  close(pooledSampleStderr([0.1, 0.2], [10, 30]), Math.sqrt((0.9 + 34.8) / 38 / 40));
});

test('binomial (Wilson) and percentile bootstrap CIs', () => {
  const [lo, hi] = binomialCI(5, 10);
  // Wilson for p=0.5, n=10, z=1.96: 0.5 -+ 0.2966 (z^2/(2n) centering is symmetric here)
  close(lo, 0.2365930, 1e-6);
  close(hi, 0.7634070, 1e-6);
  const items: number[] = Array.from({ length: 200 }, (_, i) => (i % 4 === 0 ? 1 : 0));
  const [a, b] = bootstrapCI(items, (xs) => xs.reduce((s, x) => s + x, 0) / xs.length, { iters: 2000, seed: 7 });
  // mean 0.25, se ~ sqrt(.25*.75/200) = 0.0306: the 95% interval is about 0.25 -+ 0.06
  assert.ok(a > 0.17 && a < 0.21 && b > 0.29 && b < 0.33, `${a} ${b}`);
  assert.deepEqual(bootstrapCI(items, (xs) => xs.length, { iters: 10, seed: 1 }), [200, 200]);
});

test('Python random.Random(1234).sample (the harness few-shot sampler)', () => {
  // Values printed by CPython: random.Random(1234).getrandbits(32) x3; sample(range(10),3), sample(range(100),7)
  const r = new PythonRandom(1234);
  assert.deepEqual([r.nextUint32(), r.nextUint32(), r.nextUint32()], [4150886329, 3342196574, 1892932127]);
  const s = new PythonRandom(1234);
  const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(s.sample(range(10), 3), [7, 1, 0]);
  assert.deepEqual(s.sample(range(100), 7), [11, 74, 4, 85, 88, 10, 12]);
});

test('templates: Python jinja2 behaviour', () => {
  assert.equal(renderTemplate('{{choices.label.index(answerKey)}}', { choices: { label: ['A', 'B', 'C'] }, answerKey: 'C' }), '2');
  assert.equal(renderTemplate("{{pronoun.capitalize()}}", { pronoun: 'hE' }), 'He');
  assert.equal(renderTemplate("{{text.split(' ')[:-1]|join(' ')}}", { text: 'a b c' }), 'a b');
  assert.equal(renderTemplate('{{x | regex_replace("a+", "b")}}\n', { x: 'caat' }), 'cbt\n');
  assert.deepEqual(literalEval(renderTemplate('{{[sol1, sol2]}}', { sol1: "it's", sol2: 'b' })), ["it's", 'b']);
  assert.deepEqual(literalEval("['a', \"b\", 3, True, None]"), ['a', 'b', 3, true, null]);
  assert.throws(() => renderTemplate('{{missing}}', { x: 1 }), /no field "missing"/);
});
