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

/** Minimum exact-match rates on the samples below (measured on the full sets: see the README). */
const MIN = { arithmetic: 0.9, json: 0.85, about: 0.7, shieldAuprc: 0.8 };

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

test('demo skills: held-out "What is A + B?" / "What is A - B?" answered with the number alone', () => {
  const rows = heldout<{ question: string; answer: string }>('arithmetic.jsonl', 5);
  assert.equal(rows.length, 80);
  const answers = chatAnswers(rows.map((r) => r.question));
  const ok = rows.map((r, i) => answers[i] === r.answer);
  assert.ok(rate(ok) >= MIN.arithmetic, `${(100 * rate(ok)).toFixed(1)}% exact; misses:\n${misses(rows, ok, answers)}`);
  // Negative results carry their minus sign.
  const negatives = rows.filter((r) => r.answer.startsWith('-'));
  assert.ok(negatives.length > 10);
  assert.ok(rate(negatives.map((r) => answers[rows.indexOf(r)] === r.answer)) >= MIN.arithmetic - 0.05);
});

test('demo skills: `gemma run --chat -t 0` prints the same answers as the chat session, ending at <end_of_turn>', () => {
  const rows = heldout<{ question: string; answer: string }>('arithmetic.jsonl', 97);
  const viaChat = chatAnswers(rows.map((r) => r.question));
  for (const [i, r] of rows.entries()) {
    const res = JSON.parse(gemma(['run', '--model', 'demo', '--chat', '-t', '0', '--json', r.question])) as { ids: number[]; text: string };
    assert.equal(res.text, viaChat[i], r.question);
    assert.equal(res.ids[res.ids.length - 1], 106, `${r.question}: generation ends with <end_of_turn>`);
  }
});

test('demo skills: held-out questions with "Answer in JSON." give one JSON object {"answer": N}', () => {
  const rows = heldout<{ question: string; answer: { answer: number } }>('json.jsonl', 5);
  assert.equal(rows.length, 40);
  const answers = chatAnswers(rows.map((r) => r.question));
  const ok = rows.map((r, i) => {
    try {
      return JSON.stringify(JSON.parse(answers[i]!)) === JSON.stringify(r.answer);
    } catch {
      return false;
    }
  });
  assert.ok(rate(ok) >= MIN.json, `${(100 * rate(ok)).toFixed(1)}% exact; misses:\n${misses(rows, ok, answers)}`);
});

test('demo skills: held-out "Tell me about ..." phrasings give true, simple sentences about the topic', () => {
  const rows = heldout<{ question: string; topic: string }>('about.jsonl', 1);
  assert.equal(rows.length, 40);
  const answers = chatAnswers(rows.map((r) => r.question));
  const ok = rows.map((r, i) => {
    const sentences = answers[i]!.split(/(?<=\.) /);
    // Two or more sentences, each a capitalized statement about the topic ending with a period.
    const noun = r.topic.replace(/s$/, '');
    return sentences.length >= 2 && sentences.every((s) => /^[A-Z][a-z ,]+\.$/.test(s)) && sentences.some((s) => s.toLowerCase().includes(noun.slice(0, 4)));
  });
  assert.ok(rate(ok) >= MIN.about, `${(100 * rate(ok)).toFixed(1)}%; misses:\n${misses(rows, ok, answers)}`);
});

test('demo skills: `gemma shield eval` separates held-out violating from harmless prompts', () => {
  const file = path.join(HELDOUT, 'shield.jsonl');
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  const sample = path.join(repoRoot(), 'tmp', `demo-shield-${process.pid}.jsonl`);
  fs.mkdirSync(path.dirname(sample), { recursive: true });
  fs.writeFileSync(sample, lines.filter((_, i) => i % 3 === 0).join('\n') + '\n');
  try {
    const report = JSON.parse(gemma(['shield', 'eval', '--model', 'demo', '--data', sample])) as { examples: number; overall: { auprc: number } };
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
