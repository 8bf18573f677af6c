/**
 * GGUF v2/v3 reader and writer (the llama.cpp / ggml checkpoint format).
 *
 * Layout (little endian):
 *   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
 *   kv_count x { string key | u32 value_type | value }
 *   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to `general.alignment` (default 32) | tensor data (each tensor at an aligned offset)
 * where string = u64 length + UTF-8 bytes and an array value = u32 item_type + u64 count + items.
 *
 * The reader parses only the header through a file descriptor and validates everything it can
 * before allocating (a lying count or length can never trigger a giant allocation). Tensor bytes
 * are read lazily, one tensor at a time. The writer streams tensor data to the file.
 */
import * as fs from 'node:fs';
import { FormatError, UsageError } from '../errors.js';
import { DTYPE_LAYOUT, type DType } from './dtype.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little endian
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value types, by their on-disk code. */
export enum GGUFValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

const VALUE_TYPE_NAME: Record<number, string> = {
  0: 'UINT8', 1: 'INT8', 2: 'UINT16', 3: 'INT16', 4: 'UINT32', 5: 'INT32', 6: 'FLOAT32',
  7: 'BOOL', 8: 'STRING', 9: 'ARRAY', 10: 'UINT64', 11: 'INT64', 12: 'FLOAT64',
};

/** Fixed byte size of a scalar value type (strings: the minimum, 8 bytes of length). */
const VALUE_TYPE_SIZE: Record<number, number> = {
  0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8,
};

/**
 * A metadata value. 64-bit integers are numbers when they fit a double exactly, else bigint.
 * Arrays are plain JS arrays (of numbers, strings, booleans, bigints or nested arrays).
 */
export type GGUFValue = number | bigint | boolean | string | GGUFValue[];

/** A value's type: a scalar type, or an array whose items have type `array`. */
export type GGUFType = Exclude<GGUFValueType, GGUFValueType.ARRAY> | { array: GGUFType };

export interface GGUFMetadataEntry {
  key: string;
  type: GGUFType;
  value: GGUFValue;
}

/** ggml tensor type codes. */
export enum GGMLType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
}

/** The ggml types gemma-ts decodes, and their DType names. */
export const GGML_TO_DTYPE: Partial<Record<number, DType>> = {
  [GGMLType.F32]: 'f32',
  [GGMLType.F16]: 'f16',
  [GGMLType.BF16]: 'bf16',
  [GGMLType.Q8_0]: 'q8_0',
  [GGMLType.Q4_0]: 'q4_0',
  [GGMLType.Q4_K]: 'q4_k',
  [GGMLType.Q6_K]: 'q6_k',
};

export const DTYPE_TO_GGML: Record<DType, GGMLType> = {
  f32: GGMLType.F32,
  f16: GGMLType.F16,
  bf16: GGMLType.BF16,
  q8_0: GGMLType.Q8_0,
  q4_0: GGMLType.Q4_0,
  q4_k: GGMLType.Q4_K,
  q6_k: GGMLType.Q6_K,
};

/** Name of a ggml type code, e.g. "Q5_K", or "type 99" if unknown. */
export function ggmlTypeName(type: number): string {
  const name = (GGMLType as unknown as Record<number, string | undefined>)[type];
  return name ?? `type ${type}`;
}

export interface GGUFTensorInfo {
  name: string;
  /** ggml type code as stored. */
  ggmlType: number;
  dtype: DType;
  /** ggml dims, innermost first (ne[0] is the row length). */
  ne: number[];
  /** Row-major (PyTorch) shape: ne reversed. */
  shape: number[];
  /** Offset relative to the start of the data section, as stored. */
  relativeOffset: number;
  /** Absolute byte offset of the tensor data in the file. */
  offset: number;
  byteLength: number;
}

export interface GGUFFile {
  path: string;
  version: number;
  fileSize: number;
  alignment: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
  metadata: Map<string, GGUFValue>;
  /** Metadata in file order with types (for copying into another GGUF). */
  entries: GGUFMetadataEntry[];
  tensors: GGUFTensorInfo[];
  /** Tensor infos by name. */
  tensorMap: Map<string, GGUFTensorInfo>;
}

// ---------------------------------------------------------------------------------------------
// Reader

/**
 * Reads up to `length` bytes at file offset `position` into buf[offset ..]; returns the count read
 * (fewer only at the end of the file). readGGUF passes one over a file descriptor; the web build
 * one over bytes fetched ahead.
 */
