/**
 * `gemma pull` / pullModel against a local fake of the Hugging Face Hub on 127.0.0.1: the model
 * info and tree APIs, `resolve` URLs with LFS redirects to a CDN path, Range requests, Hub headers
 * (ETag, X-Repo-Commit, X-Linked-Size, X-Linked-Etag, X-Error-Code) and gated repos.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { pullModel, selectFiles, globToRegExp, defaultCacheDir, modelCacheDir, cachedModelPath, HubError, type PullProgress } from '../src/hub/pull.js';
import { registerPullCommand } from '../src/cli/pull.js';
import { UsageError } from '../src/errors.js';
import { repoRoot } from './helpers/paths.js';

// ---- the fake Hub ------------------------------------------------------------------------------
interface RepoFile { path: string; data: Buffer; lfs: boolean }
interface FakeRepo { files: RepoFile[]; commit: string; gated: boolean }
interface Seen { method: string; url: string; range?: string; auth?: string }

const TOKEN = 'hf_test_token_with_access';
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const gitOid = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly seen: Seen[] = [];
  /** CDN paths (sha256) whose next download sends half the bytes and then drops the connection. */
  readonly cutNext = new Set<string>();
  private server = http.createServer((req, res) => this.handle(req, res));
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  }

  private serveBytes(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer, headers: Record<string, string>, cut: boolean): void {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0, end = data.length - 1, status = 200;
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
      if (start >= data.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${data.length}` });
        res.end();
        return;
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${data.length}`;
    }
    res.writeHead(status, { ...headers, 'Accept-Ranges': 'bytes', 'Content-Length': String(end - start + 1), 'Content-Type': 'application/octet-stream' });
    const body = data.subarray(start, end + 1);
    if (cut) {
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const u = new URL(req.url ?? '/', this.url);
    this.seen.push({ method: req.method ?? '', url: u.pathname + u.search, range: req.headers.range, auth: req.headers.authorization });
    const p = decodeURIComponent(u.pathname);
    let m: RegExpExecArray | null;
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(p))) {
      const repo = this.repos.get(m[1]!);
      if (!repo) return this.json(res, 401, { error: 'Repository Not Found for url.' }, { 'X-Error-Code': 'RepoNotFound' });
      if (m[3] !== 'main' && m[3] !== repo.commit) return this.json(res, 404, { error: `Invalid rev id: ${m[3]}` }, { 'X-Error-Code': 'RevisionNotFound' });
      if (m[2] === 'revision') {
        return this.json(res, 200, { _id: 'abc123', id: m[1], sha: repo.commit, private: false, gated: repo.gated ? 'manual' : false, downloads: 0, likes: 0, lastModified: '2026-01-01T00:00:00.000Z', pipeline_tag: 'text-generation' });
      }
      if (u.searchParams.get('recursive') !== 'true') return this.json(res, 400, { error: 'test server expects recursive=true' });
      const entries: unknown[] = [];
      const dirs = new Set<string>();
      for (const f of repo.files) {
        const d = path.posix.dirname(f.path);
        if (d !== '.' && !dirs.has(d)) { dirs.add(d); entries.push({ type: 'directory', oid: gitOid(Buffer.from(d)), size: 0, path: d }); }
        const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(f.data)}\nsize ${f.data.length}\n`);
        entries.push(f.lfs
          ? { type: 'file', oid: gitOid(pointer), size: f.data.length, path: f.path, lfs: { oid: sha256(f.data), size: f.data.length, pointerSize: pointer.length } }
          : { type: 'file', oid: gitOid(f.data), size: f.data.length, path: f.path });
      }
      return this.json(res, 200, entries);
    }
    if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p))) {
      const repo = this.repos.get(m[1]!);
      if (!repo) return this.json(res, 401, { error: 'Repository Not Found' }, { 'X-Error-Code': 'RepoNotFound' });
      if (repo.gated) {
        const auth = req.headers.authorization;
        if (!auth) return this.json(res, 401, { error: 'Access to model is restricted. You must have access to it and be authenticated to access it.' }, { 'X-Error-Code': 'GatedRepo' });
        if (auth !== `Bearer ${TOKEN}`) return this.json(res, 403, { error: 'Access to model is restricted and you are not in the authorized list.' }, { 'X-Error-Code': 'GatedRepo' });
      }
      if (m[2] !== 'main' && m[2] !== repo.commit) return this.json(res, 404, { error: 'Revision Not Found' }, { 'X-Error-Code': 'RevisionNotFound' });
      const f = repo.files.find((x) => x.path === m![3]);
      if (!f) return this.json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      const common = { 'X-Repo-Commit': repo.commit };
      if (f.lfs) {
        res.writeHead(302, { ...common, Location: `/cdn-lfs/${sha256(f.data)}?name=${encodeURIComponent(f.path)}`, ETag: `"${sha256(f.data)}"`, 'X-Linked-Size': String(f.data.length), 'X-Linked-Etag': `"${sha256(f.data)}"`, 'Content-Length': '0' });
        res.end();
        return;
      }
      return this.serveBytes(req, res, f.data, { ...common, ETag: `"${gitOid(f.data)}"` }, false);
    }
    if ((m = /^\/cdn-lfs\/([0-9a-f]{64})$/.exec(p))) {
      const f = [...this.repos.values()].flatMap((r) => r.files).find((x) => x.lfs && sha256(x.data) === m![1]);
      if (!f) return this.json(res, 404, { error: 'no such object' });
      const cut = this.cutNext.delete(m[1]!);
      return this.serveBytes(req, res, f.data, { ETag: `"${m[1]}"` }, cut);
    }
    this.json(res, 404, { error: `unknown path ${p}` });
  }

  downloads(): Seen[] {
    return this.seen.filter((s) => s.url.includes('/resolve/') || s.url.startsWith('/cdn-lfs/'));
  }
}

// ---- fixtures: the demo checkpoint served as a Hub repo ---------------------------------------
const DEMO = path.join(repoRoot(), 'models', 'demo');
const demoFile = (name: string, lfs = false): RepoFile => ({ path: name, data: fs.readFileSync(path.join(DEMO, name)), lfs });
const WANTED = ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json'];
function demoRepo(gated: boolean, commit: string): FakeRepo {
  return {
    commit,
    gated,
    files: [
      { path: '.gitattributes', data: Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n'), lfs: false },
      { path: 'README.md', data: Buffer.from('# demo\n'), lfs: false },
      demoFile('config.json'),
      demoFile('generation_config.json'),
      demoFile('special_tokens_map.json'),
      demoFile('tokenizer.json', true),
      demoFile('tokenizer.model', true),
      demoFile('tokenizer_config.json'),
      demoFile('model.safetensors', true),
      { path: 'pytorch_model.bin', data: Buffer.alloc(50_000, 7), lfs: true },
      { path: 'demo-q8_0.gguf', data: Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(30_000, 3)]), lfs: true },
      { path: 'original/params.json', data: Buffer.from('{"dim": 128}\n'), lfs: false },
    ],
  };
}

const hub = new FakeHub();
const COMMIT = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-pull-test-'));
let n = 0;
const freshCache = (): string => fs.mkdtempSync(path.join(tmpRoot, `c${n++}-`));

before(async () => {
  await hub.start();
  hub.repos.set('test-org/demo', demoRepo(false, COMMIT));
  hub.repos.set('test-org/gated-demo', demoRepo(true, 'b'.repeat(40)));
});
after(async () => {
  await hub.stop();
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});

function assertSameFiles(dir: string, names: string[]): void {
  for (const name of names) {
    assert.ok(fs.readFileSync(path.join(dir, name)).equals(fs.readFileSync(path.join(DEMO, name))), `${name} differs from the served file`);
  }
  const got = fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
  assert.deepEqual(got, [...names].sort(), 'only the checkpoint files are downloaded, nothing partial is left');
}

test('pull: downloads exactly the Gemma checkpoint files at the resolved commit, with progress', async () => {
  const cache = freshCache();
  hub.seen.length = 0;
  const events: PullProgress[] = [];
  const dir = await pullModel('test-org/demo', { cacheDir: cache, endpoint: hub.url, token: '', onProgress: (p) => events.push(p) });
  assert.equal(dir, path.join(cache, 'test-org--demo', 'main'));
  assertSameFiles(dir, WANTED);
  // Every download used the commit the revision resolved to, and the LFS redirects were followed.
  const resolves = hub.seen.filter((s) => s.url.includes('/resolve/'));
  assert.equal(resolves.length, WANTED.length);
  for (const r of resolves) assert.ok(r.url.startsWith(`/test-org/demo/resolve/${COMMIT}/`), r.url);
  assert.equal(hub.seen.filter((s) => s.url.startsWith('/cdn-lfs/')).length, 3);
  assert.ok(hub.seen.some((s) => s.url.startsWith('/api/models/test-org/demo/tree/')));
  assert.ok(hub.seen.every((s) => s.auth === undefined), 'no token was sent');
  // Progress: bytes never go backwards and end at the total of the selected files.
  const total = WANTED.reduce((a, f) => a + fs.statSync(path.join(DEMO, f)).size, 0);
  for (let i = 1; i < events.length; i++) assert.ok(events[i]!.bytes >= events[i - 1]!.bytes, 'progress went backwards');
  const last = events[events.length - 1]!;
  assert.deepEqual([last.bytes, last.total, last.filesDone, last.filesTotal], [total, total, WANTED.length, WANTED.length]);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, '.gemma-pull.json'), 'utf8')) as { commit: string; files: { path: string }[] };
  assert.equal(manifest.commit, COMMIT);
  assert.equal(cachedModelPath('test-org/demo', { cacheDir: cache }), dir);
  assert.equal(cachedModelPath('test-org/demo', { cacheDir: cache, revision: 'v2' }), undefined);
  assert.equal(cachedModelPath('test-org/other', { cacheDir: cache }), undefined);

  // A second pull lists the repo again but downloads nothing.
  hub.seen.length = 0;
  const mtime = fs.statSync(path.join(dir, 'model.safetensors')).mtimeMs;
  const again = await pullModel('test-org/demo', { cacheDir: cache, endpoint: hub.url, token: '' });
  assert.equal(again, dir);
  assert.deepEqual(hub.downloads(), []);
  assert.equal(fs.statSync(path.join(dir, 'model.safetensors')).mtimeMs, mtime);
});

test('pull: after the repo moves to a new commit, only the changed files are downloaded again', async () => {
  const cache = freshCache();
  const repo = demoRepo(false, 'c'.repeat(40));
  hub.repos.set('test-org/moving', repo);
  const dir = await pullModel('test-org/moving', { cacheDir: cache, endpoint: hub.url, token: '' });
  // Same sizes, new bytes: a small git file and an LFS file.
  const cfg = repo.files.find((f) => f.path === 'config.json')!;
  cfg.data = Buffer.from(cfg.data.toString('utf8').replace('"bos_token_id": 2', '"bos_token_id": 3'));
  const tok = repo.files.find((f) => f.path === 'tokenizer.model')!;
  tok.data = Buffer.from(tok.data);
  tok.data[tok.data.length - 1] ^= 1;
  repo.commit = 'd'.repeat(40);
  hub.seen.length = 0;
  await pullModel('test-org/moving', { cacheDir: cache, endpoint: hub.url, token: '' });
  const fetched = hub.seen.filter((s) => s.url.includes('/resolve/')).map((s) => s.url.split('/').pop()).sort();
  assert.deepEqual(fetched, ['config.json', 'tokenizer.model']);
  assert.ok(fs.readFileSync(path.join(dir, 'config.json')).equals(cfg.data));
  assert.ok(fs.readFileSync(path.join(dir, 'tokenizer.model')).equals(tok.data));
});

test('pull: a connection cut mid-file is resumed with a Range request and gives identical bytes', async () => {
  const cache = freshCache();
  hub.seen.length = 0;
  const weights = fs.readFileSync(path.join(DEMO, 'model.safetensors'));
  hub.cutNext.add(sha256(weights));
  const dir = await pullModel('test-org/demo', { cacheDir: cache, endpoint: hub.url, token: '' });
  assertSameFiles(dir, WANTED);
  const cdn = hub.seen.filter((s) => s.url.startsWith(`/cdn-lfs/${sha256(weights)}`));
  assert.equal(cdn.length, 2, 'one cut request and one resumed request');
  assert.equal(cdn[0]!.range, undefined);
  const m = /^bytes=(\d+)-$/.exec(cdn[1]!.range ?? '');
  assert.ok(m, `resumed request asks for a range, got ${cdn[1]!.range}`);
  assert.ok(Number(m[1]) > 0 && Number(m[1]) < weights.length, `resume offset ${m[1]}`);
});

test('pull: a partial file left by an earlier run continues from its end', async () => {
  const cache = freshCache();
  const dir = modelCacheDir('test-org/demo', 'main', cache);
  fs.mkdirSync(dir, { recursive: true });
  const weights = fs.readFileSync(path.join(DEMO, 'model.safetensors'));
  const half = Math.floor(weights.length / 2);
  fs.writeFileSync(path.join(dir, 'model.safetensors.part'), weights.subarray(0, half));
  assert.equal(cachedModelPath('test-org/demo', { cacheDir: cache }), undefined, 'an unfinished pull is not a cached model');
  hub.seen.length = 0;
  await pullModel('test-org/demo', { cacheDir: cache, endpoint: hub.url, token: '' });
  assertSameFiles(dir, WANTED);
  const cdn = hub.seen.filter((s) => s.url.startsWith(`/cdn-lfs/${sha256(weights)}`));
  assert.deepEqual(cdn.map((s) => s.range), [`bytes=${half}-`]);
});

test('pull: an aborted pull keeps its partial file and the next pull resumes it', async () => {
  const cache = freshCache();
  const ac = new AbortController();
  await assert.rejects(
    pullModel('test-org/demo', {
      cacheDir: cache, endpoint: hub.url, token: '', signal: ac.signal,
      onProgress: (p) => { if (p.file === 'model.safetensors' && p.phase === 'download' && p.fileBytes > 0) ac.abort(); },
    }),
    (e: unknown) => e instanceof HubError && e.reason === 'aborted',
  );
  const dir = modelCacheDir('test-org/demo', 'main', cache);
  const partSize = fs.statSync(path.join(dir, 'model.safetensors.part')).size;
  assert.ok(partSize > 0);
  hub.seen.length = 0;
  await pullModel('test-org/demo', { cacheDir: cache, endpoint: hub.url, token: '' });
  assertSameFiles(dir, WANTED);
  const weights = fs.readFileSync(path.join(DEMO, 'model.safetensors'));
  assert.deepEqual(hub.seen.filter((s) => s.url.startsWith(`/cdn-lfs/${sha256(weights)}`)).map((s) => s.range), [`bytes=${partSize}-`]);
});

test('pull: a corrupt partial file fails the sha256 check, is removed, and the next pull succeeds', async () => {
  const cache = freshCache();
  const dir = modelCacheDir('test-org/demo', 'main', cache);
  fs.mkdirSync(dir, { recursive: true });
  // Half the size of the real file (smaller than it, so the download resumes from there).
  fs.writeFileSync(path.join(dir, 'model.safetensors.part'), Buffer.alloc(Math.floor(fs.statSync(path.join(DEMO, 'model.safetensors')).size / 2), 0xab));
  await assert.rejects(pullModel('test-org/demo', { cacheDir: cache, endpoint: hub.url, token: '' }), (e: unknown) => {
    assert.ok(e instanceof HubError, String(e));
    assert.equal(e.reason, 'integrity');
    assert.equal(e.code, 'NETWORK_ERROR');
    assert.match(e.message, /model\.safetensors.*sha256/);
    return true;
  });
  assert.equal(fs.existsSync(path.join(dir, 'model.safetensors.part')), false);
  assert.equal(fs.existsSync(path.join(dir, 'model.safetensors')), false);
  await pullModel('test-org/demo', { cacheDir: cache, endpoint: hub.url, token: '' });
  assertSameFiles(dir, WANTED);
});

test('pull: a gated repo without a token says to set HF_TOKEN; with a token it downloads', async () => {
  const cache = freshCache();
  await assert.rejects(pullModel('test-org/gated-demo', { cacheDir: cache, endpoint: hub.url, token: '' }), (e: unknown) => {
    assert.ok(e instanceof HubError, String(e));
    assert.equal(e.reason, 'gated');
    assert.equal(e.status, 401);
    assert.match(e.message, /HF_TOKEN/);
    assert.match(e.message, /license/);
    return true;
  });
  await assert.rejects(pullModel('test-org/gated-demo', { cacheDir: cache, endpoint: hub.url, token: 'hf_no_access' }), (e: unknown) => {
    assert.ok(e instanceof HubError && e.reason === 'gated' && e.status === 403, String(e));
    assert.match(e.message, /accept the model's license/);
    return true;
  });
  hub.seen.length = 0;
  const dir = await pullModel('test-org/gated-demo', { cacheDir: cache, endpoint: hub.url, token: TOKEN });
  assertSameFiles(dir, WANTED);
  assert.ok(hub.downloads().filter((s) => s.url.includes('/resolve/')).every((s) => s.auth === `Bearer ${TOKEN}`));
});

test('pull: unknown repo, unknown revision, unreachable Hub and bad ids give typed errors', async () => {
  const cache = freshCache();
  await assert.rejects(pullModel('test-org/no-such-model', { cacheDir: cache, endpoint: hub.url, token: '' }), (e: unknown) => {
    assert.ok(e instanceof HubError && e.reason === 'not-found', String(e));
    assert.match(e.message, /test-org\/no-such-model was not found/);
    return true;
  });
  await assert.rejects(pullModel('test-org/demo', { revision: 'v9', cacheDir: cache, endpoint: hub.url, token: '' }), (e: unknown) => {
    assert.ok(e instanceof HubError && e.reason === 'revision-not-found', String(e));
    assert.match(e.message, /"v9"/);
    return true;
  });
  // A port that nobody listens on (a server we open and close).
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  await assert.rejects(pullModel('test-org/demo', { cacheDir: cache, endpoint: `http://127.0.0.1:${port}`, token: '' }), (e: unknown) => {
    assert.ok(e instanceof HubError && e.reason === 'unreachable', String(e));
    assert.match(e.message, /cannot reach/);
    return true;
  });
  for (const bad of ['gemma', 'a/b/c', '../x', 'org/..', '']) {
    await assert.rejects(pullModel(bad, { cacheDir: cache, endpoint: hub.url }), UsageError, bad);
  }
  assert.equal(fs.readdirSync(cache).length, 0, 'failed pulls leave no directories behind');
});

