import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { BatchWriteCommand, type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { TABLES } from '../contract';
import type { ContextItem, Response } from '../wire/responses';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** A stored response: the object as returned, and everything the model saw for it. */
export interface StoredResponse {
  response: Response;
  /** Input items in order (earlier turns included); instructions are on the response. */
  context: ContextItem[];
}

/** Where stored responses live and for how long. */
export interface ResponseStoreOptions {
  doc: DynamoDBDocumentClient;
  table: string;
  /** Days a stored response is kept (DynamoDB TTL); 0 = until deleted. */
  retentionDays: number;
  /**
   * Bytes of compressed record per row. DynamoDB items stop at 400 KB; a record larger than
   * one row (images, long conversations) is split over several rows of the same partition.
   * @default 350_000
   */
  chunkBytes?: number;
  /**
   * Largest compressed record kept; larger ones are not stored (and logged by the caller).
   * @default 16 MiB
   */
  maxBytes?: number;
}

/** A record too large to keep. */
export class RecordTooLargeError extends Error {
  constructor(bytes: number, max: number) {
    super(`stored response of ${bytes} compressed bytes exceeds ${max}`);
    this.name = 'RecordTooLargeError';
  }
}

interface Row {
  [key: string]: unknown;
  owner: string;
  chunks: number;
  expiresAt?: number;
  data: Uint8Array;
}

const T = TABLES.responses;
const BATCH = 25;
const WRITE_ATTEMPTS = 6;

/**
 * Stored responses in DynamoDB, scoped to the API key's owner. One record (response object +
 * context, gzip'd JSON) per response id, split over rows `chunk = 0000, 0001, ...` of its
 * partition so any size fits; every row carries the owner and the expiry. A record is
 * readable only whole, by its owner, before it expires (TTL deletes lazily, so reads check).
 */
export class ResponseStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly retentionDays: number;
  private readonly chunkBytes: number;
  private readonly maxBytes: number;

  constructor({
    doc,
    table,
    retentionDays,
    chunkBytes = 350_000,
    maxBytes = 16 * 1024 * 1024,
  }: ResponseStoreOptions) {
    this.doc = doc;
    this.table = table;
    this.retentionDays = retentionDays;
    this.chunkBytes = chunkBytes;
    this.maxBytes = maxBytes;
  }

  /** Keep a response for its owner. @throws RecordTooLargeError past `maxBytes`. */
  async put(owner: string, record: StoredResponse): Promise<void> {
    const blob = await gzipAsync(Buffer.from(JSON.stringify(record)));
    if (blob.length > this.maxBytes) throw new RecordTooLargeError(blob.length, this.maxBytes);
    const chunks = Math.max(1, Math.ceil(blob.length / this.chunkBytes));
    const expiresAt =
      this.retentionDays > 0 ? Math.floor(Date.now() / 1000 + this.retentionDays * 86_400) : undefined;
    const rows: Row[] = [];
    for (let i = 0; i < chunks; i++) {
      rows.push({
        [T.partitionKey]: record.response.id,
        [T.sortKey]: chunkKey(i),
        owner,
        chunks,
        ...(expiresAt !== undefined ? { [T.ttlAttribute]: expiresAt } : {}),
        data: blob.subarray(i * this.chunkBytes, (i + 1) * this.chunkBytes),
      });
    }
    await this.batchWrite(rows.map((Item) => ({ PutRequest: { Item } })));
  }

  /** The caller's stored response, or null (none, someone else's, expired, or incomplete). */
  async get(owner: string, id: string): Promise<StoredResponse | null> {
    const rows = await this.rows(id, false);
    if (!rows || !this.usable(rows, owner)) return null;
    const blob = Buffer.concat(rows.map((r) => r.data));
    return JSON.parse((await gunzipAsync(blob)).toString('utf8')) as StoredResponse;
  }

  /** Delete the caller's stored response; false when there is none to delete. */
  async delete(owner: string, id: string): Promise<boolean> {
    const rows = await this.rows(id, true);
    if (!rows || !this.usable(rows, owner, true)) return false;
    await this.batchWrite(
      rows.map((r) => ({
        DeleteRequest: { Key: { [T.partitionKey]: id, [T.sortKey]: r[T.sortKey] } },
      })),
    );
    return true;
  }

  private usable(rows: Row[], owner: string, partialOk = false): boolean {
    const now = Date.now() / 1000;
    const first = rows[0];
    if (!first) return false;
    for (const r of rows) {
      if (r.owner !== owner) return false;
      const exp = r[T.ttlAttribute];
      if (typeof exp === 'number' && exp <= now) return false;
    }
    // A record whose write did not finish is not served (its delete still cleans it up).
    return partialOk || rows.length === first.chunks;
  }

  private async rows(id: string, keysOnly: boolean): Promise<Row[] | null> {
    const rows: Row[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: '#pk = :id',
          ExpressionAttributeNames: {
            '#pk': T.partitionKey,
            ...(keysOnly
              ? { '#sk': T.sortKey, '#owner': 'owner', '#exp': T.ttlAttribute, '#chunks': 'chunks' }
              : {}),
          },
          ExpressionAttributeValues: { ':id': id },
          ConsistentRead: true,
          ...(keysOnly ? { ProjectionExpression: '#pk, #sk, #owner, #exp, #chunks' } : {}),
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of page.Items ?? []) rows.push(item as Row);
      start = page.LastEvaluatedKey;
    } while (start);
    return rows.length > 0 ? rows : null;
  }

  private async batchWrite(requests: Array<Record<string, unknown>>): Promise<void> {
    for (let i = 0; i < requests.length; i += BATCH) {
      let pending = requests.slice(i, i + BATCH);
      for (let attempt = 1; pending.length > 0; attempt++) {
        const r = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.table]: pending } }));
        pending = (r.UnprocessedItems?.[this.table] ?? []) as Array<Record<string, unknown>>;
        if (pending.length === 0) break;
        if (attempt >= WRITE_ATTEMPTS)
          throw new Error(`responses table: ${pending.length} writes unprocessed`);
        // Throttled: back off before sending what was left (DynamoDB's guidance for batches).
        await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt)));
      }
    }
  }
}

function chunkKey(i: number): string {
  return String(i).padStart(4, '0');
}
