/**
 * The demo model's training and held-out data, generated from one seed (same seed, same bytes).
 *
 * Skills (chat turns unless said otherwise):
 *  - arithmetic: "What is A + B?" / "What is A - B?" for 0 <= A, B <= 99, answered with the
 *    number alone ("-35" for negatives);
 *  - json: the same questions with "Answer in JSON." (and paraphrases), answered {"answer": N};
 *  - about: "Tell me about cats." and paraphrases, answered with three true sentences
 *    (scripts/demo/knowledge.ts);
 *  - greeting: "Hello", "Who are you?" ... answered with one introduction;
 *  - shield: ShieldGemma's prompt-only template (src/safety/templates.ts) with one of the four
 *    official policies, answered "Yes" or "No" (raw text, not a chat turn, as ShieldGemma reads it);
 *  - pretraining text: the same facts and equations as plain text, plus simple English prose.
 *
 * Held out: 600 of the 20 000 arithmetic questions (never in any training text, in any form),
 * topic / phrasing pairs of "about", and 15% of the distinct shield texts.
 */
import { mulberry32 } from '../../src/util/mulberry32.js';
import { ABOUT_PROMPTS, TOPICS, type Topic } from './knowledge.js';
import { findPolicy } from '../../src/safety/templates.js';
import { HARMS, shieldText, type Harm } from './shield-data.js';

export type Op = '+' | '-';
export interface Problem { op: Op; a: number; b: number }
export const answerOf = (p: Problem): number => (p.op === '+' ? p.a + p.b : p.a - p.b);
export const questionOf = (p: Problem): string => `What is ${p.a} ${p.op} ${p.b}?`;

export interface ChatExample { messages: { role: 'user' | 'assistant'; content: string }[] }
export interface ShieldExample { text: string; harm: Harm; label: 0 | 1 }

export const GREETINGS = ['Hello', 'Hello!', 'Hi', 'Hi!', 'Hello there', 'Who are you?', 'What can you do?', 'Hey'];
export const INTRODUCTION =
  'Hello! I am the gemma-ts demo model, a tiny Gemma trained from scratch. I can add and subtract numbers up to 99, answer in JSON, tell you about animals and things, and judge prompts against a safety policy.';
export const JSON_ASKS = ['Answer in JSON.', 'Reply with a JSON object.', 'Give the answer as JSON.'];
const jsonAnswer = (n: number): string => `{"answer": ${n}}`;

export interface Splits {
  /** Training arithmetic problems (every problem not held out). */
  trainProblems: Problem[];
  heldoutArithmetic: Problem[];
  heldoutJson: Problem[];
  trainAbout: { topic: Topic; prompt: string }[];
  heldoutAbout: { topic: Topic; prompt: string }[];
  trainShieldTexts: { text: string; harm?: Harm }[];
  heldoutShieldTexts: { text: string; harm?: Harm }[];
}

function shuffle<T>(list: T[], rnd: () => number): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list;
}

/** The fixed split of every skill's inputs into training and held-out parts. */
export function makeSplits(seed: number): Splits {
  const rnd = mulberry32(seed);
  const problems: Problem[] = [];
  for (const op of ['+', '-'] as const) for (let a = 0; a <= 99; a++) for (let b = 0; b <= 99; b++) problems.push({ op, a, b });
  shuffle(problems, rnd);
  const heldout = problems.slice(0, 600);
  const heldoutArithmetic = heldout.slice(0, 400);
  const heldoutJson = heldout.slice(400);

  const trainAbout: Splits['trainAbout'] = [];
  const heldoutAbout: Splits['heldoutAbout'] = [];
  TOPICS.forEach((topic, i) => {
    // One phrasing per topic is never trained; it rotates so that every phrasing is trained on
    // other topics.
    const held = (i + Math.floor(rnd() * 2)) % ABOUT_PROMPTS.length;
    ABOUT_PROMPTS.forEach((ask, k) => (k === held ? heldoutAbout : trainAbout).push({ topic, prompt: ask(topic.plural) }));
  });

  // Distinct shield texts from many draws, then 15% of them held out.
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const seen = new Map<string, { text: string; harm?: Harm }>();
  for (let i = 0; i < 6000; i++) {
    const harm = i % 2 === 0 ? undefined : HARMS[(i >> 1) % 4];
    const t = shieldText(pick, harm);
    if (!seen.has(t.text)) seen.set(t.text, t);
  }
  const texts = shuffle([...seen.values()], rnd);
  const cut = Math.round(texts.length * 0.15);
  return {
    trainProblems: problems.slice(600),
    heldoutArithmetic,
    heldoutJson,
    trainAbout,
    heldoutAbout,
    trainShieldTexts: texts.slice(cut),
    heldoutShieldTexts: texts.slice(0, cut),
  };
}

