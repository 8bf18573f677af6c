/**
 * `pullModel`: download a Gemma checkpoint from the Hugging Face Hub into a local cache.
 *
 * - The revision (branch, tag or commit) is resolved to a commit first, and every file is fetched
 *   at that commit, so a push during the download cannot mix two versions.
 * - Listing uses @huggingface/hub (`modelInfo`, `listFiles`); files are streamed with fetch so
 *   that a partial `*.part` file continues with an HTTP Range request.
 * - Every file is checked: size always, sha256 for LFS files (the Hub lists their sha256), the
 *   git blob id (sha1 of "blob <size>\\0" + bytes) for small files.
 * - A file already in the cache with the listed size (and hash) is not downloaded again.
 *
 * Layout: `<cacheDir>/<org>--<name>/<revision>/` holds the checkpoint as in the repo, plus
 * `.gemma-pull.json` (repo, revision, commit, verified files).
 */
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { datasetInfo, listFiles, modelInfo, type ListFileEntry } from '@huggingface/hub';
import { UsageError } from '../errors.js';
import { HubError } from './errors.js';

export { HubError, type HubErrorReason } from './errors.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** What a Gemma text checkpoint needs (paths in the repo root). */
export const DEFAULT_PATTERNS: readonly string[] = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer.model',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
  '*.safetensors',
  'model.safetensors.index.json',
];

export interface PullProgress {
  /** Repo path of the file being handled. */
  file: string;
  /** Bytes of this file present locally (including a resumed part). */
  fileBytes: number;
  fileTotal: number;
  /** Bytes of all selected files present locally. */
  bytes: number;
  total: number;
  /** Files finished so far, and in all. */
  filesDone: number;
  filesTotal: number;
  /** 'skip': already cached; 'download': bytes arriving; 'done': file verified and in place. */
  phase: 'skip' | 'download' | 'done';
}

export interface PullOptions {
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Cache root; the checkpoint lands in <cacheDir>/<org>--<name>/<revision>. Default: defaultCacheDir(). */
  cacheDir?: string;
  /** Hub URL (default: $HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** Access token (default: $HF_TOKEN, then $HUGGING_FACE_HUB_TOKEN). */
  token?: string;
  /** Extra glob patterns to download besides the defaults (e.g. "*.gguf"; `*` stays within a folder, `**` crosses folders). */
  include?: string[];
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
  /** Attempts per file when the connection breaks (each continues with Range); default 4. */
  retries?: number;
  /** Abort and retry a request that delivers no bytes for this long (ms); default 60000. */
  stallTimeoutMs?: number;
  /** 'dataset' pulls from a dataset repo (cached under <cacheDir>/datasets/); default 'model'. */
  repoType?: 'model' | 'dataset';
  /** Glob patterns that replace the checkpoint defaults (e.g. a dataset's parquet files). */
  patterns?: string[];
  /** fetch to use (default: global fetch). */
  fetch?: typeof fetch;
}

interface ManifestFile {
  path: string;
  size: number;
  /** sha256 of an LFS file. */
  sha256?: string;
  /** git blob id of a non-LFS file. */
  gitOid?: string;
}
interface Manifest {
  repo: string;
  revision: string;
  commit: string | undefined;
  endpoint: string;
  files: ManifestFile[];
  completedAt?: string;
}
const MANIFEST = '.gemma-pull.json';

/**
 * Cache root: $GEMMA_TS_CACHE/hub, else $XDG_CACHE_HOME/gemma-ts/hub, else ~/.cache/gemma-ts/hub.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GEMMA_TS_CACHE) return path.join(env.GEMMA_TS_CACHE, 'hub');
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'gemma-ts', 'hub');
}

/**
 * The directory of a completed earlier pull of `repo` at `revision` (default "main"), or
 * undefined. Lets `--model ORG/NAME` use the cache without a network round trip.
 */
export function cachedModelPath(repo: string, options: { revision?: string; cacheDir?: string } = {}): string | undefined {
  if (typeof repo !== 'string' || !REPO_RE.test(repo) || repo.includes('..')) return undefined;
  const dir = modelCacheDir(repo, options.revision ?? 'main', options.cacheDir ?? defaultCacheDir());
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), 'utf8')) as Partial<Manifest>;
    if (!m.completedAt || !Array.isArray(m.files)) return undefined;
    for (const f of m.files) if (fs.statSync(path.join(dir, f.path)).size !== f.size) return undefined;
    return dir;
  } catch {
    return undefined;
  }
}

