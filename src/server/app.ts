/**
 * The server's core: a fastify instance with strict JSON bodies, CORS, the API-key check, the
 * request counter behind /metrics and OpenAI-shaped errors. Routes are added by routes/*.ts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { GemmaError } from '../errors.js';
import { QueueFullError } from '../generate/scheduler.js';
import { RequestCounter } from './metrics.js';
import { HttpError, defaultType, type OpenAIErrorBody } from './openai.js';

export interface AppOptions {
  /** Require `Authorization: Bearer <apiKey>` on everything but PUBLIC_ROUTES. */
  apiKey?: string;
  /** Send CORS headers: true = any origin, a string = that origin. Off by default. */
  cors?: boolean | string;
  /** Largest request body in bytes (default 2 MiB). */
  bodyLimit?: number;
  /** Fastify's request log (default off). */
  logger?: boolean;
  /** Sent as `X-Gemma-Replica` on every response. */
  replicaName?: string;
}

export interface App {
  app: FastifyInstance;
  /** Responses by route and status, for /metrics (streams count when their headers go out). */
  requests: RequestCounter;
  /** The CORS headers every response carries (none without --cors). */
  corsHeaders(): Record<string, string>;
}

/** A 503 with Retry-After: the server cannot take the request now, but will (or another replica can). */
export class UnavailableError extends HttpError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    options: { param?: string | null; code?: string | null } = {},
  ) {
    super(503, message, options);
  }
}

/** Routes that stay open when --api-key is set: the chat page (it asks for the key) and health. */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/', '/index.html', '/app.js', '/style.css', '/health', '/health/live', '/sae', '/local', '/local/*']);

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time check of an Authorization header against the key (hashes have equal length). */
export function checkBearer(header: string | undefined, key: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  const given = m ? m[1]!.trim() : '';
  const ok = timingSafeEqual(sha256(given), sha256(key));
  return ok && m !== null;
}

/** How long an early answer waits for the rest of an unread request body. */
const LINGER_MS = 5000;

/** Reads and drops the rest of a request body; resolves at its end, on close, or after `ms`. */
function drainRequest(raw: IncomingMessage, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      raw.off('end', done).off('close', done).off('error', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    raw.on('end', done).on('close', done).on('error', done);
    raw.resume();
  });
}

export function createApp(options: AppOptions): App {
  const apiKey = options.apiKey;
  if (apiKey !== undefined && apiKey.length === 0) throw new HttpError(500, 'the API key must not be empty');
  const corsOrigin = options.cors === true ? '*' : typeof options.cors === 'string' ? options.cors : undefined;
  const requests = new RequestCounter();
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.bodyLimit ?? 2 * 1024 * 1024, return503OnClosing: true });

  // JSON bodies: strict UTF-8, then JSON.parse.
  app.removeAllContentTypeParsers(); // only JSON bodies: anything else is a 415
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body as Buffer);
    } catch {
      done(new HttpError(400, 'the request body is not valid UTF-8', { code: 'invalid_utf8' }), undefined);
      return;
    }
    if (text.trim() === '') {
      done(new HttpError(400, 'the request body is empty; expected a JSON object', { code: 'invalid_json' }), undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (e) {
      done(new HttpError(400, `the request body is not valid JSON: ${(e as Error).message}`, { code: 'invalid_json' }), undefined);
    }
  });

  const corsHeaders = (): Record<string, string> => (corsOrigin ? { 'access-control-allow-origin': corsOrigin, vary: 'Origin' } : {});

  const replicaName = options.replicaName;
  app.addHook('onRequest', async (req, reply) => {
    if (replicaName) reply.header('x-gemma-replica', replicaName);
    if (corsOrigin) {
      reply.headers(corsHeaders());
      if (req.method === 'OPTIONS') {
        reply
          .code(204)
          .headers({
            'access-control-allow-methods': 'GET, POST, OPTIONS',
            'access-control-allow-headers': 'authorization, content-type',
            'access-control-max-age': '600',
          })
          .send();
        return reply;
      }
    }
    // With a key, everything but the page and health needs it (unknown paths too: 401 before 404).
    const route = req.routeOptions.url;
    if (apiKey !== undefined && (route === undefined || !PUBLIC_ROUTES.has(route))) {
      if (!checkBearer(req.headers.authorization, apiKey)) {
        throw new HttpError(401, 'invalid or missing API key: send "Authorization: Bearer <key>"', { code: 'invalid_api_key' });
      }
    }
    return undefined;
  });

  // Lingering close, as nginx's lingering_close: an answer given before the request body was read
  // (413 on the declared length, 415, 401) waits until the client has sent the rest, which is
  // read and dropped, for at most LINGER_MS. Closing at once resets the connection under the
  // client's writes, and the client may lose the answer ("fetch failed" instead of the 413).
  // (`complete === false` only on a real socket's request: fastify's inject() has no such field.)
  app.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode >= 400 && req.raw.complete === false && !req.raw.destroyed) await drainRequest(req.raw, LINGER_MS);
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    requests.add(req.routeOptions.url ?? 'unmatched', reply.statusCode);
  });

  app.setErrorHandler((error: unknown, _req, reply) => {
    const body = toErrorBody(error);
    if (error instanceof UnavailableError) reply.header('retry-after', String(error.retryAfterSeconds));
    reply.code(body.status).send(body.body);
  });

  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(new HttpError(404, `no route ${req.method} ${req.url.split('?')[0]}`, { code: 'not_found' }).body());
  });

  return { app, requests, corsHeaders };
}

/** Any thrown value -> an HTTP status and OpenAI's error body. */
export function toErrorBody(error: unknown): { status: number; body: OpenAIErrorBody } {
  if (error instanceof HttpError) return { status: error.statusCode, body: error.body() };
  if (error instanceof QueueFullError) return { status: 429, body: new HttpError(429, error.message, { code: 'rate_limit_exceeded' }).body() };
  if (error instanceof GemmaError) {
    const status = error.code === 'MODEL_ERROR' || error.code === 'FORMAT_ERROR' ? 500 : 400;
    return { status, body: new HttpError(status, error.message, { code: error.code.toLowerCase() }).body() };
  }
  const e = error as { statusCode?: unknown; code?: unknown; message?: unknown };
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600) {
    const status = e.statusCode;
    const message = status === 413 ? 'the request body is too large' : typeof e.message === 'string' ? e.message : 'bad request';
    return { status, body: { error: { message, type: defaultType(status), param: null, code: typeof e.code === 'string' ? e.code : null } } };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { status: 500, body: { error: { message: `internal error: ${message}`, type: 'server_error', param: null, code: null } } };
}
