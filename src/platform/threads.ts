/**
 * Worker threads for the wasm backend's thread pool, Node flavour (worker_threads). The browser
 * flavour (threads.browser.ts, swapped in by scripts/build-web.mjs) has the same exports.
 *
 * A worker runs `body`, a script that defines `function main(workerData, port)` where `port` has
 * `on('message', f)` and `postMessage(m)`; this file adds the few lines that call it.
 */
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { readFileSync } from 'node:fs';

export interface PoolWorker {
  /** Resolves on the worker's first message; rejects if it fails to start. */
  readonly ready: Promise<void>;
  postMessage(message: unknown): void;
  /** Let the process exit while the worker is idle (Node); no-op in browsers. */
  unref(): void;
  terminate(): void;
}

/** Whether this thread may block in Atomics.wait (always in Node; never on a browser's main thread). */
export const canBlock = true;

/** Whether worker threads can share memory with this one (SharedArrayBuffer; always in Node). */
export function sharedMemoryAvailable(): boolean {
  return true;
}

export function spawnWorker(body: string, workerData: unknown): PoolWorker {
  const w = new Worker(`'use strict';\n${body}\nconst wt = require('node:worker_threads');\nmain(wt.workerData, wt.parentPort);\n`, { eval: true, workerData });
  const ready = new Promise<void>((resolve, reject) => {
    w.once('message', () => resolve());
    w.once('error', reject);
  });
  return { ready, postMessage: (m) => w.postMessage(m), unref: () => w.unref(), terminate: () => void w.terminate() };
}

/** Physical core count (Linux /proc/cpuinfo), else os.availableParallelism(). */
export function physicalCores(): number {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const cores = new Set<string>();
    let phys = '0';
    for (const line of info.split('\n')) {
      const m = /^(physical id|core id)\s*:\s*(\d+)/.exec(line);
      if (!m) continue;
      if (m[1] === 'physical id') phys = m[2]!;
      else cores.add(`${phys}:${m[2]}`);
    }
    if (cores.size > 0) return cores.size;
  } catch {
    // not Linux
  }
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}
