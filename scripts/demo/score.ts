/**
 * Scores a demo checkpoint on the held-out sets through the `gemma` command line, greedy:
 *  - chat skills with `gemma chat -t 0` fed one question per line, `/reset` between questions
 *    (each answer is then exactly what `gemma run --chat -t 0 QUESTION` prints; the tests check
 *    that on a sample);
 *  - the shield judgement with `gemma shield eval` (AU-PRC, optimal F1).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scoreAbout, TOPICS } from './knowledge.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const HELDOUT = path.join(ROOT, 'scripts', 'demo', 'heldout');
const GEMMA = path.join(ROOT, 'bin', 'gemma.js');

export const readJsonl = <T>(file: string): T[] =>
  fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);

const MAX_TOKENS = '96';

/** `gemma run --model M --chat -t 0 QUESTION`: the greedy answer. */
export function runAnswer(model: string, question: string): string {
  const out = execFileSync(process.execPath, [GEMMA, 'run', '--model', model, '--chat', '-t', '0', '-n', MAX_TOKENS, '--json', question], { encoding: 'utf8' });
  return (JSON.parse(out) as { text: string }).text;
}

/**
 * Greedy chat answers, one per question, each from a fresh conversation: one `gemma chat` process
 * reads every question with `/reset` after each; if an answer spans several lines (the lines
 * cannot be told apart), every question is asked with its own `gemma run --chat` instead.
 */
export function chatAnswers(model: string, questions: string[]): string[] {
  const input = questions.map((q) => `${q}\n/reset\n`).join('');
  const out = execFileSync(process.execPath, [GEMMA, 'chat', '--model', model, '-t', '0', '-n', MAX_TOKENS], { input, encoding: 'utf8', maxBuffer: 1 << 26 });
  const lines = out.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length === questions.length) return lines;
  return questions.map((q) => runAnswer(model, q));
}

export interface SkillScore {
  skill: string;
  correct: number;
  total: number;
  /** Extra measures (e.g. grammatical rate, AU-PRC). */
  extra?: Record<string, number>;
  examples: { question: string; answer: string; ok: boolean }[];
}

export function scoreArithmetic(model: string, rows: { question: string; answer: string }[]): SkillScore {
  const answers = chatAnswers(model, rows.map((r) => r.question));
  const examples = rows.map((r, i) => ({ question: r.question, answer: answers[i]!, ok: answers[i] === r.answer }));
  return { skill: 'arithmetic', correct: examples.filter((e) => e.ok).length, total: rows.length, examples };
}

/** One JSON object equal to the expected one (the whole answer must parse). */
export function scoreJson(model: string, rows: { question: string; answer: unknown }[]): SkillScore {
  const answers = chatAnswers(model, rows.map((r) => r.question));
  let parsed = 0;
  const examples = rows.map((r, i) => {
    let ok = false;
    try {
      const v = JSON.parse(answers[i]!) as unknown;
      parsed++;
      ok = JSON.stringify(v) === JSON.stringify(r.answer);
    } catch {
      ok = false;
    }
    return { question: r.question, answer: answers[i]!, ok };
  });
  return { skill: 'json', correct: examples.filter((e) => e.ok).length, total: rows.length, extra: { valid_json: parsed / rows.length }, examples };
}

export function scoreAboutSet(model: string, rows: { question: string; topic: string }[]): SkillScore {
  const answers = chatAnswers(model, rows.map((r) => r.question));
  let grammatical = 0;
  const examples = rows.map((r, i) => {
    const topic = TOPICS.find((t) => t.plural === r.topic)!;
    const s = scoreAbout(topic, answers[i]!);
    if (s.grammatical) grammatical++;
    return { question: r.question, answer: answers[i]!, ok: s.correct };
  });
  return { skill: 'about', correct: examples.filter((e) => e.ok).length, total: rows.length, extra: { grammatical: grammatical / rows.length }, examples };
}

export interface ShieldReport {
  examples: number;
  overall: { auprc: number; f1: number; threshold: number };
}

/** `gemma shield eval` on a held-out file. */
export function shieldEval(model: string, data: string): ShieldReport {
  const out = execFileSync(process.execPath, [GEMMA, 'shield', 'eval', '--model', model, '--data', data], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return JSON.parse(out) as ShieldReport;
}

export const percent = (s: SkillScore): number => (100 * s.correct) / s.total;