export type ReadAt = (buf: Uint8Array, offset: number, length: number, position: number) => number;

/** Buffered sequential reader that never reads past the file. */
class HeaderReader {
  private buf: Uint8Array;
  private view: DataView;
  private bufStart = 0; // file offset of buf[0]
  private bufLen = 0;
  pos = 0;
  constructor(
    private readonly readAt: ReadAt,
    readonly fileSize: number,
    private readonly what: string,
  ) {
    this.buf = new Uint8Array(1 << 20);
    this.view = new DataView(this.buf.buffer);
  }

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Make bytes [pos, pos+n) available in buf; returns their index in buf. */
  private ensure(n: number, context: string): number {
    if (n > this.remaining) {
      throw new FormatError(`${this.what}: truncated file: ${context} needs ${n} bytes at offset ${this.pos} but the file has ${this.fileSize} bytes`);
    }
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.bufLen) return this.pos - this.bufStart;
    if (n > this.buf.length) {
      this.buf = new Uint8Array(Math.max(n, this.buf.length * 2));
      this.view = new DataView(this.buf.buffer);
    }
    const want = Math.min(this.buf.length, this.fileSize - this.pos);
    let got = 0;
    while (got < want) {
      const r = this.readAt(this.buf, got, want - got, this.pos + got);
      if (r <= 0) break;
      got += r;
    }
    this.bufStart = this.pos;
    this.bufLen = got;
    if (got < n) throw new FormatError(`${this.what}: truncated file: could not read ${n} bytes at offset ${this.pos}`);
    return 0;
  }

  u8(ctx: string): number {
    const i = this.ensure(1, ctx);
    this.pos += 1;
    return this.buf[i]!;
  }
  i8(ctx: string): number {
    const i = this.ensure(1, ctx);
    this.pos += 1;
    return this.view.getInt8(i);
  }
  u16(ctx: string): number {
    const i = this.ensure(2, ctx);
    this.pos += 2;
    return this.view.getUint16(i, true);
  }
  i16(ctx: string): number {
    const i = this.ensure(2, ctx);
    this.pos += 2;
    return this.view.getInt16(i, true);
  }
  u32(ctx: string): number {
    const i = this.ensure(4, ctx);
    this.pos += 4;
    return this.view.getUint32(i, true);
  }
  i32(ctx: string): number {
    const i = this.ensure(4, ctx);
    this.pos += 4;
    return this.view.getInt32(i, true);
  }
  f32(ctx: string): number {
    const i = this.ensure(4, ctx);
    this.pos += 4;
    return this.view.getFloat32(i, true);
  }
  f64(ctx: string): number {
    const i = this.ensure(8, ctx);
    this.pos += 8;
    return this.view.getFloat64(i, true);
  }
  u64big(ctx: string): bigint {
    const i = this.ensure(8, ctx);
    this.pos += 8;
    return this.view.getBigUint64(i, true);
  }
  i64big(ctx: string): bigint {
    const i = this.ensure(8, ctx);
    this.pos += 8;
    return this.view.getBigInt64(i, true);
  }
  /** A u64 that must be a safe JS integer (counts, lengths, offsets). */
  u64(ctx: string): number {
    const v = this.u64big(ctx);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${this.what}: ${ctx} is ${v}, far larger than any file`);
    return Number(v);
  }
  bytes(n: number, ctx: string): Uint8Array {
    const i = this.ensure(n, ctx);
    this.pos += n;
    return this.buf.subarray(i, i + n);
  }
  string(ctx: string): string {
    const len = this.u64(`${ctx} length`);
    if (len > this.remaining) {
      throw new FormatError(`${this.what}: ${ctx}: string length ${len} at offset ${this.pos - 8} runs past the end of the file (${this.remaining} bytes left)`);
    }
    return utf8.decode(this.bytes(len, ctx));
  }
}

// ignoreBOM: keep a leading U+FEFF (a vocabulary piece may be exactly that), as Buffer's decoding does.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

function bigToValue(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const MAX_ARRAY_DEPTH = 8;

function readValue(r: HeaderReader, type: number, ctx: string, depth: number): { value: GGUFValue; type: GGUFType } {
  switch (type) {
    case GGUFValueType.UINT8: return { value: r.u8(ctx), type };
    case GGUFValueType.INT8: return { value: r.i8(ctx), type };
    case GGUFValueType.UINT16: return { value: r.u16(ctx), type };
    case GGUFValueType.INT16: return { value: r.i16(ctx), type };
    case GGUFValueType.UINT32: return { value: r.u32(ctx), type };
    case GGUFValueType.INT32: return { value: r.i32(ctx), type };
    case GGUFValueType.FLOAT32: return { value: r.f32(ctx), type };
    case GGUFValueType.FLOAT64: return { value: r.f64(ctx), type };
    case GGUFValueType.UINT64: return { value: bigToValue(r.u64big(ctx)), type };
    case GGUFValueType.INT64: return { value: bigToValue(r.i64big(ctx)), type };
    case GGUFValueType.BOOL: {
      const b = r.u8(ctx);
      if (b > 1) throw new FormatError(`${ctx}: bool value ${b} is neither 0 nor 1`);
      return { value: b === 1, type };
    }
    case GGUFValueType.STRING: return { value: r.string(ctx), type };
    case GGUFValueType.ARRAY: {
      if (depth >= MAX_ARRAY_DEPTH) throw new FormatError(`${ctx}: arrays nested more than ${MAX_ARRAY_DEPTH} deep`);
      const itemType = r.u32(`${ctx} array item type`);
      if (VALUE_TYPE_NAME[itemType] === undefined) throw new FormatError(`${ctx}: unknown array item type ${itemType}`);
      const count = r.u64(`${ctx} array length`);
      const minSize = VALUE_TYPE_SIZE[itemType]!;
      if (count * minSize > r.remaining) {
        throw new FormatError(`${ctx}: array of ${count} ${VALUE_TYPE_NAME[itemType]} items cannot fit in the ${r.remaining} bytes left in the file`);
      }
      const out: GGUFValue[] = new Array<GGUFValue>(count);
      let itemSpec: GGUFType | undefined;
      for (let i = 0; i < count; i++) {
        const v = readValue(r, itemType, ctx, depth + 1);
        out[i] = v.value;
        itemSpec ??= v.type;
      }
      if (itemSpec === undefined) itemSpec = itemType === GGUFValueType.ARRAY ? { array: GGUFValueType.UINT8 } : (itemType as GGUFType);
      return { value: out, type: { array: itemSpec } };
    }
    default:
      throw new FormatError(`${ctx}: unknown metadata value type ${type}`);
  }
}

export interface ReadGGUFOptions {
  /** Accept tensors of ggml types gemma-ts cannot decode (they get dtype 'f32' and must not be read). Default false. */
  allowUnsupportedTypes?: boolean;
}

/** Parse a GGUF file's header (metadata and tensor infos) without reading tensor data. */
export function readGGUF(path: string, options: ReadGGUFOptions = {}): GGUFFile {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw new FormatError(`cannot open GGUF file ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    return parseGGUF(path, fileSize, (buf, offset, length, position) => fs.readSync(fd, buf, offset, length, position), options);
  } finally {
    fs.closeSync(fd);
  }
}

