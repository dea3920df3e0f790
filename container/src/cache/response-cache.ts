import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ServiceConfig } from '../config/service-config';
import type { ChatCompletion, ChatRequest } from '../wire/chat';

/** Where cache entries live. */
export interface CacheStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
}

export class RedisCacheStore implements CacheStore {
  constructor(private readonly redis: Redis) {}
  get(key: string): Promise<string | null> {
    return this.redis.get(key);
  }
  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    await this.redis.set(key, value, 'EX', ttlSeconds);
  }
}

/** Single-process store with TTL and a size cap (oldest entries go first). */
export class MemoryCacheStore implements CacheStore {
  private readonly map = new Map<string, { v: string; exp: number }>();
  constructor(private readonly maxEntries = 10_000) {}
  async get(key: string): Promise<string | null> {
    const e = this.map.get(key);
    if (!e) return null;
    if (e.exp <= Date.now()) {
      this.map.delete(key);
      return null;
    }
    return e.v;
  }
  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    if (this.map.size >= this.maxEntries) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    this.map.set(key, { v: value, exp: Date.now() + ttlSeconds * 1000 });
  }
}

/** Fields that change how a response is delivered, not what it says. */
const DELIVERY_FIELDS = new Set(['stream', 'stream_options', 'user', 'metadata', 'store']);

/** JSON with sorted object keys, so equal requests hash equally whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

export type CacheDecision =
  | { cacheable: false; reason: 'disabled' | 'no-store' | 'nondeterministic' }
  | { cacheable: true; key: string };

/**
 * Exact-match response cache for deterministic requests. The key is the SHA-256 of the
 * canonical request (model and every parameter that can change the answer), scoped per owner
 * unless configured global.
 */
export class ResponseCache {
  constructor(
    private readonly store: CacheStore,
    private readonly cfg: ServiceConfig['cache'],
  ) {}

  decide(body: ChatRequest, owner: string, cacheControl: string | undefined): CacheDecision {
    if (!this.cfg.enabled) return { cacheable: false, reason: 'disabled' };
    if (cacheControl && /\bno-store\b|\bno-cache\b/i.test(cacheControl))
      return { cacheable: false, reason: 'no-store' };
    const temperature = body.temperature ?? 1;
    const seeded = typeof body.seed === 'number';
    if (!(temperature <= this.cfg.temperatureThreshold || seeded))
      return { cacheable: false, reason: 'nondeterministic' };
    const relevant: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(body)) if (!DELIVERY_FIELDS.has(k)) relevant[k] = v;
    const scope = this.cfg.scope === 'global' ? '*' : owner;
    const hash = createHash('sha256')
      .update(scope)
      .update('\0')
      .update(canonicalJson(relevant))
      .digest('hex');
    return { cacheable: true, key: `tg:cache:${hash}` };
  }

  /** A cached completion, or null; a store failure is a miss (the cache is skipped, never fatal). */
  async get(key: string): Promise<ChatCompletion | null> {
    try {
      const v = await this.store.get(key);
      return v ? (JSON.parse(v) as ChatCompletion) : null;
    } catch {
      return null;
    }
  }

  /** Store a completion when it finished cleanly and fits the entry size limit. */
  async set(key: string, completion: ChatCompletion): Promise<boolean> {
    const finish = completion.choices[0]?.finish_reason;
    if (finish !== 'stop' && finish !== 'tool_calls' && finish !== 'length') return false;
    const v = JSON.stringify(completion);
    if (Buffer.byteLength(v) > this.cfg.maxEntryBytes) return false;
    try {
      await this.store.set(key, v, this.cfg.ttlSeconds);
      return true;
    } catch {
      return false;
    }
  }
}
