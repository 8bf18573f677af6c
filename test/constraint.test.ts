/**
 * Structured output machinery: the byte-level JSON / JSON-schema automaton, the token-trie mask
 * against brute force, and constrained sampling against "mask, then sample".
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../src/errors.js';
import { compileResponseFormat, jsonObjectGrammar, jsonSchemaGrammar, markAllowed, tokenTable, type GrammarState, type JsonSchema } from '../src/generate/constraint/index.js';
import { Rng, Sampler, type SamplingOptions, type TokenFilter } from '../src/generate/sampler.js';
import { loadTokenizerSync } from '../src/tokenizer/load.js';
import type { Tokenizer } from '../src/tokenizer/types.js';
import { packageRoot } from '../src/util/package-root.js';
import { randomState } from './constraint-walk.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const cat = (...parts: Array<string | Uint8Array>): Uint8Array => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

test('json_object: accepts JSON objects, rejects everything else', () => {
  const g = jsonObjectGrammar();
  const good = [
    '{}',
    '{ }',
    '{"a":1}',
    '{"a": -0}',
    '{"a": 1e5, "b": 2.5E-3, "c": -12.0e+10, "d": 0.5}',
    '{"a": [1, "x", true, false, null, {"b": {}}, []]}',
    '{"s": "esc \\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00"}',
    '{"é": "日本語 🙂"}',
    '{\n  "a": 1,\n\t"b": [\n    2\n  ]\n}',
    '{"a":"\x7f"}',
  ];
  for (const s of good) {
    assert.ok(g.accepts(s), s);
    assert.doesNotThrow(() => JSON.parse(s));
  }
  const bad = [
    '',
    '[]',
    '1',
    '"x"',
    ' {}', // no leading whitespace
    '{} ', // nothing after the value
    '{"a":01}', // leading zero
    '{"a":-}',
    '{"a":1.}',
    '{"a":.5}',
    '{"a":1e}',
    '{"a":+1}',
    '{"a":1,}',
    '{,}',
    '{"a" 1}',
    '{a:1}',
    "{'a':1}",
    '{"a":tru}',
    '{"a":"\x01"}', // control character
    '{"a":"\n"}',
    '{"a":"\\x"}', // bad escape
    '{"a":"\\u12g4"}',
    '{"a":NaN}',
    '{"a":1}}',
    '{"a":1}\n',
    '{  \n\n"a":1}', // two newlines in one whitespace run
    `{${' '.repeat(2)}"a":1}`, // two spaces: one space is the limit without a newline
    `{\n${' '.repeat(21)}"a":1}`, // indentation over 20
  ];
  for (const s of bad) assert.equal(g.accepts(s), false, JSON.stringify(s));
  assert.ok(g.accepts(`{\n${' '.repeat(20)}"a":1}`));
  // Prefixes: incomplete values are live, not accepted.
  assert.ok(g.acceptsPrefix('{"a": [1, {"b'));
  assert.equal(g.accepts('{"a": [1, {"b'), false);
  assert.equal(g.acceptsPrefix('{"a": ]'), false);
  // Numbers are bounded: 16 integer digits.
  assert.ok(g.accepts(`{"a":${'9'.repeat(16)}}`));
  assert.equal(g.acceptsPrefix(`{"a":${'9'.repeat(17)}`), false);
});

test('strings are read as strictly valid UTF-8, byte by byte', () => {
  const g = jsonObjectGrammar();
  // "é" = C3 A9 and "🙂" = F0 9F 99 82 split over single bytes, as byte-fallback tokens give them.
  let s: GrammarState | null = g.initial()!.stepBytes(Buffer.from('{"a":"'));
  for (const b of [0xc3, 0xa9, 0xf0, 0x9f, 0x99, 0x82]) {
    s = s!.step(b);
    assert.ok(s, `byte ${b.toString(16)}`);
  }
  s = s!.stepBytes(Buffer.from('"}'));
  assert.ok(s?.accept && s.finished);
  const reject = [
    bytes(0xc3), // a lone lead byte, then the quote
    bytes(0xa9), // a lone continuation byte
    bytes(0xc0, 0xaf), // overlong
    bytes(0xe0, 0x80, 0xaf), // overlong 3-byte
    bytes(0xed, 0xa0, 0x80), // a UTF-16 surrogate
    bytes(0xf4, 0x90, 0x80, 0x80), // past U+10FFFF
    bytes(0xf5, 0x80, 0x80, 0x80),
    bytes(0xff),
    bytes(0xc3, 0x41), // a lead byte followed by ASCII
  ];
  for (const r of reject) assert.equal(g.accepts(cat('{"a":"', r, '"}')), false, Buffer.from(r).toString('hex'));
  assert.ok(g.accepts(cat('{"a":"', bytes(0xe2, 0x82, 0xac), '"}'))); // €
  assert.ok(g.accepts(cat('{"a":"', bytes(0xf4, 0x8f, 0xbf, 0xbf), '"}'))); // U+10FFFF
});

/** A small validator for the schema subset (enough for these tests). */
function validate(schema: JsonSchema, v: unknown, root: JsonSchema = schema): boolean {
  if (schema === true) return true;
  if (schema === false) return false;
  const s = schema as Record<string, unknown>;
  if (s.$ref) {
    const target = (s.$ref as string).slice(2).split('/').reduce((o: unknown, k) => (o as Record<string, unknown>)[k], root as unknown) as JsonSchema;
    return validate(target, v, root);
  }
  if (s.nullable === true && v === null) return true;
  if ('const' in s) return JSON.stringify(s.const) === JSON.stringify(v);
  if (s.enum) return (s.enum as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(v));
  if (s.anyOf) return (s.anyOf as JsonSchema[]).some((a) => validate(a, v, root));
  if (s.oneOf) return (s.oneOf as JsonSchema[]).filter((a) => validate(a, v, root)).length >= 1;
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    const ok = types.some((t) =>
      t === 'null' ? v === null : t === 'array' ? Array.isArray(v) : t === 'object' ? typeof v === 'object' && v !== null && !Array.isArray(v) : t === 'integer' ? Number.isInteger(v) : typeof v === t,
    );
    if (!ok) return false;
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, JsonSchema>;
    for (const r of (s.required ?? []) as string[]) if (!(r in o)) return false;
    for (const [k, x] of Object.entries(o)) {
      if (k in props) {
        if (!validate(props[k]!, x, root)) return false;
      } else if (s.additionalProperties === undefined || s.additionalProperties === false) return false;
      else if (!validate(s.additionalProperties as JsonSchema, x, root)) return false;
    }
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) return false;
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) return false;
    if (s.items !== undefined && !v.every((x) => validate(s.items as JsonSchema, x, root))) return false;
  }
  return true;
}

