import { startRedisServer } from '../../container/src/local/redis';
import type { LocalStack } from '../../container/src/local/stack';
import { type ChildServer, spawnServer } from '../helpers/child-server';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import {
  ADMIN_KEY,
  DEV_KEY,
  mockModel,
  startTestService,
  startTestStack,
  type TestService,
} from '../helpers/service';

let upstream: MockUpstream;
let stack: LocalStack;
let svc: TestService;
let config: Record<string, unknown>;

beforeAll(async () => {
  upstream = await startMockUpstream();
  stack = await startTestStack('limits');
  config = {
    models: [mockModel(upstream, 'mock-small', { pricing: { input: 1000, output: 1000 } })],
    tiers: { basic: { limits: {}, models: ['*'] } },
  };
  svc = await startTestService({ stack, config });
});

afterAll(async () => {
  await svc?.stop();
  await stack?.stop();
  await upstream?.close();
});

const body = (extra: Record<string, unknown> = {}) => ({
  model: 'mock-small',
  messages: [{ role: 'user', content: 'hi' }],
  max_tokens: 10,
  ...extra,
});

/** Two requests for one key, the upstream reporting `usage`, with time between them to reconcile. */
async function twoRequests(
  key: string,
  usage: { prompt_tokens: number; completion_tokens: number },
  maxTokens: number,
) {
  upstream.setDefault('mock-small', { kind: 'reply', content: 'ok', usage });
  try {
    const first = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: body({ max_tokens: maxTokens }),
    });
    await new Promise((r) => setTimeout(r, 100));
    const second = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: body({ max_tokens: maxTokens }),
    });
    return [first, second] as const;
  } finally {
    upstream.reset();
  }
}

