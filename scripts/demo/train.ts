/**
 * `npm run train:demo`: builds models/demo from nothing, with gemma-ts' own training code.
 *
 *   1. data: the seeded corpus (scripts/demo/corpus.ts) -> tmp/demo-train/*.jsonl, and the
 *      held-out sets -> scripts/demo/heldout/ (committed; the tests read them);
 *   2. tokenizer: spm_train on a sample of that data (scripts/demo/tokenizer.ts);
 *   3. a Gemma 3 text config and seeded initial weights (scripts/demo/checkpoint.ts);
 *   4. pretraining from scratch on plain text (finetune() on packed {"text"} documents);
 *   5. chat fine-tuning: {"messages"} (loss on the model turns) and ShieldGemma prompts
 *      {"prompt", "completion": "Yes" | "No"};
 *   6. the weights are written as BF16 safetensors with the tokenizer and configs;
 *   7. held-out scores through the `gemma` CLI (greedy), written into models/demo/README.md
 *      and models/demo/training.json.
 *
 *   npx tsx scripts/demo/train.ts [--out DIR] [--work DIR] [--heldout DIR] [--corpus-sample FILE] [--no-eval]
 *                                 [--recipe PARTIAL.json]
 *                                 [--pretrain-steps N] [--chat-steps N] [--shield-steps N]   (shorter runs, for checks)
 *                                 [--resume-after-chat]   (a run whose chat checkpoint and training.json
 *                                                          are in --out: only the shield stage and scoring)
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel } from '../../src/model/load.js';
import { ShieldClassifier } from '../../src/safety/classifier.js';
import { findPolicy } from '../../src/safety/templates.js';
import { finetune, loadJsonl, loadTrainModel, saveFullModel, type FinetuneOptions, type TrainExample, type TrainModel } from '../../src/train/index.js';
import { writeConfigs, writeInitialWeights, type DemoShape } from './checkpoint.js';
import { makeSplits, shieldExamples } from './corpus.js';
import { writeHeldout, writeTrainingData, type DataSizes } from './data.js';
import { evaluateModel, type TrainingRecord } from './evaluate.js';
import { probeArithmetic } from './probe.js';
import { HELDOUT, ROOT } from './score.js';
import { trainTokenizer } from './tokenizer.js';

/** Everything that decides the model. Same recipe, same bytes (training is deterministic). */
export const RECIPE = {
  seed: 20261203,
  shape: {
    tokenizerVocab: 1000,
    tableRows: 1024,
    hidden: 96,
    layers: 4,
    heads: 4,
    kvHeads: 2,
    headDim: 24,
    intermediate: 384,
    slidingWindow: 512,
  } satisfies DemoShape,
  data: {
    pretrainDocs: 66000,
    pretrainShield: 2500,
    chat: { arithmetic: 20000, arithmeticMulti: 8000, json: 6000, about: 3000, greeting: 300 },
    shield: 4500,
  } satisfies DataSizes,
  pretrain: { steps: 3200, batchSize: 8, maxSeqLen: 256, lr: 1e-2, warmup: 100 },
  chat: { steps: 2600, batchSize: 16, maxSeqLen: 512, lr: 3e-3, warmup: 50 },
  // From the BF16 chat checkpoint: ShieldGemma prompts token for token as `gemma shield` feeds
  // them (its template's <start_of_turn> / <end_of_turn> are special tokens; the JSONL stages read
  // them as plain text), loss on the Yes / No answer, with chat conversations replayed.
  shield: { examples: 2000, replay: 3000, steps: 310, batchSize: 16, lr: 1e-3, warmup: 20 },
};

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: path.join(ROOT, 'models', 'demo') },
    work: { type: 'string', default: path.join(ROOT, 'tmp', 'demo-train') },
    heldout: { type: 'string', default: HELDOUT },
    'corpus-sample': { type: 'string', default: path.join(ROOT, 'scripts', 'demo-corpus', 'generated.txt') },
    'no-eval': { type: 'boolean', default: false },
    recipe: { type: 'string' },
    'pretrain-steps': { type: 'string' },
    'chat-steps': { type: 'string' },
    'shield-steps': { type: 'string' },
    'resume-after-chat': { type: 'boolean', default: false },
  },
});
// --recipe FILE.json: a partial recipe merged over RECIPE (for experiments; the shipped model
// is trained with RECIPE as written here).
if (args.recipe) {
  const merge = (into: Record<string, unknown>, from: Record<string, unknown>): void => {
    for (const [k, v] of Object.entries(from)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) merge(into[k] as Record<string, unknown>, v as Record<string, unknown>);
      else into[k] = v;
    }
  };
  merge(RECIPE as unknown as Record<string, unknown>, JSON.parse(fs.readFileSync(args.recipe, 'utf8')) as Record<string, unknown>);
}
if (args['pretrain-steps']) RECIPE.pretrain.steps = Number(args['pretrain-steps']);
if (args['chat-steps']) RECIPE.chat.steps = Number(args['chat-steps']);
if (args['shield-steps']) RECIPE.shield.steps = Number(args['shield-steps']);
const OUT = path.resolve(args.out!);
const WORK = path.resolve(args.work!);
const HELD = path.resolve(args.heldout!);

