/**
 * `gemma finetune --model M --data FILE|DIR --method full|lora --out DIR [--json] ...`: parse the
 * flags, load model and data, run the library's `finetune` iterator, print one line per step
 * (JSON with --json), write the result: a model directory (full) or a PEFT adapter directory
 * plus adapter.gguf for llama.cpp (lora).
 */
import { InvalidArgumentError, type Command } from 'commander';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { FinetuneReport } from '../train/finetune.js';
import type { OptimizerName, ScheduleName } from '../train/optim.js';
import { defaultIO, parseFloatFlag, parseIntFlag, safeWrite, type CliIO } from './options.js';

interface FinetuneFlags {
  model: string;
  data: string;
  method: 'full' | 'lora';
  optimizer: OptimizerName;
  lr?: number;
  steps?: number;
  epochs?: number;
  batchSize: number;
  gradAccum: number;
  maxSeqLen: number;
  maxGradNorm: number;
  warmup: number;
  schedule: ScheduleName;
  weightDecay: number;
  seed: number;
  shuffle: boolean;
  pack?: boolean;
  parseSpecial?: boolean;
  evalEvery: number;
  out: string;
  json?: boolean;
  backend?: 'js' | 'wasm';
  threads?: number;
  rank: number;
  alpha: number;
  dropout: number;
  rslora?: boolean;
  targets: string;
  saveEvery: number;
  resume?: string | boolean;
}

function choice<T extends string>(values: readonly T[]): (v: string) => T {
  return (v: string) => {
    if (!values.includes(v as T)) throw new InvalidArgumentError(`expected ${values.join(' or ')}.`);
    return v as T;
  };
}

/** One report as the --json line of the contract: {"step", "loss", "lr", "tokens", ...}. */
export function reportJson(r: FinetuneReport): string {
  if (r.type === 'eval') return JSON.stringify({ step: r.step, val_loss: r.valLoss, val_targets: r.valTargets });
  return JSON.stringify({
    step: r.step, loss: r.loss, lr: r.lr, tokens: r.tokens, targets: r.targets, grad_norm: r.gradNorm,
    tokens_per_s: Math.round(r.tokensPerSecond * 10) / 10, elapsed_s: Math.round(r.elapsed * 1000) / 1000,
  });
}

function reportText(r: FinetuneReport): string {
  if (r.type === 'eval') return `step ${r.step}: validation loss ${r.valLoss.toFixed(4)} (${r.valTargets} targets)`;
  return `step ${r.step}/${r.totalSteps}: loss ${r.loss.toFixed(4)}, lr ${r.lr.toExponential(2)}, grad norm ${r.gradNorm.toFixed(3)}, ${r.tokensPerSecond.toFixed(0)} tok/s`;
}

