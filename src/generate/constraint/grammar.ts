/**
 * A byte-level context-free grammar and its pushdown recognizer (the machinery behind JSON mode
 * and JSON-schema constrained output).
 *
 * A grammar is a set of rules; a rule is a list of alternatives; an alternative is a sequence of
 * elements: a byte-set terminal, a reference to a rule, STR - a built-in JSON string body
 * (characters, escapes and strictly valid UTF-8 up to and including the closing quote), or a
 * MACHINE - a byte machine (machine.ts: bounded numbers, constrained string bodies) that may end
 * after any byte that leaves it in a final state. The
 * recognizer works like llama.cpp's grammar sampler: a state is a set of stacks, each stack a
 * list of grammar positions whose top is a terminal (or STR) waiting for the next byte.
 *
 * Everything is interned, so a state is a cheap immutable value:
 *   - stacks are hash-consed (same position and same parent -> the same object);
 *   - states are interned by their stack set, and remember their transitions (state.next[byte]),
 *     so walking a token trie mostly reads cached transitions;
 *   - a right-recursive loop (the characters of a string, the members of an object) returns to
 *     the very same state object, so text inside a string costs one array read per byte.
 * The caches are bounded (MAX_STATES); past the bound they are dropped and rebuilt on demand.
 */
import { UsageError } from '../../errors.js';
import type { ByteMachine } from './machine.js';

/** Element kinds of the flattened grammar. */
const END = 0;
const TERM = 1;
const REF = 2;
const STR = 3;
const MACHINE = 4;

export type Elem = { kind: 'term'; set: number } | { kind: 'ref'; rule: number } | { kind: 'str'; sub: number } | { kind: 'machine'; machine: ByteMachine };

// ---------------------------------------------------------------- the JSON string body automaton

/** Sub-states of STR: 0 = at a character boundary; others = inside an escape or a UTF-8 character. */
export const STR_BOUNDARY = 0;
const STR_ESC = 1; // after '\'
// 2..5: after '\u' with 0..3 hex digits
const STR_CONT1 = 6; // one continuation byte missing
const STR_CONT2 = 7;
const STR_CONT3 = 8;
const STR_E0 = 9; // after E0: A0-BF, then one more
const STR_ED = 10; // after ED: 80-9F (no surrogates), then one more
const STR_F0 = 11; // after F0: 90-BF, then two more
const STR_F4 = 12; // after F4: 80-8F, then two more
const STR_SUBSTATES = 13;
/** STR step results besides a sub-state. */
const FAIL = -1;
const DONE = -2;

/** STR_NEXT[sub * 256 + byte]: the next sub-state, FAIL, or DONE (the closing quote). */
const STR_NEXT = (() => {
  const t = new Int8Array(STR_SUBSTATES * 256).fill(FAIL);
  const set = (sub: number, lo: number, hi: number, to: number): void => {
    for (let b = lo; b <= hi; b++) t[sub * 256 + b] = to;
  };
  set(0, 0x20, 0x7f, 0);
  t[0x22] = DONE; // "
  t[0x5c] = STR_ESC; // \
  set(0, 0xc2, 0xdf, STR_CONT1);
  t[0xe0] = STR_E0;
  set(0, 0xe1, 0xec, STR_CONT2);
  t[0xed] = STR_ED;
  set(0, 0xee, 0xef, STR_CONT2);
  t[0xf0] = STR_F0;
  set(0, 0xf1, 0xf3, STR_CONT3);
  t[0xf4] = STR_F4;
  for (const c of '"\\/bfnrt') t[STR_ESC * 256 + c.charCodeAt(0)] = 0;
  t[STR_ESC * 256 + 0x75] = 2; // u
  for (let k = 2; k <= 5; k++) {
    const to = k === 5 ? 0 : k + 1;
    for (const c of '0123456789abcdefABCDEF') t[k * 256 + c.charCodeAt(0)] = to;
  }
  set(STR_CONT1, 0x80, 0xbf, 0);
  set(STR_CONT2, 0x80, 0xbf, STR_CONT1);
  set(STR_CONT3, 0x80, 0xbf, STR_CONT2);
  set(STR_E0, 0xa0, 0xbf, STR_CONT1);
  set(STR_ED, 0x80, 0x9f, STR_CONT1);
  set(STR_F0, 0x90, 0xbf, STR_CONT2);
  set(STR_F4, 0x80, 0x8f, STR_CONT2);
  return t;
})();

