/**
 * The value keywords of structured output (minimum / maximum / exclusive*, multipleOf,
 * minLength / maxLength, pattern, format) checked against an independent validator, ajv (with
 * ajv-formats), property-style with fast-check:
 *   - every random byte path the automaton accepts parses and validates under the schema;
 *   - every candidate text (random values near the constraints, in canonical and other forms)
 *     that the automaton accepts validates, i.e. what the schema rejects the automaton rejects;
 *   - canonical texts of valid values (JSON.stringify, fixed-point numbers, ISO dates, uuids,
 *     ipv4s, strings of the pattern) are accepted, so the subset is not empty or lopsided;
 * plus the token mask inside these machines against brute force, unsupported constructs as
 * UsageErrors naming them, and constrained generation on the demo model.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { Ajv } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import fc from 'fast-check';
import { z } from 'zod';
import { UsageError } from '../src/errors.js';
import { compileResponseFormat, jsonSchemaGrammar, markAllowed, tokenTable, type Grammar, type GrammarState, type JsonSchema } from '../src/generate/constraint/index.js';
import { generateText } from '../src/generate/generate.js';
import { Rng } from '../src/generate/sampler.js';
import { loadModel } from '../src/model/load.js';
import { loadTokenizerSync } from '../src/tokenizer/load.js';
import { packageRoot } from '../src/util/package-root.js';
import { randomState } from './constraint-walk.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ strict: false, allowUnionTypes: true }));

function validator(schema: JsonSchema): (v: unknown) => boolean {
  const f = ajv.compile(schema as object);
  return (v) => f(v) === true;
}

/** A random complete sentence: random allowed bytes, preferring bytes that end things once long. */
function randomSentence(start: GrammarState, rng: Rng, maxBytes = 60): string | undefined {
  const out: number[] = [];
  let s = start;
  for (let i = 0; i < 2000; i++) {
    if (s.finished) break;
    const allowed: Array<[number, GrammarState]> = [];
    for (let b = 0; b < 256; b++) {
      const n = s.step(b);
      if (n) allowed.push([b, n]);
    }
    if (s.accept && (allowed.length === 0 || rng.next() < 0.15)) break;
    assert.ok(allowed.length > 0, 'a live state always has a next byte');
    let pick = allowed[Math.floor(rng.next() * allowed.length)]!;
    if (out.length > maxBytes) {
      // Long enough: finish along a shortest path to an accepting state.
      const rest = shortestClose(s);
      if (rest) {
        out.push(...rest.bytes);
        s = rest.state;
        break;
      }
    }
    out.push(pick[0]);
    s = pick[1];
  }
  return s.accept ? Buffer.from(out).toString('utf8') : undefined;
}

/** The bytes of a shortest path from `start` to an accepting state (breadth first, bounded). */
function shortestClose(start: GrammarState): { bytes: number[]; state: GrammarState } | undefined {
  const prev = new Map<GrammarState, [GrammarState, number] | null>([[start, null]]);
  let frontier = [start];
  for (let depth = 0; depth < 200 && frontier.length; depth++) {
    const next: GrammarState[] = [];
    for (const s of frontier) {
      if (s.accept) {
        const bytes: number[] = [];
        for (let at = prev.get(s); at; at = prev.get(at[0])) bytes.unshift(at[1]);
        return { bytes, state: s };
      }
      for (let b = 0; b < 256; b++) {
        const n = s.step(b);
        if (n && !prev.has(n)) {
          prev.set(n, [s, b]);
          next.push(n);
        }
      }
    }
    frontier = next;
  }
  return undefined;
}

/** Random paths through `g` validate under `schema`; returns how many completed. */
function walkValidates(g: Grammar, valid: (v: unknown) => boolean, label: string, seed: number, count = 25): number {
  const rng = new Rng(seed);
  let done = 0;
  for (let i = 0; i < count; i++) {
    const text = randomSentence(g.initial()!, rng);
    if (text === undefined) continue;
    done++;
    let v: unknown;
    assert.doesNotThrow(() => (v = JSON.parse(text)), `${label}: ${text}`);
    assert.ok(valid(v), `${label}: the accepted path ${text} validates`);
  }
  return done;
}

