/**
 * A fixed set of worker threads that run kernel exports over shared WebAssembly memories.
 * Workers start once (ThreadPool.create) and then loop: spin briefly on a generation counter,
 * else Atomics.wait on it. A kernel call splits its units into a few chunks per thread; the
 * calling thread and the workers claim chunks from one atomic counter (so a worker that the OS
 * has descheduled never holds the call up: the others take its chunks) and count completions;
 * the caller returns when every chunk is done. One generation bump per call, no thread start-up.
 *
 * The claim counter NEXT packs (tag << 20) | (chunks << 10) | next-index. The caller closes it
 * (chunks = 0) before writing a call's parameters and opens it after, so a worker that reads the
 * parameters after a successful claim always sees those of the call it claimed from (the caller
 * cannot start the next call while a claimed chunk is unfinished).
 * Adding a memory (a new weight shard) sends it by postMessage and a "yield" command that lets the
 * workers return to their event loop to receive it.
 */
import { ModelError } from '../../errors.js';
import { canBlock, spawnWorker, type PoolWorker } from '../../platform/threads.js';

const GEN = 0;
const DONE = 1;
const CMD = 2;
const SHARD = 3;
const TOTAL = 4;
const FAILED = 6;
const NEXT = 7;
const COMPLETED = 8;
const ARGS_OFFSET = 64; // bytes
const MAX_ARGS = 14;
const CMD_YIELD = -1;
const CMD_EXIT = -2;
const CHUNKS_PER_THREAD = 4;

// The worker's script: platform/threads calls main(workerData, port) in Node and in browsers.
const WORKER_SOURCE = `
function main(workerData, parentPort) {
const { module, memories, ctlBuf, index, names, spin } = workerData;
const ctl = new Int32Array(ctlBuf);
const args = new Float64Array(ctlBuf, ${ARGS_OFFSET}, ${MAX_ARGS});
const shards = [];
function addShard(memory) {
  const inst = new WebAssembly.Instance(module, { env: { memory, abort() { throw new Error('wasm abort'); } } });
  inst.exports.set_thread(index);
  shards.push(names.map((n) => inst.exports[n]));
}
for (const m of memories) addShard(m);
let gen = Atomics.load(ctl, ${GEN});
function work() {
  for (;;) {
    const v = Atomics.load(ctl, ${NEXT});
    const i = v & 1023, n = (v >> 10) & 1023;
    if (i >= n) return;
    if (Atomics.compareExchange(ctl, ${NEXT}, v, v + 1) !== v) continue;
    try {
      const total = ctl[${TOTAL}];
      const start = Math.floor((total * i) / n), end = Math.floor((total * (i + 1)) / n);
      if (start < end) shards[ctl[${SHARD}]][ctl[${CMD}]](start, end, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8], args[9], args[10], args[11], args[12], args[13]);
    } catch (e) {
      Atomics.store(ctl, ${FAILED}, 1);
    }
    if (Atomics.add(ctl, ${COMPLETED}, 1) + 1 === n) Atomics.notify(ctl, ${COMPLETED});
  }
}
function loop() {
  for (;;) {
    let s = 0;
    while (Atomics.load(ctl, ${GEN}) === gen) {
      if (++s > spin) { Atomics.wait(ctl, ${GEN}, gen); s = 0; }
    }
    gen = Atomics.load(ctl, ${GEN});
    const cmd = ctl[${CMD}];
    if (cmd === ${CMD_EXIT}) return;
    if (cmd === ${CMD_YIELD}) return; // the 'shard' message handler resumes the loop
    work();
  }
}
parentPort.on('message', (msg) => {
  if (msg.type === 'shard') {
    try { addShard(msg.memory); } catch (e) { Atomics.store(ctl, ${FAILED}, 1); }
    gen = Atomics.load(ctl, ${GEN});
    Atomics.add(ctl, ${DONE}, 1);
    Atomics.notify(ctl, ${DONE});
    loop();
  }
});
parentPort.postMessage('ready');
loop();
}
`;

type KernelFn = (...args: number[]) => void;

export class ThreadPool {
  readonly threads: number;
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private readonly workers: PoolWorker[];
  private readonly shards: KernelFn[][] = [];
  private disposed = false;

  private readonly names: readonly string[];

  private constructor(threads: number, ctl: Int32Array, workers: PoolWorker[], names: readonly string[]) {
    this.names = names;
    this.threads = threads;
    this.ctl = ctl;
    this.args = new Float64Array(ctl.buffer, ARGS_OFFSET, MAX_ARGS);
    this.workers = workers;
  }

