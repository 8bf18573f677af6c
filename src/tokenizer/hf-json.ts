/**
 * Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) -> TokenizerData.
 *
 * Accepts the Gemma shape: model BPE with byte_fallback and merges, normalizer
 * Replace(' ' -> '▁') (alone or in a Sequence, optionally with a Prepend('▁') = dummy prefix),
 * pre-tokenizer none or Split(' ') (a no-op once spaces are '▁'). Anything else is rejected
 * with a TokenizerError rather than silently tokenized differently.
 */
import { TokenizerError } from '../errors.js';
import { MergeTable } from './bpe.js';
import { GEMMA_CONTROL_TOKENS, PieceType, type TokenizerData } from './sentencepiece.js';

interface HFAddedToken {
  id: number;
  content: string;
  special?: boolean;
  normalized?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  single_word?: boolean;
}

export interface HFTokenizerJSON {
  added_tokens?: HFAddedToken[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  decoder?: unknown;
  post_processor?: unknown;
  model?: {
    type?: string;
    vocab?: Record<string, number>;
    merges?: Array<string | [string, string]>;
    byte_fallback?: boolean;
    unk_token?: string | null;
    fuse_unk?: boolean;
    continuing_subword_prefix?: string | null;
    end_of_word_suffix?: string | null;
    dropout?: number | null;
  };
}

export interface HFTokenizerConfig {
  add_bos_token?: boolean;
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  unk_token?: string | { content: string } | null;
  additional_special_tokens?: Array<string | { content: string }>;
  added_tokens_decoder?: Record<string, { content: string; special?: boolean }>;
  chat_template?: string | Array<{ name: string; template: string }>;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v.content === 'string') return v.content;
  return undefined;
}

/** The default chat template of a tokenizer_config.json (string, or the entry named "default"). */
export function pickChatTemplate(cfg: HFTokenizerConfig | undefined): string | undefined {
  const t = cfg?.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const d = t.find((x) => x && x.name === 'default') ?? t[0];
    return d && typeof d.template === 'string' ? d.template : undefined;
  }
  return undefined;
}

interface NormalizerInfo {
  escape: boolean;
  dummyPrefix: boolean;
}

/** A value for an error message: its JSON start (a value too deep for JSON.stringify is not shown). */
function shown(x: unknown): string {
  try {
    return JSON.stringify(x).slice(0, 120);
  } catch {
    return '(nested too deeply to show)';
  }
}

/** Normalizer Sequences nested deeper than this are refused (real ones nest once). */
const MAX_NORMALIZER_DEPTH = 16;

function analyzeNormalizer(n: unknown): NormalizerInfo {
  const info: NormalizerInfo = { escape: false, dummyPrefix: false };
  const visit = (x: unknown, depth: number): void => {
    if (x === null || x === undefined) return;
    if (!isObj(x)) throw new TokenizerError('tokenizer.json: malformed normalizer');
    if (x.type === 'Sequence' && Array.isArray(x.normalizers)) {
      if (depth >= MAX_NORMALIZER_DEPTH) throw new TokenizerError(`tokenizer.json: normalizer Sequences nested more than ${MAX_NORMALIZER_DEPTH} deep`);
      for (const y of x.normalizers) visit(y, depth + 1);
      return;
    }
    if (x.type === 'Replace' && isObj(x.pattern) && x.pattern.String === ' ' && x.content === '\u2581') {
      info.escape = true;
      return;
    }
    if (x.type === 'Prepend' && x.prepend === '\u2581') {
      info.dummyPrefix = true;
      return;
    }
    throw new TokenizerError(`tokenizer.json: unsupported normalizer ${shown(x)} (only Gemma's SentencePiece-style normalizers are supported)`);
  };
  visit(n, 0);
  return info;
}

function checkPreTokenizer(p: unknown): void {
  if (p === null || p === undefined) return;
  if (isObj(p) && p.type === 'Split' && isObj(p.pattern) && p.pattern.String === ' ') return; // no-op after ' ' -> '▁'
  throw new TokenizerError(`tokenizer.json: unsupported pre_tokenizer ${shown(p)} (only Gemma's are supported)`);
}