/** accepts => valid for every candidate; valid => accepts for the canonical ones. */
function checkCandidate(g: Grammar, valid: (v: unknown) => boolean, text: string, canonical: boolean, label: string): void {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    assert.equal(g.accepts(text), false, `${label}: accepts the non-JSON ${text}`);
    return;
  }
  const ok = valid(v);
  if (g.accepts(text)) assert.ok(ok, `${label}: accepts ${text}, which the schema rejects`);
  else if (canonical) assert.ok(!ok, `${label}: rejects ${text}, which the schema accepts`);
}

const RUNS = { numRuns: 40, seed: 1234 };

/** The schema's grammar, or the UsageError that refuses it (anything else is thrown). */
function compileOrRefusal(schema: JsonSchema): Grammar | UsageError {
  try {
    return jsonSchemaGrammar(schema);
  } catch (e) {
    if (e instanceof UsageError) return e;
    throw e;
  }
}

// ---------------------------------------------------------------- numbers

/** Bounds as JSON Schema writes them: decimals, negatives, exponent forms. */
const boundValue = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 0.1, -2.5, 1e-7, 2.5e3, 1e15, -1e15, 9007199254740991, -9007199254740991, 1e20),
);

/** Number texts near `around`: canonical integers, fixed-point decimals, and other forms (exponents, -0, trailing zeros). */
function numberTexts(around: number[]): fc.Arbitrary<{ text: string; canonical: boolean }> {
  const near = fc.constantFrom(...around).chain((b) => fc.double({ min: b - 3, max: b + 3, noNaN: true, noDefaultInfinity: true }));
  const fixed = (d: number) => fc.tuple(near, fc.integer({ min: 0, max: d })).map(([x, k]) => ({ text: x.toFixed(k), canonical: true }));
  return fc.oneof(
    near.map((x) => ({ text: JSON.stringify(Math.round(x)), canonical: true })),
    fixed(6),
    fixed(16),
    near.map((x) => ({ text: x.toExponential(3), canonical: false })),
    fc.constantFrom('-0', '0.0', '-0.0', '1.50', '00', '1.', '.5', '+1', '1e400', '-', '--1').map((text) => ({ text, canonical: false })),
  );
}

/** Values within 1e-9 (relative) of a bound may round either way: no completeness claim there. */
function clearOf(v: number, bounds: number[]): boolean {
  return bounds.every((b) => Math.abs(v - b) > 1e-9 * Math.max(1, Math.abs(b)));
}

const fitsDigits = (text: string): boolean => /^-?(0|[1-9]\d{0,15})(\.\d{1,16})?$/.test(text);

test('minimum / maximum / exclusive*: accepted values validate, valid fixed-point values are accepted (random bounds)', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.option(boundValue, { nil: undefined }),
      fc.option(boundValue, { nil: undefined }),
      fc.boolean(),
      fc.boolean(),
      fc.array(fc.integer({ min: 0, max: 1 << 30 }), { minLength: 30, maxLength: 30 }),
      (integer, lo, hi, loEx, hiEx, seeds) => {
        const schema: Record<string, unknown> = { type: integer ? 'integer' : 'number' };
        if (lo !== undefined) schema[loEx ? 'exclusiveMinimum' : 'minimum'] = lo;
        if (hi !== undefined) schema[hiEx ? 'exclusiveMaximum' : 'maximum'] = hi;
        const label = JSON.stringify(schema);
        const valid = validator(schema);
        const g = compileOrRefusal(schema);
        if (g instanceof UsageError) {
          // Only when no value of the format exists: then none of these validates either.
          assert.match(g.message, /no (integer|number) within the bounds exists/, label);
          const room = lo !== undefined && hi !== undefined ? hi - lo < (integer ? 1 : 1e-15) * Math.max(1, Math.abs(lo)) : Math.abs((lo ?? hi)!) >= 1e15;
          assert.ok(room, `${label} refused`);
          return;
        }
        walkValidates(g, valid, label, seeds[0]!, 15);
        const bounds = [lo, hi].filter((b): b is number => b !== undefined);
        fc.assert(
          fc.property(numberTexts(bounds.length ? bounds : [0]), ({ text, canonical }) => {
            const canon = canonical && fitsDigits(text) && (!integer || !text.includes('.')) && clearOf(Number(text), bounds) && !/^-0(\.0*)?$/.test(text);
            checkCandidate(g, valid, text, canon, label);
          }),
          { numRuns: 60, seed: seeds[1]! },
        );
      },
    ),
    RUNS,
  );
});

