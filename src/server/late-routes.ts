/**
 * Routes and hooks whose code is ready only after the server listens: `gemma serve --guard` and
 * `--sae` load their models behind a 503 /health, like the main model, but fastify takes routes
 * and hooks only before it listens. So the routes are declared up front and forward to handlers
 * bound later, through `app`, a stand-in for the fastify instance that the guard and SAE
 * modules register on as usual. Until then a declared route answers 503 (the lifecycle gate
 * already refuses them while the server is starting) and the hooks do nothing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { UnavailableError } from './app.js';

type Handler = (req: FastifyRequest, reply: FastifyReply) => unknown;
type PreHandler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
type OnSend = (req: FastifyRequest, reply: FastifyReply, payload: unknown) => Promise<unknown>;

export class LateRoutes {
  private readonly handlers = new Map<string, Handler>();
  private readonly preHandlers: PreHandler[] = [];
  private readonly onSends: OnSend[] = [];
  private readonly declared = new Set<string>();

  /** Declare `routes` ([method, url]) on the real app, before it listens. */
  constructor(real: FastifyInstance, routes: ReadonlyArray<readonly [HTTPMethods, string]>) {
    for (const [method, url] of routes) {
      const key = `${method} ${url}`;
      this.declared.add(key);
      real.route({
        method,
        url,
        handler: async (req, reply) => {
          const h = this.handlers.get(key);
          if (!h) throw new UnavailableError(`${url} is loading; retry shortly`, 5, { code: 'model_loading' });
          return h(req, reply);
        },
      });
    }
    real.addHook('preHandler', async (req, reply) => {
      for (const h of this.preHandlers) {
        await h(req, reply);
        if (reply.sent) return reply;
      }
      return undefined;
    });
    real.addHook('onSend', async (req, reply, payload) => {
      let p: unknown = payload;
      for (const h of this.onSends) p = await h(req, reply, p);
      return p;
    });
  }

  /** What the late modules register on: get / post of declared routes, preHandler and onSend hooks. */
  get app(): FastifyInstance {
    const bind = (method: HTTPMethods) => (url: string, handler: Handler) => {
      const key = `${method} ${url}`;
      if (!this.declared.has(key)) throw new Error(`late route ${key} was not declared before the server listened`);
      this.handlers.set(key, handler);
    };
    const shim = {
      get: bind('GET'),
      post: bind('POST'),
      addHook: (name: string, hook: PreHandler | OnSend) => {
        if (name === 'preHandler') this.preHandlers.push(hook as PreHandler);
        else if (name === 'onSend') this.onSends.push(hook as OnSend);
        else throw new Error(`late hook ${name} is not supported`);
      },
    };
    return shim as unknown as FastifyInstance;
  }
}