const t0 = performance.now();
const minutes = (ms: number): string => `${(ms / 60000).toFixed(1)} min`;
const log = (s: string): void => console.log(`[${minutes(performance.now() - t0)}] ${s}`);

// ---- 1. data -------------------------------------------------------------------------------
fs.rmSync(WORK, { recursive: true, force: true });
const splits = makeSplits(RECIPE.seed);
const files = writeTrainingData(WORK, splits, RECIPE.data, RECIPE.seed);
writeHeldout(HELD, splits, RECIPE.seed);
log(`data: ${RECIPE.data.pretrainDocs} pretraining documents, ${Object.values(RECIPE.data.chat).reduce((a, b) => a + b, 0)} conversations, ${RECIPE.data.shield} shield prompts in ${path.relative(ROOT, WORK)}; held-out sets in ${path.relative(ROOT, HELD)}`);

// ---- 2-5. tokenizer, config, initial weights; pretraining, chat fine-tuning ------------------------
interface StageResult { name: string; steps: number; tokens: number; seconds: number; firstLoss: number; lastLoss: number }
const dataOptions = (maxSeqLen: number, pack: boolean) => ({ maxSeqLen, pack, vocabSize: RECIPE.shape.tableRows });

async function stage(name: string, m: TrainModel, examples: TrainExample[], o: { steps: number; batchSize: number; lr: number; warmup: number }): Promise<StageResult> {
  const options: FinetuneOptions = {
    optimizer: 'adamw', lr: o.lr, steps: o.steps, batchSize: o.batchSize, warmup: o.warmup, schedule: 'cosine',
    weightDecay: 0.01, beta2: 0.95, maxGradNorm: 1, seed: RECIPE.seed,
  };
  const start = performance.now();
  let tokens = 0, firstLoss = NaN, lastLoss = NaN, recent: number[] = [];
  const every = Math.max(1, Math.round(o.steps / 40));
  for await (const r of finetune(m, examples, options)) {
    if (r.type !== 'step') continue;
    tokens += r.tokens;
    if (r.step === 1) firstLoss = r.loss;
    recent.push(r.loss);
    if (r.step % every === 0 || r.step === o.steps) {
      const s = (performance.now() - start) / 1000;
      const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
      lastLoss = mean;
      recent = [];
      log(`${name} step ${r.step}/${o.steps}: loss ${mean.toFixed(3)}, ${(tokens / s).toFixed(0)} tok/s, ${minutes(s * 1000)} so far, ~${minutes(((o.steps - r.step) * s * 1000) / r.step)} left`);
    }
  }
  return { name, steps: o.steps, tokens, seconds: (performance.now() - start) / 1000, firstLoss, lastLoss };
}

