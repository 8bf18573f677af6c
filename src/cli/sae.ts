/**
 * `gemma sae features|explain|eval`: Gemma Scope sparse autoencoders on a model's activations.
 *
 *   gemma sae features --model M --sae PATH (--prompt TEXT | --ids 2,17,...) [--top 10] [--json]
 *   gemma sae explain  --model M --sae PATH --feature F [--corpus FILE] [--json]
 *   gemma sae eval     --model M --sae PATH --corpus FILE [--json] [--density FILE]
 *
 * `--hook NAME` names the hook point when the SAE's path does not
 * (<release>-res|-mlp|-att/layer_{L}/...). `features --json` prints
 * {"tokens": [{"id": 2, "features": [{"index": 123, "value": 4.56}, ...]}, ...]},
 * each token's features sorted by value, largest first.
 */
import fs from 'node:fs';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import type { Backend } from '../backend/backend.js';
import { isTensorBackend, type TensorBackend } from '../backend/tensor.js';
import { UsageError } from '../errors.js';
import { checkPromptIds } from '../generate/generate.js';
import { readCorpus, type CorpusDocument } from '../interpret/corpus.js';
import { logitLensAsync, topActivatingContextsAsync } from '../interpret/explain.js';
import { readFeaturesAsync } from '../interpret/features.js';
import { evaluateSaeAsync } from '../interpret/metrics.js';
import { loadSae, type JumpReluSae } from '../interpret/sae.js';
import { interventionHooksFromFlags } from '../interpret/steering.js';
import type { Hook, LanguageModel } from '../model/types.js';
import type { LoadedModel } from '../model/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { addModelOptions, chatPromptIds, collect, defaultIO, loadForCli, parseIdList, parseIntFlag, safeWrite, type CliIO, type ModelFlags } from './options.js';

interface SaeFlags extends ModelFlags {
  sae: string;
  hook?: string;
  json?: boolean;
}

interface FeaturesFlags extends SaeFlags {
  prompt?: string;
  ids?: number[];
  top: number;
  chat?: boolean;
  system?: string;
}

interface CorpusFlags {
  corpus?: string;
  ctx: number;
  maxTokens: number;
  maxDocs?: number;
}

interface ExplainFlags extends SaeFlags, CorpusFlags {
  feature: number;
  top: number;
  contexts: number;
}

interface EvalFlags extends SaeFlags, CorpusFlags {
  density?: string;
  zeroAblation: boolean;
}

function addSaeOptions(cmd: Command): Command {
  addModelOptions(cmd);
  return cmd
    .requiredOption('--sae <path>', 'SAE: a Gemma Scope params.npz, a safetensors file, or a directory holding one')
    .option('--hook <name>', 'hook point when the SAE path does not name one, e.g. blocks.12.hook_resid_post')
    .option('--json', 'print JSON');
}

function addCorpusOptions(cmd: Command, required: boolean): Command {
  const desc = 'corpus: JSONL (one string, {"text": ...} or {"ids": [...]} per line) or a text file';
  (required ? cmd.requiredOption('--corpus <file>', desc) : cmd.option('--corpus <file>', desc));
  return cmd
    .option('--ctx <n>', 'tokens per document, <bos> included', parseIntFlag(2, 1 << 20), 128)
    .option('--max-tokens <n>', 'stop reading the corpus after this many tokens', parseIntFlag(2), 16384)
    .option('--max-docs <n>', 'stop reading the corpus after this many documents', parseIntFlag(1));
}

function pieceOf(tokenizer: Tokenizer | undefined, id: number): string | undefined {
  if (!tokenizer) return undefined;
  return tokenizer.idToPiece(id) ?? tokenizer.decode([id]);
}

function tokenText(tokenizer: Tokenizer | undefined, id: number): string {
  if (!tokenizer) return '';
  return tokenizer.decode([id]);
}

async function openAll(flags: SaeFlags, io: CliIO): Promise<{ loaded: LoadedModel; sae: JumpReluSae; hook: string }> {
  const sae = await loadSae(flags.sae, { hook: flags.hook });
  const loaded = await loadForCli(flags, io);
  try {
    const hook = sae.checkModel(loaded.model.config, flags.hook ?? sae.hook);
    acceleratedEncoder(sae, loaded, io);
    return { loaded, sae, hook };
  } catch (e) {
    loaded.model.dispose();
    throw e;
  }
}

