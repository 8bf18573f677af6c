/**
 * Training data: JSONL lines of four kinds, turned into token ids and target masks.
 *   {"ids": [...]}                     pre-tokenized; used as given (no <bos> added); every next token is a target
 *   {"text": "..."}                    <bos> text <eos>; every token a target; optionally packed
 *   {"messages": [{role, content}...]} the checkpoint's chat template; targets = the model turns
 *   {"prompt": "...", "completion": "..."}  <bos> prompt completion <eos>; targets = completion + <eos>
 * A path is a .jsonl file or a directory with train.jsonl (and optionally valid.jsonl), as mlx-lm.
 * Bad input is a UsageError naming the file, the line and the key.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { encodeChat } from '../tokenizer/chat.js';
import type { ChatMessage, Tokenizer } from '../tokenizer/types.js';

/** One training sequence. */
export interface TrainExample {
  ids: number[];
  /** targets[j] = 1: token j is predicted (from position j - 1) and counts in the loss. Undefined = all j >= 1. */
  targets?: Uint8Array;
  /** Packed sequences: document id per token (attention stays inside a document) ... */
  doc?: Int32Array;
  /** ... and the position of each token inside its document (RoPE). */
  positions?: Int32Array;
  /** Where it came from ("file:line"), for messages. */
  origin?: string;
}

export interface DataOptions {
  /** Longest sequence allowed (a longer one is an error naming its line). */
  maxSeqLen: number;
  /** Pack {"text"} examples into sequences of maxSeqLen tokens. */
  pack?: boolean;
  /** Ids must lie below this (the embedding table's rows). */
  vocabSize: number;
  /**
   * Read special-token text (`<start_of_turn>`, `<bos>`, ...) in "text" / "prompt" / "completion"
   * as those tokens, as Hugging Face tokenizers do by default (a text that starts with `<bos>` gets
   * no second one). Default false: such text is plain text, pieces like any other.
   */
  parseSpecial?: boolean;
}

export interface Dataset {
  train: TrainExample[];
  valid: TrainExample[];
}

type Json = Record<string, unknown>;

