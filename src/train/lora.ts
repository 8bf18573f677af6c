/**
 * LoRA: y = W x + scale * B (A dropout(x)), with A [r, in], B [out, r], scale = alpha / r
 * (alpha / sqrt(r) with rsLoRA), as PEFT. The base W stays frozen in its stored type; only A and
 * B train. A is initialized like PEFT (kaiming-uniform: U(-1/sqrt(in), 1/sqrt(in))) from the
 * seed, B = 0, so training starts from the base model's outputs.
 */
import { UsageError } from '../errors.js';
import { mulberry32 } from '../util/mulberry32.js';
import type { MatmulKernels } from './matmul.js';
import { FullLinear, type Param, type TrainLayer, type TrainLinear, type TrainModel } from './params.js';

/** Linear modules LoRA can target: PEFT's names -> the HF module path and the TrainLayer field. */
export const LORA_MODULES = {
  q_proj: { path: 'self_attn.q_proj', field: 'q' },
  k_proj: { path: 'self_attn.k_proj', field: 'k' },
  v_proj: { path: 'self_attn.v_proj', field: 'v' },
  o_proj: { path: 'self_attn.o_proj', field: 'o' },
  gate_proj: { path: 'mlp.gate_proj', field: 'gate' },
  up_proj: { path: 'mlp.up_proj', field: 'up' },
  down_proj: { path: 'mlp.down_proj', field: 'down' },
} as const satisfies Record<string, { path: string; field: keyof TrainLayer }>;
export type LoraModule = keyof typeof LORA_MODULES;
export const ALL_LINEAR = Object.keys(LORA_MODULES) as LoraModule[];

export interface LoraConfig {
  rank: number;
  alpha: number;
  dropout: number;
  rslora: boolean;
  targets: LoraModule[];
}

export const LORA_DEFAULTS: LoraConfig = { rank: 8, alpha: 16, dropout: 0, rslora: false, targets: [...ALL_LINEAR] };

/** "all-linear", or module names separated by commas (q_proj,v_proj; "self_attn.q_proj" works too). */
export function resolveTargets(spec: string | readonly string[]): LoraModule[] {
  const list = typeof spec === 'string' ? spec.split(',').map((s) => s.trim()).filter(Boolean) : [...spec];
  if (list.length === 1 && list[0] === 'all-linear') return [...ALL_LINEAR];
  if (list.length === 0) throw new UsageError('LoRA targets: no module named (use all-linear or e.g. q_proj,v_proj)');
  const out: LoraModule[] = [];
  for (const t of list) {
    const short = t.split('.').pop()!;
    if (!(short in LORA_MODULES)) throw new UsageError(`unknown LoRA target module "${t}" (known: all-linear, ${ALL_LINEAR.join(', ')})`);
    if (!out.includes(short as LoraModule)) out.push(short as LoraModule);
  }
  return out;
}

export function loraScale(c: Pick<LoraConfig, 'rank' | 'alpha' | 'rslora'>): number {
  return c.rslora ? c.alpha / Math.sqrt(c.rank) : c.alpha / c.rank;
}

