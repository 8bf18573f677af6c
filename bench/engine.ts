/**
 * `npm run bench`: gemma-ts (wasm backend) against node-llama-cpp on the same random-weight GGUF
 * files with the real gemma-2b and gemma-2-2b shapes, same thread count, in the same run,
 * alternating engines. Each measurement runs in a fresh child process (so peak RSS is that
 * engine's alone): load time, time to first token and prefill tok/s on a 512-token prompt,
 * decode tok/s over 128 tokens, peak RSS.
 *
 *   npm run bench -- [--json] [--models gemma-2b,gemma-2-2b] [--types f16,q8_0,q4_0,q4_k_m]
 *                    [--threads N] [--prompt 512] [--gen 128] [--rounds 1] [--engines gemma-ts,llama.cpp]
 *                    [--dir DIR (keep the GGUF files there)] [--kv-type f16|f32] [--backend webgpu]
 *
 * `--backend webgpu` adds gemma-ts on the WebGPU backend (engine gemma-ts-webgpu; f32 KV cache,
 * its only type), with its ratios to the wasm backend and to each llama.cpp engine, and whether
 * its greedy tokens equal the wasm backend's. Engines llama.cpp-cuda / llama.cpp-vulkan run
 * node-llama-cpp's prebuilt GPU binaries (@node-llama-cpp/linux-x64-cuda / -vulkan, all layers
 * offloaded) where they are installed and a GPU exists; elsewhere their rows are skipped with the
 * reason.
 *
 * Both engines keep keys and values in f16 (llama.cpp's default cache type) unless --kv-type f32
 * (gemma-ts only; llama.cpp stays f16).
 */
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { physicalCores } from '../src/util/cpu.js';
import { GGUFValueType, writeGGUF, type GGUFMetadataEntry, type GGUFTensorToWrite } from '../src/formats/gguf.js';
import type { DType } from '../src/formats/dtype.js';
import { tokenizerToGGUFMetadata } from '../src/tokenizer/gguf-vocab.js';
import { loadTokenizerSync } from '../src/tokenizer/load.js';
import { randomTensor, shapeConfig } from './synthetic.js';
import type { ModelConfig } from '../src/config/model-config.js';
import { packageRoot } from '../src/util/package-root.js';

const ENGINES = ['gemma-ts', 'gemma-ts-webgpu', 'llama.cpp', 'llama.cpp-cuda', 'llama.cpp-vulkan'] as const;
type Engine = (typeof ENGINES)[number];
const isGemmaTs = (e: Engine) => e.startsWith('gemma-ts');
const TYPES = ['f16', 'q8_0', 'q4_0', 'q4_k_m'] as const;
type QuantType = (typeof TYPES)[number];

export interface BenchResult {
  model: string;
  type: string;
  engine: Engine;
  threads: number;
  prefill_tps: number;
  decode_tps: number;
  ttft_ms: number;
  load_s: number;
  peak_rss_mb: number;
  /** KV cache element type the engine ran with. */
  kv_type: string;
  /** gemma-ts: the greedy tokens it generated (compared across backends). */
  tokens?: number[];
  /** gemma-ts-webgpu: the adapter that ran it. */
  device?: string;
}

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

// ------------------------------------------------------------------ GGUF files

/** llama.cpp's Q4_K_M choice: Q6_K for the (tied) output/embedding and for attn_v / ffn_down on "more bits" layers. */
function q4kmType(name: string, nLayers: number): DType {
  if (name === 'token_embd.weight') return 'q6_k';
  const m = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(name);
  if (m) {
    const i = Number(m[1]);
    const more = i < nLayers / 8 || i >= (7 * nLayers) / 8 || (i - Math.floor(nLayers / 8)) % 3 === 2;
    if (more) return 'q6_k';
  }
  return 'q4_k';
}

function tensorType(type: QuantType, name: string, nLayers: number): DType {
  if (type === 'q4_k_m') return q4kmType(name, nLayers);
  return type;
}

