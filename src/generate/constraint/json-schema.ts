/**
 * JSON mode and JSON Schema -> byte grammar (grammar.ts), in the spirit of llama.cpp's
 * json-schema-to-grammar.
 *
 * Output is compact-ish JSON: no whitespace before the value or after it (the value ends the
 * output), and between tokens (after `{` `[` `:` `,` and after a member or element) at most one
 * "whitespace run": nothing, one space, or one newline followed by up to 20 spaces or tabs. That
 * allows pretty-printed JSON but never an endless run of blanks. Numbers have at most 16 integer
 * digits, 16 fraction digits and 3 exponent digits (like llama.cpp), so a looping model cannot
 * write an endless number either.
 *
 * Supported schema keywords: type (object, array, string, number, integer, boolean, null, and
 * arrays of types), properties, required, additionalProperties (false, true or a schema; absent
 * means false, as in llama.cpp and OpenAI's strict mode), items, minItems, maxItems, tuples
 * (prefixItems, or array items with additionalItems), enum, const,
 * anyOf, oneOf (compiled as anyOf: an output matching two alternatives is not prevented), allOf
 * with a single schema, nullable (OpenAPI), $ref to #, #/$defs/... and #/definitions/... (any
 * JSON pointer into the schema, recursion included), and the annotations (title, description,
 * default, examples, $schema, $id, $comment, deprecated, readOnly, writeOnly, $defs, definitions).
 * Value keywords (keywords.ts, machine.ts): minimum / maximum / exclusiveMinimum /
 * exclusiveMaximum (exact; bounded numbers are written in fixed point), multipleOf (integers),
 * minLength / maxLength (code points), pattern (the regex.ts subset), format (date-time, date,
 * time, uuid, email, ipv4; another format only next to a pattern, which then decides),
 * propertyNames (trivial, an enum of names, or string keywords for a map's names).
 * Properties are written in their declared order; required ones always, optional ones may be
 * skipped; additional properties (when allowed) come after them, with plain-text names that
 * differ from the declared ones.
 * Every other keyword that constrains values (uniqueItems, patternProperties, not, ...) is
 * rejected with a UsageError naming it; unknown keywords are ignored, as JSON Schema says.
 */
import { UsageError } from '../../errors.js';
import { GrammarBuilder, strSubAfterLead, type Elem, type Grammar } from './grammar.js';
import { boundedNumber, formatNode, FORMATS, type Bounds } from './keywords.js';
import { compileRegex, intersectMachines, MultipleOfMachine, StringLengthMachine, TooComplexError, type ByteMachine } from './machine.js';
import { parsePattern, RegexSyntaxError, type RegexNode } from './regex.js';

export type JsonSchema = boolean | { [key: string]: unknown };

/** Keywords that change validity and are not supported: rejected, never ignored. */
const UNSUPPORTED = new Set([
  'uniqueItems',
  'contains',
  'minContains',
  'maxContains',
  'unevaluatedItems',
  'unevaluatedProperties',
  'patternProperties',
  'minProperties',
  'maxProperties',
  'dependentRequired',
  'dependentSchemas',
  'dependencies',
  'if',
  'then',
  'else',
  'not',
  '$dynamicRef',
  '$recursiveRef',
]);

const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'] as const;
type JsonType = (typeof TYPES)[number];

/** Keywords that only make sense for one type (used to infer a missing `type`). */
const OBJECT_KEYWORDS = ['properties', 'required', 'additionalProperties'];
const ARRAY_KEYWORDS = ['items', 'minItems', 'maxItems', 'prefixItems', 'additionalItems'];
const STRING_KEYWORDS = ['minLength', 'maxLength', 'pattern', 'format'];
/** Keywords that never change validity (content* are annotations in JSON Schema too). */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$comment', 'deprecated', 'readOnly', 'writeOnly', '$schema', '$id', 'contentEncoding', 'contentMediaType', 'contentSchema']);
const NUMBER_KEYWORDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'];

