/**
 * The shipped demo checkpoint (models/demo): files, config, tensor layout, tokenizer ids, and the
 * agreement of tokenizer.json with tokenizer.model (checked against SentencePiece's own
 * spm_encode and against transformers.js' tokenizer code from @lenml/tokenizers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { TokenizerLoader } from '@lenml/tokenizers';
import { normalizeHfConfig } from '../src/config/model-config.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { repoRoot } from './helpers/paths.js';

const DEMO = path.join(repoRoot(), 'models', 'demo');
const CORPUS = path.join(repoRoot(), 'scripts', 'demo-corpus');
const FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.model', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'README.md'];
/** The trained model's shape (scripts/demo/train.ts RECIPE.shape). */
const SHAPE = { hidden: 96 };
const readJson = (f: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(DEMO, f), 'utf8')) as Record<string, unknown>;

// ---- an independent reader for sentencepiece_model.proto (pieces only) -------------------------
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, BYTE = 6;
interface SpPiece { piece: string; score: number; type: number }
function spmPieces(buf: Buffer): SpPiece[] {
  let i = 0;
  const varint = (): number => {
    let r = 0, s = 0, b: number;
    do { b = buf[i++]!; r += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80);
    return r;
  };
  const out: SpPiece[] = [];
  while (i < buf.length) {
    const key = varint();
    const wire = key & 7;
    if (wire === 0) { varint(); continue; }
    if (wire === 5) { i += 4; continue; }
    if (wire === 1) { i += 8; continue; }
    assert.equal(wire, 2, 'tokenizer.model: unexpected top-level wire type');
    const len = varint();
    const end = i + len;
    if (key >>> 3 !== 1) { i = end; continue; }
    const p: SpPiece = { piece: '', score: 0, type: NORMAL };
    while (i < end) {
      const k = varint();
      if (k === (1 << 3 | 2)) { const l = varint(); p.piece = buf.toString('utf8', i, i + l); i += l; }
      else if (k === (2 << 3 | 5)) { p.score = buf.readFloatLE(i); i += 4; }
      else if (k === (3 << 3 | 0)) p.type = varint();
      else assert.fail(`tokenizer.model: unexpected piece field ${k}`);
    }
    out.push(p);
  }
  return out;
}

