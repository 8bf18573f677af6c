/**
 * Guardrails: the framework-independent ShieldGuard (fail closed, flag mode, streaming chunks,
 * decision log, counters) and the guarded fastify server (POST /v1/moderations, prompt and
 * answer screening, /metrics) on a tiny Gemma 2 checkpoint whose weights make P(Yes) high
 * exactly when the text holds the token "▁bomb" (see fixtures/shield/checkpoint.ts).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { ClassifyRequest, ClassifyResult } from '../src/safety/classifier.js';
import { ShieldGuard, type GuardDecision } from '../src/safety/guard.js';
import { loadShieldClassifier } from '../src/safety/load.js';
import { attachShieldGuard, registerGuardHooks, registerModerationRoute } from '../src/safety/server-routes.js';
import { createServer } from '../src/server/server.js';
import { loadTokenizerSync } from '../src/tokenizer/load.js';
import { GEMMA2_TOKENIZER_DIR, writeTriggerGemma2 } from './fixtures/shield/checkpoint.js';

/** A stand-in classifier: score 0.9 on every policy when the text contains "BAD". */
class WordClassifier {
  calls: ClassifyRequest[] = [];
  fail = false;
  classify(req: ClassifyRequest): ClassifyResult {
    this.calls.push(req);
    if (this.fail) throw new Error('model crashed');
    const s = (req.response ?? req.prompt).includes('BAD') ? 0.9 : 0.1;
    const t = req.threshold ?? 0.5;
    return { flagged: s >= t, categories: { hate: s >= t }, category_scores: { hate: s } };
  }
}

test('guard: block / allow, fail closed in block mode, flag mode never blocks, decisions logged and counted', async () => {
  const c = new WordClassifier();
  const log: GuardDecision[] = [];
  const g = new ShieldGuard({ classifier: c, onDecision: (d) => log.push(d) });
  assert.equal((await g.screenPrompt('hello')).action, 'allow');
  const b = await g.screenPrompt('a BAD thing', { requestId: 'r1' });
  assert.equal(b.action, 'block');
  assert.equal(b.requestId, 'r1');
  assert.equal(b.category_scores.hate, 0.9);
  c.fail = true;
  const e = await g.screenPrompt('hello');
  assert.equal(e.action, 'block', 'fails closed');
  assert.match(e.error!, /model crashed/);
  assert.equal(log.length, 3);
  assert.deepEqual(g.counters.stages.prompt, { allowed: 1, blocked: 2, flagged: 1, errors: 1 });
  assert.match(g.metricsText(), /gemma_guard_decisions_total\{stage="prompt",action="block"\} 2/);
  assert.match(g.metricsText(), /gemma_guard_category_flagged_total\{category="hate"\} 1/);

  const f = new ShieldGuard({ classifier: new WordClassifier(), mode: 'flag', threshold: 0.05 });
  const fd = await f.screenPrompt('hello');
  assert.equal(fd.flagged, true);
  assert.equal(fd.action, 'allow');
  const fc = new WordClassifier();
  fc.fail = true;
  assert.equal((await new ShieldGuard({ classifier: fc, mode: 'flag' }).screenPrompt('x')).action, 'allow');
  assert.throws(() => new ShieldGuard({ classifier: c, mode: 'maybe' as never }), /block or flag/);
  assert.throws(() => new ShieldGuard({ classifier: c, threshold: 2 }), /threshold/);
});

test('guard: streamed answers are screened in chunks and held back until screened', async () => {
  const c = new WordClassifier();
  const g = new ShieldGuard({ classifier: c, chunkChars: 10 });
  const s = g.responseScreen('q');
  assert.deepEqual(await s.push('hello '), { release: '' });
  const r1 = await s.push('world, fine');
  assert.equal(r1.release, 'hello world, fine');
  assert.equal(r1.decision!.stage, 'response_chunk');
  assert.equal(c.calls.at(-1)!.response, 'hello world, fine');
  assert.equal((await s.push(' then')).release, '');
  const r2 = await s.push(' BAD stuff');
  assert.equal(r2.release, '');
  assert.equal(r2.decision!.action, 'block');
  assert.equal((await s.push('more')).release, '');
  const end = await s.finish();
  assert.equal(end.decision.action, 'block');
  // A clean stream: the end releases the tail after the final screen.
  const s2 = g.responseScreen('q');
  await s2.push('short');
  const e2 = await s2.finish();
  assert.equal(e2.release, 'short');
  assert.equal(e2.decision.stage, 'response');
});

