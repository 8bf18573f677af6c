/**
 * Fuzz targets: every parser of untrusted bytes, each with the typed error it may throw.
 *
 * A target turns one input (bytes) into a call of the real reader - through a file on tmpfs for
 * the file readers - and must either succeed or throw one of its `allowed` errors; anything else
 * (TypeError, RangeError, a stack overflow, a 500 from the server) is a finding. Inputs come from
 * fast-check (fuzz-inputs.ts): mutations of the seed corpus (fuzz/corpus/TARGET) and structured
 * generators. Used by `npm run fuzz` (bench/fuzz.ts) and the regression test (fuzz-regression).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { FormatError, TemplateError, TokenizerError, UsageError } from '../src/errors.js';
import { openSafetensors, writeSafetensors } from '../src/formats/safetensors.js';
import { GGUFValueType, readGGUF, readTensorData, writeGGUF, type WriteGGUFOptions } from '../src/formats/gguf.js';
import { NpzArchive } from '../src/formats/npz.js';
import { compileResponseFormat } from '../src/generate/constraint/index.js';
import { GEMMA_CHAT_TEMPLATE, renderChat } from '../src/tokenizer/chat.js';
import { tokenizerFromGGUFMetadata } from '../src/tokenizer/gguf-vocab.js';
import { loadTokenizerSync, tokenizerFromJsonFile, tokenizerFromModelFile } from '../src/tokenizer/load.js';
import type { ChatMessage, Tokenizer } from '../src/tokenizer/types.js';
import { createServer, type GemmaServer } from '../src/server/server.js';
import { FakeModel } from './generate-fakes.js';
import { npyBytes, writeZip } from './helpers/npz-writer.js';
import { repoRoot } from './helpers/paths.js';

type ErrorClass = abstract new (...args: never[]) => Error;

export interface FuzzTarget {
  name: string;
  /** What the input is, for reports. */
  about: string;
  /** The errors a bad input may raise. */
  allowed: ErrorClass[];
  /** Whether inputs are JSON text (mutated as JSON trees as well as bytes). */
  json?: boolean;
  /** Small valid inputs the mutations start from (written to fuzz/corpus/NAME by --make-seeds). */
  seeds(): Uint8Array[];
  /** Words spliced into inputs by the mutator (keywords of the format). */
  dictionary?: string[];
  /** Run one input: resolves, or throws (an allowed error or a finding). */
  run(input: Uint8Array): void | Promise<void>;
  /** Release what run() set up (servers, temp files). */
  close?(): Promise<void>;
}

/** Bytes read from one tensor or array at most (fuzzed sizes are refused long before this). */
const READ_LIMIT = 1 << 20;

const enc = new TextEncoder();
const utf8 = (s: string) => enc.encode(s);
const json = (v: unknown) => utf8(JSON.stringify(v));

let scratchDir: string | undefined;
/** A file path on tmpfs (RAM) when there is one: the file readers take paths. */
function scratch(name: string): string {
  if (!scratchDir) {
    const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
    scratchDir = fs.mkdtempSync(path.join(base, 'gemma-fuzz-'));
    process.once('exit', () => fs.rmSync(scratchDir!, { recursive: true, force: true }));
  }
  return path.join(scratchDir, name);
}

function writeScratch(name: string, input: Uint8Array): string {
  const f = scratch(name);
  fs.writeFileSync(f, input);
  return f;
}

/** The bytes a writer puts in a file. */
function fileBytes(name: string, write: (file: string) => void): Uint8Array {
  const f = scratch(name);
  write(f);
  return new Uint8Array(fs.readFileSync(f));
}

let demoTokenizer: Tokenizer | undefined;
function demoTok(): Tokenizer {
  demoTokenizer ??= loadTokenizerSync(path.join(repoRoot(), 'models', 'demo'));
  return demoTokenizer;
}

/** Exercise a tokenizer that loaded: encode and decode a few strings with special tokens. */
function useTokenizer(t: Tokenizer): void {
  for (const s of ['Hello world', '<start_of_turn>user\nhi<end_of_turn>', ' \u00e9\ud83d\ude00\n\t ', '']) {
    const ids = t.encode(s);
    t.decode(ids);
  }
}

// ------------------------------------------------------------------ file formats

