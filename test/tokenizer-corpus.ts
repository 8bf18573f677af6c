import { mulberry32 as rng } from '../src/util/mulberry32.js';
/**
 * A deterministic corpus for tokenizer parity tests and the tokenizer benchmark: prose, code with
 * tabs and deep indentation, whitespace runs, digits, emoji (ZWJ), CJK, Devanagari, Arabic,
 * Cyrillic, combining marks, control characters, rare code points, literal special tokens.
 * Everything is well-formed UTF-16 (no lone surrogates).
 */
import path from 'node:path';
import { repoRoot } from './helpers/paths.js';

export { repoRoot };

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
export { mulberry32 as rng } from '../src/util/mulberry32.js';

const PROSE = [
  'The quick brown fox jumps over the lazy dog.',
  "It was the best of times, it was the worst of times; it was the age of wisdom.",
  'Gemma is a family of lightweight, state-of-the-art open models built from the same research.',
  'Mr. O\'Neil paid $1,234.56 for 3 items (e.g. apples & pears) on 2024-03-15 at 10:45am.',
  'Can\'t stop, won\'t stop — "quotes", «guillemets», ‘single’ and … ellipses!',
  'URLs like https://example.com/path?q=1&r=two#frag and emails a.b@c.io appear too.',
  'Naïve café owners in Zürich order crème brûlée, jalapeño and smörgåsbord.',
  'E = mc² and ∑ᵢ xᵢ² ≥ 0; ∀x ∈ ℝ: x² ≥ 0. Temperatures: −40 °C, 98.6 °F.',
];

const CODE = [
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
  'class Node:\n\tdef __init__(self, value):\n\t\tself.value = value\n\t\tself.children = []\n\n\tdef add(self, c):\n\t\tself.children.append(c)\n',
  'export function clamp(x: number, lo = 0, hi = 1): number {\n  return Math.min(hi, Math.max(lo, x));\n}\n',
  'interface Foo<T extends object> {\n    readonly bar: Map<string, T[]>;\n    baz?(q: T): Promise<void>;\n}\n',
  'if (a) {\n\tif (b) {\n\t\tif (c) {\n\t\t\tif (d) {\n\t\t\t\tif (e) {\n\t\t\t\t\treturn 42;\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n',
  'for i in range(10):\n                        print(i, end="")  # deeply indented\n',
  'const re = /^\\s*(\\d+)\\s*$/u; const s = `${a}+${b}`; x ??= y?.z ?? 0;',
  '#include <stdio.h>\nint main(void) {\n\tprintf("%d\\n", 1 << 10);\n\treturn 0;\n}\n',
];

const SCRIPTS = [
  '日本語のテキストを正しく分割できるか確認します。',
  '中文分词测试：我们今天去北京天安门广场。',
  '한국어 문장도 처리해야 합니다.',
  'नमस्ते, आप कैसे हैं? हिन्दी में लिखा गया वाक्य।',
  'مرحبا بكم في عالم البرمجة، هذه جملة عربية.',
  'שלום עולם, זה משפט בעברית.',
  'Привет, как дела? Это предложение на русском языке.',
  'Ελληνικά: Γειά σου Κόσμε.',
  'ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ',
  'Tiếng Việt có nhiều dấu: ắ ằ ẳ ẵ ặ.',
];

const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🧑🏾‍💻', '❤️', '🇺🇳', '🫠', '👩‍❤️‍💋‍👨', '1️⃣'];
const COMBINING = ['e\u0301', 'a\u0308\u0304', 'n\u0303', 'Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334', '\u0915\u094d\u0937'];
const CONTROLS = ['\u0000', '\u0001', '\u0007', '\u0008', '\u000b', '\u000c', '\r', '\r\n', '\u001b[31m', '\u007f', '\u0085', '\u00a0', '\u200b', '\u200d', '\u2028', '\ufeff'];
const RARE = ['\u{10FFFD}', '\u{E0001}', '\u{1D11E}', '\u{16A0}', '\u{F0000}', '\u{1F9FF}', '\u{2F800}', '\u{E000}', '\uFFFD', '\u{1343F}', '\u{1E900}', '\u{10400}'];
const SPECIAL_TEXT = [
  '<start_of_turn>',
  '<end_of_turn>',
  '<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n',
  '<bos>',
  '<eos>',
  '<pad>',
  '<unk>',
  '<mask>',
  '<unused0>',
  '<unused42>',
  '<start_of_image>',
  '<b>bold</b> <i>it</i> <code>x</code>',
  '<start_of_turn',
  'start_of_turn>',
  '<<start_of_turn>>',
];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function whitespaceRun(r: () => number): string {
  const n = 1 + Math.floor(r() * 40);
  const kind = Math.floor(r() * 5);
  if (kind === 0) return ' '.repeat(n);
  if (kind === 1) return '\n'.repeat(n);
  if (kind === 2) return '\t'.repeat(n);
  let s = '';
  for (let i = 0; i < n; i++) s += pick(r, [' ', '\n', '\t', ' ', ' ']);
  return s;
}