/** Most rules one schema may compile to, and the largest minItems / maxItems honoured. */
const MAX_RULES = 200_000;
/** Schemas nested (or chained through $refs) deeper than this are refused: the compiler recurses. */
const MAX_SCHEMA_DEPTH = 128;
const MAX_ITEMS_BOUND = 4096;
/** Largest minLength / maxLength honoured (the length machine's state counts characters). */
const MAX_LENGTH_BOUND = 1 << 30;
const MAX_WS_INDENT = 20;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(path: string, message: string): never {
  throw new UsageError(`response_format schema${path ? ` at ${path}` : ''}: ${message}`);
}

/**
 * Compiled value-keyword machines by what they encode (machines are immutable: grammars share
 * them), so that the same bounds or pattern in another schema cost nothing. An LRU.
 */
const machineCache = new Map<string, ByteMachine>();
const MACHINE_CACHE_SIZE = 256;

class SchemaCompiler {
  readonly b = new GrammarBuilder();
  private readonly rootSchema: JsonSchema;
  private readonly refs = new Map<string, number>();
  private cache = new Map<string, Elem>();

  constructor(root: JsonSchema) {
    this.rootSchema = root;
  }

  private ref(rule: number): Elem {
    return { kind: 'ref', rule };
  }

  private memo(key: string, make: () => Elem): Elem {
    let e = this.cache.get(key);
    if (!e) {
      e = make();
      this.cache.set(key, e);
    }
    return e;
  }

  private check(): void {
    if (this.b.ruleCount > MAX_RULES) fail('', `the schema is too large (over ${MAX_RULES} grammar rules)`);
  }

  // ------------------------------------------------------------ JSON building blocks

  /** Optional whitespace: nothing, one space, or a newline and up to 20 spaces / tabs. */
  ws(): Elem {
    return this.memo('ws', () => {
      const blank = this.b.byteSet([0x20, 0x09]);
      let indent: Elem = this.b.rule('indent0', [[]]);
      for (let k = 1; k <= MAX_WS_INDENT; k++) indent = this.b.rule(`indent${k}`, [[], [blank, indent]]);
      return this.b.rule('ws', [[], this.b.literal(' '), [...this.b.literal('\n'), indent]]);
    });
  }

  /** Up to `k` digits. */
  private digits(k: number): Elem {
    return this.memo(`digits${k}`, () => {
      const d = this.b.range(['0', '9']);
      let r: Elem = this.b.rule('digits0', [[]]);
      for (let i = 1; i <= k; i++) r = this.b.rule(`digits${i}`, [[], [d, r]]);
      return r;
    });
  }

  /** 0, or 1-16 digits without a leading zero, optionally negative. */
  integer(): Elem {
    return this.memo('integer', () => {
      const int = this.b.rule('int', [this.b.literal('0'), [this.b.range(['1', '9']), this.digits(15)]]);
      return this.b.rule('integer', [[int], [...this.b.literal('-'), int]]);
    });
  }

  number(): Elem {
    return this.memo('number', () => {
      const d = this.b.range(['0', '9']);
      const frac = this.b.rule('frac', [[], [...this.b.literal('.'), d, this.digits(15)]]);
      const exp = this.b.rule('exp', [[], [this.b.byteSet([0x65, 0x45]), this.b.rule('sign', [[], [this.b.byteSet([0x2b, 0x2d])]]), d, this.digits(2)]]);
      return this.b.rule('number', [[this.integer(), frac, exp]]);
    });
  }

  string(): Elem {
    return this.memo('string', () => this.b.rule('string', [[...this.b.literal('"'), this.b.str()]]));
  }

  private literalValue(v: unknown, path: string): Elem[] {
    const text = JSON.stringify(v);
    if (text === undefined) fail(path, `${String(v)} is not a JSON value`);
    return this.b.literal(text);
  }

