/**
 * A real `gemma serve --model demo` process on a free port of 127.0.0.1, for the SDK tests
 * (the AI SDK and LangChain.js talk to it over HTTP exactly as they would to any server).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { packageRoot } from '../src/util/package-root.js';

export interface ServeProcess {
  /** Base URL of the OpenAI-compatible API (http://127.0.0.1:PORT/v1). */
  baseURL: string;
  close(): Promise<void>;
}

export async function startServe(): Promise<ServeProcess> {
  const child: ChildProcess = spawn(process.execPath, [path.join(packageRoot(), 'bin', 'gemma.js'), 'serve', '--model', 'demo', '--port', '0', '--host', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gemma serve did not start in 60 s: ${stderr}`)), 60_000);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderr += d;
      const m = / on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gemma serve exited (${code}): ${stderr}`));
    });
  });
  // The server listens while the model loads (/health 503 until it is ready).
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ok = await fetch(`${url}/health`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGTERM');
      throw new Error(`gemma serve did not become ready: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    baseURL: `${url}/v1`,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** A fetch that records each request's JSON body (to check what an SDK sent) and passes it on. */
export function recordingFetch(bodies: unknown[]): typeof fetch {
  return async (input, init) => {
    if (typeof init?.body === 'string') bodies.push(JSON.parse(init.body));
    return fetch(input, init);
  };
}
