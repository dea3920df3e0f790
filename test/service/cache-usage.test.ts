import type { LocalStack } from '../../container/src/local/stack';
import { countTextTokens } from '../../container/src/tokens/count';
import { queryUsageRecords } from '../../container/src/usage/usage-recorder';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import {
  ADMIN_KEY,
  eventually,
  mockModel,
  startTestService,
  startTestStack,
  type TestService,
} from '../helpers/service';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

let upstream: MockUpstream;
let stack: LocalStack;
let svc: TestService;
let config: Record<string, unknown>;

beforeAll(async () => {
  upstream = await startMockUpstream();
  stack = await startTestStack('cache');
  config = {
    models: [
      mockModel(upstream, 'mock-small', { pricing: { input: 2, output: 8, cachedInput: 1 } }),
      // Served under another name upstream: answers must still carry the public id.
      mockModel(upstream, 'mock-aliased', { upstreamModel: 'aliased-up' }),
    ],
    tiers: { basic: { limits: { rpm: 10_000 }, models: ['*'] } },
    usage: { flushIntervalMs: 100 },
  };
  svc = await startTestService({ stack, config });
});

afterAll(async () => {
  await svc?.stop();
  await stack?.stop();
  await upstream?.close();
});

beforeEach(() => upstream.reset());

const msgs = (q: string) => [{ role: 'user' as const, content: q }];
const records = (owner: string) =>
  queryUsageRecords(svc.server.runtime.doc, svc.server.runtime.env.tables.usage, owner);

