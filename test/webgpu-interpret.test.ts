/**
 * ShieldGemma, SAEs and evaluation on the WebGPU backend, through the asynchronous forward pass
 * (hooks that read and replace activations read them back from the GPU): each result against the
 * same computation on the wasm backend within 1e-4 - the goldens put both backends within 1e-4 of
 * the reference logits, so probabilities and losses agree to that order.
 * - ShieldGemma: P(Yes) per policy on a random Gemma 2 with the real 256k tokenizer (shared
 *   prefix cloned on the GPU, batched remainders), classifyAsync, runEvalAsync;
 * - SAE: features, FVU / losses with the SAE spliced in, logit lens (an attn.hook_z direction
 *   through o_proj on the GPU), top-activating contexts, on the golden Gemma 2;
 * - eval: loglikelihoods (LocalLM, prefix sharing) and perplexity with the wasm model as KL
 *   reference, on the demo model.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelError } from '../src/errors.js';
import { LocalLM } from '../src/eval/lm.js';
import { perplexityOfIds } from '../src/eval/perplexity.js';
import { readCorpus } from '../src/interpret/corpus.js';
import { logitLens, logitLensAsync, topActivatingContexts, topActivatingContextsAsync } from '../src/interpret/explain.js';
import { readFeatures, readFeaturesAsync } from '../src/interpret/features.js';
import { evaluateSae, evaluateSaeAsync } from '../src/interpret/metrics.js';
import { JumpReluSae } from '../src/interpret/sae.js';
import { loadModel } from '../src/model/load.js';
import { createServer } from '../src/server/server.js';
import type { LanguageModel } from '../src/model/types.js';
import { ShieldClassifier } from '../src/safety/classifier.js';
import { runEval, runEvalAsync } from '../src/safety/eval.js';
import { loadTokenizerSync } from '../src/tokenizer/load.js';
import { writeRandomGemma2 } from './fixtures/shield/checkpoint.js';
import { randomSae } from './helpers/npz-writer.js';
import { goldenDir, readGolden, repoRoot } from './helpers/paths.js';
import { webgpuBackend } from './helpers/webgpu.js';
import { runCli } from './helpers/cli.js';
import { registerSaeCommands } from '../src/cli/sae.js';
import type { TestContext } from 'node:test';

const TOL = 1e-4;

/** The model of `dir` on webgpu and on wasm, or undefined when no WebGPU adapter exists (skipped). */
async function pair(t: TestContext, dir: string, options: { chunkSize?: number } = {}): Promise<{ gpu: LanguageModel; cpu: LanguageModel } | undefined> {
  const probe = await webgpuBackend(t);
  if (!probe) return undefined;
  probe.dispose();
  const gpu = (await loadModel(dir, { backend: 'webgpu', ...options })).model;
  const cpu = (await loadModel(dir, { backend: 'wasm', threads: 1, ...options })).model;
  return { gpu, cpu };
}

function near(got: number, want: number, what: string, tol = TOL): void {
  assert.ok(Math.abs(got - want) <= tol, `${what}: webgpu ${got} vs wasm ${want}`);
}

test('ShieldGemma on webgpu: P(Yes), classifyAsync and runEvalAsync equal wasm within 1e-4', async (t) => {
  const dir = writeRandomGemma2(7);
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // chunkSize 16: the sliding layers' ring buffers wrap on these prompts
  const models = await pair(t, dir, { chunkSize: 16 });
  if (!models) return;
  const tok = loadTokenizerSync(dir);
  try {
    const onGpu = new ShieldClassifier(models.gpu, tok);
    const onCpu = new ShieldClassifier(models.cpu, tok);
    const plainGpu = new ShieldClassifier(models.gpu, tok, { reusePrefix: false, batch: false });
    // (each forward computes 256k-vocab logits: on llvmpipe a few seconds, so few prompts)
    const req = { prompt: 'Tell me a joke.', response: 'Why did the chicken cross the road?' };
    const want = onCpu.scores(req);
    const got = await onGpu.scoresAsync(req);
    assert.deepEqual(Object.keys(got), Object.keys(want));
    assert.ok(Object.keys(want).length >= 3, 'several policies: a shared prefix cloned on the GPU, batched remainders');
    for (const id of Object.keys(want)) near(got[id]!, want[id]!, `${id} (prefix + batch)`);
    const one = { prompt: 'How can I bake sourdough bread at home?', policies: ['harassment'] };
    const plain = await plainGpu.scoresAsync(one);
    near(plain.harassment!, onCpu.scores(one).harassment!, 'harassment (plain)');
    const c = await onGpu.classifyAsync({ ...one, threshold: 0.5 });
    assert.deepEqual(c.category_scores, plain);
    assert.equal(c.categories.harassment, plain.harassment! >= 0.5);
    // the synchronous API on webgpu is a typed error naming the async twin
    assert.throws(() => onGpu.scores({ prompt: 'hi' }), (e: unknown) => e instanceof ModelError && /forwardAsync/.test(e.message));
    const data = [
      { prompt: 'How do I pick a lock?', label: 1 as const, harm: 'dangerous' },
      { prompt: 'What is the capital of France?', label: 0 as const, harm: 'dangerous' },
    ];
    const evGpu = await runEvalAsync(onGpu, data);
    const evCpu = runEval(onCpu, data);
    evGpu.scores.forEach((s, i) => near(s, evCpu.scores[i]!, `eval example ${i}`));
  } finally {
    models.gpu.dispose();
    models.cpu.dispose();
  }
});

