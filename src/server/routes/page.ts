/**
 * GET / (and /index.html, /app.js, /style.css): the chat page's static files, no API key needed.
 * GET /local/: examples/browser, the page that runs the model in the tab with the web build
 * (dist/web/index.js as /local/gemma-ts.js, the demo model under /local/models/demo/ with byte
 * ranges), cross-origin isolated (COOP / COEP) so that the wasm backend gets worker threads.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { packageRoot } from '../../util/package-root.js';
import type { RouteContext } from '../context.js';
import { HttpError } from '../openai.js';

/** Where the chat page's static files live (works from src/ and dist/). */
export function publicDir(): string {
  return path.join(packageRoot(), 'src', 'server', 'public');
}

const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.map': 'application/json',
};

/** The headers that make /local/ cross-origin isolated (SharedArrayBuffer, Web Worker threads). */
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' };

/** Files behind /local/: URL path -> file. */
function localFiles(): Map<string, string> {
  const root = packageRoot();
  const files = new Map<string, string>([
    ['/local/', path.join(root, 'examples', 'browser', 'index.html')],
    ['/local/index.html', path.join(root, 'examples', 'browser', 'index.html')],
    ['/local/app.js', path.join(root, 'examples', 'browser', 'app.js')],
    ['/local/worker.js', path.join(root, 'examples', 'browser', 'worker.js')],
    ['/local/style.css', path.join(root, 'examples', 'browser', 'style.css')],
    ['/local/gemma-ts.js', path.join(root, 'dist', 'web', 'index.js')],
    ['/local/gemma-ts.js.map', path.join(root, 'dist', 'web', 'index.js.map')],
  ]);
  const demo = path.join(root, 'models', 'demo');
  for (const f of fs.existsSync(demo) ? fs.readdirSync(demo) : []) files.set(`/local/models/demo/${f}`, path.join(demo, f));
  return files;
}

/** Send a file, or the single byte range the request asks for (the web build reads weights with ranges). */
async function sendFile(req: FastifyRequest, reply: FastifyReply, file: string): Promise<void> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch {
    throw new HttpError(404, `${path.basename(file)} is not installed (${file} missing${file.includes(`${path.sep}dist${path.sep}web`) ? ': run npm run build:web' : ''})`, { code: 'not_found' });
  }
  try {
    const size = (await fh.stat()).size;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const end = m && m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
    reply.headers({ ...ISOLATION, 'accept-ranges': 'bytes', 'cache-control': 'no-cache' }).type(STATIC_TYPES[path.extname(file)] ?? 'application/octet-stream');
    if (m && (start >= size || start > end)) {
      reply.code(416).header('content-range', `bytes */${size}`).send();
      return;
    }
    const data = Buffer.alloc(end - start + 1);
    await fh.read(data, 0, data.length, start);
    if (m) reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
    reply.send(data);
  } finally {
    await fh.close();
  }
}

export function registerPageRoutes(ctx: RouteContext): void {
  const dir = publicDir();
  const serveStatic = (file: string) => async (_req: FastifyRequest, reply: FastifyReply) => {
    const p = path.join(dir, file);
    let data: Buffer;
    try {
      data = await fs.promises.readFile(p);
    } catch {
      throw new HttpError(404, `the chat page is not installed (${p} missing)`, { code: 'not_found' });
    }
    reply.type(STATIC_TYPES[path.extname(file)] ?? 'application/octet-stream').header('cache-control', 'no-cache').send(data);
  };
  ctx.app.get('/', serveStatic('index.html'));
  ctx.app.get('/index.html', serveStatic('index.html'));
  ctx.app.get('/app.js', serveStatic('app.js'));
  ctx.app.get('/style.css', serveStatic('style.css'));

  const local = localFiles();
  ctx.app.get('/local', async (_req, reply) => reply.redirect('/local/'));
  ctx.app.get('/local/*', async (req, reply) => {
    const file = local.get(new URL(req.url, 'http://x').pathname);
    if (!file) throw new HttpError(404, `no such file under /local/: ${req.url}`, { code: 'not_found' });
    await sendFile(req, reply, file);
    return reply;
  });
}