/** A random complete sentence of the grammar: random allowed bytes, preferring to close once long. */
function randomSentence(start: GrammarState, rng: Rng, maxBytes = 400): Uint8Array | undefined {
  const out: number[] = [];
  let s = start;
  for (let i = 0; i < 4000; i++) {
    if (s.finished) return Uint8Array.from(out);
    const allowed: Array<[number, GrammarState]> = [];
    for (let b = 0; b < 256; b++) {
      const n = s.step(b);
      if (n) allowed.push([b, n]);
    }
    if (s.accept && (allowed.length === 0 || rng.next() < 0.2)) return Uint8Array.from(out);
    assert.ok(allowed.length > 0, 'a live state always has a next byte');
    // Past maxBytes, prefer bytes that close things (quotes, brackets) or end numbers.
    let pick = allowed[Math.floor(rng.next() * allowed.length)]!;
    if (out.length > maxBytes) {
      const closing = allowed.filter(([b]) => b === 0x22 || b === 0x7d || b === 0x5d || b === 0x2c || b === 0x3a || b === 0x6e);
      if (closing.length && rng.next() < 0.9) pick = closing[Math.floor(rng.next() * closing.length)]!;
    }
    out.push(pick[0]);
    s = pick[1];
  }
  return undefined;
}

const SCHEMAS: Array<{ name: string; schema: JsonSchema; good: string[]; bad: string[] }> = [
  {
    name: 'object with required and optional properties in order',
    schema: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, tall: { type: 'boolean' } }, required: ['name', 'age'] },
    good: ['{"name":"x","age":3}', '{"name": "x", "age": -0, "tall": true}', '{\n  "name": "é",\n  "age": 10\n}'],
    bad: ['{"age":3,"name":"x"}', '{"name":"x"}', '{"name":"x","age":3.5}', '{"name":"x","age":3,"other":1}', '{"name":1,"age":3}', '{}'],
  },
  {
    name: 'enum, const, nullable type arrays, anyOf',
    schema: {
      type: 'object',
      properties: { color: { enum: ['red', 'green', 42, null] }, v: { const: { a: [1, 2] } }, n: { type: ['number', 'null'] }, u: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'integer' } }] } },
      required: ['color', 'v', 'n', 'u'],
    },
    good: ['{"color":"red","v":{"a":[1,2]},"n":null,"u":"x"}', '{"color":42,"v":{"a":[1,2]},"n":1.5e3,"u":[1,2]}', '{"color":null,"v":{"a":[1,2]},"n":0,"u":[]}'],
    bad: ['{"color":"blue","v":{"a":[1,2]},"n":null,"u":"x"}', '{"color":"red","v":{"a":[1]},"n":null,"u":"x"}', '{"color":"red","v":{"a":[1,2]},"n":"1","u":"x"}', '{"color":"red","v":{"a":[1,2]},"n":1,"u":[1.5]}'],
  },
  {
    name: 'arrays with minItems / maxItems',
    schema: { type: 'array', items: { type: 'boolean' }, minItems: 2, maxItems: 3 },
    good: ['[true,false]', '[true, false, true]', '[\n  true,\n  true\n]'],
    bad: ['[]', '[true]', '[true,true,true,true]', '[1,2]'],
  },
  {
    name: '$ref to $defs, recursion',
    schema: { $ref: '#/$defs/node', $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['v'] } } },
    good: ['{"v":1}', '{"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]}'],
    bad: ['{"v":1,"kids":[{}]}', '{"v":1,"kids":[{"v":1},{"v":2},{"v":3}]}'],
  },
  {
    name: 'additionalProperties: a schema, names differ from the declared ones',
    schema: { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'], additionalProperties: { type: 'string' } },
    good: ['{"id":1}', '{"id":1,"x":"a","i":"b","idx":"c","":"d","é":"e"}'],
    bad: ['{"id":1,"id":"x"}', '{"id":1,"x":2}', '{"x":"a","id":1}'],
  },
  {
    name: 'definitions, oneOf, integer root-level alternatives',
    schema: { definitions: { p: { type: 'object', properties: { k: { const: 'p' } }, required: ['k'] } }, oneOf: [{ $ref: '#/definitions/p' }, { type: 'integer' }] },
    good: ['{"k":"p"}', '12', '-3'],
    bad: ['{"k":"q"}', '1.5', '"x"'],
  },
  {
    name: 'map: additionalProperties only',
    schema: { type: 'object', additionalProperties: { type: 'number' } },
    good: ['{}', '{"a":1,"b":2.5}'],
    bad: ['{"a":"x"}'],
  },
];

