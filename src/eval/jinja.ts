/**
 * Task templates (`doc_to_text`, `doc_to_target`, `doc_to_choice` ...) rendered the way
 * lm-evaluation-harness renders them with Python's jinja2: no block trimming, the trailing
 * newline kept, a variable the document lacks is an error (StrictUndefined), `regex_replace` as
 * a filter. @huggingface/jinja is the engine; three Python behaviours it lacks are added to its
 * value types once, here: `str.capitalize()` lower-cases the rest, `list.index()` and
 * `list.count()`.
 */
import { Environment, Interpreter, parse, tokenize } from '@huggingface/jinja';

type Program = ReturnType<typeof parse>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

/** Raised for a variable the document does not have; carries its name. */
export class UndefinedVariableError extends Error {
  constructor(readonly variable: string) {
    super(`the document has no field "${variable}"`);
  }
}

let patched = false;
let strictDepth = 0;

function patchRuntime(): void {
  if (patched) return;
  patched = true;
  const env = new Environment();
  env.set('s', '');
  env.set('a', []);
  env.set('f', () => null);
  const str = env.lookupVariable('s') as Any;
  const arr = env.lookupVariable('a') as Any;
  const fn = env.lookupVariable('f') as Any;
  const StringValue = str.constructor;
  const ArrayValue = arr.constructor;
  const FunctionValue = fn.constructor;
  const IntegerValue = (env.lookupVariable('a') as Any).builtins.get('length').constructor;
  const wrap = (proto: Any, extra: (self: Any, map: Map<string, unknown>) => void): void => {
    const desc = Object.getOwnPropertyDescriptor(proto, 'builtins')!;
    Object.defineProperty(proto, 'builtins', {
      configurable: true,
      get() {
        const map = desc.get!.call(this) as Map<string, unknown>;
        if (!map.has('__py__')) {
          extra(this, map);
          map.set('__py__', true);
        }
        return map;
      },
    });
  };
  wrap(StringValue.prototype, (self, map) => {
    const s = self.value as string;
    map.set('capitalize', new FunctionValue(() => new StringValue(s.charAt(0).toUpperCase() + s.slice(1).toLowerCase())));
    map.set(
      'regex_replace',
      new FunctionValue((args: Any[]) => {
        const [pattern, repl, count] = args.map((a) => a.value);
        const re = pythonRegex(String(pattern), 'g');
        let n = 0;
        const limit = typeof count === 'number' && count > 0 ? count : Infinity;
        return new StringValue(s.replace(re, (...m: Any[]) => (n++ < limit ? expandPythonReplacement(String(repl), m) : m[0])));
      }),
    );
  });
  const same = (a: Any, b: Any): boolean => a.value === b.value && a.type === b.type;
  wrap(ArrayValue.prototype, (self, map) => {
    const items = self.value as Any[];
    map.set(
      'index',
      new FunctionValue((args: Any[]) => {
        const i = items.findIndex((x) => same(x, args[0]));
        if (i < 0) throw new Error(`${String(args[0]?.value)} is not in list`);
        return new IntegerValue(i);
      }),
    );
    map.set('count', new FunctionValue((args: Any[]) => new IntegerValue(items.filter((x) => same(x, args[0])).length)));
  });
  // StrictUndefined: only while a task template renders.
  const lookup = Environment.prototype.lookupVariable;
  Environment.prototype.lookupVariable = function (this: Environment, name: string) {
    if (strictDepth > 0) {
      try {
        return this.resolve(name).variables.get(name)!;
      } catch {
        throw new UndefinedVariableError(name);
      }
    }
    return lookup.call(this, name);
  };
}

/** `\1` / `\g<1>` / `\g<name>` in a Python replacement string. */
function expandPythonReplacement(repl: string, m: Any[]): string {
  const groups = typeof m[m.length - 1] === 'object' ? (m[m.length - 1] as Record<string, string>) : undefined;
  return repl.replace(/\\(\d+)|\\g<(\w+)>|\\(.)/g, (_all, d: string | undefined, g: string | undefined, c: string | undefined) => {
    if (d !== undefined) return m[Number(d)] ?? '';
    if (g !== undefined) return /^\d+$/.test(g) ? (m[Number(g)] ?? '') : (groups?.[g] ?? '');
    return c === 'n' ? '\n' : c === 't' ? '\t' : c!;
  });
}

/**
 * A Python regular expression as a JavaScript RegExp: leading inline flags such as `(?s)` or
 * `(?i)` become flags, `(?P<name>` becomes `(?<name>`.
 */
