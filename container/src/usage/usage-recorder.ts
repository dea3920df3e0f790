import { randomBytes } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { METRICS } from '../config/contract';
import type { Telemetry } from '../telemetry/telemetry';

/** One finished request: exactly one of these per request, whatever happened. */
export interface UsageRecord {
  requestId: string;
  keyId: string;
  owner: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costUsd: number;
  latencyMs: number;
  ttftMs: number | null;
  /** HTTP status the client got (or would have got: 499 = client went away). */
  status: number;
  cached: boolean;
  /** True when the stream was cut before the upstream sent usage: tokens were counted here. */
  estimated: boolean;
  stream: boolean;
  /** `sync`, `async` (job) or `assistant`. */
  source: string;
  /** Epoch ms when the request finished. */
  ts: number;
  errorCode?: string | undefined;
}

export interface UsageRecorderOptions {
  doc: DynamoDBDocumentClient;
  table: string;
  telemetry: Telemetry;
  flushIntervalMs?: number;
  /** Items per BatchWriteItem (DynamoDB allows 25). */
  maxBatch?: number;
  retentionDays?: number;
}

export function usagePk(owner: string): string {
  return `OWNER#${owner}`;
}

export function dayOf(ts: number): string {
  return new Date(ts).toISOString().slice(0, 10);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface DailyAggregate {
  owner: string;
  day: string;
  model: string;
  requests: number;
  prompt: number;
  completion: number;
  cost: number;
  cached: number;
}

interface PendingBatch {
  /** Increases per batch in this process: makes aggregate ADDs idempotent on retry. */
  seq: number;
  records: UsageRecord[];
  rowsWritten: boolean;
  aggregates: Map<string, DailyAggregate>;
  aggregatesDone: Set<string>;
}

/** One ADD per owner/day/model in a batch instead of one per record. */
function aggregate(records: UsageRecord[]): Map<string, DailyAggregate> {
  const agg = new Map<string, DailyAggregate>();
  for (const r of records) {
    const day = dayOf(r.ts);
    const k = `${r.owner}\0${day}\0${r.model}`;
    let a = agg.get(k);
    if (!a) {
      a = { owner: r.owner, day, model: r.model, requests: 0, prompt: 0, completion: 0, cost: 0, cached: 0 };
      agg.set(k, a);
    }
    a.requests++;
    a.prompt += r.promptTokens;
    a.completion += r.completionTokens;
    a.cost += r.costUsd;
    if (r.cached) a.cached++;
  }
  return agg;
}

/**
 * Off the request path: records go into a buffer that a timer flushes in batches
 * (BatchWriteItem for per-request rows, UpdateItem ADD for daily aggregates). Failed writes
 * stay in the buffer and are retried with backoff, so an outage delays records, never drops them.
 */
export class UsageRecorder {
  private buffer: UsageRecord[] = [];
  private flushing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private failures = 0;
  private current: PendingBatch | null = null;
  private seq = 0;
  /** This writer's id on aggregate rows (`b_<id>` = last batch applied), unique per process. */
  private readonly writerId = randomBytes(6).toString('hex');
  private readonly maxBatch: number;
  private readonly retentionDays: number;

  constructor(private readonly opts: UsageRecorderOptions) {
    this.maxBatch = opts.maxBatch ?? 25;
    this.retentionDays = opts.retentionDays ?? 400;
    this.timer = setInterval(() => void this.flush(), opts.flushIntervalMs ?? 1000);
    this.timer.unref();
  }

  /** Records waiting to be written. */
  get pending(): number {
    return this.buffer.length;
  }

  record(r: UsageRecord): void {
    this.buffer.push(r);
    if (this.buffer.length >= this.maxBatch * 8) void this.flush();
  }

  /** Write what is buffered now; concurrent callers share one flush. */
  flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.doFlush().finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  private async doFlush(): Promise<void> {
    while (this.buffer.length > 0) {
      if (!this.current) {
        const records = this.buffer.slice(0, this.maxBatch * 4);
        this.current = {
          seq: ++this.seq,
          records,
          rowsWritten: false,
          aggregates: aggregate(records),
          aggregatesDone: new Set(),
        };
      }
      try {
        await this.write(this.current);
        this.buffer.splice(0, this.current.records.length);
        this.current = null;
        this.failures = 0;
      } catch (err) {
        this.failures++;
        this.opts.telemetry.increment(METRICS.usageWriteFailures);
        this.opts.telemetry.logger.warn('usage write failed; will retry', {
          pending: this.buffer.length,
          attempt: this.failures,
          error: (err as Error).message,
        });
        // The batch stays buffered with what already landed marked done; the next tick retries.
        await sleep(Math.min(5000, 100 * 2 ** Math.min(this.failures, 6)));
        return;
      }
    }
  }

  /** Writes one batch; parts that landed are remembered so a retry never adds an aggregate twice. */
  private async write(batch: PendingBatch): Promise<void> {
    const { doc, table } = this.opts;
    if (!batch.rowsWritten) {
      const expiresAt =
        this.retentionDays > 0 ? Math.floor(Date.now() / 1000) + this.retentionDays * 86400 : undefined;
      for (let i = 0; i < batch.records.length; i += this.maxBatch) {
        let requests = batch.records.slice(i, i + this.maxBatch).map((r) => ({
          PutRequest: {
            Item: {
              pk: usagePk(r.owner),
              sk: `${new Date(r.ts).toISOString()}#${r.requestId}`,
              ...r,
              ...(expiresAt ? { expiresAt } : {}),
            },
          },
        }));
        // Unprocessed items (throttling) are resent with backoff until none remain.
        for (let attempt = 0; requests.length > 0; attempt++) {
          const out = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
          requests = (out.UnprocessedItems?.[table] ?? []) as typeof requests;
          if (requests.length > 0) await sleep(Math.min(2000, 50 * 2 ** attempt));
        }
      }
      // Puts are idempotent (same key), so rewriting rows on a retry is harmless.
      batch.rowsWritten = true;
    }
    await Promise.all(
      [...batch.aggregates].map(async ([k, a]) => {
        if (batch.aggregatesDone.has(k)) return;
        // An ADD whose answer was lost may have landed: the per-writer batch number makes the
        // retry a no-op instead of a double count.
        try {
          await doc.send(
            new UpdateCommand({
              TableName: table,
              Key: { pk: usagePk(a.owner), sk: `DAY#${a.day}#${a.model}` },
              UpdateExpression:
                'ADD requests :r, promptTokens :p, completionTokens :c, costUsd :u, cachedRequests :h SET #d = :d, model = :m, #b = :seq',
              ConditionExpression: 'attribute_not_exists(#b) OR #b < :seq',
              ExpressionAttributeNames: { '#d': 'day', '#b': `b_${this.writerId}` },
              ExpressionAttributeValues: {
                ':seq': batch.seq,
                ':r': a.requests,
                ':p': a.prompt,
                ':c': a.completion,
                ':u': Math.round(a.cost * 1e9) / 1e9,
                ':h': a.cached,
                ':d': a.day,
                ':m': a.model,
              },
            }),
          );
        } catch (err) {
          if (!(err instanceof ConditionalCheckFailedException)) throw err;
        }
        batch.aggregatesDone.add(k);
      }),
    );
  }

  /** Flush until empty or the deadline passes (SIGTERM). Returns the records left unwritten. */
  async close(deadlineMs = 10_000): Promise<number> {
    clearInterval(this.timer);
    const end = Date.now() + deadlineMs;
    while (this.buffer.length > 0 && Date.now() < end) await this.flush();
    if (this.buffer.length > 0) {
      this.opts.telemetry.logger.error('usage records left unwritten at shutdown', {
        count: this.buffer.length,
      });
    }
    return this.buffer.length;
  }
}

export interface DailyUsage {
  day: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  costUsd: number;
  cachedRequests: number;
}

/** Daily aggregates for an owner between two days (inclusive, YYYY-MM-DD). */
export async function queryDailyUsage(
  doc: DynamoDBDocumentClient,
  table: string,
  owner: string,
  start: string,
  end: string,
): Promise<DailyUsage[]> {
  const out: DailyUsage[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const r = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND sk BETWEEN :a AND :b',
        ExpressionAttributeValues: { ':pk': usagePk(owner), ':a': `DAY#${start}`, ':b': `DAY#${end}#\uffff` },
        ExclusiveStartKey: startKey,
      }),
    );
    for (const i of r.Items ?? []) {
      const prompt = Number(i.promptTokens ?? 0);
      const completion = Number(i.completionTokens ?? 0);
      out.push({
        day: String(i.day),
        model: String(i.model),
        requests: Number(i.requests ?? 0),
        promptTokens: prompt,
        completionTokens: completion,
        totalTokens: prompt + completion,
        costUsd: Math.round(Number(i.costUsd ?? 0) * 1e9) / 1e9,
        cachedRequests: Number(i.cachedRequests ?? 0),
      });
    }
    startKey = r.LastEvaluatedKey;
  } while (startKey);
  return out;
}

/** Per-request rows for an owner (tests, audits). */
export async function queryUsageRecords(
  doc: DynamoDBDocumentClient,
  table: string,
  owner: string,
): Promise<UsageRecord[]> {
  const out: UsageRecord[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const r = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND sk < :d',
        ExpressionAttributeValues: { ':pk': usagePk(owner), ':d': 'DAY#' },
        ExclusiveStartKey: startKey,
      }),
    );
    out.push(...((r.Items ?? []) as UsageRecord[]));
    startKey = r.LastEvaluatedKey;
  } while (startKey);
  return out;
}