/** The STR sub-state after a UTF-8 lead byte (0xC2..0xF4), for grammars that start a string body mid-character. */
export function strSubAfterLead(lead: number): number {
  const s = STR_NEXT[lead]!;
  if (s < STR_CONT1) throw new Error(`0x${lead.toString(16)} is not a UTF-8 lead byte`);
  return s;
}

/**
 * The length of the longest suffix of `bytes` that is a run of complete "plain" string
 * characters: characters that leave STR at a boundary (not a quote, not a backslash, not a
 * control character, valid UTF-8). Returns the offset where that suffix starts.
 */
export function plainSuffixStart(bytes: Uint8Array, start: number, end: number): number {
  let from = start;
  let k = start;
  while (k < end) {
    let sub = STR_NEXT[bytes[k]!]!;
    let j = k + 1;
    while (sub > STR_ESC && j < end) sub = STR_NEXT[sub * 256 + bytes[j++]!]!;
    if (sub === 0 && j > k) {
      k = j;
      continue;
    }
    // Not a complete plain character at k: the suffix can only start after it.
    k = sub < 0 || sub === STR_ESC ? k + 1 : j;
    from = k;
  }
  return from;
}

// ---------------------------------------------------------------- building

export class GrammarBuilder {
  private readonly rules: Array<Elem[][] | undefined> = [];
  readonly names: string[] = [];
  private readonly sets: Uint8Array[] = [];
  private readonly setIndex = new Map<string, number>();

  /** A new rule without alternatives yet (for recursion); returns its id. */
  declare(name: string): number {
    this.rules.push(undefined);
    this.names.push(name);
    return this.rules.length - 1;
  }

  define(rule: number, alts: Elem[][]): void {
    this.rules[rule] = alts;
  }

  /** A rule with these alternatives; returns a reference to it. */
  rule(name: string, alts: Elem[][]): Elem {
    const r = this.declare(name);
    this.define(r, alts);
    return { kind: 'ref', rule: r };
  }

  get ruleCount(): number {
    return this.rules.length;
  }

  /** A terminal matching one byte of `bytes`. */
  byteSet(bytes: Iterable<number>): Elem {
    const s = new Uint8Array(256);
    for (const b of bytes) s[b] = 1;
    const key = Buffer.from(s).toString('latin1');
    let i = this.setIndex.get(key);
    if (i === undefined) {
      i = this.sets.length;
      this.sets.push(s);
      this.setIndex.set(key, i);
    }
    return { kind: 'term', set: i };
  }

  /** A terminal matching the bytes of inclusive ranges [lo, hi] (characters or numbers). */
  range(...ranges: Array<[number | string, number | string]>): Elem {
    const bytes: number[] = [];
    for (const [lo, hi] of ranges) {
      const a = typeof lo === 'string' ? lo.charCodeAt(0) : lo;
      const b = typeof hi === 'string' ? hi.charCodeAt(0) : hi;
      for (let x = a; x <= b; x++) bytes.push(x);
    }
    return this.byteSet(bytes);
  }

  /** The UTF-8 bytes of `s`, one terminal per byte. */
  literal(s: string): Elem[] {
    return [...Buffer.from(s, 'utf8')].map((b) => this.byteSet([b]));
  }

  /** The JSON string body (after the opening quote), from a STR sub-state. */
  str(sub = STR_BOUNDARY): Elem {
    return { kind: 'str', sub };
  }

  /** A byte machine (its state is the stack's sub-state; it starts in state 0). */
  machine(m: ByteMachine): Elem {
    return { kind: 'machine', machine: m };
  }

  build(root: number): Grammar {
    const rules = this.rules.map((r, i) => {
      if (!r) throw new Error(`grammar rule ${this.names[i]} was declared but never defined`);
      return r;
    });
    return new Grammar(rules, this.names, this.sets, root);
  }
}

