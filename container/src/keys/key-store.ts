import { createHash, randomBytes } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { type Limits, type ServiceConfig, tierOf } from '../config/service-config';
import { METRICS, TABLES } from '../contract';
import { NotFoundError, ServiceUnavailableError } from '../errors';
import type { Telemetry } from '../telemetry/telemetry';

/** A stored key (never the key itself: only its SHA-256). */
export interface KeyRecord {
  keyHash: string;
  id: string;
  owner: string;
  tier: string;
  /** Overrides of the tier's limits. */
  limits: Limits;
  /** Allowed models; empty = the tier's. */
  models: string[];
  /** First characters of the key, for humans telling keys apart. */
  prefix: string;
  createdAt: string;
  revoked: boolean;
  revokedAt?: string;
  /** ISO time from which the key is refused (short-lived keys, e.g. the console playground's). */
  expiresAt?: string;
}

/** The authenticated caller with effective (tier + key) settings. */
export interface Principal {
  keyId: string;
  owner: string;
  tier: string;
  limits: Limits;
  models: string[];
  maxTokensCap: number | undefined;
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomToken(len: number): string {
  const bytes = randomBytes(len);
  let s = '';
  for (const b of bytes) s += ALPHABET[b % ALPHABET.length];
  return s;
}

/** A new key: `sk-tg-` + 40 base62 characters (~238 bits). */
export function generateKey(): string {
  return `sk-tg-${randomToken(40)}`;
}

/** Public view of a key record (admin API). */
export function keyView(r: KeyRecord): Record<string, unknown> {
  return {
    id: r.id,
    object: 'api_key',
    owner: r.owner,
    tier: r.tier,
    limits: r.limits,
    models: r.models,
    prefix: r.prefix,
    created: r.createdAt,
    revoked: r.revoked,
    ...(r.revokedAt ? { revoked_at: r.revokedAt } : {}),
    ...(r.expiresAt ? { expires_at: r.expiresAt } : {}),
  };
}

/** API keys in DynamoDB, keyed by hash, with GSIs by id and by owner. */
export class KeyStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async create(input: {
    owner: string;
    tier: string;
    limits?: Limits;
    models?: string[];
    key?: string;
    /** Refused from this moment on. */
    expiresAt?: Date;
  }): Promise<{ key: string; record: KeyRecord }> {
    const key = input.key ?? generateKey();
    const record: KeyRecord = {
      keyHash: hashKey(key),
      id: `key_${randomToken(16)}`,
      owner: input.owner,
      tier: input.tier,
      limits: input.limits ?? {},
      models: input.models ?? [],
      prefix: key.slice(0, 10),
      createdAt: new Date().toISOString(),
      revoked: false,
      ...(input.expiresAt ? { expiresAt: input.expiresAt.toISOString() } : {}),
    };
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: record,
        ConditionExpression: 'attribute_not_exists(keyHash)',
      }),
    );
    return { key, record };
  }

  /** Create the record for a known key unless it exists (dev key at start). */
  async ensure(key: string, input: { owner: string; tier: string }): Promise<KeyRecord> {
    const existing = await this.getByHash(hashKey(key));
    if (existing) return existing;
    try {
      return (await this.create({ ...input, key })).record;
    } catch (err) {
      const again = await this.getByHash(hashKey(key));
      if (again) return again;
      throw err;
    }
  }

  async getByHash(keyHash: string): Promise<KeyRecord | undefined> {
    const r = await this.doc.send(new GetCommand({ TableName: this.table, Key: { keyHash } }));
    return r.Item as KeyRecord | undefined;
  }

  async getById(id: string): Promise<KeyRecord | undefined> {
    const r = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: TABLES.apiKeys.byIdIndex.name,
        KeyConditionExpression: 'id = :id',
        ExpressionAttributeValues: { ':id': id },
      }),
    );
    return r.Items?.[0] as KeyRecord | undefined;
  }

  async list(owner?: string): Promise<KeyRecord[]> {
    const out: KeyRecord[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const r = owner
        ? await this.doc.send(
            new QueryCommand({
              TableName: this.table,
              IndexName: TABLES.apiKeys.byOwnerIndex.name,
              KeyConditionExpression: '#o = :o',
              ExpressionAttributeNames: { '#o': 'owner' },
              ExpressionAttributeValues: { ':o': owner },
              ExclusiveStartKey: startKey,
            }),
          )
        : await this.doc.send(new ScanCommand({ TableName: this.table, ExclusiveStartKey: startKey }));
      out.push(...((r.Items ?? []) as KeyRecord[]));
      startKey = r.LastEvaluatedKey;
    } while (startKey);
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async update(id: string, patch: { limits?: Limits; models?: string[]; tier?: string }): Promise<KeyRecord> {
    const rec = await this.getById(id);
    if (!rec) throw new NotFoundError(`No API key with id '${id}'.`, { param: 'id', code: 'key_not_found' });
    const sets: string[] = [];
    const values: Record<string, unknown> = {};
    if (patch.limits) {
      sets.push('limits = :l');
      values[':l'] = { ...rec.limits, ...patch.limits };
    }
    if (patch.models) {
      sets.push('models = :m');
      values[':m'] = patch.models;
    }
    if (patch.tier) {
      sets.push('tier = :t');
      values[':t'] = patch.tier;
    }
    if (sets.length === 0) return rec;
    const r = await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { keyHash: rec.keyHash },
        UpdateExpression: `SET ${sets.join(', ')}`,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW',
      }),
    );
    return r.Attributes as KeyRecord;
  }

  async revoke(id: string): Promise<KeyRecord> {
    const rec = await this.getById(id);
    if (!rec) throw new NotFoundError(`No API key with id '${id}'.`, { param: 'id', code: 'key_not_found' });
    const r = await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { keyHash: rec.keyHash },
        UpdateExpression: 'SET revoked = :t, revokedAt = if_not_exists(revokedAt, :now)',
        ExpressionAttributeValues: { ':t': true, ':now': new Date().toISOString() },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return r.Attributes as KeyRecord;
  }
}