test('json_schema: accepts valid values, rejects invalid ones, and every random sentence validates', () => {
  for (const c of SCHEMAS) {
    const g = jsonSchemaGrammar(c.schema);
    for (const s of c.good) {
      assert.ok(validate(c.schema, JSON.parse(s)), `${c.name}: the test's own example ${s} is valid`);
      assert.ok(g.accepts(s), `${c.name}: accepts ${s}`);
    }
    for (const s of c.bad) assert.equal(g.accepts(s), false, `${c.name}: rejects ${s}`);
    const rng = new Rng(42);
    let complete = 0;
    for (let i = 0; i < 60; i++) {
      const b = randomSentence(g.initial()!, rng);
      if (!b) continue;
      complete++;
      const text = Buffer.from(b).toString('utf8');
      let v: unknown;
      assert.doesNotThrow(() => (v = JSON.parse(text)), `${c.name}: ${text}`);
      assert.ok(validate(c.schema, v), `${c.name}: ${text} validates`);
    }
    assert.ok(complete >= 30, `${c.name}: ${complete} random sentences completed`);
  }
});

test('json_schema: unsupported keywords and malformed schemas are UsageErrors naming the problem', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ type: 'object', properties: { a: { type: 'array', uniqueItems: true } } }, /at \/properties\/a: the keyword "uniqueItems" is not supported/],
    [{ type: 'array', uniqueItems: true }, /"uniqueItems"/],
    [{ type: 'array', contains: {} }, /"contains"/],
    [{ not: {} }, /"not"/],
    [{ allOf: [{ type: 'string' }, { type: 'null' }] }, /allOf/],
    [{ type: 'strin' }, /unknown type "strin"/],
    [Array.from({ length: 200 }).reduce<unknown>((sch) => ({ type: 'array', items: sch }), { type: 'string' }), /nests deeper than 128 levels/],
    [Array.from({ length: 20000 }).reduce<unknown>((sch) => ({ type: 'array', items: sch }), { type: 'string' }), /not serializable as JSON/],
    [{ type: 'object', properties: { a: 1 } }, /must be an object or a boolean/],
    [{ type: 'object', required: ['b'], properties: { a: {} } }, /required property "b"/],
    [{ $ref: 'http://x/y.json' }, /local "\$ref"/],
    [{ $ref: '#/$defs/missing' }, /does not resolve/],
    [{ $ref: '#' }, /recursive without any text/],
    [{ anyOf: [{ $ref: '#' }, { type: 'null' }] }, /recursive without any text/],
    [{ enum: [] }, /non-empty array/],
    [{ type: 'string', enum: [1, 2] }, /no value of "enum"/],
    [{ type: 'array', minItems: 3, maxItems: 2 }, /minItems/],
    [false, /accepts no value/],
    [[1], /must be an object or a boolean/],
  ];
  cases.forEach(([schema, re], i) => {
    assert.throws(
      () => compileResponseFormat({ type: 'json_schema', schema: schema as JsonSchema }),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
      `case ${i} (${re})`,
    );
  });
  assert.throws(() => compileResponseFormat({ type: 'xml' } as never), UsageError);
  assert.equal(compileResponseFormat({ type: 'text' }), undefined);
  // Annotations and unknown keywords are fine; the compiled grammar is cached per schema.
  const schema = { title: 'T', description: 'd', type: 'object', properties: { a: { type: 'string', default: 'x', examples: ['y'] } }, 'x-vendor': 1 };
  assert.equal(compileResponseFormat({ type: 'json_schema', schema }), compileResponseFormat({ type: 'json_schema', schema: JSON.parse(JSON.stringify(schema)) }));
});

