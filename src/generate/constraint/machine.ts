/**
 * Byte machines: deterministic automata that a grammar element (grammar.ts, kind MACHINE) runs
 * over a stretch of input - a bounded number, or the body of a JSON string under minLength /
 * maxLength / pattern / format. A machine may end after any byte that leaves it in a final
 * state (the grammar then also continues past it), so it needs no terminator of its own.
 *
 * Two kinds:
 *   - TableMachine: an explicit DFA (transition table over byte classes), built eagerly from a
 *     regex AST (regex.ts) by Thompson's construction and the subset construction, optionally
 *     intersected with other machines, and pruned to states that can still reach a final state
 *     (so a constrained generation can never walk into a dead end);
 *   - StringLengthMachine: the JSON string body counted in code points, computed arithmetically
 *     (no table, any maxLength).
 * States are small integers; 0 is the start; -1 means rejected.
 */
import type { CodeSet, RegexNode } from './regex.js';
import { intersect, minus } from './regex.js';

export interface ByteMachine {
  /** The state after `byte`, or -1. */
  next(state: number, byte: number): number;
  /** The bytes read so far form a complete match. */
  final(state: number): boolean;
  /** Some byte leads on from `state` (every state a machine returns can reach a final one). */
  live(state: number): boolean;
  /** Bytes b where next(., b) may differ from next(., b - 1) for some state (b = 0 included). */
  readonly boundaries: readonly number[];
  /**
   * How many plain string characters (not a control, quote or backslash; valid UTF-8), in any
   * mix, are surely accepted from `state` with the machine staying live (0 = no such promise):
   * lets the token-mask walk accept whole plain-text subtrees of the vocabulary at once.
   */
  plainRun?(state: number): number;
}

/** Most states one explicit DFA (or product) may have. */
export const MAX_DFA_STATES = 20_000;
const MAX_NFA_STATES = 200_000;

export class TooComplexError extends Error {}

// ------------------------------------------------------------ UTF-8 and JSON-string encodings

const utf8 = new TextEncoder();

/** Byte-range sequences whose concatenations are exactly the UTF-8 encodings of [lo, hi] (no surrogates inside). */
export function utf8Sequences(lo: number, hi: number): Array<Array<[number, number]>> {
  const out: Array<Array<[number, number]>> = [];
  const bounds = [0x7f, 0x7ff, 0xffff, 0x10ffff];
  const go = (a: number, b: number): void => {
    if (a > b) return;
    for (const m of bounds) {
      if (a <= m && b > m) {
        go(a, m);
        go(m + 1, b);
        return;
      }
    }
    if (a <= 0x7f) {
      out.push([[a, b]]);
      return;
    }
    const n = a <= 0x7ff ? 2 : a <= 0xffff ? 3 : 4;
    for (let i = 1; i < n; i++) {
      const mask = (1 << (6 * i)) - 1;
      if ((a & ~mask) !== (b & ~mask)) {
        if ((a & mask) !== 0) {
          go(a, a | mask);
          go((a | mask) + 1, b);
          return;
        }
        if ((b & mask) !== mask) {
          go(a, (b & ~mask) - 1);
          go(b & ~mask, b);
          return;
        }
      }
    }
    const ea = utf8.encode(String.fromCodePoint(a));
    const eb = utf8.encode(String.fromCodePoint(b));
    out.push([...ea].map((x, k) => [x, eb[k]!] as [number, number]));
  };
  go(lo, hi);
  return out;
}

/** How characters are written: 'raw' = their UTF-8; 'json' = inside a JSON string (escapes where needed). */
export type Encoding = 'raw' | 'json';

const SHORT_ESCAPES: ReadonlyArray<[number, string]> = [
  [0x22, '"'],
  [0x5c, '\\'],
  [0x2f, '/'],
  [0x08, 'b'],
  [0x0c, 'f'],
  [0x0a, 'n'],
  [0x0d, 'r'],
  [0x09, 't'],
];
/** Characters written raw inside a JSON string: all but controls, the quote and the backslash (no surrogates). */
const JSON_RAW: CodeSet = minus([0x20, 0x10ffff], [0x22, 0x22, 0x5c, 0x5c, 0xd800, 0xdfff]);