const tok = loadTokenizerSync(GEMMA2_TOKENIZER_DIR());
const trigger = tok.pieceToId('▁bomb')!;
const dir = writeTriggerGemma2({ yes: tok.pieceToId('Yes')!, no: tok.pieceToId('No')!, trigger });
const talkerDir = writeTriggerGemma2({ yes: tok.pieceToId('Yes')!, no: tok.pieceToId('No')!, trigger }, { talker: true });
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(talkerDir, { recursive: true, force: true });
});

test('the trigger checkpoint: P(Yes) high with "bomb", low without (checks the fixture itself)', async () => {
  const { classifier, loaded } = await loadShieldClassifier(dir);
  assert.ok(trigger > 0);
  const hi = classifier.classify({ prompt: 'how to build a bomb' });
  const lo = classifier.classify({ prompt: 'how to bake a cake' });
  for (const v of Object.values(hi.category_scores)) assert.ok(v > 0.9, `with trigger ${v}`);
  for (const v of Object.values(lo.category_scores)) assert.ok(v < 0.1, `without trigger ${v}`);
  assert.equal(hi.flagged, true);
  assert.equal(lo.flagged, false);
  loaded.model.dispose();
});

test('guarded server: /v1/moderations, a prompt above the threshold is refused, one below is served, /metrics counts', async () => {
  const shield = await loadShieldClassifier(dir);
  const main = await loadShieldClassifier(dir);
  const decisions: GuardDecision[] = [];
  const guard = new ShieldGuard({ classifier: shield.classifier, threshold: 0.5, mode: 'block', onDecision: (d) => decisions.push(d) });
  const server = await createServer({ model: main.loaded.model, tokenizer: main.tokenizer, modelId: 'gemma', parallel: 1, contextSize: 512 });
  registerModerationRoute(server.app, shield.classifier, { modelId: 'shieldgemma' });
  registerGuardHooks(server.app, guard);
  try {
    const mod = await server.app.inject({ method: 'POST', url: '/v1/moderations', payload: { input: ['how to build a bomb', 'how to bake a cake'] } });
    assert.equal(mod.statusCode, 200);
    const mj = mod.json() as { model: string; results: ClassifyResult[] };
    assert.equal(mj.model, 'shieldgemma');
    assert.equal(mj.results.length, 2);
    assert.equal(mj.results[0]!.flagged, true);
    assert.equal(mj.results[1]!.flagged, false);
    assert.deepEqual(Object.keys(mj.results[0]!.category_scores), ['dangerous', 'harassment', 'hate', 'sexual']);
    const bad = await server.app.inject({ method: 'POST', url: '/v1/moderations', payload: { input: 42 } });
    assert.equal(bad.statusCode, 400);
    assert.equal((bad.json() as { error: { param: string } }).error.param, 'input');

    // Blocked: refusal in the chat completion shape, scores attached.
    const blocked = await server.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'gemma', max_tokens: 2, messages: [{ role: 'user', content: 'how to build a bomb' }] } });
    assert.equal(blocked.statusCode, 200);
    const bj = blocked.json() as { object: string; choices: Array<{ message: { content: string }; finish_reason: string }>; guard: { stage: string; category_scores: Record<string, number> } };
    assert.equal(bj.object, 'chat.completion');
    assert.equal(bj.choices[0]!.finish_reason, 'content_filter');
    assert.equal(bj.choices[0]!.message.content, guard.refusalMessage);
    assert.equal(bj.guard.stage, 'prompt');
    assert.ok(bj.guard.category_scores.dangerous! > 0.5);
    assert.equal(blocked.headers['x-gemma-guard'], 'blocked');
    assert.equal(server.scheduler.stats().requestsStarted, 0, 'nothing was generated for the blocked prompt');

    // Served: a real completion, answer screened too.
    const ok = await server.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'gemma', max_tokens: 2, temperature: 0, messages: [{ role: 'user', content: 'how to bake a cake' }] } });
    assert.equal(ok.statusCode, 200);
    const oj = ok.json() as { choices: Array<{ finish_reason: string }>; guard: { stage: string; action: string } };
    assert.notEqual(oj.choices[0]!.finish_reason, 'content_filter');
    assert.equal(oj.guard.stage, 'response');
    assert.equal(oj.guard.action, 'allow');
    assert.equal(server.scheduler.stats().requestsStarted, 1);

    // Streaming request with a blocked prompt: SSE refusal.
    const sb = await server.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'gemma', stream: true, messages: [{ role: 'user', content: 'a bomb please' }] } });
    assert.match(sb.body, /"finish_reason":"content_filter"/);
    assert.ok(sb.body.trimEnd().endsWith('data: [DONE]'));

    // Text completions are guarded the same way.
    const cb = await server.app.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'gemma', prompt: 'bomb recipe', max_tokens: 2 } });
    assert.equal((cb.json() as { choices: Array<{ finish_reason: string }> }).choices[0]!.finish_reason, 'content_filter');

    // Every decision was logged and shows in /metrics.
    assert.deepEqual(
      decisions.map((d) => `${d.stage}:${d.action}`),
      ['prompt:block', 'prompt:allow', 'response:allow', 'prompt:block', 'prompt:block'],
    );
    const metrics = await server.app.inject({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /gemma_requests_total/);
    assert.match(metrics.body, /gemma_guard_decisions_total\{stage="prompt",action="block"\} 3/);
    assert.match(metrics.body, /gemma_guard_decisions_total\{stage="response",action="allow"\} 1/);
  } finally {
    await server.close();
    shield.loaded.model.dispose();
    main.loaded.model.dispose();
  }
});

