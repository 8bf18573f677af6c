/**
 * Per-request LoRA on `gemma serve --lora A --lora B:0.5`, as llama-server does it: the `lora`
 * field picks adapters per request (unlisted ones off), GET / POST /lora-adapters show and set
 * the global scales, requests with different adapters share the scheduler's steps, bad ids and
 * scales are 400s. The reference is independent of the serving path: the adapter merged into
 * f32 weights (W + s B A) and run through the training forward pass.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { registerServeCommand } from '../src/cli/serve.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import type { Tokenizer } from '../src/tokenizer/types.js';
import { loadAdapter, mergeIntoParams } from '../src/train/adapter.js';
import { loadTrainModel } from '../src/train/checkpoint-io.js';
import { modelForward, sequenceContext } from '../src/train/forward.js';
import { headLogits } from '../src/train/loss.js';
import { runCli } from './helpers/cli.js';
import { writeRandomAdapter } from './helpers/lora.js';
import { parseMetrics } from './helpers/server.js';
import { repoRoot } from './helpers/paths.js';

const DEMO = path.join(repoRoot(), 'models', 'demo');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-serve-lora-'));
const A_DIR = path.join(tmp, 'adapter-a');
const B_DIR = path.join(tmp, 'adapter-b');
const PROMPT = [2, 105, 506, 307, 119, 45, 230, 611, 87];
const STEPS = 8;

interface Greedy {
  text: string;
  logprobs: number[];
}

/** Greedy decoding of PROMPT on the demo with the adapters merged at these scales (training forward, f32). */
async function reference(adapters: Array<[string, number]>, tokenizer: Tokenizer): Promise<Greedy> {
  const { model } = await loadTrainModel(DEMO, { backend: 'js', grads: false, noTokenizer: true });
  for (const [dir, s] of adapters) mergeIntoParams(model, loadAdapter(dir), s);
  const ids = [...PROMPT];
  const out: number[] = [];
  const logprobs: number[] = [];
  const V = tokenizer.vocabSize;
  for (let t = 0; t < STEPS; t++) {
    const xs = modelForward(model, sequenceContext(model, ids.length), ids);
    const all = headLogits(model, xs[xs.length - 1]!, ids.length);
    const row = all.subarray((ids.length - 1) * model.config.vocabSize, (ids.length - 1) * model.config.vocabSize + V);
    let best = 0;
    for (let i = 1; i < V; i++) if (row[i]! > row[best]!) best = i;
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(row[i]! - row[best]!);
    logprobs.push(-Math.log(sum));
    out.push(best);
    ids.push(best);
  }
  return { text: tokenizer.decode(out, { skipSpecial: true }), logprobs };
}

let url: string;
let tokenizer: Tokenizer;
const stop = new AbortController();
let served: Promise<unknown>;

