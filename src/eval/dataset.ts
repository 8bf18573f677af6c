/**
 * A task's documents: local `json` (JSONL or a JSON array), `csv` and `parquet` files named in
 * `dataset_kwargs.data_files` (paths relative to the task's YAML), or a Hugging Face dataset repo
 * (its Parquet conversion, downloaded and verified by the Hub code of `gemma pull`, cached).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import type { TaskConfig } from './config.js';
import { TaskError } from './errors.js';

export type Doc = Record<string, unknown>;

export interface DatasetOptions {
  /** Download a Hub dataset's split (parquet files) and return their local paths. */
  fetchHubSplit?: (repo: string, config: string, split: string) => Promise<string[]>;
}

const LOCAL_BUILDERS = new Set(['json', 'csv', 'parquet']);

/** Read one split of the task's dataset. */
export async function loadSplit(cfg: TaskConfig, split: string, options: DatasetOptions = {}): Promise<Doc[]> {
  const dsPath = cfg.dataset_path!;
  const kwargs = cfg.dataset_kwargs ?? {};
  if (LOCAL_BUILDERS.has(dsPath)) {
    const files = dataFilesFor(cfg, split);
    const docs: Doc[] = [];
    for (const f of files) docs.push(...(await readFile(cfg.task, dsPath, f, kwargs)));
    return docs;
  }
  if (/^[\w.-]+\/[\w.-]+$/.test(dsPath) && !fs.existsSync(path.resolve(cfg.__dir ?? '.', dsPath))) {
    if (!options.fetchHubSplit) throw new TaskError(cfg.task, 'dataset_path', `"${dsPath}" is a Hugging Face dataset and no Hub access was given`);
    let files: string[];
    try {
      files = await options.fetchHubSplit(dsPath, cfg.dataset_name ?? 'default', split);
    } catch (e) {
      throw new TaskError(cfg.task, 'dataset_path', `Hub dataset ${dsPath} (${cfg.dataset_name ?? 'default'}/${split}): ${(e as Error).message}`, { cause: e });
    }
    const docs: Doc[] = [];
    for (const f of files) docs.push(...(await readFile(cfg.task, 'parquet', f, kwargs)));
    return docs;
  }
  throw new TaskError(cfg.task, 'dataset_path', `"${dsPath}" is neither json / csv / parquet with data_files nor a Hugging Face dataset id (ORG/NAME)`);
}

/** The files of `split` in `dataset_kwargs.data_files`, resolved against the YAML's directory. */
function dataFilesFor(cfg: TaskConfig, split: string): string[] {
  const df = (cfg.dataset_kwargs ?? {}).data_files;
  if (df === undefined || df === null) throw new TaskError(cfg.task, 'dataset_kwargs.data_files', `missing (dataset_path: ${cfg.dataset_path} reads local files)`);
  let entry: unknown;
  if (typeof df === 'string' || Array.isArray(df)) entry = split === 'train' ? df : undefined;
  else entry = (df as Record<string, unknown>)[split];
  if (entry === undefined) throw new TaskError(cfg.task, 'dataset_kwargs.data_files', `has no split "${split}"`);
  const list = Array.isArray(entry) ? entry : [entry];
  return list.map((f) => {
    if (typeof f !== 'string') throw new TaskError(cfg.task, 'dataset_kwargs.data_files', 'expected file names');
    const p = path.isAbsolute(f) ? f : path.resolve(cfg.__dir ?? '.', f);
    if (!fs.existsSync(p)) throw new TaskError(cfg.task, `dataset_kwargs.data_files.${split}`, `no such file: ${p}`);
    return p;
  });
}

async function readFile(task: string, kind: string, file: string, kwargs: Record<string, unknown>): Promise<Doc[]> {
  try {
    if (kind === 'parquet') return await readParquet(file);
    const text = fs.readFileSync(file, 'utf8');
    if (kind === 'csv') return parseCsv(text);
    return parseJsonDocs(text, typeof kwargs.field === 'string' ? kwargs.field : undefined);
  } catch (e) {
    if (e instanceof TaskError) throw e;
    throw new TaskError(task, 'dataset_kwargs.data_files', `cannot read ${file}: ${(e as Error).message}`);
  }
}

/** A JSON array, an object holding the array under `field`, or JSON Lines. */
export function parseJsonDocs(text: string, field?: string): Doc[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[') || (trimmed.startsWith('{') && field)) {
    try {
      const v = JSON.parse(trimmed) as unknown;
      const arr = field && !Array.isArray(v) ? (v as Record<string, unknown>)[field] : v;
      if (Array.isArray(arr)) return arr as Doc[];
    } catch {
      // not one JSON value: JSON Lines
    }
  }
  const docs: Doc[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`line ${i + 1} is not JSON (${(e as Error).message})`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`line ${i + 1} is not a JSON object`);
    docs.push(v as Doc);
  });
  return docs;
}

/** RFC 4180 CSV with a header row; columns whose every value is a number become numbers (as `datasets` infers). */
export function parseCsv(text: string): Doc[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      } else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  const nonEmpty = rows.filter((r) => !(r.length === 1 && r[0] === ''));
  if (nonEmpty.length === 0) return [];
  const header = nonEmpty[0]!;
  const body = nonEmpty.slice(1);
  const numeric = header.map((_, j) => body.length > 0 && body.every((r) => /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test((r[j] ?? '').trim())));
  return body.map((r) => Object.fromEntries(header.map((h, j) => [h, numeric[j] ? Number(r[j]) : (r[j] ?? '')])));
}

function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Date) return v.toISOString();
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

export async function readParquet(file: string): Promise<Doc[]> {
  const buf = fs.readFileSync(file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const rows = await parquetReadObjects({ file: ab });
  return rows.map((r) => plain(r) as Doc);
}
