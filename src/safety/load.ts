/**
 * Load a ShieldGemma checkpoint (or any Gemma checkpoint with a tokenizer) as a classifier.
 */
import fs from 'node:fs';
import { TokenizerError } from '../errors.js';
import { loadModel, type LoadedModel, type LoadOptions } from '../model/load.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { ShieldClassifier, type ShieldClassifierOptions } from './classifier.js';

export interface LoadedShield {
  loaded: LoadedModel;
  tokenizer: Tokenizer;
  classifier: ShieldClassifier;
}

/** The tokenizer of a loaded model; falls back to reading it from the checkpoint path. */
export async function tokenizerOf(loaded: LoadedModel): Promise<Tokenizer> {
  if (loaded.tokenizer) return loaded.tokenizer;
  if (!fs.existsSync(loaded.path)) throw new TokenizerError(`${loaded.path}: no tokenizer`);
  return loadTokenizer(loaded.path);
}

/** Load a ShieldGemma checkpoint (any {@link loadModel} spec) and wrap it in a {@link ShieldClassifier}. */
export async function loadShieldClassifier(
  spec: string,
  options: LoadOptions & { classifier?: ShieldClassifierOptions; load?: (spec: string, o?: LoadOptions) => Promise<LoadedModel> } = {},
): Promise<LoadedShield> {
  const { classifier: cOpts, load, ...loadOpts } = options;
  const loaded = await (load ?? loadModel)(spec, loadOpts);
  try {
    const tokenizer = await tokenizerOf(loaded);
    return { loaded, tokenizer, classifier: new ShieldClassifier(loaded.model, tokenizer, cOpts) };
  } catch (e) {
    loaded.model.dispose();
    throw e;
  }
}
