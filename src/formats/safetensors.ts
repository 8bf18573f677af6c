/**
 * safetensors reader and writer.
 *
 * Layout: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [b, e]},
 * "__metadata__": {...}}, then the data section; offsets are relative to the data section.
 * The reader validates the whole header up front and reads tensors lazily through a file
 * descriptor, so the weights are never held twice. Sharded checkpoints are described by
 * model.safetensors.index.json ({"weight_map": {name: file}}).
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../errors.js';
import type { DType } from './dtype.js';
import type { TensorInfo, TensorSource } from './tensor-source.js';

const ST_DTYPES: Record<string, { dtype: DType; bytes: number }> = {
  F32: { dtype: 'f32', bytes: 4 },
  F16: { dtype: 'f16', bytes: 2 },
  BF16: { dtype: 'bf16', bytes: 2 },
};
const ST_NAME: Partial<Record<DType, string>> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** Headers larger than this are refused (real ones are well under 1 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

interface StTensor extends TensorInfo {
  file: StFile;
  /** Absolute offset in the file. */
  offset: number;
}

interface StFile {
  path: string;
  fd: number;
  size: number;
  metadata: Record<string, string>;
}

/** A tensor located in one safetensors file: its info and absolute byte offset. */
export interface SafetensorsEntry extends TensorInfo {
  offset: number;
}

/**
 * Validate the 8-byte length prefix of a file of `fileSize` bytes: returns the header's JSON byte
 * length (the tensor data starts at 8 + that).
 */
export function safetensorsHeaderLength(where: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.byteLength < 8) throw new FormatError(`${where}: file is ${fileSize} bytes, too short for a safetensors header`);
  const headerLen = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(fileSize - 8)) throw new FormatError(`${where}: header length ${headerLen} exceeds the file size ${fileSize}`);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw new FormatError(`${where}: header length ${headerLen} is unreasonably large`);
  return Number(headerLen);
}

/**
 * Parse and validate a safetensors header (the JSON bytes after the length prefix) of a file of
 * `fileSize` bytes. Adds the __metadata__ strings to `metadata`; returns the tensors in header order.
 */
export function parseSafetensorsHeader(where: string, headerBytes: Uint8Array, fileSize: number, metadata: Record<string, string> = {}): SafetensorsEntry[] {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new FormatError(`${where}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new FormatError(`${where}: header must be a JSON object`);
  const dataStart = 8 + headerBytes.byteLength;
  const dataLen = fileSize - dataStart;
  const spans: Array<[number, number, string]> = [];
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null) throw new FormatError(`${where}: __metadata__ must be an object`);
      for (const [k, v] of Object.entries(value)) if (typeof v === 'string') metadata[k] = v;
      continue;
    }
    const t = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== 'object' || t === null) throw new FormatError(`${where}: tensor "${name}" entry is not an object`);
    const st = typeof t.dtype === 'string' ? ST_DTYPES[t.dtype] : undefined;
    if (!st) throw new FormatError(`${where}: tensor "${name}" has unsupported dtype ${JSON.stringify(t.dtype)} (supported: F32, F16, BF16)`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FormatError(`${where}: tensor "${name}" has an invalid shape ${JSON.stringify(t.shape)}`);
    }
    const offs = t.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[0] > offs[1]) {
      throw new FormatError(`${where}: tensor "${name}" has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end > dataLen) throw new FormatError(`${where}: tensor "${name}" data [${begin}, ${end}) lies outside the file's ${dataLen}-byte data section (truncated file?)`);
    const count = (t.shape as number[]).reduce((a, b) => a * b, 1);
    if (count * st.bytes !== end - begin) {
      throw new FormatError(`${where}: tensor "${name}": ${t.dtype} x shape [${(t.shape as number[]).join(', ')}] needs ${count * st.bytes} bytes but data_offsets span ${end - begin}`);
    }
    spans.push([begin, end, name]);
    entries.push({ name, dtype: st.dtype, shape: t.shape as number[], byteLength: end - begin, offset: dataStart + begin });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) throw new FormatError(`${where}: tensors "${spans[i - 1]![2]}" and "${spans[i]![2]}" overlap`);
  }
  return entries;
}

function parseHeader(file: StFile, tensors: Map<string, StTensor>): void {
  const where = file.path;
  const lenBuf = new Uint8Array(8);
  if (file.size >= 8) fs.readSync(file.fd, lenBuf, 0, 8, 0);
  const n = safetensorsHeaderLength(where, lenBuf, file.size);
  const headerBuf = new Uint8Array(n);
  fs.readSync(file.fd, headerBuf, 0, n, 8);
  for (const e of parseSafetensorsHeader(where, headerBuf, file.size, file.metadata)) {
    if (tensors.has(e.name)) throw new FormatError(`${where}: tensor "${e.name}" appears in more than one shard`);
    tensors.set(e.name, { ...e, file });
  }
}

