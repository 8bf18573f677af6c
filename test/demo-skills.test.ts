/**
 * The trained demo model's skills, scored through the `gemma` command line with greedy decoding
 * on samples of the held-out sets (scripts/demo/heldout/: questions that never appear in its
 * training data). Thresholds sit a little under the scores measured on the full held-out sets
 * (models/demo/README.md); the tests never retrain the model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './helpers/paths.js';

const GEMMA = path.join(repoRoot(), 'bin', 'gemma.js');
const HELDOUT = path.join(repoRoot(), 'scripts', 'demo', 'heldout');

/**
 * Minimum rates on the samples below. Measured on the full held-out sets (models/demo/README.md):
 * arithmetic 400 / 400 exact; JSON 100% one {"answer": integer} object, 64% exact; topics 100%
 * all-true and grammatical; shield AU-PRC 0.999 per policy.
 */
const MIN = { arithmeticNumber: 0.98, arithmeticClose: 0.98, arithmeticExact: 0.95, arithmeticSign: 0.98, jsonValid: 0.95, jsonExact: 0.45, about: 0.9, shieldAuprc: 0.95 };

function heldout<T>(file: string, every: number): T[] {
  const rows = fs.readFileSync(path.join(HELDOUT, file), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T);
  return rows.filter((_, i) => i % every === 0);
}

const gemma = (args: string[], input?: string): string => execFileSync(process.execPath, [GEMMA, ...args], { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });

/** Greedy answers from one `gemma chat` process, /reset after every question (fresh conversations). */
function chatAnswers(questions: string[]): string[] {
  const out = gemma(['chat', '--model', 'demo', '-t', '0', '-n', '80'], questions.map((q) => `${q}\n/reset\n`).join(''));
  const lines = out.split('\n').slice(0, -1);
  assert.equal(lines.length, questions.length, `one answer line per question:\n${out}`);
  return lines;
}

const rate = (ok: boolean[]): number => ok.filter(Boolean).length / ok.length;
const misses = <T>(rows: T[], ok: boolean[], answers: string[]): string =>
  rows.map((r, i) => (ok[i] ? '' : `${JSON.stringify(r)} -> ${JSON.stringify(answers[i])}`)).filter((s) => s).slice(0, 10).join('\n');

test('demo skills: held-out "What is A + B?" / "What is A - B?" answered with a number, close to the right one', (t) => {
  const rows = heldout<{ question: string; answer: string }>('arithmetic.jsonl', 5);
  assert.equal(rows.length, 80);
  const answers = chatAnswers(rows.map((r) => r.question));
  const exact = rows.map((r, i) => answers[i] === r.answer);
  // The number alone (minus sign for negatives), within 10 of the right result.
  const close = rows.map((r, i) => /^-?\d+$/.test(answers[i]!) && Math.abs(Number(answers[i]) - Number(r.answer)) <= 10);
  const numbers = rows.map((_, i) => /^-?\d+$/.test(answers[i]!));
  t.diagnostic(`arithmetic: ${(100 * rate(exact)).toFixed(1)}% exact, ${(100 * rate(close)).toFixed(1)}% within 10, ${(100 * rate(numbers)).toFixed(1)}% a bare number, of ${rows.length}`);
  assert.ok(rate(numbers) >= MIN.arithmeticNumber, `${(100 * rate(numbers)).toFixed(1)}% bare numbers; misses:\n${misses(rows, numbers, answers)}`);
  assert.ok(rate(close) >= MIN.arithmeticClose, `${(100 * rate(close)).toFixed(1)}% within 10; misses:\n${misses(rows, close, answers)}`);
  assert.ok(rate(exact) >= MIN.arithmeticExact, `${(100 * rate(exact)).toFixed(1)}% exact`);
  // The sign follows the question: negative answers for A - B with B > A.
  const signs = rows.map((r, i) => answers[i]!.startsWith('-') === r.answer.startsWith('-'));
  t.diagnostic(`arithmetic: ${(100 * rate(signs)).toFixed(1)}% with the right sign`);
  assert.ok(rate(signs) >= MIN.arithmeticSign, `${(100 * rate(signs)).toFixed(1)}% right sign`);
});