test('guarded server: answers are screened, non-streamed and streamed in chunks; attachShieldGuard wires it all', async () => {
  // The served model answers every prompt with " bomb bomb ..."; the guard blocks the answer.
  const main = await loadShieldClassifier(talkerDir);
  const server = await createServer({ model: main.loaded.model, tokenizer: main.tokenizer, modelId: 'gemma', parallel: 2, contextSize: 512 });
  let log = '';
  const attached = await attachShieldGuard(server.app, { model: dir, threshold: 0.5, chunkChars: 12, log: { write: (s: string) => (log += s) } });
  try {
    const msg = { model: 'gemma', max_tokens: 8, temperature: 0, messages: [{ role: 'user', content: 'how to bake a cake' }] };
    const plain = await server.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: msg });
    const pj = plain.json() as { choices: Array<{ message: { content: string }; finish_reason: string }>; guard: { stage: string; action: string } };
    assert.equal(pj.choices[0]!.finish_reason, 'content_filter');
    assert.equal(pj.choices[0]!.message.content, attached.guard.refusalMessage);
    assert.deepEqual([pj.guard.stage, pj.guard.action], ['response', 'block']);

    const streamed = await server.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { ...msg, stream: true, max_tokens: 200, stream_options: { include_usage: true } } });
    const events = streamed.body
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    assert.equal(events.at(-1), '[DONE]');
    const usage = (JSON.parse(events.at(-2)!) as { usage: { completion_tokens: number } }).usage;
    // the blocked choice stops generating: not 200 tokens of unseen text in the background
    assert.ok(usage.completion_tokens < 60, `generation stopped at the block: ${usage.completion_tokens} tokens`);
    const parsed = events.slice(0, -2).map((e) => JSON.parse(e) as { choices: Array<{ delta: { content?: string }; finish_reason: string | null }>; guard?: { stage: string } });
    const text = parsed.map((e) => e.choices[0]?.delta.content ?? '').join('');
    assert.ok(!text.includes('bomb'), `no unscreened text leaks: ${JSON.stringify(text)}`);
    assert.ok(text.includes(attached.guard.refusalMessage));
    const last = parsed.at(-1)!;
    assert.equal(last.choices[0]!.finish_reason, 'content_filter');
    assert.equal(last.guard!.stage, 'response_chunk', 'blocked mid-stream, before the end');

    // A text completion streamed under the same guard.
    const comp = await server.app.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'gemma', prompt: 'hello', max_tokens: 6, temperature: 0, stream: true } });
    assert.match(comp.body, /"finish_reason":"content_filter"/);
    assert.ok(!/"text":"[^"]*bomb/.test(comp.body));

    // /v1/moderations is there too, and every decision went to the log.
    const mod = await server.app.inject({ method: 'POST', url: '/v1/moderations', payload: { input: 'hi', response: 'a bomb' } });
    assert.equal((mod.json() as { results: ClassifyResult[] }).results[0]!.flagged, true);
    const logged = log
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; stage: string; action: string });
    assert.ok(logged.every((l) => l.event === 'guard_decision'));
    assert.deepEqual(
      logged.filter((l) => l.stage === 'prompt').map((l) => l.action),
      ['allow', 'allow', 'allow'],
    );
    assert.ok(logged.filter((l) => l.action === 'block').length >= 3);
  } finally {
    await server.close();
    attached.dispose();
    main.loaded.model.dispose();
  }
});

