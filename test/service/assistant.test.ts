import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import {
  ConversationStore,
  conversationIdFor,
  type StoredMessage,
} from '../../container/src/conversations/conversation-store';
import { registerAssistantRoutes } from '../../container/src/conversations/routes';
import { DEFAULT_SYSTEM_PROMPT } from '../../container/src/conversations/system-prompt';
import { countPromptTokens } from '../../container/src/tokens/count';
import type { ChatMessage } from '../../container/src/wire/chat';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { DEV_KEY, eventually, mockModel, startTestService, type TestService } from '../helpers/service';

const TIGHT_PROMPT = 'You are a terse test bot for TechCorp.';
const TIGHT_CONTEXT = 400;
const TIGHT_MAX_TOKENS = 100;
const TIGHT_HISTORY_LIMIT = 6;

let upstream: MockUpstream;
/** Defaults everywhere: the TechCorp prompt, a roomy context window, 50 stored messages. */
let svc: TestService;
/** A configured prompt, a 400-token context window and a 6-message history. */
let tight: TestService;

beforeAll(async () => {
  upstream = await startMockUpstream();
  svc = await startTestService({
    name: 'assistant',
    plugins: [registerAssistantRoutes],
    env: { TOLLGATE_PING_INTERVAL_MS: '200' },
    config: {
      models: [mockModel(upstream, 'mock-small'), mockModel(upstream, 'mock-large')],
      usage: { flushIntervalMs: 100 },
    },
  });
  // Same emulators (the AWS SDK reads its endpoint from process.env, which one stack owns).
  tight = await startTestService({
    stack: svc.stack,
    plugins: [registerAssistantRoutes],
    config: {
      models: [mockModel(upstream, 'mock-tight', { contextWindow: TIGHT_CONTEXT })],
      assistant: {
        systemPrompt: TIGHT_PROMPT,
        historyLimit: TIGHT_HISTORY_LIMIT,
        maxMessageChars: 4000,
        maxTokens: TIGHT_MAX_TOKENS,
      },
    },
  });
});

afterAll(async () => {
  await tight?.stop();
  await svc?.stop();
  await upstream?.close();
});

beforeEach(() => upstream.reset());

let seq = 0;
/** A fresh end-user id per test, so tests never share a conversation. */
const newUserId = () => `customer.${++seq}@shop-example.com`;

type Message = { role: string; content: string };

function chat(s: TestService, body: unknown, key?: string) {
  return s.http('POST', '/api/v1/chat', { body: body as object, ...(key ? { key } : {}) });
}

function history(s: TestService, userId: string, key?: string) {
  return s.http('GET', `/api/v1/chat/history/${encodeURIComponent(userId)}`, key ? { key } : {});
}

function sentMessages(i: number): Message[] {
  return (upstream.requests[i]?.body['messages'] ?? []) as Message[];
}

/** `data:` payloads of an SSE body, in order; `[DONE]` stays a string. */
function sseEvents(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => {
      const data = block.slice('data: '.length);
      return data === '[DONE]' ? data : JSON.parse(data);
    });
}

/** A tagged message of about `n` tokens (' apple' is one token), so prompt sizes are easy to reason about. */
const filler = (tag: string, n: number) => `${tag} ${'apple '.repeat(n).trim()}`;

