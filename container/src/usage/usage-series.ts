/**
 * Reading the hourly usage aggregates: rows per owner, key, model and UTC hour, summed into
 * series by hour or by day and grouped by any of those dimensions. Sums of exact counters, so
 * a series is exact too; percentiles come from the rows' latency histograms.
 */
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { type Histogram, merge, quantile } from './latency-histogram';
import { roundUsd } from './pricing';
import { HOUR_SK, LATENCY_ATTR, TTFT_ATTR, usagePk } from './usage-recorder';

/** One hourly aggregate row as read back. */
export interface HourlyUsage {
  owner: string;
  keyId: string;
  model: string;
  /** `YYYY-MM-DDTHH` (UTC). */
  hour: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costUsd: number;
  cachedRequests: number;
  errors: number;
  latency: Histogram;
  ttft: Histogram;
}

function histogramOf(item: Record<string, unknown>, prefix: string): Histogram {
  const h: Histogram = new Map();
  for (const [k, v] of Object.entries(item)) {
    if (!k.startsWith(prefix)) continue;
    const b = Number(k.slice(prefix.length));
    const n = Number(v);
    if (Number.isInteger(b) && n > 0) h.set(b, n);
  }
  return h;
}

/** An owner's hourly rows from `startHour` to `endHour` inclusive (`YYYY-MM-DDTHH`). */
export async function queryHourlyUsage(
  doc: DynamoDBDocumentClient,
  table: string,
  owner: string,
  startHour: string,
  endHour: string,
): Promise<HourlyUsage[]> {
  const out: HourlyUsage[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const r = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND sk BETWEEN :a AND :b',
        ExpressionAttributeValues: {
          ':pk': usagePk(owner),
          ':a': `${HOUR_SK}${startHour}`,
          ':b': `${HOUR_SK}${endHour}#\uffff`,
        },
        ExclusiveStartKey: startKey,
      }),
    );
    for (const i of r.Items ?? []) {
      out.push({
        owner: String(i.owner ?? owner),
        keyId: String(i.keyId),
        model: String(i.model),
        hour: String(i.hour),
        requests: Number(i.requests ?? 0),
        promptTokens: Number(i.promptTokens ?? 0),
        completionTokens: Number(i.completionTokens ?? 0),
        cachedTokens: Number(i.cachedTokens ?? 0),
        costUsd: Number(i.costUsd ?? 0),
        cachedRequests: Number(i.cachedRequests ?? 0),
        errors: Number(i.errors ?? 0),
        latency: histogramOf(i, LATENCY_ATTR),
        ttft: histogramOf(i, TTFT_ATTR),
      });
    }
    startKey = r.LastEvaluatedKey;
  } while (startKey);
  return out;
}

export type Granularity = 'hour' | 'day';
export type Dimension = 'owner' | 'key_id' | 'model';
export const DIMENSIONS: readonly Dimension[] = ['owner', 'key_id', 'model'];

/** One point of a series: a period and the dimensions grouped on. */
export interface SeriesPoint {
  /** `YYYY-MM-DDTHH` for hours, `YYYY-MM-DD` for days. */
  period: string;
  owner?: string;
  key_id?: string;
  model?: string;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cached_tokens: number;
  cost_usd: number;
  cached_requests: number;
}

/** Sum rows into points per period and the chosen dimensions, ordered by period then group. */
export function toSeries(
  rows: readonly HourlyUsage[],
  granularity: Granularity,
  groupBy: readonly Dimension[],
): SeriesPoint[] {
  const points = new Map<string, SeriesPoint>();
  for (const r of rows) {
    const period = granularity === 'hour' ? r.hour : r.hour.slice(0, 10);
    const dims: Partial<Record<Dimension, string>> = {};
    if (groupBy.includes('owner')) dims.owner = r.owner;
    if (groupBy.includes('key_id')) dims.key_id = r.keyId;
    if (groupBy.includes('model')) dims.model = r.model;
    const k = [period, dims.owner ?? '', dims.key_id ?? '', dims.model ?? ''].join('\0');
    let p = points.get(k);
    if (!p) {
      p = {
        period,
        ...dims,
        requests: 0,
        errors: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        total_tokens: 0,
        cached_tokens: 0,
        cost_usd: 0,
        cached_requests: 0,
      };
      points.set(k, p);
    }
    p.requests += r.requests;
    p.errors += r.errors;
    p.prompt_tokens += r.promptTokens;
    p.completion_tokens += r.completionTokens;
    p.total_tokens += r.promptTokens + r.completionTokens;
    p.cached_tokens += r.cachedTokens;
    p.cost_usd += r.costUsd;
    p.cached_requests += r.cachedRequests;
  }
  const out = [...points.values()];
  for (const p of out) p.cost_usd = roundUsd(p.cost_usd);
  const key = (p: SeriesPoint) => [p.period, p.owner ?? '', p.key_id ?? '', p.model ?? ''].join('\0');
  return out.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** Totals of a set of rows, with latency and TTFT percentiles from their histograms. */
export interface UsageTotals {
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost_usd: number;
  cached_requests: number;
  /** Cache hits over requests; null without requests. */
  cache_hit_rate: number | null;
  latency_ms: { p50: number | null; p90: number | null; p99: number | null };
  ttft_ms: { p50: number | null; p90: number | null; p99: number | null };
}

const round1 = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);

export function totalsOf(rows: readonly HourlyUsage[]): UsageTotals {
  const latency: Histogram = new Map();
  const ttft: Histogram = new Map();
  const t = { requests: 0, errors: 0, prompt: 0, completion: 0, cost: 0, cached: 0 };
  for (const r of rows) {
    t.requests += r.requests;
    t.errors += r.errors;
    t.prompt += r.promptTokens;
    t.completion += r.completionTokens;
    t.cost += r.costUsd;
    t.cached += r.cachedRequests;
    merge(latency, r.latency);
    merge(ttft, r.ttft);
  }
  const pct = (h: Histogram) => ({
    p50: round1(quantile(h, 0.5)),
    p90: round1(quantile(h, 0.9)),
    p99: round1(quantile(h, 0.99)),
  });
  return {
    requests: t.requests,
    errors: t.errors,
    prompt_tokens: t.prompt,
    completion_tokens: t.completion,
    total_tokens: t.prompt + t.completion,
    cost_usd: roundUsd(t.cost),
    cached_requests: t.cached,
    cache_hit_rate: t.requests > 0 ? Math.round((t.cached / t.requests) * 10_000) / 10_000 : null,
    latency_ms: pct(latency),
    ttft_ms: pct(ttft),
  };
}
