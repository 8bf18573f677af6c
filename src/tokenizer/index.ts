/**
 * The tokenizer module: loaders, the SentencePiece BPE tokenizer, chat formatting, GGUF vocab.
 * Public as `gemma-ts/tokenizer` (no model code is loaded with it).
 *
 * @module gemma-ts/tokenizer
 */
export type { ChatMessage, DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from './types.js';
export { loadTokenizer, loadTokenizerSync, tokenizerFromJsonFile, tokenizerFromModelFile } from './load.js';
export { SentencePieceTokenizer, PieceType, type TokenizerData } from './sentencepiece.js';
export { renderChat, encodeChat, GEMMA_CHAT_TEMPLATE, type ChatOptions } from './chat.js';
export { tokenizerFromGGUFMetadata, tokenizerToGGUFMetadata, tokenizerFromGGUFFile, type TokenizerToGGUFOptions } from './gguf-vocab.js';
export { tokenizerDataFromHFJson } from './hf-json.js';
export { parseModelProto, tokenizerDataFromModelProto } from './spm-model.js';