const safetensors: FuzzTarget = {
  name: 'safetensors',
  about: 'a .safetensors file: openSafetensors, list, read every tensor',
  allowed: [FormatError],
  dictionary: ['"dtype"', '"shape"', '"data_offsets"', '"F32"', '"BF16"', '"F16"', '"I64"', '"__metadata__"', '[0,0]', '[1099511627776]', '18446744073709551615', '-1', '1e300'],
  seeds: () => [
    fileBytes('seed.safetensors', (f) =>
      writeSafetensors(f, [
        { name: 'a', dtype: 'f32', shape: [2, 3], data: new Uint8Array(24).fill(1) },
        { name: 'model.layers.0.w', dtype: 'bf16', shape: [4], data: new Uint8Array(8).fill(2) },
      ], { format: 'pt' }),
    ),
    fileBytes('seed2.safetensors', (f) => writeSafetensors(f, [{ name: 'e', dtype: 'f16', shape: [0], data: new Uint8Array(0) }])),
  ],
  run(input) {
    const src = openSafetensors(writeScratch('in.safetensors', input));
    try {
      for (const t of src.list()) if (t.byteLength <= READ_LIMIT) src.read(t.name);
    } finally {
      src.close();
    }
  },
};

const gguf: FuzzTarget = {
  name: 'gguf',
  about: 'a .gguf file: readGGUF, its tokenizer metadata, read every tensor',
  allowed: [FormatError, TokenizerError],
  dictionary: ['GGUF', 'tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type', 'general.alignment', 'general.architecture', 'gemma3'],
  seeds: () => {
    const tok: WriteGGUFOptions = {
      metadata: [
        { key: 'general.architecture', type: GGUFValueType.STRING, value: 'gemma3' },
        { key: 'general.alignment', type: GGUFValueType.UINT32, value: 32 },
        { key: 'tokenizer.ggml.model', type: GGUFValueType.STRING, value: 'llama' },
        { key: 'tokenizer.ggml.tokens', type: { array: GGUFValueType.STRING }, value: ['<pad>', '<eos>', '<bos>', '<unk>', 'a', 'b', 'ab', '\u2581'] },
        { key: 'tokenizer.ggml.scores', type: { array: GGUFValueType.FLOAT32 }, value: [0, 0, 0, 0, -1, -2, -3, -4] },
        { key: 'tokenizer.ggml.token_type', type: { array: GGUFValueType.INT32 }, value: [3, 3, 3, 2, 1, 1, 1, 1] },
        { key: 'tokenizer.ggml.bos_token_id', type: GGUFValueType.UINT32, value: 2 },
        { key: 'tokenizer.ggml.eos_token_id', type: GGUFValueType.UINT32, value: 1 },
      ],
      tensors: [
        { name: 'token_embd.weight', dtype: 'f32', shape: [2, 4], data: new Uint8Array(32).fill(3) },
        { name: 'blk.0.attn_q.weight', dtype: 'q8_0', shape: [1, 32], data: new Uint8Array(34).fill(4) },
      ],
    };
    return [fileBytes('seed.gguf', (f) => writeGGUF(f, tok))];
  },
  run(input) {
    const file = readGGUF(writeScratch('in.gguf', input));
    if (file.metadata.has('tokenizer.ggml.tokens')) useTokenizer(tokenizerFromGGUFMetadata(file.metadata as Map<string, unknown>));
    for (const t of file.tensors) if (t.byteLength <= READ_LIMIT) readTensorData(file, t);
  },
};

