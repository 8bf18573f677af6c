/**
 * The byte strings of a tokenizer's tokens and a trie over them, built once per tokenizer
 * (cached in a WeakMap) for constrained sampling.
 *
 * A token's bytes are what the stream decoder emits for it: the UTF-8 of its piece with U+2581
 * as a space, or one raw byte for a byte-fallback piece (<0xNN>) - so a character split over
 * byte tokens is read byte by byte, as the decoder joins it. Control and placeholder tokens
 * (specials, <unusedN>, <mask>, ...) and tokens with no bytes are not in the trie: the
 * constraint never allows them (stop ids are handled separately).
 *
 * The trie is stored in preorder in flat arrays: node i has a byte, a depth (1 = first byte),
 * `end[i]` (the first node after its subtree) and the tokens ending at it
 * (tokIds[tokStart[i] .. tokStart[i + 1])); the tokens of a whole subtree are
 * tokIds[tokStart[i] .. tokStart[end[i]]). `plainSub[i]` says that, from node i's byte on, every
 * token of the subtree is a run of complete plain string characters, so a state inside a free
 * JSON string accepts the whole subtree without walking it.
 */
import { Worker } from 'node:worker_threads';
import type { Tokenizer } from '../../tokenizer/types.js';
import { plainSuffixStart, type GrammarState } from './grammar.js';

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
/** User-defined placeholder pieces of Gemma vocabularies that are not text. */
const PLACEHOLDERS = new Set(['<mask>', '<2mass>', '[@BOS@]', '[multimodal]', '<start_of_image>', '<end_of_image>', '<image_soft_token>']);

export interface TokenTrie {
  /** Node count. */
  size: number;
  byte: Uint8Array;
  depth: Uint16Array;
  end: Int32Array;
  tokStart: Int32Array;
  tokIds: Int32Array;
  plainSub: Uint8Array;
  /** The depth of the deepest node in each node's subtree (its longest token, in bytes). */
  subDepth: Uint16Array;
}

export interface TokenTable {
  /** Ids 0..vocabSize-1. */
  vocabSize: number;
  /** Token bytes: bytes[off[id] .. off[id + 1]). */
  bytes: Uint8Array;
  off: Int32Array;
  /** 1 = a text token the constraint may allow (in the trie). */
  text: Uint8Array;
  trie: TokenTrie;
}

const tables = new WeakMap<Tokenizer, TokenTable>();

/** Whether a token is never text: specials, <unusedN> and placeholders. */
function isControl(tokenizer: Tokenizer, id: number, piece: string): boolean {
  return tokenizer.isSpecial(id) || id === tokenizer.bosId || id === tokenizer.eosId || id === tokenizer.padId || PLACEHOLDERS.has(piece) || /^<unused\d+>$/.test(piece);
}

/** The token table of a tokenizer (built on first use, then cached). */
export function tokenTable(tokenizer: Tokenizer): TokenTable {
  let t = tables.get(tokenizer);
  if (!t) {
    t = buildTable(tokenizer);
    tables.set(tokenizer, t);
  }
  return t;
}

/** What a token table is built from: each id's piece and whether it is a control token. */
export interface TokenPieces {
  pieces: string[];
  /** 1 = never text (isControl). */
  control: Uint8Array;
}

/** The tokenizer's pieces and control flags (the part of the build that needs the tokenizer). */
export function tokenPieces(tokenizer: Tokenizer): TokenPieces {
  const n = tokenizer.vocabSize;
  const pieces: string[] = new Array(n);
  const control = new Uint8Array(n);
  for (let id = 0; id < n; id++) {
    const piece = tokenizer.idToPiece(id) ?? '';
    pieces[id] = piece;
    if (isControl(tokenizer, id, piece)) control[id] = 1;
  }
  return { pieces, control };
}

function buildTable(tokenizer: Tokenizer): TokenTable {
  return tableFromPieces(tokenPieces(tokenizer));
}