/** Parse a GGUF header from any random-access reader (`path` names the file in messages and in the result). */
export function parseGGUF(path: string, fileSize: number, readAt: ReadAt, options: ReadGGUFOptions = {}): GGUFFile {
  return parseHeader(new HeaderReader(readAt, fileSize, path), path, options);
}

function parseHeader(r: HeaderReader, path: string, options: ReadGGUFOptions): GGUFFile {
  if (r.fileSize < 4) throw new FormatError(`${path}: not a GGUF file (${r.fileSize} bytes, too short for the magic)`);
  const magic = r.u32('magic');
  if (magic !== GGUF_MAGIC) {
    const shown = String.fromCharCode(magic & 0xff, (magic >>> 8) & 0xff, (magic >>> 16) & 0xff, magic >>> 24);
    throw new FormatError(`${path}: not a GGUF file (magic ${JSON.stringify(shown)}, expected "GGUF")`);
  }
  const version = r.u32('version');
  if (version !== 2 && version !== 3) {
    throw new FormatError(`${path}: unsupported GGUF version ${version} (supported: 2, 3)${version === 1 ? '; convert the file with a current llama.cpp' : ''}`);
  }
  const tensorCount = r.u64('tensor count');
  const kvCount = r.u64('metadata count');
  // Each metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8 + 4 + 8 + 4 + 8.
  if (kvCount * 13 > r.remaining) throw new FormatError(`${path}: metadata count ${kvCount} cannot fit in a ${r.fileSize}-byte file`);
  if (tensorCount * 32 > r.remaining) throw new FormatError(`${path}: tensor count ${tensorCount} cannot fit in a ${r.fileSize}-byte file`);

  const metadata = new Map<string, GGUFValue>();
  const entries: GGUFMetadataEntry[] = [];
  for (let i = 0; i < kvCount; i++) {
    const key = r.string(`metadata key #${i}`);
    if (metadata.has(key)) throw new FormatError(`${path}: duplicate metadata key "${key}"`);
    const type = r.u32(`metadata "${key}" type`);
    if (VALUE_TYPE_NAME[type] === undefined) throw new FormatError(`${path}: metadata "${key}" has unknown value type ${type}`);
    const v = readValue(r, type, `${path}: metadata "${key}"`, 0);
    metadata.set(key, v.value);
    entries.push({ key, type: v.type, value: v.value });
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al !== undefined) {
    if (typeof al !== 'number' || !Number.isInteger(al) || al <= 0 || (al & (al - 1)) !== 0) {
      throw new FormatError(`${path}: general.alignment must be a positive power of two, got ${String(al)}`);
    }
    alignment = al;
  }

  const tensors: GGUFTensorInfo[] = [];
  const tensorMap = new Map<string, GGUFTensorInfo>();
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string(`tensor #${i} name`);
    if (tensorMap.has(name)) throw new FormatError(`${path}: duplicate tensor name "${name}"`);
    const nDims = r.u32(`tensor "${name}" n_dims`);
    if (nDims < 1 || nDims > 4) throw new FormatError(`${path}: tensor "${name}" has ${nDims} dimensions (ggml allows 1 to 4)`);
    const ne: number[] = [];
    let count = 1;
    for (let d = 0; d < nDims; d++) {
      const n = r.u64(`tensor "${name}" dim ${d}`);
      ne.push(n);
      count *= n;
    }
    if (!Number.isSafeInteger(count)) throw new FormatError(`${path}: tensor "${name}" dims ${JSON.stringify(ne)} overflow`);
    const ggmlType = r.u32(`tensor "${name}" type`);
    const offset = r.u64(`tensor "${name}" offset`);
    let dtype = GGML_TO_DTYPE[ggmlType];
    if (dtype === undefined) {
      if (!options.allowUnsupportedTypes) {
        const known = (GGMLType as unknown as Record<number, string | undefined>)[ggmlType] !== undefined;
        throw new FormatError(
          `${path}: tensor "${name}" has ${known ? 'unsupported' : 'unknown'} ggml type ${ggmlTypeName(ggmlType)} (${ggmlType}); gemma-ts reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K`,
        );
      }
      dtype = 'f32';
    }
    const { blockSize, blockBytes } = DTYPE_LAYOUT[dtype];
    if (ne[0]! % blockSize !== 0) {
      throw new FormatError(`${path}: tensor "${name}" row length ${ne[0]} is not a multiple of the ${ggmlTypeName(ggmlType)} block size ${blockSize}`);
    }
    const byteLength = (count / blockSize) * blockBytes;
    if (offset % alignment !== 0) throw new FormatError(`${path}: tensor "${name}" offset ${offset} is not a multiple of the alignment ${alignment}`);
    const info: GGUFTensorInfo = {
      name,
      ggmlType,
      dtype,
      ne,
      shape: [...ne].reverse(),
      relativeOffset: offset,
      offset: 0,
      byteLength,
    };
    tensors.push(info);
    tensorMap.set(name, info);
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  if (tensorCount > 0 && dataOffset > r.fileSize) {
    throw new FormatError(`${path}: truncated file: data section would start at ${dataOffset} but the file has ${r.fileSize} bytes`);
  }
  const dataSize = r.fileSize - dataOffset;
  for (const t of tensors) {
    t.offset = dataOffset + t.relativeOffset;
    if (t.relativeOffset + t.byteLength > dataSize) {
      throw new FormatError(
        `${path}: tensor "${t.name}" data [${t.offset}, ${t.offset + t.byteLength}) lies outside the file (${r.fileSize} bytes; truncated file or bad offset)`,
      );
    }
  }
  const sorted = [...tensors].sort((a, b) => a.relativeOffset - b.relativeOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.relativeOffset < prev.relativeOffset + prev.byteLength) {
      throw new FormatError(`${path}: tensors "${prev.name}" and "${cur.name}" overlap in the data section`);
    }
  }
  return { path, version, fileSize: r.fileSize, alignment, dataOffset, metadata, entries, tensors, tensorMap };
}