/** Byte-range sequences that write one character of `set`. */
function encodings(set: CodeSet, encoding: Encoding): Array<Array<[number, number]>> {
  const out: Array<Array<[number, number]>> = [];
  const raw = encoding === 'raw' ? minus(set, [0xd800, 0xdfff]) : intersect(set, JSON_RAW);
  for (let i = 0; i < raw.length; i += 2) out.push(...utf8Sequences(raw[i]!, raw[i + 1]!));
  if (encoding === 'json') {
    const has = (c: number): boolean => intersect(set, [c, c]).length > 0;
    const bs: [number, number] = [0x5c, 0x5c];
    for (const [c, e] of SHORT_ESCAPES) if (has(c)) out.push([bs, [e.charCodeAt(0), e.charCodeAt(0)]]);
    // Controls without a short escape: \u00XX (hex digits in either case).
    const hex = (d: number): Array<[number, number]> => {
      const s = d.toString(16);
      return s >= 'a' ? [[s.charCodeAt(0), s.charCodeAt(0)], [s.toUpperCase().charCodeAt(0), s.toUpperCase().charCodeAt(0)]] : [[s.charCodeAt(0), s.charCodeAt(0)]];
    };
    for (let c = 0; c < 0x20; c++) {
      if (!has(c) || SHORT_ESCAPES.some(([x]) => x === c)) continue;
      for (const lowDigit of hex(c & 15)) out.push([bs, [0x75, 0x75], [0x30, 0x30], [0x30, 0x30], [0x30 + (c >> 4), 0x30 + (c >> 4)], lowDigit]);
    }
  }
  return out;
}

// ------------------------------------------------------------ NFA

const EPS = 0;
const BOL = 1;
const EOL = 2;

/** A byte NFA: edges are byte ranges or epsilon / ^ / $ moves. */
class Nfa {
  /** Per state: [lo, hi, target] triples. */
  readonly bytes: number[][] = [];
  /** Per state: [kind, target] pairs (EPS, BOL, EOL). */
  readonly eps: number[][] = [];

  add(): number {
    if (this.bytes.length >= MAX_NFA_STATES) throw new TooComplexError(`over ${MAX_NFA_STATES} automaton states`);
    this.bytes.push([]);
    this.eps.push([]);
    return this.bytes.length - 1;
  }

  build(node: RegexNode, from: number, to: number, encoding: Encoding): void {
    switch (node.t) {
      case 'set':
        for (const sq of encodings(node.set, encoding)) {
          let at = from;
          sq.forEach(([lo, hi], k) => {
            const nx = k === sq.length - 1 ? to : this.add();
            this.bytes[at]!.push(lo, hi, nx);
            at = nx;
          });
        }
        return;
      case 'seq': {
        let at = from;
        node.items.forEach((it, k) => {
          const nx = k === node.items.length - 1 ? to : this.add();
          this.build(it, at, nx, encoding);
          at = nx;
        });
        if (node.items.length === 0) this.eps[from]!.push(EPS, to);
        return;
      }
      case 'alt':
        for (const it of node.items) this.build(it, from, to, encoding);
        return;
      case 'bol':
        this.eps[from]!.push(BOL, to);
        return;
      case 'eol':
        this.eps[from]!.push(EOL, to);
        return;
      case 'rep': {
        let at = from;
        for (let k = 0; k < node.min; k++) {
          const nx = this.add();
          this.build(node.node, at, nx, encoding);
          at = nx;
        }
        if (node.max === Infinity) {
          const loop = this.add();
          this.eps[at]!.push(EPS, loop);
          this.build(node.node, loop, loop, encoding);
          this.eps[loop]!.push(EPS, to);
        } else {
          for (let k = node.min; k < node.max; k++) {
            this.eps[at]!.push(EPS, to);
            const nx = k === node.max - 1 ? to : this.add();
            this.build(node.node, at, nx, encoding);
            at = nx;
          }
          if (node.max === node.min) this.eps[at]!.push(EPS, to);
        }
        return;
      }
    }
  }