test('bounds edge cases: exact at the bound, exclusive, exponent-form bounds, -0, digit limits', () => {
  const cases: Array<[Record<string, unknown>, string[], string[], Record<string, unknown>?]> = [
    [{ type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 }, ['0', '-0', '-12', '9007199254740991', '-9007199254740991'], ['9007199254740992', '1.5', '1e3', '01']],
    [{ type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 10 }, ['1', '9'], ['0', '-0', '10', '-1']],
    [{ type: 'number', exclusiveMinimum: 0 }, ['0.0000000000000001', '1', '12.5'], ['0', '-0', '0.0', '-0.5', '1e1']],
    [{ type: 'number', minimum: -2.5, maximum: 0.1 }, ['-2.5', '-2.50', '0.1', '0.1000000000000000', '-0', '0'], ['-2.5000000000000001', '0.1000000000000001', '0.11', '-3']],
    [{ type: 'number', minimum: 1e-7, maximum: 2.5e3 }, ['0.0000001', '2500', '2500.0'], ['0.00000009', '2500.0000000000001', '0']],
    [{ type: 'integer', minimum: 5, exclusiveMinimum: true }, ['6'], ['5'], { type: 'integer', exclusiveMinimum: 5 }], // draft 4 boolean form
    [{ minimum: 3, maximum: 3 }, ['3', '3.0'], ['2.9999999999999999', '4']], // no type: a number
  ];
  for (const [schema, good, bad, same] of cases) {
    const g = jsonSchemaGrammar(schema);
    const valid = validator(same ?? schema);
    for (const t of good) {
      assert.ok(valid(JSON.parse(t)), `the test's own ${t} is valid under ${JSON.stringify(schema)}`);
      assert.ok(g.accepts(t), `${JSON.stringify(schema)} accepts ${t}`);
    }
    for (const t of bad) assert.equal(g.accepts(t), false, `${JSON.stringify(schema)} rejects ${t}`);
  }
});

test('multipleOf (integers): accepted values validate; valid integers are accepted (random divisors and bounds)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 200 }), fc.option(fc.integer({ min: -5000, max: 5000 }), { nil: undefined }), fc.option(fc.integer({ min: -5000, max: 5000 }), { nil: undefined }), fc.integer(), (m, lo, hi, seed) => {
      const schema: Record<string, unknown> = { type: 'integer', multipleOf: m };
      if (lo !== undefined) schema.minimum = lo;
      if (hi !== undefined) schema.maximum = hi;
      const label = JSON.stringify(schema);
      const valid = validator(schema);
      const g = compileOrRefusal(schema);
      if (g instanceof UsageError) {
        // Refused only when no multiple lies in the bounds.
        for (let v = lo!; v <= hi!; v++) assert.ok(!valid(v), `${label} refused, but ${v} is valid`);
        return;
      }
      walkValidates(g, valid, label, seed, 15);
      const center = lo ?? hi ?? 0;
      fc.assert(
        fc.property(fc.integer({ min: center - 3 * m - 50, max: center + 3 * m + 50 }), (v) => checkCandidate(g, valid, JSON.stringify(v), true, label)),
        { numRuns: 80, seed },
      );
    }),
    RUNS,
  );
  // A number schema with an integer multipleOf generates integers; a fractional one is refused.
  const g = jsonSchemaGrammar({ type: 'number', multipleOf: 5 });
  assert.ok(g.accepts('-15'));
  assert.equal(g.accepts('7'), false);
  assert.equal(g.accepts('15.0'), false);
  assert.throws(() => jsonSchemaGrammar({ type: 'number', multipleOf: 0.01 }), /"multipleOf" 0.01 is not supported/);
});

