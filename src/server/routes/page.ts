/**
 * GET / (and /index.html, /app.js, /style.css): the chat page's static files, no API key needed.
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
};

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
}