describe('response cache', () => {
  it('replays a cached stream under the public model id, not the upstream name', async () => {
    const { key } = await svc.createKey();
    const body = { model: 'mock-aliased', messages: msgs('cached stream name'), temperature: 0 };
    upstream.enqueue('aliased-up', { kind: 'stream', tokens: ['named ', 'twice'] });
    const stream = await svc.client(key).chat.completions.create({ ...body, stream: true });
    const models = new Set<string>();
    for await (const c of stream) models.add(c.model);
    expect([...models]).toEqual(['mock-aliased']);
    const again = await svc.http('POST', '/v1/chat/completions', { key, body });
    expect(again.headers.get('x-tollgate-cache')).toBe('HIT');
    expect(again.json().model).toBe('mock-aliased');
  });

  it('serves a repeated deterministic request from the cache: MISS then HIT, upstream called once', async () => {
    const { key } = await svc.createKey();
    const body = { model: 'mock-small', messages: msgs('cache me'), temperature: 0 };
    const first = await svc.http('POST', '/v1/chat/completions', { key, body });
    const second = await svc.http('POST', '/v1/chat/completions', { key, body });
    expect(first.headers.get('x-tollgate-cache')).toBe('MISS');
    expect(second.headers.get('x-tollgate-cache')).toBe('HIT');
    expect(second.json().choices).toEqual(first.json().choices);
    expect(second.headers.get('x-tollgate-cost-usd')).toBe('0.0');
    expect(upstream.requests).toHaveLength(1);
  });

  it('never shares an entry between requests that differ in any parameter', async () => {
    const { key } = await svc.createKey();
    const base = { model: 'mock-small', messages: msgs('vary'), temperature: 0 };
    const variants = [
      base,
      { ...base, max_tokens: 5 },
      { ...base, stop: ['x'] },
      { ...base, top_p: 0.5 },
      { ...base, tools: [{ type: 'function', function: { name: 'f' } }] },
      { ...base, response_format: { type: 'json_object' } },
    ];
    for (const body of variants)
      expect(
        (await svc.http('POST', '/v1/chat/completions', { key, body })).headers.get('x-tollgate-cache'),
      ).toBe('MISS');
    expect(upstream.requests).toHaveLength(variants.length);
  });

  it('bypasses non-deterministic requests and Cache-Control: no-store, but caches seeded ones', async () => {
    const { key } = await svc.createKey();
    const hot = { model: 'mock-small', messages: msgs('hot'), temperature: 0.9 };
    expect(
      (await svc.http('POST', '/v1/chat/completions', { key, body: hot })).headers.get('x-tollgate-cache'),
    ).toBe('BYPASS');
    const cold = { model: 'mock-small', messages: msgs('no-store'), temperature: 0 };
    const r = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: cold,
      headers: { 'cache-control': 'no-store' },
    });
    expect(r.headers.get('x-tollgate-cache')).toBe('BYPASS');
    const seeded = { model: 'mock-small', messages: msgs('seeded'), temperature: 1, seed: 42 };
    await svc.http('POST', '/v1/chat/completions', { key, body: seeded });
    expect(
      (await svc.http('POST', '/v1/chat/completions', { key, body: seeded })).headers.get('x-tollgate-cache'),
    ).toBe('HIT');
  });

  it('scopes entries per owner by default', async () => {
    const one = await svc.createKey();
    const two = await svc.createKey();
    const body = { model: 'mock-small', messages: msgs('per owner'), temperature: 0 };
    await svc.http('POST', '/v1/chat/completions', { key: one.key, body });
    expect(
      (await svc.http('POST', '/v1/chat/completions', { key: two.key, body })).headers.get(
        'x-tollgate-cache',
      ),
    ).toBe('MISS');
  });

  it('replays a cached completion as a stream', async () => {
    const { key } = await svc.createKey();
    upstream.enqueue('mock-small', { kind: 'reply', content: 'cached words for streaming' });
    const body = { model: 'mock-small', messages: msgs('stream from cache'), temperature: 0 };
    await svc.http('POST', '/v1/chat/completions', { key, body });
    const stream = await svc
      .client(key)
      .chat.completions.create({ ...body, stream: true, messages: msgs('stream from cache') } as never);
    let text = '';
    for await (const c of stream as unknown as AsyncIterable<{
      choices: Array<{ delta: { content?: string } }>;
    }>)
      text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('cached words for streaming');
    expect(upstream.requests).toHaveLength(1);
  });

  it('caches a streamed answer for later non-streaming hits', async () => {
    const { key } = await svc.createKey();
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['stre', 'amed'] });
    const body = { model: 'mock-small', messages: msgs('stream then cache'), temperature: 0 };
    await svc.http('POST', '/v1/chat/completions', { key, body: { ...body, stream: true } });
    const hit = await svc.http('POST', '/v1/chat/completions', { key, body });
    expect(hit.headers.get('x-tollgate-cache')).toBe('HIT');
    expect(hit.json().choices[0].message.content).toBe('streamed');
  });
});

