/**
 * Worker threads for the wasm backend's thread pool, browser flavour: Web Workers started from a
 * Blob URL. Same exports as threads.ts (scripts/build-web.mjs swaps this file in).
 *
 * Sharing WebAssembly memories with workers needs a cross-origin isolated page (COOP / COEP
 * headers); without it the backend runs on one thread. A page's main thread may not block in
 * Atomics.wait, so the pool spins there instead (workers still sleep in Atomics.wait).
 */
import type { PoolWorker } from './threads.js';

export type { PoolWorker };

interface WebWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: 'message' | 'error', f: (e: { data?: unknown; message?: string }) => void, options?: { once?: boolean }): void;
}
interface BrowserGlobals {
  Worker?: new (url: string, options?: { name?: string }) => WebWorker;
  URL: { createObjectURL(b: Blob): string; revokeObjectURL(u: string): void };
  crossOriginIsolated?: boolean;
  WorkerGlobalScope?: unknown;
  navigator?: { hardwareConcurrency?: number };
}
const g = globalThis as unknown as BrowserGlobals;

/** True in a worker (Atomics.wait is allowed there), false on a page's main thread. */
export const canBlock = typeof g.WorkerGlobalScope !== 'undefined';

export function sharedMemoryAvailable(): boolean {
  return g.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function' && typeof g.Worker === 'function';
}

// The first message carries workerData; later ones go to main's handlers.
const PRELUDE = `
let port;
self.onmessage = (first) => {
  const handlers = [];
  port = { on: (_type, f) => handlers.push(f), postMessage: (m) => self.postMessage(m) };
  self.onmessage = (e) => { for (const h of handlers) h(e.data); };
  main(first.data, port);
};
`;

export function spawnWorker(body: string, workerData: unknown): PoolWorker {
  if (!g.Worker) throw new Error('Web Workers are not available here');
  const url = g.URL.createObjectURL(new Blob([`'use strict';\n${body}\n${PRELUDE}`], { type: 'text/javascript' }));
  const w = new g.Worker(url, { name: 'gemma-ts wasm' });
  const ready = new Promise<void>((resolve, reject) => {
    w.addEventListener('message', () => resolve(), { once: true });
    w.addEventListener('error', (e) => reject(new Error(e.message ?? 'worker error')), { once: true });
  });
  void ready.finally(() => g.URL.revokeObjectURL(url)).catch(() => undefined);
  w.postMessage(workerData);
  return { ready, postMessage: (m) => w.postMessage(m), unref: () => undefined, terminate: () => w.terminate() };
}

/** Logical processors (browsers do not tell physical cores apart). */
export function physicalCores(): number {
  return Math.max(1, g.navigator?.hardwareConcurrency ?? 1);
}