/** Read one tensor's stored bytes (lazily, from the file). */
export function readTensorData(file: GGUFFile, tensor: GGUFTensorInfo | string): Uint8Array {
  const info = typeof tensor === 'string' ? file.tensorMap.get(tensor) : tensor;
  if (!info) throw new FormatError(`${file.path}: no tensor named "${String(tensor)}"`);
  const out = new Uint8Array(info.byteLength);
  readTensorInto(file, info, out);
  return out;
}

/** Read one tensor's stored bytes into `target` (which must hold at least byteLength bytes). */
export function readTensorInto(file: GGUFFile, info: GGUFTensorInfo, target: Uint8Array): void {
  if (target.byteLength < info.byteLength) throw new UsageError(`target buffer (${target.byteLength} bytes) is smaller than tensor "${info.name}" (${info.byteLength} bytes)`);
  const fd = fs.openSync(file.path, 'r');
  try {
    let got = 0;
    while (got < info.byteLength) {
      const n = Math.min(info.byteLength - got, 1 << 30);
      const r = fs.readSync(fd, target, got, n, info.offset + got);
      if (r <= 0) throw new FormatError(`${file.path}: truncated file while reading tensor "${info.name}" (file changed since it was opened?)`);
      got += r;
    }
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Typed metadata accessors

function describe(v: GGUFValue | undefined): string {
  if (v === undefined) return 'missing';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return `${typeof v} ${String(v)}`;
}

export function metaNumber(file: GGUFFile, key: string): number | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') throw new FormatError(`${file.path}: metadata "${key}" = ${v} is out of range`);
  throw new FormatError(`${file.path}: metadata "${key}" should be a number, got ${describe(v)}`);
}

export function metaString(file: GGUFFile, key: string): string | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new FormatError(`${file.path}: metadata "${key}" should be a string, got ${describe(v)}`);
  return v;
}

