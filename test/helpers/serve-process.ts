/**
 * `gemma serve` as a real child process (bin/gemma.js) on a free loopback port: its URL, its
 * stderr, and its exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './paths.js';

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  port: number;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  exited: Promise<number | string>;
  /** Wait until /health answers 200 (at most `ms`). */
  ready(ms?: number): Promise<void>;
  /** Send a signal; SIGKILL if still running at the end of the test (kill()). */
  kill(signal?: NodeJS.Signals): void;
}

/** Start `gemma serve --model demo --port 0 ARGS`; resolves once it listens (not yet ready). */
export async function spawnServe(args: string[] = [], options: { timeoutMs?: number } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'gemma.js'), 'serve', '--port', '0', ...(args.includes('--model') ? [] : ['--model', 'demo']), ...args], {
    cwd: repoRoot(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gemma serve did not listen within ${options.timeoutMs ?? 30000} ms: ${err}`)), options.timeoutMs ?? 30000);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      err += d;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gemma serve exited (${code}) before listening: ${err}`));
    });
  });
  return {
    child,
    url,
    port: Number(new URL(url).port),
    stderr: () => err,
    exited,
    async ready(ms = 30000) {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const r = await fetch(`${url}/health`).catch(() => undefined);
        if (r?.status === 200) return;
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error(`gemma serve was not ready within ${ms} ms: ${err}`);
    },
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** A streamed completion read event by event; `events` fills as data arrives. */
export interface OpenStream {
  events: string[];
  /** Resolves when the stream ends: undefined after its last byte, the error when the connection failed. */
  done: Promise<Error | undefined>;
}

export async function openStream(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<OpenStream & { status: number; headers: Headers }> {
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ ...body, stream: true }) });
  const events: string[] = [];
  const done = (async () => {
    const dec = new TextDecoder();
    let buf = '';
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        events.push(buf.slice(0, i).replace(/^data: /, ''));
        buf = buf.slice(i + 2);
      }
    }
    return undefined;
  })().catch((e: unknown) => e as Error);
  return { status: r.status, headers: r.headers, events, done };
}

/** Wait until `cond` holds (polling every 20 ms, at most `ms`). */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
