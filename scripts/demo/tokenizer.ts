/**
 * The demo model's SentencePiece tokenizer, trained with Debian's spm_train (apt-get install
 * sentencepiece) with Gemma's options and ids, and written in every form a Gemma checkpoint ships:
 *   tokenizer.model          spm_train's model (BPE, byte fallback, split digits, identity normalization)
 *   tokenizer.json           converted the way transformers' GemmaConverter does
 *   tokenizer_config.json    with the official Gemma 3 chat template
 *   special_tokens_map.json
 * Ids as in Gemma 3: 0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>, 4 <mask>, 5 [multimodal],
 * 6..104 <unused0..98>, 105 <start_of_turn>, 106 <end_of_turn>, then newline runs and
 * whitespace runs as user-defined pieces, then the 256 byte-fallback pieces, then BPE merges.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Train tokenizer.model on `inputs` (paths relative to `cwd`: spm_train records them inside the
 * model) and write the four tokenizer files into `outDir` (relative to `cwd` as well).
 */
export function trainTokenizer(cwd: string, inputs: string[], outDir: string, vocabSize: number): void {
  const OUT = path.join(cwd, outDir);
  const userDefined = [
    '<mask>',
    '[multimodal]',
    ...Array.from({ length: 99 }, (_, i) => `<unused${i}>`),
    '<start_of_turn>',
    '<end_of_turn>',
    ...Array.from({ length: 31 }, (_, i) => '\n'.repeat(i + 1)),
    ...Array.from({ length: 30 }, (_, i) => '\u2581'.repeat(i + 2)),
  ];
  fs.mkdirSync(OUT, { recursive: true });
  const spmArgs = [
    `--input=${inputs.join(',')}`,
    `--model_prefix=${path.posix.join(outDir, 'tokenizer')}`,
    '--model_type=bpe',
    `--vocab_size=${vocabSize}`,
    '--character_coverage=0.9995',
    '--byte_fallback=true',
    '--split_digits=true',
    '--split_by_whitespace=true',
    '--allow_whitespace_only_pieces=true',
    '--remove_extra_whitespaces=false',
    '--add_dummy_prefix=false',
    '--normalization_rule_name=identity',
    '--pad_id=0', '--eos_id=1', '--bos_id=2', '--unk_id=3',
    '--pad_piece=<pad>', '--eos_piece=<eos>', '--bos_piece=<bos>', '--unk_piece=<unk>',
    `--user_defined_symbols=${userDefined.join(',')}`,
    '--max_sentence_length=16384',
    '--num_threads=1',
    '--minloglevel=2',
  ];
  const spm = spawnSync('spm_train', spmArgs, { encoding: 'utf8', cwd });
  if (spm.error || spm.status !== 0) {
    throw new Error(`spm_train failed (apt-get install sentencepiece): ${spm.error?.message ?? spm.stderr}`);
  }
  fs.rmSync(path.join(OUT, 'tokenizer.vocab'), { force: true });
  const modelBytes = fs.readFileSync(path.join(OUT, 'tokenizer.model'));
  const pieces = readPieces(modelBytes);
  if (pieces.length !== vocabSize) throw new Error(`expected ${vocabSize} pieces, got ${pieces.length}`);
  const expectIds: Record<string, number> = { '<pad>': 0, '<eos>': 1, '<bos>': 2, '<unk>': 3, '<mask>': 4, '<start_of_turn>': 105, '<end_of_turn>': 106 };
  for (const [p, id] of Object.entries(expectIds)) if (pieces[id]?.piece !== p) throw new Error(`${p} is not at id ${id}`);

  const vocab: Record<string, number> = {};
  pieces.forEach((p, id) => { vocab[p.piece] = id; });
  const SPECIAL = new Set(['<start_of_turn>', '<end_of_turn>']);
  const isSpecial = (p: Piece): boolean => p.type === PieceType.CONTROL || p.type === PieceType.UNKNOWN || SPECIAL.has(p.piece);
  
  // Merges as transformers' SentencePieceExtractor builds them: every split of a piece into two
  // pieces of the vocab is a merge ranked by the merged piece's score (higher first), ties broken
  // by longer left, then longer right part. Only pieces the SentencePiece BPE model can reach by
  // merging (normal and user-defined) are merge results.
  const merges: { l: string; r: string; score: number; ll: number; rl: number }[] = [];
  for (const p of pieces) {
    if (p.type !== PieceType.NORMAL && p.type !== PieceType.USER_DEFINED) continue;
    const cps = [...p.piece];
    const local: { l: string; r: string }[] = [];
    for (let k = 1; k < cps.length; k++) {
      const l = cps.slice(0, k).join(''), r = cps.slice(k).join('');
      if (l in vocab && r in vocab) local.push({ l, r });
    }
    local.sort((a, b) => vocab[a.l]! - vocab[b.l]! || vocab[a.r]! - vocab[b.r]!);
    for (const m of local) merges.push({ ...m, score: p.score, ll: [...m.l].length, rl: [...m.r].length });
  }
  merges.sort((a, b) => b.score - a.score || b.ll - a.ll || b.rl - a.rl);
  
  const addedTokens = pieces
    .map((p, id) => ({ p, id }))
    .filter(({ p }) => p.type === PieceType.CONTROL || p.type === PieceType.UNKNOWN || p.type === PieceType.USER_DEFINED)
    .map(({ p, id }) => ({ id, content: p.piece, single_word: false, lstrip: false, rstrip: false, normalized: false, special: isSpecial(p) }));
  
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
    pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<bos>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<bos>': { id: '<bos>', ids: [2], tokens: ['<bos>'] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => [m.l, m.r]),
    },
  };
  fs.writeFileSync(path.join(OUT, 'tokenizer.json'), JSON.stringify(tokenizerJson, null, 1) + '\n');

  const gemma3Config = JSON.parse(fs.readFileSync(path.join(cwd, 'node_modules', '@lenml', 'tokenizer-gemma3', 'models', 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
  const addedDecoder: Record<string, unknown> = {};
  for (const t of addedTokens) addedDecoder[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: t.special };
  const json = (file: string, value: unknown): void => fs.writeFileSync(path.join(OUT, file), JSON.stringify(value, null, 2) + '\n');
  json('tokenizer_config.json', {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: addedDecoder,
    bos_token: '<bos>',
    chat_template: gemma3Config.chat_template,
    clean_up_tokenization_spaces: false,
    eos_token: '<eos>',
    model_max_length: 8192,
    pad_token: '<pad>',
    padding_side: 'left',
    sp_model_kwargs: {},
    spaces_between_special_tokens: false,
    tokenizer_class: 'GemmaTokenizer',
    unk_token: '<unk>',
    use_default_system_prompt: false,
  });
  const tok = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  json('special_tokens_map.json', {
    additional_special_tokens: [tok('<start_of_turn>'), tok('<end_of_turn>')],
    bos_token: tok('<bos>'),
    eos_token: tok('<eos>'),
    pad_token: tok('<pad>'),
    unk_token: tok('<unk>'),
  });
}

// Minimal protobuf reading of sentencepiece_model.proto: ModelProto.pieces = field 1,
// SentencePiece { piece = 1 (string), score = 2 (float), type = 3 (enum, default NORMAL) }.
const enum PieceType { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 }
interface Piece { piece: string; score: number; type: PieceType }

function readPieces(buf: Uint8Array): Piece[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const pieces: Piece[] = [];
  const varint = (p: { i: number }): number => {
    let r = 0, s = 0, b: number;
    do { b = buf[p.i++]!; r += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80);
    return r;
  };
  const skip = (p: { i: number }, wire: number): void => {
    if (wire === 0) varint(p);
    else if (wire === 1) p.i += 8;
    else if (wire === 2) { const l = varint(p); p.i += l; }
    else if (wire === 5) p.i += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  };
  const p = { i: 0 };
  while (p.i < buf.length) {
    const key = varint(p);
    if (key >>> 3 === 1 && (key & 7) === 2) {
      const len = varint(p);
      const end = p.i + len;
      const piece: Piece = { piece: '', score: 0, type: PieceType.NORMAL };
      const q = { i: p.i };
      while (q.i < end) {
        const k = varint(q);
        const f = k >>> 3, w = k & 7;
        if (f === 1 && w === 2) { const l = varint(q); piece.piece = Buffer.from(buf.subarray(q.i, q.i + l)).toString('utf8'); q.i += l; }
        else if (f === 2 && w === 5) { piece.score = dv.getFloat32(q.i, true); q.i += 4; }
        else if (f === 3 && w === 0) piece.type = varint(q) as PieceType;
        else skip(q, w);
      }
      pieces.push(piece);
      p.i = end;
    } else skip(p, key & 7);
  }
  return pieces;
}

