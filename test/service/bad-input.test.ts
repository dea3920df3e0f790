import { connect } from 'node:net';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import {
  ADMIN_KEY,
  DEV_KEY,
  type HttpResult,
  mockModel,
  startTestService,
  type TestService,
} from '../helpers/service';

let upstream: MockUpstream;
let svc: TestService;

beforeAll(async () => {
  upstream = await startMockUpstream();
  svc = await startTestService({ name: 'bad', config: { models: [mockModel(upstream, 'mock-small')] } });
});

afterAll(async () => {
  await svc?.stop();
  await upstream?.close();
});

const ok = { model: 'mock-small', messages: [{ role: 'user', content: 'hi' }] };
const withField = (patch: Record<string, unknown>) => ({ ...ok, ...patch });

/** Every bad input is a 4xx with an OpenAI error body; none reaches the upstream. */
async function expectError(
  r: Promise<HttpResult>,
  status: number,
  match: { param?: string | null; code?: string | null; type?: string; message?: RegExp } = {},
) {
  const res = await r;
  expect(res.status).toBe(status);
  const body = res.json();
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof body.error.message).toBe('string');
  if (match.param !== undefined) expect(body.error.param).toBe(match.param);
  if (match.code !== undefined) expect(body.error.code).toBe(match.code);
  if (match.type) expect(body.error.type).toBe(match.type);
  if (match.message) expect(body.error.message).toMatch(match.message);
}

const post = (body: string | object, headers?: Record<string, string>, key?: string | null) =>
  svc.http('POST', '/v1/chat/completions', {
    body,
    ...(headers ? { headers } : {}),
    ...(key !== undefined ? { key } : {}),
  });

describe('bad inputs get a clear OpenAI-style 4xx', () => {
  beforeEach(() => upstream.reset());
  afterEach(() => expect(upstream.requests).toHaveLength(0));

  it('rejects invalid JSON with 400', () =>
    expectError(post('{"model": "mock-small", '), 400, {
      type: 'invalid_request_error',
      code: 'invalid_json',
    }));
  it('rejects an empty body with 400', () => expectError(post(''), 400, { type: 'invalid_request_error' }));
  it('rejects a JSON array body with 400', () =>
    expectError(post('[1,2,3]'), 400, { message: /JSON object/ }));
  it('rejects a JSON string body with 400', () =>
    expectError(post('"hello"'), 400, { message: /JSON object/ }));
  it('rejects a missing model with 400 naming model', () =>
    expectError(post({ messages: ok.messages }), 400, { param: 'model' }));
  it('rejects a wrong-typed model with 400 naming model', () =>
    expectError(post(withField({ model: 42 })), 400, { param: 'model' }));
  it('rejects missing messages with 400 naming messages', () =>
    expectError(post({ model: 'mock-small' }), 400, { param: 'messages' }));
  it('rejects wrong-typed messages with 400', () =>
    expectError(post(withField({ messages: 'hi' })), 400, { param: 'messages' }));
  it('rejects empty messages with 400', () =>
    expectError(post(withField({ messages: [] })), 400, { param: 'messages' }));
  it('rejects a message that is not an object', () =>
    expectError(post(withField({ messages: ['hi'] })), 400, { param: 'messages[0]' }));
  it('rejects an unknown role with 400 naming the field', () =>
    expectError(post(withField({ messages: [{ role: 'wizard', content: 'hi' }] })), 400, {
      param: 'messages[0].role',
    }));
  it('rejects a missing content with 400', () =>
    expectError(post(withField({ messages: [{ role: 'user' }] })), 400, { param: 'messages[0].content' }));
  it('rejects temperature 5 with 400 naming temperature', () =>
    expectError(post(withField({ temperature: 5 })), 400, { param: 'temperature' }));
  it('rejects a number too large for a double (1e309 parses as Infinity) with 400', () =>
    expectError(
      post('{"model":"mock-small","messages":[{"role":"user","content":"hi"}],"max_tokens":1e309}'),
      400,
      {
        param: 'max_tokens',
        message: /finite/,
      },
    ));
  it('rejects a string temperature with 400', () =>
    expectError(post(withField({ temperature: 'hot' })), 400, { param: 'temperature' }));
  it('rejects max_tokens -1 with 400 naming max_tokens', () =>
    expectError(post(withField({ max_tokens: -1 })), 400, { param: 'max_tokens' }));
  it('rejects a fractional max_tokens with 400', () =>
    expectError(post(withField({ max_tokens: 1.5 })), 400, { param: 'max_tokens' }));
  it('rejects n=2 with 400 that says only 1 is supported', () =>
    expectError(post(withField({ n: 2 })), 400, { param: 'n', message: /Only n=1/ }));
  it('rejects top_p 2 with 400', () => expectError(post(withField({ top_p: 2 })), 400, { param: 'top_p' }));
  it('rejects a non-boolean stream with 400', () =>
    expectError(post(withField({ stream: 'yes' })), 400, { param: 'stream' }));
  it('rejects five stop sequences with 400', () =>
    expectError(post(withField({ stop: ['a', 'b', 'c', 'd', 'e'] })), 400, { param: 'stop' }));
  it('rejects a tool without a type with 400', () =>
    expectError(post(withField({ tools: [{}] })), 400, { param: 'tools[0]' }));
  it('rejects a 12 MB body with 413', () =>
    expectError(
      post(withField({ messages: [{ role: 'user', content: 'x'.repeat(12 * 1024 * 1024) }] })),
      413,
      { code: 'request_too_large' },
    ));
  it('rejects text/plain with 415', () =>
    expectError(post('hello', { 'content-type': 'text/plain' }), 415, { code: 'unsupported_media_type' }));
  it('rejects form encoding with 415', () =>
    expectError(post('model=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, {
      code: 'unsupported_media_type',
    }));
  it('rejects a missing key with 401', () =>
    expectError(post(ok, undefined, null), 401, { code: 'invalid_api_key' }));
  it('rejects a wrong key with 401', () =>
    expectError(post(ok, undefined, 'sk-tg-nope'), 401, { code: 'invalid_api_key' }));
  it('rejects a malformed Authorization header with 401', () =>
    expectError(
      svc.http('POST', '/v1/chat/completions', {
        body: ok,
        key: null,
        headers: { authorization: 'Basic abc' },
      }),
      401,
      { code: 'invalid_api_key' },
    ));
  it('rejects an unknown model with 404 model_not_found', () =>
    expectError(post(withField({ model: 'gpt-9' })), 404, { code: 'model_not_found', param: 'model' }));
  it('answers an unknown route with 404 even without a key', () =>
    expectError(svc.http('GET', '/v1/chat/completion', { key: null }), 404, { code: 'unknown_url' }));
  it('answers an unknown route with 404', () =>
    expectError(svc.http('GET', '/v1/nope'), 404, { code: 'unknown_url' }));
  it('answers a wrong method with 405 and Allow', async () => {
    const r = await svc.http('GET', '/v1/chat/completions');
    expect(r.headers.get('allow')).toBe('POST');
    await expectError(Promise.resolve(r), 405, { code: 'method_not_allowed' });
  });
  it('answers DELETE on /v1/models with 405', () => expectError(svc.http('DELETE', '/v1/models'), 405));
  it('rejects a body nested 5,000 levels deep with 400 instead of overflowing the stack', () =>
    expectError(
      post(
        `{"model":"mock-small","messages":[{"role":"user","content":"hi"}],"tools":${'['.repeat(5000)}${']'.repeat(5000)}}`,
      ),
      400,
      { code: 'invalid_json', message: /nests .* more than 128 levels/ },
    ));
  it('rejects a compressed body with 415 naming the encoding', () =>
    expectError(post(ok, { 'content-encoding': 'gzip' }), 415, {
      code: 'unsupported_content_encoding',
      message: /gzip/,
    }));
  it('answers a malformed percent-encoding in a path with an OpenAI-style 400', () =>
    expectError(svc.http('PATCH', '/admin/keys/%ZZ', { key: ADMIN_KEY, body: { limits: { rpm: 1 } } }), 400, {
      code: 'invalid_url',
    }));
  it('answers an over-long path parameter with an OpenAI-style 404', () =>
    expectError(svc.http('DELETE', `/admin/keys/${'x'.repeat(500)}`, { key: ADMIN_KEY }), 404, {
      code: 'not_found',
    }));
  it('answers oversized headers with an OpenAI-style 431', () =>
    expectError(post(ok, { 'x-padding': 'a'.repeat(20_000) }), 431, { code: 'invalid_http' }));
  it('answers malformed HTTP with an OpenAI-style 400 and closes the connection', async () => {
    const raw = await rawExchange(svc.url, 'GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\rb\r\n\r\n');
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    expect(body.error).toEqual({
      message: 'The request is not valid HTTP.',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_http',
    });
  });
});