// ---------------------------------------------------------------- the recognizer

/** One stack of grammar positions: `pos` (and `sub` for STR) on top, `parent` below. */
export class Stack {
  readonly pos: number;
  readonly sub: number;
  readonly parent: Stack | null;
  readonly id: number;
  kids: Map<number, Stack> | undefined;
  constructor(pos: number, sub: number, parent: Stack | null, id: number) {
    this.pos = pos;
    this.sub = sub;
    this.parent = parent;
    this.id = id;
  }
}

/** A recognizer state: the stacks that can read a next byte, and whether the input may end here. */
export class GrammarState {
  readonly grammar: Grammar;
  readonly stacks: readonly Stack[];
  /** The input read so far is a complete sentence (the value is complete). */
  readonly accept: boolean;
  /** Exactly one stack, inside a free JSON string at a character boundary: plain characters loop back to this state. */
  readonly inPlainString: boolean;
  /** Any run of up to this many plain string characters is readable from here (Infinity in a free string; 0: no promise). */
  readonly plainChars: number;
  /** Cached transitions: the state after a byte, DEAD_STATE when the byte is rejected. */
  next: Array<GrammarState | null | undefined> | undefined;
  constructor(grammar: Grammar, stacks: readonly Stack[], accept: boolean, inPlainString: boolean, plainChars: number) {
    this.grammar = grammar;
    this.stacks = stacks;
    this.accept = accept;
    this.inPlainString = inPlainString;
    this.plainChars = plainChars;
  }

  /** True when nothing more can be read: the value is complete and cannot be extended. */
  get finished(): boolean {
    return this.accept && this.stacks.length === 0;
  }

  /** The state after one byte, or null when the byte is not allowed. */
  step(byte: number): GrammarState | null {
    const next = (this.next ??= new Array<GrammarState | null | undefined>(256));
    const cached = next[byte];
    if (cached !== undefined) return cached;
    const s = this.grammar.transition(this, byte);
    next[byte] = s;
    return s;
  }

  /** The state after bytes[start..end), or null. */
  stepBytes(bytes: Uint8Array, start = 0, end = bytes.length): GrammarState | null {
    let s: GrammarState | null = this;
    for (let i = start; i < end && s; i++) s = s.step(bytes[i]!);
    return s;
  }
}

/** Interned states past which the caches are dropped (each caches up to 256 transitions). */
const MAX_STATES = 50_000;
/** Nested rule expansions without reading a byte before the grammar is declared left-recursive. */
const MAX_EXPANSION_DEPTH = 4096;

export class Grammar {
  readonly names: readonly string[];
  readonly ruleCount: number;
  /** Flattened sequences: kind and argument (set index, rule id, STR start sub-state) per position. */
  private readonly kind: Uint8Array;
  private readonly arg: Int32Array;
  /** Alternative start positions per rule. */
  private readonly altStarts: Int32Array[];
  private readonly sets: Uint8Array;
  private readonly machines: ByteMachine[] = [];
  private readonly root: number;
  private rootKids = new Map<number, Stack>();
  private allStacks: Stack[] = [];
  private states = new Map<string, GrammarState>();
  private nextStackId = 0;
  private initialState: GrammarState | null | undefined;

  constructor(rules: readonly Elem[][][], names: readonly string[], sets: readonly Uint8Array[], root: number) {
    this.names = names;
    this.ruleCount = rules.length;
    this.root = root;
    this.sets = new Uint8Array(sets.length * 256);
    sets.forEach((s, i) => this.sets.set(s, i * 256));
    let size = 0;
    for (const r of rules) for (const alt of r) size += alt.length + 1;
    this.kind = new Uint8Array(size);
    this.arg = new Int32Array(size);
    this.altStarts = [];
    let p = 0;
    for (const r of rules) {
      const starts = new Int32Array(r.length);
      r.forEach((alt, a) => {
        starts[a] = p;
        for (const e of alt) {
          if (e.kind === 'term') {
            this.kind[p] = TERM;
            this.arg[p] = e.set;
          } else if (e.kind === 'ref') {
            this.kind[p] = REF;
            this.arg[p] = e.rule;
          } else if (e.kind === 'machine') {
            let m = this.machines.indexOf(e.machine);
            if (m < 0) m = this.machines.push(e.machine) - 1;
            this.kind[p] = MACHINE;
            this.arg[p] = m;
          } else {
            this.kind[p] = STR;
            this.arg[p] = e.sub;
          }
          p++;
        }
        this.kind[p++] = END;
      });
      this.altStarts.push(starts);
    }
    this.checkLeftRecursion(rules);
  }