/** A small SentencePiece-BPE tokenizer.json in Gemma's shape. */
function miniTokenizerJson(): unknown {
  const pieces = ['<pad>', '<eos>', '<bos>', '<unk>', '<start_of_turn>', '<end_of_turn>', '<0x0A>', '<0x41>', '\u2581', 'a', 'b', 'ab', '\u2581a', 'h', 'i', 'hi'];
  return {
    version: '1.0',
    added_tokens: [0, 1, 2, 3, 4, 5].map((id) => ({ id, content: pieces[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
    pre_tokenizer: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab: Object.fromEntries(pieces.map((p, i) => [p, i])),
      merges: ['a b', '\u2581 a', 'h i'],
    },
  };
}

const tokenizerJson: FuzzTarget = {
  name: 'tokenizer-json',
  about: 'a tokenizer.json: load, encode, decode',
  allowed: [TokenizerError],
  json: true,
  dictionary: ['"BPE"', '"vocab"', '"merges"', '"added_tokens"', '"normalizer"', '"byte_fallback"', '"<0x41>"', '1000000000', '99999999'],
  seeds: () => [json(miniTokenizerJson())],
  run(input) {
    useTokenizer(tokenizerFromJsonFile(writeScratch('tokenizer.json', input), {}));
  },
};

/** Protobuf encoding of the few ModelProto fields a SentencePiece BPE model needs (a tiny seed). */
function miniTokenizerModel(): Uint8Array {
  const out: number[] = [];
  const varint = (v: number, to: number[]) => {
    while (v > 0x7f) to.push((v & 0x7f) | 0x80), (v >>>= 7);
    to.push(v);
  };
  const field = (to: number[], num: number, wire: number) => varint((num << 3) | wire, to);
  const bytesField = (to: number[], num: number, b: ArrayLike<number>) => (field(to, num, 2), varint(b.length, to), to.push(...Array.from(b)));
  const pieces: Array<[string, number, number]> = [['<unk>', 0, 2], ['<s>', 0, 3], ['</s>', 0, 3], ['<0x0A>', 0, 6], ['<0x41>', 0, 6], ['\u2581', -1, 1], ['a', -2, 1], ['b', -3, 1], ['ab', -4, 1], ['\u2581a', -5, 1], ['<start_of_turn>', 0, 4]];
  for (const [text, score, type] of pieces) {
    const sub: number[] = [];
    bytesField(sub, 1, utf8(text));
    field(sub, 2, 5);
    const f = new Uint8Array(new Float32Array([score]).buffer);
    sub.push(...f);
    field(sub, 3, 0);
    varint(type, sub);
    bytesField(out, 1, sub);
  }
  const trainer: number[] = [];
  for (const [num, v] of [[3, 2], [4, pieces.length], [35, 1], [40, 0], [41, 1], [42, 2]] as const) field(trainer, num, 0), varint(v, trainer);
  bytesField(out, 2, trainer);
  const norm: number[] = [];
  bytesField(norm, 1, utf8('identity'));
  for (const num of [3, 4, 5]) field(norm, num, 0), varint(num === 4 ? 0 : 1, norm);
  bytesField(out, 3, norm);
  return Uint8Array.from(out);
}

const tokenizerModel: FuzzTarget = {
  name: 'tokenizer-model',
  about: 'a SentencePiece tokenizer.model (protobuf): load, encode, decode',
  allowed: [FormatError, TokenizerError],
  // The real spm_train models (test/fixtures/tokenizer) are replayed by the regression test;
  // mutations start from a small one (faster, and a mutation is likelier to hit a field that matters).
  seeds: () => [miniTokenizerModel()],
  run(input) {
    useTokenizer(tokenizerFromModelFile(writeScratch('tokenizer.model', input), {}));
  },
};

const npz: FuzzTarget = {
  name: 'npz',
  about: 'an .npz archive (zip of .npy, stored or deflated, zip64): open, read every array',
  allowed: [FormatError],
  dictionary: ['PK\u0003\u0004', 'PK\u0001\u0002', 'PK\u0005\u0006', '\u0093NUMPY', "'descr': '<f4'", "'fortran_order': True", "'shape': (1000000000, 1000000000), "],
  seeds: () => {
    const arr = (shape: number[], descr: '<f4' | '<f8' | '<f2') => ({ name: 'x', descr, shape, data: new Float64Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => i / 7) });
    const files = [
      { name: 'W_enc.npy', bytes: npyBytes(arr([2, 3], '<f4')) },
      { name: 'threshold.npy', bytes: npyBytes(arr([3], '<f8')) },
    ];
    return [
      fileBytes('a.npz', (f) => writeZip(f, files)),
      fileBytes('b.npz', (f) => writeZip(f, files, { deflate: true })),
      fileBytes('c.npz', (f) => writeZip(f, [{ name: 'b_dec.npy', bytes: npyBytes(arr([4], '<f2'), 2) }], { zip64: true })),
    ];
  },
  async run(input) {
    const a = NpzArchive.open(writeScratch('in.npz', input));
    try {
      for (const name of a.names()) {
        const info = await a.info(name);
        if (info.shape.reduce((x, y) => x * y, 1) * 4 <= READ_LIMIT) await a.read(name);
      }
    } finally {
      a.close();
    }
  },
};

// ------------------------------------------------------------------ text formats

const DEMO_TEMPLATE = (): string => (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'models', 'demo', 'tokenizer_config.json'), 'utf8')) as { chat_template: string }).chat_template;

/**
 * Chat templates: {template?, messages, add_generation_prompt?} as JSON. Without `template` the
 * input's messages go through the checkpoint's template (the requests' side); with one, the
 * template source itself is fuzzed.
 */