// ---------------------------------------------------------------- masks

const demoTok = (): Tokenizer => loadTokenizerSync(path.join(packageRoot(), 'models', 'demo'));

/** Allowed ids by brute force: every text token's bytes through the automaton. */
function bruteForce(tok: Tokenizer, s: GrammarState): Uint8Array {
  const t = tokenTable(tok);
  const m = new Uint8Array(t.vocabSize);
  for (let id = 0; id < t.vocabSize; id++) if (t.text[id] && s.stepBytes(t.bytes, t.off[id]!, t.off[id + 1]!)) m[id] = 1;
  return m;
}

/** States reached by random walks of each grammar (strings, numbers, structure, nesting). */
function randomStates(rng: Rng, count: number): GrammarState[] {
  const grammars = [jsonObjectGrammar(), ...SCHEMAS.map((c) => jsonSchemaGrammar(c.schema))];
  const out: GrammarState[] = [];
  for (let i = 0; i < count; i++) {
    out.push(randomState(grammars[i % grammars.length]!, rng, 40));
  }
  return out;
}

test('token mask from the trie walk equals brute force over every token (demo tokenizer)', () => {
  const tok = demoTok();
  const t = tokenTable(tok);
  // Byte-fallback tokens read as raw bytes; specials and <unusedN> are never text.
  const byteA = tok.pieceToId('<0x41>')!;
  assert.deepEqual([...t.bytes.subarray(t.off[byteA]!, t.off[byteA + 1]!)], [0x41]);
  for (const p of ['<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>', '<pad>', '<unused0>', '<mask>']) {
    const id = tok.pieceToId(p);
    if (id !== undefined) assert.equal(t.text[id], 0, p);
  }
  const rng = new Rng(7);
  let strings = 0;
  for (const s of randomStates(rng, 150)) {
    const m = new Uint8Array(t.vocabSize);
    const count = markAllowed(t.trie, s, m);
    const ref = bruteForce(tok, s);
    assert.deepEqual(m, ref);
    assert.equal(count, ref.reduce((a, x) => a + x, 0));
    if (s.inPlainString) strings++;
  }
  assert.ok(strings > 5, `the plain-string shortcut was exercised (${strings} states)`);
});