export function metaBool(file: GGUFFile, key: string): boolean | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new FormatError(`${file.path}: metadata "${key}" should be a bool, got ${describe(v)}`);
  return v;
}

export function metaArray(file: GGUFFile, key: string): GGUFValue[] | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new FormatError(`${file.path}: metadata "${key}" should be an array, got ${describe(v)}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Writer

export interface GGUFTensorToWrite {
  name: string;
  dtype: DType;
  /** Row-major (PyTorch) shape; written as ne = reversed shape. */
  shape: number[];
  /** The stored bytes, or a function producing them when the writer gets to this tensor (streaming). */
  data: Uint8Array | (() => Uint8Array);
}

export interface WriteGGUFOptions {
  metadata: GGUFMetadataEntry[];
  tensors: GGUFTensorToWrite[];
  /** Data alignment (power of two); written as general.alignment when not 32. */
  alignment?: number;
}

/** Growable little-endian byte builder for the header. */
class ByteWriter {
  buf = Buffer.alloc(1 << 16);
  len = 0;
  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = Buffer.alloc(cap);
    this.buf.copy(nb, 0, 0, this.len);
    this.buf = nb;
  }
  u8(v: number): void { this.grow(1); this.buf.writeUInt8(v, this.len); this.len += 1; }
  i8(v: number): void { this.grow(1); this.buf.writeInt8(v, this.len); this.len += 1; }
  u16(v: number): void { this.grow(2); this.buf.writeUInt16LE(v, this.len); this.len += 2; }
  i16(v: number): void { this.grow(2); this.buf.writeInt16LE(v, this.len); this.len += 2; }
  u32(v: number): void { this.grow(4); this.buf.writeUInt32LE(v, this.len); this.len += 4; }
  i32(v: number): void { this.grow(4); this.buf.writeInt32LE(v, this.len); this.len += 4; }
  f32(v: number): void { this.grow(4); this.buf.writeFloatLE(v, this.len); this.len += 4; }
  f64(v: number): void { this.grow(8); this.buf.writeDoubleLE(v, this.len); this.len += 8; }
  u64(v: number | bigint): void { this.grow(8); this.buf.writeBigUInt64LE(BigInt(v), this.len); this.len += 8; }
  i64(v: number | bigint): void { this.grow(8); this.buf.writeBigInt64LE(BigInt(v), this.len); this.len += 8; }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.grow(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
  }
}

function typeCode(t: GGUFType): number {
  return typeof t === 'number' ? t : GGUFValueType.ARRAY;
}

function checkInt(key: string, v: GGUFValue, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw new UsageError(`GGUF metadata "${key}": ${describe(v)} is not an integer in [${lo}, ${hi}]`);
  }
  return v;
}

function writeValue(w: ByteWriter, key: string, t: GGUFType, v: GGUFValue): void {
  if (typeof t === 'object') {
    if (!Array.isArray(v)) throw new UsageError(`GGUF metadata "${key}": expected an array, got ${describe(v)}`);
    w.u32(typeCode(t.array));
    w.u64(v.length);
    for (const item of v) writeValue(w, key, t.array, item);
    return;
  }
  switch (t) {
    case GGUFValueType.UINT8: w.u8(checkInt(key, v, 0, 0xff)); return;
    case GGUFValueType.INT8: w.i8(checkInt(key, v, -0x80, 0x7f)); return;
    case GGUFValueType.UINT16: w.u16(checkInt(key, v, 0, 0xffff)); return;
    case GGUFValueType.INT16: w.i16(checkInt(key, v, -0x8000, 0x7fff)); return;
    case GGUFValueType.UINT32: w.u32(checkInt(key, v, 0, 0xffffffff)); return;
    case GGUFValueType.INT32: w.i32(checkInt(key, v, -0x80000000, 0x7fffffff)); return;
    case GGUFValueType.FLOAT32:
    case GGUFValueType.FLOAT64:
      if (typeof v !== 'number') throw new UsageError(`GGUF metadata "${key}": expected a number, got ${describe(v)}`);
      if (t === GGUFValueType.FLOAT32) w.f32(v);
      else w.f64(v);
      return;
    case GGUFValueType.UINT64:
    case GGUFValueType.INT64:
      if (typeof v !== 'bigint' && !(typeof v === 'number' && Number.isInteger(v))) throw new UsageError(`GGUF metadata "${key}": expected an integer, got ${describe(v)}`);
      if (t === GGUFValueType.UINT64) w.u64(v);
      else w.i64(v);
      return;
    case GGUFValueType.BOOL:
      if (typeof v !== 'boolean') throw new UsageError(`GGUF metadata "${key}": expected a boolean, got ${describe(v)}`);
      w.u8(v ? 1 : 0);
      return;
    case GGUFValueType.STRING:
      if (typeof v !== 'string') throw new UsageError(`GGUF metadata "${key}": expected a string, got ${describe(v)}`);
      w.str(v);
      return;
    default:
      throw new UsageError(`GGUF metadata "${key}": unknown value type ${String(t)}`);
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.byteLength) {
    off += fs.writeSync(fd, data, off, Math.min(data.byteLength - off, 1 << 30));
  }
}

interface PreparedHeader {
  header: Uint8Array;
  /** Header plus padding to the alignment: where the data section starts. */
  headerLen: number;
  sizes: number[];
  alignment: number;
}

function prepareHeader(opts: WriteGGUFOptions): PreparedHeader {
  const alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new UsageError(`GGUF alignment must be a positive power of two, got ${alignment}`);
  }
  const metadata = opts.metadata.filter((e) => e.key !== 'general.alignment');
  const seen = new Set<string>();
  for (const e of metadata) {
    if (seen.has(e.key)) throw new UsageError(`GGUF metadata key "${e.key}" given twice`);
    seen.add(e.key);
  }
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) metadata.push({ key: 'general.alignment', type: GGUFValueType.UINT32, value: alignment });

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(opts.tensors.length);
  w.u64(metadata.length);
  for (const e of metadata) {
    w.str(e.key);
    w.u32(typeCode(e.type));
    writeValue(w, e.key, e.type, e.value);
  }
  const names = new Set<string>();
  const sizes: number[] = [];
  let offset = 0;
  for (const t of opts.tensors) {
    if (names.has(t.name)) throw new UsageError(`GGUF tensor "${t.name}" given twice`);
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > 4) throw new UsageError(`GGUF tensor "${t.name}": ${t.shape.length} dimensions (1 to 4 allowed)`);
    const ne = [...t.shape].reverse();
    const { blockSize, blockBytes } = DTYPE_LAYOUT[t.dtype];
    if (ne.some((n) => !Number.isInteger(n) || n < 0)) throw new UsageError(`GGUF tensor "${t.name}": bad shape ${JSON.stringify(t.shape)}`);
    if (ne[0]! % blockSize !== 0) throw new UsageError(`GGUF tensor "${t.name}": row length ${ne[0]} is not a multiple of the ${t.dtype} block size ${blockSize}`);
    const count = ne.reduce((a, b) => a * b, 1);
    const size = (count / blockSize) * blockBytes;
    if (t.data instanceof Uint8Array && t.data.byteLength !== size) {
      throw new UsageError(`GGUF tensor "${t.name}": ${t.data.byteLength} bytes of data but ${t.dtype} ${JSON.stringify(t.shape)} takes ${size}`);
    }
    w.str(t.name);
    w.u32(ne.length);
    for (const n of ne) w.u64(n);
    w.u32(DTYPE_TO_GGML[t.dtype]);
    w.u64(offset);
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  return { header: w.buf.subarray(0, w.len), headerLen: Math.ceil(w.len / alignment) * alignment, sizes, alignment };
}

function writeTensorBytes(fd: number, h: PreparedHeader, t: { name: string; dtype: DType; shape: number[] }, i: number, data: Uint8Array, pad: Uint8Array): void {
  if (data.byteLength !== h.sizes[i]) {
    throw new UsageError(`GGUF tensor "${t.name}": ${data.byteLength} bytes of data but ${t.dtype} ${JSON.stringify(t.shape)} takes ${h.sizes[i]}`);
  }
  writeAll(fd, data);
  const padded = Math.ceil(data.byteLength / h.alignment) * h.alignment;
  writeAll(fd, pad.subarray(0, padded - data.byteLength));
}

function abandon(fd: number, path: string): void {
  fs.closeSync(fd);
  try {
    fs.unlinkSync(path);
  } catch {
    /* ignore */
  }
}

/**
 * Write a GGUF v3 file. The header is built in memory; tensor data is streamed to the file one
 * tensor at a time (a tensor given as a function is produced only when it is written).
 */
export function writeGGUF(path: string, opts: WriteGGUFOptions): void {
  const h = prepareHeader(opts);
  const pad = new Uint8Array(h.alignment);
  const fd = fs.openSync(path, 'w');
  try {
    writeAll(fd, h.header);
    writeAll(fd, pad.subarray(0, h.headerLen - h.header.byteLength));
    opts.tensors.forEach((t, i) => writeTensorBytes(fd, h, t, i, typeof t.data === 'function' ? t.data() : t.data, pad));
  } catch (e) {
    abandon(fd, path);
    throw e;
  }
  fs.closeSync(fd);
}

export interface GGUFTensorToWriteAsync extends Omit<GGUFTensorToWrite, 'data'> {
  data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>);
}

/**
 * writeGGUF with tensors that may be produced asynchronously (e.g. quantized by worker
 * threads); up to `prefetch` tensors are produced ahead of the one being written.
 */
export async function writeGGUFAsync(path: string, opts: Omit<WriteGGUFOptions, 'tensors'> & { tensors: GGUFTensorToWriteAsync[]; prefetch?: number }): Promise<void> {
  const h = prepareHeader(opts as WriteGGUFOptions);
  const pad = new Uint8Array(h.alignment);
  const prefetch = Math.max(0, opts.prefetch ?? 1);
  const pending = new Map<number, Promise<Uint8Array>>();
  const start = (i: number): void => {
    if (i >= opts.tensors.length || pending.has(i)) return;
    const d = opts.tensors[i]!.data;
    const p = Promise.resolve().then(() => (typeof d === 'function' ? d() : d));
    p.catch(() => {}); // observed when awaited below
    pending.set(i, p);
  };
  const fd = fs.openSync(path, 'w');
  try {
    writeAll(fd, h.header);
    writeAll(fd, pad.subarray(0, h.headerLen - h.header.byteLength));
    for (let i = 0; i < opts.tensors.length; i++) {
      for (let k = i; k <= i + prefetch; k++) start(k);
      const data = await pending.get(i)!;
      pending.delete(i);
      writeTensorBytes(fd, h, opts.tensors[i]!, i, data, pad);
    }
  } catch (e) {
    abandon(fd, path);
    await Promise.allSettled(pending.values());
    throw e;
  }
  fs.closeSync(fd);
}
