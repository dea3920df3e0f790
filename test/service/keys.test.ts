import { createHash } from 'node:crypto';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { LocalStack } from '../../container/src/local/stack';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import {
  ADMIN_KEY,
  eventually,
  mockModel,
  startTestService,
  startTestStack,
  type TestService,
} from '../helpers/service';

let upstream: MockUpstream;
let stack: LocalStack;
let a: TestService;
let b: TestService;

beforeAll(async () => {
  upstream = await startMockUpstream();
  stack = await startTestStack('keys');
  const config = {
    models: [
      mockModel(upstream, 'mock-small'),
      mockModel(upstream, 'mock-large', { contextWindow: 100_000 }),
    ],
    tiers: {
      basic: { limits: { rpm: 1000 }, models: ['mock-small'], maxTokensCap: 50 },
      premium: { limits: { rpm: 5000 }, models: ['*'] },
    },
    defaultTier: 'basic',
    auto: {
      rules: [{ tiers: ['premium'], minPromptTokens: 200, model: 'mock-large' }],
      default: 'mock-small',
    },
  };
  a = await startTestService({ stack, config });
  b = await startTestService({ stack, config });
});

afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await stack?.stop();
  await upstream?.close();
});

beforeEach(() => upstream.reset());

const chat = (svc: TestService, key: string | null, body: Record<string, unknown> = {}) =>
  svc.http('POST', '/v1/chat/completions', {
    key,
    body: { model: 'mock-small', messages: [{ role: 'user', content: 'hi' }], ...body },
  });

describe('admin key API', () => {
  it('creates a key shown once and stores only its SHA-256', async () => {
    const r = await a.http('POST', '/admin/keys', {
      key: ADMIN_KEY,
      body: { owner: 'acme', tier: 'premium', limits: { rpm: 10 } },
    });
    expect(r.status).toBe(201);
    const created = r.json();
    expect(created.key).toMatch(/^sk-tg-[A-Za-z0-9]{40}$/);
    expect(created).toMatchObject({ owner: 'acme', tier: 'premium', limits: { rpm: 10 }, revoked: false });
    const listed = (await a.http('GET', '/admin/keys?owner=acme', { key: ADMIN_KEY })).json();
    expect(listed.data.map((k: { id: string }) => k.id)).toContain(created.id);
    expect(JSON.stringify(listed)).not.toContain(created.key);
    const items =
      (await a.server.runtime.doc.send(new ScanCommand({ TableName: a.server.runtime.env.tables.apiKeys })))
        .Items ?? [];
    expect(JSON.stringify(items)).not.toContain(created.key);
    expect(items.some((i) => i.keyHash === createHash('sha256').update(created.key).digest('hex'))).toBe(
      true,
    );
    expect((await chat(a, created.key)).status).toBe(200);
  });

  it('updates limits and models with PATCH', async () => {
    const { id, key } = await a.createKey({ tier: 'premium' });
    const r = await a.http('PATCH', `/admin/keys/${id}`, {
      key: ADMIN_KEY,
      body: { limits: { rpm: 1 }, models: ['mock-large'] },
    });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ limits: { rpm: 1 }, models: ['mock-large'] });
    const denied = await chat(a, key);
    expect(denied.status).toBe(403);
    expect(denied.json().error.code).toBe('model_not_allowed');
  });

  it('stops a revoked key within 2 s on every replica', async () => {
    const { id, key } = await a.createKey();
    expect((await chat(b, key)).status).toBe(200);
    const t0 = Date.now();
    expect((await a.http('DELETE', `/admin/keys/${id}`, { key: ADMIN_KEY })).json()).toMatchObject({
      revoked: true,
      deleted: true,
    });
    expect((await chat(a, key)).status).toBe(401);
    await eventually(async () => (await chat(b, key)).status === 401, 2000, 50);
    expect(Date.now() - t0).toBeLessThanOrEqual(2000);
  });

  it('refuses admin routes to user keys (403) and to no key (401)', async () => {
    const { key } = await a.createKey();
    const r = await a.http('GET', '/admin/keys', { key });
    expect(r.status).toBe(403);
    expect(r.json().error.code).toBe('admin_only');
    expect((await a.http('GET', '/admin/keys', { key: null })).status).toBe(401);
    expect((await a.http('GET', '/admin/keys', { key: 'sk-tg-wrong' })).status).toBe(401);
  });

  it('refuses the admin key on user routes with 403', async () => {
    const r = await chat(a, ADMIN_KEY);
    expect(r.status).toBe(403);
  });

  it.each([
    [{}, 'owner'],
    [{ owner: '' }, 'owner'],
    [{ owner: 'x y' }, 'owner'],
    [{ owner: 'acme', tier: 'gold' }, 'tier'],
    [{ owner: 'acme', tier: 'constructor' }, 'tier'],
    [{ owner: 'acme', tier: '__proto__' }, 'tier'],
    [{ owner: 'acme', limits: { rpm: 1e308 } }, 'limits.rpm'],
    [{ owner: 'acme', limits: { daily_tokens: 2 ** 60 } }, 'limits.daily_tokens'],
    [{ owner: 'acme', limits: { monthly_budget_usd: 1e16 } }, 'limits.monthly_budget_usd'],
    [{ owner: 'acme', limits: { rpm: -1 } }, 'limits.rpm'],
    [{ owner: 'acme', limits: { rpm: 1.5 } }, 'limits.rpm'],
    [{ owner: 'acme', limits: { bananas: 1 } }, 'limits.bananas'],
    [{ owner: 'acme', limits: 'lots' }, 'limits'],
    [{ owner: 'acme', models: 'mock-small' }, 'models'],
    [{ owner: 'acme', models: ['gpt-9'] }, 'models[0]'],
    [{ owner: 'acme', colour: 'red' }, 'colour'],
  ])('rejects the malformed admin payload %j with 400 naming %s', async (payload, param) => {
    const r = await a.http('POST', '/admin/keys', { key: ADMIN_KEY, body: payload });
    expect(r.status).toBe(400);
    expect(r.json().error.param).toBe(param);
  });

  it('answers 404 for PATCH or DELETE of an unknown key id', async () => {
    expect(
      (await a.http('PATCH', '/admin/keys/key_nope', { key: ADMIN_KEY, body: { limits: { rpm: 5 } } }))
        .status,
    ).toBe(404);
    expect((await a.http('DELETE', '/admin/keys/key_nope', { key: ADMIN_KEY })).status).toBe(404);
  });
});

