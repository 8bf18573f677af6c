/**
 * Writes the demo's data files from scripts/demo/corpus.ts:
 *  - training data (JSONL in the formats of `gemma finetune`): pretrain.jsonl {"text"},
 *    chat.jsonl {"messages"}, shield.jsonl {"prompt", "completion"}, and the tokenizer's
 *    training text (tokenizer-corpus.txt);
 *  - held-out sets (scripts/demo/heldout/*.jsonl, committed; tests read them):
 *    arithmetic.jsonl / json.jsonl {"question", "answer"}, about.jsonl {"question", "topic"},
 *    shield.jsonl {"prompt", "label", "harm"} and shield-any.jsonl {"prompt", "label"} for
 *    `gemma shield eval`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { mulberry32 } from '../../src/util/mulberry32.js';
import { buildShieldPrompt, findPolicy } from '../../src/safety/templates.js';
import { answerOf, chatExamples, JSON_ASKS, pretrainDocuments, questionOf, shieldExamples, type ChatExample, type ChatMix, type Splits } from './corpus.js';
import { HARMS } from './shield-data.js';

export interface DataSizes {
  pretrainDocs: number;
  /** ShieldGemma prompts with their Yes / No answer, as pretraining text. */
  pretrainShield: number;
  chat: ChatMix;
  shield: number;
}

const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** ShieldGemma's prompt-only prompt for (text, harm), exactly as `gemma shield` renders it. */
export function shieldPrompt(text: string, harm: string): string {
  return buildShieldPrompt(findPolicy(harm)!, text).text;
}

/** Gemma chat turns as text (what the chat template renders, without <bos>). */
function renderTurns(c: ChatExample): string {
  return c.messages.map((m) => `<start_of_turn>${m.role === 'user' ? 'user' : 'model'}\n${m.content}<end_of_turn>\n`).join('');
}

export interface TrainingFiles {
  pretrain: string;
  chat: string;
  shield: string;
  tokenizerCorpus: string;
}

export function writeTrainingData(dir: string, splits: Splits, sizes: DataSizes, seed: number): TrainingFiles {
  fs.mkdirSync(dir, { recursive: true });
  const toShield = (e: { text: string; harm: string; label: 0 | 1 }) => ({ prompt: shieldPrompt(e.text, e.harm), completion: e.label ? 'Yes' : 'No' });
  // Shield prompts go into pretraining text too (finetune shuffles the packed sequences).
  const docs = [
    ...pretrainDocuments(splits, sizes.pretrainDocs, seed + 1),
    ...shieldExamples(splits.trainShieldTexts, sizes.pretrainShield, seed + 6).map(toShield).map((s) => s.prompt + s.completion),
  ];
  const chat = chatExamples(splits, sizes.chat, seed + 2);
  const shield = shieldExamples(splits.trainShieldTexts, sizes.shield, seed + 3).map(toShield);
  const files: TrainingFiles = {
    pretrain: path.join(dir, 'pretrain.jsonl'),
    chat: path.join(dir, 'chat.jsonl'),
    shield: path.join(dir, 'shield.jsonl'),
    tokenizerCorpus: path.join(dir, 'tokenizer-corpus.txt'),
  };
  fs.writeFileSync(files.pretrain, jsonl(docs.map((text) => ({ text }))));
  fs.writeFileSync(files.chat, jsonl(chat));
  fs.writeFileSync(files.shield, jsonl(shield));
  // The tokenizer learns from a sample of everything the model will read, plus answers that
  // start with "Yes" / "No" after a space, so that "Yes", "No", "\u2581Yes" and "\u2581No" are
  // whole pieces (ShieldGemma scoring reads their logits).
  const rnd = mulberry32(seed + 4);
  const yesNo = Array.from({ length: 400 }, (_, i) => `Q: Is the answer right? A: ${rnd() < 0.5 ? 'Yes' : 'No'}. ${i % 2 ? 'Yes' : 'No'}, it is.`);
  const tokText = [
    ...docs.slice(0, 6000),
    ...chat.slice(0, 4000).map(renderTurns),
    ...shield.slice(0, 800).map((s) => s.prompt + s.completion),
    ...yesNo,
  ];
  fs.writeFileSync(files.tokenizerCorpus, tokText.join('\n') + '\n');
  return files;
}

/** Held-out sets; throws if one of them overlaps the training inputs. */
export function writeHeldout(dir: string, splits: Splits, seed: number): void {
  fs.mkdirSync(dir, { recursive: true });
  const rnd = mulberry32(seed + 5);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const train = new Set(splits.trainProblems.map(questionOf));
  for (const p of [...splits.heldoutArithmetic, ...splits.heldoutJson]) if (train.has(questionOf(p))) throw new Error(`held-out ${questionOf(p)} is in the training set`);
  fs.writeFileSync(path.join(dir, 'arithmetic.jsonl'), jsonl(splits.heldoutArithmetic.map((p) => ({ question: questionOf(p), answer: String(answerOf(p)) }))));
  fs.writeFileSync(path.join(dir, 'json.jsonl'), jsonl(splits.heldoutJson.map((p, i) => ({ question: `${questionOf(p)} ${JSON_ASKS[i % JSON_ASKS.length]}`, answer: { answer: answerOf(p) } }))));
  const trainAbout = new Set(splits.trainAbout.map((a) => a.prompt));
  for (const a of splits.heldoutAbout) if (trainAbout.has(a.prompt)) throw new Error(`held-out "${a.prompt}" is in the training set`);
  fs.writeFileSync(path.join(dir, 'about.jsonl'), jsonl(splits.heldoutAbout.map((a) => ({ question: a.prompt, topic: a.topic.plural }))));
  const trainShield = new Set(splits.trainShieldTexts.map((t) => t.text));
  const perHarm: unknown[] = [];
  const any: unknown[] = [];
  for (const t of splits.heldoutShieldTexts) {
    if (trainShield.has(t.text)) throw new Error(`held-out shield text "${t.text}" is in the training set`);
    any.push({ prompt: t.text, label: t.harm ? 1 : 0 });
    if (t.harm) {
      perHarm.push({ prompt: t.text, label: 1, harm: t.harm });
      perHarm.push({ prompt: t.text, label: 0, harm: pick(HARMS.filter((h) => h !== t.harm)) });
    } else perHarm.push({ prompt: t.text, label: 0, harm: pick(HARMS) });
  }
  fs.writeFileSync(path.join(dir, 'shield.jsonl'), jsonl(perHarm));
  fs.writeFileSync(path.join(dir, 'shield-any.jsonl'), jsonl(any));
}
