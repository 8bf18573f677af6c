/**
 * The server's life: listening, and shutting down (the constraint table prebuild cancelled,
 * the schedulers closed, the sockets closed).
 */
import type { FastifyInstance } from 'fastify';
import { prebuildTokenTable, type TablePrebuild } from '../generate/constraint/vocab.js';
import type { Scheduler } from '../generate/scheduler.js';
import type { Tokenizer } from '../tokenizer/types.js';

export interface LifecycleParts {
  /** Tokenizers whose constraint token table is built in a worker once listening. */
  tokenizers(): Tokenizer[];
  /** The schedulers to close on shutdown. */
  schedulers(): Scheduler[];
}

export class Lifecycle {
  private readonly prebuilds: TablePrebuild[] = [];
  private prebuilt = false;

  constructor(
    private readonly app: FastifyInstance,
    private readonly parts: LifecycleParts,
  ) {}

  /** Listen; resolves to the base URL (http://host:port). */
  async listen({ port = 8080, host = '127.0.0.1' }: { port?: number; host?: string } = {}): Promise<string> {
    await this.app.listen({ port, host });
    // After listen: startup is not delayed; the build runs in a worker (vocab.ts).
    if (!this.prebuilt) {
      this.prebuilt = true;
      for (const t of this.parts.tokenizers()) this.prebuilds.push(prebuildTokenTable(t));
    }
    const addr = this.app.server.address();
    const p = typeof addr === 'object' && addr ? addr.port : port;
    const h = host.includes(':') ? `[${host}]` : host;
    return `http://${h}:${p}`;
  }

  async close(): Promise<void> {
    for (const p of this.prebuilds) p.cancel();
    for (const s of this.parts.schedulers()) s.close();
    await this.app.close();
  }
}