describe('usage records', () => {
  it('writes exactly one record per request: success, upstream error, client disconnect, cache hit', async () => {
    const { key, owner } = await svc.createKey();
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'ok',
      usage: { prompt_tokens: 100, completion_tokens: 50, prompt_tokens_details: { cached_tokens: 40 } },
    });
    const ok = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: { model: 'mock-small', messages: msgs('one'), temperature: 0 },
    });
    upstream.enqueue('mock-small', { kind: 'error', status: 500 });
    const failed = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: { model: 'mock-small', messages: msgs('two') },
    });
    const hit = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: { model: 'mock-small', messages: msgs('one'), temperature: 0 },
    });
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: Array.from({ length: 100 }, () => 'word '),
      delayMs: 20,
    });
    const ac = new AbortController();
    const stream = await svc
      .client(key)
      .chat.completions.create(
        { model: 'mock-small', messages: msgs('three'), stream: true },
        { signal: ac.signal },
      );
    let n = 0;
    await (async () => {
      for await (const _ of stream) if (++n === 5) ac.abort();
    })().catch(() => undefined);

    const ids = [ok, failed, hit].map((r) => r.headers.get('x-request-id'));
    const rows = await eventually(async () => {
      const rs = await records(owner);
      return rs.length >= 4 ? rs : null;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(await records(owner)).toHaveLength(4);
    const byId = new Map(rows.map((r) => [r.requestId, r]));
    // 60 uncached * $2 + 40 cached * $1 + 50 * $8 per 1M
    expect(byId.get(ids[0]!)).toMatchObject({
      status: 200,
      promptTokens: 100,
      completionTokens: 50,
      cachedTokens: 40,
      cached: false,
      estimated: false,
      costUsd: 0.00056,
    });
    expect(byId.get(ids[1]!)).toMatchObject({ status: 502, cached: false, costUsd: 0, promptTokens: 0 });
    expect(byId.get(ids[2]!)).toMatchObject({ status: 200, cached: true, costUsd: 0 });
    const cut = rows.find((r) => r.status === 499);
    expect(cut).toMatchObject({ estimated: true, stream: true });
    expect(cut?.completionTokens).toBeGreaterThanOrEqual(4);
    expect(cut?.completionTokens).toBeLessThan(100);
    for (const r of rows)
      expect(r).toMatchObject({
        keyId: expect.stringMatching(/^key_/),
        owner,
        model: 'mock-small',
        latencyMs: expect.any(Number),
      });
  });

  it('reports usage per day and model on /v1/usage and /admin/usage', async () => {
    const { key, owner } = await svc.createKey();
    upstream.setDefault('mock-small', {
      kind: 'reply',
      content: 'ok',
      usage: { prompt_tokens: 10, completion_tokens: 5 },
    });
    for (let i = 0; i < 3; i++)
      await svc.http('POST', '/v1/chat/completions', {
        key,
        body: { model: 'mock-small', messages: msgs(`u${i}`) },
      });
    const mine = await eventually(async () => {
      const r = (await svc.http('GET', '/v1/usage', { key })).json();
      return r.totals?.requests === 3 ? r : null;
    });
    expect(mine.totals).toMatchObject({
      requests: 3,
      prompt_tokens: 30,
      completion_tokens: 15,
      total_tokens: 45,
    });
    expect(mine.totals.cost_usd).toBeCloseTo((30 * 2 + 15 * 8) / 1e6, 12);
    expect(mine.data[0]).toMatchObject({
      model: 'mock-small',
      requests: 3,
      day: new Date().toISOString().slice(0, 10),
    });
    const admin = (await svc.http('GET', `/admin/usage?owner=${owner}`, { key: ADMIN_KEY })).json();
    expect(admin.totals.requests).toBe(3);
    expect((await svc.http('GET', '/v1/usage?start=2026-13-01', { key })).status).toBe(400);
    expect((await svc.http('GET', '/v1/usage?start=2026-02-30', { key })).status).toBe(400);
    expect((await svc.http('GET', '/v1/usage?end=2025-02-29', { key })).status).toBe(400);
    expect((await svc.http('GET', '/v1/usage?start=2026-02-02&end=2026-02-01', { key })).status).toBe(400);
  });
});

