/**
 * Random access to a file's bytes where they arrive asynchronously: a Blob / File, or an HTTP URL
 * read with range requests, optionally through the Cache API so that a second load reads no
 * network bytes. Platform-free (fetch, Blob and the Cache API are web standards; Node has the
 * first two).
 *
 * URLs are downloaded in CHUNK_BYTES range requests as the reader asks for bytes; each chunk is
 * stored in the cache under its own key (a tensor read touches only the chunks it spans, the JS
 * heap never holds the whole file, and an interrupted download resumes at the first missing chunk).
 * A server that ignores Range answers 200 with the whole file, which is then stored as one chunk.
 */
import { HubError } from '../hub/errors.js';

export interface ByteSource {
  /** A URL or file name, for messages. */
  readonly name: string;
  readonly size: number;
  /** Bytes [offset, offset + length); the caller owns the returned array. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export interface DownloadProgress {
  url: string;
  /** Bytes of this file fetched from the network so far. */
  loadedBytes: number;
  totalBytes: number;
  /** True when the bytes came from the cache (no network). */
  fromCache: boolean;
}

export interface HttpSourceOptions {
  /** Cache name (default 'gemma-ts'); false = no cache, every read is a range request. */
  cache?: string | false;
  /**
   * Where cached chunks live: 'cache-api' (default: the Cache API) or 'opfs' (the Origin Private
   * File System: one file per chunk in directory `cache`, written atomically on close).
   */
  cacheStore?: 'cache-api' | 'opfs';
  /** Extra request headers (e.g. Authorization for gated Hugging Face repos). */
  headers?: Record<string, string>;
  onDownloadProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
}

/** Bytes per range request and per cache entry. */
export const CHUNK_BYTES = 32 * 1024 * 1024;
/** Without a cache, the first request of a file (headers); the rest is read in exact ranges. */
const FIRST_READ_BYTES = 1024 * 1024;

export function blobByteSource(blob: Blob, name: string): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}

interface CacheLike {
  match(key: string): Promise<Response | undefined>;
  put(key: string, response: Response): Promise<void>;
}

interface CachesLike {
  open(name: string): Promise<CacheLike>;
  delete(name: string): Promise<boolean>;
}

function cacheStorage(): CachesLike | undefined {
  return (globalThis as unknown as { caches?: CachesLike }).caches;
}

interface OpfsDir {
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDir>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<{ getFile(): Promise<Blob>; createWritable(): Promise<{ write(b: Blob): Promise<void>; close(): Promise<void> }> }>;
  removeEntry(name: string, options?: { recursive?: boolean }): Promise<void>;
}

function opfsRoot(): Promise<OpfsDir> | undefined {
  const storage = (globalThis as unknown as { navigator?: { storage?: { getDirectory?(): Promise<OpfsDir> } } }).navigator?.storage;
  return storage?.getDirectory?.();
}

/** The Cache API's match / put over OPFS files (named by the SHA-256 of the key: URLs hold '/'). */
async function opfsCache(name: string): Promise<CacheLike | undefined> {
  const root = await opfsRoot();
  if (!root) return undefined;
  const dir = await root.getDirectoryHandle(name, { create: true });
  const fileOf = async (key: string) => {
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(key)));
    return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  };
  return {
    async match(key) {
      try {
        return new Response(await (await dir.getFileHandle(await fileOf(key))).getFile());
      } catch (e) {
        if ((e as Error).name === 'NotFoundError') return undefined;
        throw e;
      }
    },
    async put(key, response) {
      const w = await (await dir.getFileHandle(await fileOf(key), { create: true })).createWritable();
      await w.write(await response.blob());
      await w.close(); // the file changes only now: an interrupted write leaves no partial chunk
    },
  };
}

/** Delete the download cache (all cached model files) in the Cache API, or in OPFS with store 'opfs'. */
export async function clearCache(name = 'gemma-ts', store: 'cache-api' | 'opfs' = 'cache-api'): Promise<boolean> {
  if (store === 'opfs') {
    const root = await opfsRoot();
    try {
      await root?.removeEntry(name, { recursive: true });
      return !!root;
    } catch (e) {
      if ((e as Error).name === 'NotFoundError') return false;
      throw e;
    }
  }
  return (await cacheStorage()?.delete(name)) ?? false;
}

/** What the cache knows about a URL: its size, or that it does not exist (404). */
interface FileMeta {
  size: number;
  missing?: boolean;
  /** The server ignored Range: the whole file is chunk 0. */
  whole?: boolean;
}