describe('tiers and cost controls', () => {
  it('caps max_tokens at the tier limit before the request goes upstream', async () => {
    const { key } = await a.createKey({ tier: 'basic' });
    expect((await chat(a, key, { max_tokens: 5000 })).status).toBe(200);
    expect(upstream.requests[0]?.body.max_tokens).toBe(50);
    expect((await chat(a, key)).status).toBe(200);
    expect(upstream.requests[1]?.body.max_tokens).toBe(50);
  });

  it('restricts models to the tier list and lists only those in /v1/models', async () => {
    const { key } = await a.createKey({ tier: 'basic' });
    const r = await chat(a, key, { model: 'mock-large' });
    expect(r.status).toBe(403);
    expect(r.json().error).toMatchObject({ code: 'model_not_allowed', param: 'model' });
    const models = (await a.http('GET', '/v1/models', { key })).json();
    expect(models.data.map((m: { id: string }) => m.id)).toEqual(['mock-small']);
  });

  it('routes model "auto" by tier and prompt size', async () => {
    const { key: premium } = await a.createKey({ tier: 'premium' });
    const long = 'word '.repeat(400);
    const big = await chat(a, premium, { model: 'auto', messages: [{ role: 'user', content: long }] });
    expect(big.json().model).toBe('mock-large');
    const small = await chat(a, premium, { model: 'auto' });
    expect(small.json().model).toBe('mock-small');
    const { key: basic } = await a.createKey({ tier: 'basic' });
    expect(
      (await chat(a, basic, { model: 'auto', messages: [{ role: 'user', content: long }] })).json().model,
    ).toBe('mock-small');
  });

  it('trims the middle of a conversation that exceeds the context window, keeping system and latest turns', async () => {
    const { key } = await a.createKey({ tier: 'premium' });
    const filler = 'lorem ipsum dolor sit amet '.repeat(600); // ~3,000 tokens each; the window is 8,192
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: `old 1 ${filler}` },
      { role: 'assistant', content: `old 2 ${filler}` },
      { role: 'user', content: `old 3 ${filler}` },
      { role: 'assistant', content: `recent ${filler}` },
      { role: 'user', content: 'latest question' },
    ];
    const r = await chat(a, key, { messages, max_tokens: 100 });
    expect(r.status).toBe(200);
    const sent = upstream.requests[0]?.body.messages as Array<{ role: string; content: string }>;
    expect(sent[0]).toEqual({ role: 'system', content: 'You are terse.' });
    expect(sent.at(-1)?.content).toBe('latest question');
    expect(sent.length).toBeLessThan(messages.length);
    expect(sent.some((m) => m.content.startsWith('old 1'))).toBe(false);
  });

  it('rejects with 400 context_length_exceeded when even the last message does not fit', async () => {
    const { key } = await a.createKey({ tier: 'premium' });
    const r = await chat(a, key, { messages: [{ role: 'user', content: 'lorem ipsum '.repeat(9000) }] });
    expect(r.status).toBe(400);
    expect(r.json().error).toMatchObject({ code: 'context_length_exceeded', param: 'messages' });
    expect(upstream.requests).toHaveLength(0);
  });
});
