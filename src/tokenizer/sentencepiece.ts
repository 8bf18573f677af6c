/**
 * SentencePiece-style BPE tokenizer with Gemma's settings. Every loader (tokenizer.json,
 * tokenizer.model, GGUF) produces a `TokenizerData` and this one class does the work, so the
 * three paths cannot drift apart.
 *
 * Encoding (the Hugging Face tokenizers order, which Gemma's tokenizer.json encodes):
 *  1. split the raw text on added tokens (longest match at the earliest position; special ones
 *     only when `parseSpecial`, user-defined ones always);
 *  2. each remaining section: ' ' -> U+2581 (plus spm's dummy prefix / whitespace cleanup if the
 *     model asks for them; Gemma's does not);
 *  3. BPE from single code points (see bpe.ts); symbols that are not pieces fall back to
 *     <0xXX> byte pieces (or <unk> when the model has no byte pieces).
 */
import { TokenizerError } from '../errors.js';
import { MergeTable, bpeMerge } from './bpe.js';
import type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from './types.js';

/** llama.cpp's doubled-BOS warning, reworded: the text began with <bos> and another was prepended. */
export const DOUBLE_BOS_NOTICE =
  'added a <bos> token to the prompt, but the prompt also starts with <bos>: the ids now start with 2 BOS tokens (as Hugging Face tokenizers and llama.cpp give). Pass addBos: false (--no-bos) if the text carries its own <bos>';

/** SentencePiece piece types (the ModelProto enum; GGUF token_type uses the same numbers). */
export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export interface TokenizerData {
  /** id -> piece text (added tokens included; the array may be longer than vocabSize). */
  pieces: string[];
  /** id -> PieceType. */
  types: Uint8Array;
  /** id -> score (SentencePiece / GGUF); absent for tokenizer.json. */
  scores?: Float32Array;
  /** The merge table (ranks); built from `scores` when the source has no merges. */
  merges: MergeTable;
  /** True when `merges` came from an explicit merge list (tokenizer.json), not from scores. */
  mergesFromList: boolean;
  /** piece -> id (first id wins), when the loader already built it. */
  pieceIndex?: Map<string, number>;
  /** Number of real pieces. */
  vocabSize: number;
  /** Ids recognized in text only with parseSpecial; reported by isSpecial. */
  specialIds: Set<number>;
  /** Ids of added tokens recognized in text always (user-defined pieces). */
  userDefinedIds: Set<number>;
  bosId: number;
  eosId: number;
  padId: number;
  unkId: number;
  addBosToken: boolean;
  chatTemplate: string | undefined;
  byteFallback: boolean;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  /** Replace ' ' by U+2581 (true for every Gemma tokenizer). */
  escapeWhitespaces: boolean;
  /**
   * Match added tokens on the normalized text (spaces already U+2581), as SentencePiece itself
   * does for user-defined pieces, instead of on the raw text (Hugging Face, llama.cpp). Only
   * matters for added tokens containing U+2581, such as Gemma's "▁▁" whitespace pieces.
   */
  matchAddedOnNormalized?: boolean;
}

/** Gemma control tokens that must never be produced from plain user text, whatever a file says. */
export const GEMMA_CONTROL_TOKENS = [
  '<pad>',
  '<eos>',
  '<bos>',
  '<unk>',
  '<start_of_turn>',
  '<end_of_turn>',
  '<start_of_image>',
  '<end_of_image>',
  '<image_soft_token>',
];

/** A character trie over UTF-16 code units for splitting text on added tokens. */
class AddedTokenTrie {
  private readonly nodes: Array<Map<number, number>> = [new Map()];
  private readonly ends: number[] = [-1];
  private readonly firstChar = new Uint8Array(65536);
  readonly count: number;

