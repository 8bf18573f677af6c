import { saveGgufAdapter, savePeftAdapter } from '../../src/train/adapter.js';
import { loadTrainModel } from '../../src/train/checkpoint-io.js';
import { addLoraLayers, resolveTargets } from '../../src/train/lora.js';
import { mulberry32 } from '../../src/util/mulberry32.js';

export interface RandomAdapterOptions {
  targets: string;
  rank: number;
  seed: number;
  /** alpha (default 2 x rank). */
  alpha?: number;
  rslora?: boolean;
  /** Half-width of B's uniform values (default 0.2). */
  spread?: number;
  /** Also write llama.cpp's adapter to this .gguf file. */
  gguf?: string;
}

/**
 * A LoRA adapter on `base` with PEFT's A initialization and a random, nonzero B (so that it
 * changes the logits), written as a PEFT directory `dir`.
 */
export async function writeRandomAdapter(base: string, dir: string, o: RandomAdapterOptions): Promise<void> {
  const { model } = await loadTrainModel(base, { backend: 'js', trainable: false, noTokenizer: true });
  addLoraLayers(model, { rank: o.rank, alpha: o.alpha ?? 2 * o.rank, dropout: 0, rslora: o.rslora === true, targets: resolveTargets(o.targets) }, o.seed);
  const rnd = mulberry32(o.seed + 1);
  const spread = o.spread ?? 0.2;
  for (const p of model.trainable()) if (p.name.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = (rnd() - 0.5) * 2 * spread;
  savePeftAdapter(model, dir);
  if (o.gguf) saveGgufAdapter(model, o.gguf);
}