// ---------------------------------------------------------------- strings

/** Strings of BMP, astral, control and escape-worthy characters. */
const someString = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ unit: fc.constantFrom('a', 'é', '日', '🙂', '"', '\\', '\n', '\u0001', '/', ' '), maxLength: 10 }),
);

/** A string's JSON texts: JSON.stringify (canonical) and other spellings (\u escapes, \/). */
function stringTexts(s: string): Array<{ text: string; canonical: boolean }> {
  const canonical = JSON.stringify(s);
  const uEsc = `"${[...s].map((c) => (c.codePointAt(0)! < 0x10000 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c)).join('')}"`;
  const surrogates = `"${[...s].map((c) => [...c].length && c.length === 2 ? `\\u${c.charCodeAt(0).toString(16)}\\u${c.charCodeAt(1).toString(16)}` : c === '"' || c === '\\' ? `\\${c}` : c.charCodeAt(0) < 0x20 ? `\\u00${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c).join('')}"`;
  return [
    { text: canonical, canonical: !/\\ud[89a-f]/i.test(canonical) },
    { text: uEsc, canonical: false },
    { text: surrogates, canonical: false },
    { text: canonical.replace(/\//g, '\\/'), canonical: false },
  ];
}

test('minLength / maxLength count code points: accepted strings validate, valid canonical strings are accepted', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 6 }), fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }), fc.integer(), (min, maxRaw, seed) => {
      const max = maxRaw === undefined ? undefined : Math.max(min, maxRaw);
      const schema: Record<string, unknown> = { type: 'string', minLength: min, ...(max !== undefined ? { maxLength: max } : {}) };
      const label = JSON.stringify(schema);
      const g = jsonSchemaGrammar(schema);
      const valid = validator(schema);
      assert.ok(walkValidates(g, valid, label, seed, 15) >= 10, `${label}: random paths complete`);
      fc.assert(
        fc.property(someString, (s) => {
          for (const { text, canonical } of stringTexts(s)) checkCandidate(g, valid, text, canonical, label);
        }),
        { numRuns: 60, seed },
      );
    }),
    RUNS,
  );
});

/** Patterns: zod's built-ins and hand-written ones covering each supported construct. */
const PATTERNS = [
  '^[a-z]+\\d?$',
  'ab|cd',
  '^(foo|bar)+$',
  '^\\w{2,4}-\\d{3}$',
  'colou?r',
  '^[^aeiou\\s]*$',
  '^.{3}$',
  '\\s',
  '^\\S+@\\S+$',
  '^(?:[A-Z]{2}|\\d)?$',
  '^[\\-+.]?x{2,}$',
  '^\\u00e9[\\x41-\\x43]\\.\\/$',
  '^(?<word>[a-c]+?)$',
  '^(?:[A-Za-z0-9_\'+\\-]+\\.)*[A-Za-z0-9_\'+\\-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$', // zod's email
  '^(?:[01]\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:\\.\\d+)?)?$', // zod's iso time
];

test('pattern: accepted strings match (ajv, u flag) and strings of the pattern are accepted', () => {
  PATTERNS.forEach((pattern, k) => {
    const schema = { type: 'string', pattern };
    const label = JSON.stringify(schema);
    const g = jsonSchemaGrammar(schema);
    const valid = validator(schema);
    const plain = new RegExp(pattern); // zod tests without the u flag
    assert.ok(walkValidates(g, (v) => valid(v) && plain.test(v as string), label, k + 1, 20) >= 10, `${label}: random paths complete`);
    fc.assert(
      fc.property(fc.oneof(fc.stringMatching(new RegExp(pattern)), someString), (s) => {
        const bmp = [...s].every((c) => c.length === 1);
        for (const { text, canonical } of stringTexts(s)) checkCandidate(g, valid, text, canonical && bmp, label);
      }),
      { numRuns: 150, seed: k },
    );
  });
});

