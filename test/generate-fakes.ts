/**
 * Fakes for generation tests: a LanguageModel whose logits are a function of the whole context
 * (and which records every forward call), and a character-level tokenizer.
 */
import type { ModelConfig } from '../src/config/model-config.js';
import type { BatchItem, ForwardResult, KVCache, LanguageModel } from '../src/model/types.js';
import type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from '../src/tokenizer/types.js';

export function fakeConfig(vocabSize: number, maxPositionEmbeddings = 4096): ModelConfig {
  return {
    family: 'gemma',
    modelType: 'gemma',
    vocabSize,
    hiddenSize: 8,
    intermediateSize: 16,
    numLayers: 1,
    numHeads: 1,
    numKvHeads: 1,
    headDim: 8,
    rmsNormEps: 1e-6,
    maxPositionEmbeddings,
    queryPreAttnScalar: 8,
    attnSoftcap: 0,
    finalSoftcap: 0,
    qkNorm: false,
    sandwichNorms: false,
    embedScale: Math.sqrt(8),
    layers: [{ sliding: false, window: Infinity, ropeTheta: 10000, ropeScaling: 1 }],
    bosId: 2,
    eosIds: [1],
    padId: 0,
  };
}

export class FakeCache implements KVCache {
  ids: number[] = [];
  constructor(readonly maxTokens: number) {}
  get length(): number {
    return this.ids.length;
  }
  truncate(n: number): void {
    if (n < 0 || n > this.ids.length) throw new Error(`bad truncate ${n} of ${this.ids.length}`);
    this.ids.length = n;
  }
}

/** Logits for the next token given every token so far. */
export type LogitsFn = (context: readonly number[]) => ArrayLike<number>;

export class FakeModel implements LanguageModel {
  readonly config: ModelConfig;
  readonly vocabSize: number;
  /** The ids of every forward call, in order. */
  readonly calls: number[][] = [];
  /** Busy-wait per forward call (ms), to make time pass inside generation. */
  delayMs = 0;

  constructor(
    vocabSize: number,
    private readonly fn: LogitsFn,
    maxPositionEmbeddings = 4096,
  ) {
    this.config = fakeConfig(vocabSize, maxPositionEmbeddings);
    this.vocabSize = vocabSize;
  }

  createCache(maxTokens = this.config.maxPositionEmbeddings): FakeCache {
    return new FakeCache(maxTokens);
  }

  forward(ids: readonly number[], cache: KVCache, options: { allPositions?: boolean } = {}): ForwardResult {
    const c = cache as FakeCache;
    if (ids.length === 0) throw new Error('forward with no ids');
    if (c.length + ids.length > c.maxTokens) throw new Error('cache overflow');
    this.calls.push([...ids]);
    if (this.delayMs > 0) {
      const end = performance.now() + this.delayMs;
      while (performance.now() < end);
    }
    const rows: number[][] = [];
    for (const id of ids) {
      c.ids.push(id);
      rows.push(Array.from(this.fn(c.ids)));
    }
    const use = options.allPositions ? rows : rows.slice(-1);
    const V = use[0]!.length;
    const logits = new Float32Array(use.length * V);
    use.forEach((r, i) => logits.set(r, i * V));
    return { logits, rows: use.length, vocab: V };
  }

  forwardBatch(items: readonly BatchItem[]): ForwardResult[] {
    return items.map((it) => this.forward(it.ids, it.cache, { allPositions: it.allPositions }));
  }

  async forwardAsync(ids: readonly number[], cache: KVCache, options: { allPositions?: boolean } = {}): Promise<ForwardResult> {
    return this.forward(ids, cache, options);
  }

  async forwardBatchAsync(items: readonly BatchItem[]): Promise<ForwardResult[]> {
    return this.forwardBatch(items);
  }

  dispose(): void {}
}

/** A row of `n` logits, all `base`, with the given ids set. */
export function row(n: number, set: Record<number, number>, base = -10): Float32Array {
  const r = new Float32Array(n).fill(base);
  for (const [k, v] of Object.entries(set)) r[Number(k)] = v;
  return r;
}

/**
 * A tokenizer over a fixed piece list. Specials are the pieces written <like_this>. encode is a
 * greedy longest match over the non-special pieces (so it is canonical for these tests).
 */
export class FakeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId = 0;
  readonly stopIds: readonly number[];
  readonly chatTemplate = undefined;
  private readonly byPiece = new Map<string, number>();

  constructor(readonly pieces: readonly string[], stopPieces: readonly string[] = ['<eos>', '<end_of_turn>']) {
    this.vocabSize = pieces.length;
    pieces.forEach((p, i) => this.byPiece.set(p, i));
    this.bosId = this.byPiece.get('<bos>') ?? -1;
    this.eosId = this.byPiece.get('<eos>') ?? -1;
    this.stopIds = stopPieces.map((p) => this.byPiece.get(p)).filter((x): x is number => x !== undefined);
  }

  isSpecial(id: number): boolean {
    return /^<.+>$/.test(this.pieces[id] ?? '');
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = options.addBos === false ? [] : [this.bosId];
    let i = 0;
    while (i < text.length) {
      let best = -1;
      let bestLen = 0;
      this.pieces.forEach((p, id) => {
        if ((this.isSpecial(id) && !options.parseSpecial) || p.length <= bestLen) return;
        if (text.startsWith(p, i)) {
          best = id;
          bestLen = p.length;
        }
      });
      if (best < 0) throw new Error(`fake tokenizer cannot encode ${JSON.stringify(text[i])}`);
      ids.push(best);
      i += bestLen;
    }
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return ids.filter((id) => !(options.skipSpecial && this.isSpecial(id))).map((id) => this.pieces[id] ?? '').join('');
  }

  idToPiece(id: number): string | undefined {
    return this.pieces[id];
  }

  pieceToId(piece: string): number | undefined {
    return this.byPiece.get(piece);
  }

  createStreamDecoder(options: DecodeOptions = {}): StreamDecoder {
    return {
      push: (id: number) => this.decode([id], options),
      flush: () => '',
    };
  }
}