describe('usage survives outages and shutdown', () => {
  let proxy: TcpProxy;
  let isolated: TestService;

  beforeAll(async () => {
    const target = new URL(stack.env.AWS_ENDPOINT_URL_DYNAMODB as string);
    proxy = await startTcpProxy(target.hostname, Number(target.port));
  });
  afterAll(async () => {
    await isolated?.stop();
    await proxy?.close();
    process.env.AWS_ENDPOINT_URL_DYNAMODB = stack.env.AWS_ENDPOINT_URL_DYNAMODB;
  });

  it('loses nothing through a 10-second DynamoDB outage', async () => {
    const { key, owner } = await svc.createKey();
    isolated = await startTestService({ stack, config, env: { AWS_ENDPOINT_URL_DYNAMODB: proxy.url } });
    expect(
      (
        await isolated.http('POST', '/v1/chat/completions', {
          key,
          body: { model: 'mock-small', messages: msgs('warm') },
        })
      ).status,
    ).toBe(200);
    await eventually(async () => (await records(owner)).length === 1);
    proxy.down();
    const during = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        isolated.http('POST', '/v1/chat/completions', {
          key,
          body: { model: 'mock-small', messages: msgs(`during ${i}`) },
        }),
      ),
    );
    // Keys are cached for 1 s; after that auth needs DynamoDB too, so only the first burst is served.
    expect(during.every((r) => r.status === 200)).toBe(true);
    await new Promise((r) => setTimeout(r, 10_000));
    // Still buffered (the warm-up's daily aggregate may be waiting too).
    expect(isolated.server.runtime.usage.pending).toBeGreaterThanOrEqual(10);
    proxy.up();
    await eventually(async () => (await records(owner)).length === 11, 15_000, 200);
    await eventually(() => isolated.server.runtime.usage.pending === 0, 10_000);
    // Aggregates were retried without double counting.
    const totals = (await svc.http('GET', '/v1/usage', { key })).json().totals;
    expect(totals.requests).toBe(11);
  }, 40_000);

  it('flushes buffered usage on shutdown', async () => {
    const { key, owner } = await svc.createKey();
    const lazy = await startTestService({
      stack,
      config: { ...config, usage: { flushIntervalMs: 600_000 } },
    });
    for (let i = 0; i < 5; i++)
      await lazy.http('POST', '/v1/chat/completions', {
        key,
        body: { model: 'mock-small', messages: msgs(`s${i}`) },
      });
    expect(lazy.server.runtime.usage.pending).toBe(5);
    expect(await records(owner)).toHaveLength(0);
    await lazy.stop();
    expect(await records(owner)).toHaveLength(5);
  });
});

describe('usage from a sloppy upstream', () => {
  it('counts a null token field itself (marked estimated) and keeps writing the records after it', async () => {
    const { key, owner } = await svc.createKey();
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'no counts',
      usage: { prompt_tokens: 9, completion_tokens: null } as unknown as {
        prompt_tokens: number;
        completion_tokens: number;
      },
    });
    const sloppy = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: { model: 'mock-small', messages: msgs('sloppy usage') },
    });
    expect(sloppy.status).toBe(200);
    const fine = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: { model: 'mock-small', messages: msgs('after it') },
    });
    expect(fine.status).toBe(200);
    const rows = await eventually(async () => {
      const r = await records(owner);
      return r.length === 2 ? r : undefined;
    });
    const first = rows.find((r) => r.requestId === sloppy.headers.get('x-request-id'));
    // The upstream's valid count is kept; the missing one is the delivered text, counted here.
    expect(first).toMatchObject({
      promptTokens: 9,
      completionTokens: countTextTokens('no counts'),
      estimated: true,
    });
    expect(first?.completionTokens).toBeGreaterThan(0);
    expect(Number.isFinite(first?.costUsd)).toBe(true);
    await eventually(async () => (await svc.http('GET', '/v1/usage', { key })).json().totals.requests === 2);
  });
});

describe('usage write pacing', () => {
  it('writes each full batch of rows at once; partial batches and daily totals wait for the interval', async () => {
    const { key, owner } = await svc.createKey();
    const lazy = await startTestService({
      stack,
      config: { ...config, usage: { flushIntervalMs: 600_000, maxBatch: 10 } },
    });
    try {
      await Promise.all(
        Array.from({ length: 23 }, (_, i) =>
          lazy.http('POST', '/v1/chat/completions', {
            key,
            body: { model: 'mock-small', messages: msgs(`pace ${i}`) },
          }),
        ),
      );
      // Two full batches of 10 went out without the timer; 3 rows and every total still wait.
      await eventually(async () => (await records(owner)).length === 20);
      expect(lazy.server.runtime.usage.pending).toBe(23);
      expect((await svc.http('GET', '/v1/usage', { key })).json().totals.requests).toBe(0);
    } finally {
      await lazy.stop();
    }
    expect(await records(owner)).toHaveLength(23);
    expect((await svc.http('GET', '/v1/usage', { key })).json().totals.requests).toBe(23);
  });
});

describe('admin key never leaks into usage', () => {
  it('has no admin usage for the admin key itself', async () => {
    expect((await svc.http('GET', '/admin/usage', { key: ADMIN_KEY })).status).toBe(400);
  });
});
