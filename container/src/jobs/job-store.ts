/**
 * The jobs table: one row per async job, moved through its states only by conditional writes.
 *
 * ```
 * queued --claim--> processing --complete--> completed
 *    ^                  |  \------fail-----> failed
 *    +-----release------+   (a dead letter also fails queued/processing jobs)
 * ```
 *
 * Every claim increments `attempts`; that number is the fencing token of the attempt, so only
 * the attempt that holds the job can finish or release it, and a job finishes exactly once.
 */
import { randomUUID } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../aws/errors';
import { TABLES } from '../contract';
import type { ApiError } from '../errors';
import type { Principal } from '../keys/key-store';
import type { Reservation } from '../limits/limiter';
import type { ChatCompletion, ChatRequest } from '../wire/chat';

export type JobStatus = 'queued' | 'processing' | 'completed' | 'failed';

/** An OpenAI error object plus the HTTP status the synchronous path would have answered. */
export interface JobError {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
  status: number;
}

/** What the job cost, kept on the row for audits next to the usage record. */
export interface JobUsage {
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

/** One row of the jobs table, as stored. Timestamps are epoch milliseconds. */
export interface JobRow {
  jobId: string;
  owner: string;
  keyId: string;
  /** The caller as admitted; the worker runs the job as this principal. */
  principal: Principal;
  model: string;
  status: JobStatus;
  /** The validated request as JSON, when small; else gzip-compressed in `requestGz`. */
  request?: string;
  requestGz?: Uint8Array;
  /** SHA-256 of the request JSON: an Idempotency-Key replay must carry the same body. */
  requestHash: string;
  /** What admission reserved; reconciled by the attempt that finishes the job. */
  reservation?: Reservation;
  createdAt: number;
  startedAt?: number;
  completedAt?: number;
  /** Claims so far; the current one's number fences its writes. */
  attempts?: number;
  /** Until when the current attempt may hold the job (its invocation's deadline). */
  leaseUntil?: number;
  /** Random token of the current claim and of the final write: tells a lost answer from a lost race. */
  claimedBy?: string;
  settledBy?: string;
  /** Random token of the write that created the row. */
  createdBy?: string;
  result?: string;
  resultGz?: Uint8Array;
  error?: JobError;
  /** The last retryable failure, reported if the job ends in the DLQ. */
  lastError?: JobError;
  usage?: JobUsage;
  /** TTL (epoch seconds). */
  expiresAt: number;
}

/** Outcome of trying to claim a job for an attempt. */
export type ClaimResult =
  | { kind: 'claimed'; job: JobRow; attempt: number }
  /** Completed or failed already: a redelivered message has nothing left to do. */
  | { kind: 'finished'; job: JobRow }
  /** Another attempt holds a live lease on it. */
  | { kind: 'busy'; leaseUntil: number }
  | { kind: 'missing' };

/** Outcome of failing a job whose message went to the DLQ. */
export type DeadResult =
  | { kind: 'failed'; job: JobRow }
  | { kind: 'finished'; job: JobRow }
  | { kind: 'busy'; leaseUntil: number }
  | { kind: 'missing' };

/** Above this, request and result JSON are stored gzip-compressed (DynamoDB items max 400 KB). */
const COMPRESS_ABOVE_BYTES = 32 * 1024;
/**
 * Largest compressed request a row takes, leaving room for the result in the same item. JSON
 * chat requests compress 4-10x, so this admits any body the API's default 1 MiB limit lets in.
 */
export const MAX_STORED_REQUEST_BYTES = 200 * 1024;

/** A JSON document packed for a row: inline when small, gzip when large. */
export function packJson(json: string): { text?: string; gz?: Uint8Array; bytes: number } {
  const bytes = Buffer.byteLength(json);
  if (bytes <= COMPRESS_ABOVE_BYTES) return { text: json, bytes };
  const gz = gzipSync(json);
  return { gz: new Uint8Array(gz.buffer, gz.byteOffset, gz.byteLength), bytes: gz.byteLength };
}

function unpackJson(text: string | undefined, gz: Uint8Array | undefined): unknown {
  if (text !== undefined) return JSON.parse(text);
  if (gz !== undefined) return JSON.parse(gunzipSync(gz).toString('utf8'));
  return undefined;
}

/** The stored request of a job. */
export function requestOf(job: JobRow): ChatRequest | undefined {
  return unpackJson(job.request, job.requestGz) as ChatRequest | undefined;
}

/** The stored completion of a completed job. */
export function resultOf(job: JobRow): ChatCompletion | undefined {
  return unpackJson(job.result, job.resultGz) as ChatCompletion | undefined;
}

/** An ApiError as stored on a row. */
export function toJobError(err: ApiError): JobError {
  return { message: err.message, type: err.type, param: err.param, code: err.code, status: err.status };
}

const PENDING = TABLES.jobs.pendingIndex;
const FAILED = TABLES.jobs.failedIndex;

/** The failed-index partition of a job: spread by the id's last hex digit. */
export function failedShard(jobId: string): string {
  const digit = Number.parseInt(jobId.slice(-1), 16);
  return `f${(Number.isNaN(digit) ? 0 : digit) % FAILED.shards}`;
}

/** A failed job as the failed-jobs index lists it (no request, result or principal). */
export interface FailedJob {
  jobId: string;
  owner: string;
  keyId: string;
  model: string;
  error: JobError | undefined;
  attempts: number;
  createdAt: number;
  failedAt: number;
}

/** The pending-index partition of a job: spread by the id's last hex digit. */
export function pendingShard(jobId: string): string {
  const digit = Number.parseInt(jobId.slice(-1), 16);
  return `p${(Number.isNaN(digit) ? 0 : digit) % PENDING.shards}`;
}

/** Epoch ms as 13 zero-padded digits: sorts as text the way it sorts as a number. */
export function pendingSince(ms: number): string {
  return String(Math.max(0, Math.floor(ms))).padStart(13, '0');
}

/** Conditional writes over the jobs table. */
export class JobStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly table: string,
  ) {}

  /** Strongly consistent read, so an owner polling sees a finished job at once. */
  async get(jobId: string): Promise<JobRow | undefined> {
    const r = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { jobId }, ConsistentRead: true }),
    );
    return r.Item as JobRow | undefined;
  }

  /** Write a new `queued` row; false when the id exists (an Idempotency-Key race). */
  async create(job: JobRow): Promise<boolean> {
    // Tells our own write, retried by the SDK after a lost answer, from another submission's.
    const createdBy = randomUUID();
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          // Listed in the pending index (oldest unfinished job) until it completes or fails.
          Item: {
            ...job,
            [PENDING.partitionKey]: pendingShard(job.jobId),
            [PENDING.sortKey]: pendingSince(job.createdAt),
            createdBy,
          },
          ConditionExpression: 'attribute_not_exists(jobId)',
        }),
      );
      return true;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    return (await this.get(job.jobId))?.createdBy === createdBy;
  }

  /**
   * Remove a row that never reached the queue (the send failed), unless a worker already saw it:
   * a retried submission must not find a job nobody will run.
   */
  async deleteUnsent(jobId: string): Promise<boolean> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { jobId },
          ConditionExpression: '#s = :queued AND attribute_not_exists(attempts)',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':queued': 'queued' },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * `queued -> processing` (or take over a `processing` job whose lease ran out: its attempt
   * died without releasing it). `leaseUntil` should be the attempt's hard deadline.
   */
  async claim(jobId: string, now: number, leaseUntil: number): Promise<ClaimResult> {
    const token = randomUUID();
    try {
      const r = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { jobId },
          UpdateExpression:
            'SET #s = :processing, leaseUntil = :lease, claimedBy = :token, startedAt = if_not_exists(startedAt, :now), attempts = if_not_exists(attempts, :zero) + :one',
          ConditionExpression:
            'attribute_exists(jobId) AND (#s = :queued OR (#s = :processing AND leaseUntil < :now))',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: {
            ':processing': 'processing',
            ':queued': 'queued',
            ':lease': leaseUntil,
            ':now': now,
            ':zero': 0,
            ':one': 1,
            ':token': token,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      const job = r.Attributes as JobRow;
      return { kind: 'claimed', job, attempt: job.attempts ?? 1 };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    // Rare path (redelivery, duplicate delivery): read why the claim was refused.
    const job = await this.get(jobId);
    if (!job) return { kind: 'missing' };
    // The SDK retried a claim whose first answer was lost: the job is ours after all.
    if (job.status === 'processing' && job.claimedBy === token)
      return { kind: 'claimed', job, attempt: job.attempts ?? 1 };
    if (job.status === 'completed' || job.status === 'failed') return { kind: 'finished', job };
    return { kind: 'busy', leaseUntil: job.leaseUntil ?? now };
  }

  /** `processing -> completed` for the attempt holding the job; false when it lost the job. */
  async complete(
    jobId: string,
    attempt: number,
    at: number,
    result: ChatCompletion,
    usage: JobUsage | undefined,
  ): Promise<boolean> {
    const packed = packJson(JSON.stringify(result));
    return this.finish(jobId, attempt, {
      status: 'completed',
      at,
      values: {
        ...(packed.text !== undefined ? { result: packed.text } : { resultGz: packed.gz }),
        ...(usage ? { usage } : {}),
      },
    });
  }

  /** `processing -> failed` (a non-retryable error) for the attempt holding the job. */
  async fail(jobId: string, attempt: number, at: number, error: JobError, usage: JobUsage | undefined) {
    return this.finish(jobId, attempt, {
      status: 'failed',
      at,
      values: {
        error,
        ...(usage ? { usage } : {}),
        // Listed in the failed-jobs index from now on.
        [FAILED.partitionKey]: failedShard(jobId),
        [FAILED.sortKey]: pendingSince(at),
      },
    });
  }

  private async finish(
    jobId: string,
    attempt: number,
    f: { status: 'completed' | 'failed'; at: number; values: Record<string, unknown> },
  ): Promise<boolean> {
    const token = randomUUID();
    const names: Record<string, string> = { '#s': 'status' };
    const values: Record<string, unknown> = {
      ':status': f.status,
      ':at': f.at,
      ':processing': 'processing',
      ':attempt': attempt,
      ':token': token,
    };
    const sets = ['#s = :status', 'completedAt = :at', 'settledBy = :token'];
    for (const [k, v] of Object.entries(f.values)) {
      names[`#${k}`] = k;
      values[`:${k}`] = v;
      sets.push(`#${k} = :${k}`);
    }
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { jobId },
          UpdateExpression: `SET ${sets.join(', ')} REMOVE leaseUntil, ${PENDING.partitionKey}`,
          ConditionExpression: '#s = :processing AND attempts = :attempt',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    // Refused, or the SDK retried a write whose first answer was lost (the retry then fails
    // its own condition): only the token tells. Getting this wrong would lose the usage record.
    return (await this.get(jobId))?.settledBy === token;
  }

  /** `processing -> queued` after a retryable failure, so the redelivery can claim it at once. */
  async release(jobId: string, attempt: number, lastError: JobError | undefined): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { jobId },
          UpdateExpression: lastError
            ? 'SET #s = :queued, lastError = :e REMOVE leaseUntil'
            : 'SET #s = :queued REMOVE leaseUntil',
          ConditionExpression: '#s = :processing AND attempts = :attempt',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: {
            ':queued': 'queued',
            ':processing': 'processing',
            ':attempt': attempt,
            ...(lastError ? { ':e': lastError } : {}),
          },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * A job whose message died (DLQ): `queued|processing -> failed`, unless an attempt still holds
   * a live lease on it (then the caller retries later: that attempt may yet finish it).
   */
  async failDead(jobId: string, now: number, error: (job: JobRow) => JobError): Promise<DeadResult> {
    // A few rounds at most: each lost race means the job moved, and it only moves forward.
    for (let round = 0; round < 3; round++) {
      const job = await this.get(jobId);
      if (!job) return { kind: 'missing' };
      if (job.status === 'completed' || job.status === 'failed') return { kind: 'finished', job };
      if (job.status === 'processing' && (job.leaseUntil ?? 0) >= now)
        return { kind: 'busy', leaseUntil: job.leaseUntil ?? now };
      try {
        const r = await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { jobId },
            UpdateExpression: `SET #s = :failed, completedAt = :at, #e = :e, #fs = :fs, #fa = :fa REMOVE leaseUntil, ${PENDING.partitionKey}`,
            // Only from the state just read: a worker finishing meanwhile wins.
            ConditionExpression: '#s = :seen AND (attribute_not_exists(attempts) OR attempts = :attempts)',
            ExpressionAttributeNames: {
              '#s': 'status',
              '#e': 'error',
              '#fs': FAILED.partitionKey,
              '#fa': FAILED.sortKey,
            },
            ExpressionAttributeValues: {
              ':failed': 'failed',
              ':at': now,
              ':fs': failedShard(jobId),
              ':fa': pendingSince(now),
              ':e': error(job),
              ':seen': job.status,
              ':attempts': job.attempts ?? 0,
            },
            ReturnValues: 'ALL_NEW',
          }),
        );
        return { kind: 'failed', job: r.Attributes as JobRow };
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
      }
    }
    throw new Error(`job ${jobId} kept changing while being failed after its message died`);
  }

  /**
   * Creation time (epoch ms) of the oldest job not yet completed or failed, or null when there
   * is none: the age of the oldest message still in the queue, as SQS counts it (a message lives
   * from its send until the job's attempt deletes it). One key-only query per index shard, then a
   * consistent read of the oldest candidate. Entries that cannot stand for a message are taken
   * out of the index on the way (a row finished by a worker that predates the index, or pending
   * for longer than the queue keeps messages: its message is gone, it will never run).
   */
  async oldestPendingSince(opts: { signal?: AbortSignal; now?: number } = {}): Promise<number | null> {
    const now = opts.now ?? Date.now();
    const oldestPossible = now - TABLES.jobs.queueRetentionDays * 86_400_000;
    const send = opts.signal ? { abortSignal: opts.signal } : {};
    // Entries found not to stand for a message, remembered across rounds: the index may still
    // list them for a moment after they were unlisted (GSIs are eventually consistent).
    const skip = new Set<string>();
    for (let round = 0; round < 3; round++) {
      const limit = 4 + skip.size;
      const perShard = await Promise.all(
        Array.from({ length: PENDING.shards }, async (_, i) => {
          const r = await this.doc.send(
            new QueryCommand({
              TableName: this.table,
              IndexName: PENDING.name,
              KeyConditionExpression: '#p = :p',
              ExpressionAttributeNames: { '#p': PENDING.partitionKey },
              ExpressionAttributeValues: { ':p': `p${i}` },
              ScanIndexForward: true,
              Limit: limit,
            }),
            send,
          );
          const items = r.Items ?? [];
          return {
            exhausted: items.length < limit && !r.LastEvaluatedKey,
            entries: items.map((it) => ({ jobId: String(it.jobId), since: Number(it[PENDING.sortKey]) })),
          };
        }),
      );
      const candidates = perShard
        .flatMap((p) => p.entries)
        .filter((c) => Number.isFinite(c.since) && !skip.has(c.jobId))
        .sort((x, y) => x.since - y.since);
      if (candidates.length === 0) {
        if (perShard.every((p) => p.exhausted)) return null;
        continue;
      }
      for (const c of candidates.slice(0, 8)) {
        if (c.since >= oldestPossible) {
          const job = await this.get(c.jobId);
          if (job && job.status !== 'completed' && job.status !== 'failed') return c.since;
          if (job) await this.unlistPending(c.jobId, c.since, send);
        } else {
          await this.unlistPending(c.jobId, c.since, send);
        }
        skip.add(c.jobId);
      }
    }
    // Still nothing verified after three rounds: unknown, not "nothing waits".
    throw new Error('no pending job could be verified in the pending index');
  }

  /**
   * The most recent failed jobs, newest first: one query per index shard for its newest
   * `limit`, merged. Reads the index projection only (no request or result is read).
   */
  async recentFailures(limit: number, opts: { signal?: AbortSignal } = {}): Promise<FailedJob[]> {
    const send = opts.signal ? { abortSignal: opts.signal } : {};
    const perShard = await Promise.all(
      Array.from({ length: FAILED.shards }, async (_, i) => {
        const r = await this.doc.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: FAILED.name,
            KeyConditionExpression: '#p = :p',
            ExpressionAttributeNames: { '#p': FAILED.partitionKey },
            ExpressionAttributeValues: { ':p': `f${i}` },
            ScanIndexForward: false,
            Limit: limit,
          }),
          send,
        );
        return r.Items ?? [];
      }),
    );
    return perShard
      .flat()
      .map((it) => ({
        jobId: String(it.jobId),
        owner: String(it.owner ?? ''),
        keyId: String(it.keyId ?? ''),
        model: String(it.model ?? ''),
        error: it.error as JobError | undefined,
        attempts: Number(it.attempts ?? 0),
        createdAt: Number(it.createdAt ?? 0),
        failedAt: Number(it[FAILED.sortKey]),
      }))
      .sort((a, b) => b.failedAt - a.failedAt || (a.jobId < b.jobId ? -1 : 1))
      .slice(0, limit);
  }

  /** Take a job out of the pending index (only the entry just read: a re-listed job stays). */
  private async unlistPending(
    jobId: string,
    since: number,
    send: { abortSignal?: AbortSignal },
  ): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { jobId },
          UpdateExpression: `REMOVE ${PENDING.partitionKey}`,
          ConditionExpression: '#s = :since',
          ExpressionAttributeNames: { '#s': PENDING.sortKey },
          ExpressionAttributeValues: { ':since': pendingSince(since) },
        }),
        send,
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
}
