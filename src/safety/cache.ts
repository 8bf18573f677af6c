/**
 * Copy a KV cache, so a prompt prefix prefilled once can be continued several ways (one copy per
 * policy). Uses the cache's own clone() when it has one; otherwise copies a GemmaKVCache's
 * layers into a fresh cache from the same model. Returns undefined for caches it cannot copy
 * (the caller then prefills the prefix again).
 */
import { GemmaKVCache } from '../model/kv-cache.js';
import type { KVCache, LanguageModel } from '../model/types.js';

export function cloneKVCache(model: LanguageModel, src: KVCache): KVCache | undefined {
  const withClone = src as KVCache & { clone?: () => KVCache };
  if (typeof withClone.clone === 'function') return withClone.clone();
  if (!(src instanceof GemmaKVCache)) return undefined;
  const dst = model.createCache(src.maxTokens);
  if (!(dst instanceof GemmaKVCache) || dst.layers.length !== src.layers.length) return undefined;
  for (let i = 0; i < src.layers.length; i++) {
    const s = src.layers[i]!;
    const d = dst.layers[i]!;
    if (s.ring !== d.ring || s.window !== d.window) return undefined;
    Object.assign(d, { k: (s.k as Float32Array | Uint16Array).slice(), v: (s.v as Float32Array | Uint16Array).slice(), slotPositions: s.slotPositions.slice(), slots: s.slots });
  }
  dst.advance(src.length);
  return dst;
}
