/**
 * `npm run fuzz -- --target T --time S [--runs N] [--seed K]`: a fuzz campaign over one parser
 * (or `--target all`), fast-check generating the inputs (test/fuzz-inputs.ts) from the committed
 * seed corpus (fuzz/corpus/T). Pass criteria, per target:
 *   - every input ends in success or the target's typed error (anything else is a crash);
 *   - no input takes more than 1 s of CPU (wall time is reported too; a hang - no progress for
 *     10 s - is ended by the watchdog);
 *   - the process stays under --rss-mb (default 1536 MB) and the V8 heap under --heap-mb (1024).
 * A failing input (shrunk by fast-check; the last input for a hang or an out-of-memory) is saved to
 * fuzz/crashes/T/ and replayed by test/fuzz-regression.test.ts from then on.
 * `--make-seeds` writes each target's built-in seeds to fuzz/corpus/T/.
 *
 * Jazzer.js (coverage-guided) does not run here: its prebuilt native fuzzer needs glibc 2.38 and
 * Debian 12 ships 2.36; fast-check's mutation + structured generation takes its place.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { committedInputs, corpusDirs, fuzzTargets, isAllowed, type FuzzTarget } from '../test/fuzz-targets.js';
import { inputsFor } from '../test/fuzz-inputs.js';

interface Args {
  target: string;
  time: number;
  runs?: number;
  seed: number;
  heapMb: number;
  rssMb: number;
  makeSeeds: boolean;
  json?: string;
}

interface WorkerStats {
  inputs: number;
  typedErrors: number;
  /** Slowest input: wall time, and CPU time (the bound; the host may be shared). */
  maxMs: number;
  maxCpuMs: number;
  peakRssMb: number;
  peakHeapMb: number;
  seconds: number;
}

type WorkerResult = WorkerStats & { failure?: { message: string; input: number[] } };

const SLOW_MS = 1000;
const HANG_MS = 10_000;
/** Shared with the watchdog: [0] = inputs started, [1] = current input length; bytes after. */
const WATCH_BYTES = 4 << 20;

function parseArgs(argv: string[]): Args {
  const a: Args = { target: 'all', time: 60, seed: Date.now() % 2 ** 31, heapMb: 1024, rssMb: 1536, makeSeeds: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[i + 1];
    const num = (): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${k} needs a positive number, got ${v}`);
      i++;
      return n;
    };
    if (k === '--target') (a.target = v ?? 'all'), i++;
    else if (k === '--time') a.time = num();
    else if (k === '--runs') a.runs = Math.floor(num());
    else if (k === '--seed') a.seed = Math.floor(num());
    else if (k === '--heap-mb') a.heapMb = num();
    else if (k === '--rss-mb') a.rssMb = num();
    else if (k === '--json') (a.json = v), i++;
    else if (k === '--make-seeds') a.makeSeeds = true;
    else throw new Error(`unknown option ${k} (use --target T --time S [--runs N] [--seed K] [--heap-mb M] [--rss-mb M] [--json FILE] [--make-seeds])`);
  }
  return a;
}

/** The inputs mutations start from: the committed corpus, else the target's built-in seeds. */
function seedsOf(t: FuzzTarget): Uint8Array[] {
  const committed = committedInputs(t.name).filter((c) => c.file.includes(`${path.sep}corpus${path.sep}`));
  return committed.length ? committed.map((c) => c.bytes) : t.seeds();
}

// ------------------------------------------------------------------ worker: one target's campaign

async function runWorker(): Promise<void> {
  const { target: name, time, runs, seed, rssMb, watch } = workerData as { target: string; time: number; runs?: number; seed: number; rssMb: number; watch: SharedArrayBuffer };
  const target = fuzzTargets().find((t) => t.name === name)!;
  const counters = new Int32Array(watch, 0, 2);
  const bytes = new Uint8Array(watch, 8);
  const stats: WorkerStats = { inputs: 0, typedErrors: 0, maxMs: 0, maxCpuMs: 0, peakRssMb: 0, peakHeapMb: 0, seconds: 0 };
  const sample = (): void => {
    const m = process.memoryUsage();
    stats.peakRssMb = Math.max(stats.peakRssMb, m.rss / 2 ** 20);
    stats.peakHeapMb = Math.max(stats.peakHeapMb, m.heapUsed / 2 ** 20);
    if (m.rss / 2 ** 20 > rssMb) throw new Error(`memory: RSS ${(m.rss / 2 ** 20).toFixed(0)} MB exceeds the bound of ${rssMb} MB`);
  };
  const t0 = performance.now();
  const result = await fc.check(
    fc.asyncProperty(inputsFor(target, seedsOf(target)), async (input) => {
      const n = Math.min(input.length, bytes.length);
      bytes.set(input.subarray(0, n));
      Atomics.store(counters, 1, n);
      Atomics.add(counters, 0, 1);
      const start = performance.now();
      const cpu0 = process.cpuUsage();
      try {
        await target.run(input);
      } catch (e) {
        if (!isAllowed(target, e)) throw e;
        stats.typedErrors++;
      }
      const ms = performance.now() - start;
      const cpu = process.cpuUsage(cpu0);
      const cpuMs = (cpu.user + cpu.system) / 1000;
      stats.inputs++;
      if (ms > stats.maxMs) stats.maxMs = ms;
      if (cpuMs > stats.maxCpuMs) stats.maxCpuMs = cpuMs;
      if (cpuMs > SLOW_MS) throw new Error(`slow input: ${cpuMs.toFixed(0)} ms of CPU (the bound is ${SLOW_MS} ms)`);
      if (stats.inputs % 500 === 0) sample();
    }),
    { numRuns: runs ?? Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: time * 1000, markInterruptAsFailure: false, seed, endOnFailure: false, maxSkipsPerRun: 0 },
  );
  sample();
  stats.seconds = (performance.now() - t0) / 1000;
  await target.close?.();
  const out: WorkerResult = { ...stats };
  if (result.failed) {
    const input = result.counterexample?.[0] as Uint8Array | undefined;
    const err = result.errorInstance as Error | undefined;
    out.failure = { message: err ? `${err.name}: ${err.message}\n${(err.stack ?? '').split('\n').slice(1, 6).join('\n')}` : String(result.errorInstance), input: [...(input ?? [])] };
  }
  parentPort!.postMessage(out);
}

// ------------------------------------------------------------------ main: watchdog and report

function saveCrash(target: string, input: Uint8Array, kind: string): string {
  const dir = corpusDirs(target).crashes;
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${kind}-${createHash('sha1').update(input).digest('hex').slice(0, 12)}.bin`);
  fs.writeFileSync(file, input);
  return file;
}

