/**
 * The value keywords of JSON Schema as byte machines (machine.ts): numeric bounds and integer
 * multipleOf, string length, pattern and format.
 *
 * Bounds are exact. A bound (a JSON number, i.e. a double) is read as the shortest decimal that
 * round-trips (String(x)); a value's text is accepted only when its exact decimal value is
 * >= that decimal (<= for maxima), so the double it parses to is >= the bound, as a validator
 * compares. Exclusive bounds use the next double inward (`exclusiveMinimum: 0` -> >= 5e-324).
 * Bounded numbers are written in fixed point (no exponent), with at most 16 integer and 16
 * fraction digits, like unbounded ones.
 */
import { DIGIT, alt, lit, parsePattern, rep, seq, set, EMPTY, type RegexNode } from './regex.js';

/** Largest magnitude (integer digits) and the fraction digits of generated numbers. */
export const INT_DIGITS = 16;
export const FRAC_DIGITS = 16;
const TEN = 10n;
const FRAC_SCALE = TEN ** BigInt(FRAC_DIGITS);
/** Largest integer part: 16 nines. */
const MAX_INT = TEN ** BigInt(INT_DIGITS) - 1n;

// ------------------------------------------------------------ exact decimals

/** The exact value of `x`'s shortest decimal, as m * 10^e. */
function decimalOf(x: number): { m: bigint; e: number } {
  const r = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(x));
  if (!r) throw new Error(`not a finite number: ${x}`);
  const frac = r[3] ?? '';
  const m = BigInt(`${r[1]}${r[2]}${frac}`);
  return { m, e: Number(r[4] ?? 0) - frac.length };
}

/** ceil or floor of x * 10^scale, as a BigInt. */
function scaled(x: number, scale: number, round: 'ceil' | 'floor'): bigint {
  const { m, e } = decimalOf(x);
  const k = e + scale;
  if (k >= 0) return m * TEN ** BigInt(k);
  const d = TEN ** BigInt(-k);
  let q = m / d; // truncates toward zero
  const rem = m % d;
  if (rem !== 0n && round === 'ceil' && m > 0n) q += 1n;
  if (rem !== 0n && round === 'floor' && m < 0n) q -= 1n;
  return q;
}

/** The next double after x toward +Infinity (dir 1) or -Infinity (dir -1). */
export function nextDouble(x: number, dir: 1 | -1): number {
  if (x === 0) return dir * Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const b = new BigInt64Array(f.buffer);
  b[0] = b[0]! + ((x > 0) === (dir > 0) ? 1n : -1n);
  return f[0]!;
}

export interface Bounds {
  /** Lower bounds as [value, exclusive] (all must hold). */
  lower: Array<[number, boolean]>;
  upper: Array<[number, boolean]>;
}

/**
 * The AST of numbers (integers when `integer`) written in fixed point within the bounds, or
 * undefined when none exists.
 */
export function boundedNumber(bounds: Bounds, integer: boolean): RegexNode | undefined {
  const scale = integer ? 0 : FRAC_DIGITS;
  const unit = integer ? 1n : FRAC_SCALE;
  const limit = (MAX_INT + 1n) * unit - 1n;
  let lo = -limit;
  let hi = limit;
  for (const [v, exclusive] of bounds.lower) {
    const b = exclusive ? nextDouble(v, 1) : v;
    if (Number.isFinite(b)) lo = bigMax(lo, scaled(b, scale, 'ceil'));
    else if (b > 0) return undefined;
  }
  for (const [v, exclusive] of bounds.upper) {
    const b = exclusive ? nextDouble(v, -1) : v;
    if (Number.isFinite(b)) hi = bigMin(hi, scaled(b, scale, 'floor'));
    else if (b < 0) return undefined;
  }
  if (lo > hi) return undefined;
  const parts: RegexNode[] = [];
  if (hi >= 0n) parts.push(unsignedDecimal(bigMax(lo, 0n), hi, unit, integer));
  if (lo <= 0n) parts.push(seq(lit('-'), unsignedDecimal(bigMax(-hi, 0n), -lo, unit, integer)));
  return alt(...parts);
}

const bigMax = (a: bigint, b: bigint): bigint => (a > b ? a : b);
const bigMin = (a: bigint, b: bigint): bigint => (a < b ? a : b);

/** Decimal texts (no sign) with values in [a, b], in units of 1 / unit (a, b >= 0). */
function unsignedDecimal(a: bigint, b: bigint, unit: bigint, integer: boolean): RegexNode {
  if (integer) return uintRange(a, b);
  const aI = a / unit;
  const bI = b / unit;
  const pad = (f: bigint): string => f.toString().padStart(FRAC_DIGITS, '0');
  const aF = pad(a % unit);
  const bF = pad(b % unit);
  const top = '9'.repeat(FRAC_DIGITS);
  const bottom = '0'.repeat(FRAC_DIGITS);
  if (aI === bI) return seq(uintRange(aI, aI), fraction(aF, bF));
  const parts = [seq(uintRange(aI, aI), fraction(aF, top))];
  if (aI + 1n <= bI - 1n) parts.push(seq(uintRange(aI + 1n, bI - 1n), fraction(bottom, top)));
  parts.push(seq(uintRange(bI, bI), fraction(bottom, bF)));
  return alt(...parts);
}

