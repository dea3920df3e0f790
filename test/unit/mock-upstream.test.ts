import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { chatBody, type MockUpstream, mockEmbedding, startMockUpstream } from '../helpers/mock-upstream';

let mock: MockUpstream;
let client: OpenAI;

/** Polls until `check` holds; for state the mock updates on socket events. */
async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

beforeAll(async () => {
  mock = await startMockUpstream();
  client = new OpenAI({ baseURL: mock.baseUrl, apiKey: 'sk-test', maxRetries: 0 });
});

afterAll(async () => {
  await mock.close();
});

beforeEach(() => mock.reset());

describe('non-streaming replies', () => {
  it('answers with the default greeting and computed usage, and records the request', async () => {
    const res = await client.chat.completions.create({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'x'.repeat(40) }],
    });
    expect(res.object).toBe('chat.completion');
    expect(res.id).toMatch(/^chatcmpl-mock-\d+$/);
    expect(res.model).toBe('mock-small');
    expect(res.choices).toEqual([
      {
        index: 0,
        message: { role: 'assistant', content: 'Hello from the mock upstream.', refusal: null },
        finish_reason: 'stop',
        logprobs: null,
      },
    ]);
    expect(res.usage).toEqual({ prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });

    expect(mock.requests).toHaveLength(1);
    const rec = mock.requests[0]!;
    expect(rec).toMatchObject({ method: 'POST', path: '/v1/chat/completions', model: 'mock-small' });
    expect(rec.headers['authorization']).toBe('Bearer sk-test');
    expect(chatBody(rec).messages).toEqual([{ role: 'user', content: 'x'.repeat(40) }]);
    await until(() => rec.finished);
    expect(rec.aborted).toBe(false);
  });

  it('uses scripted content, finish reason and usage (total filled in)', async () => {
    mock.enqueue('mock-large', {
      kind: 'reply',
      content: 'scripted',
      finishReason: 'length',
      usage: { prompt_tokens: 100, completion_tokens: 7, prompt_tokens_details: { cached_tokens: 64 } },
    });
    const res = await client.chat.completions.create({
      model: 'mock-large',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(res.choices[0]?.message.content).toBe('scripted');
    expect(res.choices[0]?.finish_reason).toBe('length');
    expect(res.usage).toEqual({
      prompt_tokens: 100,
      completion_tokens: 7,
      total_tokens: 107,
      prompt_tokens_details: { cached_tokens: 64 },
    });
  });

  it('returns tool calls with finish_reason tool_calls and null content', async () => {
    const toolCalls = [
      {
        id: 'call_1',
        type: 'function' as const,
        function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
      },
    ];
    mock.enqueue('mock-small', { kind: 'reply', toolCalls });
    const res = await client.chat.completions.create({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
    });
    expect(res.choices[0]?.finish_reason).toBe('tool_calls');
    expect(res.choices[0]?.message.content).toBeNull();
    expect(res.choices[0]?.message.tool_calls).toEqual(toolCalls);
  });

  it('consumes queues in order: model queue, then "*" queue, then model default, then "*" default', async () => {
    mock.setDefault('mock-large', { kind: 'reply', content: 'large default' });
    mock.enqueue('mock-small', { kind: 'reply', content: 'one' }, { kind: 'reply', content: 'two' });
    mock.enqueue('*', { kind: 'reply', content: 'any' });
    const ask = async (model: string) =>
      (await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'q' }] })).choices[0]
        ?.message.content;
    expect(await ask('mock-small')).toBe('one');
    expect(await ask('mock-small')).toBe('two');
    expect(await ask('mock-large')).toBe('any');
    expect(await ask('mock-large')).toBe('large default');
    expect(await ask('mock-small')).toBe('Hello from the mock upstream.');
    mock.reset();
    expect(await ask('mock-large')).toBe('Hello from the mock upstream.');
    expect(mock.requests).toHaveLength(1);
  });

  it('honours delayMs', async () => {
    mock.enqueue('mock-small', { kind: 'reply', content: 'late', delayMs: 150 });
    const t0 = Date.now();
    await client.chat.completions.create({ model: 'mock-small', messages: [{ role: 'user', content: 'q' }] });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });
});

