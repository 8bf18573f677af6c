/**
 * `npm run bench:eval`: evaluation speed on gemma-2b shapes with random Q4_0 weights.
 *
 * 1. Requests/s of a 4-choice task: the prefix-shared batched path (each document's context
 *    prefilled once, its KV cache cloned per choice, all choices in one forwardBatch) against one
 *    plain forward per (context, choice), alternating, in the same run. Target >= 2.5x with
 *    ~10-token continuations.
 * 2. Tokens/s of `eval perplexity` (llama.cpp chunks) against our own prefill speed on the same
 *    tokens, and against node-llama-cpp evaluating the same tokens on the same GGUF. Target: >= 0.9x
 *    of our prefill. The harness's rolling windows (every token scored) are printed beside it.
 *
 *   npm run bench:eval -- [--docs 4] [--ctx-tokens 64] [--cont-tokens 10] [--ppl-ctx 256] [--ppl-chunks 2]
 *                         [--threads N] [--rounds 1] [--ppl-rounds 2] [--dir DIR (keep the GGUF)] [--no-llama]
 */
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel } from '../src/model/load.js';
import { LocalLM, type TokenPair } from '../src/eval/lm.js';
import { perplexityOfIds } from '../src/eval/perplexity.js';
import { physicalCores } from '../src/util/cpu.js';

const { values } = parseArgs({
  options: {
    docs: { type: 'string', default: '4' },
    'ctx-tokens': { type: 'string', default: '64' },
    'cont-tokens': { type: 'string', default: '10' },
    'ppl-ctx': { type: 'string', default: '256' },
    'ppl-chunks': { type: 'string', default: '2' },
    threads: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    'ppl-rounds': { type: 'string', default: '2' },
    dir: { type: 'string' },
    'no-llama': { type: 'boolean', default: false },
  },
});
const threads = Number(values.threads ?? physicalCores());
const here = path.dirname(fileURLToPath(import.meta.url));
const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-eval-'));
const gguf = path.join(dir, 'gemma-2b-q4_0.gguf');
if (!fs.existsSync(gguf)) {
  // The engine benchmark writes the random-weight GGUF (with the Gemma tokenizer) into --dir.
  const r = spawnSync(process.execPath, [path.join(here, 'engine.js'), '--models', 'gemma-2b', '--types', 'q4_0', '--engines', 'gemma-ts', '--prompt', '8', '--gen', '1', '--dir', dir, '--threads', String(threads)], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0 || !fs.existsSync(gguf)) throw new Error('could not write the gemma-2b Q4_0 GGUF');
}

function rng(seed: number): () => number {
  let s = seed;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0), s);
}
const next = rng(42);
const tok = (): number => 1000 + (next() % 200000);

const { model, tokenizer } = await loadModel(gguf, { backend: 'wasm', threads });
console.log(`gemma-2b shapes, random Q4_0 weights (${gguf}), wasm backend, ${threads} threads`);

// ---- 1. four-choice requests/s
const nDocs = Number(values.docs);
const ctxTokens = Number(values['ctx-tokens']);
const contTokens = Number(values['cont-tokens']);
const pairs: TokenPair[] = [];
const groups: number[][] = [];
for (let d = 0; d < nDocs; d++) {
  const context = [2, ...Array.from({ length: ctxTokens - 1 }, tok)];
  const g: number[] = [];
  for (let c = 0; c < 4; c++) {
    g.push(pairs.length);
    pairs.push({ context, continuation: Array.from({ length: contTokens }, tok) });
  }
  groups.push(g);
}
const shared = new LocalLM(model, tokenizer!, { batchSize: nDocs });
const plain = new LocalLM(model, tokenizer!, { batchSize: 1, prefixSharing: false });
const times = { shared: [] as number[], plain: [] as number[] };
let maxDiff = 0;
for (let round = 0; round < Number(values.rounds); round++) {
  let t = performance.now();
  const a = await shared.scorePairs(pairs, groups);
  times.shared.push((performance.now() - t) / 1000);
  t = performance.now();
  const b = await plain.scorePairs(pairs, pairs.map((_, i) => [i]));
  times.plain.push((performance.now() - t) / 1000);
  for (let i = 0; i < pairs.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]![0] - b[i]![0]));
}
const best = (xs: number[]): number => Math.min(...xs);
const rpsShared = pairs.length / best(times.shared);
const rpsPlain = pairs.length / best(times.plain);
console.log(`\n4-choice task: ${nDocs} documents, ${ctxTokens}-token contexts, ${contTokens}-token continuations (${pairs.length} requests)`);
console.log(`  prefix-shared batched : ${rpsShared.toFixed(2)} requests/s`);
console.log(`  one forward per choice: ${rpsPlain.toFixed(2)} requests/s`);
console.log(`  ratio                 : ${(rpsShared / rpsPlain).toFixed(2)}x (target >= 2.5x); max |ll difference| ${maxDiff.toExponential(2)}`);

