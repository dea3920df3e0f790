import { Redis } from 'ioredis';
import { canonicalJson } from '../../container/src/cache/response-cache';
import { trimMessages } from '../../container/src/chat/prepare';
import { readEnv } from '../../container/src/config/env';
import { parseServiceConfig } from '../../container/src/config/service-config';
import { ConfigError } from '../../container/src/errors';
import { nestsDeeperThan } from '../../container/src/http/json-body';
import {
  type AdmitArgs,
  formatDuration,
  type LimiterStore,
  MemoryLimiterStore,
  RedisLimiterStore,
} from '../../container/src/limits/limiter';
import { type RedisServer, startRedisServer } from '../../container/src/local/redis';
import { ConcurrencyLimiter } from '../../container/src/providers/concurrency';
import { countMessageTokens, countTextTokens } from '../../container/src/tokens/count';
import { costUsd } from '../../container/src/usage/pricing';
import type { ChatMessage } from '../../container/src/wire/chat';

describe('service config validation', () => {
  it('names every bad field in one message', () => {
    const bad = {
      models: [{ id: '', timeoutMs: 0, pricing: { input: -1 } }],
      cache: { ttlSeconds: 'long' },
      bogus: 1,
    };
    expect(() => parseServiceConfig(bad)).toThrow(ConfigError);
    try {
      parseServiceConfig(bad);
    } catch (err) {
      const m = (err as Error).message;
      for (const field of [
        'models.0.id',
        'models.0.timeoutMs',
        'models.0.pricing.input',
        'cache.ttlSeconds',
        'bogus',
      ])
        expect(m).toContain(field);
    }
  });

  it('refuses fallbacks to unknown models and duplicate ids', () => {
    expect(() =>
      parseServiceConfig({
        models: [
          { id: 'a', provider: 'simulator', fallbacks: ['b'] },
          { id: 'a', provider: 'simulator' },
        ],
      }),
    ).toThrow(/models\.1\.id: duplicate model id 'a'[\s\S]*models\.0\.fallbacks\.0: unknown model 'b'/);
  });

  it('names the bad environment variable', () => {
    expect(() => readEnv({ PORT: 'eighty', TOLLGATE_LIMITER_FAILURE_MODE: 'maybe' })).toThrow(
      /PORT[\s\S]*TOLLGATE_LIMITER_FAILURE_MODE/,
    );
  });

  it('builds a TLS Redis URL with the auth token from host settings', () => {
    const env = readEnv({
      REDIS_HOST: 'cache.internal',
      REDIS_PORT: '6380',
      REDIS_TLS: 'true',
      REDIS_AUTH_TOKEN: 'p@ss/word',
    });
    expect(env.redisUrl).toBe('rediss://:p%40ss%2Fword@cache.internal:6380');
  });
});

describe('context trimming', () => {
  const m = (role: ChatMessage['role'], content: string, extra: Partial<ChatMessage> = {}): ChatMessage => ({
    role,
    content,
    ...extra,
  });

  it('keeps system messages and the latest turns, dropping the oldest middle ones', () => {
    const long = 'word '.repeat(200);
    const msgs = [
      m('system', 'sys'),
      m('user', `1 ${long}`),
      m('assistant', `2 ${long}`),
      m('user', `3 ${long}`),
      m('user', 'last'),
    ];
    const budget =
      3 + countMessageTokens(msgs[0]!) + countMessageTokens(msgs[3]!) + countMessageTokens(msgs[4]!);
    expect(trimMessages(msgs, budget)?.map((x) => String(x.content).slice(0, 2))).toEqual(['sy', '3 ', 'la']);
  });

  it('drops tool results together with the assistant turn that called them', () => {
    const msgs = [
      m('user', 'q'),
      m('assistant', '', {
        content: null,
        tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }],
      }),
      m('tool', 'result '.repeat(100), { tool_call_id: 'c1' }),
      m('user', 'final'),
    ];
    const kept = trimMessages(msgs, 3 + countMessageTokens(msgs[3]!) + 2);
    expect(kept?.map((x) => x.role)).toEqual(['user']);
  });

  it('keeps the calling assistant turn when the conversation ends with its tool results', () => {
    const call = (id: string) => ({
      id,
      type: 'function' as const,
      function: { name: 'f', arguments: '{}' },
    });
    const msgs = [
      m('system', 'sys'),
      m('user', 'old '.repeat(300)),
      m('assistant', '', { content: null, tool_calls: [call('c1'), call('c2')] }),
      m('tool', 'r1', { tool_call_id: 'c1' }),
      m('tool', 'r2', { tool_call_id: 'c2' }),
    ];
    const needed = [0, 2, 3, 4].reduce((n, i) => n + countMessageTokens(msgs[i]!), 3);
    const kept = trimMessages(msgs, needed);
    expect(kept?.map((x) => x.role)).toEqual(['system', 'assistant', 'tool', 'tool']);
    // Less than that cannot be trimmed into a valid conversation.
    expect(trimMessages(msgs, needed - 1)).toBeNull();
  });

  it('returns null when even the last message does not fit', () => {
    expect(trimMessages([m('user', 'word '.repeat(100))], 10)).toBeNull();
  });
});