function keyOf(url: string, what: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}gemma-ts-${what}`;
}

function parseTotal(res: Response): number | undefined {
  const range = res.headers.get('content-range');
  const m = range ? /\/(\d+)\s*$/.exec(range) : null;
  if (m) return Number(m[1]);
  const len = res.headers.get('content-length');
  return len !== null && res.status === 200 ? Number(len) : undefined;
}

/**
 * Open a URL for random access. Resolves to undefined when the server answers 404 (so optional
 * files such as tokenizer.model can be probed; with a cache, the absence is remembered too).
 */
export async function openUrl(url: string, options: HttpSourceOptions = {}): Promise<ByteSource | undefined> {
  const name = options.cache || 'gemma-ts';
  let cache: CacheLike | undefined;
  if (options.cache !== false && options.cacheStore === 'opfs') cache = await opfsCache(name);
  else if (options.cache !== false) cache = await cacheStorage()?.open(name);
  let loaded = 0;
  const report = (fromCache: boolean, total: number) => options.onDownloadProgress?.({ url, loadedBytes: loaded, totalBytes: total, fromCache });

  const request = async (start: number, end: number | undefined): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(url, { headers: { ...options.headers, range: `bytes=${start}-${end === undefined ? '' : end - 1}` }, signal: options.signal });
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw new HubError('aborted', `download of ${url} aborted`, { cause: e });
      throw new HubError('unreachable', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e });
    }
    if (res.status === 404 || res.status === 200 || res.status === 206) return res;
    const reason = res.status === 401 || res.status === 403 ? 'gated' : 'http';
    throw new HubError(reason, `${url}: HTTP ${res.status} ${res.statusText}`, { status: res.status });
  };

  const body = async (res: Response): Promise<Uint8Array> => new Uint8Array(await res.arrayBuffer());

  // The file's size (and the first chunk, which a cache keeps), from the cache or one request.
  let meta: FileMeta | undefined;
  const metaHit = await cache?.match(keyOf(url, 'meta'));
  if (metaHit) meta = (await metaHit.json()) as FileMeta;
  let first: Uint8Array | undefined;
  if (!meta) {
    // With a cache this is chunk 0; without one, just enough for the headers (more is read as asked).
    const res = await request(0, cache ? CHUNK_BYTES : FIRST_READ_BYTES);
    if (res.status === 404) {
      await res.body?.cancel();
      await cache?.put(keyOf(url, 'meta'), Response.json({ size: 0, missing: true } satisfies FileMeta));
      return undefined;
    }
    const total = parseTotal(res);
    first = await body(res);
    const whole = res.status === 200;
    const size = whole ? first.byteLength : total;
    if (size === undefined) throw new HubError('http', `${url}: the server sent no Content-Range total for a range request`);
    meta = { size, whole };
    loaded += first.byteLength;
    report(false, size);
    if (cache) {
      await cache.put(keyOf(url, 'chunk0'), new Response(first));
      await cache.put(keyOf(url, 'meta'), Response.json(meta));
    }
  } else if (meta.missing) return undefined;
  else report(true, meta.size);
  const { size, whole } = meta;
  const chunkBytes = whole ? Math.max(size, 1) : CHUNK_BYTES;

  // Chunks fetched but not cached (no Cache API) are not kept: reads are then exact range requests.
  const chunk = async (i: number): Promise<Blob> => {
    const key = keyOf(url, `chunk${i}`);
    const hit = await cache!.match(key);
    if (hit) return hit.blob();
    const start = i * chunkBytes;
    const res = await request(start, Math.min(size, start + chunkBytes));
    if (res.status !== 206 && !(res.status === 200 && whole)) throw new HubError('http', `${url}: expected a 206 answer to a range request, got ${res.status}`, { status: res.status });
    const bytes = await body(res);
    loaded += bytes.byteLength;
    report(false, size);
    await cache!.put(key, new Response(bytes));
    return new Blob([bytes]);
  };

  return {
    name: url,
    size,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > size) throw new HubError('http', `${url}: read of [${offset}, ${offset + length}) outside the ${size}-byte file`);
      if (first && offset + length <= first.byteLength) return first.slice(offset, offset + length);
      if (!cache) {
        const res = await request(offset, offset + length);
        const bytes = await body(res);
        if (res.status === 206 && bytes.byteLength === length) return bytes;
        if (res.status === 200 && bytes.byteLength === size) return bytes.slice(offset, offset + length);
        throw new HubError('http', `${url}: range request for ${length} bytes at ${offset} returned ${bytes.byteLength} (HTTP ${res.status})`);
      }
      const out = new Uint8Array(length);
      for (let i = Math.floor(offset / chunkBytes); i * chunkBytes < offset + length; i++) {
        const c0 = i * chunkBytes;
        const from = Math.max(offset, c0), to = Math.min(offset + length, c0 + chunkBytes);
        const blob = await chunk(i);
        out.set(new Uint8Array(await blob.slice(from - c0, to - c0).arrayBuffer()), from - offset);
      }
      return out;
    },
  };
}

/** All of a small file's bytes (config.json, tokenizer files). */
export async function readAll(src: ByteSource): Promise<Uint8Array> {
  return src.read(0, src.size);
}
