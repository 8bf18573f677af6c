/**
 * JumpReLU sparse autoencoders (Gemma Scope, SAELens).
 *
 *   pre   = x · W_enc + b_enc                       W_enc [d_in, d_sae]
 *   acts  = pre where pre > threshold (and > 0), else 0
 *   recon = acts · W_dec + b_dec                    W_dec [d_sae, d_in]
 *
 * No input normalization: Gemma Scope folds it into the released weights.
 *
 * Weights are held in float32 as rows of features: W_enc is transposed at load time so that
 * both the encoder and the decoder are [d_sae, d_in] row-major (feature f's encoder and
 * decoder directions are each one contiguous row). Rows live in chunks of bounded size, so a
 * 1M-wide SAE (2 x 9.4 GB in float32) needs no single huge array. Activations are sparse
 * (indices + values per token): decoding and reading cost O(active features).
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError, ModelError, UsageError } from '../errors.js';
import { decodeBf16, decodeF16 } from '../formats/half.js';
import { NpzArchive } from '../formats/npz.js';
import { openSafetensors } from '../formats/safetensors.js';
import type { Backend, Matrix } from '../backend/backend.js';
import type { ModelConfig } from '../config/model-config.js';

/** Values per chunk of a RowMatrix (2^28 float32 = 1 GiB). */
const CHUNK_VALUES = 1 << 28;

/** A [rows, cols] float32 matrix stored as chunks of whole rows. */
export class RowMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly rowsPerChunk: number;
  readonly chunks: Float32Array[];

  constructor(rows: number, cols: number, chunkValues = CHUNK_VALUES) {
    this.rows = rows;
    this.cols = cols;
    this.rowsPerChunk = Math.max(1, Math.floor(chunkValues / Math.max(1, cols)));
    this.chunks = [];
    for (let r = 0; r < rows; r += this.rowsPerChunk) this.chunks.push(new Float32Array(Math.min(this.rowsPerChunk, rows - r) * cols));
  }

  /** Row r as a view (no copy). */
  row(r: number): Float32Array {
    const c = Math.floor(r / this.rowsPerChunk);
    const o = (r - c * this.rowsPerChunk) * this.cols;
    return this.chunks[c]!.subarray(o, o + this.cols);
  }

  /** Bytes held. */
  get byteLength(): number {
    return this.chunks.reduce((a, c) => a + c.byteLength, 0);
  }
}

/** Sparse activations of one token: active feature indices (ascending) and their values. */
export interface SparseActs {
  indices: Int32Array;
  values: Float32Array;
}

export interface FeatureValue {
  index: number;
  value: number;
}

export interface SaeWeights {
  /** W_enc transposed: [d_sae, d_in]. */
  encT: RowMatrix;
  /** W_dec: [d_sae, d_in]. */
  dec: RowMatrix;
  bEnc: Float32Array;
  bDec: Float32Array;
  threshold: Float32Array;
}

export type HookKind = 'res' | 'mlp' | 'att';

/**
 * The hook point a Gemma Scope / SAELens path names, or undefined:
 * `<release>-res/.../layer_{L}/...` -> blocks.{L}.hook_resid_post, `-mlp` -> blocks.{L}.hook_mlp_out,
 * `-att` -> blocks.{L}.attn.hook_z (also `resid_post` / `mlp_out` folders).
 */
export function hookPointFromPath(p: string): string | undefined {
  const parts = p.split(/[\\/]+/).filter(Boolean);
  let layer: number | undefined;
  let kind: HookKind | undefined;
  for (const part of parts) {
    const m = /(?:^|[^a-z])layer_(\d+)(?:$|[^0-9])/i.exec(part);
    if (m) layer = Number(m[1]);
    const k = /-(res|mlp|att)(?:$|[-_])/i.exec(part);
    if (k) kind = k[1]!.toLowerCase() as HookKind;
    else if (/^resid_post$/i.test(part)) kind = 'res';
    else if (/^mlp_out$/i.test(part)) kind = 'mlp';
  }
  if (layer === undefined || kind === undefined) return undefined;
  return hookName(kind, layer);
}

