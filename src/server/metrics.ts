/**
 * Prometheus text exposition (format 0.0.4) of the server's counters and the scheduler's state.
 */
import type { SchedulerStats } from '../generate/scheduler.js';

export class RequestCounter {
  private readonly counts = new Map<string, number>();

  add(endpoint: string, status: number): void {
    const key = `${endpoint}\u0000${status}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  entries(): Array<{ endpoint: string; status: string; count: number }> {
    return [...this.counts].map(([k, count]) => {
      const [endpoint, status] = k.split('\u0000') as [string, string];
      return { endpoint, status, count };
    });
  }
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export interface ServerGauges {
  parallel: number;
  contextSize: number;
  uptimeSeconds: number;
  /** Requests accepted and not yet answered (lifecycle.ts). */
  requestsInFlight?: number;
  /** Whether /health answers 200. */
  ready?: boolean;
  modelsLoaded?: number;
  modelLoads?: number;
  modelUnloads?: number;
  /** Bytes of the served models' backend memories (wasm memories: weights, KV caches, scratch; GPU buffers). */
  backendMemoryBytes?: number;
}

/** A model's backend memory in bytes (the wasm and webgpu backends report it), or undefined. */
export function backendMemoryBytes(model: unknown): number | undefined {
  const backend = (model as { backend?: { memoryBytes?: () => number | number[] } }).backend;
  const bytes = backend?.memoryBytes?.();
  return bytes === undefined ? undefined : typeof bytes === 'number' ? bytes : bytes.reduce((a, b) => a + b, 0);
}

/** Counters and gauges of several schedulers added up (the models of one server). */
export function sumStats(list: readonly SchedulerStats[]): SchedulerStats {
  const out: SchedulerStats = {
    active: 0,
    queued: 0,
    prefixCacheEntries: 0,
    requestsStarted: 0,
    requestsFinished: 0,
    requestsAborted: 0,
    requestsFailed: 0,
    promptTokens: 0,
    cachedPromptTokens: 0,
    prefillTokens: 0,
    completionTokens: 0,
    steps: 0,
    recentTokensPerSecond: 0,
    busyMs: 0,
  };
  for (const s of list) for (const k of Object.keys(out) as Array<keyof SchedulerStats>) out[k] += s[k];
  return out;
}

export function renderMetrics(requests: RequestCounter, s: SchedulerStats, extra: ServerGauges): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: Array<[string, number]>): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) lines.push(`${name}${labels} ${Number.isFinite(v) ? v : 0}`);
  };
  metric(
    'gemma_requests_total',
    'counter',
    'HTTP requests by endpoint and status code.',
    requests.entries().map((e) => [`{endpoint="${esc(e.endpoint)}",status="${esc(e.status)}"}`, e.count]),
  );
  metric('gemma_prompt_tokens_total', 'counter', 'Prompt tokens of all sequences (tokens in).', [['', s.promptTokens]]);
  metric('gemma_prompt_tokens_cached_total', 'counter', 'Prompt tokens found in a reused KV cache (not prefilled).', [['', s.cachedPromptTokens]]);
  metric('gemma_prefill_tokens_total', 'counter', 'Prompt tokens run through the model.', [['', s.prefillTokens]]);
  metric('gemma_completion_tokens_total', 'counter', 'Generated tokens (tokens out).', [['', s.completionTokens]]);
  metric('gemma_tokens_per_second', 'gauge', 'Generated tokens per second over the last seconds.', [['', s.recentTokensPerSecond]]);
  metric('gemma_queue_depth', 'gauge', 'Requests waiting for a sequence slot.', [['', s.queued]]);
  metric('gemma_active_sequences', 'gauge', 'Sequences being prefilled or decoded.', [['', s.active]]);
  metric('gemma_parallel_sequences', 'gauge', 'Most sequences decoded at once (--parallel).', [['', extra.parallel]]);
  metric('gemma_context_size', 'gauge', 'KV cache capacity per sequence in tokens.', [['', extra.contextSize]]);
  metric('gemma_prefix_cache_entries', 'gauge', 'Finished KV caches kept for prefix reuse.', [['', s.prefixCacheEntries]]);
  metric('gemma_sequences_total', 'counter', 'Sequences by outcome.', [
    ['{outcome="finished"}', s.requestsFinished],
    ['{outcome="aborted"}', s.requestsAborted],
    ['{outcome="failed"}', s.requestsFailed],
  ]);
  metric('gemma_steps_total', 'counter', 'Batched model steps.', [['', s.steps]]);
  metric('gemma_busy_seconds_total', 'counter', 'Time spent in model steps.', [['', s.busyMs / 1000]]);
  if (extra.requestsInFlight !== undefined) metric('gemma_requests_in_flight', 'gauge', 'HTTP requests accepted and not yet answered (streams until their last byte).', [['', extra.requestsInFlight]]);
  if (extra.ready !== undefined) metric('gemma_ready', 'gauge', '1 when /health answers 200 (loaded, not draining).', [['', extra.ready ? 1 : 0]]);
  if (extra.modelsLoaded !== undefined) metric('gemma_models_loaded', 'gauge', 'Models loaded now.', [['', extra.modelsLoaded]]);
  if (extra.modelLoads !== undefined) metric('gemma_model_loads_total', 'counter', 'Model loads (the first one included).', [['', extra.modelLoads]]);
  if (extra.modelUnloads !== undefined) metric('gemma_model_unloads_total', 'counter', 'Models unloaded to make room (--max-loaded, --memory-budget).', [['', extra.modelUnloads]]);
  const mem = process.memoryUsage();
  metric('process_resident_memory_bytes', 'gauge', 'Resident memory of the server process.', [['', mem.rss]]);
  // where resident memory goes (prom-client's names): a leak of JS objects grows the heap,
  // weights and KV caches live in WebAssembly memories and array buffers (external)
  metric('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap in use.', [['', mem.heapUsed]]);
  metric('nodejs_heap_size_total_bytes', 'gauge', 'V8 heap reserved.', [['', mem.heapTotal]]);
  metric('nodejs_external_memory_bytes', 'gauge', 'Memory of C++ objects bound to JS objects (array buffers, WebAssembly memories included).', [['', mem.external]]);
  metric('nodejs_array_buffers_bytes', 'gauge', 'Memory of ArrayBuffers and SharedArrayBuffers.', [['', mem.arrayBuffers]]);
  if (extra.backendMemoryBytes !== undefined) metric('gemma_backend_memory_bytes', 'gauge', 'Memory the models\' backends hold (WebAssembly memories: weights, KV caches, scratch; GPU buffers).', [['', extra.backendMemoryBytes]]);
  metric('process_uptime_seconds', 'gauge', 'Seconds since the server started.', [['', extra.uptimeSeconds]]);
  return lines.join('\n') + '\n';
}
