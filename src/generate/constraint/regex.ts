/**
 * The regular-expression subset that JSON-schema `pattern` (and the built-in `format`s) compile
 * from: an AST over code-point sets and a parser for ECMAScript pattern syntax.
 *
 * Supported: literals, `.`, classes `[...]` / `[^...]` with ranges, escapes `\d \w \s \D \W \S`,
 * `\t \n \r \v \f \0 \xHH \uHHHH` and escaped punctuation, groups `(...)`, `(?:...)`,
 * `(?<name>...)`, alternation `|`, quantifiers `? * + {m} {m,} {m,n}` (lazy forms too: laziness
 * does not change which strings match), anchors `^` and `$` (without the m flag: start and end of
 * the string). Anything else (backreferences, lookaround, `\b`, `\p{...}`, ...) is refused with a
 * message naming the construct.
 *
 * Sets hold BMP characters only (no surrogates): an astral character is matched only as a
 * literal. So a generated string means the same under JavaScript's UTF-16 regexes with and
 * without the u flag (zod's and ajv's).
 */

/** A set of code points as sorted, disjoint, non-adjacent inclusive ranges [lo0, hi0, lo1, hi1, ...]. */
export type CodeSet = number[];

export type RegexNode =
  | { t: 'set'; set: CodeSet }
  | { t: 'seq'; items: RegexNode[] }
  | { t: 'alt'; items: RegexNode[] }
  | { t: 'rep'; node: RegexNode; min: number; max: number }
  /** ^ (start of input) and $ (end of input). */
  | { t: 'bol' }
  | { t: 'eol' };

export const BMP_MAX = 0xffff;
const SURROGATES: CodeSet = [0xd800, 0xdfff];

/** Normalize a list of ranges (any order, overlapping) into a CodeSet. */
export function normalize(ranges: number[]): CodeSet {
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i]!, ranges[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    if (out.length && lo <= out[out.length - 1]! + 1) out[out.length - 1] = Math.max(out[out.length - 1]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

export function union(...sets: CodeSet[]): CodeSet {
  return normalize(sets.flat());
}

/** The BMP characters (surrogates excluded) not in `s`. */
export function complement(s: CodeSet): CodeSet {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < s.length; i += 2) {
    if (s[i]! > next) out.push(next, s[i]! - 1);
    next = s[i + 1]! + 1;
  }
  if (next <= BMP_MAX) out.push(next, BMP_MAX);
  return minus(out, SURROGATES);
}

export function intersect(a: CodeSet, b: CodeSet): CodeSet {
  const out: number[] = [];
  for (let i = 0; i < a.length; i += 2) {
    for (let j = 0; j < b.length; j += 2) {
      const lo = Math.max(a[i]!, b[j]!);
      const hi = Math.min(a[i + 1]!, b[j + 1]!);
      if (lo <= hi) out.push(lo, hi);
    }
  }
  return normalize(out);
}

export function minus(a: CodeSet, b: CodeSet): CodeSet {
  return intersect(a, complement0(b));
}

/** Complement over every code point (used by minus; may include surrogates and astral ones). */
function complement0(s: CodeSet): CodeSet {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < s.length; i += 2) {
    if (s[i]! > next) out.push(next, s[i]! - 1);
    next = s[i + 1]! + 1;
  }
  if (next <= 0x10ffff) out.push(next, 0x10ffff);
  return out;
}

const ch = (c: string): number => c.codePointAt(0)!;
export const DIGIT: CodeSet = [ch('0'), ch('9')];
export const WORD: CodeSet = normalize([ch('0'), ch('9'), ch('A'), ch('Z'), ch('_'), ch('_'), ch('a'), ch('z')]);
/** ECMAScript's WhiteSpace and LineTerminator (what \s matches). */
export const SPACE: CodeSet = normalize([9, 13, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff]);
/** What `.` matches: everything but line terminators. */
export const DOT: CodeSet = complement([10, 10, 13, 13, 0x2028, 0x2029]);
export const ANY: CodeSet = complement([]);