const isoDate = fc.date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString());

test('format: date-time, date, time, uuid, email, ipv4 (alone and with zod\'s patterns and length limits)', () => {
  const candidates: Record<string, fc.Arbitrary<{ s: string; canonical: boolean }>> = {
    'date-time': fc.oneof(isoDate.map((s) => ({ s, canonical: true })), isoDate.map((s) => ({ s: s.replace('Z', '+05:30'), canonical: true })), isoDate.map((s) => ({ s: s.replace('T', ' '), canonical: false }))),
    date: fc.oneof(isoDate.map((s) => ({ s: s.slice(0, 10), canonical: true })), fc.tuple(fc.integer({ min: 1890, max: 2110 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 })).map(([y, m, d]) => ({ s: `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`, canonical: true }))),
    time: fc.oneof(isoDate.map((s) => ({ s: s.slice(11), canonical: true })), isoDate.map((s) => ({ s: s.slice(11, 19), canonical: false })), fc.constantFrom('24:00:00Z', '23:60:00Z', '12:00:00+24:00', '1:00:00Z').map((s) => ({ s, canonical: true }))),
    uuid: fc.oneof(fc.uuid().map((s) => ({ s, canonical: true })), fc.uuid().map((s) => ({ s: s.toUpperCase(), canonical: true })), fc.uuid().map((s) => ({ s: s.replace(/-/g, ''), canonical: true }))),
    email: fc.oneof(fc.emailAddress().map((s) => ({ s, canonical: false })), fc.constantFrom('a@b.co', 'first.last+tag@mail.example.org', 'x@-a.com', 'a..b@c.de', '@b.de', 'a@b').map((s) => ({ s, canonical: false }))),
    ipv4: fc.oneof(fc.ipV4().map((s) => ({ s, canonical: true })), fc.ipV4Extended().map((s) => ({ s, canonical: false })), fc.constantFrom('256.0.0.1', '1.2.3', '01.2.3.4').map((s) => ({ s, canonical: true }))),
  };
  const schemas: Array<Record<string, unknown>> = [];
  for (const format of Object.keys(candidates)) schemas.push({ type: 'string', format });
  schemas.push({ type: 'string', format: 'email', maxLength: 12 }, { type: 'string', format: 'uuid', minLength: 36, maxLength: 36 });
  schemas.push({ type: 'string', format: 'email', pattern: PATTERNS[13] }, { type: 'string', format: 'date', pattern: '^20' });
  schemas.forEach((schema, k) => {
    const label = JSON.stringify(schema);
    const g = jsonSchemaGrammar(schema);
    const valid = validator(schema);
    assert.ok(walkValidates(g, valid, label, 100 + k, 20) >= 10, `${label}: random paths complete`);
    const extra = Object.keys(schema).length > 2;
    fc.assert(
      fc.property(candidates[schema.format as string]!, someString.map((s) => ({ s, canonical: false })), ({ s, canonical }, junk) => {
        checkCandidate(g, valid, JSON.stringify(s), canonical && !extra, label);
        checkCandidate(g, valid, JSON.stringify(junk), false, label);
      }),
      { numRuns: 200, seed: k },
    );
  });
});