describe('POST /api/v1/chat', () => {
  it('answers with response, user_id, conversation_id, timestamp and usage', async () => {
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'Shipping is free over $50.',
      usage: { prompt_tokens: 40, completion_tokens: 7 },
    });
    const userId = newUserId();
    const before = Date.now();
    const r = await chat(svc, { message: 'Is shipping free?', user_id: userId });
    expect(r.status).toBe(200);
    const body = r.json();
    expect(body).toMatchObject({
      response: 'Shipping is free over $50.',
      user_id: userId,
      model: 'mock-small',
      usage: { prompt_tokens: 40, completion_tokens: 7, total_tokens: 47 },
    });
    expect(body.conversation_id).toMatch(/^conv_[0-9a-f]{32}$/);
    expect(Date.parse(body.timestamp)).toBeGreaterThanOrEqual(before - 1000);
    expect(r.headers.get('x-ratelimit-remaining-requests')).not.toBeNull();
    expect(Number(r.headers.get('x-tollgate-cost-usd'))).toBeCloseTo((40 * 1 + 7 * 2) / 1e6, 9);
  });

  it('sends the TechCorp system prompt first upstream and never returns it', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'Hi! How can I help?' });
    const userId = newUserId();
    const r = await chat(svc, { message: 'Hello', user_id: userId });
    expect(r.status).toBe(200);
    expect(sentMessages(0)).toEqual([
      { role: 'system', content: DEFAULT_SYSTEM_PROMPT },
      { role: 'user', content: 'Hello' },
    ]);
    for (const fact of [
      /free.*over \$50/,
      /30 days/,
      /1-year warranty/,
      /Monday to Friday, 9 AM to 6 PM EST/,
    ])
      expect(DEFAULT_SYSTEM_PROMPT).toMatch(fact);
    expect(r.text).not.toContain(DEFAULT_SYSTEM_PROMPT.slice(0, 40));
    const h = await history(svc, userId);
    expect(h.json().messages.map((m: Message) => m.role)).toEqual(['user', 'assistant']);
    expect(h.text).not.toContain(DEFAULT_SYSTEM_PROMPT.slice(0, 40));
  });

  it('uses the system prompt from the config file', async () => {
    upstream.enqueue('mock-tight', { kind: 'reply', content: 'Yes.' });
    const r = await chat(tight, { message: 'Hello', user_id: newUserId() });
    expect(r.status).toBe(200);
    expect(sentMessages(0)[0]).toEqual({ role: 'system', content: TIGHT_PROMPT });
  });

  it('sends the stored history upstream on the second turn', async () => {
    upstream.enqueue(
      'mock-small',
      { kind: 'reply', content: 'Returns are accepted within 30 days.' },
      { kind: 'reply', content: 'Yes, the warranty lasts one year.' },
    );
    const userId = newUserId();
    expect((await chat(svc, { message: 'What is your return policy?', user_id: userId })).status).toBe(200);
    expect((await chat(svc, { message: 'And the warranty?', user_id: userId })).status).toBe(200);
    expect(sentMessages(1)).toEqual([
      { role: 'system', content: DEFAULT_SYSTEM_PROMPT },
      { role: 'user', content: 'What is your return policy?' },
      { role: 'assistant', content: 'Returns are accepted within 30 days.' },
      { role: 'user', content: 'And the warranty?' },
    ]);
    const h = (await history(svc, userId)).json();
    expect(h.user_id).toBe(userId);
    expect(h.message_count).toBe(4);
    expect(h.messages.map((m: Message) => m.content)).toEqual([
      'What is your return policy?',
      'Returns are accepted within 30 days.',
      'And the warranty?',
      'Yes, the warranty lasts one year.',
    ]);
    const times = h.messages.map((m: { timestamp: string }) => Date.parse(m.timestamp));
    expect(times.every((t: number, i: number) => !Number.isNaN(t) && (i === 0 || t >= times[i - 1]))).toBe(
      true,
    );
  });

  it('sends max_tokens from the config and the first catalogue model the key may use', async () => {
    const onlyLarge = await svc.createKey({ models: ['mock-large'] });
    const r = await chat(svc, { message: 'Hi', user_id: newUserId() }, onlyLarge.key);
    expect(r.status).toBe(200);
    expect(r.json().model).toBe('mock-large');
    expect(upstream.requests[0]?.body).toMatchObject({ model: 'mock-large', max_tokens: 512 });
  });

  it('serves the /v1/assistant aliases over the same conversation', async () => {
    const userId = newUserId();
    const first = await svc.http('POST', '/v1/assistant/chat', { body: { message: 'One', user_id: userId } });
    expect(first.status).toBe(200);
    expect((await chat(svc, { message: 'Two', user_id: userId })).status).toBe(200);
    const h = await svc.http('GET', `/v1/assistant/history/${userId}`);
    expect(h.json().message_count).toBe(4);
    const d = await svc.http('DELETE', `/v1/assistant/history/${userId}`);
    expect(d.json()).toEqual({ user_id: userId, deleted: true });
  });

  it('ignores unknown fields and accepts a 128-character user_id, also in the history path', async () => {
    const userId = `${'a.b_c-d@'.repeat(16)}`;
    expect(userId).toHaveLength(128);
    const r = await chat(svc, { message: 'Hi', user_id: userId, metadata: { channel: 'web' }, model: 'x' });
    expect(r.status).toBe(200);
    expect(upstream.requests[0]?.body).not.toHaveProperty('metadata');
    const h = await history(svc, userId);
    expect(h.status).toBe(200);
    expect(h.json().message_count).toBe(2);
  });

  it('requires an API key', async () => {
    const r = await svc.http('POST', '/api/v1/chat', { body: { message: 'Hi', user_id: 'u' }, key: null });
    expect(r.status).toBe(401);
  });
});