/** Parse JSONL text: one object per non-empty line. */
export function parseJsonl(text: string, where: string): Array<{ line: number; value: Json }> {
  const out: Array<{ line: number; value: Json }> = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new UsageError(`${where}:${i + 1}: malformed JSON (${(e as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`${where}:${i + 1}: expected a JSON object`);
    out.push({ line: i + 1, value: value as Json });
  });
  return out;
}

function needTokenizer(tokenizer: Tokenizer | undefined, at: string, key: string): Tokenizer {
  if (!tokenizer) throw new UsageError(`${at}: "${key}" data needs a tokenizer, and the model has none (use {"ids": [...]})`);
  return tokenizer;
}

/** Token ranges of the model turns, by rendering the conversation up to each of them. */
function chatExample(tokenizer: Tokenizer, messages: unknown, at: string): TrainExample {
  if (!Array.isArray(messages) || messages.length === 0) throw new UsageError(`${at}: "messages" must be a non-empty array of {role, content}`);
  messages.forEach((m: unknown, i) => {
    const mm = m as Json;
    if (typeof mm !== 'object' || mm === null || typeof mm.role !== 'string' || typeof mm.content !== 'string') {
      throw new UsageError(`${at}: messages[${i}] must be {"role": string, "content": string}`);
    }
  });
  const msgs = messages as ChatMessage[];
  const isModel = (m: ChatMessage) => m.role === 'assistant' || m.role === 'model';
  if (!msgs.some(isModel)) throw new UsageError(`${at}: "messages" has no model turn (role "assistant" or "model"): nothing to learn`);
  const encode = (list: ChatMessage[], gen: boolean): number[] => {
    try {
      return encodeChat(tokenizer, list, { addGenerationPrompt: gen });
    } catch (e) {
      throw new UsageError(`${at}: "messages": ${(e as Error).message}`);
    }
  };
  const ids = encode(msgs, false);
  const targets = new Uint8Array(ids.length);
  const startsWith = (a: number[], b: number[]) => b.length <= a.length && b.every((x, i) => a[i] === x);
  msgs.forEach((m, i) => {
    if (!isModel(m)) return;
    const before = encode(msgs.slice(0, i), true);
    const through = encode(msgs.slice(0, i + 1), false);
    if (!startsWith(through, before) || !startsWith(ids, through)) {
      throw new UsageError(`${at}: the chat template does not render messages[${i}] as an extension of the turns before it; cannot locate the model turn`);
    }
    targets.fill(1, before.length, through.length);
  });
  return { ids, targets };
}

/** The text's tokens, special-token text parsed or not as options.parseSpecial says. */
function encodeText(tok: Tokenizer, text: string, options: DataOptions): number[] {
  return tok.encode(text, { addBos: false, parseSpecial: options.parseSpecial === true });
}

/** <bos> + the text's tokens (one <bos> only, when special tokens are parsed and the text starts with it). */
function withBos(tok: Tokenizer, text: string, options: DataOptions): number[] {
  const ids = encodeText(tok, text, options);
  return ids[0] === tok.bosId && options.parseSpecial ? ids : [tok.bosId, ...ids];
}

/** One JSON line -> one example (text examples are packed later). */
export function encodeLine(value: Json, at: string, tokenizer: Tokenizer | undefined, options: DataOptions): TrainExample {
  let ex: TrainExample;
  if ('ids' in value) {
    const ids = value.ids;
    if (!Array.isArray(ids) || ids.length < 2) throw new UsageError(`${at}: "ids" must be an array of at least 2 token ids`);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= options.vocabSize) throw new UsageError(`${at}: ids[${i}] = ${JSON.stringify(id)} is not a token id in [0, ${options.vocabSize})`);
    });
    ex = { ids: ids as number[] };
  } else if ('messages' in value) {
    ex = chatExample(needTokenizer(tokenizer, at, 'messages'), value.messages, at);
  } else if ('prompt' in value || 'completion' in value) {
    const tok = needTokenizer(tokenizer, at, 'prompt');
    if (typeof value.prompt !== 'string') throw new UsageError(`${at}: "prompt" must be a string`);
    if (typeof value.completion !== 'string') throw new UsageError(`${at}: "completion" must be a string`);
    const prompt = withBos(tok, value.prompt, options);
    const completion = [...encodeText(tok, value.completion, options), tok.eosId];
    const ids = [...prompt, ...completion];
    const targets = new Uint8Array(ids.length);
    targets.fill(1, prompt.length);
    ex = { ids, targets };
  } else if ('text' in value) {
    const tok = needTokenizer(tokenizer, at, 'text');
    if (typeof value.text !== 'string') throw new UsageError(`${at}: "text" must be a string`);
    ex = { ids: [...withBos(tok, value.text, options), tok.eosId] };
  } else {
    throw new UsageError(`${at}: expected one of the keys "ids", "text", "messages" or "prompt" + "completion" (got ${Object.keys(value).map((k) => JSON.stringify(k)).join(', ') || 'none'})`);
  }
  if (ex.ids.length > options.maxSeqLen && !(options.pack && 'text' in value)) {
    throw new UsageError(`${at}: the sequence has ${ex.ids.length} tokens, over --max-seq-len ${options.maxSeqLen}`);
  }
  ex.origin = at;
  return ex;
}

/**
 * Pack documents into sequences of at most maxSeqLen tokens: each document keeps its own
 * positions and attends only to itself; the first token of a document is never a target.
 */
export function packExamples(docs: TrainExample[], maxSeqLen: number): TrainExample[] {
  const out: TrainExample[] = [];
  let ids: number[] = [], doc: number[] = [], pos: number[] = [], tgt: number[] = [];
  let docId = 0;
  const flush = () => {
    if (ids.length >= 2) out.push({ ids, doc: Int32Array.from(doc), positions: Int32Array.from(pos), targets: Uint8Array.from(tgt) });
    ids = [];
    doc = [];
    pos = [];
    tgt = [];
  };
  for (const d of docs) {
    // a document longer than a whole sequence is split into pieces of maxSeqLen
    for (let s = 0; s < d.ids.length; s += maxSeqLen) {
      const piece = d.ids.slice(s, s + maxSeqLen);
      if (ids.length + piece.length > maxSeqLen) flush();
      docId++;
      piece.forEach((id, i) => {
        ids.push(id);
        doc.push(docId);
        pos.push(i);
        tgt.push(i === 0 ? 0 : d.targets ? d.targets[s + i]! : 1);
      });
    }
  }
  flush();
  return out;
}

/** Read and encode one JSONL file. */
export function loadJsonl(file: string, tokenizer: Tokenizer | undefined, options: DataOptions): TrainExample[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const lines = parseJsonl(text, file);
  if (lines.length === 0) throw new UsageError(`${file}: no examples`);
  const examples = lines.map(({ line, value }) => encodeLine(value, `${file}:${line}`, tokenizer, options));
  if (!options.pack) return examples;
  const texts = examples.filter((_, i) => 'text' in lines[i]!.value);
  const others = examples.filter((_, i) => !('text' in lines[i]!.value));
  return [...others, ...packExamples(texts, options.maxSeqLen)];
}

/** A .jsonl file, or a directory with train.jsonl and optionally valid.jsonl. */
export function loadDataset(target: string, tokenizer: Tokenizer | undefined, options: DataOptions): Dataset {
  const stat = fs.statSync(target, { throwIfNoEntry: false });
  if (!stat) throw new UsageError(`--data ${target}: no such file or directory`);
  if (stat.isDirectory()) {
    const train = path.join(target, 'train.jsonl');
    if (!fs.existsSync(train)) throw new UsageError(`--data ${target}: the directory has no train.jsonl`);
    const valid = path.join(target, 'valid.jsonl');
    return { train: loadJsonl(train, tokenizer, options), valid: fs.existsSync(valid) ? loadJsonl(valid, tokenizer, options) : [] };
  }
  return { train: loadJsonl(target, tokenizer, options), valid: [] };
}
