/**
 * `npm run soak -- --minutes M [--clients N] [--warmup MIN] [--model demo] [--json FILE]`: a real
 * `gemma serve` process driven for M minutes by N concurrent clients - valid requests (chat and
 * completions, streamed and not, n > 1, logprobs, structured output), invalid ones (bad JSON, wrong
 * types, unknown model, over-long prompt, unsupported field, wrong content type, a body over the
 * limit) and clients that disconnect mid-stream or mid-request - while /metrics is sampled every
 * 5 s for RSS and the event-loop delay histogram. Pass criteria, printed at the end:
 *   - RSS growth after warm-up < 5% (median RSS of the second half of the time after warm-up vs
 *     of the first half: medians, so that the GC's sawtooth does not count as growth);
 *   - p99 event-loop delay after warm-up < 50 ms (from the histogram's buckets);
 *   - no 5xx answer (429 under a full queue is allowed) and no connection error the client did
 *     not cause.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mulberry32 } from '../src/util/mulberry32.js';
import { packageRoot } from '../src/util/package-root.js';

interface Args {
  minutes: number;
  clients: number;
  warmup: number;
  model: string;
  json?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { minutes: 10, clients: 8, warmup: -1, model: 'demo' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[++i];
    if (k === '--minutes') a.minutes = Number(v);
    else if (k === '--clients') a.clients = Number(v);
    else if (k === '--warmup') a.warmup = Number(v);
    else if (k === '--model') a.model = v!;
    else if (k === '--json') a.json = v;
    else throw new Error(`unknown option ${k} (use --minutes M [--clients N] [--warmup MIN] [--model M] [--json FILE])`);
  }
  if (!(a.minutes > 0) || !(a.clients >= 1)) throw new Error('--minutes and --clients must be positive');
  if (a.warmup < 0) a.warmup = Math.min(2, a.minutes / 5);
  return a;
}

interface Sample {
  t: number;
  rssMb: number;
  /** V8 heap in use and external memory (array buffers, WebAssembly memories), MB. */
  heapMb: number;
  externalMb: number;
  /** The models' backend memory (wasm memories), MB. */
  backendMb: number;
  /** Cumulative event-loop delay buckets: le (ms) -> count. */
  buckets: Array<[number, number]>;
  maxDelayMs: number;
  inFlight: number;
}

function parseSample(text: string, t: number): Sample {
  const buckets: Array<[number, number]> = [];
  let rss = 0;
  let heap = 0;
  let external = 0;
  let backend = 0;
  let max = 0;
  let inFlight = 0;
  for (const line of text.split('\n')) {
    let m = /^gemma_event_loop_delay_seconds_bucket\{le="([^"]+)"\} (\S+)$/.exec(line);
    if (m) buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]) * 1000, Number(m[2])]);
    else if ((m = /^process_resident_memory_bytes (\S+)$/.exec(line))) rss = Number(m[1]) / 2 ** 20;
    else if ((m = /^nodejs_heap_size_used_bytes (\S+)$/.exec(line))) heap = Number(m[1]) / 2 ** 20;
    else if ((m = /^nodejs_external_memory_bytes (\S+)$/.exec(line))) external = Number(m[1]) / 2 ** 20;
    else if ((m = /^gemma_backend_memory_bytes (\S+)$/.exec(line))) backend = Number(m[1]) / 2 ** 20;
    else if ((m = /^gemma_event_loop_delay_max_seconds (\S+)$/.exec(line))) max = Number(m[1]) * 1000;
    else if ((m = /^gemma_requests_in_flight (\S+)$/.exec(line))) inFlight = Number(m[1]);
  }
  return { t, rssMb: rss, heapMb: heap, externalMb: external, backendMb: backend, buckets, maxDelayMs: max, inFlight };
}