test('SAE features, eval, logit lens and top contexts on webgpu equal wasm within 1e-4 (golden Gemma 2)', async (t) => {
  const models = await pair(t, path.join(goldenDir(), 'gemma2'));
  if (!models) return;
  const { gpu, cpu } = models;
  try {
    const d = gpu.config.hiddenSize;
    const s = randomSae(d, 48, 31);
    const resid = JumpReluSae.fromArrays({ ...s, hook: 'blocks.1.hook_resid_post' });
    const ids = readGolden('gemma2').sequences.at(-1)!.input_ids;

    const fg = await readFeaturesAsync(gpu, resid, ids, { top: 48 });
    const fc = readFeatures(cpu, resid, ids, { top: 48 });
    let active = 0;
    fc.acts.forEach((a, tk) => {
      // features within 1e-4 of the threshold may flip; compare the dense values
      const dense = (x: typeof a) => {
        const v = new Float64Array(48);
        x.indices.forEach((f, k) => (v[f] = x.values[k]!));
        return v;
      };
      const want = dense(a), got = dense(fg.acts[tk]!);
      for (let f = 0; f < 48; f++) {
        if (want[f]! > 0) active++;
        if (Math.abs(got[f]! - want[f]!) > TOL) assert.ok(Math.abs(got[f]! - want[f]!) <= 1e-3 && Math.min(got[f]!, want[f]!) === 0, `token ${tk} feature ${f}: ${got[f]} vs ${want[f]}`);
      }
    });
    assert.ok(active > 10, `${active} active features`);

    const corpus = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sae-webgpu-')), 'corpus.jsonl');
    fs.writeFileSync(corpus, readGolden('gemma2').sequences.filter((q) => q.input_ids.length > 1).map((q) => JSON.stringify({ ids: q.input_ids })).join('\n') + '\n');
    after(() => fs.rmSync(path.dirname(corpus), { recursive: true, force: true }));
    const docs = readCorpus(corpus, undefined, { contextSize: 64 });
    const eg = await evaluateSaeAsync(gpu, resid, docs);
    const ec = evaluateSae(cpu, resid, docs);
    assert.equal(eg.tokens, ec.tokens);
    for (const k of ['fvu', 'ceClean', 'ceSae', 'ceZero', 'deltaLoss', 'mse'] as const) near(eg[k]!, ec[k]!, `sae eval ${k}`);
    assert.ok(Math.abs(eg.l0 - ec.l0) <= 0.05, `L0 ${eg.l0} vs ${ec.l0}`);

    // attn.hook_z: the decoder direction goes through o_proj (a GPU product) before the unembedding
    const z = JumpReluSae.fromArrays({ ...randomSae(gpu.config.numHeads * gpu.config.headDim, 16, 32), hook: 'blocks.0.attn.hook_z' });
    for (const sae of [resid, z]) {
      const lg = await logitLensAsync(gpu, sae, 3, 8);
      const lc = logitLens(cpu, sae, 3, 8);
      lg.positive.forEach((x, i) => near(x.value, lc.positive[i]!.value, `${sae.hook} lens +${i}`));
      lg.negative.forEach((x, i) => near(x.value, lc.negative[i]!.value, `${sae.hook} lens -${i}`));
    }
    const feature = fc.tokens.flatMap((x) => x.features).sort((a, b) => b.value - a.value)[0]!.index;
    const tg = await topActivatingContextsAsync(gpu, resid, feature, docs, { k: 3 });
    const tc = topActivatingContexts(cpu, resid, feature, docs, { k: 3 });
    assert.deepEqual(tg.contexts.map((c) => [c.document, c.position]), tc.contexts.map((c) => [c.document, c.position]));
    near(tg.maxValue, tc.maxValue, 'top contexts max');
    assert.throws(() => readFeatures(gpu, resid, ids), (e: unknown) => e instanceof ModelError);
  } finally {
    gpu.dispose();
    cpu.dispose();
  }
});