function corpusLines(): { file: string; lines: string[] }[] {
  return fs.readdirSync(CORPUS).filter((f) => f.endsWith('.txt')).sort().map((f) => {
    const lines = fs.readFileSync(path.join(CORPUS, f), 'utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return { file: path.join(CORPUS, f), lines };
  });
}

/** spm_encode (Debian sentencepiece) ids of every line of a file. */
function spmEncode(file: string): number[][] {
  let out: string;
  try {
    out = execFileSync('spm_encode', [`--model=${path.join(DEMO, 'tokenizer.model')}`, '--output_format=id', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  } catch (e) {
    throw new Error(`spm_encode failed (the reference SentencePiece tool: apt-get install sentencepiece): ${(e as Error).message}`);
  }
  return out.split('\n').slice(0, -1).map((l) => (l === '' ? [] : l.split(' ').map(Number)));
}

test('demo model: all files present, a few MB in total', () => {
  let total = 0;
  for (const f of FILES) {
    const p = path.join(DEMO, f);
    assert.ok(fs.existsSync(p), `${f} is missing`);
    total += fs.statSync(p).size;
  }
  assert.ok(total > 500_000 && total < 6 * 1024 * 1024, `total size ${total} bytes`);
  const readme = fs.readFileSync(path.join(DEMO, 'README.md'), 'utf8');
  assert.match(readme, /trained from scratch by gemma-ts/, 'README says how the model was made');
  assert.match(readme, /held-out/, 'README reports held-out scores');
  assert.doesNotMatch(readme, /weights are random/i);
});

test('demo model: config.json is a Gemma 3 text config that normalizes', () => {
  const raw = readJson('config.json');
  assert.equal(raw.model_type, 'gemma3_text');
  const { config, notices } = normalizeHfConfig(raw);
  assert.deepEqual(notices, []);
  assert.equal(config.family, 'gemma3');
  assert.equal(config.hiddenSize, SHAPE.hidden);
  assert.equal(config.numHeads, 4);
  assert.equal(config.numKvHeads, 2);
  assert.equal(config.headDim, SHAPE.hidden / 4);
  assert.equal(config.numLayers, 4);
  assert.equal(config.qkNorm, true);
  assert.deepEqual(config.eosIds, [1, 106]);
  assert.equal(config.bosId, 2);
  // Gemma 3's pattern (every sixth layer global) leaves 4 layers all local: window 512, base 10k.
  assert.deepEqual(config.layers.map((l) => l.sliding), [true, true, true, true]);
  assert.deepEqual(config.layers.map((l) => l.ropeTheta), [1e4, 1e4, 1e4, 1e4]);
  assert.equal(config.layers[0]!.window, 512);
  // The embedding table is padded past the tokenizer's 1000 pieces to a multiple of 64.
  assert.equal(config.vocabSize, 1024);
  const gen = readJson('generation_config.json');
  assert.deepEqual(gen.eos_token_id, [1, 106]);
  assert.equal(gen.do_sample, false, 'greedy by default: the answers are meant to be exact');
});

test('demo model: safetensors tensors have the exact HF Gemma 3 names, shapes and BF16 data', () => {
  const buf = fs.readFileSync(path.join(DEMO, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n)) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const c = readJson('config.json') as Record<string, number>;
  const H = c.hidden_size!, D = c.head_dim!, I = c.intermediate_size!;
  const want: Record<string, number[]> = { 'model.embed_tokens.weight': [c.vocab_size!, H], 'model.norm.weight': [H] };
  for (let i = 0; i < c.num_hidden_layers!; i++) {
    const p = `model.layers.${i}.`;
    Object.assign(want, {
      [`${p}self_attn.q_proj.weight`]: [c.num_attention_heads! * D, H],
      [`${p}self_attn.k_proj.weight`]: [c.num_key_value_heads! * D, H],
      [`${p}self_attn.v_proj.weight`]: [c.num_key_value_heads! * D, H],
      [`${p}self_attn.o_proj.weight`]: [H, c.num_attention_heads! * D],
      [`${p}self_attn.q_norm.weight`]: [D],
      [`${p}self_attn.k_norm.weight`]: [D],
      [`${p}input_layernorm.weight`]: [H],
      [`${p}post_attention_layernorm.weight`]: [H],
      [`${p}pre_feedforward_layernorm.weight`]: [H],
      [`${p}post_feedforward_layernorm.weight`]: [H],
      [`${p}mlp.gate_proj.weight`]: [I, H],
      [`${p}mlp.up_proj.weight`]: [I, H],
      [`${p}mlp.down_proj.weight`]: [H, I],
    });
  }
  const names = Object.keys(header).filter((k) => k !== '__metadata__').sort();
  assert.deepEqual(names, Object.keys(want).sort());
  const ranges: [number, number][] = [];
  for (const name of names) {
    const t = header[name]!;
    assert.equal(t.dtype, 'BF16', name);
    assert.deepEqual(t.shape, want[name], name);
    assert.equal(t.data_offsets[1] - t.data_offsets[0], t.shape.reduce((a, b) => a * b, 1) * 2, name);
    ranges.push(t.data_offsets);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  ranges.forEach((r, i) => assert.equal(r[0], i === 0 ? 0 : ranges[i - 1]![1], 'tensors are packed without gaps or overlap'));
  assert.equal(8 + n + ranges[ranges.length - 1]![1], buf.length, 'data ends at the end of the file');

  // Values: finite, and trained: the RMSNorm weights (initialized to 0, applied as 1 + w) moved.
  const stats = (name: string): { mean: number; std: number } => {
    const t = header[name]!;
    const base = 8 + n + t.data_offsets[0];
    const count = (t.data_offsets[1] - t.data_offsets[0]) / 2;
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    let s = 0, s2 = 0;
    for (let i = 0; i < count; i++) {
      u[0] = buf.readUInt16LE(base + 2 * i) << 16;
      assert.ok(Number.isFinite(f[0]!), `${name}[${i}] is not finite`);
      s += f[0]!; s2 += f[0]! * f[0]!;
    }
    const mean = s / count;
    return { mean, std: Math.sqrt(s2 / count - mean * mean) };
  };
  for (const name of names) stats(name);
  const emb = stats('model.embed_tokens.weight');
  assert.ok(emb.std > 0.005 && emb.std < 1, `embedding std ${emb.std}`);
  const norm = stats('model.layers.0.input_layernorm.weight');
  assert.ok(norm.std > 0.001 || Math.abs(norm.mean) > 0.001, `norm mean ${norm.mean} std ${norm.std}: untrained?`);
});

test('demo model: tokenizer.model has Gemma ids, types and options', () => {
  const pieces = spmPieces(fs.readFileSync(path.join(DEMO, 'tokenizer.model')));
  assert.equal(pieces.length, 1000);
  const at = (id: number): [string, number] => [pieces[id]!.piece, pieces[id]!.type];
  assert.deepEqual(at(0), ['<pad>', CONTROL]);
  assert.deepEqual(at(1), ['<eos>', CONTROL]);
  assert.deepEqual(at(2), ['<bos>', CONTROL]);
  assert.deepEqual(at(3), ['<unk>', UNKNOWN]);
  assert.deepEqual(at(4), ['<mask>', USER_DEFINED]);
  assert.deepEqual(at(105), ['<start_of_turn>', USER_DEFINED]);
  assert.deepEqual(at(106), ['<end_of_turn>', USER_DEFINED]);
  assert.deepEqual(at(107), ['\n', USER_DEFINED]);
  // 256 byte-fallback pieces in order, then learned BPE pieces with strictly decreasing scores.
  const firstByte = pieces.findIndex((p) => p.type === BYTE);
  for (let b = 0; b < 256; b++) assert.deepEqual(at(firstByte + b), [`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, BYTE]);
  const normal = pieces.filter((p) => p.type === NORMAL);
  assert.ok(normal.length > 400);
  for (let i = 1; i < normal.length; i++) assert.ok(normal[i]!.score < normal[i - 1]!.score);
  // split_digits: no learned piece holds two digits.
  assert.ok(!normal.some((p) => /\d\d/.test(p.piece)), 'a piece holds several digits');
});

test('demo model: tokenizer.json vocab and specials match tokenizer.model', () => {
  const pieces = spmPieces(fs.readFileSync(path.join(DEMO, 'tokenizer.model')));
  const tj = readJson('tokenizer.json') as { model: { type: string; byte_fallback: boolean; vocab: Record<string, number> }; added_tokens: { id: number; content: string; special: boolean }[] };
  assert.equal(tj.model.type, 'BPE');
  assert.equal(tj.model.byte_fallback, true);
  assert.equal(Object.keys(tj.model.vocab).length, pieces.length);
  pieces.forEach((p, id) => assert.equal(tj.model.vocab[p.piece], id, `piece ${JSON.stringify(p.piece)}`));
  const special = tj.added_tokens.filter((t) => t.special).map((t) => [t.id, t.content]);
  assert.deepEqual(special, [[0, '<pad>'], [1, '<eos>'], [2, '<bos>'], [3, '<unk>'], [105, '<start_of_turn>'], [106, '<end_of_turn>']]);
});

test('demo model: tokenizer.json (transformers.js) gives the same ids as spm_encode on the whole corpus', () => {
  const tk = TokenizerLoader.fromPreTrained({ tokenizerJSON: readJson('tokenizer.json') as never, tokenizerConfig: readJson('tokenizer_config.json') as never });
  let lines = 0;
  for (const { file, lines: text } of corpusLines()) {
    const ref = spmEncode(file);
    assert.equal(ref.length, text.length, file);
    text.forEach((line, i) => {
      assert.deepEqual(tk.encode(line, { add_special_tokens: false }), ref[i], `${path.basename(file)}:${i + 1} ${JSON.stringify(line)}`);
    });
    lines += text.length;
  }
  assert.ok(lines > 2000);
});

test('demo model: loadTokenizer gives spm_encode ids from both tokenizer.json and tokenizer.model', async () => {
  const fromJson = await loadTokenizer(path.join(DEMO, 'tokenizer.json'));
  const fromModel = await loadTokenizer(path.join(DEMO, 'tokenizer.model'));
  for (const t of [fromJson, fromModel]) {
    assert.equal(t.vocabSize, 1000);
    assert.equal(t.bosId, 2);
    assert.equal(t.padId, 0);
    assert.ok(t.stopIds.includes(1) && t.stopIds.includes(106), `stop ids ${t.stopIds}`);
  }
  for (const { file, lines } of corpusLines()) {
    const ref = spmEncode(file);
    lines.forEach((line, i) => {
      const where = `${path.basename(file)}:${i + 1} ${JSON.stringify(line)}`;
      assert.deepEqual(fromJson.encode(line, { addBos: false, parseSpecial: true }), ref[i], `tokenizer.json ${where}`);
      assert.deepEqual(fromModel.encode(line, { addBos: false, parseSpecial: true }), ref[i], `tokenizer.model ${where}`);
    });
  }
  // Whole multi-line texts (newline runs are user-defined pieces) agree between the two files and round-trip.
  const text = fs.readFileSync(path.join(CORPUS, 'code.txt'), 'utf8') + fs.readFileSync(path.join(CORPUS, 'multilingual.txt'), 'utf8');
  const ids = fromJson.encode(text, { addBos: true });
  assert.equal(ids[0], 2);
  assert.deepEqual(fromModel.encode(text, { addBos: true }), ids);
  assert.equal(fromJson.decode(ids, { skipSpecial: true }), text);
});

test('demo model: "Yes" and "No" (and "\u2581Yes", "\u2581No") are single learned pieces, as ShieldGemma scoring needs', async () => {
  const pieces = spmPieces(fs.readFileSync(path.join(DEMO, 'tokenizer.model')));
  const fromJson = await loadTokenizer(path.join(DEMO, 'tokenizer.json'));
  const fromModel = await loadTokenizer(path.join(DEMO, 'tokenizer.model'));
  for (const piece of ['Yes', 'No', '\u2581Yes', '\u2581No']) {
    const id = pieces.findIndex((p) => p.piece === piece);
    assert.ok(id >= 0, `${JSON.stringify(piece)} is not a piece of tokenizer.model`);
    assert.equal(pieces[id]!.type, NORMAL, `${JSON.stringify(piece)} is a learned BPE piece, not a user-defined one`);
    for (const t of [fromJson, fromModel]) assert.equal(t.pieceToId(piece), id, piece);
  }
  for (const word of ['Yes', 'No']) {
    for (const t of [fromJson, fromModel]) {
      const id = t.pieceToId(word);
      assert.notEqual(id, undefined, word);
      assert.deepEqual(t.encode(word, { addBos: false }), [id], `${word} encodes to one id`);
      assert.deepEqual(t.encode(` ${word}`, { addBos: false }), [t.pieceToId(`\u2581${word}`)], ` ${word} encodes to one id`);
    }
  }
});

test('demo model: the chat template is the official Gemma 3 one and renders Gemma turns', () => {
  const cfg = readJson('tokenizer_config.json');
  const official = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'node_modules', '@lenml', 'tokenizer-gemma3', 'models', 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
  assert.equal(cfg.chat_template, official.chat_template);
  assert.equal(cfg.bos_token, '<bos>');
  const out = new Template(cfg.chat_template as string).render({ messages: [{ role: 'user', content: 'Hello' }], bos_token: '<bos>', add_generation_prompt: true });
  assert.equal(out, '<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n');
});