test('zod: string helpers (their "format" + "pattern"), records and ints compile; every accepted value passes zod itself', () => {
  const cases: Record<string, z.ZodType> = {
    startsWith: z.string().startsWith('ab'),
    endsWith: z.string().endsWith('.png'),
    includes: z.string().includes('x'),
    lowercase: z.string().lowercase().max(10),
    cuid: z.cuid(),
    ulid: z.ulid(),
    nanoid: z.nanoid(),
    e164: z.e164(),
    hex: z.hex().max(8),
    ipv6: z.ipv6(),
    cidrv4: z.cidrv4(),
    base64: z.base64().max(16),
    guid: z.guid(),
    int32: z.int32(),
    nonnegative: z.number().nonnegative(),
    datetimeOffset: z.iso.datetime({ offset: true }),
    record: z.record(z.string(), z.number().int().min(0)),
    recordEnumKeys: z.record(z.enum(['a', 'b']), z.boolean()),
    partialRecord: z.partialRecord(z.enum(['x', 'y', 'z']), z.number().int().max(5)),
    recordPatternKeys: z.record(z.string().regex(/^k\d$/), z.string().max(3)),
  };
  for (const [name, schema] of Object.entries(cases)) {
    const json = z.toJSONSchema(schema, { target: 'draft-7', io: 'output' }) as JsonSchema;
    let g: Grammar;
    assert.doesNotThrow(() => (g = jsonSchemaGrammar(json)), `${name}: ${JSON.stringify(json)}`);
    const valid = (v: unknown): boolean => schema.safeParse(v).success;
    assert.ok(walkValidates(g!, valid, `${name} ${JSON.stringify(json)}`, name.length, 20) >= 10, `${name}: random paths complete`);
  }
  // propertyNames other than names' string keywords are refused, naming it.
  assert.throws(() => jsonSchemaGrammar({ type: 'object', propertyNames: { type: 'string', not: {} } }), /"propertyNames" with "not" is not supported/);
  assert.throws(() => jsonSchemaGrammar({ type: 'object', properties: { a: {} }, propertyNames: { pattern: '^a' } }), /next to declared "properties"/);
});

test('tuples: prefixItems + items (2020-12) and array items + additionalItems (draft 7, zod)', () => {
  const ajv2020 = addFormats(new Ajv2020({ strict: false }) as unknown as Ajv);
  const cases: Array<[Record<string, unknown>, (v: unknown) => boolean, string[], string[]]> = [
    [{ type: 'array', prefixItems: [{ type: 'string', maxLength: 3 }, { type: 'integer', minimum: 0 }], items: false }, (v) => ajv2020.validate({ type: 'array', prefixItems: [{ type: 'string', maxLength: 3 }, { type: 'integer', minimum: 0 }], items: false }, v), ['[]', '["a"]', '["a", 1]'], ['["a", 1, 2]', '[1]', '["abcd"]']],
    [{ type: 'array', prefixItems: [{ const: 'x' }], items: { type: 'boolean' }, minItems: 2, maxItems: 4 }, (v) => ajv2020.validate({ type: 'array', prefixItems: [{ const: 'x' }], items: { type: 'boolean' }, minItems: 2, maxItems: 4 }, v), ['["x", true]', '["x", true, false, true]'], ['["x"]', '[true, true]', '["x", 1]']],
  ];
  for (const zs of [z.tuple([z.string().max(4), z.number().int()]), z.tuple([z.enum(['a', 'b'])]).rest(z.boolean())]) {
    const json = z.toJSONSchema(zs, { target: 'draft-7' }) as Record<string, unknown>;
    cases.push([json, (v) => zs.safeParse(v).success && validator(json)(v), [], []]);
  }
  for (const [schema, valid, good, bad] of cases) {
    const g = jsonSchemaGrammar(schema);
    for (const t of good) assert.ok(valid(JSON.parse(t)) && g.accepts(t), `${JSON.stringify(schema)} accepts ${t}`);
    for (const t of bad) assert.equal(g.accepts(t), false, `${JSON.stringify(schema)} rejects ${t}`);
    assert.ok(walkValidates(g, valid, JSON.stringify(schema), 9, 30) >= 20);
  }
  assert.throws(() => jsonSchemaGrammar({ type: 'array', prefixItems: [{}], items: false, minItems: 2 }), /"minItems" is larger than the closed tuple/);
});

