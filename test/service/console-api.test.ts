/**
 * The admin API under the operator console, on the real service (redis-server, dynalite,
 * local-aws-sqs, a scripted upstream): live standing, hourly usage series (exact, idempotent),
 * the overview, playground keys that expire to the millisecond, failed jobs, and the console
 * routes with their Content-Security-Policy.
 */
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { consoleAsset, consoleRoutes } from '../../container/src/http/console-routes';
import { type JobRow, JobStore } from '../../container/src/jobs/job-store';
import { registerAsyncRoutes } from '../../container/src/jobs/routes';
import { Authenticator, KeyStore } from '../../container/src/keys/key-store';
import type { LocalStack } from '../../container/src/local/stack';
import { queryUsageRecords } from '../../container/src/usage/usage-recorder';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import {
  ADMIN_KEY,
  DEV_KEY,
  eventually,
  mockModel,
  startTestService,
  startTestStack,
  type TestService,
} from '../helpers/service';

let upstream: MockUpstream;
let stack: LocalStack;
let svc: TestService;
let config: Record<string, unknown>;

const ASSETS = new Map([
  ['index.html', consoleAsset('index.html', Buffer.from('<!doctype html><title>t</title>'))],
  ['app-ABCDEFGH.js', consoleAsset('app-ABCDEFGH.js', Buffer.from('console.log(1)'))],
]);

beforeAll(async () => {
  upstream = await startMockUpstream();
  stack = await startTestStack('console');
  config = {
    models: [
      mockModel(upstream, 'mock-small', { pricing: { input: 2, output: 8, cachedInput: 1 } }),
      mockModel(upstream, 'mock-large', { pricing: { input: 5, output: 15 } }),
    ],
    tiers: {
      basic: {
        limits: { rpm: 100, tpm: 100_000, daily_tokens: 1_000_000, monthly_budget_usd: 10 },
        models: ['*'],
      },
      unlimited: { limits: {}, models: ['*'] },
    },
    usage: { flushIntervalMs: 100 },
  };
  svc = await startTestService({
    stack,
    config,
    env: { TOLLGATE_CONSOLE_ENABLED: 'true' },
    plugins: [registerAsyncRoutes, consoleRoutes({ assets: () => ASSETS })],
  });
});

afterAll(async () => {
  await svc?.stop();
  await stack?.stop();
  await upstream?.close();
});

beforeEach(() => upstream.reset());

const admin = (method: string, path: string, body?: object) =>
  svc.http(method, path, { key: ADMIN_KEY, ...(body ? { body } : {}) });
const chat = (key: string, model: string, q: string) =>
  svc.http('POST', '/v1/chat/completions', {
    key,
    body: { model, messages: [{ role: 'user', content: q }] },
  });
const records = (owner: string) =>
  queryUsageRecords(svc.server.runtime.doc, svc.server.runtime.env.tables.usage, owner);

describe('key standing', () => {
  it("reports each key's requests and tokens this minute, tokens today and spend this month against its limits", async () => {
    const { id, key, owner } = await svc.createKey({ limits: { rpm: 7, monthly_budget_usd: 3 } });
    const before = (await admin('GET', `/admin/keys/${id}/standing`)).json();
    expect(before).toMatchObject({
      key_id: id,
      owner,
      limits: { rpm: 7, tpm: 100_000, daily_tokens: 1_000_000, monthly_budget_usd: 3 },
      requests_this_minute: 0,
      tokens_this_minute: 0,
      tokens_today: 0,
      spend_this_month_usd: 0,
    });
    for (const q of ['one', 'two', 'three']) expect((await chat(key, 'mock-small', q)).status).toBe(200);
    const rows = await eventually(async () => {
      const r = await records(owner);
      return r.length === 3 ? r : undefined;
    });
    const tokens = rows.reduce((n, r) => n + r.promptTokens + r.completionTokens, 0);
    const cost = rows.reduce((n, r) => n + r.costUsd, 0);
    const after = (await admin('GET', `/admin/keys/${id}/standing`)).json();
    // Reservations are reconciled: the figures are the real usage, not prompt + max_tokens.
    expect(after.requests_this_minute).toBe(3);
    expect(after.tokens_today).toBe(tokens);
    expect(after.tokens_this_minute).toBeGreaterThanOrEqual(tokens);
    expect(after.spend_this_month_usd).toBeCloseTo(cost, 6);
    const listed = (await admin('GET', `/admin/standing?owner=${owner}`)).json().data;
    expect(listed).toEqual([expect.objectContaining({ key_id: id, requests_this_minute: 3 })]);
  });

  it('leaves out per-minute figures the limiter does not keep (no such limit), and revoked keys', async () => {
    const { id, owner } = await svc.createKey({ tier: 'unlimited' });
    const s = (await admin('GET', `/admin/keys/${id}/standing`)).json();
    expect(s).toMatchObject({ requests_this_minute: null, tokens_this_minute: null, tokens_today: 0 });
    expect((await admin('DELETE', `/admin/keys/${id}`)).status).toBe(200);
    expect((await admin('GET', `/admin/standing?owner=${owner}`)).json().data).toEqual([]);
    expect((await admin('GET', '/admin/keys/key_nope/standing')).json().error.code).toBe('key_not_found');
  });

  it('is for the admin key only', async () => {
    expect((await svc.http('GET', '/admin/standing', { key: DEV_KEY })).json().error.code).toBe('admin_only');
    expect((await svc.http('GET', '/admin/standing', { key: 'sk-tg-admin-wrong' })).status).toBe(401);
    expect((await svc.http('GET', '/admin/standing', { key: null })).status).toBe(401);
  });
});

