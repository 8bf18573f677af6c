/** Options of `tokenizer.encode`. */
export interface EncodeOptions {
  /**
   * Prepend <bos> (default true). Like Hugging Face tokenizers and llama.cpp, it is prepended even
   * when the text itself begins with "<bos>" parsed as a special token (parseSpecial): the ids
   * then start with two BOS, and `onNotice` is told.
   */
  addBos?: boolean;
  /**
   * Recognize special/added tokens such as "<start_of_turn>" in the text (default false:
   * user text is plain text, which closes the special-token injection hole).
   */
  parseSpecial?: boolean;
  /**
   * With parseSpecial: character ranges [start, end) of `text` in which special tokens are NOT
   * recognized (user content inside a rendered chat template).
   */
  plainRanges?: ReadonlyArray<readonly [number, number]>;
  /**
   * Called with a one-line message about a questionable input (today: a doubled <bos>, the
   * warning llama.cpp prints). The library never prints; the CLI writes notices to stderr.
   */
  onNotice?: (message: string) => void;
}

/** Options of `tokenizer.decode` and stream decoders. */
export interface DecodeOptions {
  /** Drop control tokens (<bos>, <eos>, <pad>, <start_of_turn> ...) from the text (default false). */
  skipSpecial?: boolean;
}

/** Incremental detokenizer: emits text as soon as it is complete UTF-8. */
export interface StreamDecoder {
  /** Push one token id; returns the newly completed text ('' while a UTF-8 sequence is partial). */
  push(id: number): string;
  /** Flush whatever is held back (invalid partial bytes become U+FFFD). */
  flush(): string;
}

/** One chat turn: `user`, `assistant` (or `model`), `system` (folded into the first user turn by Gemma's template). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'model' | string;
  content: string;
}

/** What every part of gemma-ts needs from a tokenizer ({@link SentencePieceTokenizer} implements it). */
export interface Tokenizer {
  /** Number of real pieces (ids 0..vocabSize-1); embedding tables may be padded beyond it. */
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  /** Ids at which generation stops (<eos>, <end_of_turn> when present). */
  readonly stopIds: readonly number[];
  /** The checkpoint's Jinja chat template, if it has one. */
  readonly chatTemplate: string | undefined;
  /** Text to token ids (a leading `<bos>` unless `addBos: false`). */
  encode(text: string, options?: EncodeOptions): number[];
  /** Token ids to text. */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** The piece of an id (`▁the`, `<0x0A>`, `<start_of_turn>` ...). */
  idToPiece(id: number): string | undefined;
  /** The id of a piece. */
  pieceToId(piece: string): number | undefined;
  /** Whether an id is a control / special token. */
  isSpecial(id: number): boolean;
  /** An incremental decoder for streaming generated ids. */
  createStreamDecoder(options?: DecodeOptions): StreamDecoder;
}
