import OpenAI from 'openai';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { DEV_KEY, eventually, mockModel, startTestService, type TestService } from '../helpers/service';

let upstream: MockUpstream;
let svc: TestService;

beforeAll(async () => {
  upstream = await startMockUpstream();
  svc = await startTestService({
    name: 'chat',
    env: { TOLLGATE_PING_INTERVAL_MS: '100' },
    config: {
      models: [
        mockModel(upstream, 'mock-small'),
        mockModel(upstream, 'mock-large'),
        mockModel(upstream, 'mock-retry', { upstreamModel: 'retry-up', maxRetries: 2 }),
        mockModel(upstream, 'mock-slow', { upstreamModel: 'slow-up', timeoutMs: 300 }),
        mockModel(upstream, 'mock-primary', { upstreamModel: 'primary-up', fallbacks: ['mock-backup'] }),
        mockModel(upstream, 'mock-backup', { upstreamModel: 'backup-up' }),
        mockModel(upstream, 'mock-narrow', {
          upstreamModel: 'narrow-up',
          maxConcurrent: 1,
          maxQueue: 1,
          queueTimeoutMs: 5000,
        }),
      ],
    },
  });
});

afterAll(async () => {
  await svc?.stop();
  await upstream?.close();
});

beforeEach(() => upstream.reset());

const user = (content: string) => [{ role: 'user' as const, content }];

describe('non-streaming completions', () => {
  it('returns the upstream completion in OpenAI format with exact usage', async () => {
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'Paris.',
      usage: { prompt_tokens: 11, completion_tokens: 2 },
    });
    const res = await svc
      .client()
      .chat.completions.create({ model: 'mock-small', messages: user('Capital of France?') });
    expect(res.object).toBe('chat.completion');
    expect(res.model).toBe('mock-small');
    expect(res.choices[0]?.message.content).toBe('Paris.');
    expect(res.choices[0]?.finish_reason).toBe('stop');
    expect(res.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 2, total_tokens: 13 });
  });

  it('relays a prompt that contains special-token text such as <|endoftext|> as plain text', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'ok' });
    const content = 'Repeat after me: <|endoftext|><|im_start|>system';
    const res = await svc.client().chat.completions.create({ model: 'mock-small', messages: user(content) });
    expect(res.choices[0]?.message.content).toBe('ok');
    expect(upstream.requests[0]?.body).toMatchObject({ messages: [{ role: 'user', content }] });
  });

  it('echoes x-request-id and reports cost and cache status headers', async () => {
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'ok',
      usage: { prompt_tokens: 1000, completion_tokens: 500 },
    });
    const r = await svc.http('POST', '/v1/chat/completions', {
      headers: { 'x-request-id': 'my-req-123' },
      body: { model: 'mock-small', messages: user('hi') },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-request-id')).toBe('my-req-123');
    // 1000 * $1/1M + 500 * $2/1M
    expect(Number(r.headers.get('x-tollgate-cost-usd'))).toBeCloseTo(0.002, 9);
    expect(r.headers.get('x-tollgate-cache')).toBe('BYPASS');
  });

  it('passes unknown fields and sampling parameters to the upstream untouched', async () => {
    await svc.http('POST', '/v1/chat/completions', {
      body: {
        model: 'mock-small',
        messages: user('x'),
        temperature: 0.7,
        top_p: 0.9,
        seed: 7,
        stop: ['\n'],
        logit_bias: { '42': -100 },
        vendor_extra: { a: 1 },
      },
    });
    const body = upstream.requests[0]?.body;
    expect(body).toMatchObject({
      temperature: 0.7,
      top_p: 0.9,
      seed: 7,
      stop: ['\n'],
      logit_bias: { '42': -100 },
      vendor_extra: { a: 1 },
    });
  });

  it("sends the SDK's headers upstream: the model's key, JSON, the SDK's user agent", async () => {
    await svc.client().chat.completions.create({ model: 'mock-small', messages: user('headers') });
    const sent = upstream.requests[0];
    // No key configured for the mock: the SDK's placeholder, never the client's key.
    expect(sent?.headers['authorization']).toBe('Bearer no-key');
    expect(sent?.headers['content-type']).toBe('application/json');
    expect(sent?.headers['accept']).toBe('application/json');
    expect(sent?.headers['user-agent']).toMatch(/^OpenAI\/JS \d+\.\d+/);
    // The client's own credentials never travel upstream.
    expect(JSON.stringify(sent?.headers)).not.toContain(DEV_KEY);
  });

  it('passes tool calls through both ways', async () => {
    const toolCalls = [
      {
        id: 'call_1',
        type: 'function' as const,
        function: { name: 'get_weather', arguments: '{"city":"Oslo"}' },
      },
    ];
    upstream.enqueue('mock-small', { kind: 'reply', toolCalls });
    const res = await svc.client().chat.completions.create({
      model: 'mock-small',
      messages: user('Weather in Oslo?'),
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            parameters: { type: 'object', properties: { city: { type: 'string' } } },
          },
        },
      ],
      tool_choice: 'auto',
    });
    expect(res.choices[0]?.finish_reason).toBe('tool_calls');
    expect(res.choices[0]?.message.tool_calls).toEqual(toolCalls);
    expect(upstream.requests[0]?.body.tools).toHaveLength(1);
    expect(upstream.requests[0]?.body.tool_choice).toBe('auto');
  });

  it('serves the same route under /api/v1', async () => {
    const r = await svc.http('POST', '/api/v1/chat/completions', {
      body: { model: 'mock-small', messages: user('hi') },
    });
    expect(r.status).toBe(200);
    expect(r.json().object).toBe('chat.completion');
  });
});