describe('usage series', () => {
  it('answers by hour and by day per owner, key and model, exactly as the usage rows add up', async () => {
    const owner = `series-${randomUUID().slice(0, 8)}`;
    const a = await svc.createKey({ owner });
    const b = await svc.createKey({ owner });
    const plan: Array<[string, string]> = [
      [a.key, 'mock-small'],
      [a.key, 'mock-small'],
      [a.key, 'mock-large'],
      [b.key, 'mock-small'],
    ];
    for (const [i, [key, model]] of plan.entries())
      expect((await chat(key, model, `q${i}`)).status).toBe(200);
    const rows = await eventually(async () => {
      const r = await records(owner);
      return r.length === plan.length ? r : undefined;
    });
    const hour = new Date(rows[0]!.ts).toISOString().slice(0, 13);
    const series = await eventually(async () => {
      const s = (await admin('GET', `/admin/usage/series?owner=${owner}&start=${hour}&end=${hour}`)).json();
      return s.data?.reduce((n: number, p: { requests: number }) => n + p.requests, 0) === plan.length
        ? s
        : undefined;
    });
    const sum = (f: (r: (typeof rows)[number]) => boolean) => {
      const sel = rows.filter(f);
      return {
        requests: sel.length,
        prompt_tokens: sel.reduce((n, r) => n + r.promptTokens, 0),
        completion_tokens: sel.reduce((n, r) => n + r.completionTokens, 0),
      };
    };
    expect(series).toMatchObject({ object: 'usage.series', granularity: 'hour', start: hour, end: hour });
    expect(series.data).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          period: hour,
          owner,
          key_id: a.id,
          model: 'mock-small',
          ...sum((r) => r.keyId === a.id && r.model === 'mock-small'),
        }),
        expect.objectContaining({ key_id: a.id, model: 'mock-large', requests: 1 }),
        expect.objectContaining({ key_id: b.id, model: 'mock-small', requests: 1 }),
      ]),
    );
    expect(series.data).toHaveLength(3);
    expect(series.totals).toMatchObject(sum(() => true));

    const day = hour.slice(0, 10);
    const byDay = (
      await admin(
        'GET',
        `/admin/usage/series?granularity=day&owner=${owner}&group_by=model&start=${day}&end=${day}`,
      )
    ).json();
    expect(byDay.data).toEqual([
      expect.objectContaining({ period: day, model: 'mock-large', requests: 1 }),
      expect.objectContaining({ period: day, model: 'mock-small', ...sum((r) => r.model === 'mock-small') }),
    ]);
    expect(byDay.data[0]).not.toHaveProperty('key_id');
    const oneKey = (
      await admin('GET', `/admin/usage/series?key_id=${b.id}&group_by=&start=${hour}&end=${hour}`)
    ).json();
    expect(oneKey.data).toEqual([expect.objectContaining({ period: hour, requests: 1 })]);

    const csv = await admin(
      'GET',
      `/admin/usage/series?owner=${owner}&group_by=key_id&format=csv&start=${hour}&end=${hour}`,
    );
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toContain('attachment');
    const lines = csv.text.trimEnd().split('\r\n');
    expect(lines[0]).toMatch(/^period,owner,key_id,model,requests,/);
    expect(lines).toHaveLength(3);
    expect(lines.slice(1).some((l) => l.startsWith(`${hour},,${a.id},,3,`))).toBe(true);
    expect(lines.slice(1).some((l) => l.startsWith(`${hour},,${b.id},,1,`))).toBe(true);
  });

  it('refuses bad queries with a 400 naming the parameter', async () => {
    const bad: Array<[string, string]> = [
      ['granularity=week', 'granularity'],
      ['start=2026-02-30', 'start'],
      ['start=2026-12-04T24', 'start'],
      ['start=2026-12-05T00&end=2026-12-04T23', 'start'],
      ['start=2026-01-01T00&end=2026-03-01T00', 'start'],
      ['granularity=day&start=2026-01-01&end=2026-06-01', 'start'],
      ['group_by=team', 'group_by'],
      ['format=xml', 'format'],
      ['owner=a%20b', 'owner'],
      ['colour=red', 'colour'],
    ];
    for (const [q, param] of bad) {
      const r = await admin('GET', `/admin/usage/series?${q}`);
      expect([q, r.status, r.json().error.param]).toEqual([q, 400, param]);
    }
  });
});