test('demo skills: `gemma run --chat -t 0` prints the same answers as the chat session, ending at <end_of_turn>', () => {
  const rows = heldout<{ question: string; answer: string }>('arithmetic.jsonl', 97);
  const viaChat = chatAnswers(rows.map((r) => r.question));
  for (const [i, r] of rows.entries()) {
    const res = JSON.parse(gemma(['run', '--model', 'demo', '--chat', '-t', '0', '--json', r.question])) as { ids: number[]; text: string };
    assert.equal(res.text, viaChat[i], r.question);
    assert.ok(res.ids.length < 8, `${r.question}: generation stops at <end_of_turn> after the number`);
  }
});

test('demo skills: held-out questions with "Answer in JSON." give one JSON object {"answer": N}', (t) => {
  const rows = heldout<{ question: string; answer: { answer: number } }>('json.jsonl', 5);
  assert.equal(rows.length, 40);
  const answers = chatAnswers(rows.map((r) => r.question));
  const parse = (a: string): unknown => {
    try {
      return JSON.parse(a);
    } catch {
      return undefined;
    }
  };
  const valid = answers.map((a) => { const v = parse(a) as { answer?: unknown } | undefined; return typeof v === 'object' && v !== null && Number.isInteger(v.answer) && Object.keys(v).length === 1; });
  const ok = rows.map((r, i) => JSON.stringify(parse(answers[i]!)) === JSON.stringify(r.answer));
  t.diagnostic(`json: ${(100 * rate(valid)).toFixed(1)}% one object {"answer": integer}, ${(100 * rate(ok)).toFixed(1)}% exact, of ${rows.length}`);
  assert.ok(rate(valid) >= MIN.jsonValid, `${(100 * rate(valid)).toFixed(1)}% valid; misses:\n${misses(rows, valid, answers)}`);
  assert.ok(rate(ok) >= MIN.jsonExact, `${(100 * rate(ok)).toFixed(1)}% exact; misses:\n${misses(rows, ok, answers)}`);
});

test('demo skills: held-out "Tell me about ..." phrasings give simple sentences about the topic', (t) => {
  const rows = heldout<{ question: string; topic: string }>('about.jsonl', 1);
  assert.equal(rows.length, 40);
  const answers = chatAnswers(rows.map((r) => r.question));
  const ok = rows.map((r, i) => {
    const sentences = answers[i]!.split(/(?<=\.) /);
    // Two or more sentences, each a capitalized statement about the topic ending with a period.
    const noun = r.topic.replace(/s$/, '');
    return sentences.length >= 2 && sentences.every((s) => /^[A-Z][A-Za-z ,]+\.$/.test(s)) && sentences.some((s) => s.toLowerCase().includes(noun.slice(0, 4)));
  });
  t.diagnostic(`about: ${(100 * rate(ok)).toFixed(1)}% of ${rows.length}`);
  assert.ok(rate(ok) >= MIN.about, `${(100 * rate(ok)).toFixed(1)}%; misses:\n${misses(rows, ok, answers)}`);
});

test('demo skills: `gemma shield eval` scores held-out violating and harmless prompts', (t) => {
  const file = path.join(HELDOUT, 'shield.jsonl');
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  const sample = path.join(repoRoot(), 'tmp', `demo-shield-${process.pid}.jsonl`);
  fs.mkdirSync(path.dirname(sample), { recursive: true });
  fs.writeFileSync(sample, lines.filter((_, i) => i % 3 === 0).join('\n') + '\n');
  try {
    const report = JSON.parse(gemma(['shield', 'eval', '--model', 'demo', '--data', sample])) as { examples: number; overall: { auprc: number } };
    t.diagnostic(`shield: AU-PRC ${report.overall.auprc.toFixed(3)} on ${report.examples} lines`);
    assert.ok(report.examples >= 40);
    assert.ok(report.overall.auprc >= MIN.shieldAuprc, `AU-PRC ${report.overall.auprc}`);
  } finally {
    fs.rmSync(sample, { force: true });
  }
});

test('demo skills: the greeting introduces the model', () => {
  const text = gemma(['run', '--model', 'demo', '--chat', '-t', '0', 'Hello']).trim();
  assert.match(text, /^Hello! I am the gemma-ts demo model/);
});