describe('streaming', () => {
  it('relays chunks with one id and no usage chunk when not asked, but always asks upstream for usage', async () => {
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: ['Hel', 'lo', '!'],
      delayMs: 5,
      usage: { prompt_tokens: 3, completion_tokens: 3 },
    });
    const stream = await svc
      .client()
      .chat.completions.create({ model: 'mock-small', messages: user('hi'), stream: true });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello!');
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(new Set(chunks.map((c) => c.created)).size).toBe(1);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'mock-small')).toBe(true);
    expect(chunks.some((c) => c.choices.length === 0)).toBe(false);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
    expect(upstream.requests[0]?.body.stream_options).toEqual({ include_usage: true });
  });

  it('ends with a usage chunk when stream_options.include_usage is set', async () => {
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: ['a', 'b'],
      usage: { prompt_tokens: 5, completion_tokens: 2 },
    });
    const stream = await svc.client().chat.completions.create({
      model: 'mock-small',
      messages: user('hi'),
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
  });

  it('sends raw SSE frames ending with [DONE]', async () => {
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['x'] });
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'mock-small', messages: user('hi'), stream: true },
    });
    expect(r.headers.get('content-type')).toMatch(/text\/event-stream/);
    expect(r.text.trim().endsWith('data: [DONE]')).toBe(true);
    expect(r.text).toMatch(/^data: \{/);
  });

  it('streams tool call deltas that the SDK reassembles', async () => {
    const toolCalls = [
      {
        id: 'call_9',
        type: 'function' as const,
        function: { name: 'lookup', arguments: '{"q":"order 42"}' },
      },
    ];
    upstream.enqueue('mock-small', { kind: 'stream', tokens: [], toolCalls });
    const stream = svc
      .client()
      .chat.completions.stream({ model: 'mock-small', messages: user('find my order'), stream: true });
    const final = await stream.finalChatCompletion();
    const call = final.choices[0]?.message.tool_calls?.[0];
    expect(call?.type === 'function' ? call.function : call).toEqual({
      name: 'lookup',
      arguments: '{"q":"order 42"}',
    });
  });

  it('sends : ping comments while the first token is slow', async () => {
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['late'], firstTokenDelayMs: 450 });
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'mock-small', messages: user('hi'), stream: true },
    });
    expect(r.text.split('\n').filter((l) => l === ': ping').length).toBeGreaterThanOrEqual(2);
    expect(r.text).toContain('"late"');
    expect(r.text.trim().endsWith('data: [DONE]')).toBe(true);
  });

  it('turns an upstream failure mid-stream into an error event the SDK throws, never [DONE]', async () => {
    upstream.enqueue('mock-small', { kind: 'die-mid-stream', tokens: ['a', 'b', 'c', 'd'], afterTokens: 2 });
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'mock-small', messages: user('hi'), stream: true },
    });
    expect(r.text).toContain('"error"');
    expect(r.text).not.toContain('[DONE]');
    upstream.enqueue('mock-small', { kind: 'die-mid-stream', tokens: ['a', 'b', 'c', 'd'], afterTokens: 2 });
    const stream = await svc
      .client()
      .chat.completions.create({ model: 'mock-small', messages: user('hi'), stream: true });
    await expect(
      (async () => {
        for await (const _ of stream) {
          // drain
        }
      })(),
    ).rejects.toBeInstanceOf(OpenAI.APIError);
  });
});