describe('hourly aggregates', () => {
  /**
   * An HTTP proxy in front of dynalite that lets the first hourly-aggregate UpdateItem through and
   * then cuts the connection before the answer reaches the service: the write landed, the writer
   * does not know, and retries it.
   */
  async function lossyProxy(
    target: string,
  ): Promise<{ url: string; cut: () => number; close: () => Promise<void> }> {
    const t = new URL(target);
    let cuts = 0;
    let armed = true;
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const drop =
          armed && String(req.headers['x-amz-target']).endsWith('.UpdateItem') && body.includes('HOUR#');
        const up = httpRequest(
          { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
          (ur) => {
            const out: Buffer[] = [];
            ur.on('data', (c: Buffer) => out.push(c));
            ur.on('end', () => {
              if (drop) {
                armed = false;
                cuts++;
                req.socket.destroy();
                return;
              }
              res.writeHead(ur.statusCode ?? 500, ur.headers);
              res.end(Buffer.concat(out));
            });
          },
        );
        up.on('error', () => req.socket.destroy());
        up.end(body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    return {
      url: `http://127.0.0.1:${port}`,
      cut: () => cuts,
      close: () =>
        new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        }),
    };
  }

  it('counts a write whose answer was lost once, not twice', async () => {
    const proxy = await lossyProxy(stack.env.AWS_ENDPOINT_URL_DYNAMODB as string);
    const lossy = await startTestService({ stack, config, env: { AWS_ENDPOINT_URL_DYNAMODB: proxy.url } });
    try {
      const owner = `lossy-${randomUUID().slice(0, 8)}`;
      const { key, id } = await svc.createKey({ owner });
      for (let i = 0; i < 3; i++)
        expect(
          (
            await lossy.http('POST', '/v1/chat/completions', {
              key,
              body: { model: 'mock-small', messages: [{ role: 'user', content: `l${i}` }] },
            })
          ).status,
        ).toBe(200);
      await lossy.server.runtime.usage.flush();
      await eventually(() => lossy.server.runtime.usage.pending === 0, 10_000);
      expect(proxy.cut()).toBe(1);
      const s = (await admin('GET', `/admin/usage/series?owner=${owner}&group_by=key_id`)).json();
      expect(s.data).toEqual([expect.objectContaining({ key_id: id, requests: 3 })]);
    } finally {
      await lossy.stop();
      process.env.AWS_ENDPOINT_URL_DYNAMODB = stack.env.AWS_ENDPOINT_URL_DYNAMODB;
      await proxy.close();
    }
  }, 30_000);
});