  constructor(tokens: Array<[string, number]>) {
    for (const [text, id] of tokens) {
      if (text.length === 0) continue;
      let node = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        let nx = this.nodes[node]!.get(c);
        if (nx === undefined) {
          nx = this.nodes.length;
          this.nodes.push(new Map());
          this.ends.push(-1);
          this.nodes[node]!.set(c, nx);
        }
        node = nx;
      }
      this.ends[node] = id;
      this.firstChar[text.charCodeAt(0)] = 1;
    }
    this.count = tokens.length;
  }

  /**
   * Splits text into plain sections and added-token ids: calls section(start, end) for plain
   * text and token(id) for a match. Longest match at the earliest position wins.
   */
  split(text: string, section: (start: number, end: number) => void, token: (id: number) => void, from = 0, to = text.length): void {
    const n = to;
    let start = from;
    let i = from;
    const first = this.firstChar;
    while (i < n) {
      if (first[text.charCodeAt(i)] === 0) {
        i++;
        continue;
      }
      let node = 0;
      let matchEnd = -1;
      let matchId = -1;
      for (let j = i; j < n; j++) {
        const nx = this.nodes[node]!.get(text.charCodeAt(j));
        if (nx === undefined) break;
        node = nx;
        const e = this.ends[node]!;
        if (e >= 0) {
          matchEnd = j + 1;
          matchId = e;
        }
      }
      if (matchId >= 0) {
        if (i > start) section(start, i);
        token(matchId);
        i = matchEnd;
        start = i;
      } else {
        i++;
      }
    }
    if (start < n) section(start, n);
  }
}

const SPACE = 0x20;
const META = 0x2581; // ▁

function utf8Bytes(cp: number, out: number[]): void {
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // lone surrogate: what TextEncoder does
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
}

/**
 * SentencePiece BPE, exact to Hugging Face tokenizers, `spm_encode` and llama.cpp on Gemma's
 * vocabularies. Made by {@link loadTokenizer}; see {@link Tokenizer} for the methods.
 */