describe('bad input', () => {
  const long = 'x'.repeat(8001);
  it.each([
    ['message is missing', { user_id: 'u1' }, 'message'],
    ['message is empty', { message: '', user_id: 'u1' }, 'message'],
    ['message is only whitespace', { message: ' \n\t ', user_id: 'u1' }, 'message'],
    ['message is not a string', { message: 42, user_id: 'u1' }, 'message'],
    ['message is over maxMessageChars', { message: long, user_id: 'u1' }, 'message'],
    ['user_id is missing', { message: 'Hi' }, 'user_id'],
    ['user_id is empty', { message: 'Hi', user_id: '' }, 'user_id'],
    ['user_id is not a string', { message: 'Hi', user_id: 42 }, 'user_id'],
    ['user_id has a space', { message: 'Hi', user_id: 'bad id' }, 'user_id'],
    ['user_id has a slash', { message: 'Hi', user_id: 'a/b' }, 'user_id'],
    ['user_id has a #', { message: 'Hi', user_id: 'a#b' }, 'user_id'],
    ['user_id is over 128 characters', { message: 'Hi', user_id: 'u'.repeat(129) }, 'user_id'],
    ['stream is not a boolean', { message: 'Hi', user_id: 'u1', stream: 'yes' }, 'stream'],
    ['the body is an array', [{ message: 'Hi', user_id: 'u1' }], null],
  ])('answers 400 when %s', async (_case, body, param) => {
    const r = await chat(svc, body);
    expect(r.status).toBe(400);
    expect(r.json().error).toMatchObject({ type: 'invalid_request_error', param });
    expect(upstream.requests).toHaveLength(0);
  });

  it('counts message length in characters, not UTF-16 units', async () => {
    const message = 'Hi 😀 '.repeat(1600);
    expect([...message]).toHaveLength(8000);
    expect(message.length).toBe(9600);
    const r = await chat(svc, { message, user_id: newUserId() });
    expect(r.status).toBe(200);
  });

  it('answers 400 naming message when it cannot fit the context window beside the system prompt', async () => {
    const r = await chat(tight, { message: filler('zebra', 400), user_id: newUserId() });
    expect(r.status).toBe(400);
    expect(r.json().error).toMatchObject({ param: 'message', code: 'context_length_exceeded' });
    expect(upstream.requests).toHaveLength(0);
  });

  it.each([
    ['has a space', 'bad%20id'],
    ['is over 128 characters', 'u'.repeat(129)],
    ['has a slash', 'a/b'],
    ['is empty', ''],
  ])('answers 400 naming user_id when the history path user_id %s', async (_case, path) => {
    for (const method of ['GET', 'DELETE']) {
      const r = await svc.http(method, `/api/v1/chat/history/${path}`);
      expect(r.status).toBe(400);
      expect(r.json().error.param).toBe('user_id');
    }
  });

  it('answers 415 to a body that is not JSON', async () => {
    const r = await svc.http('POST', '/api/v1/chat', {
      body: 'message=hi',
      headers: { 'content-type': 'text/plain' },
    });
    expect(r.status).toBe(415);
  });
});

describe('history trimming', () => {
  it('keeps the system prompt and the newest turns that fit the context window', async () => {
    const userId = newUserId();
    for (let turn = 1; turn <= 4; turn++) {
      upstream.enqueue('mock-tight', { kind: 'reply', content: filler(`answer${turn}`, 38) });
      expect((await chat(tight, { message: filler(`question${turn}`, 38), user_id: userId })).status).toBe(
        200,
      );
    }
    const stored: Message[] = (await history(tight, userId)).json().messages;
    upstream.reset();
    upstream.enqueue('mock-tight', { kind: 'reply', content: 'ok' });
    const last = filler('question5', 38);
    expect((await chat(tight, { message: last, user_id: userId })).status).toBe(200);

    const sent = sentMessages(0);
    expect(sent[0]).toEqual({ role: 'system', content: TIGHT_PROMPT });
    expect(sent.at(-1)).toEqual({ role: 'user', content: last });
    const sentHistory = sent.slice(1, -1);
    // Some history went, but not all of it: the window is what limits it, not a fixed count.
    expect(sentHistory.length).toBeGreaterThanOrEqual(2);
    expect(sentHistory.length).toBeLessThan(stored.length);
    // The newest turns, starting on a question.
    expect(sentHistory).toEqual(
      stored.slice(stored.length - sentHistory.length).map((m) => ({ role: m.role, content: m.content })),
    );
    expect(sentHistory[0]?.role).toBe('user');
    expect(countPromptTokens(sent as ChatMessage[]) + TIGHT_MAX_TOKENS).toBeLessThanOrEqual(TIGHT_CONTEXT);
  });

  it('stores only the last historyLimit messages', async () => {
    const userId = newUserId();
    for (let turn = 1; turn <= 4; turn++) {
      upstream.enqueue('mock-tight', { kind: 'reply', content: `answer ${turn}` });
      expect((await chat(tight, { message: `question ${turn}`, user_id: userId })).status).toBe(200);
    }
    const h = (await history(tight, userId)).json();
    expect(h.message_count).toBe(TIGHT_HISTORY_LIMIT);
    expect(h.messages.map((m: Message) => m.content)).toEqual([
      'question 2',
      'answer 2',
      'question 3',
      'answer 3',
      'question 4',
      'answer 4',
    ]);
  });
});