function digits(r: () => number): string {
  const n = 1 + Math.floor(r() * 60);
  let s = '';
  for (let i = 0; i < n; i++) s += String(Math.floor(r() * 10));
  return r() < 0.3 ? s.replace(/(\d{3})(?=\d)/g, '$1,') : s;
}

function randomCodePoint(r: () => number): string {
  for (;;) {
    const cp = Math.floor(r() * 0x110000);
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    return String.fromCodePoint(cp);
  }
}

const GENERATORS: Array<(r: () => number) => string> = [
  (r) => pick(r, PROSE),
  (r) => pick(r, CODE),
  (r) => pick(r, SCRIPTS),
  (r) => pick(r, EMOJI),
  (r) => pick(r, COMBINING),
  (r) => pick(r, CONTROLS),
  (r) => pick(r, RARE),
  (r) => randomCodePoint(r),
  (r) => pick(r, SPECIAL_TEXT),
  whitespaceRun,
  digits,
  (r) => pick(r, PROSE).split(' ').slice(0, 1 + Math.floor(r() * 6)).join(' '),
  (r) => pick(r, CODE).replace(/    /g, pick(r, ['\t', '  ', '        ', '\t\t'])),
  (r) => ' ' + pick(r, PROSE).toUpperCase(),
];

/** A string made of 1-6 random fragments, joined with nothing or a whitespace run. */
export function randomString(r: () => number): string {
  const parts = 1 + Math.floor(r() * 6);
  let s = '';
  for (let i = 0; i < parts; i++) {
    if (i > 0 && r() < 0.5) s += r() < 0.5 ? ' ' : whitespaceRun(r);
    s += pick(r, GENERATORS)(r);
  }
  return s;
}

/** The parity corpus: fixed cases first, then `n` random strings (seeded). */
export function buildCorpus(n = 2200, seed = 20240521): string[] {
  const out: string[] = ['', ' ', '  ', '\n', '\n\n', '\t', 'a', '0', '00', '1234567890'];
  for (const group of [PROSE, CODE, SCRIPTS, EMOJI, COMBINING, CONTROLS, RARE, SPECIAL_TEXT]) out.push(...group);
  for (let k = 1; k <= 40; k++) {
    out.push(' '.repeat(k), '\n'.repeat(k), '\t'.repeat(k), 'x' + ' '.repeat(k) + 'y', ' '.repeat(k) + 'def f():');
  }
  const r = rng(seed);
  for (let i = 0; i < n; i++) out.push(randomString(r));
  return out;
}

/** About `bytes` bytes of mixed text (for the benchmark). */
export function mixedText(bytes: number, seed = 7): string {
  const r = rng(seed);
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const kind = r();
    const s = kind < 0.45 ? pick(r, PROSE) + ' ' : kind < 0.75 ? pick(r, CODE) : kind < 0.9 ? pick(r, SCRIPTS) + '\n' : randomString(r) + '\n';
    parts.push(s);
    size += Buffer.byteLength(s);
  }
  return parts.join('');
}


/** Directory of a real Gemma tokenizer shipped by npm: 'gemini' (Gemma 1/2) or 'gemma3'. */
export function realTokenizerDir(which: 'gemini' | 'gemma3'): string {
  return path.join(repoRoot(), 'node_modules', '@lenml', `tokenizer-${which}`, 'models');
}
