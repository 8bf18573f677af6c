/**
 * `npm run bench:train`: forward + backward tokens/s and peak RSS of training, gemma-ts against
 * PyTorch on the CPU (Debian's python3-torch, float32, same thread count), alternating in one run,
 * each measurement in its own process (peak RSS per engine):
 *   (a) full fine-tuning of a ~100M-parameter Gemma-3-shaped model in f32;
 *   (b) LoRA rank 8, all-linear, on gemma-2b shapes with Q4_0 and Q8_0 base weights (PyTorch: f32 base).
 * Random weights, sequence 256, batch 1. Flags: --case a|b|all, --layers N (fewer layers for a
 * quick run), --seq N, --steps N (best of), --threads N (both engines: gemma-ts's kernel threads
 * and torch.set_num_threads), --rounds N, --types q4_0,q8_0.
 * Run it pinned (taskset -c 1 npm run bench:train) on a shared machine: the children inherit the
 * CPU set, which the output names, so both engines get the same cores.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { tensorTypeFor } from '../src/formats/convert.js';
import { DTYPE_LAYOUT, type DType } from '../src/formats/dtype.js';
import { writeGGUFAsync } from '../src/formats/gguf.js';
import { archOfFamily, configToGGUFMetadata, hfToGgufName } from '../src/formats/gguf-names.js';
import { f32ToF16 } from '../src/formats/half.js';
import { sequenceForwardBackward } from '../src/train/backward.js';
import { loadTrainModel } from '../src/train/checkpoint-io.js';
import { addLoraLayers, ALL_LINEAR } from '../src/train/lora.js';
import { tensorLayout } from '../src/train/params.js';
import { normalizeHfConfig } from '../src/config/model-config.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { packageRoot } from '../src/util/package-root.js';

const args = process.argv.slice(2);
const flag = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};

interface Result {
  tokens_per_s: number;
  step_s: number;
  peak_rss_mb: number;
  threads: number;
  /** CPU seconds of the step (all threads): on a shared core, the fairer figure. */
  cpu_s: number;
}

