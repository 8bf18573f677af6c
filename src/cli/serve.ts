/**
 * `gemma serve --model M`: the OpenAI-compatible server with a chat page at /.
 *
 * The server listens first and loads the default model behind a 503 /health (readiness), so that
 * an orchestrator sees it start. SIGTERM / SIGINT drain: new requests get 503, accepted ones run
 * to their end (up to --drain-timeout), then the process exits 0; a second signal exits at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { resolveModelPath } from '../model/load.js';
import type { GemmaServer, ModelSource } from '../server/server.js';
import type { JumpReluSae } from '../interpret/sae.js';
import type { LateRoutes } from '../server/late-routes.js';
import { addGuardOptions, guardOptionsFrom, type GuardFlags } from './shield.js';
import { addModelOptions, collect, defaultIO, loadForCli, parseIntFlag, type CliIO, type ModelFlags } from './options.js';

interface ServeFlags extends Omit<ModelFlags, 'model'>, GuardFlags {
  /** Repeatable: PATH or NAME=PATH. */
  model: string[];
  sae?: string[];
  host: string;
  port: number;
  apiKey?: string;
  parallel: number;
  ctxSize?: number;
  queue: number;
  cacheSlots?: number;
  cors?: boolean | string;
  alias?: string;
  bodyLimit: number;
  drainTimeout: number;
  maxLoaded?: number;
  memoryBudget?: number;
  replicaName?: string;
  affinityTokens?: number;
  verbose?: boolean;
}

/** The id clients put in `model`: --alias, else the checkpoint's file or directory name. */
export function modelIdFor(spec: string, alias?: string): string {
  if (alias) return alias;
  if (spec === 'demo') return 'demo';
  return path.basename(path.resolve(spec)).replace(/\.gguf$/i, '') || 'gemma';
}

/** `NAME=PATH` or `PATH` (named after its file or directory; the first one may take --alias). */
export function parseModelSpecs(specs: readonly string[], alias?: string): Array<{ id: string; spec: string }> {
  const out: Array<{ id: string; spec: string }> = [];
  specs.forEach((s, i) => {
    const m = /^([A-Za-z0-9][\w.:-]{0,127})=(.+)$/.exec(s);
    const entry = m ? { id: m[1]!, spec: m[2]! } : { id: modelIdFor(s, i === 0 ? alias : undefined), spec: s };
    if (out.some((o) => o.id === entry.id)) throw new UsageError(`two models are named '${entry.id}': name them with --model NAME=PATH`);
    out.push(entry);
  });
  return out;
}

/** `8GB`, `512MiB`, `1.5G` or a number of bytes. */
export function parseByteSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?$/i.exec(v.trim());
  if (!m) throw new UsageError(`expected a size like 8GB, 512MiB or a number of bytes, got '${v}'`);
  const exp = ' KMGT'.indexOf(m[2]!.toUpperCase() || ' ');
  const bytes = Number(m[1]) * (m[3] ? 1024 : 1000) ** exp;
  if (!(bytes >= 1)) throw new UsageError(`the size must be at least 1 byte, got '${v}'`);
  return Math.floor(bytes);
}

/** Bytes of a checkpoint's weight files on disk (undefined when it cannot be read yet). */
export function checkpointBytes(spec: string): number | undefined {
  try {
    const p = resolveModelPath(spec);
    const st = fs.statSync(p);
    if (st.isFile()) return st.size;
    return fs
      .readdirSync(p)
      .filter((f) => /\.(safetensors|gguf|bin)$/i.test(f))
      .reduce((a, f) => a + fs.statSync(path.join(p, f)).size, 0);
  } catch {
    return undefined;
  }
}

/** Routes of `--guard` (safety/server-routes.ts) and `--sae` (interpret/server-routes.ts), bound once their models load. */
const GUARD_ROUTES = [['POST', '/v1/moderations']] as const;
const SAE_ROUTES = [['GET', '/v1/sae'], ['POST', '/v1/sae/features'], ['GET', '/sae']] as const;

export interface ServeHooks {
  /** Stop the server when this fires, as SIGTERM does (drain, then exit); for tests and embedding. */
  shutdown?: AbortSignal;
  /** Called with the base URL once the server listens and its default model is loaded. */
  onListening?: (url: string) => void;
}