/** The token table of a vocabulary's pieces (no tokenizer needed: runs in a worker too). */
export function tableFromPieces({ pieces, control }: TokenPieces): TokenTable {
  const n = pieces.length;
  const parts: Uint8Array[] = new Array(n);
  const text = new Uint8Array(n);
  const enc = new TextEncoder();
  const empty = new Uint8Array(0);
  let total = 0;
  for (let id = 0; id < n; id++) {
    const piece = pieces[id]!;
    let b: Uint8Array = empty;
    const m = BYTE_PIECE.exec(piece);
    if (m) b = Uint8Array.of(parseInt(m[1]!, 16));
    // The piece's text as the stream decoder emits it mid-stream (U+2581 is a space).
    else if (!control[id]) b = enc.encode(piece.replaceAll('\u2581', ' '));
    if (b.length > 0) text[id] = 1;
    parts[id] = b;
    total += b.length;
  }
  const bytes = new Uint8Array(total);
  const off = new Int32Array(n + 1);
  let p = 0;
  for (let id = 0; id < n; id++) {
    off[id] = p;
    bytes.set(parts[id]!, p);
    p += parts[id]!.length;
  }
  off[n] = p;
  return { vocabSize: n, bytes, off, text, trie: buildTrie(bytes, off, text) };
}

/** Whether the token table of `tokenizer` is built (cached). */
export function hasTokenTable(tokenizer: Tokenizer): boolean {
  return tables.has(tokenizer);
}

/** The distinct buffers of a table's arrays (to transfer it from a worker without copying). */
export function tableBuffers(t: TokenTable): ArrayBuffer[] {
  const arrays = [t.bytes, t.off, t.text, t.trie.byte, t.trie.depth, t.trie.end, t.trie.tokStart, t.trie.tokIds, t.trie.plainSub, t.trie.subDepth];
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

export interface TablePrebuild {
  /** Resolves once the table is cached (or the build was cancelled or failed: tokenTable() then builds it on demand). */
  done: Promise<void>;
  /** Stop the build (terminates the worker). */
  cancel(): void;
}

/**
 * Build the token table of `tokenizer` in the background and cache it, so that the first
 * constrained generation does not pay for it (~0.7 s for a 256k vocabulary). The pieces are read
 * here (the only part that needs the tokenizer); the byte table and the trie are built in a
 * worker thread (vocab-worker.ts) and transferred back. Without the worker's compiled file
 * (running from the TypeScript sources) the build runs on this thread, after the current event
 * loop turn. A table built meanwhile by tokenTable() is kept.
 */
export function prebuildTokenTable(tokenizer: Tokenizer): TablePrebuild {
  if (tables.has(tokenizer)) return { done: Promise.resolve(), cancel: () => undefined };
  let cancelled = false;
  let worker: Worker | undefined;
  let timer: NodeJS.Immediate | undefined;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  const onThisThread = (): void => {
    timer = setImmediate(() => {
      if (!cancelled) tokenTable(tokenizer);
      resolve();
    });
  };
  try {
    worker = new Worker(new URL('./vocab-worker.js', import.meta.url), { workerData: tokenPieces(tokenizer) });
  } catch {
    onThisThread();
  }
  if (worker) {
    const w = worker;
    w.unref();
    let settled = false;
    w.once('message', (t: TokenTable) => {
      settled = true;
      if (!cancelled && !tables.has(tokenizer)) tables.set(tokenizer, t);
      void w.terminate();
      resolve();
    });
    w.once('error', () => {
      settled = true;
      if (cancelled) resolve();
      else onThisThread();
    });
    w.once('exit', () => {
      if (!settled) resolve();
    });
  }
  return {
    done,
    cancel() {
      cancelled = true;
      if (timer) clearImmediate(timer);
      void worker?.terminate();
      resolve();
    },
  };
}

function buildTrie(bytes: Uint8Array, off: Int32Array, text: Uint8Array): TokenTrie {
  const ids: number[] = [];
  for (let id = 0; id < text.length; id++) if (text[id]) ids.push(id);
  // Sort by byte string: latin1 strings compare code unit by code unit = byte order.
  const keyOf: string[] = new Array(text.length);
  for (const id of ids) keyOf[id] = Buffer.from(bytes.buffer, bytes.byteOffset + off[id]!, off[id + 1]! - off[id]!).toString('latin1');
  ids.sort((a, b) => {
    const x = keyOf[a]!;
    const y = keyOf[b]!;
    return x < y ? -1 : x > y ? 1 : a - b;
  });
  // Preorder construction along the sorted strings (each shares a prefix with the previous one).
  const cap = ids.reduce((a, id) => a + off[id + 1]! - off[id]!, 0) + 1;
  const nodeByte = new Uint8Array(cap);
  const depth = new Uint16Array(cap);
  const end = new Int32Array(cap);
  const parent = new Int32Array(cap);
  const tokStart = new Int32Array(cap + 1);
  const tokIds = new Int32Array(ids.length);
  const maxPlainFrom = new Int32Array(cap).fill(-1);
  const path: number[] = []; // node at each depth - 1
  let size = 0;
  let prev = '';
  let nt = 0;
  for (const id of ids) {
    const s = keyOf[id]!;
    let l = 0;
    const lim = Math.min(s.length, prev.length, path.length);
    while (l < lim && s.charCodeAt(l) === prev.charCodeAt(l)) l++;
    while (path.length > l) end[path.pop()!] = size;
    for (let d = l; d < s.length; d++) {
      const i = size++;
      nodeByte[i] = s.charCodeAt(d);
      depth[i] = d + 1;
      parent[i] = path.length ? path[path.length - 1]! : -1;
      tokStart[i] = nt;
      path.push(i);
    }
    tokIds[nt++] = id;
    const node = path[path.length - 1]!;
    const pf = plainSuffixStart(bytes, off[id]!, off[id + 1]!) - off[id]!;
    if (pf > maxPlainFrom[node]!) maxPlainFrom[node] = pf;
    prev = s;
  }
  while (path.length) end[path.pop()!] = size;
  tokStart[size] = nt;
  // Subtree maxima of plainFrom, children before parents (reverse preorder).
  for (let i = size - 1; i >= 0; i--) {
    const p = parent[i]!;
    if (p >= 0 && maxPlainFrom[i]! > maxPlainFrom[p]!) maxPlainFrom[p] = maxPlainFrom[i]!;
  }
  const subDepth = depth.slice(0, size);
  for (let i = size - 1; i >= 0; i--) {
    const p = parent[i]!;
    if (p >= 0 && subDepth[i]! > subDepth[p]!) subDepth[p] = subDepth[i]!;
  }
  const plainSub = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    const b = nodeByte[i]!;
    // Node i reads the byte at offset depth - 1: a character start that every token below begins a plain run at.
    if ((b & 0xc0) !== 0x80 && maxPlainFrom[i]! <= depth[i]! - 1) plainSub[i] = 1;
  }
  return {
    size,
    byte: nodeByte.slice(0, size),
    depth: depth.slice(0, size),
    end: end.slice(0, size),
    tokStart: tokStart.slice(0, size + 1),
    tokIds,
    plainSub,
    subDepth,
  };
}