function ggufTensors(c: ModelConfig, type: QuantType): GGUFTensorToWrite[] {
  const H = c.hiddenSize, I = c.intermediateSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const t: GGUFTensorToWrite[] = [];
  const mat = (name: string, rows: number, cols: number) => {
    const dtype = tensorType(type, name, c.numLayers);
    t.push({ name, dtype, shape: [rows, cols], data: () => randomTensor(dtype, rows * cols, 1 / Math.sqrt(cols)) });
  };
  const norm = (name: string) => t.push({ name, dtype: 'f32', shape: [H], data: () => new Uint8Array(new Float32Array(H).fill(1).buffer) });
  mat('token_embd.weight', c.vocabSize, H);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `blk.${l}.`;
    norm(p + 'attn_norm.weight');
    mat(p + 'attn_q.weight', q, H);
    mat(p + 'attn_k.weight', kv, H);
    mat(p + 'attn_v.weight', kv, H);
    mat(p + 'attn_output.weight', H, q);
    if (c.sandwichNorms) norm(p + 'post_attention_norm.weight');
    norm(p + 'ffn_norm.weight');
    mat(p + 'ffn_gate.weight', I, H);
    mat(p + 'ffn_up.weight', I, H);
    mat(p + 'ffn_down.weight', H, I);
    if (c.sandwichNorms) norm(p + 'post_ffw_norm.weight');
  }
  norm('output_norm.weight');
  return t;
}

function ggufMetadata(name: string, c: ModelConfig): GGUFMetadataEntry[] {
  const arch = c.family === 'gemma2' ? 'gemma2' : 'gemma';
  const u32 = (k: string, v: number): GGUFMetadataEntry => ({ key: `${arch}.${k}`, type: GGUFValueType.UINT32, value: v });
  const f32 = (k: string, v: number): GGUFMetadataEntry => ({ key: `${arch}.${k}`, type: GGUFValueType.FLOAT32, value: v });
  const md: GGUFMetadataEntry[] = [
    { key: 'general.architecture', type: GGUFValueType.STRING, value: arch },
    { key: 'general.name', type: GGUFValueType.STRING, value: `${name} (random weights)` },
    u32('context_length', c.maxPositionEmbeddings),
    u32('embedding_length', c.hiddenSize),
    u32('block_count', c.numLayers),
    u32('feed_forward_length', c.intermediateSize),
    u32('attention.head_count', c.numHeads),
    u32('attention.head_count_kv', c.numKvHeads),
    u32('attention.key_length', c.headDim),
    u32('attention.value_length', c.headDim),
    f32('attention.layer_norm_rms_epsilon', c.rmsNormEps),
  ];
  if (arch === 'gemma2') {
    md.push(f32('attn_logit_softcapping', c.attnSoftcap), f32('final_logit_softcapping', c.finalSoftcap), u32('attention.sliding_window', 4096));
  }
  const tok = loadTokenizerSync(path.join(packageRoot(), 'node_modules', '@lenml', 'tokenizer-gemini', 'models'));
  md.push(...tokenizerToGGUFMetadata(tok));
  return md;
}

function writeModel(dir: string, model: string, type: QuantType): string {
  const file = path.join(dir, `${model}-${type}.gguf`);
  if (fs.existsSync(file)) return file;
  const { config } = shapeConfig(model);
  const tmp = `${file}.part`;
  writeGGUF(tmp, { metadata: ggufMetadata(model, config), tensors: ggufTensors(config, type) });
  fs.renameSync(tmp, file);
  return file;
}

// ------------------------------------------------------------------ one engine, one file (child process)

function promptTokens(n: number): number[] {
  let s = 12345;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return 1000 + (s % 200000);
  });
}

type EngineRun = Omit<BenchResult, 'model' | 'type' | 'engine' | 'threads' | 'peak_rss_mb' | 'kv_type'>;

async function runGemmaTs(file: string, threads: number, nPrompt: number, nGen: number, kvType: 'f16' | 'f32', backend: 'wasm' | 'webgpu'): Promise<EngineRun> {
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  const { loadModel } = await import('../src/model/load.js');
  const t0 = performance.now();
  const model = (await loadModel(file, { backend, threads, noTokenizer: true, contextSize: nPrompt + nGen + 8, kvType })).model;
  const load_s = (performance.now() - t0) / 1000;
  const device = (model as { backend?: { description?: string } }).backend?.description;
  const cache = model.createCache(nPrompt + nGen + 8);
  const argmax = (l: Float32Array) => {
    let b = 0;
    for (let i = 1; i < l.length; i++) if (l[i]! > l[b]!) b = i;
    return b;
  };
  const t1 = performance.now();
  // forwardAsync on both backends (one await per token; on wasm it resolves at once)
  let tok = argmax((await model.forwardAsync(promptTokens(nPrompt), cache)).logits);
  const ttft = performance.now() - t1;
  const tokens = [tok];
  const t2 = performance.now();
  for (let i = 0; i < nGen; i++) tokens.push((tok = argmax((await model.forwardAsync([tok], cache)).logits)));
  const decode = (performance.now() - t2) / 1000;
  model.dispose();
  return { prefill_tps: nPrompt / (ttft / 1000), decode_tps: nGen / decode, ttft_ms: ttft, load_s, tokens: tokens.slice(0, 16), ...(device ? { device } : {}) };
}

