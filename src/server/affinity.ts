/**
 * Prefix affinity: a key a load balancer can hash on to keep a conversation on the replica that
 * holds its KV cache. Per request, in this order:
 *   1. the `X-Session-Id` header (the client's conversation id),
 *   2. the body's `user` field,
 *   3. `p-` + a hash of the first N prompt tokens, for chats of the conversation's start (the
 *      messages up to the first user turn, which every later turn's prompt begins with).
 * The server returns it as `X-Gemma-Affinity`; a client that sends it back as `X-Session-Id`
 * stays on one replica when the balancer hashes on that header (deploy/nginx.conf).
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export const AFFINITY_HEADER = 'x-gemma-affinity';
export const SESSION_HEADER = 'x-session-id';

/** Prompt tokens hashed by default (enough to tell system prompts and first questions apart). */
export const DEFAULT_AFFINITY_TOKENS = 64;

/** A short stable hash of a token prefix. */
export function prefixHash(ids: readonly number[], n: number): string {
  const head = Uint32Array.from(ids.slice(0, n));
  return 'p-' + createHash('sha256').update(new Uint8Array(head.buffer)).digest('hex').slice(0, 16);
}

/** The request's affinity key; `prefixIds` is called only without a session id or user. */
export function affinityKey(req: FastifyRequest, user: string | null | undefined, prefixIds: () => readonly number[], n: number): string {
  const h = req.headers[SESSION_HEADER];
  const session = Array.isArray(h) ? h[0] : h;
  if (session && session.trim() !== '') return session.trim().slice(0, 256);
  if (user) return `u-${createHash('sha256').update(user, 'utf8').digest('hex').slice(0, 16)}`;
  return prefixHash(prefixIds(), n);
}

/** Set X-Gemma-Affinity on the response (streams copy it with the hook headers). */
export function setAffinity(reply: FastifyReply, key: string): void {
  reply.header(AFFINITY_HEADER, key);
}