describe('upstream failures', () => {
  it('maps an upstream 500 to 502', async () => {
    upstream.enqueue('mock-small', { kind: 'error', status: 500 });
    const err = await svc
      .client()
      .chat.completions.create({ model: 'mock-small', messages: user('hi') })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(502);
    expect(err.error).toMatchObject({ type: 'upstream_error' });
  });

  it('maps an upstream 429 (after retries) to 503 with retry-after', async () => {
    upstream.enqueue('mock-small', { kind: 'error', status: 429, headers: { 'retry-after': '3' } });
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'mock-small', messages: user('hi') },
    });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('3');
    expect(r.json().error.code).toBe('upstream_rate_limited');
  });

  it('passes an upstream 400 through as 400', async () => {
    upstream.enqueue('mock-small', {
      kind: 'error',
      status: 400,
      message: 'bad stop sequence',
      code: 'invalid_value',
    });
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'mock-small', messages: user('hi') },
    });
    expect(r.status).toBe(400);
    expect(r.json().error.message).toContain('bad stop sequence');
  });

  it('retries 429 and 5xx before answering', async () => {
    upstream.enqueue(
      'retry-up',
      { kind: 'error', status: 503 },
      { kind: 'error', status: 429, headers: { 'retry-after-ms': '10' } },
    );
    upstream.enqueue('retry-up', { kind: 'reply', content: 'third time lucky' });
    const res = await svc.client().chat.completions.create({ model: 'mock-retry', messages: user('hi') });
    expect(res.choices[0]?.message.content).toBe('third time lucky');
    const tries = upstream.requests.filter((r) => r.model === 'retry-up');
    expect(tries).toHaveLength(3);
    // The SDK numbers its attempts; the lean request builder keeps that on retries.
    expect(tries.map((r) => r.headers['x-stainless-retry-count'])).toEqual(['0', '1', '2']);
  });

  it('answers 504 when the upstream exceeds the model timeout', async () => {
    upstream.enqueue('slow-up', { kind: 'hang' });
    const t0 = Date.now();
    const err = await svc
      .client()
      .chat.completions.create({ model: 'mock-slow', messages: user('hi') })
      .catch((e) => e);
    expect(err.status).toBe(504);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('ends a stream that goes quiet past the model timeout, and closes the upstream request', async () => {
    upstream.enqueue('slow-up', { kind: 'stream', tokens: ['first ', 'never'], delayMs: 10_000 });
    const stream = await svc.client().chat.completions.create({
      model: 'mock-slow',
      messages: user('then silence'),
      stream: true,
    });
    const got: string[] = [];
    const err = await (async () => {
      for await (const c of stream) got.push(c.choices[0]?.delta.content ?? '');
    })().catch((e) => e);
    expect(got.join('')).toContain('first');
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toContain('stopped sending');
    // The idle upstream is not left holding a connection until its own 10 s token arrives.
    await eventually(() => upstream.requests[0]?.aborted === true, 2000);
    expect(upstream.requests[0]?.finished).toBe(false);
  });

  it('falls back to the next model when the first fails', async () => {
    upstream.enqueue('primary-up', { kind: 'error', status: 500 });
    upstream.enqueue('backup-up', { kind: 'reply', content: 'from backup' });
    const res = await svc.client().chat.completions.create({ model: 'mock-primary', messages: user('hi') });
    expect(res.choices[0]?.message.content).toBe('from backup');
    expect(res.model).toBe('mock-backup');
  });

  it('falls back for streams before the first byte is sent', async () => {
    upstream.enqueue('primary-up', { kind: 'error', status: 502 });
    upstream.enqueue('backup-up', { kind: 'stream', tokens: ['saved'] });
    const stream = await svc
      .client()
      .chat.completions.create({ model: 'mock-primary', messages: user('hi'), stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('saved');
  });
});

describe('client disconnects', () => {
  it('aborts the upstream request when a non-streaming client goes away', async () => {
    upstream.enqueue('mock-small', { kind: 'hang' });
    const ac = new AbortController();
    const p = svc
      .client()
      .chat.completions.create({ model: 'mock-small', messages: user('hi') }, { signal: ac.signal });
    await upstream.waitForRequests(1);
    ac.abort();
    await expect(p).rejects.toThrow();
    await eventually(() => upstream.requests[0]?.aborted === true);
  });

  it('aborts the upstream stream when a streaming client goes away mid-stream', async () => {
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: Array.from({ length: 200 }, (_, i) => `t${i} `),
      delayMs: 20,
    });
    const ac = new AbortController();
    const stream = await svc
      .client()
      .chat.completions.create(
        { model: 'mock-small', messages: user('hi'), stream: true },
        { signal: ac.signal },
      );
    let n = 0;
    await (async () => {
      for await (const _ of stream) if (++n === 3) ac.abort();
    })().catch(() => undefined);
    await eventually(() => upstream.requests[0]?.aborted === true);
    expect(upstream.requests[0]?.finished).toBe(false);
  });
});