  /** The states reachable from `set` by epsilon moves (and ^ moves when `atStart`, $ moves when `atEnd`). */
  closure(set: number[], atStart: boolean, atEnd: boolean): number[] {
    const seen = new Set(set);
    const stack = [...set];
    while (stack.length) {
      const s = stack.pop()!;
      const e = this.eps[s]!;
      for (let k = 0; k < e.length; k += 2) {
        const kind = e[k]!;
        if ((kind === BOL && !atStart) || (kind === EOL && !atEnd)) continue;
        const t = e[k + 1]!;
        if (!seen.has(t)) {
          seen.add(t);
          stack.push(t);
        }
      }
    }
    return [...seen].sort((a, b) => a - b);
  }
}

// ------------------------------------------------------------ explicit DFAs

/** An explicit DFA over byte classes; every state can reach a final state. */
export class TableMachine implements ByteMachine {
  readonly classOf: Uint8Array;
  readonly classCount: number;
  /** table[state * classCount + class]: the next state or -1. */
  readonly table: Int32Array;
  readonly finals: Uint8Array;
  private readonly lives: Uint8Array;
  readonly boundaries: readonly number[];

  constructor(classOf: Uint8Array, classCount: number, table: Int32Array, finals: Uint8Array) {
    this.classOf = classOf;
    this.classCount = classCount;
    this.table = table;
    this.finals = finals;
    const n = finals.length;
    this.lives = new Uint8Array(n);
    for (let s = 0; s < n; s++) for (let c = 0; c < classCount; c++) if (table[s * classCount + c]! >= 0) this.lives[s] = 1;
    const b: number[] = [0];
    for (let x = 1; x < 256; x++) if (classOf[x] !== classOf[x - 1]) b.push(x);
    this.boundaries = b;
  }

  get stateCount(): number {
    return this.finals.length;
  }

  next(state: number, byte: number): number {
    return this.table[state * this.classCount + this.classOf[byte]!]!;
  }

  final(state: number): boolean {
    return this.finals[state] === 1;
  }

  live(state: number): boolean {
    return this.lives[state] === 1;
  }

  /** Whether the machine accepts no input at all. */
  get empty(): boolean {
    return this.finals.length === 0;
  }
}

/** Classes (intervals between boundaries) from sorted, distinct boundaries that include 0. */
function classesOf(boundaries: number[]): { classOf: Uint8Array; reps: number[] } {
  const bs = [...new Set([0, ...boundaries])].filter((b) => b < 256).sort((a, b) => a - b);
  const classOf = new Uint8Array(256);
  bs.forEach((b, k) => {
    const end = k + 1 < bs.length ? bs[k + 1]! : 256;
    for (let x = b; x < end; x++) classOf[x] = k;
  });
  return { classOf, reps: bs };
}

/**
 * Explore a deterministic step function from `start` (states keyed by strings) over the byte
 * classes of `boundaries`, then keep only the states that can reach a final state. The result
 * has state 0 = start, or no states when nothing is accepted.
 */
function explore<S>(start: S, key: (s: S) => string, step: (s: S, byte: number) => S | null, isFinal: (s: S) => boolean, boundaries: number[]): TableMachine {
  const { classOf, reps } = classesOf(boundaries);
  const nc = reps.length;
  const ids = new Map<string, number>();
  const states: S[] = [];
  const edges: number[] = [];
  const intern = (s: S): number => {
    const k = key(s);
    let id = ids.get(k);
    if (id === undefined) {
      if (states.length >= MAX_DFA_STATES) throw new TooComplexError(`over ${MAX_DFA_STATES} automaton states`);
      id = states.length;
      ids.set(k, id);
      states.push(s);
    }
    return id;
  };
  intern(start);
  for (let i = 0; i < states.length; i++) {
    for (let c = 0; c < nc; c++) {
      const t = step(states[i]!, reps[c]!);
      edges.push(t === null ? -1 : intern(t));
    }
  }
  // Productive states: those that reach a final state (backwards from the finals).
  const n = states.length;
  const productive = new Uint8Array(n);
  const rev: number[][] = Array.from({ length: n }, () => []);
  for (let s = 0; s < n; s++) for (let c = 0; c < nc; c++) if (edges[s * nc + c]! >= 0) rev[edges[s * nc + c]!]!.push(s);
  const work: number[] = [];
  const fin = Uint8Array.from(states, (x) => (isFinal(x) ? 1 : 0));
  for (let s = 0; s < n; s++) if (fin[s]) (productive[s] = 1), work.push(s);
  while (work.length) for (const p of rev[work.pop()!]!) if (!productive[p]) (productive[p] = 1), work.push(p);
  if (!productive[0]) return new TableMachine(classOf, nc, new Int32Array(0), new Uint8Array(0));
  const renum = new Int32Array(n).fill(-1);
  let m = 0;
  for (let s = 0; s < n; s++) if (productive[s]) renum[s] = m++;
  const table = new Int32Array(m * nc).fill(-1);
  const finals = new Uint8Array(m);
  for (let s = 0; s < n; s++) {
    if (!productive[s]) continue;
    finals[renum[s]!] = fin[s]!;
    for (let c = 0; c < nc; c++) {
      const t = edges[s * nc + c]!;
      table[renum[s]! * nc + c] = t >= 0 ? renum[t]! : -1;
    }
  }
  return new TableMachine(classOf, nc, table, finals);
}