describe('streaming', () => {
  it('streams role, tokens, finish chunk and a usage chunk when include_usage is set', async () => {
    mock.enqueue('mock-small', {
      kind: 'stream',
      tokens: ['Hel', 'lo', ' world'],
      usage: { prompt_tokens: 12, completion_tokens: 3 },
    });
    const stream = await client.chat.completions.create({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(chunks).toHaveLength(5);
    expect(chunks[0]?.choices[0]?.delta).toMatchObject({ role: 'assistant', content: 'Hel' });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello world');
    expect(chunks[3]?.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    expect(chunks[4]?.choices).toEqual([]);
    expect(chunks[4]?.usage).toEqual({ prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 });
    for (const c of chunks) {
      expect(c.object).toBe('chat.completion.chunk');
      expect(c.model).toBe('mock-small');
      expect(c.id).toBe(chunks[0]?.id);
    }
    await until(() => mock.requests[0]!.finished);
  });

  it('sends no usage chunk without include_usage, and ends with [DONE]', async () => {
    mock.enqueue('mock-small', { kind: 'stream', tokens: ['a', 'b'] });
    const res = await fetch(`${mock.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-small', messages: [], stream: true }),
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    const events = text.split('\n\n').filter(Boolean);
    expect(events).toHaveLength(4);
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(text).not.toContain('"usage"');
    const last = JSON.parse(events[2]!.slice('data: '.length)) as ChatCompletionChunk;
    expect(last.choices[0]?.finish_reason).toBe('stop');
  });

  it('streams tool calls as deltas the SDK can accumulate', async () => {
    const toolCalls = [
      {
        id: 'call_a',
        type: 'function' as const,
        function: { name: 'lookup', arguments: '{"q":"tollgate"}' },
      },
      { id: 'call_b', type: 'function' as const, function: { name: 'noop', arguments: '{}' } },
    ];
    mock.enqueue('mock-small', { kind: 'stream', tokens: [], toolCalls });
    const runner = client.chat.completions.stream({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'go' }],
      stream_options: { include_usage: true },
    });
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
    expect(final.choices[0]?.message.tool_calls).toEqual(toolCalls);
    expect(final.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('delays the first token by firstTokenDelayMs', async () => {
    mock.enqueue('mock-small', { kind: 'stream', tokens: ['x', 'y'], firstTokenDelayMs: 150, delayMs: 10 });
    const t0 = Date.now();
    const stream = await client.chat.completions.create({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'q' }],
      stream: true,
    });
    let firstAt = 0;
    for await (const c of stream) if (firstAt === 0 && c.choices[0]?.delta.content) firstAt = Date.now();
    expect(firstAt - t0).toBeGreaterThanOrEqual(140);
  });

  it('die-mid-stream delivers N chunks then makes the SDK throw', async () => {
    mock.enqueue('mock-small', { kind: 'die-mid-stream', tokens: ['a', 'b', 'c', 'd'], afterTokens: 2 });
    const stream = await client.chat.completions.create({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'q' }],
      stream: true,
    });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const c of stream) seen.push(c.choices[0]?.delta.content ?? '');
      })(),
    ).rejects.toThrow();
    expect(seen).toEqual(['a', 'b']);
    const rec = mock.requests[0]!;
    // Give the server's close event time to run before checking it did not count as an abort.
    await new Promise((r) => setTimeout(r, 20));
    expect(rec.finished).toBe(false);
    // The mock cut the connection itself; that is not a client abort.
    expect(rec.aborted).toBe(false);
  });
});

describe('errors', () => {
  it('sends the scripted status, OpenAI error body and headers (retry-after)', async () => {
    mock.enqueue('mock-small', {
      kind: 'error',
      status: 429,
      message: 'slow down',
      code: 'rate_limit_exceeded',
      headers: { 'retry-after': '7' },
    });
    const err = await client.chat.completions
      .create({ model: 'mock-small', messages: [{ role: 'user', content: 'q' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    const apiErr = err as APIError;
    expect(apiErr.status).toBe(429);
    expect(apiErr.headers?.get('retry-after')).toBe('7');
    expect(apiErr.type).toBe('rate_limit_error');
    expect(apiErr.code).toBe('rate_limit_exceeded');
    expect(apiErr.error).toEqual({
      message: 'slow down',
      type: 'rate_limit_error',
      param: null,
      code: 'rate_limit_exceeded',
    });
    expect(mock.requests).toHaveLength(1);
  });

  it('defaults type by status (500 -> server_error)', async () => {
    mock.enqueue('mock-small', { kind: 'error', status: 500 });
    const err = (await client.chat.completions
      .create({ model: 'mock-small', messages: [] })
      .catch((e: unknown) => e)) as APIError;
    expect(err.status).toBe(500);
    expect(err.type).toBe('server_error');
    expect(err.code).toBeNull();
  });

  it('answers 400 to a body that is not JSON, and records it', async () => {
    const res = await fetch(`${mock.baseUrl}/chat/completions`, { method: 'POST', body: '{nope' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    expect(mock.requests[0]?.body).toEqual({});
  });

  it('answers 404 in OpenAI format to unknown routes', async () => {
    const res = await fetch(`${mock.baseUrl}/completions`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { message: expect.any(String), type: 'invalid_request_error', param: null, code: 'unknown_url' },
    });
    expect(mock.requests).toHaveLength(0);
  });
});

interface EmbeddingsJson {
  data: { embedding: number[] & string }[];
  usage: unknown;
}

describe('embeddings', () => {
  it('answers deterministic vectors as floats or base64, with usage, and applies scripted errors', async () => {
    const float = await fetch(`${mock.baseUrl}/embeddings`, {
      method: 'POST',
      body: JSON.stringify({ model: 'e', input: ['ab', 'cdefg'], encoding_format: 'float', dimensions: 4 }),
    }).then((r) => r.json() as Promise<EmbeddingsJson>);
    expect(float.data.map((d) => d.embedding)).toEqual([mockEmbedding('ab', 4), mockEmbedding('cdefg', 4)]);
    expect(float.usage).toEqual({ prompt_tokens: 1 + 2, total_tokens: 3 });
    const b64 = await fetch(`${mock.baseUrl}/embeddings`, {
      method: 'POST',
      body: JSON.stringify({ model: 'e', input: 'ab', encoding_format: 'base64', dimensions: 4 }),
    }).then((r) => r.json() as Promise<EmbeddingsJson>);
    const bytes = Buffer.from(b64.data[0]?.embedding ?? '', 'base64');
    expect(Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, 4))).toEqual(mockEmbedding('ab', 4));
    mock.enqueue('e', { kind: 'error', status: 429 });
    const limited = await fetch(`${mock.baseUrl}/embeddings`, {
      method: 'POST',
      body: '{"model":"e","input":"x"}',
    });
    expect(limited.status).toBe(429);
  });
});

describe('hang and abort', () => {
  it('hang never answers; aborting the client marks the request aborted', async () => {
    mock.enqueue('mock-small', { kind: 'hang' });
    const ac = new AbortController();
    const pending = client.chat.completions
      .create({ model: 'mock-small', messages: [{ role: 'user', content: 'q' }] }, { signal: ac.signal })
      .catch((e: unknown) => e);
    await mock.waitForRequests(1);
    ac.abort();
    expect(await pending).toBeInstanceOf(APIUserAbortError);
    const rec = mock.requests[0]!;
    await until(() => rec.aborted);
    expect(rec.finished).toBe(false);
  });

  it('aborting mid-stream marks the request aborted', async () => {
    mock.enqueue('mock-small', { kind: 'stream', tokens: ['a', 'b', 'c', 'd', 'e'], delayMs: 100 });
    const ac = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'mock-small', messages: [{ role: 'user', content: 'q' }], stream: true },
      { signal: ac.signal },
    );
    // The SDK ends the iteration quietly on a user abort rather than throwing.
    let received = 0;
    for await (const _ of stream) {
      received++;
      ac.abort();
    }
    expect(received).toBe(1);
    const rec = mock.requests[0]!;
    await until(() => rec.aborted);
    expect(rec.finished).toBe(false);
  });

  it('close() ends hanging requests', async () => {
    const other = await startMockUpstream();
    other.setDefault('*', { kind: 'hang' });
    const c = new OpenAI({ baseURL: other.baseUrl, apiKey: 'k', maxRetries: 0 });
    const pending = c.chat.completions.create({ model: 'm', messages: [] }).catch((e: unknown) => e);
    await other.waitForRequests(1);
    await other.close();
    expect(await pending).toBeInstanceOf(APIConnectionError);
    expect(other.requests[0]?.aborted).toBe(true);
  });
});

describe('misc routes and helpers', () => {
  it('lists models and lets tests change them', async () => {
    const ids = async () => (await client.models.list()).data.map((m) => m.id);
    expect(await ids()).toEqual(['mock-small', 'mock-large']);
    mock.models = ['only-one'];
    expect(await ids()).toEqual(['only-one']);
    const page = await client.models.list();
    expect(page.data[0]).toEqual({
      id: 'only-one',
      object: 'model',
      created: expect.any(Number),
      owned_by: 'mock',
    });
  });

  it('keeps connections alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const post = () =>
      new Promise<boolean>((resolve, reject) => {
        const req = request(
          `${mock.baseUrl}/chat/completions`,
          { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(req.reusedSocket));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ model: 'mock-small', messages: [] }));
      });
    expect(await post()).toBe(false);
    expect(await post()).toBe(true);
    expect(await post()).toBe(true);
    agent.destroy();
  });

  it('waitForRequests resolves on arrival and rejects on timeout', async () => {
    const waiting = mock.waitForRequests(2, 2000);
    await client.chat.completions.create({ model: 'mock-small', messages: [] });
    await client.chat.completions.create({ model: 'mock-small', messages: [] });
    await expect(waiting).resolves.toBeUndefined();
    await expect(mock.waitForRequests(3, 50)).rejects.toThrow(/2 of 3/);
  });

  it('runs as a CLI and prints MOCK_UPSTREAM_URL', async () => {
    const tsx = join(__dirname, '../../node_modules/.bin/tsx');
    const child = spawn(tsx, [join(__dirname, '../helpers/mock-upstream.ts'), '--port', '0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout! });
        rl.once('line', resolve);
        child.once('exit', (code) => reject(new Error(`CLI exited early (${code})`)));
      });
      const m = /^MOCK_UPSTREAM_URL=(http:\/\/127\.0\.0\.1:\d+\/v1)$/.exec(line);
      expect(m).not.toBeNull();
      const res = await fetch(`${m![1]}/models`);
      expect(res.status).toBe(200);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });
});