const chatTemplate: FuzzTarget = {
  name: 'chat-template',
  about: 'Jinja chat templates and the messages rendered through them',
  allowed: [TemplateError],
  json: true,
  dictionary: ['{{', '}}', '{%', '%}', '{%-', '-%}', ' for m in messages ', ' endfor ', ' if ', ' endif ', ' set x = ', 'raise_exception(', 'range(100)', '|trim', '|length', 'loop.index0', "messages[0]['content']", 'namespace(', '"role"', '"system"', '"assistant"', '"tool"'],
  seeds: () => [
    json({ messages: [{ role: 'user', content: 'Hi' }], add_generation_prompt: true }),
    json({ messages: [{ role: 'system', content: 'Be terse.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }, { role: 'user', content: 'Why?' }] }),
    json({ template: GEMMA_CHAT_TEMPLATE, messages: [{ role: 'user', content: 'Hi' }] }),
    json({ template: DEMO_TEMPLATE(), messages: [{ role: 'user', content: 'Hi' }, { role: 'model', content: 'Yo' }, { role: 'user', content: 'ok' }] }),
  ],
  run(input) {
    let v: { template?: unknown; messages?: unknown; add_generation_prompt?: unknown };
    try {
      v = JSON.parse(new TextDecoder().decode(input)) as typeof v;
    } catch {
      return; // not an input of this target (the JSON reader is not what is fuzzed here)
    }
    if (typeof v !== 'object' || v === null) return;
    const template = typeof v.template === 'string' ? v.template : DEMO_TEMPLATE();
    renderChat(demoTok(), v.messages as ChatMessage[], { template, addGenerationPrompt: v.add_generation_prompt === true });
  },
};

const jsonSchema: FuzzTarget = {
  name: 'json-schema',
  about: 'response_format JSON schemas: compile to the output grammar',
  allowed: [UsageError],
  json: true,
  dictionary: ['"type"', '"object"', '"array"', '"string"', '"integer"', '"properties"', '"required"', '"items"', '"anyOf"', '"oneOf"', '"allOf"', '"$ref"', '"#/$defs/a"', '"#"', '"$defs"', '"enum"', '"const"', '"minItems"', '"maxItems"', '"additionalProperties"', '"nullable"', '"pattern"', '1e308', '-1', '4294967296'],
  seeds: () => [
    json({ type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 3 } }, required: ['name'] }),
    json({ $defs: { node: { type: 'object', properties: { v: { type: 'number' }, next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] } }, required: ['v'] } }, $ref: '#/$defs/node' }),
    json({ oneOf: [{ const: 1 }, { type: 'boolean' }, { type: ['string', 'null'] }], nullable: true }),
    json(true),
  ],
  run(input) {
    let schema: unknown;
    try {
      schema = JSON.parse(new TextDecoder().decode(input));
    } catch {
      return;
    }
    compileResponseFormat({ type: 'json_schema', schema: schema as boolean });
  },
};

// ------------------------------------------------------------------ HTTP request bodies

/** An HTTP request as JSON: {url, contentType?, body (a JSON value, or `raw` text)}. */
interface HttpInput {
  url?: unknown;
  contentType?: unknown;
  body?: unknown;
  raw?: unknown;
}

const HTTP_URLS = ['/v1/chat/completions', '/v1/completions'];

/**
 * The server on the demo tokenizer and an instant fake model (every step returns the same logits:
 * no time goes into generation), behind fastify's inject (no sockets). Any 5xx is a finding.
 */