/** The smallest bucket bound holding fraction q of the samples between two snapshots. */
function quantileBetween(a: Sample, b: Sample, q: number): number {
  const total = b.buckets.at(-1)![1] - a.buckets.at(-1)![1];
  for (let i = 0; i < b.buckets.length; i++) {
    if (b.buckets[i]![1] - a.buckets[i]![1] >= q * total) return b.buckets[i]![0];
  }
  return Infinity;
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;

type Kind = 'valid' | 'invalid' | 'disconnect';

interface Tally {
  requests: Record<Kind, number>;
  status: Record<string, number>;
  clientErrors: string[];
  fiveXX: string[];
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const root = packageRoot();
  const child = spawn(process.execPath, [path.join(root, 'bin', 'gemma.js'), 'serve', '--model', a.model, '--port', '0', '--parallel', '4', '--queue', '64'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      err += d;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`gemma serve exited (${code}): ${err}`)));
  });
  for (let i = 0; i < 600; i++) {
    if ((await fetch(`${url}/health`).catch(() => undefined))?.status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`soak: gemma serve --model ${a.model} at ${url}; ${a.clients} clients for ${a.minutes} min (warm-up ${a.warmup} min)`);

  const tally: Tally = { requests: { valid: 0, invalid: 0, disconnect: 0 }, status: {}, clientErrors: [], fiveXX: [] };
  const t0 = Date.now();
  const end = t0 + a.minutes * 60_000;
  const samples: Sample[] = [];
  const loads: number[] = [];
  const sampler = (async () => {
    while (Date.now() < end) {
      const text = await (await fetch(`${url}/metrics`)).text();
      samples.push(parseSample(text, (Date.now() - t0) / 60_000));
      loads.push(os.loadavg()[0]!);
      await new Promise((r) => setTimeout(r, 5000));
    }
  })();

  const json = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const valid: Array<() => [string, RequestInit]> = [
    () => ['/v1/chat/completions', json({ model: 'x', messages: [{ role: 'user', content: 'Tell me something.' }], max_tokens: 12 })],
    () => ['/v1/chat/completions', json({ model: 'x', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], max_tokens: 16, stream: true, stream_options: { include_usage: true } })],
    () => ['/v1/completions', json({ model: 'x', prompt: 'Once upon a time', max_tokens: 16, stream: true, logprobs: 2 })],
    () => ['/v1/completions', json({ model: 'x', prompt: ['a', 'b'], max_tokens: 6, n: 2, seed: 3 })],
    () => ['/v1/chat/completions', json({ model: 'x', messages: [{ role: 'user', content: 'JSON please' }], max_tokens: 24, response_format: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } } } })],
  ];
  const invalid: Array<() => [string, RequestInit]> = [
    () => ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": "x", "messages": [' }],
    () => ['/v1/chat/completions', json({ model: 'x', messages: 'hello' })],
    () => ['/v1/chat/completions', json({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] })],
    () => ['/v1/completions', json({ model: 'x', prompt: 'word '.repeat(5000), max_tokens: 1 })],
    () => ['/v1/completions', json({ model: 'x', prompt: 'a', temperature: 'hot' })],
    () => ['/v1/chat/completions', json({ model: 'x', messages: [{ role: 'user', content: 'hi' }], functions: [] })],
    () => ['/v1/completions', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'prompt=hi' }],
    () => ['/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"model":"x","prompt":"${'a'.repeat(3 << 20)}"}` }],
    () => ['/v1/nothing-here', { method: 'GET' }],
  ];
  let modelId = 'demo';
  try {
    modelId = ((await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> }).data[0]!.id;
  } catch {
    /* keep the default */
  }
  const withModel = (init: RequestInit): RequestInit => (typeof init.body === 'string' && init.body.length < 100_000 ? { ...init, body: init.body.replace('"model":"x"', `"model":${JSON.stringify(modelId)}`) } : init);

  const client = async (seed: number): Promise<void> => {
    const rnd = mulberry32(seed);
    while (Date.now() < end) {
      const r = rnd();
      const kind: Kind = r < 0.55 ? 'valid' : r < 0.85 ? 'invalid' : 'disconnect';
      tally.requests[kind]++;
      const pick = kind === 'invalid' ? invalid[Math.floor(rnd() * invalid.length)]! : valid[Math.floor(rnd() * valid.length)]!;
      const [p, init] = pick();
      const ac = new AbortController();
      let aborted = false;
      const abortAfter = kind === 'disconnect' ? 20 + rnd() * 400 : 0;
      const timer = abortAfter ? setTimeout(() => ((aborted = true), ac.abort()), abortAfter) : undefined;
      try {
        const res = await fetch(`${url}${p}`, { ...withModel(init), signal: ac.signal });
        tally.status[String(res.status)] = (tally.status[String(res.status)] ?? 0) + 1;
        const text = await res.text();
        if (res.status >= 500) tally.fiveXX.push(`${p} ${res.status}: ${text.slice(0, 200)}`);
        if (res.status === 200 && (res.headers.get('content-type') ?? '').startsWith('text/event-stream') && !text.endsWith('data: [DONE]\n\n')) tally.clientErrors.push(`${p}: stream without [DONE]`);
        if (res.status === 200 && text.includes('"type":"server_error"')) tally.fiveXX.push(`${p}: server error in the stream: ${text.slice(0, 200)}`);
      } catch (e) {
        // undici wraps the socket's error in `cause`: keep its code, and which request it was.
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        const what = typeof init.body === 'string' ? init.body.slice(0, 60) : init.method;
        if (!aborted) tally.clientErrors.push(`${p}: ${(e as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''} [${what}]`);
      } finally {
        clearTimeout(timer);
      }
    }
  };
  await Promise.all(Array.from({ length: a.clients }, (_, i) => client(1000 + i)));
  await sampler;
  samples.push(parseSample(await (await fetch(`${url}/metrics`)).text(), (Date.now() - t0) / 60_000));
  child.kill('SIGTERM');
  const exitCode = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));

  // Criteria over the samples after warm-up.
  const after = samples.filter((s) => s.t >= a.warmup);
  // Growth between the halves of the time after warm-up (medians: robust to the GC sawtooth).
  const mid = a.warmup + (a.minutes - a.warmup) / 2;
  const rssStart = median(after.filter((s) => s.t < mid).map((s) => s.rssMb));
  const rssEnd = median(after.filter((s) => s.t >= mid).map((s) => s.rssMb));
  const growth = (rssEnd - rssStart) / rssStart;
  // where a growth of RSS goes: the V8 heap (JS objects), external memory (buffers, wasm), or neither (the allocator)
  const halves = (pick: (s: Sample) => number) => [median(after.filter((s) => s.t < mid).map(pick)), median(after.filter((s) => s.t >= mid).map(pick))] as const;
  const [heapStart, heapEnd] = halves((s) => s.heapMb);
  const [extStart, extEnd] = halves((s) => s.externalMb);
  const [wasmStart, wasmEnd] = halves((s) => s.backendMb);
  // the live JS heap: the troughs of the GC sawtooth (each minute's smallest sample), first vs last minute after warm-up
  const trough = (m: number) => Math.min(...after.filter((s) => Math.floor(s.t) === m).map((s) => s.heapMb));
  const firstMinute = Math.ceil(a.warmup), lastMinute = Math.ceil(a.minutes) - 1;
  const [liveStart, liveEnd] = [trough(firstMinute), trough(lastMinute)];
  const p99 = quantileBetween(after[0]!, samples.at(-1)!, 0.99);
  const p999 = quantileBetween(after[0]!, samples.at(-1)!, 0.999);
  const p50 = quantileBetween(after[0]!, samples.at(-1)!, 0.5);
  const total = tally.requests.valid + tally.requests.invalid + tally.requests.disconnect;
  const pass = { rss: growth < 0.05, delay: p99 < 50, fiveXX: tally.fiveXX.length === 0 && tally.clientErrors.length === 0 };
  const lines = [
    `requests: ${total} in ${a.minutes} min (${tally.requests.valid} valid, ${tally.requests.invalid} invalid, ${tally.requests.disconnect} disconnecting); statuses ${JSON.stringify(tally.status)}`,
    `RSS after warm-up (median, first half -> second half): ${rssStart.toFixed(1)} MB -> ${rssEnd.toFixed(1)} MB (${(growth * 100).toFixed(2)}%; peak ${Math.max(...samples.map((s) => s.rssMb)).toFixed(1)} MB)   [${pass.rss ? 'pass' : 'FAIL'}: growth < 5%]`,
    `  where it goes (medians, same halves): V8 heap used ${heapStart.toFixed(1)} -> ${heapEnd.toFixed(1)} MB, external (array buffers) ${extStart.toFixed(1)} -> ${extEnd.toFixed(1)} MB, backend memory (wasm: weights, KV caches; reserved, not all resident) ${wasmStart.toFixed(1)} -> ${wasmEnd.toFixed(1)} MB; live JS heap (smallest sample of minute ${firstMinute} -> of minute ${lastMinute}) ${liveStart.toFixed(1)} -> ${liveEnd.toFixed(1)} MB`,
    `event-loop delay after warm-up: p50 <= ${p50} ms, p99 <= ${p99} ms, p99.9 <= ${p999} ms, max ${samples.at(-1)!.maxDelayMs.toFixed(0)} ms (whole run)   [${pass.delay ? 'pass' : 'FAIL'}: p99 < 50 ms]`,
    `5xx: ${tally.fiveXX.length}, connection errors not caused by the client: ${tally.clientErrors.length}   [${pass.fiveXX ? 'pass' : 'FAIL'}: none]`,
    `server exit after SIGTERM: ${exitCode}; host: ${os.cpus().length} CPUs, load average ${loads.length ? (loads.reduce((x, y) => x + y, 0) / loads.length).toFixed(1) : '?'} (mean of the 1-minute load sampled during the run)`,
  ];
  for (const l of lines) console.log(l);
  for (const e of [...tally.fiveXX, ...tally.clientErrors].slice(0, 10)) console.log(`  ${e}`);
  const ok = pass.rss && pass.delay && pass.fiveXX;
  console.log(ok ? 'PASS' : 'FAIL');
  if (a.json) fs.writeFileSync(a.json, JSON.stringify({ args: a, loads, tally: { ...tally, fiveXX: tally.fiveXX.slice(0, 50), clientErrors: tally.clientErrors.slice(0, 50) }, rssStart, rssEnd, growth, heapStart, heapEnd, extStart, extEnd, wasmStart, wasmEnd, liveStart, liveEnd, p50, p99, p999, samples, pass }, null, 2));
  process.exitCode = ok ? 0 : 1;
}

main().catch((e: unknown) => {
  console.error(`error: ${(e as Error).message}`);
  process.exitCode = 1;
});
