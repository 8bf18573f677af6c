/**
 * Structured output: constrain generation to one JSON object (`json_object`) or one JSON value
 * valid under a JSON schema (`json_schema`), as OpenAI's and llama.cpp's `response_format` do.
 *
 * A schema compiles (json-schema.ts) to a byte grammar (grammar.ts) whose recognizer state is an
 * immutable, interned value; each sequence keeps its own state (OutputConstraint). At every step
 * the sampler asks whether a token is allowed (its bytes through the automaton: a few cached
 * transitions) and only when needed for the whole mask (a walk of the vocabulary's byte trie,
 * vocab.ts, pruned where the automaton rejects a prefix). Stop ids (<eos>, <end_of_turn>) are
 * allowed only once the value is complete; when nothing can follow the value, generation ends.
 */
import { UsageError } from '../../errors.js';
import type { Tokenizer } from '../../tokenizer/types.js';
import type { Sampler, TokenFilter } from '../sampler.js';
import { type Grammar, type GrammarState } from './grammar.js';
import { jsonObjectGrammar, jsonSchemaGrammar, type JsonSchema } from './json-schema.js';
import { markAllowed, tokenTable, type TokenTable } from './vocab.js';

export type { JsonSchema } from './json-schema.js';
export { Grammar, GrammarState, GrammarBuilder } from './grammar.js';
export { jsonObjectGrammar, jsonSchemaGrammar } from './json-schema.js';
export { tokenTable, markAllowed } from './vocab.js';

/** What to constrain the output to (OpenAI's response_format, with the schema inline). */
export type ResponseFormat =
  | { type: 'text' }
  /** One JSON object; with `schema` (llama.cpp's extension), one valid under it. */
  | { type: 'json_object'; schema?: JsonSchema }
  | { type: 'json_schema'; schema: JsonSchema };

const grammarCache = new Map<string, Grammar>();
const GRAMMAR_CACHE_SIZE = 32;

/**
 * The grammar of a response format (undefined for text), compiled once per distinct format (an
 * LRU of 32). Throws UsageError for a malformed format or an unsupported schema keyword.
 */
export function compileResponseFormat(format: ResponseFormat | undefined): Grammar | undefined {
  if (format === undefined) return undefined;
  if (typeof format !== 'object' || format === null) throw new UsageError('responseFormat must be an object such as { type: "json_object" }');
  if (format.type === 'text') return undefined;
  let schema: JsonSchema | undefined;
  if (format.type === 'json_object') schema = format.schema;
  else if (format.type === 'json_schema') {
    schema = format.schema;
    if (schema === undefined) throw new UsageError('responseFormat json_schema needs a schema');
  } else throw new UsageError(`responseFormat type must be "text", "json_object" or "json_schema", got ${JSON.stringify((format as { type?: unknown }).type)}`);
  if (schema !== undefined && typeof schema !== 'boolean' && (typeof schema !== 'object' || schema === null || Array.isArray(schema))) {
    throw new UsageError('response_format schema: a schema must be an object or a boolean');
  }
  let key = 'json_object';
  if (schema !== undefined) {
    try {
      key = `schema:${JSON.stringify(schema)}`;
    } catch (e) {
      // a cyclic object (library callers) or one nested past the engine's stack
      throw new UsageError(`response_format schema: not serializable as JSON (${(e as Error).message})`);
    }
  }
  let g = grammarCache.get(key);
  if (g) {
    grammarCache.delete(key);
  } else {
    g = schema === undefined ? jsonObjectGrammar() : jsonSchemaGrammar(schema);
    if (!g.initial()) throw new UsageError('response_format schema: it accepts no JSON value');
  }
  grammarCache.set(key, g);
  while (grammarCache.size > GRAMMAR_CACHE_SIZE) grammarCache.delete(grammarCache.keys().next().value!);
  return g;
}

/** Reusable mask buffer (sampling is synchronous and never re-entered). */
let maskBuffer = new Uint8Array(0);

/**
 * One sequence's constraint: the automaton state after the tokens generated so far. A
 * TokenFilter for Sampler.sampleConstrained.
 */
export class OutputConstraint implements TokenFilter {
  readonly grammar: Grammar;
  private readonly table: TokenTable;
  private readonly stopIds: ReadonlySet<number>;
  private current: GrammarState;

  constructor(grammar: Grammar, tokenizer: Tokenizer | undefined, stopIds: ReadonlySet<number>) {
    if (!tokenizer) throw new UsageError('structured output (responseFormat) needs a tokenizer; this model has none');
    this.grammar = grammar;
    this.table = tokenTable(tokenizer);
    this.stopIds = stopIds;
    const s = grammar.initial();
    if (!s) throw new UsageError('the response format accepts no output');
    this.current = s;
  }

  /** The constraint for a response format, or undefined for free text. */
  static create(format: ResponseFormat | undefined, tokenizer: Tokenizer | undefined, stopIds: ReadonlySet<number>): OutputConstraint | undefined {
    const g = compileResponseFormat(format);
    return g ? new OutputConstraint(g, tokenizer, stopIds) : undefined;
  }

  get state(): GrammarState {
    return this.current;
  }

  /** The value is complete and nothing can follow: generation should end. */
  get finished(): boolean {
    return this.current.finished;
  }

  /** The state after token `id`, or null when it is not allowed. */
  private after(id: number): GrammarState | null {
    const t = this.table;
    if (id < 0 || id >= t.vocabSize || !t.text[id]) return null;
    return this.current.stepBytes(t.bytes, t.off[id]!, t.off[id + 1]!);
  }

  allows(id: number): boolean {
    if (this.stopIds.has(id)) return this.current.accept;
    return this.after(id) !== null;
  }

  mask(n: number): Uint8Array {
    if (maskBuffer.length < Math.max(n, this.table.vocabSize)) maskBuffer = new Uint8Array(Math.max(n, this.table.vocabSize));
    const m = maskBuffer;
    m.fill(0, 0, n);
    markAllowed(this.table.trie, this.current, m);
    if (this.current.accept) for (const id of this.stopIds) if (id < n) m[id] = 1;
    return m;
  }

  /** Sample the next token with `sampler` among the allowed ones. */
  sample(sampler: Sampler, row: ArrayLike<number>, n: number, context: readonly number[], generated: readonly number[]): number {
    return sampler.sampleConstrained(row, n, context, generated, this);
  }

  /** Advance past a sampled token (a stop id leaves the state as it is). */
  advance(id: number): void {
    if (this.stopIds.has(id)) return;
    const s = this.after(id);
    if (!s) throw new UsageError(`token ${id} is not allowed by the output constraint here`);
    this.current = s;
  }
}