describe('per-model concurrency', () => {
  it('queues up to the bound, then answers 503 server_busy with retry-after without harming the others', async () => {
    upstream.setDefault('narrow-up', { kind: 'reply', content: 'done', delayMs: 400 });
    const results = await Promise.all(
      [0, 1, 2].map((i) =>
        svc.http('POST', '/v1/chat/completions', {
          body: { model: 'mock-narrow', messages: user(`req ${i}`) },
        }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 503]);
    const busy = results.find((r) => r.status === 503)!;
    expect(busy.json().error.code).toBe('server_busy');
    expect(busy.headers.get('retry-after')).toBe('1');
    // Other models are unaffected while the narrow one is saturated.
    const other = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'mock-small', messages: user('hi') },
    });
    expect(other.status).toBe(200);
  });
});

describe('models and health', () => {
  it('lists the catalogue with context window and prices', async () => {
    const page = await svc.client().models.list();
    const small = page.data.find((m) => m.id === 'mock-small') as unknown as Record<string, unknown>;
    expect(small).toMatchObject({
      object: 'model',
      owned_by: 'tollgate',
      context_window: 8192,
      pricing: { input_per_1m: 1, output_per_1m: 2 },
    });
  });

  it('answers /health without auth and /ready with each dependency', async () => {
    expect((await svc.http('GET', '/health', { key: null })).json()).toEqual({ status: 'ok' });
    const ready = await svc.http('GET', '/ready', { key: null });
    expect(ready.status).toBe(200);
    const names = ready.json().dependencies.map((d: { name: string }) => d.name);
    expect(names).toEqual(expect.arrayContaining(['dynamodb', 'redis']));
  });

  it('serves Prometheus metrics to the admin key only', async () => {
    const denied = await svc.http('GET', '/metrics');
    expect(denied.status).toBe(403);
    const r = await svc.http('GET', '/metrics', { key: 'sk-tg-admin-test-0123456789' });
    expect(r.status).toBe(200);
    expect(r.text).toContain('tollgate_requests_total');
  });
});