/** The DFA of strings (as bytes in `encoding`) that match `node` in full. Throws TooComplexError past the size limits. */
export function compileRegex(node: RegexNode, encoding: Encoding): TableMachine {
  const nfa = new Nfa();
  const start = nfa.add();
  const accept = nfa.add();
  nfa.build(node, start, accept, encoding);
  const boundaries: number[] = [];
  for (const e of nfa.bytes) for (let k = 0; k < e.length; k += 3) boundaries.push(e[k]!, e[k + 1]! + 1);
  // A state is its sorted set of NFA states (closed under epsilon moves, not under $ moves).
  type D = { set: ArrayLike<number>; atStart: boolean; key: string };
  const dState = (set: ArrayLike<number>, atStart: boolean): D => ({ set, atStart, key: `${atStart ? 's' : ''}${Array.prototype.join.call(set, ',')}` });
  // Epsilon closures of single NFA states (memoized) and a stamp array for unions without sets.
  const eclose: Array<Int32Array | undefined> = [];
  const closeOf = (x: number): Int32Array => (eclose[x] ??= Int32Array.from(nfa.closure([x], false, false)));
  const stamp = new Int32Array(nfa.bytes.length);
  let gen = 0;
  return explore<D>(
    dState(nfa.closure([start], true, false), true),
    (d) => d.key,
    (d, byte) => {
      gen++;
      const out: number[] = [];
      for (let i = 0; i < d.set.length; i++) {
        const e = nfa.bytes[d.set[i]!]!;
        for (let k = 0; k < e.length; k += 3) {
          if (byte < e[k]! || byte > e[k + 1]!) continue;
          const c = closeOf(e[k + 2]!);
          for (let j = 0; j < c.length; j++) {
            if (stamp[c[j]!] !== gen) {
              stamp[c[j]!] = gen;
              out.push(c[j]!);
            }
          }
        }
      }
      return out.length ? dState(Int32Array.from(out).sort(), false) : null;
    },
    (d) => nfa.closure(Array.from(d.set), d.atStart, true).includes(accept),
    boundaries,
  );
}

/** The intersection of machines (all must accept), explicit and pruned. */
export function intersectMachines(machines: ByteMachine[]): TableMachine {
  const boundaries = machines.flatMap((m) => [...m.boundaries]);
  return explore<number[]>(
    machines.map(() => 0),
    (s) => s.join(','),
    (s, byte) => {
      const out: number[] = [];
      for (let k = 0; k < machines.length; k++) {
        const t = machines[k]!.next(s[k]!, byte);
        if (t < 0) return null;
        out.push(t);
      }
      return out;
    },
    (s) => s.every((x, k) => machines[k]!.final(x)),
    boundaries,
  );
}

/**
 * Digit strings (optionally after a "-") whose value is a multiple of `m`: reads '-' and digits
 * (anything else is rejected); use it intersected with a machine that checks the syntax.
 */
