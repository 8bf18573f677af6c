/** `gemma eval --base-url`: the same tasks against gemma serve (echo + prompt logprobs) equal the local run within 1e-4. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { evaluate } from '../src/eval/evaluate.js';
import { RemoteLM } from '../src/eval/remote.js';
import { repoRoot } from './helpers/paths.js';
import { startDemoServer } from './helpers/server.js';

const fixtures = path.join(repoRoot(), 'test/fixtures/eval');
const tasks = ['arith.yaml', 'arith_gen.yaml', 'rolling.yaml'].map((f) => path.join(fixtures, f));

test('remote (echo + logprobs, concurrency 3) == local: loglikelihoods within 1e-4, same metrics and generations', async () => {
  const srv = await startDemoServer({ parallel: 4 });
  try {
    const { model, tokenizer } = srv.loaded;
    const local = await evaluate({ model, tokenizer }, tasks, { logSamples: true, bootstrapIters: 0 });
    const remote = await evaluate(new RemoteLM(tokenizer!, { baseUrl: srv.url, concurrency: 3 }), tasks, { logSamples: true, bootstrapIters: 0 });
    assert.equal(remote.errors, undefined);
    for (const task of ['demo_arith', 'demo_arith_gen', 'demo_rolling']) {
      const a = local.samples![task]!;
      const b = remote.samples![task]!;
      assert.equal(a.length, b.length);
      a.forEach((s, i) => {
        const r = b[i]!;
        (s.resps as unknown[][]).forEach((resp, k) => {
          const x = resp[0];
          const y = (r.resps as unknown[][])[k]![0];
          if (Array.isArray(x)) {
            assert.ok(Math.abs((x[0] as number) - ((y as number[])[0] as number)) < 1e-4, `${task} doc ${i} req ${k}: ${x[0]} vs ${(y as number[])[0]}`);
            assert.equal(x[1], (y as unknown[])[1]);
          } else if (typeof x === 'number') assert.ok(Math.abs(x - (y as number)) < 1e-4, `${task} doc ${i}: ${x} vs ${y}`);
          else assert.equal(y, x);
        });
      });
      for (const [k, v] of Object.entries(local.results[task]!)) {
        // relative for the perplexities: exp of a sum, 4.5e11 for the demo on these texts (the
        // local run scores in the backend's head, the server from f64 log-softmax of its logits)
        if (typeof v === 'number') assert.ok(Math.abs(v - (remote.results[task]![k] as number)) < 1e-4 * Math.max(1, Math.abs(v)), `${task} ${k}: ${v} vs ${remote.results[task]![k]}`);
      }
    }
    assert.ok(local.results.demo_rolling!['word_perplexity,none'] as number > 1);
  } finally {
    await srv.close();
  }
});

test('gemma serve: echo + logprobs + max_tokens 0 gives the prompt token logprobs (first null)', async () => {
  const srv = await startDemoServer();
  try {
    const { model, tokenizer } = srv.loaded;
    const ids = tokenizer!.encode('Hello world, how are you?');
    // The prompt runs through the model once: the scheduler admits max_tokens 0 without a prefill.
    let fed = 0;
    const m = model as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const name of ['forward', 'forwardAsync', 'forwardBatch', 'forwardBatchAsync']) {
      const orig = m[name]!.bind(model);
      m[name] = (a: unknown, ...rest: unknown[]) => {
        fed += name.startsWith('forwardBatch') ? (a as Array<{ ids: number[] }>).reduce((n, it) => n + it.ids.length, 0) : (a as number[]).length;
        return orig(a, ...rest);
      };
    }
    const res = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', prompt: ids, echo: true, logprobs: 2, max_tokens: 0 }) });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { choices: Array<{ text: string; logprobs: { token_logprobs: Array<number | null>; top_logprobs: Array<Record<string, number> | null>; tokens: string[] } }> };
    const lp = body.choices[0]!.logprobs;
    assert.equal(lp.token_logprobs.length, ids.length);
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(lp.top_logprobs[0], null);
    assert.equal(body.choices[0]!.text, tokenizer!.decode(ids));
    assert.equal(fed, ids.length - 1, 'the prompt is processed once');
    // token 3's logprob from one plain forward
    const out = model.forward(ids.slice(0, 3), model.createCache(8), { allPositions: true });
    const row = out.logits.subarray(2 * out.vocab, 3 * out.vocab);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    assert.ok(Math.abs((lp.token_logprobs[3] as number) - (row[ids[3]!]! - lse)) < 1e-4);
    assert.equal(Object.keys(lp.top_logprobs[3]!).length, 2);
    assert.ok(Math.max(...Object.values(lp.top_logprobs[3]!)) >= (lp.token_logprobs[3] as number));
  } finally {
    await srv.close();
  }
});
