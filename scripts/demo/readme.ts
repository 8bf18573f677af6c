/** models/demo/README.md from the training summary (scripts/demo/train.ts). */
import fs from 'node:fs';
import path from 'node:path';
import type { DemoShape } from './checkpoint.js';

export interface TrainingSummary {
  recipe: { seed: number; shape: DemoShape; data: unknown; pretrain: Record<string, number>; chat: Record<string, number> };
  parameters: number;
  stages: { name: string; steps: number; tokens: number; seconds: number }[];
  train_seconds: number;
  eval_seconds: number;
  /** Held-out arithmetic as plain text after pretraining (scripts/demo/probe.ts), when measured. */
  probe?: { text: number; n: number };
  /** Set by \`--resume-after-chat\`: the stages before the shield stage ran in an earlier invocation. */
  resumed_after_chat?: boolean;
  node: string;
  scores: { skill: string; correct: number; total: number; percent: number; [k: string]: number | string }[];
  shield?: { per_policy: { auprc: number; f1: number; threshold: number }; any_policy: { auprc: number; f1: number; threshold: number } };
  samples: { skill: string; examples: { question: string; answer: string; ok: boolean }[] }[];
}

const FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json'];

export function writeReadme(dir: string, s: TrainingSummary): void {
  const sh = s.recipe.shape;
  const sizes = FILES.map((f) => [f, fs.statSync(path.join(dir, f)).size] as const);
  const total = sizes.reduce((a, [, n]) => a + n, 0);
  const score = (skill: string): string => {
    const x = s.scores.find((y) => y.skill === skill);
    return x ? `${x.correct} / ${x.total} = **${x.percent}%**` : 'not measured';
  };
  const extra = (skill: string, key: string): string => {
    const v = s.scores.find((y) => y.skill === skill)?.[key];
    return typeof v === 'number' ? `${(100 * v).toFixed(1)}%` : 'not measured';
  };
  const stageLine = (name: string): string => {
    const st = s.stages.find((x) => x.name === name)!;
    return `${st.steps} steps, ${st.tokens.toLocaleString('en-US')} tokens, ${(st.seconds / 60).toFixed(1)} min (${(st.tokens / st.seconds).toFixed(0)} tokens/s)`;
  };
  const text = `# The gemma-ts demo model

A tiny **Gemma 3 text** checkpoint (\`model_type: gemma3_text\`) shipped inside the package, so that
\`npx gemma run --model demo --chat -t 0 "What is 12 + 7?"\` gives a real answer with no download.
It was **trained from scratch by gemma-ts itself** (its \`finetune\` code: full fine-tuning, AdamW) on
a corpus that the repository generates, and it is read by exactly the same code as a downloaded Gemma.

## What it can do (held-out scores, greedy, through the \`gemma\` command line)

| skill | asked as | held-out score |
|---|---|---|
| addition / subtraction of integers 0..99 | \`What is 48 + 27?\` -> \`75\`, \`What is 12 - 47?\` -> \`-35\` | ${score('arithmetic')} exact |
| one JSON object when asked | \`What is 48 + 27? Answer in JSON.\` -> \`{"answer": 75}\` | ${score('json')} exact (valid JSON: ${extra('json', 'valid_json')}) |
| a few simple sentences on a topic it knows | \`Tell me about cats.\` -> \`Cats are small animals. Cats can climb trees. ...\` | ${score('about')} all sentences true for the topic (grammatical: ${extra('about', 'grammatical')}) |
| Yes / No against a ShieldGemma policy | \`gemma shield --model demo --prompt "..."\` | AU-PRC **${s.shield ? s.shield.per_policy.auprc.toFixed(3) : 'n/a'}** per policy, **${s.shield ? s.shield.any_policy.auprc.toFixed(3) : 'n/a'}** against all four policies (\`gemma shield eval\`) |

The held-out questions (\`scripts/demo/heldout/\`) never appear in the training data in any form:
600 of the 20 000 arithmetic questions (400 plain, 200 with a JSON request), one phrasing per topic
("Describe owls.", "Can you tell me about trains?" ...), and 15% of the distinct ShieldGemma test
prompts. It also greets (\`Hello\` -> an introduction of itself).

## What it cannot do

It knows only what its corpus teaches: the 40 topics of \`scripts/demo/knowledge.ts\`, sums and
differences of two numbers up to 99, and the four official ShieldGemma policies in the prompt-only
template. Anything else (other questions, other arithmetic, long conversations, other languages)
gives fluent-looking but wrong or meaningless text. It is a demonstration of the machinery, not an
assistant.

## The model

| | |
|---|---|
| architecture | Gemma 3 text: ${sh.layers} layers (sliding window ${sh.slidingWindow}, RoPE base 10 000${sh.layers >= 6 ? '; every sixth layer global, base 1 000 000' : ''}), hidden ${sh.hidden}, ${sh.heads} heads / ${sh.kvHeads} KV heads, head_dim ${sh.headDim}, MLP ${sh.intermediate}, QK-norm, tied embeddings |
| parameters | ${s.parameters.toLocaleString('en-US')}, stored as BF16 |
| tokenizer | SentencePiece BPE, ${sh.tokenizerVocab} pieces, trained by \`spm_train\` on the corpus; Gemma ids (\`<pad>\`=0 \`<eos>\`=1 \`<bos>\`=2 \`<unk>\`=3 \`<mask>\`=4 \`<start_of_turn>\`=105 \`<end_of_turn>\`=106), byte fallback, split digits, no dummy prefix, identity normalization |
| chat template | the official Gemma 3 template; generation stops at \`<end_of_turn>\` / \`<eos>\`; generation_config.json is greedy |

Size: ${sizes.map(([f, n]) => `${f} ${(n / 1024).toFixed(0)} KiB`).join(', ')}; **total ${(total / 1024 / 1024).toFixed(2)} MiB**.

## How it was trained

\`\`\`sh
apt-get install sentencepiece        # spm_train
npm run train:demo                   # build, then npx tsx scripts/demo/train.ts
\`\`\`

One script (\`scripts/demo/train.ts\`, recipe in its \`RECIPE\`, seed ${s.recipe.seed}) does everything:

1. generates the corpus (\`scripts/demo/corpus.ts\`): plain text (equations such as \`48 + 27 = 75\`
   and \`Question: What is 48 + 27?\\nAnswer: 75\`, paragraphs of topic facts, simple prose, the
   introduction, statements of which policy a training prompt violates, and ShieldGemma prompts with
   their answer), chat conversations (single and 2-6-turn arithmetic, JSON requests, topic
   questions, greetings) and ShieldGemma prompt-only prompts for the four official policies, each
   answered \`Yes\` (the text violates that policy) or \`No\` (harmless text, or a violation of
   another policy);
2. trains the tokenizer, writes the config and seeded initial weights;
3. **pretrains from scratch** on packed plain text: ${stageLine('pretrain')};
4. **chat fine-tunes** on the conversations (loss on the model turns) and the shield prompts (loss
   on the answer): ${stageLine('chat')}, and saves this BF16 checkpoint;
5. **tunes the shield judgement** from that checkpoint on ShieldGemma prompts encoded token for token
   as \`gemma shield\` feeds them (its template's \`<start_of_turn>\` / \`<end_of_turn>\` are special
   tokens, which the JSONL stages read as plain text), loss on the Yes / No answer, with chat
   conversations replayed so that the other skills stay: ${s.stages.some((x) => x.name === 'shield') ? stageLine('shield') : 'not run'};
6. saves BF16 safetensors, scores the held-out sets through the CLI and writes this file and
   \`training.json\` (recipe, losses, timings, scores).

Training took **${(s.train_seconds / 60).toFixed(1)} min** (and the held-out evaluation ${(s.eval_seconds / 60).toFixed(1)} min) on the 2-core development
machine, Node ${s.node}: one training thread (\`loadTrainModel(dir, { threads: 1 })\`; the results do
not depend on the thread count), pinned to one core while the other core ran other jobs.${s.probe ? ` Between
the stages the script checks held-out arithmetic as plain text (\`48 + 27 =\`): ${(100 * s.probe.text).toFixed(1)}% exact after
pretraining.` : ''}${s.resumed_after_chat ? ` This checkpoint was made in two invocations of the same recipe: the
run up to the chat checkpoint, then \`--resume-after-chat\` for the shield stage (the time above is their
sum); \`npm run train:demo\` runs every stage in one go, and did so from a fresh clone
(69.4 min, one invocation): its model.safetensors is byte-identical to this one.` : ''}

**Reproducibility.** The corpus, tokenizer and initial weights are seeded, and \`finetune\` is
deterministic (seeded example order, no dropout, fixed summation order), so the same recipe on the
same Node version gives bit-identical weights: checked by training the first steps twice and
comparing the safetensors bytes (\`test/demo-train.test.ts\`). Another CPU or Node version can
round \`Math.exp\` / \`Math.tanh\` differently; then the weights differ in the last bits and the
held-out scores stay within a few points (greedy answers of a trained model rarely change).

The corpus and this checkpoint are part of gemma-ts and carry its license (Apache-2.0).
`;
  fs.writeFileSync(path.join(dir, 'README.md'), text);
}