  /** Reject rules that can reach themselves without reading a byte (they would expand forever). */
  private checkLeftRecursion(rules: readonly Elem[][][]): void {
    const n = rules.length;
    const nullable = new Uint8Array(n);
    for (let changed = true; changed; ) {
      changed = false;
      for (let r = 0; r < n; r++) {
        if (nullable[r]) continue;
        if (rules[r]!.some((alt) => alt.every((e) => e.kind === 'ref' && nullable[e.rule]))) {
          nullable[r] = 1;
          changed = true;
        }
      }
    }
    const edges: number[][] = rules.map((alts) => {
      const out: number[] = [];
      for (const alt of alts) {
        for (const e of alt) {
          if (e.kind !== 'ref') break;
          out.push(e.rule);
          if (!nullable[e.rule]) break;
        }
      }
      return out;
    });
    const color = new Uint8Array(n); // 0 new, 1 on the DFS path, 2 done
    for (let start = 0; start < n; start++) {
      if (color[start]) continue;
      const stack: Array<[number, number]> = [[start, 0]];
      color[start] = 1;
      while (stack.length) {
        const top = stack[stack.length - 1]!;
        const [r, i] = top;
        if (i < edges[r]!.length) {
          top[1]++;
          const s = edges[r]![i]!;
          if (color[s] === 1) throw new UsageError(`the schema is recursive without any text in between (at ${this.names[s]}): it describes no finite JSON value`);
          if (color[s] === 0) {
            color[s] = 1;
            stack.push([s, 0]);
          }
        } else {
          color[r] = 2;
          stack.pop();
        }
      }
    }
  }

  /** The state before any byte is read (null if the grammar accepts nothing). */
  initial(): GrammarState | null {
    if (this.initialState === undefined) {
      const out = new Set<Stack>();
      let accept = false;
      for (const a of this.altStarts[this.root]!) accept = this.expand(a, null, out, 0) || accept;
      this.initialState = this.intern(out, accept);
    }
    return this.initialState;
  }

  /** Hash-consed stack node. */
  private stack(pos: number, sub: number, parent: Stack | null): Stack {
    const key = sub * this.kind.length + pos;
    let kids: Map<number, Stack>;
    if (parent === null) kids = this.rootKids;
    else kids = parent.kids ??= new Map();
    let s = kids.get(key);
    if (!s) {
      s = new Stack(pos, sub, parent, this.nextStackId++);
      kids.set(key, s);
      this.allStacks.push(s);
    }
    return s;
  }

  /**
   * Add to `out` every stack reachable from position `pos` (continuation `parent`) whose top
   * reads a byte; returns whether the end of input is reachable without reading one.
   */
  private expand(pos: number, parent: Stack | null, out: Set<Stack>, depth: number): boolean {
    for (;;) {
      const k = this.kind[pos]!;
      if (k === END) {
        // Continuations are always fresh positions of a sequence.
        if (parent === null) return true;
        pos = parent.pos;
        parent = parent.parent;
        continue;
      }
      if (k === MACHINE) {
        const m = this.machines[this.arg[pos]!]!;
        if (m.live(0)) out.add(this.stack(pos, 0, parent));
        if (!m.final(0)) return false;
        pos++;
        continue;
      }
      if (k === TERM || k === STR) {
        // A STR element starts in its own sub-state (a string body may begin mid-character).
        out.add(this.stack(pos, k === STR ? this.arg[pos]! : 0, parent));
        return false;
      }
      // REF: push the continuation (unless it is the end of the sequence: a tail call) and expand the rule.
      if (depth > MAX_EXPANSION_DEPTH) throw new UsageError('the schema nests too deeply without any text in between');
      const cont = this.kind[pos + 1] === END ? parent : this.stack(pos + 1, 0, parent);
      let accept = false;
      for (const a of this.altStarts[this.arg[pos]!]!) accept = this.expand(a, cont, out, depth + 1) || accept;
      return accept;
    }
  }