// ---- 2. perplexity tokens/s vs our prefill vs node-llama-cpp
const pplCtx = Number(values['ppl-ctx']);
const chunks = Number(values['ppl-chunks']);
const corpus = [2, ...Array.from({ length: pplCtx * chunks - 1 }, tok)];
// Alternate the two, best of --ppl-rounds each: other work on the host moves both the same way.
const pplTimes: number[] = [];
const rollingTimes: number[] = [];
const prefillTimes: number[] = [];
let report: Awaited<ReturnType<typeof perplexityOfIds>> | undefined;
let t = 0;
const runPerplexity = async (): Promise<void> => {
  t = performance.now();
  report = await perplexityOfIds(model, corpus, { ctx: pplCtx, bosId: 2 });
  pplTimes.push((performance.now() - t) / 1000);
  // rolling windows (the harness's loglikelihood_rolling): every token is scored
  t = performance.now();
  await perplexityOfIds(model, corpus, { ctx: pplCtx, bosId: 2, mode: 'rolling' });
  rollingTimes.push((performance.now() - t) / 1000);
};
const runPrefill = (): void => {
  t = performance.now();
  for (let c = 0; c < chunks; c++) {
    const cache = model.createCache(pplCtx);
    model.forward(corpus.slice(c * pplCtx, (c + 1) * pplCtx), cache);
    cache.dispose?.();
  }
  prefillTimes.push((performance.now() - t) / 1000);
};
// The order flips every round so that neither side always runs first (warm-up, drifting load).
for (let round = 0; round < Number(values['ppl-rounds']); round++) {
  if (round % 2 === 0) {
    await runPerplexity();
    runPrefill();
  } else {
    runPrefill();
    await runPerplexity();
  }
}
const pplTps = corpus.length / best(pplTimes);
const prefillTps = corpus.length / best(prefillTimes);
console.log(`\nperplexity (llama.cpp chunks, ctx ${pplCtx}, ${chunks} chunks, ${corpus.length} tokens, half of them scored; ppl ${report!.ppl.toFixed(1)}; best of ${pplTimes.length} alternating rounds, order flipped each round)`);
console.log(`  eval perplexity       : ${pplTps.toFixed(1)} tokens/s   (rounds: ${pplTimes.map((x) => (corpus.length / x).toFixed(1)).join(', ')})`);
console.log(`  our prefill           : ${prefillTps.toFixed(1)} tokens/s   (rounds: ${prefillTimes.map((x) => (corpus.length / x).toFixed(1)).join(', ')})   ratio ${(pplTps / prefillTps).toFixed(2)}x (target >= 0.9x)`);
const rollingTps = corpus.length / best(rollingTimes);
console.log(`  rolling windows       : ${rollingTps.toFixed(1)} tokens/s   (every token scored; ratio to prefill ${(rollingTps / prefillTps).toFixed(2)}x, no target)`);
model.dispose();

if (!values['no-llama']) {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, logLevel: LlamaLogLevel.error });
  const lmodel = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const context = await lmodel.createContext({ contextSize: pplCtx, threads, batchSize: pplCtx });
  t = performance.now();
  for (let c = 0; c < chunks; c++) {
    const seq = context.getSequence();
    const it = seq.evaluate(corpus.slice(c * pplCtx, (c + 1) * pplCtx - 1) as Parameters<typeof seq.evaluate>[0], { temperature: 0 });
    await it.next();
    await it.return();
    seq.dispose();
  }
  const llamaTps = (corpus.length - chunks) / ((performance.now() - t) / 1000);
  await context.dispose();
  await lmodel.dispose();
  console.log(`  node-llama-cpp        : ${llamaTps.toFixed(1)} tokens/s (same tokens, same GGUF)   ratio ours/llama.cpp ${(pplTps / llamaTps).toFixed(2)}x`);
}
console.log(`\n${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} CPUs, Node ${process.version}`);
if (!values.dir) fs.rmSync(dir, { recursive: true, force: true });