describe('a client that sends its request too slowly', () => {
  it('gets an OpenAI-style 408 once TOLLGATE_REQUEST_TIMEOUT_MS has passed, while streams may run longer', async () => {
    const slow = await startTestService({
      name: 'slow',
      env: { TOLLGATE_REQUEST_TIMEOUT_MS: '600', TOLLGATE_PING_INTERVAL_MS: '100' },
      config: { models: [mockModel(upstream, 'mock-small')] },
    });
    try {
      const started = Date.now();
      // Promises 100 bytes, sends 3, then waits.
      const raw = await rawExchange(
        slow.url,
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${DEV_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"m`,
        false,
      );
      expect(raw).toMatch(/^HTTP\/1\.1 408 /);
      expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).error).toMatchObject({
        code: 'request_timeout',
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(600);
      // The timeout covers receiving the request, not the response: a stream that takes longer
      // than 600 ms after a complete request runs to its end.
      upstream.enqueue('mock-small', { kind: 'stream', tokens: ['a', 'b', 'c'], delayMs: 400 });
      const streamStarted = Date.now();
      const stream = await slow.client().chat.completions.create({
        model: 'mock-small',
        messages: [{ role: 'user', content: 'slow stream' }],
        stream: true,
      });
      let text = '';
      for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
      expect(text).toBe('abc');
      expect(Date.now() - streamStarted).toBeGreaterThan(700);
    } finally {
      await slow.stop();
    }
  });
});

/** Writes `request` on a fresh connection and reads until the server closes it. */
function rawExchange(url: string, request: string, end = true): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => (end ? socket.end(request) : socket.write(request)));
    let out = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      out += d;
    });
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
  });
}

describe('after all the bad input', () => {
  it('keeps serving', async () => {
    await Promise.all(Array.from({ length: 20 }, () => post('{"broken')));
    const res = await svc.client().chat.completions.create({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'still there?' }],
    });
    expect(res.choices[0]?.message.content).toBe('Hello from the mock upstream.');
    expect((await svc.http('GET', '/health', { key: null })).status).toBe(200);
  });
});