let record: TrainingRecord;
/** The chat conversations, tokenized once: the chat stage trains on them, the shield stage replays some. */
let conversations: TrainExample[] | undefined;
if (args['resume-after-chat']) {
  const earlier = JSON.parse(fs.readFileSync(path.join(OUT, 'training.json'), 'utf8')) as TrainingRecord;
  record = { ...earlier, stages: earlier.stages.filter((st) => st.name === 'pretrain' || st.name === 'chat'), resumed_after_chat: true };
  log(`resuming after the chat stage from ${path.relative(ROOT, OUT) || OUT} (${Math.round(record.train_seconds / 60)} min of training so far)`);
} else {
  const INIT = path.join(WORK, 'init');
  trainTokenizer(ROOT, [path.relative(ROOT, files.tokenizerCorpus)], path.relative(ROOT, INIT), RECIPE.shape.tokenizerVocab);
  // Every 20th line of the tokenizer's corpus, committed: the tokenizer tests compare our encoders
  // with spm_encode on it.
  const corpusLines = fs.readFileSync(files.tokenizerCorpus, 'utf8').split('\n').filter((l, i) => l !== '' && i % 20 === 0);
  fs.writeFileSync(path.resolve(args['corpus-sample']!), corpusLines.join('\n') + '\n');
  writeConfigs(INIT, RECIPE.shape);
  const params = writeInitialWeights(path.join(INIT, 'model.safetensors'), RECIPE.shape, RECIPE.seed);
  log(`tokenizer: ${RECIPE.shape.tokenizerVocab} pieces; model: ${params.toLocaleString('en-US')} parameters`);

  // One thread: the run's time is reported for one core, and results do not depend on the count.
  const { model, tokenizer } = await loadTrainModel(INIT, { threads: 1 });
  if (!tokenizer) throw new Error('the initial checkpoint has no tokenizer');

  const pretrainExamples = loadJsonl(files.pretrain, tokenizer, dataOptions(RECIPE.pretrain.maxSeqLen, true));
  log(`pretraining on ${pretrainExamples.length} packed sequences of <= ${RECIPE.pretrain.maxSeqLen} tokens`);
  const stages: StageResult[] = [await stage('pretrain', model, pretrainExamples, RECIPE.pretrain)];

  // A progress check between the stages: held-out arithmetic as plain text ("48 + 27 =").
  const PRETRAINED = path.join(WORK, 'pretrained');
  saveFullModel(model, PRETRAINED);
  const probe = await probeArithmetic(PRETRAINED, HELD, 200);
  log(`after pretraining: held-out arithmetic as text ${(100 * probe.text).toFixed(1)}% exact (${probe.n} problems; not yet asked in chat form)`);

  conversations = loadJsonl(files.chat, tokenizer, dataOptions(RECIPE.chat.maxSeqLen, false));
  const chatExamples = [...conversations, ...loadJsonl(files.shield, tokenizer, dataOptions(RECIPE.chat.maxSeqLen, false))];
  log(`chat fine-tuning on ${chatExamples.length} conversations and shield prompts`);
  stages.push(await stage('chat', model, chatExamples, RECIPE.chat));

  // The chat checkpoint (BF16), which the shield stage starts from.
  fs.rmSync(OUT, { recursive: true, force: true });
  saveFullModel(model, OUT);
  record = { recipe: RECIPE, parameters: params, stages, train_seconds: Math.round((performance.now() - t0) / 1000), probe: { text: probe.text, n: probe.n }, node: process.version };
  fs.writeFileSync(path.join(OUT, 'training.json'), JSON.stringify(record, null, 2) + '\n');
  log(`wrote the chat checkpoint to ${path.relative(ROOT, OUT) || OUT} (BF16)`);
}

// ---- 6. the shield stage, from the BF16 chat checkpoint ---------------------------------------
const resumedAt = performance.now();
{
  const { model, tokenizer } = await loadTrainModel(OUT, { threads: 1 });
  if (!tokenizer) throw new Error(`${OUT} has no tokenizer`);
  // The prompts exactly as `gemma shield` encodes them: its own classifier renders and encodes.
  const inference = await loadModel(OUT, { backend: 'js' });
  const classifier = new ShieldClassifier(inference.model, inference.tokenizer!, {});
  const { yes, no } = classifier.yesNoIds;
  const shieldStage: TrainExample[] = shieldExamples(splits.trainShieldTexts, RECIPE.shield.examples, RECIPE.seed + 7).map((e) => {
    const ids = [...classifier.prompts({ prompt: e.text, policies: [findPolicy(e.harm)!.id] })[0]!.ids, e.label ? yes : no];
    const targets = new Uint8Array(ids.length);
    targets[ids.length - 1] = 1;
    return { ids, targets };
  });
  inference.model.dispose();
  const replay = (conversations ?? loadJsonl(files.chat, tokenizer, dataOptions(RECIPE.chat.maxSeqLen, false))).slice(0, RECIPE.shield.replay);
  log(`shield stage: ${shieldStage.length} ShieldGemma prompts as \`gemma shield\` encodes them, ${replay.length} chat conversations replayed`);
  record.stages.push(await stage('shield', model, [...shieldStage, ...replay], RECIPE.shield));
  const TMP = `${OUT}.tmp`;
  fs.rmSync(TMP, { recursive: true, force: true });
  saveFullModel(model, TMP);
  fs.copyFileSync(path.join(TMP, 'model.safetensors'), path.join(OUT, 'model.safetensors'));
  fs.rmSync(TMP, { recursive: true, force: true });
}
const trainSeconds = record.train_seconds + (performance.now() - resumedAt) / 1000;
log(`wrote ${path.relative(ROOT, OUT) || OUT} (BF16)`);

// ---- 7. held-out scores --------------------------------------------------------------------------
const training: TrainingRecord = { ...record, recipe: RECIPE, train_seconds: Math.round(trainSeconds) };
// Written before scoring, so that scripts/demo/evaluate.ts can (re)score this model on its own.
fs.writeFileSync(path.join(OUT, 'training.json'), JSON.stringify(training, null, 2) + '\n');
if (!args['no-eval']) evaluateModel(OUT, HELD, log);
log(`done in ${minutes(performance.now() - t0)}`);