export function registerServeCommand(program: Command, io: CliIO = defaultIO(), hooks: ServeHooks = {}): void {
  const cmd = program
    .command('serve')
    .description('serve the model over an OpenAI-compatible HTTP API, with a chat page at /')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 = any free port)', parseIntFlag(0, 65535), 8080)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1/* and /metrics (default: $GEMMA_API_KEY)')
    .option('--parallel <n>', 'most sequences decoded at once (continuous batching)', parseIntFlag(1, 256), 4)
    .option('--ctx-size <tokens>', 'KV cache size per sequence (default: min(model context, 4096))', parseIntFlag(2))
    .option('--queue <n>', 'most requests waiting for a slot; more get 429', parseIntFlag(0, 100000), 64)
    .option('--cache-slots <n>', 'finished KV caches kept for prefix reuse (default: --parallel; 0 = off)', parseIntFlag(0, 1024))
    .option('--cors [origin]', 'send CORS headers (any origin, or the one given)')
    .option('--alias <name>', 'model id clients use (default: the model directory or file name)')
    .option('--body-limit <bytes>', 'largest request body', parseIntFlag(1024), 2 * 1024 * 1024)
    .option('--drain-timeout <seconds>', 'on SIGTERM / SIGINT, how long accepted requests may still run before the exit', parseIntFlag(0, 86400), 30)
    .option('--max-loaded <n>', 'most models loaded at once with several --model (least recently used idle ones are unloaded)', parseIntFlag(1, 1024))
    .option('--memory-budget <size>', 'most weight bytes loaded at once with several --model, e.g. 8GB', parseByteSize)
    .option('--replica-name <name>', 'send "X-Gemma-Replica: NAME" on every response (which replica answered behind a load balancer)')
    .option('--affinity-tokens <n>', 'prompt tokens hashed into the X-Gemma-Affinity key of requests without X-Session-Id or user', parseIntFlag(1, 1_000_000), 64)
    .option('--lora-init-without-apply', 'load the --lora adapters with scale 0 (set them with POST /lora-adapters or per request)')
    .option('-v, --verbose', 'log every request')
    .option('--sae <[name=]path>', 'serve a Gemma Scope SAE: POST /v1/sae/features, "sae" on chat completions, page at /sae (repeatable)', (v: string, prev: string[] = []) => [...prev, v]);
  addModelOptions(cmd);
  // --model is repeatable here: PATH, or NAME=PATH for each model of a multi-model server.
  const modelOpt = cmd.options.find((o) => o.long === '--model');
  if (modelOpt) {
    modelOpt.argParser(collect);
    modelOpt.description = 'model: directory (Hugging Face layout), .gguf file, "demo", or NAME=PATH; repeat for several models (the first is the default)';
  }
  addGuardOptions(cmd);
  cmd.action(async (flags: ServeFlags) => {
    // The server (fastify, zod), guard and SAE code load with this command, not with every `gemma` start.
    const [{ createServer }, { LateRoutes }, { attachShieldGuard }, { loadSae }, { registerSaeRoutes }] = await Promise.all([
      import('../server/server.js'),
      import('../server/late-routes.js'),
      import('../safety/server-routes.js'),
      import('../interpret/sae.js'),
      import('../interpret/server-routes.js'),
    ]);
    const apiKey = flags.apiKey ?? process.env.GEMMA_API_KEY;
    if (apiKey !== undefined && apiKey.trim() === '') throw new UsageError('--api-key must not be empty');
    const specs = parseModelSpecs(flags.model, flags.alias);
    const gopts = guardOptionsFrom(flags, io.stderr);
    const saeSpecs = (flags.sae ?? []).map((spec) => {
      const eq = spec.indexOf('=');
      return { name: eq > 0 ? spec.slice(0, eq) : path.basename(spec.replace(/\/+$/, '').replace(/\/params\.npz$/, '')) || 'sae', file: eq > 0 ? spec.slice(eq + 1) : spec };
    });
    const withSaes = saeSpecs.length > 0;
    const sources: ModelSource[] = specs.map(({ id, spec }, i) => {
      const bytes = checkpointBytes(spec);
      return {
        id,
        ...(bytes !== undefined ? { bytes } : {}),
        // The SAE routes hold the default model, and its LoRA adapters have global scales: it stays loaded.
        ...(i === 0 && (withSaes || flags.lora?.length) ? { pinned: true } : {}),
        load: async () => {
          // --lora adapters belong to the default model (ids in --lora order, as in llama-server).
          const { lora, ...rest } = flags;
          const loaded = await loadForCli({ ...rest, model: spec, ...(i === 0 && lora ? { lora } : {}) }, io, flags.ctxSize ? { contextSize: flags.ctxSize } : {});
          const ctxMax = loaded.config.maxPositionEmbeddings;
          if (flags.ctxSize !== undefined && flags.ctxSize > ctxMax) {
            loaded.model.dispose();
            throw new UsageError(`--ctx-size ${flags.ctxSize} exceeds the context of model '${id}' (${ctxMax} tokens)`);
          }
          return loaded;
        },
      };
    });
    let guardHandle: { dispose(): void } | undefined;
    let late: LateRoutes | undefined;
    const server: GemmaServer = await createServer({
      models: sources,
      apiKey,
      parallel: flags.parallel,
      maxQueue: flags.queue,
      ...(flags.ctxSize !== undefined ? { contextSize: flags.ctxSize } : {}),
      ...(flags.cacheSlots !== undefined ? { prefixCacheSize: flags.cacheSlots } : {}),
      ...(flags.cors !== undefined ? { cors: flags.cors } : {}),
      ...(flags.maxLoaded !== undefined ? { maxLoaded: flags.maxLoaded } : {}),
      ...(flags.memoryBudget !== undefined ? { memoryBudget: flags.memoryBudget } : {}),
      bodyLimit: flags.bodyLimit,
      ...(flags.replicaName ? { replicaName: flags.replicaName } : {}),
      ...(flags.affinityTokens !== undefined ? { affinityTokens: flags.affinityTokens } : {}),
      logger: flags.verbose === true,
      ...(gopts || withSaes
        ? {
            // The guard's and SAE's routes are declared now and bound once their models load,
            // after the server listens: /health stays 503 until they and the default model are loaded.
            configure: (app) => {
              late = new LateRoutes(app, [...(gopts ? GUARD_ROUTES : []), ...(withSaes ? SAE_ROUTES : [])]);
            },
            loading: async (srv) => {
              const guard = gopts
                ? attachShieldGuard(late!.app, gopts).then(
                    (h) => void (guardHandle = h),
                    (e: unknown) => Promise.reject(new UsageError(`cannot load the guard model ${gopts.model}: ${(e as Error).message}`)),
                  )
                : undefined;
              guard?.catch(() => undefined); // awaited below, after the SAEs
              if (withSaes) {
                const saes: Record<string, JumpReluSae> = {};
                for (const { name, file } of saeSpecs) saes[name] = await loadSae(file);
                const served = await srv.models.preload(specs[0]!.id); // the SAE routes hold the default model
                registerSaeRoutes(late!.app, { model: served.model, tokenizer: served.tokenizer, saes });
              }
              await guard;
            },
          }
        : {}),
    });
    const srv = server;
    let url: string;
    try {
      url = await srv.listen({ port: flags.port, host: flags.host });
    } catch (e) {
      await srv.close();
      guardHandle?.dispose();
      throw new UsageError(`cannot listen on ${flags.host}:${flags.port}: ${(e as Error).message}`);
    }
    io.stderr.write(`gemma serve: listening on ${url}, loading model "${srv.modelId}"${flags.guard || withSaes ? ` and the ${[flags.guard ? 'guard' : '', withSaes ? 'SAE' : ''].filter(Boolean).join(' and ')} models` : ''} (/health answers 503 until loaded)\n`);

    // The first signal drains, a second exits at once.
    let stopping: Promise<void> | undefined;
    let stopRequested!: () => void;
    const stopSignal = new Promise<void>((resolve) => (stopRequested = resolve));
    const onSignal = (signal: string): void => {
      if (stopping) {
        io.stderr.write(`gemma serve: ${signal} again: exiting now\n`);
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      io.stderr.write(`gemma serve: ${signal}: draining ${srv.requestsInFlight} request(s), up to ${flags.drainTimeout} s; new requests get 503 (a second signal exits at once)\n`);
      stopping = srv.shutdown(flags.drainTimeout * 1000).then((r) => {
        io.stderr.write(r.timedOut ? `gemma serve: drain timeout: ${r.inFlight} request(s) cut off; stopped\n` : 'gemma serve: drained; stopped\n');
      });
      stopRequested();
    };
    const onSigterm = (): void => onSignal('SIGTERM');
    const onSigint = (): void => onSignal('SIGINT');
    const onAbort = (): void => onSignal('shutdown');
    process.on('SIGTERM', onSigterm);
    process.on('SIGINT', onSigint);
    if (hooks.shutdown?.aborted) onAbort();
    else hooks.shutdown?.addEventListener('abort', onAbort, { once: true });
    const cleanup = (): void => {
      process.off('SIGTERM', onSigterm);
      process.off('SIGINT', onSigint);
      hooks.shutdown?.removeEventListener('abort', onAbort);
      guardHandle?.dispose();
    };

    try {
      await Promise.race([srv.ready, stopSignal]);
    } catch (e) {
      cleanup();
      await srv.close();
      throw e;
    }
    if (!stopping) {
      const s = srv.scheduler;
      const others = specs.slice(1).map((x) => `"${x.id}"`);
      io.stderr.write(
        `gemma serve: model "${srv.modelId}" on ${url} (parallel ${s.parallel}, context ${s.contextSize}${apiKey ? ', API key required' : ''})\n` +
          (others.length ? `  also serving ${others.join(', ')} (loaded on first use${flags.maxLoaded ? `, at most ${flags.maxLoaded} at once` : ''})\n` : '') +
          `  chat page: ${url}/   API: ${url}/v1\n`,
      );
      if (flags.host !== '127.0.0.1' && flags.host !== 'localhost' && flags.host !== '::1' && !apiKey) {
        io.stderr.write('warning: listening beyond localhost without --api-key\n');
      }
      hooks.onListening?.(url);
    }
    await stopSignal;
    await stopping;
    cleanup();
  });
}
