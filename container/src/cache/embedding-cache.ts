import { createHash } from 'node:crypto';
import type { ServiceConfig } from '../config/service-config';
import type { EmbeddingInput } from '../wire/embeddings';
import type { CacheStore } from './response-cache';

/** One cached embedding: the vector and the tokens the upstream counted for it. */
export interface CachedEmbedding {
  vector: Float32Array;
  tokens: number;
}

/**
 * Embeddings are deterministic, so they are cached per input item: a batch that repeats earlier
 * inputs sends only the new ones upstream. Keyed by scope (owner, or global), model, dimensions
 * and the item itself; stored as base64 float32 (a quarter of the JSON size).
 */
export class EmbeddingCache {
  constructor(
    private readonly store: CacheStore,
    private readonly cfg: ServiceConfig['cache'],
  ) {}

  /** Whether a request may use the cache (config, and the client's Cache-Control). */
  usable(cacheControl: string | undefined): boolean {
    if (!this.cfg.enabled) return false;
    return !(cacheControl && /\bno-store\b|\bno-cache\b/i.test(cacheControl));
  }

  key(owner: string, model: string, dimensions: number | undefined, item: EmbeddingInput): string {
    const scope = this.cfg.scope === 'global' ? '*' : owner;
    const h = createHash('sha256')
      .update(scope)
      .update('\0')
      .update(model)
      .update('\0')
      .update(String(dimensions ?? ''))
      .update('\0')
      .update(typeof item === 'string' ? `s${item}` : `t${item.join(',')}`)
      .digest('hex');
    return `tg:emb:${h}`;
  }

  /** Every key's entry or null; a store failure is a miss for all (the cache is skipped, never fatal). */
  async getMany(keys: readonly string[]): Promise<(CachedEmbedding | null)[]> {
    try {
      // Issued in one tick: the Redis client pipelines them into one round trip.
      const values = await Promise.all(keys.map((k) => this.store.get(k)));
      return values.map((v) => (v ? decode(v) : null));
    } catch {
      return keys.map(() => null);
    }
  }

  /** Store new embeddings (failures ignored: the next request recomputes them). */
  async setMany(entries: ReadonlyArray<{ key: string; value: CachedEmbedding }>): Promise<void> {
    await Promise.all(
      entries.map(async ({ key, value }) => {
        const v = encode(value);
        if (v.length > this.cfg.maxEntryBytes) return;
        try {
          await this.store.set(key, v, this.cfg.ttlSeconds);
        } catch {
          // skipped
        }
      }),
    );
  }
}

function encode(e: CachedEmbedding): string {
  return `${e.tokens}:${Buffer.from(e.vector.buffer, e.vector.byteOffset, e.vector.byteLength).toString('base64')}`;
}

function decode(v: string): CachedEmbedding | null {
  const i = v.indexOf(':');
  const tokens = Number(v.slice(0, i));
  if (i < 1 || !Number.isInteger(tokens)) return null;
  const bytes = Buffer.from(v.slice(i + 1), 'base64');
  if (bytes.byteLength % 4 !== 0) return null;
  // A copy on an aligned buffer: Float32Array needs 4-byte alignment.
  const vector = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(vector.buffer).set(bytes);
  return { vector, tokens };
}