// ------------------------------------------------------------ AST helpers

export const set = (s: CodeSet): RegexNode => ({ t: 'set', set: s });
export const seq = (...items: RegexNode[]): RegexNode => (items.length === 1 ? items[0]! : { t: 'seq', items });
export const alt = (...items: RegexNode[]): RegexNode => (items.length === 1 ? items[0]! : { t: 'alt', items });
export const rep = (node: RegexNode, min: number, max: number): RegexNode => ({ t: 'rep', node, min, max });
export const EMPTY: RegexNode = { t: 'seq', items: [] };
/** The characters of `s`, one set each. */
export function lit(s: string): RegexNode {
  return seq(...[...s].map((c) => set([ch(c), ch(c)])));
}

// ------------------------------------------------------------ parser

export class RegexSyntaxError extends Error {}

/** Largest {m,n} bound accepted (larger ones would make huge automata). */
export const MAX_REPEAT = 1000;

/**
 * Parse an ECMAScript pattern (JSON Schema's `pattern`) into an AST that matches the same
 * strings when anchored at both ends: unanchored patterns are wrapped in `[\s\S]*` on the
 * unanchored side(s), as RegExp.prototype.test searches. Throws RegexSyntaxError naming the first
 * unsupported construct.
 */
export function parsePattern(pattern: string): RegexNode {
  const p = new Parser(pattern);
  const node = p.alternation();
  if (p.i < p.s.length) throw p.error(p.s[p.i] === ')' ? 'an unmatched ")"' : `"${p.s[p.i]}"`);
  const any = rep(set(ANY), 0, Infinity);
  return seq(any, node, any);
}

class Parser {
  readonly s: string[];
  i = 0;
  constructor(pattern: string) {
    this.s = [...pattern];
  }

  error(what: string): RegexSyntaxError {
    return new RegexSyntaxError(`${what} at offset ${this.s.slice(0, this.i).join('').length} is not supported`);
  }

  private peek(): string | undefined {
    return this.s[this.i];
  }

  alternation(): RegexNode {
    const items = [this.sequence()];
    while (this.peek() === '|') {
      this.i++;
      items.push(this.sequence());
    }
    return alt(...items);
  }