export function tokenizerDataFromHFJson(json: HFTokenizerJSON, config?: HFTokenizerConfig): TokenizerData {
  if (!isObj(json) || !isObj(json.model)) throw new TokenizerError('tokenizer.json: missing "model"');
  const model = json.model;
  if (model.type !== 'BPE') throw new TokenizerError(`tokenizer.json: model type ${String(model.type)} is not supported (need BPE)`);
  if (model.continuing_subword_prefix || model.end_of_word_suffix) {
    throw new TokenizerError('tokenizer.json: BPE with subword prefixes/suffixes is not a SentencePiece model');
  }
  if (!isObj(model.vocab)) throw new TokenizerError('tokenizer.json: model.vocab missing');
  if (!Array.isArray(model.merges)) throw new TokenizerError('tokenizer.json: model.merges missing');
  const norm = analyzeNormalizer(json.normalizer);
  checkPreTokenizer(json.pre_tokenizer);

  const vocab = model.vocab;
  const index = new Map<string, number>();
  let maxId = -1;
  for (const key in vocab) {
    const id = vocab[key];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 1e8) throw new TokenizerError(`tokenizer.json: bad id for piece ${JSON.stringify(key)}`);
    index.set(key, id);
    if (id > maxId) maxId = id;
  }
  const vocabSize = maxId + 1;
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  let total = vocabSize;
  for (const a of added as unknown[]) {
    if (!isObj(a) || typeof a.content !== 'string' || typeof a.id !== 'number' || !Number.isInteger(a.id) || a.id < 0 || a.id > 1e8) {
      throw new TokenizerError('tokenizer.json: malformed added_tokens entry');
    }
    if (a.id + 1 > total) total = a.id + 1;
  }
  // Ids are dense in real vocabularies: a few entries naming huge ids would allocate the whole range.
  if (total > index.size + added.length + 1024) {
    throw new TokenizerError(`tokenizer.json: ids reach ${total - 1} but only ${index.size + added.length} pieces are listed (ids must be dense)`);
  }
  const pieces = new Array<string>(total).fill('');
  const types = new Uint8Array(total).fill(PieceType.UNUSED);
  for (const [p, id] of index) {
    pieces[id] = p;
    types[id] = p.length === 6 && p.startsWith('<0x') && /^<0x[0-9A-F]{2}>$/.test(p) && model.byte_fallback ? PieceType.BYTE : PieceType.NORMAL;
  }
  const unkPiece = typeof model.unk_token === 'string' ? model.unk_token : undefined;
  const unkId = unkPiece !== undefined ? (index.get(unkPiece) ?? -1) : -1;
  if (unkId >= 0) types[unkId] = PieceType.UNKNOWN;

  const specialIds = new Set<number>();
  const userDefinedIds = new Set<number>();
  const forcedSpecial = new Set<string>(GEMMA_CONTROL_TOKENS);
  for (const t of config?.additional_special_tokens ?? []) {
    const s = tokenText(t);
    if (s) forcedSpecial.add(s);
  }
  for (const a of added) {
    pieces[a.id] = a.content;
    if (a.special || forcedSpecial.has(a.content)) {
      specialIds.add(a.id);
      if (a.id !== unkId) types[a.id] = PieceType.CONTROL;
    } else {
      userDefinedIds.add(a.id);
      types[a.id] = PieceType.USER_DEFINED;
    }
    if (a.lstrip || a.rstrip || a.single_word) {
      throw new TokenizerError(`tokenizer.json: added token ${JSON.stringify(a.content)} uses lstrip/rstrip/single_word, which Gemma tokenizers do not`);
    }
  }

  // Merges, in rank order.
  const merges = model.merges;
  const table = new MergeTable(merges.length);
  for (let rank = 0; rank < merges.length; rank++) {
    const m = merges[rank];
    let a: string | undefined;
    let b: string | undefined;
    if (typeof m === 'string') {
      const sp = m.indexOf(' ');
      if (sp > 0) {
        a = m.slice(0, sp);
        b = m.slice(sp + 1);
      }
    } else if (Array.isArray(m) && m.length === 2) {
      a = m[0];
      b = m[1];
    }
    if (typeof a !== 'string' || typeof b !== 'string') throw new TokenizerError(`tokenizer.json: malformed merge #${rank}`);
    const l = index.get(a);
    const r = index.get(b);
    if (l === undefined || r === undefined) throw new TokenizerError(`tokenizer.json: merge #${rank} (${JSON.stringify(a)}, ${JSON.stringify(b)}) uses a piece that is not in the vocabulary`);
    table.add(l, r, rank, -1); // result id resolved on first use (saves 500k lookups at load)
  }
  table.resolver = (l, r) => {
    const id = index.get(pieces[l]! + pieces[r]!);
    if (id === undefined) throw new TokenizerError(`tokenizer.json: merge result ${JSON.stringify(pieces[l]! + pieces[r]!)} is not in the vocabulary`);
    return id;
  };

  const find = (v: unknown, fallback: string): number => {
    const s = tokenText(v) ?? fallback;
    for (const a of added) if (a.content === s) return a.id;
    return index.get(s) ?? -1;
  };
  const bosId = find(config?.bos_token, '<bos>');
  const eosId = find(config?.eos_token, '<eos>');
  const padId = find(config?.pad_token, '<pad>');

  return {
    pieces,
    types,
    merges: table,
    mergesFromList: true,
    pieceIndex: index,
    vocabSize,
    specialIds,
    userDefinedIds,
    bosId,
    eosId,
    padId,
    unkId,
    addBosToken: config?.add_bos_token ?? true,
    chatTemplate: pickChatTemplate(config),
    byteFallback: model.byte_fallback === true,
    addDummyPrefix: norm.dummyPrefix,
    removeExtraWhitespaces: false,
    escapeWhitespaces: norm.escape,
  };
}
