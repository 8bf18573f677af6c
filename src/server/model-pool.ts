/**
 * The models one server answers for. Each has an id and a loader; a model loads on its first
 * request (the default one at startup) and stays loaded while it has work. Under `maxLoaded`
 * models, or a `memoryBudget` of weight bytes, loading one more first unloads the least recently
 * used idle ones; when every loaded model is busy the request gets 503 + Retry-After.
 */
import type { ChatRenderer } from '../generate/chat-session.js';
import { Scheduler, type SchedulerOptions, type SchedulerStats } from '../generate/scheduler.js';
import type { LanguageModel } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UnavailableError } from './app.js';
import { HttpError } from './openai.js';
import { servedModel, type Lease, type ModelDescription, type ModelRegistry, type ServedModel } from './served-model.js';

/** A loaded model as a loader returns it. */
export interface LoadedParts {
  model: LanguageModel;
  tokenizer: Tokenizer | undefined;
  /** Free the model's memory when it is unloaded (default: model.dispose()). */
  release?(): void;
}

/** One servable model: its id and how to load it. */
export interface ModelSource {
  id: string;
  load(): Promise<LoadedParts>;
  /** Bytes the loaded model holds (its weights), for the memory budget. */
  bytes?: number;
  /** Never unloaded to make room (something outside the pool holds the model, e.g. SAE routes). */
  pinned?: boolean;
}

export interface PoolOptions {
  scheduler: SchedulerOptions;
  /** Most models loaded at once (default: all). */
  maxLoaded?: number;
  /** Most weight bytes loaded at once, by ModelSource.bytes (default: no limit). */
  memoryBudget?: number;
  render?: ChatRenderer;
  /** Called after each load (e.g. to prebuild the constraint token table). */
  onLoaded?(served: ServedModel): void;
}

interface Entry {
  source: ModelSource;
  served?: ServedModel;
  parts?: LoadedParts;
  loading?: Promise<ServedModel>;
  /** Requests holding the model (their responses have not closed). */
  leases: number;
  lastUsed: number;
  created: number;
}

/** Seconds a client should wait before retrying when no model can be unloaded. */
const BUSY_RETRY_SECONDS = 2;