export class MultipleOfMachine implements ByteMachine {
  readonly m: number;
  readonly boundaries = [0, 0x2d, 0x2e, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a];
  constructor(m: number) {
    this.m = m;
  }
  next(state: number, byte: number): number {
    if (byte === 0x2d) return state;
    if (byte < 0x30 || byte > 0x39) return -1;
    return (state * 10 + byte - 0x30) % this.m;
  }
  final(state: number): boolean {
    return state === 0;
  }
  live(): boolean {
    return true;
  }
}

// ------------------------------------------------------------ string length

/**
 * The body of a JSON string (up to, not including, the closing quote) whose value has between
 * `min` and `max` code points. Escapes count as the character they stand for; \u escapes of
 * surrogates are not allowed (astral characters are written as UTF-8). State = count * SUBS +
 * sub-state, the count capped at `min` when there is no `max`.
 */
export class StringLengthMachine implements ByteMachine {
  readonly min: number;
  readonly max: number;
  readonly boundaries: readonly number[];
  constructor(min: number, max: number) {
    this.min = min;
    this.max = max;
    const b = new Set<number>([0]);
    for (let sub = 0; sub < SUBS; sub++) for (let x = 1; x < 256; x++) if (LEN_NEXT[sub * 256 + x] !== LEN_NEXT[sub * 256 + x - 1]) b.add(x);
    this.boundaries = [...b].sort((x, y) => x - y);
  }
  next(state: number, byte: number): number {
    const count = Math.floor(state / SUBS);
    const sub = state - count * SUBS;
    const to = LEN_NEXT[sub * 256 + byte]!;
    if (to < 0) return -1;
    if (to !== 0) {
      // Starting a character at the maximum count can never complete.
      if (sub === 0 && count >= this.max) return -1;
      return count * SUBS + to;
    }
    if (count >= this.max) return -1;
    const c = this.max === Infinity ? Math.min(count + 1, this.min) : count + 1;
    return c * SUBS;
  }
  final(state: number): boolean {
    return state % SUBS === 0 && state / SUBS >= this.min;
  }
  live(state: number): boolean {
    return !(state % SUBS === 0 && state / SUBS >= this.max);
  }
  plainRun(state: number): number {
    return state % SUBS === 0 ? this.max - state / SUBS : 0;
  }
}

/** Sub-states of the JSON string body: 0 boundary, 1 after "\", 2-5 after "\u" + 0-3 hex digits, 6-12 inside UTF-8, 13 after "\uD". */
const SUBS = 14;
/** LEN_NEXT[sub * 256 + byte]: the next sub-state (0 = a character completed) or -1; the quote ends nothing here. */
const LEN_NEXT = (() => {
  const t = new Int8Array(SUBS * 256).fill(-1);
  const set = (sub: number, lo: number, hi: number, to: number): void => {
    for (let b = lo; b <= hi; b++) t[sub * 256 + b] = to;
  };
  set(0, 0x20, 0x7f, 0);
  t[0x22] = -1;
  t[0x5c] = 1;
  set(0, 0xc2, 0xdf, 6);
  t[0xe0] = 9;
  set(0, 0xe1, 0xec, 7);
  t[0xed] = 10;
  set(0, 0xee, 0xef, 7);
  t[0xf0] = 11;
  set(0, 0xf1, 0xf3, 8);
  t[0xf4] = 12;
  for (const c of '"\\/bfnrt') t[256 + c.charCodeAt(0)] = 0;
  t[256 + 0x75] = 2;
  const hex = '0123456789abcdefABCDEF';
  for (let k = 2; k <= 5; k++) for (const c of hex) t[k * 256 + c.charCodeAt(0)] = k === 5 ? 0 : k + 1;
  t[2 * 256 + 0x44] = 13; // \uD
  t[2 * 256 + 0x64] = 13; // \ud
  for (const c of '01234567') t[13 * 256 + c.charCodeAt(0)] = 4; // \uD0-\uD7: not a surrogate
  set(6, 0x80, 0xbf, 0);
  set(7, 0x80, 0xbf, 6);
  set(8, 0x80, 0xbf, 7);
  set(9, 0xa0, 0xbf, 6);
  set(10, 0x80, 0x9f, 6);
  set(11, 0x90, 0xbf, 7);
  set(12, 0x80, 0x8f, 7);
  return t;
})();