/** Effective settings: the tier's defaults overridden by the key's own. */
export function toPrincipal(rec: KeyRecord, cfg: ServiceConfig): Principal {
  const tier = tierOf(cfg, rec.tier) ?? tierOf(cfg, cfg.defaultTier);
  return {
    keyId: rec.id,
    owner: rec.owner,
    tier: rec.tier,
    limits: { ...(tier?.limits ?? {}), ...rec.limits },
    models: rec.models.length > 0 ? rec.models : (tier?.models ?? ['*']),
    maxTokensCap: tier?.maxTokensCap,
  };
}

interface CacheEntry {
  /** When `value` was started: it answers for `ttlMs` from then. */
  at: number;
  value: Promise<Principal | null>;
  /** Epoch ms from which the key is refused, once its record was read (expiring keys only). */
  expiresAtMs?: number;
  /** The last lookup that succeeded, kept for answering while the table cannot be read. */
  good?: { at: number; principal: Principal | null; expiresAtMs?: number };
}

export interface AuthenticatorOptions {
  /** How long a lookup answers before the key is read again. @default 1000 */
  ttlMs?: number;
  /**
   * While the key table cannot be read: how long after its last successful read a key keeps
   * its answer (a valid key keeps working, an unknown or revoked one stays refused). Also the
   * longest a revocation can lag during such an outage. 0: a failed read is always a 503.
   * @default 60000
   */
  staleMs?: number;
  /** Counts and logs failed reads. */
  telemetry?: Pick<Telemetry, 'increment' | 'logger'>;
}

/** Seconds a client is asked to wait when its key cannot be checked. */
const KEY_UNAVAILABLE_RETRY_SECONDS = 2;

/**
 * Key look-ups with a short in-process cache. Entries live `ttlMs` (default 1 s), so a revoked
 * key stops working on every replica within ~1 s without a DynamoDB read per request; concurrent
 * misses for one key share a single read. An expiring key is refused from its `expiresAt` on,
 * to the millisecond, cached or not.
 *
 * When the table cannot be read (DynamoDB unreachable), a key read successfully within the last
 * `staleMs` keeps its last answer (expiry included), and a key that cannot be checked gets 503
 * with Retry-After (never a 500). A failed read answers for `ttlMs` too, so an outage costs one
 * read attempt per key per interval, not one per request.
 */
