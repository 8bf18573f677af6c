/**
 * The server's life, as a load balancer or Kubernetes sees it:
 *
 *   starting  listening, the default model loading: /health 503, model routes 503 + Retry-After
 *   ready     serving
 *   draining  after drain() (SIGTERM): /health 503, new requests 503 + Retry-After and
 *             `connection: close` (a balancer retries them elsewhere); requests already accepted,
 *             streams included, run to their end
 *   closed    after close(): what still runs is aborted, the sockets are closed
 *   failed    the default model did not load: /health 503, model routes 503
 *
 * /health/live and /metrics answer in every state.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { prebuildTokenTable, type TablePrebuild } from '../generate/constraint/vocab.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UnavailableError } from './app.js';
import { EventLoopDelay } from './event-loop.js';
import type { ModelPool } from './model-pool.js';

export type ServerState = 'starting' | 'ready' | 'draining' | 'closed' | 'failed';

/** Routes that answer whatever the state (probes and scrapes must see a draining server). */
const ALWAYS_OPEN: ReadonlySet<string> = new Set(['/health', '/health/live', '/metrics']);
/** Routes that need no model: open while the model loads. */
const OPEN_WHILE_STARTING: ReadonlySet<string> = new Set([...ALWAYS_OPEN, '/', '/index.html', '/app.js', '/style.css', '/local', '/local/*']);

/** Seconds a client should wait before retrying a server that is loading or draining. */
const LOADING_RETRY_SECONDS = 5;
const DRAINING_RETRY_SECONDS = 1;

export interface DrainResult {
  /** Requests still running when the wait ended (0: all finished). */
  inFlight: number;
  timedOut: boolean;
}

export class Lifecycle {
  private current: ServerState = 'starting';
  private failure: Error | undefined;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private listening = false;
  private readonly prebuilds: TablePrebuild[] = [];
  /** Sampled while listening (/metrics). */
  readonly eventLoop = new EventLoopDelay();

  constructor(
    private readonly app: FastifyInstance,
    private readonly pool: ModelPool,
    private readonly options: { prebuildConstraint: boolean },
  ) {
    app.addHook('onRequest', async (req, reply) => this.gate(req, reply));
  }

  get state(): ServerState {
    return this.current;
  }

  /** Requests accepted and not yet answered (streams until their last byte). */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** Why the default model did not load (state 'failed'). */
  get error(): Error | undefined {
    return this.failure;
  }

  markReady(): void {
    if (this.current === 'starting') this.current = 'ready';
  }

  markFailed(e: Error): void {
    this.failure = e;
    if (this.current === 'starting') this.current = 'failed';
  }

  /** Refuse new work in the states that cannot take it; count the work let through. */
  private async gate(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const route = req.routeOptions.url;
    if (route !== undefined && ALWAYS_OPEN.has(route)) return undefined;
    if (this.current === 'starting' && !(route !== undefined && OPEN_WHILE_STARTING.has(route))) {
      throw new UnavailableError('the model is loading; retry shortly', LOADING_RETRY_SECONDS, { code: 'model_loading' });
    }
    if (this.current === 'failed') throw new UnavailableError(`the model failed to load: ${this.failure?.message ?? 'unknown error'}`, LOADING_RETRY_SECONDS, { code: 'model_load_failed' });
    if (this.current === 'draining' || this.current === 'closed') {
      reply.header('connection', 'close');
      throw new UnavailableError('the server is shutting down; retry on another replica', DRAINING_RETRY_SECONDS, { code: 'shutting_down' });
    }
    this.inFlight++;
    reply.raw.once('close', () => {
      this.inFlight--;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
    return undefined;
  }

  /** Listen; resolves to the base URL (http://host:port). */
  async listen({ port = 8080, host = '127.0.0.1' }: { port?: number; host?: string } = {}): Promise<string> {
    await this.app.listen({ port, host });
    this.eventLoop.start();
    if (!this.listening) {
      this.listening = true;
      for (const m of this.pool.loaded()) this.prebuild(m.tokenizer);
    }
    const addr = this.app.server.address();
    const p = typeof addr === 'object' && addr ? addr.port : port;
    const h = host.includes(':') ? `[${host}]` : host;
    return `http://${h}:${p}`;
  }

  /**
   * Build a tokenizer's constraint token table in a worker, so that the first constrained request
   * does not pay for it; only once listening (startup is not delayed).
   */
  prebuild(tokenizer: Tokenizer | undefined): void {
    if (tokenizer && this.listening && this.options.prebuildConstraint) this.prebuilds.push(prebuildTokenTable(tokenizer));
  }

  /** Stop taking work and wait for what was accepted to finish, at most `timeoutMs`. */
  async drain(timeoutMs: number): Promise<DrainResult> {
    if (this.current !== 'closed') this.current = 'draining';
    if (this.inFlight === 0) return { inFlight: 0, timedOut: false };
    let timer: NodeJS.Timeout | undefined;
    const finished = await new Promise<boolean>((resolve) => {
      this.idleWaiters.push(() => resolve(true));
      timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs));
    });
    clearTimeout(timer);
    return { inFlight: this.inFlight, timedOut: !finished };
  }

  /** Abort what still runs and close the sockets. */
  async close(): Promise<void> {
    this.current = 'closed';
    this.eventLoop.stop();
    for (const p of this.prebuilds) p.cancel();
    this.pool.closeSchedulers();
    await this.app.close();
    this.pool.releaseAll();
  }
}