describe('overview', () => {
  it('totals this hour and the last 24 hours over every owner, with latency percentiles', async () => {
    const before = (await admin('GET', '/admin/overview')).json();
    const { key } = await svc.createKey();
    upstream.enqueue('mock-small', { kind: 'error', status: 400, message: 'bad request upstream' });
    expect((await chat(key, 'mock-small', 'fails')).status).toBe(400);
    expect((await chat(key, 'mock-small', 'works')).status).toBe(200);
    const after = await eventually(async () => {
      const o = (await admin('GET', '/admin/overview')).json();
      return o.day.requests >= before.day.requests + 2 ? o : undefined;
    });
    expect(after.hour.requests).toBeGreaterThanOrEqual(2);
    expect(after.day.errors).toBeGreaterThanOrEqual(before.day.errors + 1);
    expect(after.day.latency_ms.p50).toBeGreaterThan(0);
    expect(after.day.latency_ms.p99).toBeGreaterThanOrEqual(after.day.latency_ms.p50);
    expect(Date.parse(after.day.since)).toBe(Date.parse(after.hour.since) - 23 * 3_600_000);
    expect(after.series.length).toBeGreaterThanOrEqual(1);
  });
});

describe('playground keys', () => {
  it('mints a short-lived key for owner playground that works on the API right away', async () => {
    const r = await admin('POST', '/admin/playground/keys', { ttl_seconds: 600 });
    expect(r.status).toBe(201);
    const k = r.json();
    expect(k).toMatchObject({ owner: 'playground', tier: 'basic', revoked: false });
    expect(Math.abs(Date.parse(k.expires_at) - (Date.now() + 600_000))).toBeLessThan(5000);
    expect((await chat(k.key, 'mock-small', 'hi from the playground')).status).toBe(200);
    for (const [body, param] of [
      [{ ttl_seconds: 5 }, 'ttl_seconds'],
      [{ ttl_seconds: 1.5 }, 'ttl_seconds'],
      [{ owner: 'me' }, 'owner'],
    ] as const) {
      const bad = await admin('POST', '/admin/playground/keys', body);
      expect([bad.status, bad.json().error.param]).toEqual([400, param]);
    }
    expect((await svc.http('POST', '/admin/playground/keys', { key: DEV_KEY, body: {} })).status).toBe(403);
  });

  it('refuses an expiring key from its expiry on, to the millisecond, even while it is cached', async () => {
    const rt = svc.server.runtime;
    const store = new KeyStore(rt.doc, rt.env.tables.apiKeys);
    // A cache far longer than the key lives: only the expiry check can refuse it.
    const auth = new Authenticator(store, rt.config, { ttlMs: 60_000 });
    const expiresAt = new Date(Date.now() + 1500);
    const { key, record } = await store.create({ owner: 'shortlived', tier: 'basic', expiresAt });
    expect(record.expiresAt).toBe(expiresAt.toISOString());
    expect(await auth.authenticate(key)).toMatchObject({ owner: 'shortlived' });
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt.getTime() - Date.now() - 100)));
    expect(await auth.authenticate(key)).not.toBeNull();
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt.getTime() - Date.now())));
    expect(await auth.authenticate(key)).toBeNull();
    // A fresh read refuses it too, and the service answers 401.
    expect(await new Authenticator(store, rt.config).authenticate(key)).toBeNull();
    expect((await chat(key, 'mock-small', 'too late')).status).toBe(401);
    const listed = (await admin('GET', '/admin/keys?owner=shortlived')).json().data;
    expect(listed[0].expires_at).toBe(expiresAt.toISOString());
  });
});