export interface SafetensorsSource extends TensorSource {
  /** Files backing the source. */
  readonly files: string[];
  /** Merged __metadata__ of all shards. */
  readonly metadata: Record<string, string>;
}

/**
 * Open a .safetensors file, a model.safetensors.index.json, or a directory holding either.
 * Throws FormatError on any malformed header.
 */
export function openSafetensors(target: string): SafetensorsSource {
  let files: string[];
  const stat = fs.statSync(target, { throwIfNoEntry: false });
  if (!stat) throw new FormatError(`${target}: no such file or directory`);
  let indexPath: string | undefined;
  if (stat.isDirectory()) {
    const idx = path.join(target, 'model.safetensors.index.json');
    if (fs.existsSync(idx)) indexPath = idx;
    else if (fs.existsSync(path.join(target, 'model.safetensors'))) files = [path.join(target, 'model.safetensors')];
    else {
      const found = fs.readdirSync(target).filter((f) => f.endsWith('.safetensors')).sort();
      if (!found.length) throw new FormatError(`${target}: no .safetensors files in this directory`);
      files = found.map((f) => path.join(target, f));
    }
  } else if (target.endsWith('.index.json')) indexPath = target;
  else files = [target];
  if (indexPath) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
    } catch (e) {
      throw new FormatError(`${indexPath}: not valid JSON (${(e as Error).message})`);
    }
    if (!index || typeof index.weight_map !== 'object' || index.weight_map === null) throw new FormatError(`${indexPath}: missing "weight_map" object`);
    const dir = path.dirname(indexPath);
    const shardNames = [...new Set(Object.values(index.weight_map))];
    for (const s of shardNames) {
      if (typeof s !== 'string' || s.includes('..') || path.isAbsolute(s)) throw new FormatError(`${indexPath}: invalid shard file name ${JSON.stringify(s)}`);
    }
    files = shardNames.sort().map((s) => path.join(dir, s));
  }
  const tensors = new Map<string, StTensor>();
  const opened: StFile[] = [];
  const metadata: Record<string, string> = {};
  try {
    for (const p of files!) {
      const fd = fs.openSync(p, 'r');
      const file: StFile = { path: p, fd, size: fs.fstatSync(fd).size, metadata };
      opened.push(file);
      parseHeader(file, tensors);
    }
  } catch (e) {
    for (const f of opened) fs.closeSync(f.fd);
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new FormatError(`shard file missing: ${(e as Error).message}`);
    throw e;
  }
  let closed = false;
  return {
    files: files!,
    metadata,
    normWeightsIncludeOne: false,
    list: () => [...tensors.values()].map(({ name, dtype, shape, byteLength }) => ({ name, dtype, shape, byteLength })),
    get(name) {
      const t = tensors.get(name);
      return t && { name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.byteLength };
    },
    read(name) {
      if (closed) throw new FormatError('safetensors source is closed');
      const t = tensors.get(name);
      if (!t) throw new FormatError(`tensor "${name}" is not in the checkpoint`);
      const out = new Uint8Array(t.byteLength);
      let done = 0;
      while (done < t.byteLength) {
        const n = fs.readSync(t.file.fd, out, done, Math.min(t.byteLength - done, 1 << 30), t.offset + done);
        if (n <= 0) throw new FormatError(`${t.file.path}: unexpected end of file reading "${name}"`);
        done += n;
      }
      return out;
    },
    close() {
      if (closed) return;
      closed = true;
      for (const f of opened) fs.closeSync(f.fd);
    },
  };
}

export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/** Write tensors to one .safetensors file (streamed; the header is padded to 8 bytes). */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const st = ST_NAME[t.dtype];
    if (!st) throw new FormatError(`safetensors cannot store dtype ${t.dtype}`);
    const need = t.shape.reduce((a, b) => a * b, 1) * ST_DTYPES[st]!.bytes;
    if (need !== t.data.byteLength) throw new FormatError(`tensor "${t.name}": shape needs ${need} bytes, data has ${t.data.byteLength}`);
    header[t.name] = { dtype: st, shape: t.shape, data_offsets: [offset, offset + need] };
    offset += need;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, hb);
    for (const t of tensors) fs.writeSync(fd, t.data);
  } finally {
    fs.closeSync(fd);
  }
}
