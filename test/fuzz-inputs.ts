/**
 * fast-check arbitraries of fuzz inputs for a target: byte-level mutations of its seeds (bit
 * flips, boundary integers at any offset, inserted format keywords, cuts, duplicated runs), for
 * JSON targets also tree-level mutations (any value replaced by a boundary number, a long
 * string, a deeply nested value, or an arbitrary JSON value; keys deleted; arrays grown), and
 * plain random bytes.
 */
import fc from 'fast-check';
import type { FuzzTarget } from './fuzz-targets.js';

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x20, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d];
const INTERESTING_INTS: bigint[] = [0n, 1n, 2n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 1n << 32n, 1_000_000_000n, 1_000_000_000_000n, (1n << 53n) - 1n, 1n << 53n, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n];
const INTERESTING_NUMBERS = [0, -0, 1, -1, 0.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, 1e9, 1e12, 1e308, -1e308, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 1e-320];

type ByteOp =
  | { k: 'flip'; at: number; bit: number }
  | { k: 'set'; at: number; v: number }
  | { k: 'int'; at: number; width: 1 | 2 | 4 | 8; v: bigint; be: boolean }
  | { k: 'insert'; at: number; bytes: Uint8Array }
  | { k: 'word'; at: number; word: number }
  | { k: 'delete'; at: number; len: number }
  | { k: 'truncate'; at: number }
  | { k: 'dup'; at: number; len: number; to: number };

const pos = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });

function byteOp(dictSize: number): fc.Arbitrary<ByteOp> {
  const ops: Array<fc.Arbitrary<ByteOp>> = [
    fc.record({ k: fc.constant('flip' as const), at: pos, bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ k: fc.constant('set' as const), at: pos, v: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.integer({ min: 0, max: 255 })) }),
    fc.record({ k: fc.constant('int' as const), at: pos, width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const), v: fc.constantFrom(...INTERESTING_INTS), be: fc.boolean() }),
    fc.record({ k: fc.constant('insert' as const), at: pos, bytes: fc.uint8Array({ maxLength: 16 }) }),
    fc.record({ k: fc.constant('delete' as const), at: pos, len: fc.integer({ min: 1, max: 64 }) }),
    fc.record({ k: fc.constant('truncate' as const), at: pos }),
    fc.record({ k: fc.constant('dup' as const), at: pos, len: fc.integer({ min: 1, max: 256 }), to: pos }),
  ];
  if (dictSize > 0) ops.push(fc.record({ k: fc.constant('word' as const), at: pos, word: fc.integer({ min: 0, max: dictSize - 1 }) }));
  return fc.oneof(...ops);
}

/** Apply byte mutations to a copy of `seed`. */
export function mutateBytes(seed: Uint8Array, ops: readonly ByteOp[], dictionary: readonly Uint8Array[]): Uint8Array {
  let b = Uint8Array.from(seed);
  const idx = (at: number, n = b.length) => Math.min(n, Math.floor(at * (n + 1)));
  const splice = (i: number, del: number, ins: Uint8Array) => {
    const out = new Uint8Array(b.length - del + ins.length);
    out.set(b.subarray(0, i));
    out.set(ins, i);
    out.set(b.subarray(i + del), i + ins.length);
    b = out;
  };
  for (const op of ops) {
    switch (op.k) {
      case 'flip':
        if (b.length) b[idx(op.at, b.length - 1)]! ^= 1 << op.bit;
        break;
      case 'set':
        if (b.length) b[idx(op.at, b.length - 1)] = op.v;
        break;
      case 'int': {
        const bytes = new Uint8Array(op.width);
        let v = op.v & ((1n << BigInt(op.width * 8)) - 1n);
        for (let i = 0; i < op.width; i++, v >>= 8n) bytes[op.be ? op.width - 1 - i : i] = Number(v & 0xffn);
        const i = idx(op.at, Math.max(0, b.length - op.width));
        splice(i, Math.min(op.width, b.length - i), bytes);
        break;
      }
      case 'insert':
        splice(idx(op.at), 0, op.bytes);
        break;
      case 'word':
        splice(idx(op.at), 0, dictionary[op.word]!);
        break;
      case 'delete': {
        const i = idx(op.at, b.length);
        splice(i, Math.min(op.len, b.length - i), new Uint8Array(0));
        break;
      }
      case 'truncate':
        b = b.subarray(0, idx(op.at));
        break;
      case 'dup': {
        const i = idx(op.at, b.length);
        const run = b.slice(i, i + op.len);
        splice(idx(op.to), 0, run);
        break;
      }
    }
  }
  return b;
}

type JsonOp =
  | { k: 'replace'; at: number; value: unknown }
  | { k: 'delete'; at: number }
  | { k: 'grow'; at: number; times: number }
  | { k: 'nest'; at: number; depth: number; array: boolean };

