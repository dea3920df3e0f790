import type OpenAI from 'openai';
import type { LocalStack } from '../../container/src/local/stack';
import { spawnServer } from '../helpers/child-server';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { ADMIN_KEY, DEV_KEY, startTestService, startTestStack } from '../helpers/service';

let upstream: MockUpstream;
let stack: LocalStack;

beforeAll(async () => {
  upstream = await startMockUpstream();
  stack = await startTestStack('modes');
});

afterAll(async () => {
  await stack?.stop();
  await upstream?.close();
});

describe('with no upstream configured', () => {
  it('serves the clearly labelled, deterministic simulator with real token counts, streaming included', async () => {
    const svc = await startTestService({ stack, config: { models: [] }, env: { OPENAI_BASE_URL: '' } });
    try {
      const client = svc.client();
      const models = await client.models.list();
      // The embedding model serves /v1/embeddings only (see embeddings.test.ts).
      expect(models.data.map((m) => m.id)).toEqual(['simulator', 'simulator-large', 'simulator-embedding']);
      const a = await client.chat.completions.create({
        model: 'simulator',
        messages: [{ role: 'user', content: 'What is your return policy?' }],
      });
      const b = await client.chat.completions.create({
        model: 'simulator',
        messages: [{ role: 'user', content: 'What is your return policy?' }],
      });
      expect(a.choices[0]?.message.content).toBe(b.choices[0]?.message.content);
      expect(a.choices[0]?.message.content).toMatch(/simulat/i);
      expect(a.choices[0]?.message.content).toContain('What is your return policy?');
      expect(a.usage?.completion_tokens).toBeGreaterThan(10);
      expect(a.usage?.prompt_tokens).toBeGreaterThan(5);
      const stream = await client.chat.completions.create({
        model: 'simulator',
        messages: [{ role: 'user', content: 'What is your return policy?' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let chunks = 0;
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const c of stream) {
        text += c.choices[0]?.delta.content ?? '';
        chunks++;
        if (c.usage) usage = c.usage;
      }
      expect(text).toBe(a.choices[0]?.message.content);
      expect(chunks).toBeGreaterThan(10);
      expect(usage?.completion_tokens).toBe(a.usage?.completion_tokens);
      // Characters that span several tokens (an emoji with a skin tone) and special-token text
      // come back intact, streamed or not.
      const odd = 'Is 👍🏽 ok after <|endoftext|>? 日本語';
      const plain = await client.chat.completions.create({
        model: 'simulator',
        messages: [{ role: 'user', content: odd }],
      });
      expect(plain.choices[0]?.message.content).toContain(odd);
      let streamed = '';
      for await (const c of await client.chat.completions.create({
        model: 'simulator',
        messages: [{ role: 'user', content: odd }],
        stream: true,
      }))
        streamed += c.choices[0]?.delta.content ?? '';
      expect(streamed).toBe(plain.choices[0]?.message.content);
    } finally {
      await svc.stop();
    }
  });
});

describe('with only OPENAI_BASE_URL and OPENAI_API_KEY set', () => {
  it('serves every model the upstream lists, through the openai SDK', async () => {
    upstream.models = ['up-alpha', 'up-beta'];
    const svc = await startTestService({
      stack,
      config: {},
      env: { OPENAI_BASE_URL: upstream.baseUrl, OPENAI_API_KEY: 'sk-upstream-secret' },
    });
    try {
      const ids = (await svc.client().models.list()).data.map((m) => m.id);
      expect(ids).toEqual(['up-alpha', 'up-beta']);
      upstream.enqueue('up-beta', { kind: 'reply', content: 'beta here' });
      const r = await svc
        .client()
        .chat.completions.create({ model: 'up-beta', messages: [{ role: 'user', content: 'hi' }] });
      expect(r.choices[0]?.message.content).toBe('beta here');
      const sent = upstream.requests.at(-1);
      expect(sent?.headers.authorization).toBe('Bearer sk-upstream-secret');
    } finally {
      await svc.stop();
      upstream.models = ['mock-small', 'mock-large'];
    }
  });
});

describe('without any Redis', () => {
  it('enforces limits and caches in process (single replica), and says so in /ready', async () => {
    const svc = await startTestService({
      stack,
      config: { models: [{ id: 'mock-small', provider: 'openai', baseUrl: upstream.baseUrl }] },
      env: { REDIS_URL: '' },
    });
    try {
      expect(svc.server.runtime.redis).toBeNull();
      const { key } = await svc.createKey({ limits: { rpm: 2 } });
      const body = { model: 'mock-small', messages: [{ role: 'user', content: 'hi' }], temperature: 0 };
      const statuses = [];
      for (let i = 0; i < 3; i++)
        statuses.push((await svc.http('POST', '/v1/chat/completions', { key, body })).status);
      expect(statuses).toEqual([200, 200, 429]);
      const ready = (await svc.http('GET', '/ready', { key: null })).json();
      expect(ready.dependencies.map((d: { name: string }) => d.name)).not.toContain('redis');
    } finally {
      await svc.stop();
    }
  });
});

describe('a bad config', () => {
  it('fails at start with a message naming the bad field', async () => {
    await expect(
      startTestService({
        stack,
        config: { models: [{ id: 'x', provider: 'openai', baseUrl: 'not a url', timeoutMs: -5 }] },
      }),
    ).rejects.toThrow(/models\.0\.baseUrl[\s\S]*models\.0\.timeoutMs/);
  });
});

describe('request logs', () => {
  const config = JSON.stringify({
    models: [{ id: 'mock-small', provider: 'openai', baseUrl: '', pricing: { input: 1, output: 1 } }],
  });
  const run = async (logContent: boolean) => {
    const server = await spawnServer({
      ...stack.env,
      TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
      TOLLGATE_DEV_API_KEY: DEV_KEY,
      TOLLGATE_DRAIN_GRACE_MS: '0',
      TOLLGATE_LOG_CONTENT: String(logContent),
      TOLLGATE_CONFIG_JSON: config.replace('"baseUrl":""', `"baseUrl":"${upstream.baseUrl}"`),
    });
    try {
      upstream.enqueue('mock-small', {
        kind: 'reply',
        content: 'SECRET-ANSWER',
        usage: { prompt_tokens: 7, completion_tokens: 3 },
      });
      const r = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${DEV_KEY}`,
          'content-type': 'application/json',
          'x-request-id': `log-${logContent}`,
        },
        body: JSON.stringify({ model: 'mock-small', messages: [{ role: 'user', content: 'SECRET-PROMPT' }] }),
      });
      expect(r.status).toBe(200);
      await r.text();
      await new Promise((res) => setTimeout(res, 200));
    } finally {
      await server.stop();
    }
    const lines = server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    return { lines, raw: server.output() };
  };

  it('writes one JSON line per request with id, route, status, model, latency, tokens and cost, and no content by default', async () => {
    const { lines, raw } = await run(false);
    const line = lines.find((l) => l.message === 'request' && l.requestId === 'log-false');
    expect(line).toMatchObject({
      level: 'INFO',
      service: 'tollgate-api',
      method: 'POST',
      route: '/v1/chat/completions',
      status: 200,
      model: 'mock-small',
      tokensIn: 7,
      tokensOut: 3,
      costUsd: 0.00001,
      keyId: expect.stringMatching(/^key_/),
    });
    expect(typeof line?.latencyMs).toBe('number');
    expect(raw).not.toContain('SECRET-PROMPT');
    expect(raw).not.toContain('SECRET-ANSWER');
    expect(raw).not.toContain(DEV_KEY);
    expect(raw).not.toContain(ADMIN_KEY);
  });

  it('logs prompt and completion only with TOLLGATE_LOG_CONTENT=true', async () => {
    const { lines } = await run(true);
    const line = lines.find((l) => l.message === 'request' && l.requestId === 'log-true');
    expect(JSON.stringify(line?.content)).toContain('SECRET-PROMPT');
    expect(JSON.stringify(line?.content)).toContain('SECRET-ANSWER');
  });
});