const REPO_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Directory a pull of `repo` at `revision` writes to. */
/** Directory a pull of dataset `repo` at `revision` writes to. */
export function datasetCacheDir(repo: string, revision = 'main', cacheDir = defaultCacheDir()): string {
  checkRepo(repo);
  const [org, name] = repo.split('/') as [string, string];
  return path.join(cacheDir, 'datasets', `${org}--${name}`, revisionDirName(revision));
}

export function modelCacheDir(repo: string, revision = 'main', cacheDir = defaultCacheDir()): string {
  checkRepo(repo);
  const [org, name] = repo.split('/') as [string, string];
  return path.join(cacheDir, `${org}--${name}`, revisionDirName(revision));
}

function checkRepo(repo: string): void {
  if (typeof repo !== 'string' || !REPO_RE.test(repo) || repo.includes('..')) {
    throw new UsageError(`"${repo}" is not a Hugging Face model id: expected ORG/NAME, e.g. google/gemma-3-1b-it`);
  }
}

function revisionDirName(revision: string): string {
  if (!revision || revision.length > 255 || revision.split('/').some((s) => s === '..' || s === '.')) {
    throw new UsageError(`invalid revision "${revision}"`);
  }
  return revision.replace(/[^A-Za-z0-9._-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Glob to RegExp: `*` and `?` stay within one path segment, `**` crosses segments. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Which of the repo's files a pull downloads. */
export function selectFiles<T extends { path: string }>(files: readonly T[], include: readonly string[] = []): T[] {
  const res = [...DEFAULT_PATTERNS, ...include].map(globToRegExp);
  return files.filter((f) => res.some((r) => r.test(f.path)));
}

/** Download `repo` (ORG/NAME) into the cache; resolves to the local checkpoint directory. */
export async function pullModel(repo: string, options: PullOptions = {}): Promise<string> {
  checkRepo(repo);
  const revision = options.revision ?? 'main';
  const endpoint = (options.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  if (!/^https?:\/\//.test(endpoint)) throw new UsageError(`Hub endpoint must be an http(s) URL, got "${endpoint}"`);
  const token = options.token ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN ?? undefined;
  const repoType = options.repoType ?? 'model';
  const dir = repoType === 'dataset' ? datasetCacheDir(repo, revision, options.cacheDir ?? defaultCacheDir()) : modelCacheDir(repo, revision, options.cacheDir ?? defaultCacheDir());
  const baseFetch = options.fetch ?? fetch;
  const signal = options.signal;
  const ctx: Ctx = { repo, revision, endpoint, token, baseFetch, signal, lastErrorCode: undefined, repoType };

  // Resolve the revision to a commit and list its files (both through @huggingface/hub).
  const hubFetch = makeHubFetch(ctx);
  let commit: string | undefined;
  try {
    const info =
      repoType === 'dataset'
        ? await datasetInfo({ name: repo, revision, hubUrl: endpoint, fetch: hubFetch, additionalFields: ['sha'] })
        : await modelInfo({ name: repo, revision, hubUrl: endpoint, fetch: hubFetch, additionalFields: ['sha'] });
    commit = typeof info.sha === 'string' && /^[0-9a-f]{40}$/.test(info.sha) ? info.sha : undefined;
  } catch (e) {
    throw toHubError(e, ctx, 'resolving the revision');
  }
  const listed: ListFileEntry[] = [];
  try {
    for await (const entry of listFiles({ repo: { type: repoType, name: repo }, revision: commit ?? revision, recursive: true, hubUrl: endpoint, fetch: hubFetch })) {
      if (entry.type === 'file') listed.push(entry);
    }
  } catch (e) {
    throw toHubError(e, ctx, 'listing files');
  }
  const selected = options.patterns ? listed.filter((f) => options.patterns!.map(globToRegExp).some((r) => r.test(f.path))) : selectFiles(listed, options.include ?? []);
  if (selected.length === 0) {
    const some = listed.slice(0, 12).map((f) => f.path).join(', ');
    throw new HubError('no-files', `${repo}@${revision} holds no ${options.patterns ? `files matching ${options.patterns.join(', ')}` : 'Gemma checkpoint files'} (${some || 'the repo is empty'}${listed.length > 12 ? ', ...' : ''}); use --include GLOB to pick files`);
  }
  const files: ManifestFile[] = selected.map((f) => {
    const entry: ManifestFile = { path: f.path, size: f.lfs?.size ?? f.size };
    if (f.lfs?.oid && /^[0-9a-f]{64}$/.test(f.lfs.oid)) entry.sha256 = f.lfs.oid;
    else if (!f.lfs && f.oid && /^[0-9a-f]{40}$/.test(f.oid)) entry.gitOid = f.oid;
    return entry;
  });
  for (const f of files) safeJoin(dir, f.path);

  await fsp.mkdir(dir, { recursive: true });
  const previous = await readManifest(dir);
  const manifest: Manifest = { repo, revision, commit, endpoint, files: [] };

  const total = files.reduce((a, f) => a + f.size, 0);
  let doneBytes = 0;
  let filesDone = 0;
  const report = (file: ManifestFile, fileBytes: number, phase: PullProgress['phase']): void => {
    options.onProgress?.({ file: file.path, fileBytes, fileTotal: file.size, bytes: doneBytes + (phase === 'done' || phase === 'skip' ? 0 : fileBytes), total, filesDone, filesTotal: files.length, phase });
  };

  for (const file of files) {
    if (signal?.aborted) throw new HubError('aborted', 'download aborted');
    const local = safeJoin(dir, file.path);
    if (await isComplete(local, file, previous)) {
      doneBytes += file.size;
      filesDone++;
      report(file, file.size, 'skip');
    } else {
      await downloadFile(ctx, commit ?? revision, file, local, options, (n) => report(file, n, 'download'));
      doneBytes += file.size;
      filesDone++;
      report(file, file.size, 'done');
    }
    manifest.files.push(file);
    await writeManifest(dir, manifest);
  }
  manifest.completedAt = new Date().toISOString();
  await writeManifest(dir, manifest);
  return dir;
}

// ---- internals -------------------------------------------------------------------------------

interface Ctx {
  repo: string;
  revision: string;
  endpoint: string;
  token: string | undefined;
  baseFetch: typeof fetch;
  signal: AbortSignal | undefined;
  repoType: 'model' | 'dataset';
  /** X-Error-Code of the last failed Hub API answer (RepoNotFound, GatedRepo, RevisionNotFound ...). */
  lastErrorCode: string | undefined;
}

/** fetch for @huggingface/hub: adds the token (any format) and the abort signal, records X-Error-Code. */
function makeHubFetch(ctx: Ctx): typeof fetch {
  return async (input, init) => {
    const headers = new Headers(init?.headers);
    if (ctx.token) headers.set('Authorization', `Bearer ${ctx.token}`);
    let res: Response;
    try {
      res = await ctx.baseFetch(input, { ...init, headers, signal: ctx.signal });
    } catch (e) {
      throw unreachable(e, ctx);
    }
    if (!res.ok) ctx.lastErrorCode = res.headers.get('x-error-code') ?? undefined;
    return res;
  };
}

function unreachable(e: unknown, ctx: Ctx): HubError {
  if (e instanceof HubError) return e;
  if (ctx.signal?.aborted || (e as Error)?.name === 'AbortError') return new HubError('aborted', 'download aborted', { cause: e });
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  const detail = cause?.code ?? cause?.message ?? (e as Error)?.message ?? String(e);
  return new HubError('unreachable', `cannot reach the Hugging Face Hub at ${ctx.endpoint} (${detail}); check the network or HF_ENDPOINT`, { cause: e });
}

function gatedMessage(ctx: Ctx, status: number): string {
  const page = `${ctx.endpoint}/${ctx.repo}`;
  return ctx.token
    ? `${ctx.repo} is gated or private and the token in HF_TOKEN has no access (HTTP ${status}): accept the model's license at ${page} with the account that owns the token`
    : `${ctx.repo} is gated or private (HTTP ${status}): set HF_TOKEN to a Hugging Face access token (https://huggingface.co/settings/tokens) and accept the model's license at ${page}`;
}

function statusError(status: number, code: string | undefined, ctx: Ctx, what: string, cause?: unknown): HubError {
  if (code === 'RevisionNotFound' || code === 'EntryNotFound') {
    const reason = code === 'RevisionNotFound' ? 'revision-not-found' : 'not-found';
    return new HubError(reason, code === 'RevisionNotFound' ? `${ctx.repo} has no revision "${ctx.revision}"` : `${ctx.repo}: ${what}: file not found (HTTP ${status})`, { status, cause });
  }
  if (code === 'GatedRepo' || ((status === 401 || status === 403) && code !== 'RepoNotFound')) {
    return new HubError('gated', gatedMessage(ctx, status), { status, cause });
  }
  if (code === 'RepoNotFound' || status === 404) {
    const hint = ctx.token ? '' : ' (if it is private, set HF_TOKEN)';
    return new HubError('not-found', `${ctx.repoType} ${ctx.repo} was not found on ${ctx.endpoint}${hint}`, { status, cause });
  }
  return new HubError('http', `${ctx.repo}: ${what} failed with HTTP ${status}`, { status, cause });
}

function toHubError(e: unknown, ctx: Ctx, what: string): HubError {
  if (e instanceof HubError) return e;
  const status = (e as { statusCode?: unknown })?.statusCode;
  if (typeof status === 'number') return statusError(status, ctx.lastErrorCode, ctx, what, e);
  return unreachable(e, ctx);
}

function safeJoin(dir: string, repoPath: string): string {
  const p = path.resolve(dir, repoPath);
  if (!p.startsWith(path.resolve(dir) + path.sep) || repoPath.includes('\\')) {
    throw new HubError('http', `the Hub listed an unsafe file path "${repoPath}"`);
  }
  return p;
}

async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    const m = JSON.parse(await fsp.readFile(path.join(dir, MANIFEST), 'utf8')) as Manifest;
    return Array.isArray(m.files) ? m : undefined;
  } catch {
    return undefined;
  }
}

async function writeManifest(dir: string, m: Manifest): Promise<void> {
  const tmp = path.join(dir, `${MANIFEST}.tmp`);
  await fsp.writeFile(tmp, JSON.stringify(m, null, 2) + '\n');
  await fsp.rename(tmp, path.join(dir, MANIFEST));
}

async function fileSize(p: string): Promise<number> {
  try {
    return (await fsp.stat(p)).size;
  } catch {
    return -1;
  }
}

async function hashFile(p: string, hash: Hash): Promise<void> {
  for await (const chunk of fs.createReadStream(p)) hash.update(chunk as Buffer);
}

/** Hash of a local file in the form the Hub lists for it, or undefined when the Hub lists none. */
async function digest(p: string, file: ManifestFile): Promise<{ kind: string; got: string; want: string } | undefined> {
  if (file.sha256) {
    const h = createHash('sha256');
    await hashFile(p, h);
    return { kind: 'sha256', got: h.digest('hex'), want: file.sha256 };
  }
  if (file.gitOid) {
    const h = createHash('sha1').update(`blob ${file.size}\0`);
    await hashFile(p, h);
    return { kind: 'git blob id', got: h.digest('hex'), want: file.gitOid };
  }
  return undefined;
}

/** The final file is there with the listed size, and its hash was verified before (or is checked now). */
async function isComplete(local: string, file: ManifestFile, previous: Manifest | undefined): Promise<boolean> {
  if ((await fileSize(local)) !== file.size) return false;
  const known = previous?.files.find((f) => f.path === file.path);
  if (known && known.size === file.size && known.sha256 === file.sha256 && known.gitOid === file.gitOid) return true;
  const d = await digest(local, file);
  return d === undefined || d.got === d.want;
}

function resolveUrl(ctx: Ctx, rev: string, repoPath: string): string {
  const encPath = repoPath.split('/').map(encodeURIComponent).join('/');
  return `${ctx.endpoint}/${ctx.repoType === 'dataset' ? 'datasets/' : ''}${ctx.repo}/resolve/${encodeURIComponent(rev)}/${encPath}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Download one file to `<local>.part` (continuing what is there), verify, then rename into place. */
async function downloadFile(ctx: Ctx, rev: string, file: ManifestFile, local: string, options: PullOptions, progress: (n: number) => void): Promise<void> {
  const part = `${local}.part`;
  await fsp.mkdir(path.dirname(local), { recursive: true });
  const attempts = Math.max(1, options.retries ?? 4);
  const stallMs = options.stallTimeoutMs ?? 60_000;
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (ctx.signal?.aborted) throw new HubError('aborted', 'download aborted');
    if (attempt > 0) await sleep(Math.min(2000, 100 * 2 ** attempt));
    let have = Math.max(0, await fileSize(part));
    if (have > file.size) {
      await fsp.rm(part, { force: true });
      have = 0;
    }
    try {
      if (have < file.size || file.size === 0) have = await fetchInto(ctx, rev, file, part, have, stallMs, progress);
      // Verify, then move into place.
      const size = await fileSize(part);
      if (size !== file.size) throw new HubError('integrity', `${file.path}: got ${size} bytes, the Hub lists ${file.size}`);
      const d = await digest(part, file);
      if (d && d.got !== d.want) {
        await fsp.rm(part, { force: true });
        throw new HubError('integrity', `${file.path}: ${d.kind} ${d.got} does not match the Hub's ${d.want}; the partial file was removed, run the pull again`);
      }
      await fsp.rename(part, local);
      return;
    } catch (e) {
      lastError = e;
      // HTTP errors that retrying cannot fix, integrity failures and aborts end the pull now.
      if (e instanceof HubError && e.reason !== 'unreachable') throw e;
    }
  }
  throw lastError instanceof HubError
    ? new HubError(lastError.reason, `${file.path}: ${lastError.message} (after ${attempts} attempts; run the pull again to continue)`, { status: lastError.status, cause: lastError })
    : unreachable(lastError, ctx);
}