export class ModelPool implements ModelRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly options: PoolOptions;
  private closed = false;
  private useClock = 0;
  /** Counters of schedulers closed by unloading, so that totals never go down. */
  private readonly retired: SchedulerStats[] = [];
  loads = 0;
  unloads = 0;

  constructor(sources: readonly ModelSource[], options: PoolOptions) {
    if (sources.length === 0) throw new Error('a server needs at least one model');
    const created = Math.floor(Date.now() / 1000);
    for (const source of sources) {
      if (this.entries.has(source.id)) throw new Error(`two models are named '${source.id}'`);
      this.entries.set(source.id, { source, leases: 0, lastUsed: 0, created });
    }
    if (options.maxLoaded !== undefined && !(Number.isInteger(options.maxLoaded) && options.maxLoaded >= 1)) throw new Error(`maxLoaded must be an integer >= 1, got ${options.maxLoaded}`);
    for (const s of sources) {
      if (options.memoryBudget !== undefined && s.bytes !== undefined && s.bytes > options.memoryBudget) {
        throw new Error(`model '${s.id}' needs ${s.bytes} bytes, more than the memory budget of ${options.memoryBudget}`);
      }
    }
    this.options = options;
  }

  ids(): string[] {
    return [...this.entries.keys()];
  }

  describe(id: string): ModelDescription | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    const s = e.served;
    return {
      id,
      created: e.created,
      status: s ? 'loaded' : e.loading ? 'loading' : 'unloaded',
      ...(s ? { meta: { n_ctx: s.scheduler.contextSize, n_vocab: s.model.vocabSize } } : {}),
    };
  }

  loaded(): ServedModel[] {
    const out: ServedModel[] = [];
    for (const e of this.entries.values()) if (e.served) out.push(e.served);
    return out;
  }

  /** The loaded model of `id`, if it is loaded now. */
  peek(id: string): ServedModel | undefined {
    return this.entries.get(id)?.served;
  }

  async resolve(name: string, lease?: Lease): Promise<ServedModel> {
    const e = this.entries.get(name);
    if (!e) {
      const ids = this.ids().map((i) => `'${i}'`).join(', ');
      throw new HttpError(404, `The model '${name}' does not exist (this server serves ${ids})`, { param: 'model', code: 'model_not_found' });
    }
    // Held from now, so that no other request's load unloads it before this one submits.
    e.leases++;
    e.lastUsed = ++this.useClock;
    let held = true;
    const free = (): void => {
      if (held) e.leases--;
      held = false;
    };
    lease?.once('close', free);
    try {
      const served = e.served ?? (await this.load(e));
      if (!lease) free();
      return served;
    } catch (err) {
      free();
      throw err;
    }
  }

  /** Load `id` now (the default model at startup); rejects with the loader's own error. */
  async preload(id: string): Promise<ServedModel> {
    const e = this.entries.get(id);
    if (!e) throw new Error(`no model '${id}'`);
    try {
      return e.served ?? (await this.load(e));
    } catch (err) {
      throw (err as { cause?: unknown }).cause ?? err;
    }
  }

  private load(e: Entry): Promise<ServedModel> {
    if (this.closed) return Promise.reject(new UnavailableError('the server is shutting down', 1, { code: 'shutting_down' }));
    e.loading ??= (async () => {
      this.makeRoom(e);
      let parts: LoadedParts;
      try {
        parts = await e.source.load();
      } catch (err) {
        const wrapped = new HttpError(500, `cannot load model '${e.source.id}': ${(err as Error).message}`, { param: 'model', code: 'model_load_failed' });
        throw Object.assign(wrapped, { cause: err });
      }
      if (this.closed) {
        release(parts);
        throw new UnavailableError('the server is shutting down', 1, { code: 'shutting_down' });
      }
      let scheduler: Scheduler;
      try {
        scheduler = new Scheduler(parts.model, parts.tokenizer, this.options.scheduler);
      } catch (err) {
        release(parts);
        throw err;
      }
      e.parts = parts;
      e.served = servedModel(e.source.id, parts.model, parts.tokenizer, scheduler, this.options.render);
      this.loads++;
      this.options.onLoaded?.(e.served);
      return e.served;
    })().finally(() => {
      e.loading = undefined;
    });
    return e.loading;
  }

  /** Unload least recently used idle models until `next` fits the count and memory limits. */
  private makeRoom(next: Entry): void {
    const { maxLoaded, memoryBudget } = this.options;
    const others = () => [...this.entries.values()].filter((x) => x !== next && (x.served || x.loading));
    const fits = (): boolean => {
      const held = others();
      if (maxLoaded !== undefined && held.length + 1 > maxLoaded) return false;
      if (memoryBudget !== undefined && held.reduce((a, x) => a + (x.source.bytes ?? 0), 0) + (next.source.bytes ?? 0) > memoryBudget) return false;
      return true;
    };
    while (!fits()) {
      const idle = others()
        .filter((x) => x.served && !x.loading && !x.source.pinned && x.leases === 0 && isIdle(x.served.scheduler))
        .sort((a, b) => a.lastUsed - b.lastUsed);
      const victim = idle[0];
      if (!victim) {
        throw new UnavailableError(`cannot load model '${next.source.id}': every loaded model is busy (--max-loaded / --memory-budget); retry shortly`, BUSY_RETRY_SECONDS, { param: 'model', code: 'model_busy' });
      }
      this.unload(victim);
    }
  }

  private unload(e: Entry): void {
    const s = e.served!;
    this.retired.push(s.scheduler.stats());
    s.scheduler.close();
    release(e.parts!);
    e.served = undefined;
    e.parts = undefined;
    this.unloads++;
  }

  /** Scheduler counters over every model ever loaded (for /metrics): gauges of the loaded ones. */
  stats(): SchedulerStats[] {
    return [...this.retired.map((r) => ({ ...r, active: 0, queued: 0, prefixCacheEntries: 0, recentTokensPerSecond: 0 })), ...this.loaded().map((m) => m.scheduler.stats())];
  }

  /** Refuse further loads and close every scheduler (their sequences end as aborted). */
  closeSchedulers(): void {
    this.closed = true;
    for (const m of this.loaded()) m.scheduler.close();
  }

  /** Free every loaded model. */
  releaseAll(): void {
    for (const e of this.entries.values()) {
      if (e.parts) release(e.parts);
      e.served = undefined;
      e.parts = undefined;
    }
  }
}

function isIdle(s: Scheduler): boolean {
  const st = s.stats();
  return st.active === 0 && st.queued === 0;
}

function release(parts: LoadedParts): void {
  if (parts.release) parts.release();
  else parts.model.dispose();
}