export function checkLoraConfig(c: LoraConfig): void {
  if (!Number.isInteger(c.rank) || c.rank < 1) throw new UsageError(`LoRA rank must be an integer >= 1, got ${c.rank}`);
  if (!(c.alpha > 0)) throw new UsageError(`LoRA alpha must be > 0, got ${c.alpha}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new UsageError(`LoRA dropout must be in [0, 1), got ${c.dropout}`);
}

/** A 32-bit hash of three integers (murmur3's finalizer): dropout masks that recomputation reproduces. */
function hash3(a: number, b: number, c: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35) ^ c;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A frozen base plus a trainable low-rank update. */
export class LoraLinear implements TrainLinear {
  readonly rows: number;
  readonly cols: number;
  constructor(
    readonly base: TrainLinear,
    readonly A: Param,
    readonly B: Param,
    readonly scale: number,
    readonly dropout: number,
    /** Distinguishes this layer's dropout masks from the others'. */
    private readonly id: number,
    private readonly model: TrainModel,
    private readonly mm: MatmulKernels,
  ) {
    this.rows = base.rows;
    this.cols = base.cols;
  }

  get rank(): number {
    return this.A.shape[0]!;
  }

  /** dropout(x): the same mask for the same (model.dropoutKey, layer, element); none outside training. */
  private dropped(x: Float32Array, n: number): { xd: Float32Array; mask?: Uint8Array } {
    const key = this.model.dropoutKey;
    if (!(this.dropout > 0) || key === undefined) return { xd: x };
    const keep = 1 - this.dropout;
    const xd = new Float32Array(n * this.cols), mask = new Uint8Array(n * this.cols);
    const threshold = this.dropout * 4294967296;
    for (let i = 0; i < n * this.cols; i++) {
      if (hash3(key, this.id, i) < threshold) continue;
      mask[i] = 1;
      xd[i] = x[i]! / keep;
    }
    return { xd, mask };
  }

  forward(x: Float32Array, n: number, y: Float32Array): void {
    this.base.forward(x, n, y);
    const r = this.rank;
    const { xd } = this.dropped(x, n);
    const u = new Float32Array(n * r), z = new Float32Array(n * this.rows);
    this.mm.xwt(xd, this.A.data, n, this.cols, r, u);
    this.mm.xwt(u, this.B.data, n, r, this.rows, z);
    for (let i = 0; i < n * this.rows; i++) y[i] = y[i]! + this.scale * z[i]!;
  }

  backward(dy: Float32Array, x: Float32Array, n: number, dx: Float32Array): void {
    this.base.backward(dy, x, n, dx);
    const r = this.rank;
    const { xd, mask } = this.dropped(x, n);
    const u = new Float32Array(n * r);
    this.mm.xwt(xd, this.A.data, n, this.cols, r, u);
    const g = new Float32Array(n * this.rows);
    for (let i = 0; i < g.length; i++) g[i] = dy[i]! * this.scale;
    // z = u B^T: dB += g^T u, du = g B
    if (this.B.grad) this.mm.dytx(g, u, n, r, this.rows, this.B.grad);
    const du = new Float32Array(n * r);
    this.mm.dyw(g, this.B.data, n, r, this.rows, du);
    // u = xd A^T: dA += du^T xd, dxd = du A (then through the dropout mask)
    if (this.A.grad) this.mm.dytx(du, xd, n, this.cols, r, this.A.grad);
    if (!mask) {
      this.mm.dyw(du, this.A.data, n, this.cols, r, dx);
      return;
    }
    const dxd = new Float32Array(n * this.cols);
    this.mm.dyw(du, this.A.data, n, this.cols, r, dxd);
    const keep = 1 - this.dropout;
    for (let i = 0; i < dxd.length; i++) if (mask[i]) dx[i] = dx[i]! + dxd[i]! / keep;
  }
}

/** Adapter tensors by module ("layers.3.self_attn.q_proj"): A [r, in], B [out, r]. */
export type AdapterTensors = Map<string, { A: Float32Array; B: Float32Array }>;

/**
 * Freeze the model and add LoRA layers on the targeted modules (initialized from `seed`, or with
 * the given tensors, e.g. a loaded adapter to continue training). Returns the new parameters.
 */
export function addLoraLayers(model: TrainModel, config: LoraConfig, seed = 0, tensors?: AdapterTensors): Param[] {
  checkLoraConfig(config);
  for (const p of model.params) p.grad = undefined;
  const rng = mulberry32(seed);
  const scale = loraScale(config);
  const added: Param[] = [];
  model.weights.layers.forEach((L, i) => {
    for (const t of config.targets) {
      const { path, field } = LORA_MODULES[t];
      const base = L[field] as TrainLinear;
      if (base instanceof LoraLinear) throw new UsageError(`layers.${i}.${path} already has a LoRA adapter`);
      const name = `layers.${i}.${path}`;
      const given = tensors?.get(name);
      const r = config.rank;
      const A: Param = { name: `${name}.lora_A.weight`, shape: [r, base.cols], kind: 'matrix', data: new Float32Array(r * base.cols), grad: new Float32Array(r * base.cols) };
      const B: Param = { name: `${name}.lora_B.weight`, shape: [base.rows, r], kind: 'matrix', data: new Float32Array(base.rows * r), grad: new Float32Array(base.rows * r) };
      if (given) {
        A.data.set(given.A);
        B.data.set(given.B);
      } else {
        const bound = 1 / Math.sqrt(base.cols);
        for (let j = 0; j < A.data.length; j++) A.data[j] = (rng() * 2 - 1) * bound;
      }
      if (base instanceof FullLinear) base.param.grad = undefined;
      (L as unknown as Record<string, TrainLinear>)[field] = new LoraLinear(base, A, B, scale, config.dropout, added.length, model, model.matmul);
      added.push(A, B);
    }
  });
  for (const p of added) model.addParam(p);
  model.lora = { ...config, targets: [...config.targets] };
  return added;
}

/** The model's LoRA tensors by module. */
export function loraTensors(model: TrainModel): AdapterTensors {
  const out: AdapterTensors = new Map();
  model.weights.layers.forEach((L, i) => {
    for (const t of ALL_LINEAR) {
      const lin = L[LORA_MODULES[t].field] as TrainLinear;
      if (lin instanceof LoraLinear) out.set(`layers.${i}.${LORA_MODULES[t].path}`, { A: lin.A.data, B: lin.B.data });
    }
  });
  return out;
}