export function registerFinetuneCommand(program: Command, io: CliIO = defaultIO()): void {
  const pos = (what: string) => parseFloatFlag((v) => v > 0, what);
  program
    .command('finetune')
    .description('fine-tune a model on JSONL data (full or LoRA) and write the result')
    .requiredOption('-m, --model <model>', 'model directory (Hugging Face layout), .gguf file, or "demo"')
    .requiredOption('--data <path>', 'a .jsonl file ({"ids"}, {"text"}, {"messages"} or {"prompt","completion"} per line) or a directory with train.jsonl / valid.jsonl')
    .requiredOption('--out <dir>', 'output directory')
    .option('--method <method>', 'full or lora', choice(['full', 'lora'] as const), 'lora')
    .option('--optimizer <name>', 'adamw or sgd', choice(['adamw', 'sgd'] as const), 'adamw')
    .option('--lr <x>', 'peak learning rate (default 1e-5)', parseFloatFlag((v) => v >= 0, 'a number >= 0'))
    .option('--steps <n>', 'optimizer steps', parseIntFlag(1))
    .option('--epochs <n>', 'passes over the training data when --steps is not given (default 1)', pos('a number > 0'))
    .option('--batch-size <n>', 'sequences per micro-batch', parseIntFlag(1), 1)
    .option('--grad-accum <n>', 'micro-batches per optimizer step', parseIntFlag(1), 1)
    .option('--max-seq-len <n>', 'longest sequence (longer ones are an error, or packed text is split)', parseIntFlag(2), 2048)
    .option('--max-grad-norm <x>', 'clip the global gradient norm (0 = off)', parseFloatFlag((v) => v >= 0, 'a number >= 0'), 1)
    .option('--warmup <n>', 'linear warmup steps', parseIntFlag(0), 0)
    .option('--schedule <name>', 'constant, linear or cosine (after warmup)', choice(['constant', 'linear', 'cosine'] as const), 'constant')
    .option('--weight-decay <x>', 'decoupled weight decay (never on norms)', parseFloatFlag((v) => v >= 0, 'a number >= 0'), 0)
    .option('--seed <n>', 'random seed (shuffling, LoRA init, dropout)', parseIntFlag(0), 0)
    .option('--no-shuffle', 'keep the file order')
    .option('--pack', 'pack {"text"} examples into --max-seq-len sequences')
    .option('--parse-special', 'read special-token text such as <start_of_turn> in "text" / "prompt" / "completion" as those tokens (as Hugging Face tokenizers do)')
    .option('--eval-every <n>', 'validation loss every N steps (needs valid.jsonl)', parseIntFlag(0), 0)
    .option('--rank <r>', 'LoRA rank', parseIntFlag(1), 8)
    .option('--alpha <a>', 'LoRA alpha (scale = alpha / rank)', pos('a number > 0'), 16)
    .option('--dropout <p>', 'LoRA dropout on the adapters\' input', parseFloatFlag((v) => v >= 0 && v < 1, 'a number in [0, 1)'), 0)
    .option('--rslora', 'rank-stabilized LoRA: scale = alpha / sqrt(rank)')
    .option('--targets <modules>', 'LoRA target modules: all-linear, or a comma list of q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj', 'all-linear')
    .option('--save-every <n>', 'write a checkpoint (trainable weights + optimizer state) to OUT/checkpoints every N steps', parseIntFlag(0), 0)
    .option('--resume [checkpoint]', 'continue from a checkpoint (default: the newest in OUT/checkpoints)')
    .option('--json', 'one JSON line per step and per evaluation')
    .option('--backend <name>', 'matrix-product kernels: wasm (default, SIMD) or js (the f64-sum reference)', choice(['js', 'wasm'] as const))
    .option('--threads <n>', 'worker threads of the wasm kernels (default: the physical cores; results do not depend on it)', parseIntFlag(1, 256))
    .action(async (flags: FinetuneFlags) => {
      // the training code loads with the command, not with every `gemma` start
      const [{ latestCheckpoint, loadCheckpoint, saveCheckpoint }, { savePeftAdapter, saveGgufAdapter }, { addLoraLayers, resolveTargets }, { loadTrainModel, saveFullModel }, { loadDataset }, { finetune }] = await Promise.all([
        import('../train/checkpoint.js'), import('../train/adapter.js'), import('../train/lora.js'), import('../train/checkpoint-io.js'), import('../train/data.js'), import('../train/finetune.js'),
      ]);
      const lora = flags.method === 'lora';
      const targets = lora ? resolveTargets(flags.targets) : [];
      const { model, tokenizer } = await loadTrainModel(flags.model, { backend: flags.backend, trainable: !lora, threads: flags.threads });
      if (lora) addLoraLayers(model, { rank: flags.rank, alpha: flags.alpha, dropout: flags.dropout, rslora: flags.rslora === true, targets }, flags.seed);
      const data = loadDataset(flags.data, tokenizer, { maxSeqLen: flags.maxSeqLen, pack: flags.pack, parseSpecial: flags.parseSpecial === true, vocabSize: model.weights.embed.rows });
      let resumed: ReturnType<typeof loadCheckpoint> | undefined;
      if (flags.resume !== undefined) {
        const dir = typeof flags.resume === 'string' ? flags.resume : latestCheckpoint(flags.out);
        if (dir) {
          resumed = loadCheckpoint(dir, model);
          io.stderr.write(`resuming from ${dir} (step ${resumed.step})\n`);
        } else io.stderr.write(`note: no checkpoint in ${flags.out}/checkpoints: starting from step 1\n`);
      }
      const reports = finetune(model, data, {
        optimizer: flags.optimizer, lr: flags.lr, steps: flags.steps, epochs: flags.epochs, batchSize: flags.batchSize,
        gradAccum: flags.gradAccum, maxGradNorm: flags.maxGradNorm, warmup: flags.warmup, schedule: flags.schedule,
        weightDecay: flags.weightDecay, seed: flags.seed, shuffle: flags.shuffle, evalEvery: flags.evalEvery,
        startStep: resumed?.step, optimizerState: resumed?.state,
        onStep: flags.saveEvery > 0 ? ({ step, totalSteps, optimizer }) => {
          if (step % flags.saveEvery === 0 || step === totalSteps) saveCheckpoint(flags.out, model, optimizer.state, step);
        } : undefined,
      });
      const bar = !flags.json && io.stderr.isTTY ? new cliProgress.SingleBar(
        { stream: io.stderr as NodeJS.WritableStream, format: 'training [{bar}] {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}', hideCursor: true, etaBuffer: 20 },
        cliProgress.Presets.shades_classic,
      ) : undefined;
      try {
        for await (const r of reports) {
          if (bar && r.type === 'step') {
            if (!bar.getTotal()) bar.start(r.totalSteps, r.step - 1, { loss: '-', tps: '-' });
            bar.update(r.step, { loss: r.loss.toFixed(4), tps: r.tokensPerSecond.toFixed(0) });
            continue;
          }
          safeWrite(io, (flags.json ? reportJson(r) : reportText(r)) + '\n');
        }
      } finally {
        bar?.stop();
      }
      if (lora) {
        savePeftAdapter(model, flags.out);
        saveGgufAdapter(model, path.join(flags.out, 'adapter.gguf'));
      } else saveFullModel(model, flags.out);
      if (!flags.json) safeWrite(io, `wrote ${flags.out}\n`);
    });
}