test('token mask equals brute force on the real 256k Gemma vocabulary (a sample of states)', () => {
  const tok = loadTokenizerSync(path.join(packageRoot(), 'node_modules', '@lenml', 'tokenizer-gemini', 'models'));
  const t = tokenTable(tok);
  assert.equal(t.vocabSize, 256000);
  const rng = new Rng(11);
  for (const s of randomStates(rng, 12)) {
    const m: Uint8Array = new Uint8Array(t.vocabSize);
    markAllowed(t.trie, s, m);
    assert.deepEqual(m, bruteForce(tok, s));
  }
});

// ---------------------------------------------------------------- sampling

/** A filter over a small vocabulary from an explicit allowed set. */
function setFilter(allowed: Set<number>, calls: { mask: number }): TokenFilter {
  return {
    allows: (id) => allowed.has(id),
    mask: (n) => {
      calls.mask++;
      const m = new Uint8Array(n);
      for (const id of allowed) m[id] = 1;
      return m;
    },
  };
}

test('constrained sampling draws from the masked distribution (greedy, full row, top-k, top-p, min-p)', () => {
  const n = 12;
  const logits = Float32Array.from([3, 2.5, 2.2, 2, 1.5, 1, 0.5, 0, -0.5, -1, -2, -3]);
  const allowed = new Set([1, 3, 4, 8, 10]);
  const settings: SamplingOptions[] = [
    { temperature: 0 },
    { temperature: 1 },
    { temperature: 0.7, topK: 3 },
    { temperature: 1, topP: 0.8 },
    { temperature: 1, minP: 0.2 },
    { temperature: 1, topK: 4, topP: 0.9, minP: 0.05 },
  ];
  const masked = Float32Array.from(logits, (v, i) => (allowed.has(i) ? v : -Infinity));
  const draws = 20000;
  for (const o of settings) {
    const calls = { mask: 0 };
    const a = new Sampler({ ...o, seed: 1 });
    const b = new Sampler({ ...o, seed: 2 });
    const got = new Array<number>(n).fill(0);
    const want = new Array<number>(n).fill(0);
    for (let i = 0; i < draws; i++) {
      const id = a.sampleConstrained(logits, n, [], [], setFilter(allowed, calls));
      assert.ok(allowed.has(id), `${JSON.stringify(o)}: ${id} is allowed`);
      got[id]!++;
      want[b.sample(masked, n)]!++;
    }
    for (let id = 0; id < n; id++) {
      const p = want[id]! / draws;
      const tol = 4 * Math.sqrt((p * (1 - p)) / draws) + 0.002;
      assert.ok(Math.abs(got[id]! / draws - p) <= tol * 1.5, `${JSON.stringify(o)} id ${id}: ${got[id]! / draws} vs ${p}`);
    }
  }
  // The shortcuts: when the unconstrained choice is allowed, no mask is computed.
  const calls = { mask: 0 };
  const all = new Set(Array.from({ length: n }, (_, i) => i));
  new Sampler({ temperature: 0 }).sampleConstrained(logits, n, [], [], setFilter(all, calls));
  new Sampler({ temperature: 1, topK: 3, topP: 0.9, seed: 3 }).sampleConstrained(logits, n, [], [], setFilter(all, calls));
  assert.equal(calls.mask, 0);
  // Greedy is exactly the argmax of the allowed ids.
  assert.equal(new Sampler({ temperature: 0 }).sampleConstrained(logits, n, [], [], setFilter(allowed, calls)), 1);
  // Nothing allowed: a UsageError, not a crash.
  assert.throws(() => new Sampler({ temperature: 1, seed: 1 }).sampleConstrained(logits, n, [], [], setFilter(new Set(), calls)), UsageError);
});