const digitSet = (lo: number, hi: number): RegexNode => set([0x30 + lo, 0x30 + hi]);
const ANY_DIGIT = set(DIGIT);

/** Canonical decimal integers (no leading zeros) in [x, y], x <= y, both >= 0. */
function uintRange(x: bigint, y: bigint): RegexNode {
  const parts: RegexNode[] = [];
  const xs = x.toString();
  const ys = y.toString();
  for (let len = xs.length; len <= ys.length; len++) {
    const lo = len === xs.length ? xs : `1${'0'.repeat(len - 1)}`;
    const hi = len === ys.length ? ys : '9'.repeat(len);
    parts.push(sameLength(lo, hi));
  }
  return alt(...parts);
}

/** Digit strings of one length between lo and hi (inclusive, same length). */
function sameLength(lo: string, hi: string): RegexNode {
  if (lo.length === 0) return EMPTY;
  const a = Number(lo[0]);
  const b = Number(hi[0]);
  const restLo = lo.slice(1);
  const restHi = hi.slice(1);
  if (a === b) return seq(digitSet(a, a), sameLength(restLo, restHi));
  const n = restLo.length;
  const zeros = /^0*$/.test(restLo);
  const nines = /^9*$/.test(restHi);
  const parts: RegexNode[] = [];
  const first = zeros ? a : a + 1;
  const last = nines ? b : b - 1;
  if (!zeros) parts.push(seq(digitSet(a, a), sameLength(restLo, '9'.repeat(n))));
  if (first <= last) parts.push(seq(digitSet(first, last), rep(ANY_DIGIT, n, n)));
  if (!nines) parts.push(seq(digitSet(b, b), sameLength('0'.repeat(n), restHi)));
  return alt(...parts);
}

/**
 * The optional fraction ("" or "." and 1-16 digits) whose value, padded to 16 digits, lies
 * in [lo, hi] (16-digit strings).
 */
function fraction(lo: string, hi: string): RegexNode {
  const body = fracDigits(lo, hi, 0, true, true);
  const parts: RegexNode[] = [];
  if (/^0*$/.test(lo)) parts.push(EMPTY);
  if (body) parts.push(seq(lit('.'), body));
  return alt(...parts);
}

/**
 * Non-empty digit strings t of at most 16 - i digits whose 16 - i digit padding is >= lo[i..]
 * (when `tightLo`) and <= hi[i..] (when `tightHi`); null when there is none.
 */
function fracDigits(lo: string, hi: string, i: number, tightLo: boolean, tightHi: boolean): RegexNode | null {
  const n = FRAC_DIGITS - i;
  if (n === 0) return null;
  // A lower bound of zeros or an upper bound of nines from here on constrains nothing.
  if (tightLo && /^0*$/.test(lo.slice(i))) tightLo = false;
  if (tightHi && /^9*$/.test(hi.slice(i))) tightHi = false;
  if (!tightLo && !tightHi) return rep(ANY_DIGIT, 1, n);
  const a = tightLo ? Number(lo[i]) : 0;
  const b = tightHi ? Number(hi[i]) : 9;
  const parts: RegexNode[] = [];
  // t = d + rest, rest possibly empty.
  const rest = (d: number): RegexNode | null => {
    const tl = tightLo && d === a;
    const th = tightHi && d === b;
    if (!tl && !th) return rep(ANY_DIGIT, 0, n - 1);
    const more = fracDigits(lo, hi, i + 1, tl, th);
    // An empty rest pads with zeros: fine unless the lower bound's rest is not all zeros.
    const emptyOk = !tl || /^0*$/.test(lo.slice(i + 1));
    const alts: RegexNode[] = [];
    if (emptyOk) alts.push(EMPTY);
    if (more) alts.push(more);
    return alts.length ? alt(...alts) : null;
  };
  const add = (d1: number, d2: number): void => {
    if (d1 > d2) return;
    const r = rest(d1);
    if (r) parts.push(seq(digitSet(d1, d2), r));
  };
  if (a === b) add(a, a);
  else {
    add(a, a);
    add(a + 1, b - 1);
    add(b, b);
  }
  return parts.length ? alt(...parts) : null;
}

// ------------------------------------------------------------ formats

/** The supported `format`s as patterns (subsets of what ajv-formats and zod accept, see README). */
const DATE = '(?:\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|02-(?:0[1-9]|1\\d|2[0-8]))|(?:\\d\\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)';
const TIME = '(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d+)?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)';
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
export const FORMATS: Readonly<Record<string, string>> = {
  date: `^${DATE}$`,
  time: `^${TIME}$`,
  'date-time': `^${DATE}T${TIME}$`,
  uuid: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
  email: '^[A-Za-z0-9_+-]+(?:\\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}$',
  ipv4: `^${OCTET}(?:\\.${OCTET}){3}$`,
};

export function formatNode(name: string): RegexNode | undefined {
  const p = FORMATS[name];
  return p === undefined ? undefined : parsePattern(p);
}