  /** Any JSON value (json_object's members, schemas without constraints). */
  anyValue(): Elem {
    return this.memo('any', () => {
      const value = this.b.declare('value');
      const ws = this.ws();
      const v = this.ref(value);
      const member = [this.string(), ws, ...this.b.literal(':'), ws, v, ws];
      const more = this.b.declare('members-more');
      this.b.define(more, [[], [...this.b.literal(','), ws, ...member, this.ref(more)]]);
      const obj = this.b.rule('object', [[...this.b.literal('{'), ws, ...this.b.literal('}')], [...this.b.literal('{'), ws, ...member, this.ref(more), ...this.b.literal('}')]]);
      const elems = this.b.declare('elements-more');
      this.b.define(elems, [[], [...this.b.literal(','), ws, v, ws, this.ref(elems)]]);
      const arr = this.b.rule('array', [[...this.b.literal('['), ws, ...this.b.literal(']')], [...this.b.literal('['), ws, v, ws, this.ref(elems), ...this.b.literal(']')]]);
      this.cache.set('any-object', obj);
      this.b.define(value, [[obj], [arr], [this.string()], [this.number()], this.b.literal('true'), this.b.literal('false'), this.b.literal('null')]);
      return v;
    });
  }

  anyObject(): Elem {
    this.anyValue();
    return this.cache.get('any-object')!;
  }

  // ------------------------------------------------------------ schemas

  private depth = 0;

  /** The grammar element for a value valid under `schema` (found at `path`, a JSON pointer). */
  value(input: unknown, path: string): Elem {
    if (this.depth >= MAX_SCHEMA_DEPTH) fail(path, `the schema nests deeper than ${MAX_SCHEMA_DEPTH} levels (subschemas and $ref chains)`);
    this.depth++;
    try {
      return this.valueAt(input, path);
    } finally {
      this.depth--;
    }
  }

  private valueAt(input: unknown, path: string): Elem {
    this.check();
    if (input === true) return this.anyValue();
    if (input === false) fail(path, 'the schema false accepts no value');
    if (!isObject(input)) fail(path, 'a schema must be an object or a boolean');
    let schema: Record<string, unknown> = input;
    for (const k of Object.keys(schema)) {
      if (UNSUPPORTED.has(k)) fail(path, `the keyword "${k}" is not supported`);
    }
    if (schema.nullable === false) {
      const { nullable: _n, ...rest } = schema;
      schema = rest;
    }
    const keys = Object.keys(schema);
    const constrains = (k: string): boolean =>
      schema[k] !== undefined && (k === 'type' || k === 'nullable' || [...OBJECT_KEYWORDS, ...ARRAY_KEYWORDS, ...STRING_KEYWORDS, ...NUMBER_KEYWORDS].includes(k) || ['enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref'].includes(k));
    const active = keys.filter(constrains);

    if (schema.nullable === true) {
      const { nullable: _n, ...rest } = schema;
      return this.b.rule(`${path}|nullable`, [[this.value(rest, path)], this.b.literal('null')]);
    }
    if (schema.nullable !== undefined && typeof schema.nullable !== 'boolean') fail(path, '"nullable" must be a boolean');

    if ('$ref' in schema) {
      const others = active.filter((k) => k !== '$ref');
      if (others.length) fail(path, `"$ref" together with "${others[0]}" is not supported`);
      return this.refValue(schema.$ref, path);
    }
    if ('const' in schema || 'enum' in schema) return this.enumValue(schema, active, path);
    for (const kw of ['anyOf', 'oneOf'] as const) {
      if (!(kw in schema)) continue;
      const alts = schema[kw];
      if (!Array.isArray(alts) || alts.length === 0) fail(path, `"${kw}" must be a non-empty array of schemas`);
      const others = active.filter((k) => k !== kw);
      if (others.length) fail(path, `"${kw}" together with "${others[0]}" is not supported (move it into the alternatives)`);
      return this.b.rule(`${path}/${kw}`, alts.map((s, i) => [this.value(s, `${path}/${kw}/${i}`)]));
    }
    if ('allOf' in schema) {
      const all = schema.allOf;
      if (!Array.isArray(all) || all.length !== 1) fail(path, '"allOf" is only supported with exactly one schema');
      const others = active.filter((k) => k !== 'allOf');
      if (others.length) fail(path, `"allOf" together with "${others[0]}" is not supported`);
      return this.value(all[0], `${path}/allOf/0`);
    }

    let types: JsonType[];
    const t = schema.type;
    if (t === undefined) {
      // Type-specific keywords without a type: the value is of that type (a subset of what JSON Schema allows).
      const kinds: Array<[JsonType, string[]]> = [['object', OBJECT_KEYWORDS], ['array', ARRAY_KEYWORDS], ['string', STRING_KEYWORDS], ['number', NUMBER_KEYWORDS]];
      const found = kinds.filter(([, kws]) => kws.some((k) => schema[k] !== undefined));
      if (found.length > 1) fail(path, `${found.map(([ty]) => ty).join(' and ')} keywords without a "type"`);
      if (found.length === 0) return this.anyValue();
      types = [found[0]![0]];
    } else {
      const list = Array.isArray(t) ? t : [t];
      if (list.length === 0) fail(path, '"type" must not be an empty array');
      for (const x of list) if (!TYPES.includes(x as JsonType)) fail(path, `unknown type ${JSON.stringify(x)}`);
      types = [...new Set(list as JsonType[])];
    }
    const alts = types.map((ty) => [this.typed(ty, schema, path)]);
    return alts.length === 1 ? alts[0]![0]! : this.b.rule(`${path}/type`, alts);
  }

