/**
 * Server-sent events for streamed answers: the headers, one `data:` event per chunk, the finish
 * chunks as each choice ends, the optional usage chunk and `[DONE]`.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SequenceResult } from '../generate/scheduler.js';
import { toErrorBody, type App } from './app.js';
import { finishReasonOf } from './openai.js';

/** Send the stream's headers (with those set by hooks: CORS, extensions) and take over the response. */
export function startSse(core: App, req: FastifyRequest, reply: FastifyReply): ServerResponse {
  const hookHeaders: Record<string, string> = {};
  for (const [k, v] of Object.entries(reply.getHeaders())) if (typeof v === 'string' || typeof v === 'number') hookHeaders[k] = String(v);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...hookHeaders,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    ...core.corsHeaders(),
  });
  core.requests.add(req.routeOptions.url ?? 'unmatched', 200);
  return res;
}

export function sse(res: ServerResponse, data: unknown): void {
  if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
}

/** An already serialized event (the per-token chunks, built from a fixed prefix). */
export function sseJson(res: ServerResponse, json: string): void {
  if (!res.writableEnded && !res.destroyed) res.write(`data: ${json}\n\n`);
}

/**
 * The serialized start of a chunk, up to and including the choice's `"index":i,`: the chunk
 * objects' fixed fields in their JSON.stringify order, so each token only serializes its own text.
 */
export function chunkHead(id: string, object: string, createdAt: number, modelId: string, index: number): string {
  return `{"id":${JSON.stringify(id)},"object":${JSON.stringify(object)},"created":${JSON.stringify(createdAt)},"model":${JSON.stringify(modelId)},"system_fingerprint":"gemma-ts","choices":[{"index":${JSON.stringify(index)},`;
}

function endSse(res: ServerResponse): void {
  if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
}

/**
 * The end of a streamed answer: each choice's finish chunk as its sequence ends (none for an
 * aborted one), then the optional usage chunk and [DONE]; a failure is reported in the stream
 * (after the headers went out, that is the only place left).
 */
export async function finishStream(
  res: ServerResponse,
  pending: Promise<SequenceResult>[],
  controller: AbortController,
  finishChunk: (index: number, reason: ReturnType<typeof finishReasonOf>, result: SequenceResult) => unknown,
  usageChunk: ((results: SequenceResult[]) => unknown) | undefined,
  /** Chunks sent before a choice's finish chunk (a buffered tool answer). */
  lastChunks?: (index: number, result: SequenceResult) => unknown[],
): Promise<void> {
  try {
    const results = await Promise.all(
      pending.map((p, i) =>
        p.then((r) => {
          if (r.finishReason !== 'abort') {
            for (const c of lastChunks?.(i, r) ?? []) sse(res, c);
            sse(res, finishChunk(i, finishReasonOf(r.finishReason), r));
          }
          return r;
        }),
      ),
    );
    if (usageChunk) sse(res, usageChunk(results));
    endSse(res);
  } catch (e) {
    controller.abort();
    sse(res, toErrorBody(e).body);
    endSse(res);
  }
}
