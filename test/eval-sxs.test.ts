/** eval sxs: pair-v2 verdicts in both orders, W/T/L, tie-split win rate, seeded bootstrap CI, human ratings, the CLI against an OpenAI-compatible judge. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerEvalCommand } from '../src/cli/eval.js';
import type { CliIO } from '../src/cli/options.js';
import { parseCsv } from '../src/eval/dataset.js';
import { bootstrapCI } from '../src/eval/metrics.js';
import { combineOrders, humanRatings, judgePairs, pairV2Prompt, parseVerdict, summarize, PAIR_V2_SYSTEM } from '../src/eval/sxs.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-sxs-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('verdicts: the last [[X]], both orders must agree', () => {
  assert.deepEqual(parseVerdict('A is better. [[A]]'), { verdict: 'A', parsed: true });
  assert.deepEqual(parseVerdict('[[A]] ... on reflection [[C]]'), { verdict: 'tie', parsed: true });
  assert.deepEqual(parseVerdict('no verdict'), { verdict: 'tie', parsed: false });
  assert.equal(combineOrders('A', 'B'), 'A'); // A first wins, then (swapped) B-position = A wins
  assert.equal(combineOrders('A', 'A'), 'tie'); // position bias: disagreement -> tie
  assert.equal(combineOrders('B', 'A'), 'B');
  assert.equal(combineOrders('tie', 'tie'), 'tie');
  assert.ok(pairV2Prompt('Q', 'a', 'b').startsWith("[User Question]\nQ\n\n[The Start of Assistant A's Answer]\na\n"));
});

test('W / T / L, tie-split win rate and its seeded percentile bootstrap CI', async () => {
  // a judge that prefers the answer containing "good", and one that always says [[A]]
  const pairs = Array.from({ length: 10 }, (_, i) => ({ id: String(i), prompt: `q${i}`, answerA: i < 6 ? 'good' : 'meh', answerB: i < 6 ? 'meh' : i < 8 ? 'good' : 'meh' }));
  const fair = async (_s: string, user: string): Promise<string> => {
    const a = /Assistant A's Answer\]\n(.*)\n/.exec(user)![1];
    const b = /Assistant B's Answer\]\n(.*)\n/.exec(user)![1];
    return a === b ? '[[C]]' : a === 'good' ? '[[A]]' : '[[B]]';
  };
  const r = await judgePairs(pairs, fair, { seed: 3 });
  assert.deepEqual([r.wins, r.ties, r.losses], [6, 2, 2]);
  assert.equal(r.win_rate, (6 + 1) / 10);
  const scores: number[] = r.items.map((i) => (i.verdict === 'A' ? 1 : i.verdict === 'tie' ? 0.5 : 0));
  assert.deepEqual(r.ci95, bootstrapCI(scores, (xs) => xs.reduce((a, b) => a + b, 0) / xs.length, { iters: 10000, seed: 3 }));
  assert.ok(r.ci95[0] < 0.7 && r.ci95[1] > 0.7 && r.ci95[0] >= 0.3 && r.ci95[1] <= 1);
  const biased = await judgePairs(pairs, async () => 'I pick [[A]]');
  assert.deepEqual([biased.wins, biased.ties, biased.losses], [0, 10, 0]);
  assert.equal(biased.win_rate, 0.5);
  let system = '';
  await judgePairs(pairs.slice(0, 1), async (s) => ((system = s), '[[C]]'));
  assert.equal(system, PAIR_V2_SYSTEM);
});

test('human ratings CSV give the same report', () => {
  const items = humanRatings('id,winner\n1,A\n2,tie\n3,B\n4,model_a\n', parseCsv);
  const r = summarize(items, { seed: 1 });
  assert.deepEqual([r.wins, r.ties, r.losses, r.win_rate], [2, 1, 1, 0.625]);
  assert.throws(() => humanRatings('winner\nmaybe\n', parseCsv), /row 2: winner "maybe"/);
});

test('gemma eval sxs --answers-a/-b --judge URL (OpenAI-compatible) and --ratings', async () => {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url?.endsWith('/models')) {
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'judge', object: 'model', created: 0, owned_by: 'x' }] }));
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const user = (JSON.parse(body) as { messages: Array<{ content: string }> }).messages[1]!.content;
      const a = /Assistant A's Answer\]\n(.*)\n/.exec(user)![1]!;
      const verdict = a.includes('Paris') ? '[[A]]' : '[[B]]';
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', created: 0, model: 'judge', choices: [{ index: 0, message: { role: 'assistant', content: `Explanation. ${verdict}` }, finish_reason: 'stop' }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  fs.writeFileSync(path.join(tmp, 'p.jsonl'), '{"id": "1", "prompt": "Capital of France?"}\n{"id": "2", "prompt": "Capital of Italy?"}\n');
  fs.writeFileSync(path.join(tmp, 'a.jsonl'), '{"id": "1", "answer": "Paris"}\n{"id": "2", "answer": "Milan"}\n');
  fs.writeFileSync(path.join(tmp, 'b.jsonl'), '{"id": "2", "answer": "Rome"}\n{"id": "1", "answer": "Lyon"}\n');
  fs.writeFileSync(path.join(tmp, 'r.csv'), 'winner\nA\nA\nB\n');
  const run = async (argv: string[]): Promise<string> => {
    let stdout = '';
    const io: CliIO = { stdout: { write: (s: string) => ((stdout += s), true) }, stderr: { write: () => true }, stdin: Readable.from([]) as NodeJS.ReadableStream };
    const program = new Command().exitOverride();
    registerEvalCommand(program, io);
    await program.parseAsync(['eval', 'sxs', ...argv], { from: 'user' });
    return stdout;
  };
  try {
    const out = JSON.parse(await run(['--prompts', path.join(tmp, 'p.jsonl'), '--answers-a', path.join(tmp, 'a.jsonl'), '--answers-b', path.join(tmp, 'b.jsonl'), '--judge', `http://127.0.0.1:${port}`, '--json', '--output-path', tmp]));
    // prompt 1: A (Paris) wins in both orders; prompt 2: neither says Paris -> [[B]] both orders -> tie
    assert.deepEqual([out.wins, out.ties, out.losses], [1, 1, 0]);
    assert.equal(out.items[1].answerB, 'Rome'); // answers matched by id
    assert.ok(fs.existsSync(path.join(tmp, 'sxs.json')));
    const human = await run(['--ratings', path.join(tmp, 'r.csv')]);
    assert.match(human, /3 prompts: A wins 2 \/ ties 0 \/ loses 1/);
  } finally {
    server.close();
  }
});