export function hookName(kind: HookKind, layer: number): string {
  if (kind === 'res') return `blocks.${layer}.hook_resid_post`;
  if (kind === 'mlp') return `blocks.${layer}.hook_mlp_out`;
  return `blocks.${layer}.attn.hook_z`;
}

const HOOK_RE = /^blocks\.(\d+)\.(hook_resid_pre|hook_resid_post|hook_mlp_out|hook_attn_out|attn\.hook_z)$/;

/** Parse and check a hook point name; returns its layer and the activation width it has in `config`. */
export function hookPointInfo(name: string, config?: ModelConfig): { layer: number; point: string; dim?: number } {
  const m = HOOK_RE.exec(name);
  if (!m) {
    throw new UsageError(`unknown hook point "${name}" (expected blocks.{L}.hook_resid_pre|hook_resid_post|hook_mlp_out|hook_attn_out|attn.hook_z)`);
  }
  const layer = Number(m[1]);
  const point = m[2]!;
  if (!config) return { layer, point };
  if (layer >= config.numLayers) throw new UsageError(`hook point ${name}: the model has ${config.numLayers} layers (0..${config.numLayers - 1})`);
  return { layer, point, dim: point === 'attn.hook_z' ? config.numHeads * config.headDim : config.hiddenSize };
}

export interface LoadSaeOptions {
  /** Hook point, overriding what the path (or a SAELens cfg.json) says. */
  hook?: string;
}

/** The file holding the weights when `p` is a directory (params.npz, *.safetensors). */
export function resolveSaeFile(p: string): string {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (!st) throw new UsageError(`SAE not found: ${p}`);
  if (!st.isDirectory()) return p;
  for (const name of ['params.npz', 'sae_weights.safetensors', 'params.safetensors', 'model.safetensors']) {
    if (fs.existsSync(path.join(p, name))) return path.join(p, name);
  }
  const any = fs.readdirSync(p).filter((f) => f.endsWith('.npz') || f.endsWith('.safetensors')).sort();
  if (any.length === 1) return path.join(p, any[0]!);
  throw new UsageError(`${p}: no params.npz or .safetensors SAE file in this directory`);
}