describe('JSON nesting depth', () => {
  it('counts arrays and objects, not brackets inside strings or after escapes', () => {
    const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(nestsDeeperThan(nested(128), 128)).toBe(false);
    expect(nestsDeeperThan(nested(129), 128)).toBe(true);
    expect(nestsDeeperThan(`{"a":${nested(100)},"b":{"c":${nested(100)}}}`, 128)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify({ s: '['.repeat(1000) }), 128)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify({ s: `\\"${'{'.repeat(1000)}` }), 128)).toBe(false);
    expect(nestsDeeperThan(`{"s":"\\\\",${'"x":['.repeat(200)}`, 128)).toBe(true);
  });
});

describe('cache keys', () => {
  it('are the same whatever the key order, and differ for any value change', () => {
    expect(canonicalJson({ b: 1, a: [{ y: 2, x: 1 }] })).toBe(canonicalJson({ a: [{ x: 1, y: 2 }], b: 1 }));
    expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: 1.5 }));
  });
});

describe('pricing', () => {
  it('charges cached input at its own price', () => {
    const model = { pricing: { input: 2, output: 8, cachedInput: 0.5 } };
    expect(costUsd(model, { promptTokens: 1000, completionTokens: 100, cachedTokens: 400 })).toBe(
      (600 * 2 + 400 * 0.5 + 100 * 8) / 1e6,
    );
  });
});

describe('rate-limit reset format', () => {
  it.each([
    [20, '20ms'],
    [1500, '1.5s'],
    [360_000, '6m0s'],
  ])('formats %d ms as %s', (ms, out) => expect(formatDuration(ms)).toBe(out));
});

describe('ConcurrencyLimiter', () => {
  it('runs up to the limit, queues up to the bound, then fails fast with 503', async () => {
    const lim = new ConcurrencyLimiter('m', 2, 1, 10_000);
    const signal = new AbortController().signal;
    const r1 = await lim.acquire(signal);
    await lim.acquire(signal);
    const waiting = lim.acquire(signal);
    await expect(lim.acquire(signal)).rejects.toMatchObject({ status: 503, code: 'server_busy' });
    expect(lim.queued).toBe(1);
    r1();
    await expect(waiting).resolves.toBeInstanceOf(Function);
    expect(lim.inFlight).toBe(2);
  });

  it('gives up a queued wait when the caller aborts or the queue timeout passes', async () => {
    const lim = new ConcurrencyLimiter('m', 1, 5, 50);
    const held = await lim.acquire(new AbortController().signal);
    const ac = new AbortController();
    const a = lim.acquire(ac.signal);
    ac.abort();
    await expect(a).rejects.toThrow(/closed the connection/);
    await expect(lim.acquire(new AbortController().signal)).rejects.toMatchObject({ status: 503 });
    expect(lim.queued).toBe(0);
    held();
    expect(lim.inFlight).toBe(0);
  });
});