describe('streaming', () => {
  it('streams delta events, then the full reply and [DONE], and stores the turn', async () => {
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['Returns ', 'are ', 'free.'], delayMs: 5 });
    const userId = newUserId();
    const r = await chat(svc, { message: 'Are returns free?', user_id: userId, stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/text\/event-stream/);
    expect(r.headers.get('x-ratelimit-remaining-requests')).not.toBeNull();
    const events = sseEvents(r.text);
    expect(events.at(-1)).toBe('[DONE]');
    const deltas = events.slice(0, -2) as Array<{ delta: string }>;
    expect(deltas.map((e) => e.delta).join('')).toBe('Returns are free.');
    expect(events.at(-2)).toMatchObject({
      response: 'Returns are free.',
      user_id: userId,
      conversation_id: expect.stringMatching(/^conv_/),
      timestamp: expect.any(String),
      usage: { prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number) },
    });
    expect(upstream.requests[0]?.body['stream']).toBe(true);
    expect(sentMessages(0)[0]?.role).toBe('system');
    const h = (await history(svc, userId)).json();
    expect(h.messages.map((m: Message) => m.content)).toEqual(['Are returns free?', 'Returns are free.']);
  });

  it('sends : ping comments while the first token is slow', async () => {
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['Late ', 'answer.'], firstTokenDelayMs: 550 });
    const userId = newUserId();
    const r = await chat(svc, { message: 'Hello?', user_id: userId, stream: true });
    expect(r.text.split('\n').filter((line) => line === ': ping').length).toBeGreaterThanOrEqual(2);
    expect(sseEvents(r.text).at(-2)).toMatchObject({ response: 'Late answer.' });
  });

  it('answers a plain JSON error with its status when the upstream fails before the first token', async () => {
    upstream.enqueue('mock-small', { kind: 'error', status: 500 });
    const userId = newUserId();
    const r = await chat(svc, { message: 'Hi', user_id: userId, stream: true });
    expect(r.status).toBe(502);
    expect(r.json().error.type).toBe('upstream_error');
    expect((await history(svc, userId)).status).toBe(404);
  });

  it('ends with an error event and no [DONE] when the upstream dies mid-stream, storing nothing', async () => {
    upstream.enqueue('mock-small', { kind: 'die-mid-stream', tokens: ['a', 'b', 'c', 'd'], afterTokens: 2 });
    const userId = newUserId();
    const r = await chat(svc, { message: 'Hi', user_id: userId, stream: true });
    const events = sseEvents(r.text);
    expect(events).toContainEqual({ delta: 'a' });
    expect(events.at(-1)).toMatchObject({ error: { message: expect.any(String) } });
    expect(events).not.toContain('[DONE]');
    expect((await history(svc, userId)).status).toBe(404);
  });

  it('aborts the upstream when the client disconnects, storing nothing', async () => {
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: Array.from({ length: 200 }, (_, i) => `t${i} `),
      delayMs: 20,
    });
    const userId = newUserId();
    const ac = new AbortController();
    const res = await fetch(`${svc.url}/api/v1/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${DEV_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'Tell me everything', user_id: userId, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.read().catch(() => undefined);
    await eventually(() => upstream.requests[0]?.aborted === true);
    expect(upstream.requests[0]?.finished).toBe(false);
    expect((await history(svc, userId)).status).toBe(404);
  });
});

describe('failures', () => {
  it('leaves the history unchanged when the upstream call fails', async () => {
    const userId = newUserId();
    upstream.enqueue(
      'mock-small',
      { kind: 'reply', content: 'First answer.' },
      { kind: 'error', status: 500 },
      { kind: 'reply', content: 'Third answer.' },
    );
    expect((await chat(svc, { message: 'First', user_id: userId })).status).toBe(200);
    const failed = await chat(svc, { message: 'Second', user_id: userId });
    expect(failed.status).toBe(502);
    expect((await history(svc, userId)).json().message_count).toBe(2);
    expect((await chat(svc, { message: 'Third', user_id: userId })).status).toBe(200);
    expect(sentMessages(2).map((m) => m.content)).toEqual([
      DEFAULT_SYSTEM_PROMPT,
      'First',
      'First answer.',
      'Third',
    ]);
  });
});

describe('owners', () => {
  it('keeps the same user_id under two owners as two separate conversations', async () => {
    const [a, b] = await Promise.all([svc.createKey(), svc.createKey()]);
    const userId = 'shared-customer';
    upstream.enqueue(
      'mock-small',
      { kind: 'reply', content: 'Hello A.' },
      { kind: 'reply', content: 'Hello B.' },
    );

    const fromA = await chat(svc, { message: 'I am with owner A', user_id: userId }, a.key);
    expect(fromA.status).toBe(200);
    expect((await history(svc, userId, b.key)).status).toBe(404);
    expect((await svc.http('DELETE', `/api/v1/chat/history/${userId}`, { key: b.key })).status).toBe(404);

    const fromB = await chat(svc, { message: 'I am with owner B', user_id: userId }, b.key);
    expect(fromB.status).toBe(200);
    expect(sentMessages(1).map((m) => m.content)).toEqual([DEFAULT_SYSTEM_PROMPT, 'I am with owner B']);
    expect(fromB.json().conversation_id).not.toBe(fromA.json().conversation_id);

    const historyA = (await history(svc, userId, a.key)).json();
    expect(historyA.messages.map((m: Message) => m.content)).toEqual(['I am with owner A', 'Hello A.']);
    const historyB = (await history(svc, userId, b.key)).json();
    expect(historyB.messages.map((m: Message) => m.content)).toEqual(['I am with owner B', 'Hello B.']);
  });
});

describe('DELETE /api/v1/chat/history/{user_id}', () => {
  it('erases the history so the next message starts a new conversation', async () => {
    const userId = newUserId();
    expect((await chat(svc, { message: 'Remember me', user_id: userId })).status).toBe(200);
    const d = await svc.http('DELETE', `/api/v1/chat/history/${userId}`);
    expect(d.status).toBe(200);
    expect(d.json()).toEqual({ user_id: userId, deleted: true });
    expect((await history(svc, userId)).status).toBe(404);

    upstream.reset();
    expect((await chat(svc, { message: 'Do you remember me?', user_id: userId })).status).toBe(200);
    expect(sentMessages(0).map((m) => m.content)).toEqual([DEFAULT_SYSTEM_PROMPT, 'Do you remember me?']);
  });

  it('answers 404 when there is nothing to delete', async () => {
    const r = await svc.http('DELETE', `/api/v1/chat/history/${newUserId()}`);
    expect(r.status).toBe(404);
    expect(r.json().error).toMatchObject({ param: 'user_id', code: 'conversation_not_found' });
  });
});

describe('concurrent messages', () => {
  it('stores every turn of five concurrent messages to one conversation', async () => {
    const userId = newUserId();
    // The delay makes all five read the same (empty) history before any of them writes.
    for (let i = 0; i < 5; i++) {
      upstream.enqueue('mock-small', { kind: 'reply', content: `reply ${i}`, delayMs: 100 });
    }
    const messages = [0, 1, 2, 3, 4].map((i) => `concurrent question ${i}`);
    const results = await Promise.all(messages.map((message) => chat(svc, { message, user_id: userId })));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);

    const h = (await history(svc, userId)).json();
    expect(h.message_count).toBe(10);
    const stored: Message[] = h.messages;
    expect(stored.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(
      expect.arrayContaining(messages),
    );
    // Each question is immediately followed by the reply its own request got.
    messages.forEach((message, i) => {
      const at = stored.findIndex((m) => m.content === message);
      expect(stored[at + 1]).toEqual({
        role: 'assistant',
        content: results[i]?.json().response,
        timestamp: expect.any(String),
      });
    });
  });
});

describe('limits and usage', () => {
  it("answers 429 with retry-after once the key's RPM is used up, leaving the history unchanged", async () => {
    const limited = await svc.createKey({ limits: { rpm: 1 } });
    const userId = newUserId();
    expect((await chat(svc, { message: 'First', user_id: userId }, limited.key)).status).toBe(200);
    const r = await chat(svc, { message: 'Second', user_id: userId }, limited.key);
    expect(r.status).toBe(429);
    expect(r.json().error.code).toBe('rate_limit_exceeded');
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(r.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(upstream.requests).toHaveLength(1);
    expect((await history(svc, userId, limited.key)).json().message_count).toBe(2);
  });

  it("records each assistant turn in the owner's usage", async () => {
    const key = await svc.createKey();
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'Done.',
      usage: { prompt_tokens: 30, completion_tokens: 5 },
    });
    expect((await chat(svc, { message: 'Hi', user_id: newUserId() }, key.key)).status).toBe(200);
    const totals = await eventually(async () => {
      const t = (await svc.http('GET', '/v1/usage', { key: key.key })).json().totals;
      return t.requests === 1 ? t : null;
    });
    expect(totals).toMatchObject({ prompt_tokens: 30, completion_tokens: 5, total_tokens: 35 });
  });
});

describe('conversation store', () => {
  let ddb: DynamoDBClient;
  let doc: DynamoDBDocumentClient;
  let table: string;

  beforeAll(() => {
    // process.env points the SDK at this file's dynalite (startTestService set it).
    ddb = new DynamoDBClient({});
    doc = DynamoDBDocumentClient.from(ddb, { marshallOptions: { removeUndefinedValues: true } });
    table = svc.server.runtime.env.tables.conversations;
  });

  afterAll(() => ddb.destroy());

  const pair = (q: string, a: string): StoredMessage[] => {
    const timestamp = new Date().toISOString();
    return [
      { role: 'user', content: q, timestamp },
      { role: 'assistant', content: a, timestamp },
    ];
  };

  it('re-reads and re-appends when another write landed between its read and its write', async () => {
    const racing = new DynamoDBClient({});
    const racingDoc = DynamoDBDocumentClient.from(racing);
    const store = new ConversationStore({ doc: racingDoc, table, historyLimit: 50 });
    const userId = newUserId();
    let puts = 0;
    let conflicts = 0;
    racing.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'PutItemCommand' && ++puts === 1) {
          // The other writer wins: it reads the same version and writes first.
          await store.append('race-owner', userId, pair('B?', 'B!'));
        }
        try {
          return await next(args);
        } catch (err) {
          if ((err as Error).name === 'ConditionalCheckFailedException') conflicts++;
          throw err;
        }
      },
      { step: 'initialize', name: 'interleaveWrites' },
    );
    try {
      const row = await store.append('race-owner', userId, pair('A?', 'A!'));
      expect(conflicts).toBe(1);
      expect(row.version).toBe(2);
      expect(row.messages.map((m) => m.content)).toEqual(['B?', 'B!', 'A?', 'A!']);
    } finally {
      racing.destroy();
    }
  });

  it('drops the oldest messages when the row would outgrow its byte budget', async () => {
    const store = new ConversationStore({ doc, table, historyLimit: 50, maxItemBytes: 1000 });
    const userId = newUserId();
    for (const n of [1, 2, 3])
      await store.append('bytes-owner', userId, pair(`q${n} ${'x'.repeat(300)}`, `a${n}`));
    const row = await store.get('bytes-owner', userId);
    expect(row?.messages.map((m) => m.content.slice(0, 2))).toEqual(['q2', 'a2', 'q3', 'a3']);
  });

  it('treats a row past its TTL as gone until DynamoDB removes it', async () => {
    const store = new ConversationStore({ doc, table, historyLimit: 50, retentionDays: 30 });
    const userId = newUserId();
    const fresh = await store.append('ttl-owner', userId, pair('old?', 'old!'));
    expect(fresh.expiresAt).toBeGreaterThan(Date.now() / 1000 + 29 * 86_400);
    await doc.send(
      new PutCommand({ TableName: table, Item: { ...fresh, expiresAt: Math.floor(Date.now() / 1000) - 1 } }),
    );

    expect(await store.get('ttl-owner', userId)).toBeNull();
    const next = await store.append('ttl-owner', userId, pair('new?', 'new!'));
    expect(next.messages.map((m) => m.content)).toEqual(['new?', 'new!']);
    expect(next.conversationId).toBe(conversationIdFor('ttl-owner', userId));
  });
});