function hookFromCfg(file: string): string | undefined {
  const cfg = path.join(path.dirname(file), 'cfg.json');
  if (!fs.existsSync(cfg)) return undefined;
  try {
    const j = JSON.parse(fs.readFileSync(cfg, 'utf8')) as { hook_name?: unknown; metadata?: { hook_name?: unknown } };
    const h = j.hook_name ?? j.metadata?.hook_name;
    return typeof h === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** Tensor names accepted for each parameter (Gemma Scope, later lowercase releases, SAELens). */
const NAMES = {
  wEnc: ['W_enc', 'w_enc'],
  wDec: ['W_dec', 'w_dec'],
  bEnc: ['b_enc'],
  bDec: ['b_dec'],
  threshold: ['threshold', 'log_threshold'],
} as const;

interface ArrayReader {
  where: string;
  names(): string[];
  shape(name: string): Promise<number[]>;
  /** Stream values in C order. */
  stream(name: string, sink: (values: Float32Array, start: number) => void): Promise<void>;
  close(): void;
}

function npzReader(file: string): ArrayReader {
  const npz = NpzArchive.open(file);
  return {
    where: file,
    names: () => npz.names(),
    shape: async (n) => (await npz.info(n)).shape,
    stream: async (n, sink) => {
      await npz.stream(n, sink);
    },
    close: () => npz.close(),
  };
}

/** Absolute byte offset of each tensor's data (the header was validated by openSafetensors). */
function safetensorsOffsets(fd: number): Map<string, number> {
  const len = Buffer.alloc(8);
  fs.readSync(fd, len, 0, 8, 0);
  const n = Number(len.readBigUInt64LE(0));
  const head = Buffer.alloc(n);
  fs.readSync(fd, head, 0, n, 8);
  const header = JSON.parse(head.toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
  const out = new Map<string, number>();
  for (const [name, t] of Object.entries(header)) if (name !== '__metadata__' && t.data_offsets) out.set(name, 8 + n + t.data_offsets[0]);
  return out;
}

function safetensorsReader(file: string): ArrayReader {
  const st = openSafetensors(file);
  let fd: number;
  let offsets: Map<string, number>;
  try {
    fd = fs.openSync(file, 'r');
    offsets = safetensorsOffsets(fd);
  } catch (e) {
    st.close();
    throw new FormatError(`${file}: cannot read the safetensors header (${(e as Error).message})`);
  }
  return {
    where: file,
    names: () => st.list().map((t) => t.name),
    shape: async (n) => st.get(n)!.shape,
    // Streamed in pieces straight from the file: tensors of several GB are never held whole.
    stream: async (n, sink) => {
      const info = st.get(n)!;
      const per = info.dtype === 'f32' ? 4 : info.dtype === 'f16' || info.dtype === 'bf16' ? 2 : 0;
      if (!per) throw new FormatError(`${file}: tensor "${n}" has unsupported dtype ${info.dtype}`);
      const count = info.byteLength / per;
      const base = offsets.get(n)!;
      const pieceValues = 1 << 20;
      const bytes = Buffer.alloc(pieceValues * per);
      const out = new Float32Array(pieceValues);
      for (let start = 0; start < count; start += pieceValues) {
        const len = Math.min(pieceValues, count - start);
        let done = 0;
        while (done < len * per) {
          const r = fs.readSync(fd, bytes, done, len * per - done, base + start * per + done);
          if (r <= 0) throw new FormatError(`${file}: unexpected end of file reading "${n}"`);
          done += r;
        }
        const piece = out.subarray(0, len);
        if (info.dtype === 'f32') piece.set(new Float32Array(bytes.buffer, bytes.byteOffset, len));
        else if (info.dtype === 'bf16') decodeBf16(bytes, 0, len, piece);
        else decodeF16(bytes, 0, len, piece);
        sink(piece, start);
      }
    },
    close: () => {
      st.close();
      fs.closeSync(fd);
    },
  };
}

/** A Gemma Scope JumpReLU sparse autoencoder (made by {@link loadSae}): encode activations to features, decode back. */
export class JumpReluSae {
  readonly dIn: number;
  readonly dSae: number;
  readonly w: SaeWeights;
  /** Hook point this SAE reads (from the path layout, cfg.json or an explicit --hook). */
  hook: string | undefined;
  /** Where it was loaded from. */
  readonly source: string;
  private accel: { backend: Backend; mats: Matrix[] } | undefined;

  constructor(w: SaeWeights, hook?: string, source = '<memory>') {
    this.w = w;
    this.dIn = w.encT.cols;
    this.dSae = w.encT.rows;
    this.hook = hook;
    this.source = source;
    const n = this.dSae;
    if (w.dec.rows !== n || w.dec.cols !== this.dIn || w.bEnc.length !== n || w.threshold.length !== n || w.bDec.length !== this.dIn) {
      throw new FormatError(`${source}: inconsistent SAE shapes`);
    }
  }

  /**
   * Build an SAE from dense arrays in the published layout: wEnc [dIn, dSae], wDec [dSae, dIn].
   */
  static fromArrays(a: { wEnc: Float32Array; wDec: Float32Array; bEnc: Float32Array; bDec: Float32Array; threshold: Float32Array; dIn: number; dSae: number; hook?: string }): JumpReluSae {
    const { dIn, dSae } = a;
    const need: Array<[string, Float32Array, number]> = [
      ['W_enc', a.wEnc, dIn * dSae], ['W_dec', a.wDec, dSae * dIn], ['b_enc', a.bEnc, dSae], ['b_dec', a.bDec, dIn], ['threshold', a.threshold, dSae],
    ];
    for (const [name, arr, n] of need) if (arr.length !== n) throw new FormatError(`${name} has ${arr.length} values, expected ${n}`);
    const encT = new RowMatrix(dSae, dIn);
    const dec = new RowMatrix(dSae, dIn);
    for (let f = 0; f < dSae; f++) {
      const er = encT.row(f);
      for (let i = 0; i < dIn; i++) er[i] = a.wEnc[i * dSae + f]!;
      dec.row(f).set(a.wDec.subarray(f * dIn, (f + 1) * dIn));
    }
    return new JumpReluSae({ encT, dec, bEnc: a.bEnc.slice(), bDec: a.bDec.slice(), threshold: a.threshold.slice() }, a.hook);
  }

  /** Check the SAE fits the model at its hook point (ModelError naming both widths otherwise). */
  checkModel(config: ModelConfig, hook = this.hook): string {
    if (!hook) throw new UsageError(`${this.source}: the SAE's hook point is unknown (its path has no <release>-res|-mlp|-att/layer_{L} layout); pass --hook NAME, e.g. blocks.12.hook_resid_post`);
    const info = hookPointInfo(hook, config);
    if (info.dim !== this.dIn) {
      throw new ModelError(`${this.source}: SAE d_in is ${this.dIn} but ${hook} of this model has width ${info.dim} (wrong model or hook point?)`);
    }
    return hook;
  }

  /** Pre-activations [n, dSae] (dense): x [n, dIn] · W_enc + b_enc. */
  preActivations(x: Float32Array, n: number, out = new Float32Array(n * this.dSae)): Float32Array {
    this.encodeRows(x, n, (t, f, pre) => {
      out[t * this.dSae + f] = pre;
    }, true);
    return out;
  }

  /** Dense JumpReLU activations [n, dSae]. */
  encodeDense(x: Float32Array, n: number): Float32Array {
    const out = new Float32Array(n * this.dSae);
    this.encodeRows(x, n, (t, f, pre) => {
      out[t * this.dSae + f] = pre;
    });
    return out;
  }

  /** Sparse JumpReLU activations of each of the n tokens of x [n, dIn]. */
  encode(x: Float32Array, n: number): SparseActs[] {
    const idx: number[][] = Array.from({ length: n }, () => []);
    const val: number[][] = Array.from({ length: n }, () => []);
    this.encodeRows(x, n, (t, f, a) => {
      idx[t]!.push(f);
      val[t]!.push(a);
    });
    return idx.map((ix, t) => ({ indices: Int32Array.from(ix), values: Float32Array.from(val[t]!) }));
  }

  /**
   * The encoder kernel: for each feature (in order), dot products with up to 4 tokens at once
   * (the feature's row is read once per 4 tokens). Calls `emit(t, f, value)` for active
   * features (or for every pre-activation when `all`).
   */
  private encodeRows(x: Float32Array, n: number, emit: (t: number, f: number, v: number) => void, all = false): void {
    const d = this.dIn;
    if (x.length < n * d) throw new ModelError(`SAE input has ${x.length} values, expected ${n} x ${d}`);
    const { encT, bEnc, threshold } = this.w;
    const rpc = encT.rowsPerChunk;
    if (this.accel) {
      // Backend matmul (SIMD, threads) over blocks of tokens: pre = x · encT^T.
      const { backend, mats } = this.accel;
      const block = Math.max(1, Math.min(n, Math.floor((1 << 24) / rpc)));
      for (let t0 = 0; t0 < n; t0 += block) {
        const nt = Math.min(block, n - t0);
        const xs = x.subarray(t0 * d, (t0 + nt) * d);
        mats.forEach((m, c) => {
          const out = new Float32Array(nt * m.rows);
          backend.matmul(m, xs, nt, out);
          const fBase = c * rpc;
          for (let t = 0; t < nt; t++) {
            const o = t * m.rows;
            for (let r = 0; r < m.rows; r++) {
              const f = fBase + r;
              const pre = Math.fround(out[o + r]! + bEnc[f]!);
              if (all || (pre > threshold[f]! && pre > 0)) emit(t0 + t, f, pre);
            }
          }
        });
      }
      return;
    }
    if (n === 1) {
      // One token (decoding): four partial sums per feature.
      const d4 = d - (d % 4);
      for (let c = 0; c < encT.chunks.length; c++) {
        const W = encT.chunks[c]!;
        const fBase = c * rpc;
        const rowsHere = W.length / d;
        for (let r = 0; r < rowsHere; r++) {
          const o = r * d;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          let i = 0;
          for (; i < d4; i += 4) {
            s0 += W[o + i]! * x[i]!;
            s1 += W[o + i + 1]! * x[i + 1]!;
            s2 += W[o + i + 2]! * x[i + 2]!;
            s3 += W[o + i + 3]! * x[i + 3]!;
          }
          for (; i < d; i++) s0 += W[o + i]! * x[i]!;
          const f = fBase + r;
          const pre = Math.fround(s0 + s1 + (s2 + s3) + bEnc[f]!);
          if (all || (pre > threshold[f]! && pre > 0)) emit(0, f, pre);
        }
      }
      return;
    }
    for (let t0 = 0; t0 < n; t0 += 4) {
      const nt = Math.min(4, n - t0);
      const x0 = x.subarray(t0 * d, (t0 + 1) * d);
      const x1 = nt > 1 ? x.subarray((t0 + 1) * d, (t0 + 2) * d) : x0;
      const x2 = nt > 2 ? x.subarray((t0 + 2) * d, (t0 + 3) * d) : x0;
      const x3 = nt > 3 ? x.subarray((t0 + 3) * d, (t0 + 4) * d) : x0;
      for (let c = 0; c < encT.chunks.length; c++) {
        const W = encT.chunks[c]!;
        const fBase = c * rpc;
        const rowsHere = W.length / d;
        for (let r = 0; r < rowsHere; r++) {
          const o = r * d;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (let i = 0; i < d; i++) {
            const w = W[o + i]!;
            s0 += w * x0[i]!;
            s1 += w * x1[i]!;
            s2 += w * x2[i]!;
            s3 += w * x3[i]!;
          }
          const f = fBase + r;
          const b = bEnc[f]!;
          const th = threshold[f]!;
          for (let k = 0; k < nt; k++) {
            const pre = Math.fround((k === 0 ? s0 : k === 1 ? s1 : k === 2 ? s2 : s3) + b);
            if (all || (pre > th && pre > 0)) emit(t0 + k, f, pre);
          }
        }
      }
    }
  }

  /**
   * Run the encoder's matrix product on a Backend (e.g. the model's WebAssembly backend: SIMD and
   * threads). The backend receives the encoder rows as f32 matrices (the wasm backend copies them
   * into its memories, so they are held twice); the JS kernel stays the fallback.
   */
  useBackend(backend: Backend | undefined): void {
    if (!backend) {
      this.accel = undefined;
      return;
    }
    const d = this.dIn;
    const mats = this.w.encT.chunks.map((c) => backend.prepareMatrix({ dtype: 'f32', rows: c.length / d, cols: d, data: new Uint8Array(c.buffer, c.byteOffset, c.byteLength) }));
    this.accel = { backend, mats };
  }

  /** Activation of one feature on each of the n tokens (cheap: one row). */
  featureActivation(x: Float32Array, n: number, feature: number): Float32Array {
    this.checkFeature(feature);
    const d = this.dIn;
    const w = this.w.encT.row(feature);
    const b = this.w.bEnc[feature]!;
    const th = this.w.threshold[feature]!;
    const out = new Float32Array(n);
    for (let t = 0; t < n; t++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += w[i]! * x[t * d + i]!;
      const pre = Math.fround(s + b);
      out[t] = pre > th && pre > 0 ? pre : 0;
    }
    return out;
  }

  /** Reconstruction [n, dIn] from sparse activations. */
  decode(acts: readonly SparseActs[], out = new Float32Array(acts.length * this.dIn)): Float32Array {
    const d = this.dIn;
    const { dec, bDec } = this.w;
    acts.forEach((a, t) => {
      const o = out.subarray(t * d, (t + 1) * d);
      o.set(bDec);
      for (let k = 0; k < a.indices.length; k++) {
        const v = a.values[k]!;
        if (v === 0) continue;
        const row = dec.row(a.indices[k]!);
        for (let i = 0; i < d; i++) o[i] = o[i]! + v * row[i]!;
      }
    });
    return out;
  }

  /** Reconstruction [n, dIn] from dense activations [n, dSae]. */
  decodeDense(acts: Float32Array, n: number): Float32Array {
    const d = this.dIn;
    const out = new Float32Array(n * d);
    for (let t = 0; t < n; t++) {
      const o = out.subarray(t * d, (t + 1) * d);
      o.set(this.w.bDec);
      for (let f = 0; f < this.dSae; f++) {
        const v = acts[t * this.dSae + f]!;
        if (v === 0) continue;
        const row = this.w.dec.row(f);
        for (let i = 0; i < d; i++) o[i] = o[i]! + v * row[i]!;
      }
    }
    return out;
  }

  /** Decoder direction of a feature (a view of W_dec[f]). */
  decoderRow(feature: number): Float32Array {
    this.checkFeature(feature);
    return this.w.dec.row(feature);
  }

  checkFeature(feature: number): void {
    if (!Number.isInteger(feature) || feature < 0 || feature >= this.dSae) {
      throw new UsageError(`feature ${feature} is out of range: the SAE has ${this.dSae} features (0..${this.dSae - 1})`);
    }
  }

  get byteLength(): number {
    return this.w.encT.byteLength + this.w.dec.byteLength + 4 * (2 * this.dSae + this.dIn);
  }
}

/** The k largest activations of a token, largest first (ties: lower index first). */
export function topFeatures(a: SparseActs, k: number): FeatureValue[] {
  const order = Array.from(a.indices.keys());
  order.sort((i, j) => a.values[j]! - a.values[i]! || a.indices[i]! - a.indices[j]!);
  return order.slice(0, k).map((i) => ({ index: a.indices[i]!, value: a.values[i]! }));
}

/**
 * Load a JumpReLU SAE from a Gemma Scope params.npz, a safetensors file (SAELens
 * sae_weights.safetensors) or a directory holding one. The hook point comes from
 * `options.hook`, a SAELens cfg.json beside the file, or the Gemma Scope path layout.
 */
export async function loadSae(p: string, options: LoadSaeOptions = {}): Promise<JumpReluSae> {
  const file = resolveSaeFile(p);
  let reader: ArrayReader;
  if (file.endsWith('.safetensors')) reader = safetensorsReader(file);
  else {
    const head = Buffer.alloc(4);
    const fd = fs.openSync(file, 'r');
    try {
      fs.readSync(fd, head, 0, 4, 0);
    } finally {
      fs.closeSync(fd);
    }
    if (head.readUInt32LE(0) === 0x04034b50 || file.endsWith('.npz')) reader = npzReader(file);
    else throw new FormatError(`${file}: not an .npz or .safetensors SAE file`);
  }
  try {
    const have = new Set(reader.names());
    const pick = (key: keyof typeof NAMES): string => {
      const found = NAMES[key].find((n) => have.has(n));
      if (!found) throw new FormatError(`${file}: missing SAE parameter ${NAMES[key].join(' / ')} (found: ${[...have].join(', ') || 'nothing'})`);
      return found;
    };
    const names = { wEnc: pick('wEnc'), wDec: pick('wDec'), bEnc: pick('bEnc'), bDec: pick('bDec'), threshold: pick('threshold') };
    const sEnc = await reader.shape(names.wEnc);
    if (sEnc.length !== 2 || sEnc[0]! <= 0 || sEnc[1]! <= 0) throw new FormatError(`${file}: ${names.wEnc} must be a non-empty [d_in, d_sae] matrix, got shape [${sEnc.join(', ')}]`);
    const [dIn, dSae] = sEnc as [number, number];
    const expect: Array<[string, number[]]> = [[names.wDec, [dSae, dIn]], [names.bEnc, [dSae]], [names.bDec, [dIn]], [names.threshold, [dSae]]];
    for (const [name, want] of expect) {
      const got = await reader.shape(name);
      if (got.length !== want.length || got.some((v, i) => v !== want[i])) {
        throw new FormatError(`${file}: ${name} has shape [${got.join(', ')}], expected [${want.join(', ')}] (W_enc is [${dIn}, ${dSae}])`);
      }
    }
    const vector = async (name: string, len: number) => {
      const out = new Float32Array(len);
      await reader.stream(name, (v, s) => out.set(v, s));
      return out;
    };
    const bEnc = await vector(names.bEnc, dSae);
    const bDec = await vector(names.bDec, dIn);
    const threshold = await vector(names.threshold, dSae);
    if (names.threshold === 'log_threshold') for (let f = 0; f < dSae; f++) threshold[f] = Math.exp(threshold[f]!);
    const dec = new RowMatrix(dSae, dIn);
    await reader.stream(names.wDec, (v, start) => {
      // Row-major [dSae, dIn] matches the chunked layout: copy piece by piece across chunks.
      let off = 0;
      while (off < v.length) {
        const g = start + off;
        const r = Math.floor(g / dIn);
        const c = Math.floor(r / dec.rowsPerChunk);
        const within = g - c * dec.rowsPerChunk * dIn;
        const chunk = dec.chunks[c]!;
        const n = Math.min(v.length - off, chunk.length - within);
        chunk.set(v.subarray(off, off + n), within);
        off += n;
      }
    });
    for (const c of dec.chunks) if (!allFinite(c)) throw new FormatError(`${file}: ${names.wDec} holds non-finite values`);
    const encT = await readTransposed(reader, names.wEnc, dIn, dSae);
    const hook = options.hook ?? hookFromCfg(file) ?? hookPointFromPath(path.resolve(file));
    if (options.hook) hookPointInfo(options.hook);
    const sae = new JumpReluSae({ encT, dec, bEnc, bDec, threshold }, hook, file);
    for (const [name, arr] of [['b_enc', bEnc], ['b_dec', bDec], ['threshold', threshold]] as const) {
      if (!arr.every(Number.isFinite)) throw new FormatError(`${file}: ${name} holds non-finite values`);
    }
    return sae;
  } finally {
    reader.close();
  }
}

/** Stream a [dIn, dSae] matrix into a [dSae, dIn] RowMatrix, transposing blocks of input rows. */
async function readTransposed(reader: ArrayReader, name: string, dIn: number, dSae: number): Promise<RowMatrix> {
  const out = new RowMatrix(dSae, dIn);
  const B = 16;
  const block = new Float32Array(B * dSae);
  let blockRow0 = 0;
  let filled = 0; // values in block
  const rpc = out.rowsPerChunk;
  const flush = () => {
    const rows = filled / dSae;
    for (let c = 0; c < out.chunks.length; c++) {
      const dst = out.chunks[c]!;
      const f0 = c * rpc;
      const f1 = Math.min(dSae, f0 + rpc);
      for (let f = f0; f < f1; f++) {
        const o = (f - f0) * dIn + blockRow0;
        for (let b = 0; b < rows; b++) dst[o + b] = block[b * dSae + f]!;
      }
    }
    blockRow0 += rows;
    filled = 0;
  };
  await reader.stream(name, (v) => {
    let off = 0;
    while (off < v.length) {
      const n = Math.min(v.length - off, block.length - filled);
      block.set(v.subarray(off, off + n), filled);
      filled += n;
      off += n;
      if (filled === block.length) flush();
    }
  });
  if (filled % dSae !== 0) throw new FormatError(`${reader.where}: ${name} ends inside a row`);
  if (filled) flush();
  if (blockRow0 !== dIn) throw new FormatError(`${reader.where}: ${name} holds ${blockRow0} rows, expected ${dIn}`);
  for (const c of out.chunks) if (!allFinite(c)) throw new FormatError(`${reader.where}: ${name} holds non-finite values`);
  return out;
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}
