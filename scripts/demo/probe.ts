/**
 * A quick in-process check of a (partly) trained demo checkpoint's arithmetic on the held-out
 * problems, greedy: as plain text ("48 + 27 =" -> " 75") and as a chat turn. For watching a
 * training run (scripts/demo/train.ts calls it between stages); the held-out scores that count
 * come from scripts/demo/score.ts through the CLI.
 *
 *   npx tsx scripts/demo/probe.ts [--model DIR] [--heldout DIR] [--n 200]
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { encodeChat, generateText, loadModel } from '../../src/index.js';
import { HELDOUT, readJsonl, ROOT } from './score.js';

export interface ProbeResult { text: number; chat: number; n: number; samples: string[] }

export async function probeArithmetic(dir: string, heldout: string, n: number): Promise<ProbeResult> {
  const { model, tokenizer } = await loadModel(dir);
  const rows = readJsonl<{ question: string; answer: string }>(path.join(heldout, 'arithmetic.jsonl')).slice(0, n);
  let text = 0, chat = 0;
  const samples: string[] = [];
  for (const r of rows) {
    const eq = r.question.replace(/^What is /, '').replace(/\?$/, '') + ' =';
    const plain = await generateText(model, tokenizer, eq, { maxTokens: 5, temperature: 0 });
    if (plain.text.split('\n')[0]!.trim() === r.answer) text++;
    const ids = encodeChat(tokenizer!, [{ role: 'user', content: r.question }]);
    const answer = (await generateText(model, tokenizer, ids, { maxTokens: 6, temperature: 0 })).text.trim();
    if (answer === r.answer) chat++;
    if (samples.length < 4) samples.push(`${r.question} -> ${JSON.stringify(answer)} (want ${r.answer}; text ${JSON.stringify(plain.text.split('\n')[0])})`);
  }
  model.dispose();
  return { text: text / rows.length, chat: chat / rows.length, n: rows.length, samples };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { model: { type: 'string', default: path.join(ROOT, 'models', 'demo') }, heldout: { type: 'string', default: HELDOUT }, n: { type: 'string', default: '200' } } });
  const r = await probeArithmetic(path.resolve(values.model!), path.resolve(values.heldout!), Number(values.n));
  console.log(`arithmetic probe on ${r.n} held-out problems: text ${(100 * r.text).toFixed(1)}%, chat ${(100 * r.chat).toFixed(1)}%`);
  for (const s of r.samples) console.log(`  ${s}`);
}