export function pythonRegex(pattern: string, extraFlags = ''): RegExp {
  let flags = new Set(extraFlags);
  let p = pattern;
  for (;;) {
    const m = /^\(\?([aiLmsux]+)\)/.exec(p);
    if (!m) break;
    for (const f of m[1]!) if ('ims'.includes(f)) flags.add(f);
    p = p.slice(m[0].length);
  }
  p = p.replace(/\(\?P<(\w+)>/g, '(?<$1>').replace(/\(\?P=(\w+)\)/g, '\\k<$1>');
  flags = new Set([...flags, 'u']);
  try {
    return new RegExp(p, [...flags].join(''));
  } catch {
    flags.delete('u');
    return new RegExp(p, [...flags].join(''));
  }
}

const cache = new Map<string, Program>();
const SENTINEL = '\u0001';

function compile(template: string): Program {
  let program = cache.get(template);
  if (!program) {
    // `x | regex_replace(a, b)` -> `x.regex_replace(a, b)`: the engine has no custom filters.
    // A sentinel keeps a trailing newline (the harness's keep_trailing_newline=True).
    const source = (template + SENTINEL).replace(/\|\s*regex_replace\s*\(/g, '.regex_replace(');
    program = parse(tokenize(source, { lstrip_blocks: false, trim_blocks: false }));
    cache.set(template, program);
  }
  return program;
}

function run(program: Program, doc: Record<string, unknown>): Any {
  patchRuntime();
  const env = new Environment();
  for (const [k, v] of [['true', true], ['false', false], ['none', null], ['True', true], ['False', false], ['None', null]] as const) env.set(k, v);
  env.set('range', (start: number, stop?: number, step = 1) => {
    const [a, b] = stop === undefined ? [0, start] : [start, stop];
    const out: number[] = [];
    for (let i = a; step > 0 ? i < b : i > b; i += step) out.push(i);
    return out;
  });
  for (const [k, v] of Object.entries(doc)) env.set(k, v as Any);
  strictDepth++;
  try {
    return new Interpreter(env).run(program);
  } finally {
    strictDepth--;
  }
}

/** Render a template against a document, as harness's utils.apply_template does. */
export function renderTemplate(template: string, doc: Record<string, unknown>): string {
  const out = String(run(compile(template), doc).value);
  return out.endsWith(SENTINEL) ? out.slice(0, -SENTINEL.length) : out;
}

/**
 * Python's `ast.literal_eval` for what templates produce: lists / tuples / dicts of strings,
 * numbers, True / False / None (JSON, which the engine renders lists as, is a subset).
 */
export function literalEval(text: string): unknown {
  let i = 0;
  const s = text;
  const ws = (): void => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const fail = (): never => {
    throw new SyntaxError(`not a Python literal: ${s.length > 80 ? s.slice(0, 80) + '...' : s}`);
  };
  const value = (): unknown => {
    ws();
    const c = s[i];
    if (c === '[' || c === '(') {
      const close = c === '[' ? ']' : ')';
      i++;
      const out: unknown[] = [];
      ws();
      while (s[i] !== close) {
        out.push(value());
        ws();
        if (s[i] === ',') i++;
        else if (s[i] !== close) fail();
        ws();
      }
      i++;
      return out;
    }
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      ws();
      while (s[i] !== '}') {
        const k = value();
        ws();
        if (s[i++] !== ':') fail();
        out[String(k)] = value();
        ws();
        if (s[i] === ',') i++;
        else if (s[i] !== '}') fail();
        ws();
      }
      i++;
      return out;
    }
    if (c === '"' || c === "'") {
      i++;
      let out = '';
      while (i < s.length && s[i] !== c) {
        if (s[i] === '\\') {
          const e = s[++i]!;
          const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0', b: '\b', f: '\f' };
          if (e in simple) out += simple[e];
          else if (e === 'u' || e === 'x') {
            const len = e === 'u' ? 4 : 2;
            out += String.fromCharCode(parseInt(s.slice(i + 1, i + 1 + len), 16));
            i += len;
          } else out += '\\' + e;
          i++;
        } else out += s[i++];
      }
      if (s[i] !== c) fail();
      i++;
      return out;
    }
    const m = /^(-?\d+(\.\d*)?([eE][-+]?\d+)?|True|False|None|true|false|null)/.exec(s.slice(i));
    if (!m) return fail();
    i += m[0].length;
    const w = m[0];
    if (w === 'True' || w === 'true') return true;
    if (w === 'False' || w === 'false') return false;
    if (w === 'None' || w === 'null') return null;
    return Number(w);
  };
  const v = value();
  ws();
  if (i !== s.length) fail();
  return v;
}
