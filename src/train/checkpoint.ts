/**
 * Training checkpoints: OUT/checkpoints/step-NNNNNN/ holds the trainable parameters
 * (params.safetensors, f32, by parameter name), the optimizer's moments
 * (optimizer.safetensors: NAME.slot0 / NAME.slot1) and state.json ({step, optimizer_step}).
 * Together with the seed (data order, dropout) they make a resumed run continue exactly as an
 * uninterrupted one. A checkpoint is written to a temporary name and renamed when complete, so a
 * run killed while writing leaves the previous checkpoint usable.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError, UsageError } from '../errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../formats/safetensors.js';
import type { OptimizerState } from './optim.js';
import type { TrainModel } from './params.js';

const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export function checkpointDir(outDir: string, step: number): string {
  return path.join(outDir, 'checkpoints', `step-${String(step).padStart(6, '0')}`);
}

export function saveCheckpoint(outDir: string, model: TrainModel, state: OptimizerState, step: number): string {
  const dir = checkpointDir(outDir, step);
  const tmp = dir + '.tmp';
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const params: TensorToWrite[] = model.trainable().map((p) => ({ name: p.name, dtype: 'f32', shape: p.shape, data: bytes(p.data) }));
  writeSafetensors(path.join(tmp, 'params.safetensors'), params);
  const slots: TensorToWrite[] = [];
  for (const [name, list] of state.slots) list.forEach((s, i) => slots.push({ name: `${name}.slot${i}`, dtype: 'f32', shape: [s.length], data: bytes(s) }));
  writeSafetensors(path.join(tmp, 'optimizer.safetensors'), slots);
  fs.writeFileSync(path.join(tmp, 'state.json'), JSON.stringify({ step, optimizer_step: state.step }) + '\n');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return dir;
}

/** The newest complete checkpoint under OUT/checkpoints, if any. */
export function latestCheckpoint(outDir: string): string | undefined {
  const root = path.join(outDir, 'checkpoints');
  if (!fs.existsSync(root)) return undefined;
  const steps = fs.readdirSync(root).filter((d) => /^step-\d+$/.test(d) && fs.existsSync(path.join(root, d, 'state.json'))).sort();
  return steps.length ? path.join(root, steps[steps.length - 1]!) : undefined;
}

/** Load a checkpoint into the model's trainable parameters; returns the step and optimizer state. */
export function loadCheckpoint(dir: string, model: TrainModel): { step: number; state: OptimizerState } {
  let meta: { step: number; optimizer_step: number };
  try {
    meta = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as typeof meta;
  } catch (e) {
    throw new FormatError(`${dir}: not a training checkpoint (${(e as Error).message})`);
  }
  const params = openSafetensors(path.join(dir, 'params.safetensors'));
  try {
    for (const p of model.trainable()) {
      const info = params.get(p.name);
      if (!info || info.dtype !== 'f32' || info.shape.join() !== p.shape.join()) {
        throw new UsageError(`${dir}: checkpoint has no f32 tensor ${p.name} [${p.shape.join(', ')}] (made with other --method / --rank / --targets or another model?)`);
      }
      const b = params.read(p.name);
      p.data.set(new Float32Array(b.buffer, b.byteOffset, p.data.length));
    }
  } finally {
    params.close();
  }
  const slots = new Map<string, Float32Array[]>();
  const opt = openSafetensors(path.join(dir, 'optimizer.safetensors'));
  try {
    for (const t of opt.list()) {
      const m = /^(.*)\.slot(\d+)$/.exec(t.name);
      if (!m) continue;
      const b = opt.read(t.name);
      const list = slots.get(m[1]!) ?? [];
      list[Number(m[2])] = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
      slots.set(m[1]!, list);
    }
  } finally {
    opt.close();
  }
  return { step: meta.step, state: { step: meta.optimizer_step, slots } };
}
