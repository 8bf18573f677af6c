/**
 * loadTokenizer(path): a tokenizer.json, a tokenizer.model, a .gguf file, or a model directory
 * (tokenizer.json preferred, then tokenizer.model; tokenizer_config.json beside either gives the
 * special tokens and the chat template).
 */
import fs from 'node:fs';
import path from 'node:path';
import { TokenizerError } from '../errors.js';
import { tokenizerDataFromHFJson, type HFTokenizerConfig, type HFTokenizerJSON } from './hf-json.js';
import { SentencePieceTokenizer } from './sentencepiece.js';
import { tokenizerDataFromModelProto } from './spm-model.js';
import type { Tokenizer } from './types.js';

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TokenizerError(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

function readConfigBeside(file: string): HFTokenizerConfig | undefined {
  const cfgPath = path.join(path.dirname(file), 'tokenizer_config.json');
  if (!fs.existsSync(cfgPath)) return undefined;
  const cfg = readJson(cfgPath);
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new TokenizerError(`${cfgPath}: not a JSON object`);
  const c = cfg as HFTokenizerConfig;
  // A separate chat_template.jinja (newer checkpoints) wins when the config has none.
  const jinja = path.join(path.dirname(file), 'chat_template.jinja');
  if (c.chat_template === undefined && fs.existsSync(jinja)) c.chat_template = fs.readFileSync(jinja, 'utf8');
  return c;
}

export function tokenizerFromJsonFile(file: string, config?: HFTokenizerConfig): SentencePieceTokenizer {
  const json = readJson(file);
  return new SentencePieceTokenizer(tokenizerDataFromHFJson(json as HFTokenizerJSON, config ?? readConfigBeside(file)));
}

export function tokenizerFromModelFile(file: string, config?: HFTokenizerConfig): SentencePieceTokenizer {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new TokenizerError(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  return new SentencePieceTokenizer(tokenizerDataFromModelProto(bytes, config ?? readConfigBeside(file)));
}

function isGGUF(file: string): boolean {
  if (file.toLowerCase().endsWith('.gguf')) return true;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(4);
      fs.readSync(fd, b, 0, 4, 0);
      return b.toString('latin1') === 'GGUF';
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** Synchronous loader for tokenizer.json / tokenizer.model / model directories (not GGUF). */
export function loadTokenizerSync(p: string): SentencePieceTokenizer {
  if (typeof p !== 'string' || p.length === 0) throw new TokenizerError('tokenizer path is empty');
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new TokenizerError(`tokenizer path does not exist: ${p}`);
  }
  if (st.isDirectory()) {
    const j = path.join(p, 'tokenizer.json');
    if (fs.existsSync(j)) return tokenizerFromJsonFile(j);
    const m = path.join(p, 'tokenizer.model');
    if (fs.existsSync(m)) return tokenizerFromModelFile(m);
    throw new TokenizerError(`no tokenizer.json or tokenizer.model in ${p}`);
  }
  if (isGGUF(p)) throw new TokenizerError(`${p} is a GGUF file: use loadTokenizer (async)`);
  if (p.toLowerCase().endsWith('.json')) return tokenizerFromJsonFile(p);
  return tokenizerFromModelFile(p);
}

/**
 * Load a Gemma tokenizer from a `tokenizer.json`, a `tokenizer.model`, a `.gguf` file or a model
 * directory (tokenizer_config.json's chat template and BOS setting are read beside it).
 * @throws {@link TokenizerError} / {@link FormatError} naming the problem.
 */
export async function loadTokenizer(p: string): Promise<Tokenizer> {
  if (typeof p === 'string' && p.length > 0 && fs.existsSync(p) && fs.statSync(p).isFile() && isGGUF(p)) {
    const { tokenizerFromGGUFFile } = await import('./gguf-vocab.js');
    return tokenizerFromGGUFFile(p);
  }
  return loadTokenizerSync(p);
}