before(async () => {
  await writeRandomAdapter(DEMO, A_DIR, { targets: 'all-linear', rank: 4, seed: 11 });
  await writeRandomAdapter(DEMO, B_DIR, { targets: 'q_proj,v_proj,down_proj', rank: 2, seed: 12 });
  tokenizer = await loadTokenizer(DEMO);
  let listening!: (u: string) => void;
  const ready = new Promise<string>((r) => (listening = r));
  served = runCli((program, io) => registerServeCommand(program, io, { shutdown: stop.signal, onListening: listening }), [
    'serve', '--model', DEMO, '--model', `second=${DEMO}`, '--backend', 'js', '--port', '0', '--parallel', '4', '--lora', A_DIR, '--lora', `${B_DIR}:0.5`,
  ]);
  url = await Promise.race([ready, served.then((r) => Promise.reject(new Error(`serve ended: ${JSON.stringify(r)}`)))]);
});
after(async () => {
  stop.abort();
  await served;
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function post(route: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

async function complete(lora?: unknown, model = 'demo'): Promise<Greedy> {
  const r = await post('/v1/completions', { model, prompt: PROMPT, max_tokens: STEPS, temperature: 0, ignore_eos: true, logprobs: 1, ...(lora !== undefined ? { lora } : {}) });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return { text: r.json.choices[0].text, logprobs: r.json.choices[0].logprobs.token_logprobs };
}

function assertSame(got: Greedy, want: Greedy, what: string): void {
  assert.equal(got.text, want.text, `${what}: greedy text`);
  assert.equal(got.logprobs.length, want.logprobs.length);
  got.logprobs.forEach((v, i) => assert.ok(Math.abs(v - want.logprobs[i]!) < 1e-4, `${what}: logprob ${i}: ${v} vs ${want.logprobs[i]}`));
}

test('GET /lora-adapters lists the --lora adapters in order with their global scales', async () => {
  const r = await fetch(`${url}/lora-adapters`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), [
    { id: 0, path: A_DIR, scale: 1 },
    { id: 1, path: B_DIR, scale: 0.5 },
  ]);
});

test('a request with an adapter equals the merged model; without adapters, the base model; global scales by default', async () => {
  const [base, a07, b1, global] = await Promise.all([reference([], tokenizer), reference([[A_DIR, 0.7]], tokenizer), reference([[B_DIR, 1]], tokenizer), reference([[A_DIR, 1], [B_DIR, 0.5]], tokenizer)]);
  assert.notEqual(a07.text + a07.logprobs[0], base.text + base.logprobs[0], 'the adapter changes the answer');
  // one after the other on the same prompt: a cached prefix is reused only under the same adapters
  assertSame(await complete([{ id: 0, scale: 0.7 }]), a07, 'A at 0.7');
  assertSame(await complete([{ id: 0, scale: 0 }]), base, 'every adapter off');
  assertSame(await complete([{ id: 1, scale: 1 }]), b1, 'B at 1 (A unlisted: off)');
  assertSame(await complete(), global, 'no lora field: the global scales');
  assertSame(await complete([]), global, 'an empty list: the global scales');
  assertSame(await complete(undefined, 'second'), base, 'the --lora adapters belong to the default model only');
});

test('concurrent requests with different adapters share steps and each get their own answer', async () => {
  const [base, a1, b1] = await Promise.all([reference([], tokenizer), reference([[A_DIR, 1]], tokenizer), reference([[B_DIR, 1]], tokenizer)]);
  const before = parseMetrics(await (await fetch(`${url}/metrics`)).text());
  const [ga, gb, g0] = await Promise.all([complete([{ id: 0, scale: 1 }]), complete([{ id: 1, scale: 1 }]), complete([{ id: 0, scale: 0 }, { id: 1, scale: 0 }])]);
  const afterM = parseMetrics(await (await fetch(`${url}/metrics`)).text());
  assertSame(ga, a1, 'A');
  assertSame(gb, b1, 'B');
  assertSame(g0, base, 'none');
  const steps = afterM.get('gemma_steps_total')! - before.get('gemma_steps_total')!;
  assert.ok(steps < 3 * (STEPS + 1), `the three sequences shared steps (${steps} steps)`);
});

test('POST /lora-adapters sets the global scales (unlisted adapters off)', async () => {
  assert.deepEqual((await post('/lora-adapters', [{ id: 1, scale: 1 }])).json, { success: true });
  assert.deepEqual(((await (await fetch(`${url}/lora-adapters`)).json()) as Array<{ scale: number }>).map((a) => a.scale), [0, 1]);
  assertSame(await complete(), await reference([[B_DIR, 1]], tokenizer), 'global B at 1');
  await post('/lora-adapters', [{ id: 0, scale: 1 }, { id: 1, scale: 0.5 }]);
});

test('bad ids and scales are 400s naming the field', async () => {
  const bad = async (route: string, body: unknown, message: RegExp) => {
    const r = await post(route, body);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.match(r.json.error.message, message);
  };
  const req = (lora: unknown) => ({ model: 'demo', prompt: PROMPT, max_tokens: 1, lora });
  await bad('/v1/completions', req([{ id: 2, scale: 1 }]), /lora\[0\]\.id: no LoRA adapter with id 2 \(model 'demo' has 2: ids 0\.\.1/);
  await bad('/v1/chat/completions', { model: 'demo', messages: [{ role: 'user', content: 'hi' }], lora: [{ id: 0, scale: 1 }, { id: 7, scale: 1 }] }, /lora\[1\]\.id: no LoRA adapter with id 7/);
  await bad('/v1/completions', req([{ id: 0, scale: 'high' }]), /lora\.0\.scale/);
  await bad('/v1/completions', req([{ id: -1, scale: 1 }]), /lora\.0\.id/);
  await bad('/v1/completions', req([{ id: 0, scale: 1e9 }]), /lora\.0\.scale/);
  await bad('/v1/completions', req({ id: 0, scale: 1 }), /lora/);
  await bad('/v1/completions', { ...req([{ id: 0, scale: 1 }]), model: 'second' }, /lora\[0\]\.id: no LoRA adapter with id 0 \(model 'second' has no LoRA adapters/);
  await bad('/lora-adapters', { id: 0, scale: 1 }, /expected a JSON array/);
  await bad('/lora-adapters', [{ id: 5, scale: 1 }], /body\[0\]\.id: no LoRA adapter with id 5/);
  await bad('/lora-adapters', [{ id: 0 }], /0\.scale/);
  assert.deepEqual(((await (await fetch(`${url}/lora-adapters`)).json()) as Array<{ scale: number }>).map((a) => a.scale), [1, 0.5], 'a refused POST changes nothing');
});

test('--lora-init-without-apply loads the adapters at scale 0: the base model until asked', async () => {
  const stop2 = new AbortController();
  let listening!: (u: string) => void;
  const ready = new Promise<string>((r) => (listening = r));
  const run = runCli((program, io) => registerServeCommand(program, io, { shutdown: stop2.signal, onListening: listening }), [
    'serve', '--model', DEMO, '--backend', 'js', '--port', '0', '--lora', A_DIR, '--lora-init-without-apply',
  ]);
  const u = await ready;
  try {
    assert.deepEqual(await (await fetch(`${u}/lora-adapters`)).json(), [{ id: 0, path: A_DIR, scale: 0 }]);
    const r = await fetch(`${u}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', prompt: PROMPT, max_tokens: STEPS, temperature: 0, ignore_eos: true, logprobs: 1 }) });
    const j = (await r.json()) as any;
    assertSame({ text: j.choices[0].text, logprobs: j.choices[0].logprobs.token_logprobs }, await reference([], tokenizer), 'init without apply');
  } finally {
    stop2.abort();
    await run;
  }
});
