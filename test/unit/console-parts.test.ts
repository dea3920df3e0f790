/**
 * The pieces under the operator console that need no service: the limiter's read of its live
 * counters (Redis and in process), the latency histograms, usage series and their CSV.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { buildConsole, writeConsole } from '../../console/build';
import { seriesCsv } from '../../container/src/http/admin-console-routes';
import { loadConsoleAssets } from '../../container/src/http/console-routes';
import {
  type AdmitArgs,
  Limiter,
  type LimiterStore,
  MemoryLimiterStore,
  RedisLimiterStore,
} from '../../container/src/limits/limiter';
import { type RedisServer, startRedisServer } from '../../container/src/local/redis';
import { Telemetry } from '../../container/src/telemetry/telemetry';
import {
  bucketLow,
  bucketOf,
  type Histogram,
  observe,
  quantile,
} from '../../container/src/usage/latency-histogram';
import { type HourlyUsage, toSeries, totalsOf } from '../../container/src/usage/usage-series';

const telemetry = new Telemetry({ serviceName: 'test', namespace: 'Test' });
afterAll(() => telemetry.close());

/** A moment 59 s into a minute window. */
const T0 = 1_800_000_000_000 + 59_000;

describe.each([
  ['Redis (MGET)', 'redis'],
  ['in-process', 'memory'],
])('limiter standing: %s', (_name, kind) => {
  let redis: RedisServer | null = null;
  let client: Redis | null = null;
  let store: LimiterStore;
  beforeAll(async () => {
    if (kind === 'redis') {
      redis = await startRedisServer();
      client = new Redis(redis!.url);
      store = new RedisLimiterStore(client);
    } else store = new MemoryLimiterStore();
  });
  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  const args = (over: Partial<AdmitArgs>): AdmitArgs => ({
    keyId: `k-${Math.random()}`,
    now: T0,
    rpm: 10,
    tpm: 10_000,
    daily: 100_000,
    monthlyMicro: 50_000_000,
    tokens: 100,
    costMicro: 2500,
    msToDayEnd: 3_600_000,
    msToMonthEnd: 7_200_000,
    ...over,
  });

  it('reads the counters admission and reconciliation keep, without changing them', async () => {
    const a = args({});
    for (let i = 0; i < 4; i++) expect((await store.admit(a)).denied).toBe('');
    await store.reconcile(a.keyId, a.now, -40, -1000);
    const c = await store.read(a.keyId, a.now);
    expect(c).toEqual({ rpmPrev: 0, rpmCur: 4, tpmPrev: 0, tpmCur: 360, day: 360, monthMicro: 9000 });
    expect(await store.read(a.keyId, a.now)).toEqual(c);
    expect(await store.read('nobody', a.now)).toEqual({
      rpmPrev: 0,
      rpmCur: 0,
      tpmPrev: 0,
      tpmCur: 0,
      day: 0,
      monthMicro: 0,
    });
  });

  it('reports the standing as admission counts it: the previous minute weighted by what is left of it', async () => {
    const limiter = new Limiter({ store, failureMode: 'open', telemetry });
    try {
      const a = args({});
      for (let i = 0; i < 4; i++) await store.admit(a);
      expect(await limiter.standing(a.keyId, T0)).toEqual({
        requestsThisMinute: 4,
        tokensThisMinute: 400,
        tokensToday: 400,
        spendThisMonthUsd: 0.01,
        at: T0,
      });
      // 30 s into the next minute: half of the previous minute's 4 requests still count.
      const later = T0 + 31_000;
      const s = await limiter.standing(a.keyId, later);
      expect(s.requestsThisMinute).toBe(2);
      expect(s.tokensThisMinute).toBe(200);
      // The same estimate admission makes: with rpm 6, four more fit and the fifth is refused.
      const next = args({ keyId: a.keyId, now: later, rpm: 6 });
      const outs = [];
      for (let i = 0; i < 5; i++) outs.push((await store.admit(next)).denied);
      expect(outs).toEqual(['', '', '', '', 'rpm']);
    } finally {
      await limiter.close();
    }
  });

  it('shows a finished request at its real usage: pending reconciliations are written first', async () => {
    // A long interval: only standing()'s own flush can write the reconciliation.
    const limiter = new Limiter({ store, failureMode: 'open', telemetry, reconcileIntervalMs: 600_000 });
    try {
      const keyId = `k-${Math.random()}`;
      const now = Date.now();
      const { reservation } = await limiter.admit(keyId, { tpm: 10_000, daily_tokens: 100_000 }, 500, 0.01);
      limiter.reconcile(reservation, 120, 0.002);
      const s = await limiter.standing(keyId, now);
      expect(s.tokensToday).toBe(120);
      expect(s.spendThisMonthUsd).toBe(0.002);
    } finally {
      await limiter.close();
    }
  });
});