async function campaign(target: FuzzTarget, a: Args): Promise<{ ok: boolean; line: string; stats?: WorkerStats }> {
  const watch = new SharedArrayBuffer(8 + WATCH_BYTES);
  const counters = new Int32Array(watch, 0, 2);
  const current = (): Uint8Array => new Uint8Array(watch, 8, Atomics.load(counters, 1)).slice();
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { target: target.name, time: a.time, runs: a.runs, seed: a.seed, rssMb: a.rssMb, watch },
    resourceLimits: { maxOldGenerationSizeMb: a.heapMb },
  });
  return new Promise((resolve) => {
    let last = -1;
    let lastChange = Date.now();
    const timer = setInterval(() => {
      const n = Atomics.load(counters, 0);
      if (n !== last) {
        last = n;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > HANG_MS) {
        clearInterval(timer);
        const file = saveCrash(target.name, current(), 'hang');
        void worker.terminate();
        resolve({ ok: false, line: `${target.name}: HANG (no progress for ${HANG_MS / 1000} s) on input saved to ${file}` });
      }
    }, 500);
    worker.once('message', (r: WorkerResult) => {
      clearInterval(timer);
      const s = `${r.inputs} inputs in ${r.seconds.toFixed(0)} s (${(r.inputs / r.seconds).toFixed(0)}/s), ${r.typedErrors} typed errors, slowest ${r.maxCpuMs.toFixed(0)} ms CPU (${r.maxMs.toFixed(0)} ms wall), peak RSS ${r.peakRssMb.toFixed(0)} MB, peak heap ${r.peakHeapMb.toFixed(0)} MB`;
      if (r.failure) {
        const file = saveCrash(target.name, Uint8Array.from(r.failure.input), 'crash');
        resolve({ ok: false, stats: r, line: `${target.name}: CRASH after ${s}\n  ${r.failure.message.replace(/\n/g, '\n  ')}\n  input (shrunk) saved to ${file}` });
      } else resolve({ ok: true, stats: r, line: `${target.name}: ok - ${s}` });
    });
    worker.once('error', (e: Error) => {
      clearInterval(timer);
      const file = saveCrash(target.name, current(), 'error');
      resolve({ ok: false, line: `${target.name}: WORKER DIED (${e.message}) on input saved to ${file}` });
    });
  });
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const all = fuzzTargets();
  const chosen = a.target === 'all' ? all : all.filter((t) => t.name === a.target);
  if (!chosen.length) throw new Error(`unknown target ${a.target}; targets: ${all.map((t) => t.name).join(', ')}, all`);
  if (a.makeSeeds) {
    for (const t of chosen) {
      const dir = corpusDirs(t.name).corpus;
      fs.mkdirSync(dir, { recursive: true });
      t.seeds().forEach((s, i) => fs.writeFileSync(path.join(dir, `seed-${i}.bin`), s));
      console.log(`${t.name}: ${t.seeds().length} seeds in ${dir}`);
    }
    for (const t of all) await t.close?.();
    return;
  }
  console.log(`fuzz: ${chosen.map((t) => t.name).join(', ')}; ${a.runs ? `${a.runs} inputs or ` : ''}${a.time} s each; seed ${a.seed}; bounds: 1 s per input, RSS ${a.rssMb} MB, heap ${a.heapMb} MB`);
  const report: Array<{ target: string; ok: boolean; line: string; stats?: WorkerStats }> = [];
  for (const t of chosen) {
    const r = await campaign(t, a);
    console.log(r.line);
    report.push({ target: t.name, ...r });
  }
  for (const t of all) await t.close?.();
  if (a.json) fs.writeFileSync(a.json, JSON.stringify({ seed: a.seed, report }, null, 2));
  const failed = report.filter((r) => !r.ok);
  console.log(failed.length ? `FAIL: ${failed.map((r) => r.target).join(', ')}` : 'PASS: every input ended in success or the typed error, none took over 1 s, memory stayed within bounds');
  process.exitCode = failed.length ? 1 : 0;
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(`error: ${(e as Error).message}`);
    process.exitCode = 1;
  });
} else {
  await runWorker();
}