/** Run the SAE encoder on the model's backend when it is not the JS reference (wasm: SIMD + threads). */
function acceleratedEncoder(sae: JumpReluSae, loaded: LoadedModel, io: CliIO): void {
  const backend = (loaded.model as { backend?: Backend | TensorBackend }).backend;
  // a GPU backend's products take GPU tensors, not the host arrays the encoder holds: encode on the CPU there
  if (!backend || backend.name === 'js' || isTensorBackend(backend)) return;
  try {
    sae.useBackend(backend);
  } catch (e) {
    io.stderr.write(`note: the SAE encoder runs in JavaScript (${(e as Error).message})\n`);
  }
}

function progressBar(io: CliIO, label: string): { update(done: number, total: number): void; stop(): void } {
  let bar: cliProgress.SingleBar | undefined;
  return {
    update(done, total) {
      if (!io.stderr.isTTY) return;
      if (!bar) {
        bar = new cliProgress.SingleBar(
          { stream: io.stderr as NodeJS.WritableStream, format: `${label} [{bar}] {value}/{total} documents | {eta_formatted} left`, hideCursor: true, clearOnComplete: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0);
      }
      bar.update(done);
    },
    stop() {
      bar?.stop();
    },
  };
}

function corpusFrom(flags: CorpusFlags, loaded: LoadedModel): CorpusDocument[] {
  const docs = readCorpus(flags.corpus!, loaded.tokenizer, { contextSize: flags.ctx, maxTokens: flags.maxTokens, maxDocuments: flags.maxDocs, bosId: loaded.tokenizer?.bosId ?? loaded.config.bosId });
  for (const d of docs) checkPromptIds(loaded.model, d.ids);
  return docs;
}

/** Flags `--steer PATH:F:COEF`, `--clamp PATH:F:VALUE` (repeatable) and `--sae-hook NAME` for run / chat. */
export interface SteeringFlags {
  steer?: string[];
  clamp?: string[];
  saeHook?: string;
}

/** Add the steering flags to a generation command (run, chat). */
export function addSteeringOptions(cmd: Command): Command {
  return cmd
    .option('--steer <PATH:F:COEF>', 'add COEF x W_dec[F] of the SAE at PATH at its hook point while generating (repeatable)', collect)
    .option('--clamp <PATH:F:VALUE>', 'clamp feature F of the SAE at PATH to VALUE while generating (repeatable)', collect)
    .option('--sae-hook <name>', 'hook point for --steer/--clamp SAEs whose path does not name one');
}

/** The generation hooks the steering flags ask for (undefined: none). */
export function steeringHooksFromCli(model: LanguageModel, flags: SteeringFlags): Promise<Record<string, Hook> | undefined> {
  return interventionHooksFromFlags(model, { steer: flags.steer, clamp: flags.clamp, hook: flags.saeHook });
}

const num = (v: number, digits = 4) => (Number.isFinite(v) ? v.toFixed(digits) : String(v));

export function registerSaeCommands(program: Command, io: CliIO = defaultIO()): void {
  const sae = program.command('sae').description('Gemma Scope sparse autoencoders: read, explain, evaluate features');

  // ------------------------------------------------------------------ features
  const features = sae
    .command('features')
    .description("the top active SAE features of every token of a prompt")
    .option('-p, --prompt <text>', 'prompt text (tokenized with <bos>)')
    .option('--ids <ids>', 'token ids instead of --prompt, e.g. 2,17,311', parseIdList)
    .option('--top <k>', 'features per token', parseIntFlag(1), 10)
    .option('--chat', 'read the prompt as one user turn in the chat template (with the model turn opened), as an -it model sees it')
    .option('--system <text>', 'system prompt (with --chat)');
  addSaeOptions(features);
  features.action(async (flags: FeaturesFlags) => {
    if ((flags.prompt === undefined) === (flags.ids === undefined)) throw new UsageError('give exactly one of --prompt and --ids');
    if (flags.chat && flags.ids) throw new UsageError('--chat needs a text --prompt, not --ids');
    if (flags.system !== undefined && !flags.chat) throw new UsageError('--system needs --chat');
    const { loaded, sae: s, hook } = await openAll(flags, io);
    const { model, tokenizer } = loaded;
    try {
      let ids: number[];
      if (flags.ids) ids = flags.ids;
      else {
        if (!tokenizer) throw new UsageError('this model has no tokenizer: give --ids instead of --prompt');
        ids = flags.chat ? chatPromptIds(tokenizer, flags.prompt!, flags.system) : tokenizer.encode(flags.prompt!);
      }
      checkPromptIds(model, ids);
      const report = await readFeaturesAsync(model, s, ids, { top: flags.top, hook });
      if (flags.json) {
        safeWrite(io, JSON.stringify({ tokens: report.tokens.map((t) => ({ id: t.id, features: t.features.map((f) => ({ index: f.index, value: f.value })) })) }) + '\n');
        return;
      }
      safeWrite(io, `${hook}: ${s.dSae} features, d_in ${s.dIn}\n`);
      report.tokens.forEach((t, pos) => {
        const piece = pieceOf(tokenizer, t.id);
        const label = `${String(pos).padStart(4)}  ${String(t.id).padStart(6)}${piece !== undefined ? ` ${JSON.stringify(piece)}` : ''}`;
        const feats = t.features.length ? t.features.map((f) => `${f.index}:${num(f.value, 2)}`).join('  ') : '(none active)';
        safeWrite(io, `${label}  L0=${report.acts[pos]!.indices.length}  ${feats}\n`);
      });
    } finally {
      model.dispose();
    }
  });

  // ------------------------------------------------------------------ explain
  const explain = sae
    .command('explain')
    .description("explain a feature: logit lens of its decoder direction, top-activating contexts over a corpus")
    .requiredOption('-f, --feature <index>', 'feature index', parseIntFlag(0))
    .option('--top <k>', 'tokens shown per logit-lens side', parseIntFlag(1), 10)
    .option('--contexts <k>', 'top-activating contexts to show', parseIntFlag(1), 10);
  addSaeOptions(explain);
  addCorpusOptions(explain, false);
  explain.action(async (flags: ExplainFlags) => {
    const { loaded, sae: s, hook } = await openAll(flags, io);
    const { model, tokenizer } = loaded;
    try {
      s.checkFeature(flags.feature);
      const lens = await logitLensAsync(model, s, flags.feature, flags.top, hook);
      let top: Awaited<ReturnType<typeof topActivatingContextsAsync>> | undefined;
      if (flags.corpus) {
        const docs = corpusFrom(flags, loaded);
        const bar = progressBar(io, 'contexts');
        try {
          top = await topActivatingContextsAsync(model, s, flags.feature, docs, { hook, k: flags.contexts, bosId: tokenizer?.bosId ?? loaded.config.bosId, onProgress: (d, n) => bar.update(d, n) });
        } finally {
          bar.stop();
        }
      }
      const lensJson = (l: typeof lens.positive) => l.map((t) => ({ id: t.id, ...(tokenizer ? { token: pieceOf(tokenizer, t.id) } : {}), value: t.value }));
      if (flags.json) {
        const out: Record<string, unknown> = {
          feature: flags.feature,
          hook,
          logit_lens: { positive: lensJson(lens.positive), negative: lensJson(lens.negative) },
        };
        if (top) {
          out.density = top.density;
          out.max_value = top.maxValue;
          out.corpus_tokens = top.tokens;
          out.contexts = top.contexts.map((c) => ({
            document: c.document,
            position: c.position,
            value: c.value,
            ...(tokenizer ? { text: tokenizer.decode(c.tokens.map((t) => t.id)) } : {}),
            tokens: c.tokens.map((t) => ({ id: t.id, ...(tokenizer ? { token: tokenText(tokenizer, t.id) } : {}), value: t.value })),
          }));
        }
        safeWrite(io, JSON.stringify(out) + '\n');
        return;
      }
      const show = (l: typeof lens.positive) => l.map((t) => `${pieceOf(tokenizer, t.id) !== undefined ? JSON.stringify(pieceOf(tokenizer, t.id)) : t.id} ${num(t.value, 3)}`).join(', ');
      safeWrite(io, `feature ${flags.feature} of ${s.dSae} at ${hook}\n`);
      safeWrite(io, `logit lens, promoted:   ${show(lens.positive)}\n`);
      safeWrite(io, `logit lens, suppressed: ${show(lens.negative)}\n`);
      if (top) {
        safeWrite(io, `density ${(top.density * 100).toFixed(3)}% of ${top.tokens} tokens, max activation ${num(top.maxValue, 3)}\n`);
        if (!top.contexts.length) safeWrite(io, 'the feature never fires on this corpus\n');
        top.contexts.forEach((c, k) => {
          const text = c.tokens
            .map((t) => {
              const piece = tokenizer ? tokenText(tokenizer, t.id) : `[${t.id}]`;
              return t.position === c.position ? `[[${piece}]]` : piece;
            })
            .join(tokenizer ? '' : ' ');
          safeWrite(io, `${String(k + 1).padStart(3)}. ${num(c.value, 3)}  doc ${c.document} pos ${c.position}: ${JSON.stringify(text)}\n`);
        });
      }
    } finally {
      model.dispose();
    }
  });

  // ------------------------------------------------------------------ eval
  const evalCmd = sae
    .command('eval')
    .description('reconstruction metrics with the SAE spliced in: FVU, L0, delta LM loss (<bos> excluded)')
    .option('--density <file>', 'write each feature\'s firing density as JSON to this file')
    .option('--no-zero-ablation', 'skip the zero-ablation pass (no CE loss score)');
  addSaeOptions(evalCmd);
  addCorpusOptions(evalCmd, true);
  evalCmd.action(async (flags: EvalFlags) => {
    const { loaded, sae: s, hook } = await openAll(flags, io);
    const { model, tokenizer } = loaded;
    try {
      const docs = corpusFrom(flags, loaded);
      const bar = progressBar(io, 'eval');
      let r: Awaited<ReturnType<typeof evaluateSaeAsync>>;
      try {
        r = await evaluateSaeAsync(model, s, docs, { hook, bosId: tokenizer?.bosId ?? loaded.config.bosId, zeroAblation: flags.zeroAblation, onProgress: (d, n) => bar.update(d, n) });
      } finally {
        bar.stop();
      }
      if (flags.density) fs.writeFileSync(flags.density, JSON.stringify({ hook, tokens: r.tokens, density: Array.from(r.density) }) + '\n');
      const json = {
        hook,
        documents: r.documents,
        tokens: r.tokens,
        fvu: r.fvu,
        explained_variance: r.explainedVariance,
        mse: r.mse,
        l0: r.l0,
        ce_clean: r.ceClean,
        ce_sae: r.ceSae,
        ...(r.ceZero !== undefined ? { ce_zero: r.ceZero } : {}),
        delta_loss: r.deltaLoss,
        ...(r.ceLossScore !== undefined ? { ce_loss_score: r.ceLossScore } : {}),
        predictions: r.predictions,
        dead_features: r.deadFeatures,
        dense_features: r.denseFeatures,
      };
      if (flags.json) {
        safeWrite(io, JSON.stringify(json) + '\n');
        return;
      }
      safeWrite(io, `${hook}: ${s.dSae} features, ${r.documents} documents, ${r.tokens} tokens (<bos> excluded)\n`);
      safeWrite(io, `FVU              ${num(r.fvu, 5)}  (explained variance ${num(r.explainedVariance, 5)})\n`);
      safeWrite(io, `L0               ${num(r.l0, 2)}\n`);
      safeWrite(io, `CE clean         ${num(r.ceClean)}\n`);
      safeWrite(io, `CE with SAE      ${num(r.ceSae)}\n`);
      safeWrite(io, `delta LM loss    ${num(r.deltaLoss)}\n`);
      if (r.ceZero !== undefined) safeWrite(io, `CE zero-ablated  ${num(r.ceZero)}\n`);
      if (r.ceLossScore !== undefined) safeWrite(io, `CE loss score    ${num(r.ceLossScore)}\n`);
      safeWrite(io, `dead features    ${r.deadFeatures} of ${s.dSae}; dense (>10%) ${r.denseFeatures}\n`);
    } finally {
      model.dispose();
    }
  });
}
