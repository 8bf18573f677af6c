/**
 * `npm run bench:serve`: load-test `gemma serve` with concurrent streaming clients.
 *
 * The server runs in a child process (so the clients do not share its event loop). Phases:
 * 1 client (single-stream decode speed), 8 clients, then 16 clients; each streams chat
 * completions (ignore_eos, fixed max_tokens) back to back for the phase's duration.
 * Prints aggregate tokens/s, p50/p99 time to first token and per-token latency, and the
 * 8-client throughput as a multiple of single-stream, and the server process's CPU time per
 * generated token in each phase (user + system, all threads: less sensitive than tok/s to other
 * load on the machine), and the clients' own CPU time per token (they share the machine's cores
 * with the server: on a 2-core machine the load generator's share limits the aggregate).
 *
 *   npm run bench:serve -- [--model demo] [--backend wasm|js] [--threads N] [--duration 30]
 *                          [--single-duration 10] [--max-tokens 64] [--clients 1,8,16]
 *                          [--synthetic gemma-2b:q4_0]
 *
 * --synthetic serves a random-weight model of a real Gemma shape (bench/synthetic.ts, no file,
 * no tokenizer): the clients then stream /v1/completions with token-id prompts. The demo model
 * is so small that its steps are bound by per-row arithmetic; a real-size model is bound by
 * reading the weights, which a batched step reads once for all sequences.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { DType } from '../src/formats/dtype.js';
import type { LanguageModel } from '../src/model/types.js';
import type { Tokenizer } from '../src/tokenizer/types.js';

interface Args {
  model: string;
  backend: 'js' | 'wasm';
  threads?: number;
  duration: number;
  singleDuration: number;
  maxTokens: number;
  clients: number[];
  synthetic?: string;
}

function parse(): Args {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'demo' },
      backend: { type: 'string', default: 'wasm' },
      threads: { type: 'string' },
      duration: { type: 'string', default: '30' },
      'single-duration': { type: 'string', default: '10' },
      'max-tokens': { type: 'string', default: '64' },
      clients: { type: 'string', default: '1,8,16' },
      synthetic: { type: 'string' },
      'server-child': { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  const num = (s: string | undefined, name: string): number => {
    const v = Number(s);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number, got ${s}`);
    return v;
  };
  if (values.backend !== 'js' && values.backend !== 'wasm') throw new Error('--backend must be js or wasm');
  return {
    model: values.model!,
    backend: values.backend,
    ...(values.threads ? { threads: num(values.threads, 'threads') } : {}),
    duration: num(values.duration, 'duration'),
    singleDuration: num(values['single-duration'], 'single-duration'),
    maxTokens: num(values['max-tokens'], 'max-tokens'),
    clients: values.clients!.split(',').map((c) => num(c, 'clients')),
    ...(values.synthetic ? { synthetic: values.synthetic } : {}),
  };
}

// ------------------------------------------------------------ the server child

async function serverChild(a: Args): Promise<void> {
  const v8 = await import('node:v8');
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  const { loadModel, createModel } = await import('../src/model/load.js');
  const { createServer } = await import('../src/server/server.js');
  const backendOptions = { backend: a.backend, ...(a.threads ? { threads: a.threads } : {}) };
  let model: LanguageModel;
  let tokenizer: Tokenizer | undefined;
  if (a.synthetic) {
    const { shapeConfig, syntheticSource } = await import('./synthetic.js');
    const [shape, dtype = 'q4_0'] = a.synthetic.split(':');
    const { config } = shapeConfig(shape!);
    const source = syntheticSource(config, dtype as DType);
    model = await createModel(source, config, backendOptions);
    source.close();
  } else {
    const loaded = await loadModel(a.model, backendOptions);
    model = loaded.model;
    tokenizer = loaded.tokenizer;
  }
  const parallel = Math.max(...a.clients);
  const server = await createServer({ model, tokenizer, modelId: 'bench', parallel, maxQueue: 1024, contextSize: Math.min(model.config.maxPositionEmbeddings, 2048) });
  const url = await server.listen({ port: 0, host: '127.0.0.1' });
  process.stdout.write(`URL ${url}\n`);
  // The parent asks for the process's CPU time around each phase.
  process.on('SIGUSR2', () => {
    const u = process.cpuUsage();
    process.stdout.write(`CPU ${u.user + u.system}\n`);
  });
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
}

const cpuWaiters: Array<(us: number) => void> = [];

function startServer(): Promise<{ child: ChildProcess; url: string }> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...process.execArgv, self, ...process.argv.slice(2), '--server-child'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('URL ')) resolve({ child, url: line.slice(4) });
        else if (line.startsWith('CPU ')) cpuWaiters.shift()?.(Number(line.slice(4)));
      }
    });
    child.on('exit', (code) => reject(new Error(`the server exited with code ${code}`)));
  });
}

/** The server process's CPU time so far, in microseconds. */
function serverCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    cpuWaiters.push(resolve);
    child.kill('SIGUSR2');
  });
}

// ------------------------------------------------------------ clients

interface PhaseResult {
  clients: number;
  seconds: number;
  tokens: number;
  requests: number;
  errors: number;
  ttft: number[];
  gaps: number[];
  /** Server CPU time during the phase (microseconds). */
  cpuUs: number;
  /** The clients' own CPU time during the phase (this process; microseconds). */
  clientCpuUs: number;
}