describe('failed jobs', () => {
  it('lists the most recent failed jobs, newest first, with their errors and without their requests', async () => {
    const rt = svc.server.runtime;
    const store = new JobStore(rt.doc, rt.env.tables.jobs);
    const now = Date.now();
    const job = (i: number): JobRow => ({
      jobId: `job_${randomUUID().replace(/-/g, '')}${i.toString(16)}`,
      owner: 'jobs-owner',
      keyId: 'key_jobs',
      principal: {
        keyId: 'key_jobs',
        owner: 'jobs-owner',
        tier: 'basic',
        limits: {},
        models: ['*'],
        maxTokensCap: undefined,
      },
      model: 'mock-small',
      status: 'queued',
      request: JSON.stringify({
        model: 'mock-small',
        messages: [{ role: 'user', content: 'secret prompt' }],
      }),
      requestHash: 'h',
      createdAt: now - 10_000 + i,
      expiresAt: Math.floor(now / 1000) + 3600,
    });
    const first = job(1);
    const second = job(2);
    const fine = job(3);
    for (const j of [first, second, fine]) expect(await store.create(j)).toBe(true);
    // One fails in a worker attempt, one after its message died (DLQ); one completes.
    const claimed = await store.claim(first.jobId, now, now + 60_000);
    expect(claimed.kind).toBe('claimed');
    const err = {
      message: 'bad logit_bias',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_value',
      status: 400,
    };
    expect(await store.fail(first.jobId, 1, now - 2000, err, undefined)).toBe(true);
    const dead = await store.failDead(second.jobId, now - 1000, () => ({
      message: 'the job failed 3 times',
      type: 'server_error',
      param: null,
      code: 'job_dead_lettered',
      status: 500,
    }));
    expect(dead.kind).toBe('failed');
    await store.claim(fine.jobId, now, now + 60_000);
    await store.complete(
      fine.jobId,
      1,
      now,
      { id: 'c', object: 'chat.completion', created: 0, model: 'm', choices: [] },
      undefined,
    );

    const r = await eventually(async () => {
      const list = (await admin('GET', '/admin/jobs/failed?limit=50')).json().data as Array<{ id: string }>;
      const mine = list.filter((j) => [first.jobId, second.jobId].includes(j.id));
      return mine.length === 2 ? list : undefined;
    });
    const ids = r.map((j) => j.id);
    expect(ids).not.toContain(fine.jobId);
    expect(ids.indexOf(second.jobId)).toBeLessThan(ids.indexOf(first.jobId));
    expect(r.find((j) => j.id === first.jobId)).toMatchObject({
      status: 'failed',
      owner: 'jobs-owner',
      model: 'mock-small',
      attempts: 1,
      error: { code: 'invalid_value', status: 400, message: 'bad logit_bias' },
    });
    expect(JSON.stringify(r)).not.toContain('secret prompt');
    for (const q of ['limit=0', 'limit=101', 'limit=x']) {
      const bad = await admin('GET', `/admin/jobs/failed?${q}`);
      expect([bad.status, bad.json().error.param]).toEqual([400, 'limit']);
    }
  });
});

describe('console routes', () => {
  it('serves the page and its assets with a strict Content-Security-Policy', async () => {
    const page = await svc.http('GET', '/console', { key: null });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(csp).toContain("require-trusted-types-for 'script'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const js = await svc.http('GET', '/console/assets/app-ABCDEFGH.js', { key: null });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(js.headers.get('cache-control')).toContain('immutable');
    const again = await svc.http('GET', '/console/assets/app-ABCDEFGH.js', {
      key: null,
      headers: { 'if-none-match': js.headers.get('etag') ?? '' },
    });
    expect(again.status).toBe(304);
    expect((await svc.http('GET', '/console/assets/nope.js', { key: null })).status).toBe(404);
    expect((await svc.http('GET', '/console/assets/index.html', { key: null })).status).toBe(404);
    expect((await svc.http('POST', '/console', { key: null, body: {} })).status).toBe(405);
  });

  it('is off unless TOLLGATE_CONSOLE_ENABLED=true, and says when it is on but not built', async () => {
    const off = await startTestService({
      stack,
      config,
      // This suite's own service runs with it on (and so the process environment, meanwhile).
      env: { TOLLGATE_CONSOLE_ENABLED: 'false' },
      plugins: [consoleRoutes({ assets: () => ASSETS })],
    });
    const unbuilt = await startTestService({
      stack,
      config,
      env: { TOLLGATE_CONSOLE_ENABLED: 'true' },
      plugins: [consoleRoutes({ assets: () => null })],
    });
    try {
      const r = await off.http('GET', '/console', { key: null });
      expect([r.status, r.json().error.code]).toEqual([404, 'unknown_url']);
      const u = await unbuilt.http('GET', '/console', { key: null });
      expect([u.status, u.json().error.code]).toEqual([503, 'console_not_built']);
    } finally {
      await off.stop();
      await unbuilt.stop();
    }
  });
});

describe('catalogue', () => {
  it('lists tiers and models for the console forms', async () => {
    const c = (await admin('GET', '/admin/catalogue')).json();
    expect(c.default_tier).toBe('basic');
    expect(Object.keys(c.tiers)).toEqual(['basic', 'unlimited']);
    expect(c.models.map((m: { id: string }) => m.id)).toEqual(['mock-small', 'mock-large']);
    expect(c.models[0].pricing).toEqual({ input_per_1m: 2, output_per_1m: 8, cached_input_per_1m: 1 });
  });
});