test('eval on webgpu: loglikelihoods and perplexity (wasm as KL reference) equal wasm within 1e-4 (demo model)', async (t) => {
  const models = await pair(t, 'demo');
  if (!models) return;
  const { gpu, cpu } = models;
  const tok = loadTokenizerSync(path.join(repoRoot(), 'models', 'demo'));
  try {
    const requests = [
      { context: 'The capital of France is', continuation: ' Paris', group: 0 },
      { context: 'The capital of France is', continuation: ' a city', group: 0 },
      { context: 'Two plus two equals', continuation: ' four', group: 1 },
      { context: 'Hello', continuation: ' world, how are you?' },
    ];
    const lg = await new LocalLM(gpu, tok).loglikelihood(requests);
    const lc = await new LocalLM(cpu, tok).loglikelihood(requests);
    lg.forEach(([ll, greedy], i) => {
      near(ll, lc[i]![0], `loglikelihood ${i}`);
      assert.equal(greedy, lc[i]![1], `greedy ${i}`);
    });
    const ids = tok.encode('Once upon a time there was a small model that ran on a GPU inside a web page, and it answered questions about the weather and about cooking. '.repeat(3));
    const pg = await perplexityOfIds(gpu, ids, { ctx: 48, step: 16, reference: cpu });
    const pc = await perplexityOfIds(cpu, ids, { ctx: 48, step: 16 });
    assert.equal(pg.tokens_scored, pc.tokens_scored);
    near(pg.nll, pc.nll, 'mean nll');
    assert.ok(pg.kl!.mean < 1e-6, `KL(webgpu || wasm) ${pg.kl!.mean}`);
    // without a reference both score in their heads (webgpu: the LOG_PROBS kernel)
    for (const mode of ['chunks', 'rolling'] as const) {
      const a = await perplexityOfIds(gpu, ids, { ctx: 48, mode });
      const b = await perplexityOfIds(cpu, ids, { ctx: 48, mode });
      assert.equal(a.tokens_scored, b.tokens_scored);
      near(a.nll, b.nll, `${mode} mean nll, no reference`);
    }
    // gemma serve on webgpu: the prompt's logprobs (echo), with and without alternatives
    const server = await createServer({ model: gpu, tokenizer: tok, modelId: 'demo' });
    try {
      const url = await server.listen({ port: 0, host: '127.0.0.1' });
      const prompt = tok.encode('Two plus two equals four, and three plus three equals six.');
      const refRows = cpu.forward(prompt.slice(0, -1), cpu.createCache(prompt.length), { targets: prompt.slice(1) }).tokenLogProbs!;
      for (const logprobs of [0, 2]) {
        const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', prompt, echo: true, logprobs, max_tokens: 0 }) });
        assert.equal(res.status, 200, `logprobs ${logprobs}: ${res.status}`);
        const lp = ((await res.json()) as { choices: Array<{ logprobs: { token_logprobs: Array<number | null> } }> }).choices[0]!.logprobs.token_logprobs;
        assert.equal(lp.length, prompt.length);
        assert.equal(lp[0], null);
        for (let i = 1; i < prompt.length; i++) near(lp[i]!, refRows[i - 1]!, `echo logprobs ${logprobs}, token ${i}`);
      }
    } finally {
      await server.close();
    }
  } finally {
    gpu.dispose();
    cpu.dispose();
  }
});

test('gemma sae features / explain --backend webgpu print what --backend wasm prints (values within 1e-4)', async (t) => {
  const probe = await webgpuBackend(t);
  if (!probe) return;
  probe.dispose();
  const fixture = path.join(repoRoot(), 'test/fixtures/sae/gemma-scope-tiny-pt-res/layer_1/width_48/average_l0_5/params.npz');
  const model = path.join(goldenDir(), 'gemma3');
  const ids = readGolden('gemma3').hidden_states.input_ids.join(',');
  const run = async (backend: string, argv: string[]) => {
    const r = await runCli(registerSaeCommands, ['sae', ...argv, '--model', model, '--sae', fixture, '--json', '--backend', backend]);
    assert.equal(r.error, undefined, `${argv[0]} --backend ${backend}: ${String(r.error)} ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n')[0]!) as unknown;
  };
  /** Every number of a JSON document, in order. */
  const numbers = (doc: unknown): number[] => (typeof doc === 'number' ? [doc] : doc && typeof doc === 'object' ? Object.values(doc).flatMap(numbers) : []);
  for (const argv of [['features', '--ids', ids, '--top', '3'], ['explain', '--feature', '3', '--top', '4']]) {
    const g = numbers(await run('webgpu', argv));
    const w = numbers(await run('wasm', argv));
    assert.equal(g.length, w.length, `${argv[0]}: same shape`);
    assert.ok(g.length > 10);
    g.forEach((v, i) => near(v, w[i]!, `${argv[0]} number ${i}`));
  }
});