export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly ttlMs: number;
  private readonly staleMs: number;
  private readonly telemetry: AuthenticatorOptions['telemetry'];
  private lastWarn = 0;

  constructor(
    private readonly store: KeyStore,
    private readonly cfg: ServiceConfig,
    opts: AuthenticatorOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 1000;
    this.staleMs = opts.staleMs ?? 60_000;
    this.telemetry = opts.telemetry;
  }

  authenticate(key: string): Promise<Principal | null> {
    return this.authenticateHash(hashKey(key));
  }

  /** The same for a key already hashed (the request path hashes once). */
  authenticateHash(h: string): Promise<Principal | null> {
    const now = Date.now();
    const hit = this.cache.get(h);
    if (hit && now - hit.at < this.ttlMs) {
      if (hit.expiresAtMs !== undefined && now >= hit.expiresAtMs) return Promise.resolve(null);
      return hit.value;
    }
    const good = hit?.good;
    const entry: CacheEntry = { at: now, value: Promise.resolve(null), ...(good && { good }) };
    entry.value = this.store.getByHash(h).then(
      (rec) => {
        const { principal, expiresAtMs } = this.answer(rec);
        if (expiresAtMs !== undefined) entry.expiresAtMs = expiresAtMs;
        entry.good = { at: Date.now(), principal, ...(expiresAtMs !== undefined && { expiresAtMs }) };
        return principal;
      },
      (err: unknown) => {
        const stale = good !== undefined && Date.now() - good.at <= this.staleMs;
        this.lookupFailed(err, stale);
        if (stale) {
          if (good.expiresAtMs !== undefined) {
            entry.expiresAtMs = good.expiresAtMs;
            if (Date.now() >= good.expiresAtMs) return null;
          }
          return good.principal;
        }
        throw new ServiceUnavailableError('API keys cannot be checked right now; retry shortly.', {
          code: 'auth_unavailable',
          retryAfterSeconds: KEY_UNAVAILABLE_RETRY_SECONDS,
        });
      },
    );
    // Callers handle a rejection; this keeps one nobody awaited from being reported unhandled.
    entry.value.catch(() => undefined);
    this.cache.set(h, entry);
    if (this.cache.size > 50_000) this.prune(now);
    return entry.value;
  }

  /** What a record says: the principal (null: refused) and, for an expiring key, when it ends. */
  private answer(rec: KeyRecord | undefined): { principal: Principal | null; expiresAtMs?: number } {
    if (!rec || rec.revoked) return { principal: null };
    if (rec.expiresAt === undefined) return { principal: toPrincipal(rec, this.cfg) };
    const exp = Date.parse(rec.expiresAt);
    // An unreadable expiry refuses the key rather than making it immortal.
    if (!(Date.now() < exp)) return { principal: null };
    return { principal: toPrincipal(rec, this.cfg), expiresAtMs: exp };
  }

  /** Forget a key at once on this replica (after revoke / patch), its last good copy included. */
  invalidate(keyHash?: string): void {
    if (keyHash) this.cache.delete(keyHash);
    else this.cache.clear();
  }

  private prune(now: number): void {
    for (const [k, e] of this.cache) {
      if (now - e.at >= this.ttlMs && (!e.good || now - e.good.at > this.staleMs)) this.cache.delete(k);
    }
  }

  /** One metric per failed read; at most one warning a minute. */
  private lookupFailed(err: unknown, servedStale: boolean): void {
    const t = this.telemetry;
    if (!t) return;
    t.increment(METRICS.keyLookupFailures);
    const now = Date.now();
    if (now - this.lastWarn > 60_000) {
      this.lastWarn = now;
      t.logger.warn('api key table unreachable', {
        error: (err as Error).message,
        answer: servedStale ? 'last good copy' : '503',
        staleMs: this.staleMs,
      });
    }
  }
}