export class SentencePieceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly stopIds: readonly number[];
  readonly chatTemplate: string | undefined;
  readonly addBosToken: boolean;
  readonly data: TokenizerData;

  private readonly pieceIndex: Map<string, number>;
  /** code point -> id of the single-character piece, -1 if none. */
  private readonly charToId: Int32Array;
  /** byte -> id of <0xXX>, -1 if none. */
  private readonly byteToId: Int32Array;
  /** id -> byte value for BYTE pieces, -1 otherwise. */
  private readonly idToByte: Int16Array;
  private readonly decodedPiece: Array<string | undefined>;
  private readonly trieAll: AddedTokenTrie;
  private readonly trieUser: AddedTokenTrie;
  private codepoints = new Int32Array(1024);
  private symbols = new Int32Array(1024);

  constructor(data: TokenizerData) {
    this.data = data;
    const { pieces, types } = data;
    const n = pieces.length;
    if (n === 0) throw new TokenizerError('tokenizer has no pieces');
    this.vocabSize = data.vocabSize;
    this.bosId = data.bosId;
    this.eosId = data.eosId;
    this.padId = data.padId;
    this.unkId = data.unkId;
    this.chatTemplate = data.chatTemplate;
    this.addBosToken = data.addBosToken;

    const prebuilt = data.pieceIndex;
    this.pieceIndex = prebuilt ?? new Map();
    this.charToId = new Int32Array(0x110000).fill(-1);
    this.byteToId = new Int32Array(256).fill(-1);
    this.idToByte = new Int16Array(n).fill(-1);
    this.decodedPiece = new Array<string | undefined>(n);
    for (let id = 0; id < n; id++) {
      const p = pieces[id]!;
      if (!prebuilt && !this.pieceIndex.has(p)) this.pieceIndex.set(p, id);
      const t = types[id]!;
      if (t === PieceType.BYTE) {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(p);
        if (m) {
          const b = parseInt(m[1]!, 16);
          this.idToByte[id] = b;
          if (this.byteToId[b] === -1) this.byteToId[b] = id;
        }
        this.decodedPiece[id] = '';
        continue;
      }
      if (t === PieceType.CONTROL || t === PieceType.UNKNOWN) continue;
      const cp = p.codePointAt(0);
      if (cp !== undefined && p.length === (cp > 0xffff ? 2 : 1) && this.charToId[cp] === -1) this.charToId[cp] = id;
    }

    const all: Array<[string, number]> = [];
    const user: Array<[string, number]> = [];
    for (const id of data.specialIds) all.push([pieces[id]!, id]);
    for (const id of data.userDefinedIds) {
      all.push([pieces[id]!, id]);
      user.push([pieces[id]!, id]);
    }
    this.trieAll = new AddedTokenTrie(all);
    this.trieUser = new AddedTokenTrie(user);

    const stops: number[] = [];
    for (const id of [data.eosId, this.pieceIndex.get('<eos>'), this.pieceIndex.get('<end_of_turn>')]) {
      if (id !== undefined && id >= 0 && !stops.includes(id)) stops.push(id);
    }
    this.stopIds = stops;
  }

  idToPiece(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.data.pieces[id] : undefined;
  }

  pieceToId(piece: string): number | undefined {
    return this.pieceIndex.get(piece);
  }

  isSpecial(id: number): boolean {
    return this.data.specialIds.has(id);
  }

  /** Number of ids the tokenizer knows, added tokens past vocabSize included. */
  get numIds(): number {
    return this.data.pieces.length;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TokenizerError(`encode expects a string, got ${typeof text}`);
    const addBos = options.addBos ?? true;
    const parseSpecial = options.parseSpecial ?? false;
    const out: number[] = [];
    const data = this.data;
    let src = text;
    if (data.removeExtraWhitespaces) src = src.replace(/ +/g, ' ').replace(/^ | $/g, '');
    if (data.addDummyPrefix && src.length > 0) src = ' ' + src;
    if (data.matchAddedOnNormalized && data.escapeWhitespaces) src = src.replaceAll(' ', '\u2581');
    const trie = parseSpecial ? this.trieAll : this.trieUser;
    const plain = parseSpecial && options.plainRanges?.length ? options.plainRanges : undefined;
    if (plain) {
      if (src.length !== text.length) throw new TokenizerError('plainRanges need a tokenizer that does not rewrite whitespace before matching specials');
      this.encodeWithPlainRanges(src, plain, out);
    } else if (trie.count === 0) {
      if (src.length > 0) this.encodeSection(src, 0, src.length, out);
    } else {
      trie.split(
        src,
        (s, e) => this.encodeSection(src, s, e, out),
        (id) => out.push(id),
      );
    }
    if (addBos && this.bosId >= 0) {
      if (out[0] === this.bosId) options.onNotice?.(DOUBLE_BOS_NOTICE);
      out.unshift(this.bosId);
    }
    return out;
  }

  /**
   * parseSpecial encoding in which special tokens inside `plain` ranges stay text. Text on both
   * sides of a range boundary is encoded as one section, so the ids equal a plain parseSpecial
   * encode whenever the ranges hold no special-token text.
   */
  private encodeWithPlainRanges(src: string, plain: ReadonlyArray<readonly [number, number]>, out: number[]): void {
    let pendingStart = -1;
    let pendingEnd = -1;
    const section = (s: number, e: number) => {
      if (pendingStart >= 0 && pendingEnd === s) pendingEnd = e;
      else {
        if (pendingStart >= 0) this.encodeSection(src, pendingStart, pendingEnd, out);
        pendingStart = s;
        pendingEnd = e;
      }
    };
    const token = (id: number) => {
      if (pendingStart >= 0) this.encodeSection(src, pendingStart, pendingEnd, out);
      pendingStart = -1;
      out.push(id);
    };
    const ranges = [...plain].sort((a, b) => a[0] - b[0]);
    let pos = 0;
    for (const [rs, re] of ranges) {
      const a = Math.max(pos, Math.min(rs, src.length));
      const b = Math.max(a, Math.min(re, src.length));
      if (a > pos) this.trieAll.split(src, section, token, pos, a);
      if (b > a) this.trieUser.split(src, section, token, a, b);
      pos = Math.max(pos, b);
    }
    if (pos < src.length) this.trieAll.split(src, section, token, pos, src.length);
    if (pendingStart >= 0) this.encodeSection(src, pendingStart, pendingEnd, out);
  }

  private encodeSection(text: string, start: number, end: number, out: number[]): void {
    const maxLen = end - start;
    if (this.codepoints.length < maxLen) {
      let cap = this.codepoints.length;
      while (cap < maxLen) cap *= 2;
      this.codepoints = new Int32Array(cap);
      this.symbols = new Int32Array(cap);
    }
    const cps = this.codepoints;
    const syms = this.symbols;
    const charToId = this.charToId;
    const escape = this.data.escapeWhitespaces;
    let n = 0;
    for (let i = start; i < end; i++) {
      let c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          c = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
          i++;
        }
      }
      if (c === SPACE && escape) c = META;
      cps[n] = c;
      syms[n] = charToId[c]!;
      n++;
    }
    if (n === 0) return;
    bpeMerge(this.data.merges, syms, n, (id, at) => {
      if (id >= 0) {
        out.push(id);
        return;
      }
      this.fallback(cps[at]!, out);
    });
  }

  private fallback(cp: number, out: number[]): void {
    if (this.data.byteFallback) {
      const bytes: number[] = [];
      utf8Bytes(cp, bytes);
      let ok = true;
      for (const b of bytes) if (this.byteToId[b] === -1) ok = false;
      if (ok) {
        for (const b of bytes) out.push(this.byteToId[b]!);
        return;
      }
    }
    if (this.unkId < 0) throw new TokenizerError(`character U+${cp.toString(16).toUpperCase()} is not in the vocabulary and there is no <unk>`);
    // spm and HF (fuse_unk) both fuse consecutive unknowns into one <unk>.
    if (out.length > 0 && out[out.length - 1] === this.unkId) return;
    out.push(this.unkId);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.data.pieces.length) {
      throw new TokenizerError(`token id ${id} is out of range (the tokenizer has ${this.data.pieces.length} ids)`);
    }
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const sd = this.createStreamDecoder(options);
    let s = '';
    for (const id of ids) s += sd.push(id);
    return s + sd.flush();
  }

  createStreamDecoder(options: DecodeOptions = {}): StreamDecoder {
    const skip = options.skipSpecial ?? false;
    let decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    let pendingBytes = false;
    const one = new Uint8Array(1);
    let first = true;
    const stripPrefix = this.data.addDummyPrefix;
    const finishBytes = (): string => {
      if (!pendingBytes) return '';
      pendingBytes = false;
      const s = decoder.decode();
      decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
      return s;
    };
    const emit = (s: string): string => {
      if (first && s.length > 0) {
        first = false;
        if (stripPrefix && s.startsWith(' ')) return s.slice(1);
      }
      return s;
    };
    return {
      push: (id: number): string => {
        this.checkId(id);
        const b = this.idToByte[id]!;
        if (b >= 0) {
          one[0] = b;
          pendingBytes = true;
          return emit(decoder.decode(one, { stream: true }));
        }
        const head = finishBytes();
        if (skip && this.data.specialIds.has(id)) return emit(head);
        let text = this.decodedPiece[id];
        if (text === undefined) {
          const p = this.data.pieces[id]!;
          text = this.data.escapeWhitespaces ? p.replaceAll('\u2581', ' ') : p;
          this.decodedPiece[id] = text;
        }
        return emit(head + text);
      },
      flush: (): string => emit(finishBytes()),
    };
  }
}