const jsonLeaf = fc.oneof(
  fc.constantFrom(...INTERESTING_NUMBERS),
  fc.constantFrom(null, true, false, '', '\u0000', '\ud800', '<start_of_turn>', 'a'.repeat(5000), '{{ x }}', '#/$defs/a', '#'),
  fc.integer(),
  fc.string({ maxLength: 12 }),
);
const jsonValue = fc.oneof({ weight: 3, arbitrary: jsonLeaf }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) });

const jsonOp: fc.Arbitrary<JsonOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant('replace' as const), at: pos, value: jsonValue }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('delete' as const), at: pos }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('grow' as const), at: pos, times: fc.integer({ min: 2, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('nest' as const), at: pos, depth: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.constant(20000)), array: fc.boolean() }) },
);

type Container = Record<string, unknown> | unknown[];
/** Every (container, key) slot of a JSON tree, the root's holder included (iterative: trees may be deep). */
function slots(root: { v: unknown }): Array<[Container, string | number]> {
  const out: Array<[Container, string | number]> = [[root as unknown as Container, 'v']];
  const stack: unknown[] = [root.v];
  while (stack.length && out.length < 100_000) {
    const x = stack.pop();
    if (Array.isArray(x)) x.forEach((c, i) => (out.push([x, i]), stack.push(c)));
    else if (x && typeof x === 'object') for (const k of Object.keys(x)) out.push([x as Record<string, unknown>, k]), stack.push((x as Record<string, unknown>)[k]);
  }
  return out;
}

/**
 * Apply tree mutations to a parsed copy of the seed JSON; serialized again. Deep nesting is done
 * in the text (a marker replaced by `[[[...value...]]]`), so that no deep object exists here.
 */
export function mutateJson(seed: unknown, ops: readonly JsonOp[]): Uint8Array {
  const root = { v: JSON.parse(JSON.stringify(seed)) as unknown };
  const nests: Array<{ marker: string; depth: number; array: boolean; value: unknown }> = [];
  for (const op of ops) {
    const all = slots(root);
    const [holder, key] = all[Math.min(all.length - 1, Math.floor(op.at * all.length))]!;
    const h = holder as Record<string | number, unknown>;
    switch (op.k) {
      case 'replace':
        h[key] = op.value;
        break;
      case 'delete':
        if (Array.isArray(holder)) holder.splice(key as number, 1);
        else if (holder !== (root as unknown)) delete h[key];
        break;
      case 'grow': {
        if (all.length > 5000) break; // repeated growth is exponential: inputs stay small
        const v = h[key];
        h[key] = Array.isArray(v) ? Array.from({ length: op.times }, (_, i) => v[i % Math.max(1, v.length)]) : Array.from({ length: op.times }, () => v);
        break;
      }
      case 'nest': {
        const marker = `@@nest${nests.length}@@`;
        nests.push({ marker, depth: op.depth, array: op.array, value: h[key] });
        h[key] = marker;
        break;
      }
    }
  }
  let text = JSON.stringify(root.v) ?? 'null';
  // Later markers may sit inside earlier values: expand the last first.
  for (let i = nests.length - 1; i >= 0; i--) {
    const n = nests[i]!;
    const inner = JSON.stringify(n.value) ?? 'null';
    const open = n.array ? '['.repeat(n.depth) : '{"type":"array","items":'.repeat(n.depth);
    const close = n.array ? ']'.repeat(n.depth) : '}'.repeat(n.depth);
    text = text.replace(JSON.stringify(n.marker), () => open + inner + close);
    // a marker copied by a later op into another nest's value
    text = text.split(JSON.stringify(n.marker)).join('null');
  }
  if (text.length > 4 << 20) text = text.slice(0, 4 << 20);
  return new TextEncoder().encode(text);
}

/** Inputs for a target: mutated seeds (bytes and, for JSON, trees) and random bytes. */
export function inputsFor(target: FuzzTarget, seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const dictionary = (target.dictionary ?? []).map((w) => new TextEncoder().encode(w));
  const seedArb = fc.constantFrom(...seeds);
  const bytes = fc.tuple(seedArb, fc.array(byteOp(dictionary.length), { minLength: 1, maxLength: 8 })).map(([s, ops]) => mutateBytes(s, ops, dictionary));
  const arbs: Array<fc.WeightedArbitrary<Uint8Array>> = [
    { weight: target.json ? 2 : 6, arbitrary: bytes },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
    { weight: 1, arbitrary: seedArb },
  ];
  if (target.json) {
    const parsed = seeds.flatMap((s) => {
      try {
        return [JSON.parse(new TextDecoder().decode(s)) as unknown];
      } catch {
        return [];
      }
    });
    if (parsed.length) {
      const tree = fc.tuple(fc.constantFrom(...parsed), fc.array(jsonOp, { minLength: 1, maxLength: 6 })).map(([s, ops]) => mutateJson(s, ops));
      arbs.push({ weight: 6, arbitrary: tree });
    }
  }
  return fc.oneof(...arbs);
}