let stateStack: Array<GrammarState | null> = [];

/**
 * Mark in `mask` (set to 1; the caller clears it) every trie token that `state` can read in full.
 * Returns the number of tokens marked.
 */
export function markAllowed(trie: TokenTrie, state: GrammarState, mask: Uint8Array): number {
  const { size, byte, depth, end, tokStart, tokIds, plainSub, subDepth } = trie;
  if (stateStack.length < 65536) stateStack = new Array(65536).fill(null);
  const at = stateStack;
  at[0] = state;
  let count = 0;
  let i = 0;
  while (i < size) {
    const d = depth[i]!;
    const s = at[d - 1]!;
    // Every token below is a run of plain characters, no more of them than bytes left: all readable.
    if (plainSub[i] && s.plainChars > subDepth[i]! - d) {
      const e = end[i]!;
      for (let j = tokStart[i]!, je = tokStart[e]!; j < je; j++) mask[tokIds[j]!] = 1;
      count += tokStart[e]! - tokStart[i]!;
      i = e;
      continue;
    }
    const next = s.next;
    let ns = next !== undefined ? next[byte[i]!] : undefined;
    if (ns === undefined) ns = s.step(byte[i]!);
    if (ns === null) {
      i = end[i]!;
      continue;
    }
    at[d] = ns;
    for (let j = tokStart[i]!, je = tokStart[i + 1]!; j < je; j++) mask[tokIds[j]!] = 1;
    count += tokStart[i + 1]! - tokStart[i]!;
    i++;
  }
  return count;
}
