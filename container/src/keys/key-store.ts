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
import { TABLES } from '../contract';
import { NotFoundError } from '../errors';

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
  at: number;
  value: Promise<Principal | null>;
  /** Epoch ms from which the key is refused, once its record was read (expiring keys only). */
  expiresAtMs?: number;
}

/**
 * Key look-ups with a short in-process cache. Entries live `ttlMs` (default 1 s), so a revoked
 * key stops working on every replica within ~1 s without a DynamoDB read per request; concurrent
 * misses for one key share a single read. An expiring key is refused from its `expiresAt` on,
 * to the millisecond, cached or not.
 */
export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  constructor(
    private readonly store: KeyStore,
    private readonly cfg: ServiceConfig,
    private readonly ttlMs = 1000,
  ) {}

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
    const entry: CacheEntry = { at: now, value: Promise.resolve(null) };
    entry.value = this.store.getByHash(h).then((rec) => {
      if (!rec || rec.revoked) return null;
      if (rec.expiresAt !== undefined) {
        const exp = Date.parse(rec.expiresAt);
        // An unreadable expiry refuses the key rather than making it immortal.
        if (!(Date.now() < exp)) return null;
        entry.expiresAtMs = exp;
      }
      return toPrincipal(rec, this.cfg);
    });
    const { value } = entry;
    this.cache.set(h, entry);
    // A failed read must not be cached: the next request tries again.
    value.catch(() => this.cache.delete(h));
    if (this.cache.size > 50_000) {
      for (const [k, e] of this.cache) if (now - e.at >= this.ttlMs) this.cache.delete(k);
    }
    return value;
  }

  /** Forget a key at once on this replica (after revoke / patch). */
  invalidate(keyHash?: string): void {
    if (keyHash) this.cache.delete(keyHash);
    else this.cache.clear();
  }
}