  private typed(type: JsonType, schema: Record<string, unknown>, path: string): Elem {
    switch (type) {
      case 'string':
        return this.constrainedString(schema, path);
      case 'number':
      case 'integer':
        return this.constrainedNumber(schema, path, type === 'integer');
      case 'boolean':
        return this.memo('boolean', () => this.b.rule('boolean', [this.b.literal('true'), this.b.literal('false')]));
      case 'null':
        return this.memo('null', () => this.b.rule('null', [this.b.literal('null')]));
      case 'object':
        return this.object(schema, path);
      case 'array':
        return this.array(schema, path);
    }
  }

  /** The byte machine for a value keyword, shared across schemas (UsageError when too large to compile). */
  private machineFor(key: string, path: string, what: string, make: () => ByteMachine): ByteMachine {
    let m = machineCache.get(key);
    if (m) {
      machineCache.delete(key);
    } else {
      try {
        m = make();
      } catch (e) {
        if (e instanceof TooComplexError) fail(path, `${what} is too complex to compile (${e.message})`);
        throw e;
      }
    }
    machineCache.set(key, m);
    if (machineCache.size > MACHINE_CACHE_SIZE) machineCache.delete(machineCache.keys().next().value!);
    return m;
  }

  /** A string, under minLength / maxLength / pattern / format when given. */
  private constrainedString(schema: Record<string, unknown>, path: string): Elem {
    const length = (k: 'minLength' | 'maxLength', fallback: number): number => {
      const v = schema[k];
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(path, `"${k}" must be an integer >= 0`);
      if (v > MAX_LENGTH_BOUND) fail(path, `"${k}" above ${MAX_LENGTH_BOUND} is not supported`);
      return v;
    };
    const min = length('minLength', 0);
    const max = length('maxLength', Infinity);
    if (min > max) fail(path, '"minLength" is larger than "maxLength"');
    const nodes: Array<[string, RegexNode]> = [];
    if (schema.pattern !== undefined) {
      const p = schema.pattern;
      if (typeof p !== 'string') fail(path, '"pattern" must be a string');
      try {
        nodes.push([`"pattern" ${JSON.stringify(p)}`, parsePattern(p)]);
      } catch (e) {
        if (e instanceof RegexSyntaxError) fail(path, `"pattern" ${JSON.stringify(p)}: ${e.message} (supported: literals, ., classes, \\d \\w \\s, groups, |, ? * + {m,n}, ^ $)`);
        throw e;
      }
    }
    if (schema.format !== undefined) {
      const f = schema.format;
      const node = typeof f === 'string' ? formatNode(f) : undefined;
      // Another format next to a pattern is an annotation: zod writes its own check as that pattern.
      if (node) nodes.push([`"format" "${f as string}"`, node]);
      else if (typeof f !== 'string' || typeof schema.pattern !== 'string') {
        fail(path, `the format ${JSON.stringify(f)} is not supported (supported: ${Object.keys(FORMATS).join(', ')}; any other only next to a "pattern", which then decides)`);
      }
    }
    if (nodes.length === 0 && min === 0 && max === Infinity) return this.string();
    const what = [...nodes.map(([w]) => w), ...(min > 0 || max < Infinity ? ['the length limits'] : [])].join(' with ');
    const key = `string|${JSON.stringify([schema.pattern, schema.format, min, max])}`;
    return this.memo(key, () => {
      const m = this.machineFor(key, path, what, () => {
        const ms: ByteMachine[] = nodes.map(([, n]) => compileRegex(n, 'json'));
        if (min > 0 || max < Infinity) ms.push(new StringLengthMachine(min, max));
        return ms.length === 1 ? ms[0]! : intersectMachines(ms);
      });
      if (!m.live(0) && !m.final(0)) fail(path, `no string satisfies ${what}`);
      return this.b.rule(`${path}|string`, [[...this.b.literal('"'), this.b.machine(m), ...this.b.literal('"')]]);
    });
  }

