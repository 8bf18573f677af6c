/**
 * Every program in examples/ runs (compiled to dist/examples) and prints what it promises. The
 * examples import only the public entry points ('gemma-ts', 'gemma-ts/...'), resolved by Node's
 * package self-reference through package.json's `exports`, exactly as an installed user's code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './helpers/paths.js';

const run = promisify(execFile);
const SRC = path.join(repoRoot(), 'examples');
const DIST = path.join(repoRoot(), 'dist', 'examples');
const EXAMPLES = fs.readdirSync(SRC).filter((f) => f.endsWith('.ts')).sort();

/** What each example must print (checked on its stdout lines); every example needs one. */
const CHECKS: Record<string, (lines: string[]) => void> = {
  'generate.ts': (lines) => {
    const m = /^\[(\d+) tokens\]$/.exec(lines.at(-1)!);
    assert.ok(m && Number(m[1]) > 0 && Number(m[1]) <= 24, lines.at(-1));
  },
  'chat.ts': (lines) => {
    assert.deepEqual(lines.filter((l) => l.startsWith('user: ')), ['user: Hello! Who are you?', 'user: Tell me more.']);
    assert.equal(lines.filter((l) => /^\[\d+ tokens, (length|stop)\]$/.test(l)).length, 2);
  },
  'structured-output.ts': (lines) => {
    const { finishReason, value } = JSON.parse(lines.at(-1)!) as { finishReason: string; value: { answer: unknown } };
    assert.equal(finishReason, 'stop');
    // The trained demo answers its arithmetic in JSON (greedy): 48 + 27.
    assert.deepEqual(value, { answer: 75 });
    // The generated text (every line but the summary) is exactly the one JSON value.
    assert.deepEqual(JSON.parse(lines.slice(0, -1).join('\n')), value, 'the generated text is exactly the one JSON value');
  },
  'tokenize.ts': (lines) => {
    const count = (prefix: string) => Number(lines.find((l) => l.startsWith(prefix))!.split(/\s+/)[1]);
    assert.ok(count('special:') < count('plain:'), 'special tokens parsed into single ids');
    assert.equal(lines.at(-1), `round trip: ${JSON.stringify('<bos><start_of_turn>user\nHello world<end_of_turn>')}`);
  },
  'server.ts': (lines) => {
    assert.equal(lines[0], 'HTTP 200');
    const choice = JSON.parse(lines[1]!) as { message: { role: string; content: string }; finish_reason: string };
    assert.equal(choice.message.role, 'assistant');
    assert.ok(['length', 'stop'].includes(choice.finish_reason));
    const usage = JSON.parse(lines[2]!) as { completion_tokens: number };
    assert.ok(usage.completion_tokens > 0 && usage.completion_tokens <= 8);
  },
  'shield.ts': (lines) => {
    const r = JSON.parse(lines[0]!) as { flagged: boolean; category_scores: Record<string, number> };
    assert.deepEqual(Object.keys(r.category_scores).sort(), ['dangerous', 'hate']);
    for (const s of Object.values(r.category_scores)) assert.ok(s > 0 && s < 1, String(s));
  },
  'quantize.ts': (lines) => {
    assert.match(lines[0]!, /^wrote demo\.Q8_0\.gguf: \d+ bytes, \d+ tensors, types .*q8_0/);
    assert.match(lines[1]!, /^greedy: ".+"$/);
  },
};

test('examples: every example has a check, and imports only the public entry points', () => {
  assert.deepEqual(EXAMPLES, Object.keys(CHECKS).sort());
  for (const f of EXAMPLES) {
    const src = fs.readFileSync(path.join(SRC, f), 'utf8');
    for (const m of src.matchAll(/^import [^;]*? from '([^']+)';/gms)) {
      assert.ok(/^(gemma-ts(\/[a-z]+)?|node:[a-z/]+)$/.test(m[1]!), `${f} imports ${m[1]}`);
    }
  }
});

for (const f of EXAMPLES) {
  test(`examples/${f} runs`, async () => {
    const js = path.join(DIST, f.replace(/\.ts$/, '.js'));
    const { stdout } = await run(process.execPath, [js], { cwd: repoRoot(), timeout: 60_000 });
    CHECKS[f]!(stdout.trimEnd().split('\n'));
  });
}