describe.each([
  ['Redis (Lua)', 'redis'],
  ['in-process', 'memory'],
])('limiter store: %s', (_name, kind) => {
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
    now: 1_800_000_000_000 + 10_000,
    rpm: 0,
    tpm: 0,
    daily: 0,
    monthlyMicro: 0,
    tokens: 0,
    costMicro: 0,
    msToDayEnd: 1000,
    msToMonthEnd: 2000,
    ...over,
  });

  it('admits exactly the RPM limit within a window and reports the wait', async () => {
    const a = args({ rpm: 5 });
    const outs = [];
    for (let i = 0; i < 7; i++) outs.push(await store.admit(a));
    expect(outs.map((o) => o.denied)).toEqual(['', '', '', '', '', 'rpm', 'rpm']);
    expect(outs[4]?.rpmRemaining).toBe(0);
    expect(outs[5]?.waitMs).toBeGreaterThan(0);
  });

  it('weights the previous window: half a window later, half the previous count still counts', async () => {
    const a = args({ rpm: 10, now: 1_800_000_000_000 + 59_000 });
    for (let i = 0; i < 10; i++) expect((await store.admit(a)).denied).toBe('');
    const later = { ...a, now: 1_800_000_000_000 + 60_000 + 30_000 };
    const outs = [];
    for (let i = 0; i < 7; i++) outs.push((await store.admit(later)).denied);
    expect(outs).toEqual(['', '', '', '', '', 'rpm', 'rpm']);
  });

  it('admits exactly the limit for a burst that straddles the minute boundary', async () => {
    const a = args({ rpm: 50, now: 1_800_000_000_000 + 59_990 });
    let admitted = 0;
    for (let i = 0; i < 30; i++) if ((await store.admit(a)).denied === '') admitted++;
    const after = { ...a, now: 1_800_000_000_000 + 60_000 + 5 };
    for (let i = 0; i < 40; i++) if ((await store.admit(after)).denied === '') admitted++;
    expect(admitted).toBe(50);
  });

  it('checks all four limits and reserves nothing when one denies', async () => {
    const a = args({ rpm: 100, tpm: 1000, daily: 150, tokens: 100 });
    expect((await store.admit(a)).denied).toBe('');
    expect((await store.admit(a)).denied).toBe('daily');
    // The denied call reserved no RPM or TPM.
    const out = await store.admit({ ...a, tokens: 50 });
    expect(out.denied).toBe('');
    expect(out.rpmRemaining).toBe(98);
    expect(out.tpmRemaining).toBe(1000 - 150);
  });

  it('enforces the monthly budget in micro-USD', async () => {
    const a = args({ monthlyMicro: 1000, costMicro: 600 });
    expect((await store.admit(a)).denied).toBe('');
    const second = await store.admit(a);
    expect(second.denied).toBe('monthly');
    expect(second.waitMs).toBe(2000);
  });

  it('reconciles: giving back unused tokens lets the next request in', async () => {
    const a = args({ tpm: 100, tokens: 80 });
    expect((await store.admit(a)).denied).toBe('');
    expect((await store.admit(a)).denied).toBe('tpm');
    await store.reconcile(a.keyId, a.now, -70, 0);
    expect((await store.admit(a)).denied).toBe('');
  });
});

describe('token counting', () => {
  it('counts ordinary text exactly as the tokenizer does', () => {
    expect(countTextTokens('Hello, how are you today?')).toBe(7);
  });

  it('stays linear on pathological input (1 MB without spaces, 1 MB of whitespace, emoji runs)', () => {
    // Quadratic BPE would take many minutes here; jest's timeout is the guard.
    const x = countTextTokens('x'.repeat(1_000_000));
    const e = countTextTokens('😀'.repeat(8000));
    const w = countTextTokens(`hi${' '.repeat(500_000)}there${'\n \t'.repeat(170_000)}`);
    // Close to the exact counts (125,000 and 8,000); the point is that it returns at all.
    expect(x).toBeGreaterThan(100_000);
    expect(e).toBeGreaterThan(7000);
    expect(w).toBeGreaterThan(1000);
  });
});