function httpTarget(): FuzzTarget {
  let server: Promise<GemmaServer> | undefined;
  const app = async (): Promise<FastifyInstance> => {
    server ??= (async () => {
      const tok = demoTok();
      const V = tok.vocabSize;
      const logits = new Float32Array(V).map((_, i) => Math.sin(i * 12.9898) * 4);
      return createServer({ model: new FakeModel(V, () => logits, 256), tokenizer: tok, modelId: 'demo', contextSize: 48, parallel: 4, maxQueue: 64, prebuildConstraint: false });
    })();
    return (await server).app;
  };
  return {
    name: 'http',
    about: 'HTTP request bodies of /v1/chat/completions and /v1/completions (no 5xx, OpenAI error shape)',
    allowed: [],
    json: true,
    dictionary: ['"model"', '"demo"', '"messages"', '"role"', '"content"', '"prompt"', '"stream"', '"n"', '"logprobs"', '"top_logprobs"', '"stop"', '"logit_bias"', '"response_format"', '"tools"', '"tool_choice"', '"max_tokens"', '"seed"', '"echo"', '"ignore_eos"', '"json_schema"', '1e999', '-0', '65536'],
    seeds: () => [
      json({ url: '/v1/chat/completions', body: { model: 'demo', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 } }),
      json({ url: '/v1/chat/completions', body: { model: 'demo', messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'Hi' }], max_tokens: 3, stream: true, n: 2, logprobs: true, top_logprobs: 2, stop: ['a'], seed: 1, temperature: 0.7, stream_options: { include_usage: true } } }),
      json({ url: '/v1/chat/completions', body: { model: 'demo', messages: [{ role: 'user', content: 'Weather?' }], max_tokens: 8, tools: [{ type: 'function', function: { name: 'get', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }], tool_choice: 'auto' } }),
      json({ url: '/v1/chat/completions', body: { model: 'demo', messages: [{ role: 'user', content: 'JSON' }], max_tokens: 6, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'integer' } } } } } } }),
      json({ url: '/v1/completions', body: { model: 'demo', prompt: 'Once', max_tokens: 3, echo: true, logit_bias: { '5': 10 } } }),
      json({ url: '/v1/completions', body: { model: 'demo', prompt: [[2, 5, 7], [2, 9]], max_tokens: 2, logprobs: 2, stream: true } }),
      json({ url: '/v1/completions', contentType: 'application/json', raw: '{"model": "demo", "prompt": "a"' }),
    ],
    async run(input) {
      let v: HttpInput;
      try {
        v = JSON.parse(new TextDecoder().decode(input)) as HttpInput;
      } catch {
        v = { raw: new TextDecoder().decode(input) };
      }
      if (typeof v !== 'object' || v === null) v = { body: v };
      const url = typeof v.url === 'string' && HTTP_URLS.includes(v.url) ? v.url : HTTP_URLS[0]!;
      let payload: string;
      try {
        payload = typeof v.raw === 'string' ? v.raw : JSON.stringify(v.body ?? null);
      } catch {
        payload = new TextDecoder().decode(input); // a body nested past JSON.stringify's stack: send it as it came
      }
      const contentType = typeof v.contentType === 'string' && v.contentType.length < 100 ? v.contentType : 'application/json';
      const r = await (await app()).inject({ method: 'POST', url, headers: { 'content-type': contentType }, payload });
      if (r.statusCode >= 500) throw new Error(`HTTP ${r.statusCode}: ${r.body.slice(0, 300)}`);
      if (r.statusCode >= 400) {
        const e = JSON.parse(r.body) as { error?: { message?: unknown; type?: unknown } };
        if (typeof e.error?.message !== 'string' || typeof e.error.type !== 'string') throw new Error(`HTTP ${r.statusCode} without an OpenAI error body: ${r.body.slice(0, 300)}`);
      } else if ((r.headers['content-type'] ?? '').toString().startsWith('text/event-stream')) {
        if (!r.body.endsWith('data: [DONE]\n\n')) throw new Error(`stream without [DONE]: ${r.body.slice(-300)}`);
        if (r.body.includes('"type":"server_error"')) throw new Error(`server error inside the stream: ${r.body.slice(0, 300)}`);
      } else {
        JSON.parse(r.body);
      }
    },
    async close() {
      if (server) await (await server).close();
    },
  };
}

export function fuzzTargets(): FuzzTarget[] {
  return [safetensors, gguf, tokenizerJson, tokenizerModel, npz, chatTemplate, jsonSchema, httpTarget()];
}

/** Whether `e` is one of the target's typed errors. */
export function isAllowed(target: FuzzTarget, e: unknown): boolean {
  return target.allowed.some((c) => e instanceof c);
}

/** The corpus and crash directories of a target (committed under fuzz/). */
export function corpusDirs(target: string): { corpus: string; crashes: string } {
  const root = path.join(repoRoot(), 'fuzz');
  return { corpus: path.join(root, 'corpus', target), crashes: path.join(root, 'crashes', target) };
}

/** Every committed input of a target: its corpus, then its crashes. */
export function committedInputs(target: string): Array<{ file: string; bytes: Uint8Array }> {
  const out: Array<{ file: string; bytes: Uint8Array }> = [];
  for (const dir of Object.values(corpusDirs(target))) {
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).sort()) out.push({ file: path.join(dir, f), bytes: new Uint8Array(fs.readFileSync(path.join(dir, f))) });
  }
  return out;
}