  /** The state after `byte` (uncached; use state.step). */
  transition(state: GrammarState, byte: number): GrammarState | null {
    const out = new Set<Stack>();
    let accept = false;
    for (const st of state.stacks) {
      const pos = st.pos;
      const k = this.kind[pos];
      if (k === TERM) {
        if (this.sets[this.arg[pos]! * 256 + byte]) accept = this.expand(pos + 1, st.parent, out, 0) || accept;
      } else if (k === MACHINE) {
        const m = this.machines[this.arg[pos]!]!;
        const r = m.next(st.sub, byte);
        if (r >= 0) {
          if (m.live(r)) out.add(this.stack(pos, r, st.parent));
          if (m.final(r)) accept = this.expand(pos + 1, st.parent, out, 0) || accept;
        }
      } else {
        const r = STR_NEXT[st.sub * 256 + byte]!;
        if (r === DONE) accept = this.expand(pos + 1, st.parent, out, 0) || accept;
        else if (r >= 0) out.add(this.stack(pos, r, st.parent));
      }
    }
    return this.intern(out, accept);
  }

  private intern(out: Set<Stack>, accept: boolean): GrammarState | null {
    if (out.size === 0 && !accept) return null;
    const stacks = [...out].sort((a, b) => a.id - b.id);
    let key = accept ? 'A' : '';
    for (const s of stacks) key += `${s.id},`;
    let state = this.states.get(key);
    if (!state) {
      if (this.states.size >= MAX_STATES) this.dropCaches();
      const plain = stacks.length === 1 && !accept && this.kind[stacks[0]!.pos] === STR && stacks[0]!.sub === STR_BOUNDARY;
      state = new GrammarState(this, stacks, accept, plain, plain ? Infinity : accept ? 0 : this.machinePlainChars(stacks));
      this.states.set(key, state);
    }
    return state;
  }

  /**
   * For a string under a machine (minLength / maxLength): the machine's plain-run promise when
   * its stack is the only one that can read a plain character (the others are terminals such as
   * the closing quote); 0 otherwise.
   */
  private machinePlainChars(stacks: readonly Stack[]): number {
    let run = 0;
    for (const st of stacks) {
      const k = this.kind[st.pos];
      if (k === MACHINE) {
        const m = this.machines[this.arg[st.pos]!]!;
        if (run > 0 || !m.plainRun) return 0;
        run = m.plainRun(st.sub);
        if (run <= 0) return 0;
      } else if (k === TERM) {
        const set = this.arg[st.pos]! * 256;
        for (let b = 0x20; b < 0xf5; b++) if (this.sets[set + b] && b !== 0x22 && b !== 0x5c && (b < 0x80 || b >= 0xc2)) return 0;
      } else return 0;
    }
    return run;
  }

  /** Forget interned states and stacks (live states stay valid; they just stop sharing). */
  private dropCaches(): void {
    for (const s of this.states.values()) s.next = undefined;
    for (const s of this.allStacks) s.kids = undefined;
    this.states = new Map();
    this.allStacks = [];
    this.rootKids = new Map();
    if (this.initialState) this.states.set('initial', this.initialState);
  }

  /** Interned states right now (for tests and benchmarks). */
  get stateCount(): number {
    return this.states.size;
  }

  /** Whether the grammar accepts the whole byte string. */
  accepts(bytes: Uint8Array | string): boolean {
    const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    const s = this.initial()?.stepBytes(b) ?? null;
    return s !== null && s.accept;
  }

  /** Whether the byte string is a prefix of some sentence of the grammar. */
  acceptsPrefix(bytes: Uint8Array | string): boolean {
    const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    return (this.initial()?.stepBytes(b) ?? null) !== null;
  }
}