async function runLlama(file: string, threads: number, nPrompt: number, nGen: number, gpu: false | 'cuda' | 'vulkan'): Promise<EngineRun> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu, build: 'never', usePrebuiltBinaries: true, logLevel: LlamaLogLevel.error });
  if (gpu && llama.gpu !== gpu) throw new Error(`node-llama-cpp has no ${gpu} binary or device here (got ${String(llama.gpu)})`);
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: gpu ? 'max' : 0 });
  const context = await model.createContext({ contextSize: nPrompt + nGen + 8, threads, batchSize: nPrompt });
  const load_s = (performance.now() - t0) / 1000;
  const seq = context.getSequence();
  const t1 = performance.now();
  const it = seq.evaluate(promptTokens(nPrompt) as Parameters<typeof seq.evaluate>[0], { temperature: 0 });
  await it.next();
  const ttft = performance.now() - t1;
  const t2 = performance.now();
  for (let i = 0; i < nGen; i++) await it.next();
  const decode = (performance.now() - t2) / 1000;
  await it.return();
  await context.dispose();
  await model.dispose();
  return { prefill_tps: nPrompt / (ttft / 1000), decode_tps: nGen / decode, ttft_ms: ttft, load_s };
}

async function child(): Promise<void> {
  const engine = arg('child') as Engine;
  const file = arg('file')!;
  const threads = Number(arg('threads'));
  const nPrompt = Number(arg('prompt'));
  const nGen = Number(arg('gen'));
  const kvType = arg('kv-type', 'f16') as 'f16' | 'f32';
  const gpu = engine === 'llama.cpp-cuda' ? 'cuda' : engine === 'llama.cpp-vulkan' ? 'vulkan' : false;
  // the WebGPU backend keeps its KV cache in f32 (its only cache type)
  const kv = engine === 'gemma-ts-webgpu' ? 'f32' : kvType;
  let r: EngineRun;
  try {
    r = isGemmaTs(engine) ? await runGemmaTs(file, threads, nPrompt, nGen, kv, engine === 'gemma-ts' ? 'wasm' : 'webgpu') : await runLlama(file, threads, nPrompt, nGen, gpu);
  } catch (e) {
    // one line the driver shows (a missing GPU binary or device skips the row, saying why)
    process.stdout.write(`@@ERROR ${String((e as Error).message ?? e).split('\n')[0]}\n`);
    process.exit(1);
  }
  const peak_rss_mb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`@@RESULT ${JSON.stringify({ ...r, peak_rss_mb, kv_type: isGemmaTs(engine) ? kv : 'f16' })}\n`);
  process.exit(0);
}

// ------------------------------------------------------------------ driver