  static async create(module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number, names: readonly string[], spin = 20000): Promise<ThreadPool> {
    // One thread needs no sharing (and a browser page that is not cross-origin isolated has no SharedArrayBuffer).
    const ctlBytes = ARGS_OFFSET + 8 * MAX_ARGS;
    const ctlBuf = threads > 1 ? new SharedArrayBuffer(ctlBytes) : new ArrayBuffer(ctlBytes);
    const ctl = new Int32Array(ctlBuf);
    const workers: PoolWorker[] = [];
    for (let i = 1; i < threads; i++) workers.push(spawnWorker(WORKER_SOURCE, { module, memories: [memory], ctlBuf, index: i, names, spin }));
    try {
      await Promise.all(workers.map((w, i) => w.ready.catch((e: Error) => Promise.reject(new ModelError(`wasm worker ${i + 1} failed to start: ${e.message}`, { cause: e })))));
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
    for (const w of workers) w.unref();
    const pool = new ThreadPool(threads, ctl, workers, names);
    pool.addLocalShard(module, memory);
    return pool;
  }

  private addLocalShard(module: WebAssembly.Module, memory: WebAssembly.Memory): WebAssembly.Instance {
    const inst = new WebAssembly.Instance(module, {
      env: {
        memory,
        abort() {
          throw new ModelError('wasm kernel aborted');
        },
      },
    });
    const exp = inst.exports as Record<string, KernelFn>;
    exp.set_thread!(0);
    this.shards.push(this.names.map((n) => exp[n]!));
    return inst;
  }

  /** Register a further memory (weight shard) with every thread; returns the main-thread instance. */
  addShard(module: WebAssembly.Module, memory: WebAssembly.Memory): WebAssembly.Instance {
    this.check();
    const inst = this.addLocalShard(module, memory);
    if (this.workers.length > 0) {
      for (const w of this.workers) w.postMessage({ type: 'shard', memory });
      this.signal(CMD_YIELD);
      this.waitAcks();
    }
    return inst;
  }

  /** Kernel exports of shard `s` on the calling thread. */
  local(s: number): KernelFn[] {
    return this.shards[s]!;
  }

  /**
   * Run kernel `cmd` of shard `shard` over units [0, total): f(start, end, ...args) on chunks of
   * the units, claimed by the calling thread and the workers. Runs inline when there is one
   * thread or `parallel` is false.
   */
  run(shard: number, cmd: number, total: number, args: readonly number[], parallel = true): void {
    this.check();
    const f = this.shards[shard]![cmd]!;
    if (this.workers.length === 0 || !parallel || total < 2) {
      f(0, total, ...args);
      return;
    }
    const c = this.ctl;
    const n = Math.min(total, this.threads * CHUNKS_PER_THREAD, 1023);
    Atomics.store(c, NEXT, 0); // closed: no claims while the parameters change
    const a = this.args;
    for (let i = 0; i < args.length; i++) a[i] = args[i]!;
    c[CMD] = cmd;
    c[SHARD] = shard;
    c[TOTAL] = total;
    Atomics.store(c, COMPLETED, 0);
    this.tag = (this.tag + 1) & 0x7ff;
    Atomics.store(c, NEXT, (this.tag << 20) | (n << 10));
    Atomics.add(c, GEN, 1);
    Atomics.notify(c, GEN);
    let err: unknown;
    for (;;) {
      const v = Atomics.load(c, NEXT);
      const i = v & 1023;
      if (i >= n) break;
      if (Atomics.compareExchange(c, NEXT, v, v + 1) !== v) continue;
      try {
        const start = Math.floor((total * i) / n), end = Math.floor((total * (i + 1)) / n);
        if (start < end) f(start, end, ...args);
      } catch (e) {
        err ??= e;
      }
      Atomics.add(c, COMPLETED, 1);
    }
    let spins = 0;
    for (;;) {
      const d = Atomics.load(c, COMPLETED);
      if (d >= n) break;
      if (++spins > 20000 && canBlock) Atomics.wait(c, COMPLETED, d, 100);
    }
    if (Atomics.load(c, FAILED)) {
      Atomics.store(c, FAILED, 0);
      err ??= new ModelError('wasm kernel failed in a worker thread (out-of-bounds access or abort)');
    }
    if (err) throw err instanceof ModelError ? err : new ModelError(`wasm kernel failed: ${(err as Error).message}`, { cause: err });
  }

  private tag = 0;

  private signal(cmd: number): void {
    const c = this.ctl;
    Atomics.store(c, NEXT, 0);
    c[CMD] = cmd;
    Atomics.store(c, DONE, 0);
    Atomics.add(c, GEN, 1);
    Atomics.notify(c, GEN);
  }

  /** Wait until every worker acknowledged a yield (shard message processed). */
  private waitAcks(): void {
    const c = this.ctl;
    const want = this.workers.length;
    let spins = 0;
    for (;;) {
      const d = Atomics.load(c, DONE);
      if (d >= want) break;
      if (++spins > 100000 && canBlock) Atomics.wait(c, DONE, d, 100);
    }
    if (Atomics.load(c, FAILED)) {
      Atomics.store(c, FAILED, 0);
      throw new ModelError('a wasm worker could not instantiate the kernels on a new memory');
    }
  }

  private check(): void {
    if (this.disposed) throw new ModelError('the wasm backend was disposed');
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.workers.length > 0) this.signal(CMD_EXIT);
    for (const w of this.workers) w.terminate();
  }
}