/** One request: GET the file from byte `have` on, appending to `part`; returns bytes now in `part`. */
async function fetchInto(ctx: Ctx, rev: string, file: ManifestFile, part: string, have: number, stallMs: number, progress: (n: number) => void): Promise<number> {
  const ac = new AbortController();
  const onAbort = (): void => ac.abort();
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => ac.abort(new Error(`no data for ${stallMs} ms`)), stallMs);
  };
  const headers: Record<string, string> = { 'Accept-Encoding': 'identity' };
  if (ctx.token) headers.Authorization = `Bearer ${ctx.token}`;
  if (have > 0) headers.Range = `bytes=${have}-`;
  let fh: fsp.FileHandle | undefined;
  try {
    arm();
    let res: Response;
    try {
      res = await ctx.baseFetch(resolveUrl(ctx, rev, file.path), { headers, signal: ac.signal, redirect: 'follow' });
    } catch (e) {
      throw ctx.signal?.aborted ? new HubError('aborted', 'download aborted', { cause: e }) : unreachable(e, ctx);
    }
    if (res.status === 416 && have > 0) {
      // Nothing left to send: the part is complete (verified by the caller) or wrong (restart).
      await res.body?.cancel();
      if (have === file.size) return have;
      await fsp.rm(part, { force: true });
      throw new HubError('unreachable', `${file.path}: the server refused to resume; starting over`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw statusError(res.status, res.headers.get('x-error-code') ?? undefined, ctx, `downloading ${file.path}`);
    }
    let append = false;
    if (have > 0 && res.status === 206) {
      const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== have) {
        await res.body?.cancel();
        await fsp.rm(part, { force: true });
        throw new HubError('unreachable', `${file.path}: the server resumed at the wrong offset; starting over`);
      }
      append = true;
    }
    if (!append) have = 0;
    fh = await fsp.open(part, append ? 'a' : 'w');
    progress(have);
    if (res.body) {
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          arm();
          await fh.write(chunk);
          have += chunk.byteLength;
          progress(have);
        }
      } catch (e) {
        if (ctx.signal?.aborted) throw new HubError('aborted', 'download aborted', { cause: e });
        throw unreachable(e, ctx);
      }
    }
    return have;
  } finally {
    clearTimeout(timer);
    ctx.signal?.removeEventListener('abort', onAbort);
    await fh?.close();
  }
}