test('keywords compose with type arrays, nullable, $defs and objects; values outside are refused', () => {
  const schema = {
    type: 'object',
    properties: {
      age: { type: 'integer', minimum: 0, maximum: 150 },
      score: { type: ['number', 'null'], exclusiveMinimum: -1, maximum: 1 },
      code: { $ref: '#/$defs/code' },
      when: { type: 'string', format: 'date', nullable: true },
    },
    required: ['age', 'score', 'code'],
    additionalProperties: false,
    $defs: { code: { type: 'string', pattern: '^[A-Z]{3}-\\d{2}$' } },
  };
  const g = jsonSchemaGrammar(schema);
  const valid = validator({ ...schema, properties: { ...schema.properties, when: { anyOf: [{ type: 'string', format: 'date' }, { type: 'null' }] } } });
  assert.ok(walkValidates(g, valid, 'composed', 7, 40) >= 20);
  assert.ok(g.accepts('{"age": 30, "score": null, "code": "ABC-12", "when": "2024-01-31"}'));
  for (const bad of ['{"age": -1, "score": null, "code": "ABC-12"}', '{"age": 3, "score": -1, "code": "ABC-12"}', '{"age": 3, "score": 0, "code": "AB-12"}', '{"age": 3, "score": 0, "code": "ABC-12", "when": "2024-02-30"}']) {
    assert.equal(g.accepts(bad), false, bad);
  }
});

test('unsupported constructs and malformed keywords are UsageErrors naming them', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ type: 'string', pattern: '(?=a)' }, /"pattern" "\(\?=a\)": the group "\(\?=" \(lookaround\)/],
    [{ type: 'string', pattern: '(?<!a)b' }, /lookaround/],
    [{ type: 'string', pattern: '\\bword' }, /the word boundary "\\b"/],
    [{ type: 'string', pattern: '(a)\\1' }, /the escape "\\1"/],
    [{ type: 'string', pattern: '\\p{L}' }, /the escape "\\p"/],
    [{ type: 'string', pattern: 'a{2000}' }, /the quantifier \{2000\}/],
    [{ type: 'string', pattern: '[a-' }, /unclosed "\["/],
    [{ type: 'string', pattern: '(ab' }, /unclosed "\("/],
    [{ type: 'string', pattern: 'a)' }, /unmatched "\)"/],
    [{ type: 'string', pattern: '^*' }, /quantified anchor/],
    [{ type: 'string', pattern: 3 }, /"pattern" must be a string/],
    [{ type: 'string', pattern: '(a|b)*a(a|b){20}' }, /too complex to compile/],
    [{ type: 'string', format: 'uri' }, /the format "uri" is not supported \(supported: date, time, date-time, uuid, email, ipv4; any other only next to a "pattern"/],
    [{ type: 'string', minLength: 3, maxLength: 2 }, /"minLength" is larger than "maxLength"/],
    [{ type: 'string', minLength: -1 }, /"minLength" must be an integer >= 0/],
    [{ type: 'string', maxLength: 2 ** 40 }, /"maxLength" above 1073741824 is not supported/],
    [{ type: 'integer', multipleOf: 1e300 }, /"multipleOf" above 9007199254740991 is not supported/],
    [{ type: 'string', pattern: '^\\d+$', format: 'email' }, /no string satisfies "pattern" "\^\\\\d\+\$" with "format" "email"/],
    [{ type: 'integer', minimum: 5, maximum: 4 }, /no integer within the bounds exists/],
    [{ type: 'integer', minimum: 1.2, maximum: 1.8 }, /no integer within the bounds exists/],
    [{ type: 'number', minimum: 'x' }, /"minimum" must be a number/],
    [{ type: 'integer', multipleOf: 0 }, /"multipleOf" must be a number > 0/],
    [{ type: 'integer', multipleOf: 7, minimum: 1, maximum: 6 }, /no integer within the bounds and a multiple of 7 exists/],
    [{ minLength: 1, minimum: 1 }, /string and number keywords without a "type"/],
    [{ enum: ['a', 'b'], minLength: 1 }, /"enum" together with "minLength"/],
  ];
  cases.forEach(([schema, re], i) => {
    assert.throws(
      () => compileResponseFormat({ type: 'json_schema', schema: schema as JsonSchema }),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
      `case ${i} (${re}): ${(() => {
        try {
          compileResponseFormat({ type: 'json_schema', schema: schema as JsonSchema });
          return 'compiled';
        } catch (e) {
          return (e as Error).message;
        }
      })()}`,
    );
  });
});