  /** A number or an integer, under the bounds and multipleOf when given. */
  private constrainedNumber(schema: Record<string, unknown>, path: string, integer: boolean): Elem {
    const bounds: Bounds = { lower: [], upper: [] };
    const num = (k: string): number | undefined => {
      const v = schema[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(path, `"${k}" must be a number`);
      return v;
    };
    // exclusiveMinimum / exclusiveMaximum: numbers (draft 6+) or booleans that modify minimum / maximum (draft 4).
    for (const [k, ex, side] of [['minimum', 'exclusiveMinimum', bounds.lower], ['maximum', 'exclusiveMaximum', bounds.upper]] as const) {
      const flag = schema[ex];
      const v = num(k);
      if (typeof flag === 'boolean') {
        if (v !== undefined) side.push([v, flag]);
      } else {
        if (v !== undefined) side.push([v, false]);
        const e = num(ex);
        if (e !== undefined) side.push([e, true]);
      }
    }
    let multiple: number | undefined;
    if (schema.multipleOf !== undefined) {
      const m = schema.multipleOf;
      if (typeof m !== 'number' || !(m > 0) || !Number.isFinite(m)) fail(path, '"multipleOf" must be a number > 0');
      if (!Number.isInteger(m)) fail(path, `"multipleOf" ${m} is not supported: only integer values are (the value is then an integer)`);
      if (m > Number.MAX_SAFE_INTEGER) fail(path, `"multipleOf" above ${Number.MAX_SAFE_INTEGER} is not supported`);
      multiple = m;
      // Multiples are integers (and stay exact below 2^53 when the text is parsed as a double).
      integer = true;
      bounds.lower.push([-Number.MAX_SAFE_INTEGER, false]);
      bounds.upper.push([Number.MAX_SAFE_INTEGER, false]);
    }
    if (bounds.lower.length === 0 && bounds.upper.length === 0) return integer ? this.integer() : this.number();
    const key = `${integer ? 'integer' : 'number'}|${JSON.stringify([bounds, multiple])}`;
    return this.memo(key, () => {
      const node = boundedNumber(bounds, integer);
      const what = `${integer ? 'an integer' : 'a number'} within the bounds${multiple !== undefined ? ` and a multiple of ${multiple}` : ''}`;
      if (!node) fail(path, `no ${what.replace(/^an? /, '')} exists (at most ${16} integer digits${integer ? '' : ' and 16 fraction digits'})`);
      const m = this.machineFor(key, path, what, () => {
        const range = compileRegex(node, 'raw');
        return multiple === undefined ? range : intersectMachines([range, new MultipleOfMachine(multiple)]);
      });
      if (!m.live(0) && !m.final(0)) fail(path, `no ${what.replace(/^an? /, '')} exists`);
      return this.b.machine(m);
    });
  }

  private enumValue(schema: Record<string, unknown>, active: string[], path: string): Elem {
    const others = active.filter((k) => k !== 'enum' && k !== 'const' && k !== 'type');
    if (others.length) fail(path, `"${'const' in schema ? 'const' : 'enum'}" together with "${others[0]}" is not supported`);
    let values: unknown[];
    if ('const' in schema) values = [schema.const];
    else {
      if (!Array.isArray(schema.enum) || schema.enum.length === 0) fail(path, '"enum" must be a non-empty array');
      values = schema.enum;
    }
    if ('const' in schema && 'enum' in schema) {
      const c = JSON.stringify(schema.const);
      values = (schema.enum as unknown[]).some((v) => JSON.stringify(v) === c) ? [schema.const] : [];
    }
    if (schema.type !== undefined) {
      const types = (Array.isArray(schema.type) ? schema.type : [schema.type]) as string[];
      values = values.filter((v) => types.some((t) => typeMatches(t, v)));
    }
    if (values.length === 0) fail(path, 'no value of "enum" / "const" satisfies the schema');
    const texts = [...new Set(values.map((v) => JSON.stringify(v)))];
    return this.b.rule(`${path}/enum`, texts.map((s) => this.literalValue(JSON.parse(s), path)));
  }

  private refValue(ref: unknown, path: string): Elem {
    if (typeof ref !== 'string' || !(ref === '#' || ref.startsWith('#/'))) fail(path, `only local "$ref"s (#, #/$defs/..., #/definitions/...) are supported, got ${JSON.stringify(ref)}`);
    let rule = this.refs.get(ref);
    if (rule === undefined) {
      rule = this.b.declare(ref);
      this.refs.set(ref, rule);
      let target: unknown = this.rootSchema;
      if (ref !== '#') {
        for (const raw of ref.slice(2).split('/')) {
          const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
          if (!isObject(target) && !Array.isArray(target)) fail(path, `"$ref" ${ref} does not resolve`);
          target = (target as Record<string, unknown>)[key];
          if (target === undefined) fail(path, `"$ref" ${ref} does not resolve`);
        }
      }
      this.b.define(rule, [[this.value(target, ref.slice(1))]]);
    }
    return this.ref(rule);
  }

  private object(input: Record<string, unknown>, path: string): Elem {
    const schema = this.withPropertyNames(input, path);
    const props = schema.properties ?? {};
    if (!isObject(props)) fail(path, '"properties" must be an object');
    const required = schema.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) fail(path, '"required" must be an array of strings');
    const names = Object.keys(props);
    for (const r of required as string[]) if (!names.includes(r)) fail(path, `the required property "${r}" is not declared in "properties"`);
    const add = schema.additionalProperties ?? false;
    if (typeof add !== 'boolean' && !isObject(add)) fail(path, '"additionalProperties" must be a boolean or a schema');

    const keyNames = schema.propertyNames as Record<string, unknown> | undefined;
    if (names.length === 0 && add === true && !keyNames) return this.anyObject();
    const b = this.b;
    const ws = this.ws();
    const comma = [...b.literal(','), ws];
    const member = (key: Elem[], value: Elem): Elem[] => [...key, ws, ...b.literal(':'), ws, value, ws];
    // tail(emitted): the additional members (or nothing).
    const tail: [Elem, Elem] = (() => {
      if (add === false) {
        const none = this.memo('nothing', () => b.rule('nothing', [[]]));
        return [none, none];
      }
      const key = keyNames ? this.constrainedString(keyNames, `${path}/propertyNames`) : this.keyNotIn(names, `${path}/additionalProperties`);
      const value = this.value(add, `${path}/additionalProperties`);
      const later = b.declare(`${path}|more`);
      b.define(later, [[], [...comma, ...member([key], value), this.ref(later)]]);
      const first = b.rule(`${path}|extra`, [[], [...member([key], value), this.ref(later)]]);
      return [first, this.ref(later)];
    })();
    // after[i][e]: properties i.. remain; e = 1 once a member was written (the next one needs a comma).
    let next: [Elem, Elem] = tail;
    const req = new Set(required as string[]);
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i]!;
      const value = this.value(props[name], `${path}/properties/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`);
      const m = member(b.literal(JSON.stringify(name)), value);
      const optional = !req.has(name);
      const first = b.rule(`${path}|${i}`, [[...m, next[1]], ...(optional ? [[next[0]]] : [])]);
      const later = b.rule(`${path}|${i}+`, [[...comma, ...m, next[1]], ...(optional ? [[next[1]]] : [])]);
      next = [first, later];
    }
    return b.rule(`${path}|object`, [[...b.literal('{'), ws, next[0], ...b.literal('}')]]);
  }

  /**
   * `propertyNames` (zod writes it for records): nothing to do for {"type": "string"}; an
   * "enum" of names becomes those properties, each under additionalProperties (what
   * z.record(z.enum([...]), ...) means); string keywords (pattern, length, format) constrain the
   * names of additional properties when no properties are declared. Anything else is refused.
   */
  private withPropertyNames(schema: Record<string, unknown>, path: string): Record<string, unknown> {
    const pn = schema.propertyNames;
    if (pn === undefined) return schema;
    const { propertyNames: _p, ...rest } = schema;
    if (pn === true || (isObject(pn) && Object.keys(pn).every((k) => k === 'type' || ANNOTATIONS.has(k)) && (pn.type === undefined || pn.type === 'string'))) return rest;
    const at = `${path}/propertyNames`;
    if (!isObject(pn)) fail(at, 'must be a schema object');
    if (pn.type !== undefined && pn.type !== 'string') fail(at, 'property names are strings: "type" must be "string"');
    const keys = Object.keys(pn).filter((k) => k !== 'type' && !ANNOTATIONS.has(k));
    const declared = isObject(schema.properties) && Object.keys(schema.properties).length > 0;
    if (keys.length === 1 && (keys[0] === 'enum' || keys[0] === 'const')) {
      const names = keys[0] === 'enum' ? pn.enum : [pn.const];
      if (!Array.isArray(names) || names.length === 0 || names.some((n) => typeof n !== 'string')) fail(at, `"${keys[0]}" must list strings`);
      if (declared) fail(at, '"enum" next to declared "properties" is not supported');
      const value = schema.additionalProperties ?? true;
      return { ...rest, properties: Object.fromEntries((names as string[]).map((n) => [n, value])), additionalProperties: false };
    }
    const stringOnly = keys.every((k) => STRING_KEYWORDS.includes(k));
    if (!stringOnly) fail(at, `"propertyNames" with ${keys.map((k) => `"${k}"`).join(', ')} is not supported (only "enum" or string keywords: ${STRING_KEYWORDS.join(', ')})`);
    if (declared) fail(at, 'constrained "propertyNames" next to declared "properties" is not supported');
    return { ...rest, propertyNames: pn, additionalProperties: schema.additionalProperties ?? true };
  }

  /**
   * A property name (with quotes) that differs from every name in `names`: plain text up to the
   * first character that leaves every declared name, anything (escapes included) after it.
   */
  private keyNotIn(names: string[], path: string): Elem {
    if (names.length === 0) return this.string();
    for (const n of names) {
      if (!/^[\x20-\x7e]*$/.test(n) || n.includes('"') || n.includes('\\')) {
        fail(path, `additional properties next to the declared property ${JSON.stringify(n)} are only supported when every declared name is plain ASCII`);
      }
    }
    const b = this.b;
    interface Node {
      kids: Map<number, Node>;
      terminal: boolean;
    }
    const root: Node = { kids: new Map(), terminal: false };
    for (const n of names) {
      let v = root;
      for (const c of Buffer.from(n, 'latin1')) {
        let k = v.kids.get(c);
        if (!k) v.kids.set(c, (k = { kids: new Map(), terminal: false }));
        v = k;
      }
      v.terminal = true;
    }
    // Characters that leave the names: multi-byte ones always, plain ASCII ones unless a name continues with them.
    const leads: Elem[][] = [];
    for (const [lo, hi] of [[0xc2, 0xdf], [0xe0, 0xe0], [0xe1, 0xec], [0xed, 0xed], [0xee, 0xef], [0xf0, 0xf0], [0xf1, 0xf3], [0xf4, 0xf4]] as const) {
      leads.push([b.range([lo, hi]), b.str(strSubAfterLead(lo))]);
    }
    const build = (v: Node, depth: number): Elem => {
      const alts: Elem[][] = [...leads];
      if (!v.terminal) alts.push(b.literal('"'));
      const others: number[] = [];
      for (let c = 0x20; c <= 0x7f; c++) if (c !== 0x22 && c !== 0x5c && !v.kids.has(c)) others.push(c);
      alts.push([b.byteSet(others), b.str()]);
      for (const [c, k] of v.kids) alts.push([b.byteSet([c]), build(k, depth + 1)]);
      return b.rule(`${path}|key${depth}`, alts);
    };
    return b.rule(`${path}|key`, [[...b.literal('"'), build(root, 0)]]);
  }

  /**
   * An array. Tuples: `prefixItems` with `items` for the rest (2020-12), or an array `items` with
   * `additionalItems` for the rest (draft 7); `false` for the rest closes the tuple.
   */
  private array(schema: Record<string, unknown>, path: string): Elem {
    let prefix: unknown[] = [];
    let rest: unknown = schema.items ?? true;
    let prefixPath = `${path}/prefixItems`;
    let restPath = `${path}/items`;
    if (Array.isArray(schema.items)) {
      prefix = schema.items;
      rest = schema.additionalItems ?? true;
      prefixPath = `${path}/items`;
      restPath = `${path}/additionalItems`;
    } else if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems)) fail(path, '"prefixItems" must be an array of schemas');
      prefix = schema.prefixItems;
    }
    const bound = (k: 'minItems' | 'maxItems', fallback: number): number => {
      const v = schema[k];
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(path, `"${k}" must be an integer >= 0`);
      if (v > MAX_ITEMS_BOUND) fail(path, `"${k}" above ${MAX_ITEMS_BOUND} is not supported`);
      return v;
    };
    if (prefix.length > MAX_ITEMS_BOUND) fail(path, `tuples of more than ${MAX_ITEMS_BOUND} items are not supported`);
    const min = bound('minItems', 0);
    let max = bound('maxItems', Infinity);
    if (rest === false) max = Math.min(max, prefix.length);
    if (min > max) fail(path, rest === false && min > prefix.length ? '"minItems" is larger than the closed tuple' : '"minItems" is larger than "maxItems"');
    const b = this.b;
    const ws = this.ws();
    const open = [...b.literal('['), ws];
    const close = b.literal(']');
    if (max === 0) return b.rule(`${path}|array`, [[...open, ...close]]);
    const items = prefix.map((p, i) => this.value(p, `${prefixPath}/${i}`));
    let restItem: Elem | undefined;
    const itemAt = (k: number): Elem => (k < items.length ? items[k]! : (restItem ??= this.value(rest, restPath)));
    // after(k): k >= 1 items written.
    const after = (k: number): Elem => {
      if (max === Infinity && k >= min && k >= items.length) {
        const item = itemAt(k);
        const loop = b.declare(`${path}|items${k}+`);
        b.define(loop, [[], [...b.literal(','), ws, item, ws, this.ref(loop)]]);
        return this.ref(loop);
      }
      const alts: Elem[][] = [];
      if (k >= min) alts.push([]);
      if (k < max) alts.push([...b.literal(','), ws, itemAt(k), ws, after(k + 1)]);
      return b.rule(`${path}|items${k}`, alts);
    };
    const alts: Elem[][] = [[...open, itemAt(0), ws, after(1), ...close]];
    if (min === 0) alts.push([...open, ...close]);
    return b.rule(`${path}|array`, alts);
  }
}

function typeMatches(t: string, v: unknown): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'null':
      return v === null;
    case 'object':
      return isObject(v);
    case 'array':
      return Array.isArray(v);
    default:
      return false;
  }
}

/** Grammar of one JSON object (json_object mode). */
export function jsonObjectGrammar(): Grammar {
  const c = new SchemaCompiler(true);
  const root = c.b.declare('root');
  c.b.define(root, [[c.anyObject()]]);
  return c.b.build(root);
}

/** Grammar of one JSON value valid under `schema`. Throws UsageError naming an unsupported keyword or a malformed schema. */
export function jsonSchemaGrammar(schema: JsonSchema): Grammar {
  const c = new SchemaCompiler(schema);
  const root = c.b.declare('root');
  c.b.define(root, [[c.value(schema, '')]]);
  return c.b.build(root);
}