// ------------------------------------------------------------------ worker: one engine, one case
if (flag('worker', '') === 'ours') {
  const dir = flag('model', '');
  const seq = Number(flag('seq', '256')), steps = Number(flag('steps', '2')), rank = Number(flag('lora-rank', '0'));
  const { model } = await loadTrainModel(dir, { trainable: rank === 0, threads: Number(flag('threads', '1')), noTokenizer: true });
  if (rank) addLoraLayers(model, { rank, alpha: 16, dropout: 0, rslora: false, targets: [...ALL_LINEAR] });
  const V = model.config.vocabSize;
  const ids = Array.from({ length: seq }, (_, i) => (7 + 13 * i) % V);
  let best = Infinity, cpu = Infinity;
  for (let s = 0; s < steps; s++) {
    model.zeroGrad();
    const t0 = performance.now(), c0 = process.cpuUsage();
    sequenceForwardBackward(model, { ids }, 1 / (seq - 1));
    best = Math.min(best, (performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    cpu = Math.min(cpu, (c.user + c.system) / 1e6);
  }
  const r: Result = { tokens_per_s: seq / best, step_s: best, peak_rss_mb: process.resourceUsage().maxRSS / 1024, threads: (model.matmul as { threads?: number }).threads ?? 1, cpu_s: cpu };
  process.stdout.write(JSON.stringify(r));
  process.exit(0);
}

// ------------------------------------------------------------------ driver
const seq = flag('seq', '256'), steps = flag('steps', '2'), rounds = Number(flag('rounds', '2'));
const threads = flag('threads', '1');
const which = flag('case', 'all');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-bench-train-'));

/** A random f32 checkpoint, written one tensor at a time (gemma-2b shapes are 10 GB of f32). */
function writeModel(name: string, cfg: Record<string, unknown>): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  const { config } = normalizeHfConfig(cfg);
  const rnd = mulberry32(1);
  const layout = tensorLayout(config);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of layout) {
    const bytes = 4 * t.shape.reduce((a, b) => a * b, 1);
    header['model.' + t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const fd = fs.openSync(path.join(dir, 'model.safetensors'), 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeSync(fd, len);
    fs.writeSync(fd, Buffer.from(json));
    for (const { shape, kind } of layout) {
      const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
      const scale = kind === 'norm' ? 0.1 : 0.02;
      for (let i = 0; i < v.length; i++) v[i] = (rnd() - 0.5) * 2 * scale;
      fs.writeSync(fd, new Uint8Array(v.buffer));
    }
  } finally {
    fs.closeSync(fd);
  }
  return dir;
}

/**
 * Random stored bytes in `dtype` with a fixed block scale, values within about +-0.02 (f32: the
 * GGUF norm convention 1 + w). Drawn directly in the block format rather than quantized from f32:
 * quantizing a 256k x 2048 table to Q6_K takes the better part of an hour on one core.
 */
function randomTensor(dtype: DType, count: number): Uint8Array {
  if (dtype === 'f32') {
    const v = new Float32Array(count);
    for (let i = 0; i < count; i++) v[i] = 1 + (Math.random() - 0.5) * 0.2;
    return new Uint8Array(v.buffer);
  }
  const { blockSize, blockBytes } = DTYPE_LAYOUT[dtype];
  const out = randomFillSync(new Uint8Array((count / blockSize) * blockBytes));
  // where the f16 scale sits in a block, and the scale giving |w| <= ~0.02
  const [at, d] = dtype === 'q8_0' ? [0, 0.02 / 127] : dtype === 'q4_0' ? [0, 0.02 / 8] : dtype === 'q6_k' ? [208, 0.02 / (32 * 127)] : [-1, 0];
  if (at < 0) throw new Error(`bench: no random generator for ${dtype}`);
  const h = f32ToF16(d);
  for (let p = at; p < out.length; p += blockBytes) {
    out[p] = h & 0xff;
    out[p + 1] = h >> 8;
  }
  return out;
}

/** A random GGUF of the config's shapes, typed as llama-quantize would (Q4_0: Q6_K embedding). */
async function writeRandomGGUF(file: string, cfg: Record<string, unknown>, type: 'q4_0' | 'q8_0'): Promise<void> {
  const { config } = normalizeHfConfig(cfg);
  const arch = archOfFamily(config.family);
  const { metadata } = configToGGUFMetadata(config, 'bench');
  const tensors = tensorLayout(config).map(({ name, shape }) => {
    const ggufName = hfToGgufName(arch, 'model.' + name)!;
    const dtype = tensorTypeFor(ggufName, shape, type, config.numLayers);
    return { name: ggufName, dtype, shape, data: () => randomTensor(dtype, shape.reduce((a, b) => a * b, 1)) };
  });
  await writeGGUFAsync(file, { metadata, tensors, prefetch: 0 });
}

/** One run's figures as soon as it ends (a long run's results survive an interrupted bench). */
function logRun(engine: string, label: string, r: Result): Result {
  console.log(`  ${engine} ${label}: ${JSON.stringify(r)}`);
  return r;
}

function runOurs(model: string, rank: number): Result {
  const out = execFileSync(process.execPath, [...process.execArgv, process.argv[1]!, '--worker', 'ours', '--model', model, '--seq', seq, '--steps', steps, '--threads', threads, '--lora-rank', String(rank)], {
    env: { ...process.env }, maxBuffer: 1 << 20,
  });
  return logRun('gemma-ts', path.basename(model), JSON.parse(out.toString()) as Result);
}
function runTorch(model: string, rank: number): Result {
  const out = execFileSync('/usr/bin/python3', [path.join(packageRoot(), 'scripts', 'torch-gemma.py'), 'bench', '--model', model, '--seq', seq, '--steps', steps, '--threads', threads, '--lora-rank', String(rank)], { maxBuffer: 1 << 20 });
  return logRun('PyTorch', path.basename(model), JSON.parse(out.toString()) as Result);
}

const gemma3Small = (layers: number) => ({
  model_type: 'gemma3_text', vocab_size: 32768, hidden_size: 640, intermediate_size: 2048, num_hidden_layers: layers,
  num_attention_heads: 4, num_key_value_heads: 1, head_dim: 256, query_pre_attn_scalar: 256, sliding_window: 512,
  rope_theta: 1000000, rope_local_base_freq: 10000, max_position_embeddings: 4096,
});
const gemma2b = (layers: number) => ({
  model_type: 'gemma', vocab_size: 256000, hidden_size: 2048, intermediate_size: 16384, num_hidden_layers: layers,
  num_attention_heads: 8, num_key_value_heads: 1, head_dim: 256, max_position_embeddings: 8192,
});

/** The CPUs this process may run on (taskset), from /proc (Linux), else the count. */
function cpusAllowed(): string {
  try {
    const m = /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return m[1]!;
  } catch {
    // not Linux
  }
  return `${os.availableParallelism()} (all)`;
}

function report(label: string, ours: Result[], torch: Result[]): void {
  const best = (rs: Result[]) => rs.reduce((a, r) => (r.tokens_per_s > a.tokens_per_s ? r : a));
  const o = best(ours), t = best(torch);
  const side = (r: Result) => `${r.tokens_per_s.toFixed(2)} tok/s (${r.step_s.toFixed(1)} s/step wall, ${r.cpu_s.toFixed(1)} CPU s, ${r.threads} thread${r.threads > 1 ? 's' : ''}), peak RSS ${r.peak_rss_mb.toFixed(0)} MB`;
  console.log(`${label}:\n  gemma-ts ${side(o)}\n  PyTorch  ${side(t)}\n  speed ${(o.tokens_per_s / t.tokens_per_s).toFixed(2)}x by wall time, ${(t.cpu_s / o.cpu_s).toFixed(2)}x by CPU time; memory ${(o.peak_rss_mb / t.peak_rss_mb).toFixed(2)}x`);
}

try {
  console.log(`bench:train  seq ${seq}, batch 1, best of ${steps} steps, ${rounds} alternating rounds, ${threads} thread(s) for both engines, CPUs allowed: ${cpusAllowed()}`);
  if (which === 'a' || which === 'all') {
    const dir = writeModel('a', gemma3Small(Number(flag('layers', '14'))));
    const ours: Result[] = [], torch: Result[] = [];
    for (let r = 0; r < rounds; r++) {
      ours.push(runOurs(dir, 0));
      torch.push(runTorch(dir, 0));
    }
    report('(a) full fine-tuning, ~100M Gemma-3-shaped f32', ours, torch);
  }
  if (which === 'b' || which === 'all') {
    const layers = Number(flag('layers', '18'));
    const dir = writeModel('b', gemma2b(layers));
    if (layers !== 18) console.log(`(b) uses ${layers} of gemma-2b's 18 layers (full 256k x 2048 embedding, full-size layers)`);
    const types = flag('types', 'q4_0,q8_0').split(',') as Array<'q4_0' | 'q8_0'>;
    const ggufs = new Map<string, string>();
    for (const type of types) {
      const gguf = path.join(tmp, `b.${type}.gguf`);
      await writeRandomGGUF(gguf, gemma2b(layers), type);
      ggufs.set(type, gguf);
    }
    // Each round: gemma-ts on each base type, then PyTorch's f32 base once (its run is the slow one).
    const ours = new Map<string, Result[]>(types.map((t) => [t, []])), torch: Result[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const type of types) ours.get(type)!.push(runOurs(ggufs.get(type)!, 8));
      torch.push(runTorch(dir, 8));
    }
    for (const type of types) report(`(b) LoRA r8 all-linear, gemma-2b shapes, ${type} base (PyTorch f32 base)`, ours.get(type)!, torch);
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
