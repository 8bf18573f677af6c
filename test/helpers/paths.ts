import fs from 'node:fs';
import path from 'node:path';
import { packageRoot as repoRoot } from '../../src/util/package-root.js';

/** Repository root: the directory holding gemma-ts's package.json (works from test/ and dist/test/). */
export { repoRoot };

/** ../shared/golden beside the checkout (CI has shared/ there). */
export function goldenDir(): string {
  const d = path.resolve(repoRoot(), '..', 'shared', 'golden');
  if (!fs.existsSync(d)) throw new Error(`golden reference data not found at ${d}`);
  return d;
}

export const GOLDEN_VARIANTS = ['gemma1_mqa', 'gemma1_mha', 'gemma2', 'gemma3', 'gemma3_rope_scaled'] as const;

export interface GoldenSequence {
  name: string;
  input_ids: number[];
  last_logits: number[];
  all_logits: number[][];
  argmax_all: number[];
  greedy: { num_new_tokens: number; new_token_ids: number[]; min_top2_logit_margin: number };
}

export interface Golden {
  variant: string;
  sequences: GoldenSequence[];
  hidden_states: { sequence: string; input_ids: number[]; embeddings: number[][]; layers: number[][][]; final_norm: number[][] };
}

export function readGolden(variant: string, bf16 = false): Golden {
  return JSON.parse(fs.readFileSync(path.join(goldenDir(), variant, bf16 ? 'golden.bf16.json' : 'golden.json'), 'utf8')) as Golden;
}