// ---------------------------------------------------------------- masks and generation

test('token mask inside number and string machines equals brute force (demo tokenizer)', () => {
  const tok = loadTokenizerSync(path.join(packageRoot(), 'models', 'demo'));
  const t = tokenTable(tok);
  const grammars = [
    jsonSchemaGrammar({ type: 'object', properties: { n: { type: 'number', minimum: -3.25, exclusiveMaximum: 1000 } }, required: ['n'] }),
    jsonSchemaGrammar({ type: 'array', items: { type: 'string', maxLength: 5 }, maxItems: 3 }),
    jsonSchemaGrammar({ type: 'string', format: 'date-time' }),
    jsonSchemaGrammar({ type: 'string', pattern: '^[a-z ]+(, [a-z]+)*$', minLength: 2 }),
    jsonSchemaGrammar({ type: 'integer', multipleOf: 3, minimum: -100 }),
    // Long enough for the plain-text fast path of the walk (whole subtrees at once) to apply.
    jsonSchemaGrammar({ type: 'object', properties: { a: { type: 'string', minLength: 2, maxLength: 30 }, b: { type: 'string', minLength: 3 } }, required: ['a', 'b'] }),
  ];
  const rng = new Rng(5);
  let checked = 0;
  for (let i = 0; i < 70; i++) {
    const s = randomState(grammars[i % grammars.length]!, rng, 24);
    const mask = new Uint8Array(t.vocabSize);
    markAllowed(t.trie, s, mask);
    const brute = new Uint8Array(t.vocabSize);
    for (let id = 0; id < t.vocabSize; id++) if (t.text[id] && s.stepBytes(t.bytes, t.off[id]!, t.off[id + 1]!)) brute[id] = 1;
    assert.deepEqual(mask, brute, `state ${i}`);
    checked++;
  }
  assert.equal(checked, 70);
});

test('constrained generation on the demo model: every output validates under its schema', async () => {
  const { model, tokenizer } = await loadModel('demo');
  const schemas: JsonSchema[] = [
    { type: 'object', properties: { age: { type: 'integer', minimum: 0, maximum: 120 }, ratio: { type: 'number', exclusiveMinimum: 0, maximum: 1 } }, required: ['age', 'ratio'], additionalProperties: false },
    { type: 'object', properties: { id: { type: 'string', format: 'uuid' }, day: { type: 'string', format: 'date' }, ip: { type: 'string', format: 'ipv4' } }, required: ['id', 'day', 'ip'] },
    { type: 'object', properties: { code: { type: 'string', pattern: '^[A-Z]{2}\\d{3}$' }, name: { type: 'string', minLength: 1, maxLength: 8 }, n: { type: 'integer', multipleOf: 5, minimum: -50, maximum: 50 } }, required: ['code', 'name', 'n'] },
    { type: 'array', items: { type: 'string', format: 'email', maxLength: 24 }, minItems: 1, maxItems: 2 },
    { type: 'string', format: 'date-time' },
  ];
  for (const [k, schema] of schemas.entries()) {
    const valid = validator(schema);
    for (const seed of [1, 2]) {
      const r = await generateText(model, tokenizer, tokenizer!.encode('JSON:'), { maxTokens: 200, temperature: 1, seed, responseFormat: { type: 'json_schema', schema } });
      assert.equal(r.finishReason, 'stop', `schema ${k} seed ${seed}: ${r.text}`);
      assert.ok(valid(JSON.parse(r.text)), `schema ${k} seed ${seed}: ${r.text} validates`);
    }
  }
});