let tokenIdPrompts = false;

async function streamOnce(url: string, k: number, maxTokens: number, r: PhaseResult, deadline: number): Promise<void> {
  const t0 = performance.now();
  const common = { model: 'bench', max_tokens: maxTokens, ignore_eos: true, stream: true, seed: k, temperature: 1 };
  const res = tokenIdPrompts
    ? await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        // No tokenizer: token-id prompts, and logprobs so every token is sent even without text.
        body: JSON.stringify({ ...common, prompt: [2, ...Array.from({ length: 15 }, (_v, i) => 10 + ((k * 31 + i * 7) % 5000))], logprobs: 0 }),
      })
    : await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...common, messages: [{ role: 'user', content: `Request ${k}: tell me a long story about the sea.` }] }),
      });
  if (!res.ok || !res.body) {
    r.errors++;
    await res.body?.cancel();
    return;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let last = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const chunk = JSON.parse(ev.slice(6)) as { choices: Array<{ delta?: { content?: string; role?: string }; text?: string; finish_reason: string | null }> };
      const ch = chunk.choices[0];
      if (!ch || ch.finish_reason) continue;
      if (tokenIdPrompts ? ch.text === undefined : !ch.delta || ch.delta.role || ch.delta.content === undefined) continue;
      const now = performance.now();
      // Tokens that end after the deadline do not count (the phase's window is fixed).
      if (now > deadline) continue;
      r.tokens++;
      if (last === 0) r.ttft.push(now - t0);
      else r.gaps.push(now - last);
      last = now;
    }
  }
  r.requests++;
}

async function phase(url: string, clients: number, seconds: number, maxTokens: number): Promise<PhaseResult> {
  const r: PhaseResult = { clients, seconds, tokens: 0, requests: 0, errors: 0, ttft: [], gaps: [], cpuUs: 0, clientCpuUs: 0 };
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let k = clients * 100000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) await streamOnce(url, k++, maxTokens, r, deadline);
    }),
  );
  r.seconds = (Math.min(performance.now(), deadline) - start) / 1000;
  return r;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function main(): Promise<void> {
  const a = parse();
  if (process.argv.includes('--server-child')) return serverChild(a);
  tokenIdPrompts = a.synthetic !== undefined;
  console.log(`bench:serve  model ${a.synthetic ? `synthetic ${a.synthetic}` : a.model}, backend ${a.backend}${a.threads ? ` (${a.threads} threads)` : ''}, max_tokens ${a.maxTokens}, clients ${a.clients.join(', ')}`);
  const { child, url } = await startServer();
  try {
    // Warm-up (JIT, caches).
    await phase(url, Math.max(...a.clients), 2, 8);
    const results: PhaseResult[] = [];
    console.log('clients  seconds  requests  tokens   agg tok/s  ttft p50 ms  ttft p99 ms  tok lat p50 ms  tok lat p99 ms  errors  cpu us/tok  client cpu us/tok');
    for (const c of a.clients) {
      const cpu0 = await serverCpu(child);
      const own0 = process.cpuUsage();
      const r = await phase(url, c, c === 1 ? a.singleDuration : a.duration, a.maxTokens);
      // Tokens past the phase's deadline are not counted but did cost CPU: a slight overestimate.
      r.cpuUs = (await serverCpu(child)) - cpu0;
      const own = process.cpuUsage(own0);
      r.clientCpuUs = own.user + own.system;
      results.push(r);
      console.log(
        [
          String(c).padStart(7),
          r.seconds.toFixed(1).padStart(8),
          String(r.requests).padStart(9),
          String(r.tokens).padStart(7),
          (r.tokens / r.seconds).toFixed(1).padStart(11),
          pct(r.ttft, 50).toFixed(1).padStart(12),
          pct(r.ttft, 99).toFixed(1).padStart(12),
          pct(r.gaps, 50).toFixed(2).padStart(15),
          pct(r.gaps, 99).toFixed(2).padStart(15),
          String(r.errors).padStart(7),
          (r.tokens ? r.cpuUs / r.tokens : NaN).toFixed(1).padStart(11),
          (r.tokens ? r.clientCpuUs / r.tokens : NaN).toFixed(1).padStart(18),
        ].join(' '),
      );
    }
    const single = results.find((r) => r.clients === 1);
    if (single) {
      const singleTps = single.gaps.length ? 1000 / (single.gaps.reduce((x, y) => x + y, 0) / single.gaps.length) : NaN;
      console.log(`single-stream decode: ${singleTps.toFixed(1)} tok/s (mean inter-token latency of one client)`);
      for (const r of results) {
        if (r.clients === 1) continue;
        const ratio = r.tokens / r.seconds / (single.tokens / single.seconds);
        console.log(`${r.clients} clients: aggregate ${(r.tokens / r.seconds).toFixed(1)} tok/s = ${ratio.toFixed(2)}x single-stream${r.clients === 8 ? (ratio >= 3 ? ' (>= 3x: ok)' : ' (< 3x target)') : ''}`);
      }
    }
  } finally {
    child.kill('SIGTERM');
  }
}

main().catch((e: unknown) => {
  console.error(`bench:serve: ${(e as Error).message}`);
  process.exit(1);
});