describe('per-key limits', () => {
  it('returns 429 rate_limit_exceeded with retry-after when the RPM limit is hit, and rate headers on every response', async () => {
    const { key } = await svc.createKey({ limits: { rpm: 3 } });
    const rs = [];
    for (let i = 0; i < 4; i++)
      rs.push(await svc.http('POST', '/v1/chat/completions', { key, body: body() }));
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    expect(rs[0]?.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(rs[0]?.headers.get('x-ratelimit-remaining-requests')).toBe('2');
    expect(rs[2]?.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(rs[0]?.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?(ms|s)$|^\d+m\d+s$/);
    const limited = rs[3]!;
    expect(limited.json().error).toMatchObject({ code: 'rate_limit_exceeded', type: 'requests' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get('x-ratelimit-limit-requests')).toBe('3');
  });

  it('counts prompt + max_tokens against TPM and refuses a request larger than the limit outright', async () => {
    const { key } = await svc.createKey({ limits: { tpm: 100 } });
    const big = await svc.http('POST', '/v1/chat/completions', { key, body: body({ max_tokens: 500 }) });
    expect(big.status).toBe(429);
    expect(big.json().error.message).toMatch(/Request too large/);
    const first = await svc.http('POST', '/v1/chat/completions', { key, body: body({ max_tokens: 60 }) });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit-tokens')).toBe('100');
  });

  it('gives back the unused reservation after the response (reconciliation)', async () => {
    const { key } = await svc.createKey({ limits: { tpm: 1000 } });
    // Each reserves ~600 tokens; without reconciliation the second would exceed 1000.
    const [a, b] = await twoRequests(key, { prompt_tokens: 9, completion_tokens: 1 }, 590);
    expect([a.status, b.status]).toEqual([200, 200]);
  });

  it('enforces the daily token quota with 429 insufficient_quota until midnight UTC', async () => {
    const { key } = await svc.createKey({ limits: { daily_tokens: 40 } });
    const [first, second] = await twoRequests(key, { prompt_tokens: 15, completion_tokens: 10 }, 10);
    expect(first.status).toBe(200);
    expect(second.status).toBe(429);
    expect(second.json().error.code).toBe('insufficient_quota');
    const retryAfter = Number(second.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
  });

  it('enforces the monthly budget in USD', async () => {
    // $1000 per 1M tokens: the first costs $0.03; the second reserves ~$0.018 more than the $0.04 left allows.
    const { key } = await svc.createKey({ limits: { monthly_budget_usd: 0.04 } });
    const [first, second] = await twoRequests(key, { prompt_tokens: 20, completion_tokens: 10 }, 10);
    expect(first.status).toBe(200);
    expect(second.status).toBe(429);
    expect(second.json().error).toMatchObject({ code: 'insufficient_quota', type: 'insufficient_quota' });
    expect(second.json().error.message).toMatch(/Monthly budget/);
  });
});

describe('two service processes sharing one Redis', () => {
  let other: ChildServer;
  beforeAll(async () => {
    other = await spawnServer({
      ...stack.env,
      TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
      TOLLGATE_DEV_API_KEY: DEV_KEY,
      TOLLGATE_CONFIG_JSON: JSON.stringify(config),
    });
  }, 40_000);
  afterAll(async () => {
    await other?.stop();
  });

  it('enforces rpm=50 exactly: 200 concurrent requests across both give exactly 50 successes', async () => {
    const { key } = await svc.createKey({ limits: { rpm: 50 } });
    const send = (base: string) =>
      fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body()),
      }).then(async (r) => {
        await r.text();
        return r.status;
      });
    const statuses = await Promise.all(
      Array.from({ length: 200 }, (_, i) => send(i % 2 ? svc.url : other.url)),
    );
    expect(
      Object.entries(statuses.reduce<Record<number, number>>((c, s) => ({ ...c, [s]: (c[s] ?? 0) + 1 }), {})),
    ).toEqual([
      ['200', 50],
      ['429', 150],
    ]);
    expect(statuses.filter((s) => s === 200)).toHaveLength(50);
    expect(statuses.filter((s) => s === 429)).toHaveLength(150);
  });
});

describe('when Redis is unreachable', () => {
  it('fails open by default, fails closed when configured, and picks Redis up again without a restart', async () => {
    const redis = await startRedisServer();
    if (!redis) throw new Error('redis-server missing');
    const env = { REDIS_URL: redis.url };
    const open = await startTestService({ stack, config, env });
    const closed = await startTestService({
      stack,
      config,
      env: { ...env, TOLLGATE_LIMITER_FAILURE_MODE: 'closed' },
    });
    try {
      const { key } = await open.createKey({ limits: { rpm: 1 } });
      expect((await open.http('POST', '/v1/chat/completions', { key, body: body() })).status).toBe(200);
      expect((await open.http('POST', '/v1/chat/completions', { key, body: body() })).status).toBe(429);

      await redis.stop();
      const openRes = await open.http('POST', '/v1/chat/completions', { key, body: body() });
      expect(openRes.status).toBe(200);
      const closedRes = await closed.http('POST', '/v1/chat/completions', { key, body: body() });
      expect(closedRes.status).toBe(503);
      expect(closedRes.json().error.code).toBe('limiter_unavailable');
      expect(closedRes.headers.get('retry-after')).toBeTruthy();

      const back = await startRedisServer({ port: redis.port });
      try {
        // Fresh Redis (no persistence): the first request is admitted, the second limited again.
        let first = 0;
        for (let i = 0; i < 60 && first !== 200; i++) {
          first = (await open.http('POST', '/v1/chat/completions', { key, body: body() })).status;
          if (first !== 200) await new Promise((r) => setTimeout(r, 100));
        }
        await new Promise((r) => setTimeout(r, 2500));
        const a = await open.http('POST', '/v1/chat/completions', { key, body: body() });
        const b = await open.http('POST', '/v1/chat/completions', { key, body: body() });
        expect([a.status, b.status]).toEqual([200, 429]);
        expect(b.json().error.code).toBe('rate_limit_exceeded');
      } finally {
        await back?.stop();
      }
    } finally {
      await open.stop();
      await closed.stop();
    }
  }, 60_000);
});