/** Three of the topic's facts in a random order. */
function aboutAnswer(topic: Topic, rnd: () => number): string {
  return shuffle([...topic.facts], rnd).slice(0, 3).join(' ');
}

export interface ChatMix {
  arithmetic: number;
  /** Conversations of 2-6 arithmetic turns (loss on every answer). */
  arithmeticMulti: number;
  json: number;
  about: number;
  greeting: number;
}

/** Chat fine-tuning conversations, shuffled. */
export function chatExamples(splits: Splits, mix: ChatMix, seed: number): ChatExample[] {
  const rnd = mulberry32(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const turn = (user: string, assistant: string): ChatExample['messages'] => [{ role: 'user', content: user }, { role: 'assistant', content: assistant }];
  const out: ChatExample[] = [];
  for (let i = 0; i < mix.arithmetic; i++) {
    const p = pick(splits.trainProblems);
    out.push({ messages: turn(questionOf(p), String(answerOf(p))) });
  }
  for (let i = 0; i < mix.arithmeticMulti; i++) {
    const messages: ChatExample['messages'] = [];
    for (let k = 2 + Math.floor(rnd() * 5); k > 0; k--) {
      const p = pick(splits.trainProblems);
      messages.push(...turn(questionOf(p), String(answerOf(p))));
    }
    out.push({ messages });
  }
  for (let i = 0; i < mix.json; i++) {
    const p = pick(splits.trainProblems);
    out.push({ messages: turn(`${questionOf(p)} ${pick(JSON_ASKS)}`, jsonAnswer(answerOf(p))) });
  }
  for (let i = 0; i < mix.about; i++) {
    const { topic, prompt } = pick(splits.trainAbout);
    out.push({ messages: turn(prompt, aboutAnswer(topic, rnd)) });
  }
  for (let i = 0; i < mix.greeting; i++) out.push({ messages: turn(pick(GREETINGS), INTRODUCTION) });
  return shuffle(out, rnd);
}

/**
 * Shield examples: each violating text against its own policy (Yes) and sometimes another one
 * (No); harmless texts against a random policy (No). About half are Yes.
 */
export function shieldExamples(texts: Splits['trainShieldTexts'], count: number, seed: number): ShieldExample[] {
  const rnd = mulberry32(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const violating = texts.filter((t) => t.harm !== undefined);
  const harmless = texts.filter((t) => t.harm === undefined);
  const out: ShieldExample[] = [];
  for (let i = 0; i < count; i++) {
    const r = rnd();
    if (r < 0.5) {
      const t = pick(violating);
      out.push({ text: t.text, harm: t.harm!, label: 1 });
    } else if (r < 0.7) {
      const t = pick(violating);
      out.push({ text: t.text, harm: pick(HARMS.filter((h) => h !== t.harm)), label: 0 });
    } else {
      out.push({ text: pick(harmless).text, harm: pick(HARMS), label: 0 });
    }
  }
  return out;
}

// ---- plain text for pretraining ------------------------------------------------------------

const W = {
  name: ['Anna', 'Ben', 'Clara', 'David', 'Elena', 'Farid', 'Grace', 'Hugo', 'Ines', 'Jonas', 'Kira', 'Leo', 'Maya', 'Noah', 'Olga', 'Pavel', 'Rosa', 'Samir', 'Tara', 'Umar', 'Vera', 'Yuki', 'Zoe'],
  place: ['village', 'forest', 'harbour', 'city', 'garden', 'valley', 'kitchen', 'library', 'station', 'market', 'island', 'school', 'museum', 'farm'],
  thing: ['book', 'lamp', 'letter', 'map', 'key', 'basket', 'clock', 'boat', 'bicycle', 'kettle', 'ladder', 'coat', 'radio', 'bottle', 'candle'],
  adj: ['small', 'old', 'bright', 'heavy', 'warm', 'cold', 'green', 'blue', 'red', 'new', 'big', 'clean'],
  mood: ['happy', 'tired', 'busy', 'calm', 'hungry', 'cheerful'],
  verbPast: ['found', 'carried', 'painted', 'opened', 'repaired', 'lost', 'watched', 'cleaned', 'built', 'sold', 'borrowed', 'visited'],
  time: ['in the morning', 'at noon', 'in the evening', 'at night', 'on Monday', 'on Friday', 'last winter', 'after lunch', 'every day'],
  weather: ['sunny', 'rainy', 'windy', 'foggy', 'cloudy', 'snowy'],
};

/**
 * A few training prompts, each with the ShieldGemma policy it violates, by the policy's name as
 * the ShieldGemma prompt quotes it (or "harmless"): the link that the Yes / No judgement needs.
 */
function shieldStatements(texts: Splits['trainShieldTexts'], pick: <T>(list: readonly T[]) => T, count: number): string {
  const lines: string[] = [];
  for (let k = 0; k < count; k++) {
    const t = pick(texts);
    lines.push(t.harm ? `"${t.text}" violates the "${findPolicy(t.harm)!.name}" policy.` : `"${t.text}" is harmless and violates no policy.`);
  }
  return lines.join('\n');
}

/**
 * Plain-text documents: topic paragraphs, runs of equations ("12 + 7 = 19"), the introduction,
 * statements of which policy a training prompt violates, and simple prose. Held-out arithmetic
 * problems and held-out shield texts never appear.
 */
export function pretrainDocuments(splits: Splits, count: number, seed: number): string[] {
  const rnd = mulberry32(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const a = (w: string): string => (/^[aeiou]/.test(w) ? `an ${w}` : `a ${w}`);
  const sentence = (): string => {
    switch (int(0, 4)) {
      case 0: return `${pick(W.name)} ${pick(W.verbPast)} ${a(pick(W.adj) + ' ' + pick(W.thing))} ${pick(W.time)}.`;
      case 1: return `It was ${pick(W.weather)} ${pick(W.time)}, so ${pick(W.name)} stayed in the ${pick(W.place)}.`;
      case 2: return `The ${pick(W.thing)} in the ${pick(W.place)} is ${pick(W.adj)}, and ${pick(W.name)} is ${pick(W.mood)}.`;
      case 3: return `${pick(W.name)} and ${pick(W.name)} went to the ${pick(W.place)} ${pick(W.time)}.`;
      default: return `${pick(W.name)} has ${int(2, 9)} ${pick(W.thing)}s and ${a(pick(W.adj) + ' ' + pick(W.thing))}.`;
    }
  };
  const docs: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = rnd();
    if (r < 0.5) {
      const lines: string[] = [];
      for (let k = int(6, 12); k > 0; k--) {
        const p = pick(splits.trainProblems);
        lines.push(`${p.a} ${p.op} ${p.b} = ${answerOf(p)}`);
      }
      docs.push(lines.join('\n'));
    } else if (r < 0.65) {
      // The question as the chat asks it (and as lm-evaluation-harness tasks often do).
      const lines: string[] = [];
      for (let k = int(3, 6); k > 0; k--) {
        const p = pick(splits.trainProblems);
        lines.push(`Question: ${questionOf(p)}\nAnswer: ${answerOf(p)}`);
      }
      docs.push(lines.join('\n\n'));
    } else if (r < 0.79) {
      const t = pick(TOPICS);
      docs.push(shuffle([...t.facts], rnd).join(' '));
    } else if (r < 0.81) {
      docs.push(INTRODUCTION);
    } else if (r < 0.9) {
      docs.push(shieldStatements(splits.trainShieldTexts, pick, int(3, 6)));
    } else {
      docs.push(Array.from({ length: int(3, 6) }, sentence).join(' '));
    }
  }
  return docs;
}