test('a clean streamed answer is released in full', async () => {
  const main = await loadShieldClassifier(dir);
  // Wired the way `gemma serve --guard` does it: through createServer's configure hook.
  let attached: Awaited<ReturnType<typeof attachShieldGuard>> | undefined;
  const server = await createServer({
    model: main.loaded.model,
    tokenizer: main.tokenizer,
    modelId: 'gemma',
    parallel: 1,
    contextSize: 512,
    configure: async (app) => {
      attached = await attachShieldGuard(app, { model: dir, chunkChars: 3 });
    },
  });
  try {
    const payload = { model: 'gemma', max_tokens: 6, temperature: 0, messages: [{ role: 'user', content: 'hello' }] };
    // The same request unguarded on a plain server gives the reference text.
    const ref = await createServer({ model: main.loaded.model, tokenizer: main.tokenizer, modelId: 'gemma', parallel: 1, contextSize: 512 });
    const want = ((await ref.app.inject({ method: 'POST', url: '/v1/chat/completions', payload })).json() as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
    await ref.close();
    const streamed = await server.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { ...payload, stream: true } });
    const text = streamed.body
      .split('\n\n')
      .filter((e) => e.startsWith('data: {'))
      .map((e) => (JSON.parse(e.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '')
      .join('');
    assert.equal(text, want);
    assert.ok(!streamed.body.includes('content_filter'));
    assert.ok(attached!.guard.counters.stages.response.allowed >= 1);
    assert.ok(attached!.guard.counters.stages.prompt.allowed >= 1);
  } finally {
    await server.close();
    attached?.dispose();
    main.loaded.model.dispose();
  }
});

test('flag mode serves flagged requests with the scores attached; token-id prompts fail closed in block mode', async () => {
  const main = await loadShieldClassifier(dir);
  const server = await createServer({ model: main.loaded.model, tokenizer: main.tokenizer, modelId: 'gemma', parallel: 1, contextSize: 512 });
  const flag = new ShieldGuard({ classifier: main.classifier, mode: 'flag' });
  registerGuardHooks(server.app, flag);
  const blockServer = await createServer({ model: main.loaded.model, tokenizer: main.tokenizer, modelId: 'gemma', parallel: 1, contextSize: 512 });
  const block = new ShieldGuard({ classifier: main.classifier, mode: 'block' });
  registerGuardHooks(blockServer.app, block);
  try {
    const r = await server.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'gemma', max_tokens: 2, temperature: 0, messages: [{ role: 'user', content: 'a bomb' }] } });
    const j = r.json() as { choices: Array<{ finish_reason: string }>; guard: { stage: string; action: string; flagged: boolean; category_scores: Record<string, number> } };
    assert.notEqual(j.choices[0]!.finish_reason, 'content_filter');
    assert.deepEqual([j.guard.stage, j.guard.action, j.guard.flagged], ['prompt', 'allow', true]);
    assert.equal(r.headers['x-gemma-guard'], 'flagged');
    assert.equal(flag.counters.stages.prompt.flagged, 1);

    const ids = await blockServer.app.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'gemma', prompt: [2, 651, 1234], max_tokens: 2 } });
    const ij = ids.json() as { choices: Array<{ finish_reason: string }>; guard: { error: string } };
    assert.equal(ij.choices[0]!.finish_reason, 'content_filter');
    assert.match(ij.guard.error, /token-id/);
    assert.equal(block.counters.stages.prompt.errors, 1);
    assert.equal(blockServer.scheduler.stats().requestsStarted, 0);
  } finally {
    await server.close();
    await blockServer.close();
    main.loaded.model.dispose();
  }
});