describe('latency histograms', () => {
  it('puts values in log buckets of ~19% and reads percentiles within that', () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(1)).toBe(0);
    expect(bucketOf(2)).toBe(4);
    expect(bucketLow(4)).toBe(2);
    expect(bucketOf(Number.NaN)).toBe(0);
    const h: Histogram = new Map();
    for (let v = 1; v <= 1000; v++) observe(h, v);
    for (const [q, truth] of [
      [0.5, 500],
      [0.9, 900],
      [0.99, 990],
    ] as const) {
      const est = quantile(h, q)!;
      expect(Math.abs(est - truth) / truth).toBeLessThan(0.1);
    }
    expect(quantile(new Map(), 0.5)).toBeNull();
  });
});

function hourly(over: Partial<HourlyUsage>): HourlyUsage {
  return {
    owner: 'acme',
    keyId: 'key_a',
    model: 'm1',
    hour: '2026-12-04T10',
    requests: 1,
    promptTokens: 10,
    completionTokens: 5,
    cachedTokens: 0,
    costUsd: 0.001,
    cachedRequests: 0,
    errors: 0,
    latency: new Map([[bucketOf(100), 1]]),
    ttft: new Map(),
    ...over,
  };
}

describe('usage series', () => {
  const rows = [
    hourly({}),
    hourly({ hour: '2026-12-04T11', keyId: 'key_b', requests: 2, costUsd: 0.002 }),
    hourly({ hour: '2026-12-05T00', model: 'm2', requests: 3, errors: 1, cachedRequests: 1 }),
  ];

  it('sums hourly rows per hour or per day and the chosen dimensions', () => {
    expect(toSeries(rows, 'hour', ['key_id']).map((p) => [p.period, p.key_id, p.requests])).toEqual([
      ['2026-12-04T10', 'key_a', 1],
      ['2026-12-04T11', 'key_b', 2],
      ['2026-12-05T00', 'key_a', 3],
    ]);
    const days = toSeries(rows, 'day', []);
    expect(days.map((p) => [p.period, p.requests, p.total_tokens, p.cost_usd])).toEqual([
      ['2026-12-04', 3, 30, 0.003],
      ['2026-12-05', 3, 15, 0.001],
    ]);
    expect(days[0]).not.toHaveProperty('owner');
    expect(toSeries(rows, 'day', ['owner', 'model']).map((p) => [p.period, p.owner, p.model])).toEqual([
      ['2026-12-04', 'acme', 'm1'],
      ['2026-12-05', 'acme', 'm2'],
    ]);
  });

  it('totals requests, errors, cache hit rate and percentiles', () => {
    const t = totalsOf(rows);
    expect(t).toMatchObject({
      requests: 6,
      errors: 1,
      cached_requests: 1,
      total_tokens: 45,
      cost_usd: 0.004,
    });
    expect(t.cache_hit_rate).toBeCloseTo(1 / 6, 4);
    expect(t.latency_ms.p50).toBeGreaterThan(90);
    expect(t.latency_ms.p50).toBeLessThan(110);
    expect(t.ttft_ms.p50).toBeNull();
    expect(totalsOf([]).cache_hit_rate).toBeNull();
  });

  it('writes CSV a spreadsheet cannot mistake for formulas', () => {
    const csv = seriesCsv(
      toSeries([hourly({ owner: '=cmd|calc', model: 'a,"b"' })], 'hour', ['owner', 'model']),
    );
    const [header, line] = csv.trimEnd().split('\r\n');
    expect(header).toBe(
      'period,owner,key_id,model,requests,errors,prompt_tokens,completion_tokens,total_tokens,cached_tokens,cost_usd,cached_requests',
    );
    expect(line).toBe(`2026-12-04T10,"'=cmd|calc",,"a,""b""",1,0,10,5,15,0,0.001,0`);
  });
});

describe('console build', () => {
  it('writes a page with no inline script, style or handler, whose every asset the route module then serves', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-console-'));
    try {
      writeConsole(await buildConsole(), dir);
      const assets = loadConsoleAssets([join(dir, 'missing'), dir]);
      expect(assets).not.toBeNull();
      const html = assets!.get('index.html')!.body.toString();
      const refs = [...html.matchAll(/"\/console\/assets\/([^"]+)"/g)].map((m) => m[1]);
      expect(refs).toHaveLength(3);
      for (const r of refs) expect(assets!.has(r as string)).toBe(true);
      expect(refs.some((r) => /^app-[A-Z0-9]+\.js$/.test(r as string))).toBe(true);
      expect(html.match(/<script/g)).toHaveLength(1);
      expect(html).toMatch(/<script type="module" src="\/console\/assets\/app-[A-Z0-9]+\.js"><\/script>/);
      expect(html).not.toMatch(/\son[a-z]+=|style=|<style|https?:\/\//i);
      expect(assets!.get(refs[0] as string)!.etag).toMatch(/^"[A-Za-z0-9_-]{22}"$/);
      expect(loadConsoleAssets([join(dir, 'missing')])).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
