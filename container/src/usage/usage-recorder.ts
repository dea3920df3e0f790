import { randomBytes } from 'node:crypto';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  type DynamoDBClient,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../aws/errors';
import { METRICS } from '../contract';
import type { Telemetry } from '../telemetry/telemetry';
import { type Histogram, LAST_BUCKET, observe } from './latency-histogram';
import { roundUsd } from './pricing';

/** One finished request: exactly one of these per request, whatever happened. */
export interface UsageRecord {
  requestId: string;
  keyId: string;
  owner: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Prompt tokens written to the provider's prompt cache (priced at `pricing.cacheWrite`). */
  cacheWriteTokens?: number | undefined;
  /** `chat`, `embeddings` or `responses`. @default 'chat' (rows written before the field) */
  endpoint?: string | undefined;
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
  ddb: DynamoDBClient;
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

/** The UTC hour of a timestamp: `YYYY-MM-DDTHH`. */
export function hourOf(ts: number): string {
  return new Date(ts).toISOString().slice(0, 13);
}

/** Sort key prefix of the hourly aggregate rows (after `DAY#`, so never taken for request rows). */
export const HOUR_SK = 'HOUR#';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A DynamoDB refusal that no retry can change (the request itself is invalid). */
function isPermanent(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'ValidationException' || name === 'SerializationException';
}

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

/**
 * Hourly totals per owner, key and model (beside the daily ones per owner and model), with
 * latency and time-to-first-token histograms for percentiles over any set of hours.
 */
interface HourlyAggregate {
  owner: string;
  keyId: string;
  hour: string;
  model: string;
  requests: number;
  prompt: number;
  completion: number;
  cachedTokens: number;
  cost: number;
  cached: number;
  /** Requests that ended with a status of 400 or more (499: the client went away). */
  errors: number;
  latency: Histogram;
  ttft: Histogram;
}

/** Batches written at once by one flush round. */
const MAX_BATCHES_IN_FLIGHT = 4;

/** A usage row as DynamoDB attribute values, built directly (no generic marshalling). */
function usageItem(r: UsageRecord, expiresAt: number | undefined): Record<string, AttributeValue> {
  const n = (v: number): AttributeValue => ({ N: String(finite(v)) });
  const item: Record<string, AttributeValue> = {
    pk: { S: usagePk(r.owner) },
    sk: { S: `${new Date(r.ts).toISOString()}#${r.requestId}` },
    requestId: { S: r.requestId },
    keyId: { S: r.keyId },
    owner: { S: r.owner },
    model: { S: r.model },
    promptTokens: n(r.promptTokens),
    completionTokens: n(r.completionTokens),
    cachedTokens: n(r.cachedTokens),
    cacheWriteTokens: n(r.cacheWriteTokens ?? 0),
    endpoint: { S: r.endpoint ?? 'chat' },
    costUsd: n(r.costUsd),
    latencyMs: n(r.latencyMs),
    ttftMs: r.ttftMs === null ? { NULL: true } : n(r.ttftMs),
    status: n(r.status),
    cached: { BOOL: r.cached },
    estimated: { BOOL: r.estimated },
    stream: { BOOL: r.stream },
    source: { S: r.source },
    ts: n(r.ts),
  };
  if (r.errorCode !== undefined) item['errorCode'] = { S: r.errorCode };
  if (expiresAt !== undefined) item['expiresAt'] = n(expiresAt);
  return item;
}

/**
 * A number DynamoDB accepts: anything else (NaN, null or undefined from a sloppy upstream's
 * usage) would fail the whole batch on every retry, so it is written as 0.
 */
function finite(v: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** Daily totals not yet added to the table, sealed under one batch number once a write starts. */
interface AggregateGeneration {
  /** Increases per generation in this process: makes the ADDs idempotent on retry. */
  seq: number;
  aggregates: Map<string, DailyAggregate>;
  hourly: Map<string, HourlyAggregate>;
  done: Set<string>;
  records: number;
}

function addToAggregates(agg: Map<string, DailyAggregate>, r: UsageRecord): void {
  const day = dayOf(r.ts);
  const k = `${r.owner}\0${day}\0${r.model}`;
  let a = agg.get(k);
  if (!a) {
    a = { owner: r.owner, day, model: r.model, requests: 0, prompt: 0, completion: 0, cost: 0, cached: 0 };
    agg.set(k, a);
  }
  a.requests++;
  a.prompt += finite(r.promptTokens);
  a.completion += finite(r.completionTokens);
  a.cost += finite(r.costUsd);
  if (r.cached) a.cached++;
}

function addToHourly(agg: Map<string, HourlyAggregate>, r: UsageRecord): void {
  const hour = hourOf(r.ts);
  const k = `${r.owner}\0${hour}\0${r.keyId}\0${r.model}`;
  let a = agg.get(k);
  if (!a) {
    a = {
      owner: r.owner,
      keyId: r.keyId,
      hour,
      model: r.model,
      requests: 0,
      prompt: 0,
      completion: 0,
      cachedTokens: 0,
      cost: 0,
      cached: 0,
      errors: 0,
      latency: new Map(),
      ttft: new Map(),
    };
    agg.set(k, a);
  }
  a.requests++;
  a.prompt += finite(r.promptTokens);
  a.completion += finite(r.completionTokens);
  a.cachedTokens += finite(r.cachedTokens);
  a.cost += finite(r.costUsd);
  if (r.cached) a.cached++;
  if (finite(r.status) >= 400) a.errors++;
  observe(a.latency, finite(r.latencyMs));
  if (r.ttftMs !== null && Number.isFinite(r.ttftMs)) observe(a.ttft, r.ttftMs);
}

/** Attribute names of the histogram buckets on an hourly row: `lat_<i>` and `ttft_<i>`. */
export const LATENCY_ATTR = 'lat_';
export const TTFT_ATTR = 'ttft_';

/**
 * Off the request path. Rows go out as soon as a full BatchWriteItem's worth (25) is buffered,
 * a few batches at a time, so the table sees a steady trickle instead of a burst per interval;
 * the timer writes partial batches and the daily aggregates (one UpdateItem ADD per owner, day
 * and model per interval, not per record). Failed writes go back into the buffer and are retried
 * with backoff, so an outage delays records, never drops them or counts them twice.
 */
export class UsageRecorder {
  private buffer: UsageRecord[] = [];
  private inFlight = 0;
  private flushing: Promise<void> | null = null;
  private fullFlushQueued: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private failures = 0;
  private closed = false;
  private kickScheduled = false;
  /** Totals of records not yet sealed into a generation. */
  private open = new Map<string, DailyAggregate>();
  private openHourly = new Map<string, HourlyAggregate>();
  private openRecords = 0;
  private sealed: AggregateGeneration | null = null;
  private seq = 0;
  private aggregatesAt = Date.now();
  /** This writer's id on aggregate rows (`b_<id>` = last generation applied), unique per process. */
  private readonly writerId = randomBytes(6).toString('hex');
  private readonly maxBatch: number;
  private readonly retentionDays: number;
  private readonly intervalMs: number;

  constructor(private readonly opts: UsageRecorderOptions) {
    this.maxBatch = opts.maxBatch ?? 25;
    this.retentionDays = opts.retentionDays ?? 400;
    this.intervalMs = opts.flushIntervalMs ?? 1000;
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Records waiting to be written (their rows or their share of the daily totals). */
  get pending(): number {
    return Math.max(this.buffer.length + this.inFlight, this.openRecords + (this.sealed?.records ?? 0));
  }

  record(r: UsageRecord): void {
    this.buffer.push(r);
    addToAggregates(this.open, r);
    addToHourly(this.openHourly, r);
    this.openRecords++;
    if (this.buffer.length >= this.maxBatch && !this.flushing && !this.closed && !this.kickScheduled) {
      // After the current I/O callbacks: building and signing a batch (~0.5 ms) must not delay
      // the response of the request that happened to fill it.
      this.kickScheduled = true;
      setImmediate(() => {
        this.kickScheduled = false;
        if (this.buffer.length >= this.maxBatch && !this.closed) void this.run(false);
      });
    }
  }

  /** Write everything recorded so far: rows and daily totals. Concurrent callers share the work. */
  flush(): Promise<void> {
    return this.run(true);
  }

  private run(full: boolean): Promise<void> {
    const current = this.flushing;
    if (current) {
      if (!full) return current;
      // A full flush must start after the current round, so that it sees every record so far.
      const next = () => {
        this.fullFlushQueued = null;
        return this.run(true);
      };
      this.fullFlushQueued ??= current.then(next, next);
      return this.fullFlushQueued;
    }
    const p = this.doFlush(full).finally(() => {
      this.flushing = null;
      if (this.buffer.length >= this.maxBatch && !this.closed && !this.fullFlushQueued) void this.run(false);
    });
    this.flushing = p;
    return p;
  }

  /** Full: every row buffered now, then the totals. Otherwise one round of full batches. */
  private async doFlush(full: boolean): Promise<void> {
    try {
      let budget = full ? this.buffer.length : this.maxBatch * MAX_BATCHES_IN_FLIGHT;
      const more = () => budget > 0 && this.buffer.length >= (full ? 1 : this.maxBatch);
      while (more()) {
        const batches: UsageRecord[][] = [];
        let taken = 0;
        while (batches.length < MAX_BATCHES_IN_FLIGHT && more()) {
          const b = this.buffer.splice(0, Math.min(this.maxBatch, budget));
          batches.push(b);
          budget -= b.length;
          taken += b.length;
        }
        this.inFlight += taken;
        const results = await Promise.allSettled(batches.map((b) => this.writeRows(b)));
        this.inFlight -= taken;
        const retry: UsageRecord[] = [];
        let error: unknown;
        for (const [i, batch] of batches.entries()) {
          const r = results[i];
          if (r?.status !== 'rejected') continue;
          if (!isPermanent(r.reason)) {
            retry.push(...batch);
            error ??= r.reason;
            continue;
          }
          // DynamoDB refuses the whole batch for one bad row: write the rows one by one and
          // drop only those it refuses, which retrying would never change.
          const left = await this.salvage(batch);
          if (left.retry.length > 0) {
            retry.push(...left.retry);
            error ??= left.error;
          }
        }
        if (retry.length > 0) {
          // Back to the front, in order; puts are idempotent, so rewriting a row that landed is harmless.
          this.buffer.unshift(...retry);
          throw error;
        }
      }
      if (full || Date.now() - this.aggregatesAt >= this.intervalMs) {
        this.aggregatesAt = Date.now();
        await this.writeAggregates();
      }
      this.failures = 0;
    } catch (err) {
      this.failures++;
      this.opts.telemetry.increment(METRICS.usageWriteFailures);
      this.opts.telemetry.logger.warn('usage write failed; will retry', {
        pending: this.pending,
        attempt: this.failures,
        error: (err as Error).message,
      });
      // What did not land stays buffered (totals stay sealed, parts done marked); retried later.
      await sleep(Math.min(5000, 100 * 2 ** Math.min(this.failures, 6)));
    }
  }

  /** One row at a time; returns the rows worth retrying (transient failures). */
  private async salvage(batch: UsageRecord[]): Promise<{ retry: UsageRecord[]; error?: unknown }> {
    const retry: UsageRecord[] = [];
    let error: unknown;
    for (const row of batch) {
      try {
        await this.writeRows([row]);
      } catch (err) {
        if (!isPermanent(err)) {
          retry.push(row);
          error ??= err;
          continue;
        }
        this.opts.telemetry.increment(METRICS.usageWriteFailures);
        this.opts.telemetry.logger.error('usage row refused by DynamoDB; dropped', {
          requestId: row.requestId,
          error: (err as Error)?.message,
        });
      }
    }
    return { retry, error };
  }

  private async writeRows(records: UsageRecord[]): Promise<void> {
    const { ddb, table } = this.opts;
    const expiresAt =
      this.retentionDays > 0 ? Math.floor(Date.now() / 1000) + this.retentionDays * 86400 : undefined;
    let requests: WriteRequest[] = records.map((r) => ({ PutRequest: { Item: usageItem(r, expiresAt) } }));
    // Unprocessed items (throttling) are resent with backoff until none remain.
    for (let attempt = 0; requests.length > 0; attempt++) {
      const out = await ddb.send(new BatchWriteItemCommand({ RequestItems: { [table]: requests } }));
      requests = out.UnprocessedItems?.[table] ?? [];
      if (requests.length > 0) await sleep(Math.min(2000, 50 * 2 ** attempt));
    }
  }

  /**
   * Add the sealed totals (left over from a failed round), then seal the open ones under a new
   * batch number and add those: after a full flush nothing recorded before it is left open.
   */
  private async writeAggregates(): Promise<void> {
    if (this.sealed) await this.writeGeneration(this.sealed);
    if (this.open.size === 0 && this.openHourly.size === 0) return;
    this.sealed = {
      seq: ++this.seq,
      aggregates: this.open,
      hourly: this.openHourly,
      done: new Set(),
      records: this.openRecords,
    };
    this.open = new Map();
    this.openHourly = new Map();
    this.openRecords = 0;
    await this.writeGeneration(this.sealed);
  }

  private async writeGeneration(gen: AggregateGeneration): Promise<void> {
    const { ddb, table } = this.opts;
    await Promise.all(
      [...gen.aggregates].map(async ([k, a]) => {
        if (gen.done.has(k)) return;
        // An ADD whose answer was lost may have landed: the per-writer batch number makes the
        // retry a no-op instead of a double count.
        try {
          await ddb.send(
            new UpdateItemCommand({
              TableName: table,
              Key: { pk: { S: usagePk(a.owner) }, sk: { S: `DAY#${a.day}#${a.model}` } },
              UpdateExpression:
                'ADD requests :r, promptTokens :p, completionTokens :c, costUsd :u, cachedRequests :h SET #d = :d, model = :m, #b = :seq',
              ConditionExpression: 'attribute_not_exists(#b) OR #b < :seq',
              ExpressionAttributeNames: { '#d': 'day', '#b': `b_${this.writerId}` },
              ExpressionAttributeValues: {
                ':seq': { N: String(gen.seq) },
                ':r': { N: String(a.requests) },
                ':p': { N: String(a.prompt) },
                ':c': { N: String(a.completion) },
                ':u': { N: String(roundUsd(a.cost)) },
                ':h': { N: String(a.cached) },
                ':d': { S: a.day },
                ':m': { S: a.model },
              },
            }),
          );
        } catch (err) {
          if (!isConditionFailure(err)) throw err;
        }
        gen.done.add(k);
      }),
    );
    await this.writeHourly(gen);
    if (this.sealed === gen) this.sealed = null;
  }

  /** The hourly rows of a generation, under the same per-writer batch number as the daily ones. */
  private async writeHourly(gen: AggregateGeneration): Promise<void> {
    const { ddb, table } = this.opts;
    await Promise.all(
      [...gen.hourly].map(async ([k, a]) => {
        const doneKey = `H\0${k}`;
        if (gen.done.has(doneKey)) return;
        const names: Record<string, string> = {
          '#o': 'owner',
          '#k': 'keyId',
          '#hr': 'hour',
          '#m': 'model',
          '#b': `b_${this.writerId}`,
        };
        const values: Record<string, AttributeValue> = {
          ':seq': { N: String(gen.seq) },
          ':o': { S: a.owner },
          ':k': { S: a.keyId },
          ':hr': { S: a.hour },
          ':m': { S: a.model },
        };
        const adds: string[] = [];
        const add = (attr: string, v: number) => {
          const i = adds.length;
          names[`#a${i}`] = attr;
          values[`:a${i}`] = { N: String(v) };
          adds.push(`#a${i} :a${i}`);
        };
        add('requests', a.requests);
        add('promptTokens', a.prompt);
        add('completionTokens', a.completion);
        add('cachedTokens', a.cachedTokens);
        add('costUsd', roundUsd(a.cost));
        add('cachedRequests', a.cached);
        add('errors', a.errors);
        // Only the buckets this interval saw: a row holds at most 2 x 80 bucket counters.
        for (const [b, n] of a.latency) if (b <= LAST_BUCKET) add(`${LATENCY_ATTR}${b}`, n);
        for (const [b, n] of a.ttft) if (b <= LAST_BUCKET) add(`${TTFT_ATTR}${b}`, n);
        try {
          await ddb.send(
            new UpdateItemCommand({
              TableName: table,
              Key: { pk: { S: usagePk(a.owner) }, sk: { S: `${HOUR_SK}${a.hour}#${a.keyId}#${a.model}` } },
              UpdateExpression: `ADD ${adds.join(', ')} SET #o = :o, #k = :k, #hr = :hr, #m = :m, #b = :seq`,
              ConditionExpression: 'attribute_not_exists(#b) OR #b < :seq',
              ExpressionAttributeNames: names,
              ExpressionAttributeValues: values,
            }),
          );
        } catch (err) {
          if (!isConditionFailure(err)) throw err;
        }
        gen.done.add(doneKey);
      }),
    );
  }

  /** Flush until empty or the deadline passes (SIGTERM). Returns the records left unwritten. */
  async close(deadlineMs = 10_000): Promise<number> {
    clearInterval(this.timer);
    this.closed = true;
    const end = Date.now() + deadlineMs;
    while (this.pending > 0 && Date.now() < end) await this.flush();
    if (this.pending > 0) {
      this.opts.telemetry.logger.error('usage records left unwritten at shutdown', {
        count: this.pending,
      });
    }
    return this.pending;
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
        costUsd: roundUsd(Number(i.costUsd ?? 0)),
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