function fmt(n: number, d = 1): string {
  return Number.isFinite(n) ? n.toFixed(d) : '-';
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const models = (arg('models', 'gemma-2b,gemma-2-2b') ?? '').split(',');
  const types = (arg('types', TYPES.join(',')) ?? '').split(',') as QuantType[];
  for (const t of types) if (!TYPES.includes(t)) throw new Error(`unknown type ${t} (expected ${TYPES.join(', ')})`);
  const threads = Number(arg('threads', String(physicalCores())));
  const nPrompt = Number(arg('prompt', '512'));
  const nGen = Number(arg('gen', '128'));
  const rounds = Number(arg('rounds', '1'));
  const backend = arg('backend');
  if (backend !== undefined && backend !== 'wasm' && backend !== 'webgpu') throw new Error(`--backend must be wasm or webgpu, got ${backend}`);
  const engines = (arg('engines', backend === 'webgpu' ? 'gemma-ts,gemma-ts-webgpu,llama.cpp' : 'gemma-ts,llama.cpp') ?? '').split(',') as Engine[];
  for (const e of engines) if (!ENGINES.includes(e)) throw new Error(`unknown engine ${e} (expected ${ENGINES.join(', ')})`);
  if (backend === 'webgpu' && !engines.includes('gemma-ts-webgpu')) engines.push('gemma-ts-webgpu');
  const kvType = arg('kv-type', 'f16')!;
  if (kvType !== 'f16' && kvType !== 'f32') throw new Error(`--kv-type must be f16 or f32, got ${kvType}`);
  const keep = arg('dir');
  const dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-ts-bench-'));
  fs.mkdirSync(dir, { recursive: true });
  const self = fileURLToPath(import.meta.url);
  const results: BenchResult[] = [];
  const log = (s: string) => {
    if (!json) console.error(s);
  };
  try {
    for (const model of models) {
      for (const type of types) {
        log(`writing ${model} ${type} ...`);
        const file = writeModel(dir, model, type);
        log(`  ${file} (${(fs.statSync(file).size / 1e9).toFixed(2)} GB)`);
        const runs: Record<string, BenchResult[]> = {};
        for (let round = 0; round < rounds; round++) {
          // alternate which engine goes first
          const order = round % 2 === 0 ? engines : [...engines].reverse();
          for (const engine of order) {
            const p = spawnSync(process.execPath, [...process.execArgv, self, '--child', engine, '--file', file, '--threads', String(threads), '--prompt', String(nPrompt), '--gen', String(nGen), '--kv-type', kvType], {
              encoding: 'utf8',
              env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
              maxBuffer: 1 << 26,
            });
            const line = p.stdout.split('\n').find((l) => l.startsWith('@@RESULT '));
            if (!line) {
              const error = p.stdout.split('\n').find((l) => l.startsWith('@@ERROR '));
              log(`  ${engine} failed: ${error ? error.slice(8) : (p.stderr || p.stdout).trim().split('\n').slice(-5).join('\n  ')}`);
              continue;
            }
            const r = { model, type, engine, threads, ...JSON.parse(line.slice(9)) } as BenchResult;
            (runs[engine] ??= []).push(r);
            log(`  ${engine}: prefill ${fmt(r.prefill_tps)} tok/s, decode ${fmt(r.decode_tps, 2)} tok/s, ttft ${fmt(r.ttft_ms, 0)} ms, load ${fmt(r.load_s, 2)} s, peak RSS ${fmt(r.peak_rss_mb, 0)} MB`);
          }
        }
        // report the best round of each engine (least disturbed by other load)
        for (const engine of engines) {
          const rs = runs[engine];
          if (!rs?.length) continue;
          const best = rs.reduce((a, b) => (b.decode_tps > a.decode_tps ? b : a));
          const r: BenchResult = {
            ...best,
            prefill_tps: Math.max(...rs.map((x) => x.prefill_tps)),
            ttft_ms: Math.min(...rs.map((x) => x.ttft_ms)),
            load_s: Math.min(...rs.map((x) => x.load_s)),
            peak_rss_mb: Math.min(...rs.map((x) => x.peak_rss_mb)),
          };
          results.push(r);
          if (json) console.log(JSON.stringify(r));
        }
        if (!keep) fs.rmSync(file, { force: true });
      }
    }
  } finally {
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  if (!json) printTable(results);
}

function printTable(results: BenchResult[]): void {
  const rows: string[][] = [['model', 'type', 'engine', 'thr', 'prefill tok/s', 'decode tok/s', 'TTFT ms', 'load s', 'peak RSS MB']];
  const key = (r: BenchResult) => `${r.model}/${r.type}`;
  const ratio = (label: string, a: BenchResult, b: BenchResult) =>
    rows.push(['', '', label, '', fmt(a.prefill_tps / b.prefill_tps, 2), fmt(a.decode_tps / b.decode_tps, 2), fmt(a.ttft_ms / b.ttft_ms, 2), fmt(a.load_s / b.load_s, 2), fmt(a.peak_rss_mb / b.peak_rss_mb, 2)]);
  const notes: string[] = [];
  for (const r of results) {
    rows.push([r.model, r.type, r.engine, String(r.threads), fmt(r.prefill_tps), fmt(r.decode_tps, 2), fmt(r.ttft_ms, 0), fmt(r.load_s, 2), fmt(r.peak_rss_mb, 0)]);
    const same = (e: Engine) => results.find((x) => key(x) === key(r) && x.engine === e);
    if (r.engine === 'llama.cpp') {
      const g = same('gemma-ts');
      if (g) ratio('ratio gemma-ts/llama.cpp', g, r);
    }
    if (r.engine.startsWith('llama.cpp')) {
      const w = same('gemma-ts-webgpu');
      if (w) ratio(`ratio webgpu/${r.engine}`, w, r);
    }
    if (r.engine === 'gemma-ts-webgpu') {
      const g = same('gemma-ts');
      if (g) {
        ratio('ratio webgpu/wasm', r, g);
        const n = Math.min(r.tokens?.length ?? 0, g.tokens?.length ?? 0);
        let k = 0;
        while (k < n && r.tokens![k] === g.tokens![k]) k++;
        notes.push(`${key(r)}: webgpu greedy tokens equal wasm's for ${k} of ${n}${r.device ? ` (${r.device})` : ''}`);
      }
    }
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  console.log(line(rows[0]!));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
  if (notes.length) console.log('\n' + notes.join('\n'));
  console.log(`\n${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} CPUs, Node ${process.version}`);
}

if (process.argv.includes('--child')) await child();
else await main();