  private sequence(): RegexNode {
    const items: RegexNode[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === '|' || c === ')') break;
      let atom = this.atom();
      atom = this.quantified(atom);
      items.push(atom);
    }
    return items.length === 1 ? items[0]! : { t: 'seq', items };
  }

  private quantified(atom: RegexNode): RegexNode {
    for (;;) {
      const c = this.peek();
      let min: number;
      let max: number;
      if (c === '*') [min, max] = [0, Infinity];
      else if (c === '+') [min, max] = [1, Infinity];
      else if (c === '?') [min, max] = [0, 1];
      else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i).join(''));
        if (!m) throw this.error('a "{" that is not a quantifier {m}, {m,} or {m,n} (escape it as \\{)');
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (min > max) throw this.error(`the quantifier ${m[0]} (min > max)`);
        if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw this.error(`the quantifier ${m[0]} (bounds above ${MAX_REPEAT})`);
        this.i += m[0].length - 1;
      } else return atom;
      if (atom.t === 'bol' || atom.t === 'eol') throw this.error('a quantified anchor');
      this.i++;
      if (this.peek() === '?') this.i++; // lazy: the same language
      atom = rep(atom, min, max);
    }
  }

  private atom(): RegexNode {
    const c = this.s[this.i++]!;
    switch (c) {
      case '^':
        return { t: 'bol' };
      case '$':
        return { t: 'eol' };
      case '.':
        return set(DOT);
      case '[':
        return set(this.klass());
      case '(': {
        if (this.peek() === '?') {
          const rest = this.s.slice(this.i, this.i + 3).join('');
          if (rest.startsWith('?:')) this.i += 2;
          else if (rest.startsWith('?<') && rest !== '?<=' && rest !== '?<!') {
            const m = /^\?<([A-Za-z_$][\w$]*)>/.exec(this.s.slice(this.i).join(''));
            if (!m) throw this.error('a malformed group name');
            this.i += m[0].length;
          } else throw this.error(`the group "(${rest.startsWith('?=') || rest.startsWith('?!') ? rest.slice(0, 2) : rest}" (lookaround)`);
        }
        const inner = this.alternation();
        if (this.peek() !== ')') throw this.error('an unclosed "("');
        this.i++;
        return inner;
      }
      case ')':
        throw this.error('an unmatched ")"');
      case '*':
      case '+':
      case '?':
        throw this.error(`a quantifier "${c}" with nothing before it`);
      case '{':
        throw this.error('a "{" with nothing before it');
      case '\\':
        return set(this.escape(false));
      default:
        return set([ch(c), ch(c)]);
    }
  }

  /** After "\": a class escape or a single character. */
  private escape(inClass: boolean): CodeSet {
    const c = this.s[this.i++];
    if (c === undefined) throw this.error('a "\\" at the end');
    const one = (x: number): CodeSet => [x, x];
    switch (c) {
      case 'd':
        return DIGIT;
      case 'D':
        return complement(DIGIT);
      case 'w':
        return WORD;
      case 'W':
        return complement(WORD);
      case 's':
        return SPACE;
      case 'S':
        return complement(SPACE);
      case 't':
        return one(9);
      case 'n':
        return one(10);
      case 'v':
        return one(11);
      case 'f':
        return one(12);
      case 'r':
        return one(13);
      case '0':
        if (/\d/.test(this.peek() ?? '')) throw this.error('an octal escape');
        return one(0);
      case 'x':
      case 'u': {
        const n = c === 'x' ? 2 : 4;
        const hex = this.s.slice(this.i, this.i + n).join('');
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) throw this.error(`the escape "\\${c}${hex}"`);
        this.i += n;
        const v = parseInt(hex, 16);
        if (v >= 0xd800 && v <= 0xdfff) throw this.error(`the surrogate escape "\\u${hex}"`);
        return one(v);
      }
      case 'b':
        if (inClass) return one(8);
        throw this.error('the word boundary "\\b"');
      default:
        if (/[$^\\.*+?()[\]{}|/-]/.test(c)) return one(ch(c));
        throw this.error(`the escape "\\${c}"`);
    }
  }

  /** After "[": the class's set (BMP only). */
  private klass(): CodeSet {
    let negate = false;
    if (this.peek() === '^') {
      negate = true;
      this.i++;
    }
    const parts: number[] = [];
    let first = true;
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) throw this.error('an unclosed "["');
      if (c === ']' && !first) {
        this.i++;
        break;
      }
      if (c === ']') {
        // "[]" matches nothing in JavaScript, "[^]" everything
        this.i++;
        return negate ? ANY : [];
      }
      first = false;
      const lo = this.classAtom();
      if (this.peek() === '-' && this.s[this.i + 1] !== undefined && this.s[this.i + 1] !== ']') {
        this.i++;
        const hi = this.classAtom();
        if (lo.length !== 2 || lo[0] !== lo[1] || hi.length !== 2 || hi[0] !== hi[1]) throw this.error('a class range with a class escape at one end');
        if (lo[0]! > hi[0]!) throw this.error('a class range out of order');
        parts.push(lo[0]!, hi[0]!);
      } else parts.push(...lo);
    }
    const s = intersect(normalize(parts), complement([]));
    return negate ? complement(s) : s;
  }

  private classAtom(): CodeSet {
    const c = this.s[this.i++]!;
    if (c === '\\') return this.escape(true);
    if (c === '[') throw this.error('a "[" inside a class (escape it as \\[)');
    const v = ch(c);
    return [v, v];
  }
}