test('pull: file selection, globs and cache location', () => {
  const names = ['config.json', 'model-00001-of-00002.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'x.gguf', 'original/params.json', 'sub/model.safetensors', 'README.md', 'chat_template.jinja'];
  const pick = (include?: string[]): string[] => selectFiles(names.map((p) => ({ path: p })), include).map((f) => f.path);
  assert.deepEqual(pick(), ['config.json', 'model-00001-of-00002.safetensors', 'model.safetensors.index.json', 'chat_template.jinja']);
  assert.deepEqual(pick(['*.gguf']), ['config.json', 'model-00001-of-00002.safetensors', 'model.safetensors.index.json', 'x.gguf', 'chat_template.jinja']);
  assert.ok(pick(['original/**']).includes('original/params.json'));
  assert.ok(globToRegExp('**/*.safetensors').test('sub/model.safetensors') && globToRegExp('**/*.safetensors').test('model.safetensors'));
  assert.ok(!globToRegExp('*.json').test('original/params.json'));
  assert.equal(defaultCacheDir({ GEMMA_TS_CACHE: '/c' }), path.join('/c', 'hub'));
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x' }), path.join('/x', 'gemma-ts', 'hub'));
  assert.equal(defaultCacheDir({}), path.join(os.homedir(), '.cache', 'gemma-ts', 'hub'));
  assert.equal(modelCacheDir('google/gemma-3-1b-it', 'refs/pr/1', '/c'), path.join('/c', 'google--gemma-3-1b-it', 'refs%2Fpr%2F1'));
});

test('gemma pull (CLI): prints the directory, honours --include, --revision and HF_ENDPOINT', async () => {
  const cache = freshCache();
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: { write: (s: string) => (out.push(s), true) }, stderr: { write: (s: string) => (err.push(s), true), isTTY: false } };
  const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, HF_TOKEN: process.env.HF_TOKEN };
  process.env.HF_ENDPOINT = hub.url;
  delete process.env.HF_TOKEN;
  try {
    const program = new Command().exitOverride();
    registerPullCommand(program, io as never);
    await program.parseAsync(['pull', 'test-org/demo', '--revision', COMMIT, '--include', '*.gguf', '--cache-dir', cache], { from: 'user' });
    const dir = path.join(cache, 'test-org--demo', COMMIT);
    assert.deepEqual(out, [`${dir}\n`]);
    assert.ok(fs.readFileSync(path.join(dir, 'demo-q8_0.gguf')).subarray(0, 4).equals(Buffer.from('GGUF')));
    assert.ok(fs.existsSync(path.join(dir, 'config.json')) && !fs.existsSync(path.join(dir, 'pytorch_model.bin')));
    assert.ok(err.some((l) => l.startsWith('downloaded') && l.includes('model.safetensors')), err.join(''));

    const gated = new Command().exitOverride();
    registerPullCommand(gated, io as never);
    await assert.rejects(gated.parseAsync(['pull', 'test-org/gated-demo', '--cache-dir', cache, '-q'], { from: 'user' }), (e: unknown) => e instanceof HubError && e.reason === 'gated');
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
});
