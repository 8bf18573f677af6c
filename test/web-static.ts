/**
 * A small static file server for the browser tests: single byte ranges (206), optional COOP / COEP
 * headers (a cross-origin isolated page), and a log of the paths requested.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.map': 'application/json', '.css': 'text/css', '.wasm': 'application/wasm' };

export interface StaticServer {
  url: string;
  /** Paths requested so far (in order). */
  requests: string[];
  /** Bytes of file bodies sent so far. */
  bytesSent: number;
  close(): Promise<void>;
}

/** Serve `mounts` (URL prefix -> directory); `isolated` adds COOP same-origin + COEP require-corp to every answer. */
export async function startStaticServer(mounts: Record<string, string>, options: { isolated?: boolean } = {}): Promise<StaticServer> {
  const state = { requests: [] as string[], bytesSent: 0 };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    state.requests.push(url.pathname);
    const headers: Record<string, string> = { 'accept-ranges': 'bytes', 'cache-control': 'no-store' };
    if (options.isolated) Object.assign(headers, { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
    const mount = Object.keys(mounts).filter((m) => url.pathname.startsWith(m)).sort((a, b) => b.length - a.length)[0];
    const file = mount === undefined ? undefined : path.join(mounts[mount]!, decodeURIComponent(url.pathname.slice(mount.length)) || 'index.html');
    if (!file || file.includes('..') || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    const size = fs.statSync(file).size;
    headers['content-type'] = TYPES[path.extname(file)] ?? 'application/octet-stream';
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size - 1;
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size || start > end) {
        res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` }).end();
        return;
      }
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['content-length'] = String(end - start + 1);
    res.writeHead(m ? 206 : 200, headers);
    state.bytesSent += end - start + 1;
    fs.createReadStream(file, { start, end }).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    set requests(v) {
      state.requests = v;
    },
    get bytesSent() {
      return state.bytesSent;
    },
    set bytesSent(v) {
      state.bytesSent = v;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
