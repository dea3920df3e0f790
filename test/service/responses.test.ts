import OpenAI from 'openai';
import type { ResponseItem } from 'openai/resources/responses/responses';
import type { LocalStack } from '../../container/src/local/stack';
import { queryUsageRecords } from '../../container/src/usage/usage-recorder';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { expireStoredResponse, parseSse, registerResponsesRoutes } from '../helpers/responses';
import {
  eventually,
  mockModel,
  startTestService,
  startTestStack,
  type TestService,
} from '../helpers/service';

let upstream: MockUpstream;
let stack: LocalStack;
let svc: TestService;

beforeAll(async () => {
  upstream = await startMockUpstream();
  stack = await startTestStack('responses');
  svc = await startTestService({
    stack,
    plugins: [registerResponsesRoutes],
    env: { TOLLGATE_PING_INTERVAL_MS: '100' },
    config: {
      models: [
        mockModel(upstream, 'mock-small', { pricing: { input: 1, output: 2, cachedInput: 0.5 } }),
        mockModel(upstream, 'mock-aliased', { upstreamModel: 'aliased-up' }),
        mockModel(upstream, 'mock-primary', { upstreamModel: 'primary-up', fallbacks: ['mock-backup'] }),
        mockModel(upstream, 'mock-backup', { upstreamModel: 'backup-up' }),
        mockModel(upstream, 'mock-slow', { upstreamModel: 'slow-up', timeoutMs: 400 }),
        mockModel(upstream, 'mock-narrow', { upstreamModel: 'narrow-up', maxConcurrent: 1, maxQueue: 0 }),
        mockModel(upstream, 'mock-tiny', {
          upstreamModel: 'tiny-up',
          contextWindow: 64,
          maxOutputTokens: 16,
        }),
        { id: 'sim', provider: 'simulator', simulator: { ttftMs: 5, tokensPerSecond: 2000 } },
      ],
      tiers: { basic: { limits: { rpm: 10_000 }, models: ['*'] } },
      usage: { flushIntervalMs: 50 },
      contextOverflow: 'reject',
    },
  });
});

afterAll(async () => {
  await svc?.stop();
  await stack?.stop();
  await upstream?.close();
});

beforeEach(() => upstream.reset());

const lastBody = () => upstream.requests[upstream.requests.length - 1]?.body ?? {};
const records = (owner: string) =>
  queryUsageRecords(svc.server.runtime.doc, svc.server.runtime.env.tables.usage, owner);

describe('responses.create (openai SDK)', () => {
  it('answers text as a Response object with a message item, derived output_text and mapped usage', async () => {
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'Paris.',
      usage: { prompt_tokens: 20, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 12 } },
    });
    const r = await svc.client().responses.create({
      model: 'mock-small',
      instructions: 'Answer in one word.',
      input: 'Capital of France?',
      metadata: { trace: 't-1' },
    });
    expect(r.id).toMatch(/^resp_[0-9a-f]{32}$/);
    expect(r).toMatchObject({
      object: 'response',
      status: 'completed',
      model: 'mock-small',
      instructions: 'Answer in one word.',
      metadata: { trace: 't-1' },
      error: null,
      incomplete_details: null,
      store: true,
    });
    expect(r.output).toEqual([
      {
        id: expect.stringMatching(/^msg_/),
        type: 'message',
        status: 'completed',
        role: 'assistant',
        content: [{ type: 'output_text', text: 'Paris.', annotations: [], logprobs: [] }],
      },
    ]);
    expect(r.output_text).toBe('Paris.');
    expect(r.usage).toEqual({
      input_tokens: 20,
      input_tokens_details: { cached_tokens: 12, cache_write_tokens: 0 },
      output_tokens: 2,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 22,
    });
    expect(lastBody()).toMatchObject({
      model: 'mock-small',
      messages: [
        { role: 'system', content: 'Answer in one word.' },
        { role: 'user', content: 'Capital of France?' },
      ],
    });
  });

  it('reports the public model id, cost and cache status headers like chat completions', async () => {
    upstream.enqueue('aliased-up', {
      kind: 'reply',
      content: 'ok',
      usage: { prompt_tokens: 1000, completion_tokens: 500 },
    });
    const r = await svc.http('POST', '/v1/responses', { body: { model: 'mock-aliased', input: 'hi' } });
    expect(r.status).toBe(200);
    expect(r.json().model).toBe('mock-aliased');
    expect(upstream.requests[0]?.model).toBe('aliased-up');
    // 1000 * $1/1M + 500 * $2/1M
    expect(Number(r.headers.get('x-tollgate-cost-usd'))).toBeCloseTo(0.002, 9);
    expect(r.headers.get('x-tollgate-cache')).toBe('BYPASS');
    expect(r.headers.get('x-ratelimit-limit-requests')).toBe('10000');
  });

  it('serves /api/v1/responses too', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'alias ok' });
    const r = await svc.http('POST', '/api/v1/responses', { body: { model: 'mock-small', input: 'hi' } });
    expect(r.status).toBe(200);
    expect(r.json().output[0].content[0].text).toBe('alias ok');
  });

  it('turns text.format json_schema into response_format and returns parseable JSON (responses.parse)', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: '{"city":"Paris","population":2100000}' });
    const schema = {
      type: 'object',
      properties: { city: { type: 'string' }, population: { type: 'integer' } },
      required: ['city', 'population'],
      additionalProperties: false,
    };
    const r = await svc.client().responses.parse({
      model: 'mock-small',
      input: 'Largest city of France as JSON',
      text: { format: { type: 'json_schema', name: 'city', schema, strict: true } },
    });
    expect(r.output_parsed).toEqual({ city: 'Paris', population: 2100000 });
    expect(r.text?.format).toMatchObject({ type: 'json_schema', name: 'city', strict: true });
    expect(lastBody().response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'city', schema, strict: true },
    });
  });

  it('runs a function-calling round trip: function_call out, function_call_output back in', async () => {
    const client = svc.client();
    const tools = [
      {
        type: 'function' as const,
        name: 'get_weather',
        description: 'Weather for a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        strict: false,
      },
    ];
    upstream.enqueue('mock-small', {
      kind: 'reply',
      toolCalls: [
        {
          id: 'call_up_42',
          type: 'function',
          function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
        },
      ],
    });
    const first = await client.responses.create({ model: 'mock-small', input: 'Weather in Paris?', tools });
    expect(first.output).toEqual([
      {
        id: expect.stringMatching(/^fc_/),
        type: 'function_call',
        status: 'completed',
        call_id: 'call_up_42',
        name: 'get_weather',
        arguments: '{"city":"Paris"}',
      },
    ]);
    expect(upstream.requests[0]?.body).toMatchObject({
      tools: [
        {
          type: 'function',
          function: { name: 'get_weather', description: 'Weather for a city', strict: false },
        },
      ],
      tool_choice: 'auto',
    });

    upstream.enqueue('mock-small', { kind: 'reply', content: 'It is sunny in Paris.' });
    const second = await client.responses.create({
      model: 'mock-small',
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: 'call_up_42', output: '{"sky":"sunny"}' }],
      tools,
    });
    expect(second.output_text).toBe('It is sunny in Paris.');
    expect(second.previous_response_id).toBe(first.id);
    expect(upstream.requests[1]?.body.messages).toEqual([
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_up_42',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_up_42', content: '{"sky":"sunny"}' },
    ]);
  });

  it('accepts the whole conversation back as input without storing (store: false)', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'Done.' });
    const r = await svc.client().responses.create({
      model: 'mock-small',
      store: false,
      input: [
        { role: 'user', content: 'Add 2 and 3' },
        { type: 'function_call', call_id: 'call_add', name: 'add', arguments: '{"a":2,"b":3}' },
        { type: 'function_call_output', call_id: 'call_add', output: '5' },
      ],
      tools: [
        { type: 'function', name: 'add', parameters: { type: 'object', properties: {} }, strict: false },
      ],
    });
    expect(r.output_text).toBe('Done.');
    expect((r as unknown as { store: boolean }).store).toBe(false);
    const got = await svc.http('GET', `/v1/responses/${r.id}`);
    expect(got.status).toBe(404);
  });

  it('passes images as data: URIs and reasoning effort as reasoning_effort', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'A red dot.' });
    const image =
      'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
    await svc.client().responses.create({
      model: 'mock-small',
      reasoning: { effort: 'low' },
      input: [
        {
          role: 'user',
          content: [
            { type: 'input_text', text: 'What is this?' },
            { type: 'input_image', image_url: image, detail: 'high' },
          ],
        },
      ],
    });
    expect(lastBody()).toMatchObject({
      reasoning_effort: 'low',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_url', image_url: { url: image, detail: 'high' } },
          ],
        },
      ],
    });
  });

  it('reports a cut answer as incomplete with max_output_tokens', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'Once upon a', finishReason: 'length' });
    const r = await svc
      .client()
      .responses.create({ model: 'mock-small', input: 'story', max_output_tokens: 3 });
    expect(r.status).toBe('incomplete');
    expect(r.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(r.max_output_tokens).toBe(3);
    expect(lastBody().max_completion_tokens).toBe(3);
  });

  it('falls back to the next model like chat completions, naming the model that answered', async () => {
    upstream.enqueue('primary-up', { kind: 'error', status: 500 });
    upstream.enqueue('backup-up', { kind: 'reply', content: 'from backup' });
    const r = await svc.client().responses.create({ model: 'mock-primary', input: 'hi' });
    expect(r.output_text).toBe('from backup');
    expect(r.model).toBe('mock-backup');
    upstream.enqueue('primary-up', { kind: 'error', status: 502 });
    upstream.enqueue('backup-up', { kind: 'stream', tokens: ['saved'] });
    const s = await svc.client().responses.stream({ model: 'mock-primary', input: 'hi' }).finalResponse();
    expect(s.output_text).toBe('saved');
    expect(s.model).toBe('mock-backup');
  });

  it('relays an upstream refusal of the request as the same 4xx, and a 5xx as 502', async () => {
    upstream.enqueue('mock-small', { kind: 'error', status: 400, message: 'bad thing' });
    const bad = await svc.http('POST', '/v1/responses', { body: { model: 'mock-small', input: 'x' } });
    expect(bad.status).toBe(400);
    upstream.enqueue('mock-small', { kind: 'error', status: 500 });
    const down = await svc.http('POST', '/v1/responses', { body: { model: 'mock-small', input: 'x' } });
    expect(down.status).toBe(502);
    expect(down.json().error).toMatchObject({ type: expect.any(String), message: expect.any(String) });
  });
});

describe('streaming', () => {
  const EXPECTED_TEXT_EVENTS = [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.delta',
    'response.output_text.delta',
    'response.output_text.delta',
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.completed',
  ];

  it('sends named events in OpenAI order with sequence numbers, item ids and output indexes', async () => {
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: ['Hel', 'lo', '!'],
      usage: { prompt_tokens: 9, completion_tokens: 3 },
    });
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'mock-small', input: 'hi', stream: true },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/event-stream');
    const frames = parseSse(r.text).filter((f) => f.event !== ':');
    expect(frames.map((f) => f.event)).toEqual(EXPECTED_TEXT_EVENTS);
    // `event:` names the payload's type; numbering starts at 0 and has no gaps.
    expect(frames.every((f) => f.event === f.data.type)).toBe(true);
    expect(frames.map((f) => f.data.sequence_number)).toEqual(frames.map((_, i) => i));
    const itemId = frames[2]?.data.item.id;
    for (const f of frames.slice(3, 9)) expect(f.data).toMatchObject({ item_id: itemId, output_index: 0 });
    expect(frames.map((f) => f.data.delta).filter(Boolean)).toEqual(['Hel', 'lo', '!']);
    expect(frames[0]?.data.response).toMatchObject({ status: 'in_progress', output: [], usage: null });
    expect(frames.at(-1)?.data.response).toMatchObject({
      status: 'completed',
      output: [{ id: itemId, content: [{ text: 'Hello!' }] }],
      usage: { input_tokens: 9, output_tokens: 3, total_tokens: 12 },
    });
    // No chat-style terminator on a Responses stream.
    expect(r.text).not.toContain('[DONE]');
  });

  it('streams function calls: added, argument deltas, done, with the upstream call id', async () => {
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: [],
      toolCalls: [
        { id: 'call_s1', type: 'function', function: { name: 'lookup', arguments: '{"q":"tollgate"}' } },
        { id: 'call_s2', type: 'function', function: { name: 'lookup', arguments: '{"q":"gateway"}' } },
      ],
    });
    const r = await svc.http('POST', '/v1/responses', {
      body: {
        model: 'mock-small',
        input: 'look up both',
        stream: true,
        tools: [{ type: 'function', name: 'lookup', parameters: { type: 'object' }, strict: false }],
      },
    });
    const frames = parseSse(r.text).filter((f) => f.event !== ':');
    expect(frames.map((f) => f.event)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(frames[2]?.data.item).toMatchObject({
      type: 'function_call',
      call_id: 'call_s1',
      name: 'lookup',
      arguments: '',
    });
    expect(frames[5]?.data).toMatchObject({ arguments: '{"q":"tollgate"}', output_index: 0 });
    expect(frames[10]?.data).toMatchObject({ arguments: '{"q":"gateway"}', output_index: 1 });
    expect(frames.at(-1)?.data.response.output.map((o: { call_id: string }) => o.call_id)).toEqual([
      'call_s1',
      'call_s2',
    ]);
  });

  it('works with responses.stream() and finalResponse(), the SDK checking every event', async () => {
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['Stream', 'ed ', 'answer'] });
    const seen: string[] = [];
    let deltas = '';
    const s = svc.client().responses.stream({ model: 'mock-small', input: 'go' });
    s.on('event', (e) => seen.push(e.type));
    s.on('response.output_text.delta', (e) => {
      deltas += e.delta;
    });
    const final = await s.finalResponse();
    expect(final.output_text).toBe('Streamed answer');
    expect(deltas).toBe('Streamed answer');
    expect(final.status).toBe('completed');
    expect(seen).toEqual(EXPECTED_TEXT_EVENTS);
    // The streamed response was stored before response.completed went out.
    const again = await svc.client().responses.retrieve(final.id);
    expect(again.output_text).toBe('Streamed answer');
  });

  it('iterates raw events with responses.create({ stream: true })', async () => {
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['a', 'b', 'c'] });
    const stream = await svc.client().responses.create({ model: 'mock-small', input: 'x', stream: true });
    const types: string[] = [];
    for await (const e of stream) types.push(e.type);
    expect(types).toEqual(EXPECTED_TEXT_EVENTS);
  });

  it('sends : ping comments while the first token is slow, then the events', async () => {
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['late'], firstTokenDelayMs: 450 });
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'mock-small', input: 'hi', stream: true },
    });
    const frames = parseSse(r.text);
    expect(frames.filter((f) => f.event === ':').length).toBeGreaterThanOrEqual(2);
    expect(frames.at(-1)?.event).toBe('response.completed');
  });

  it('answers a failure before the upstream accepted as a plain HTTP error, as chat does', async () => {
    upstream.enqueue('mock-small', { kind: 'error', status: 500 });
    const raw = await svc.http('POST', '/v1/responses', {
      body: { model: 'mock-small', input: 'x', stream: true },
    });
    expect(raw.status).toBe(502);
    expect(raw.headers.get('content-type')).toContain('application/json');
    expect(raw.json().error.type).toBe('upstream_error');
    upstream.enqueue('mock-small', { kind: 'error', status: 500 });
    const err = await svc
      .client()
      .responses.create({ model: 'mock-small', input: 'x', stream: true })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err.status).toBe(502);
  });

  it('sends an error event when the upstream fails after : ping comments but before response.created', async () => {
    upstream.enqueue('slow-up', { kind: 'stream', tokens: ['too late'], firstTokenDelayMs: 5000 });
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'mock-slow', input: 'x', stream: true },
    });
    expect(r.status).toBe(200);
    const frames = parseSse(r.text);
    expect(frames[0]?.event).toBe(':');
    const events = frames.filter((f) => f.event !== ':');
    expect(events).toEqual([
      {
        event: 'error',
        data: {
          type: 'error',
          sequence_number: 0,
          code: 'upstream_timeout',
          message: expect.any(String),
          param: null,
        },
      },
    ]);
    upstream.enqueue('slow-up', { kind: 'stream', tokens: ['too late'], firstTokenDelayMs: 5000 });
    const stream = await svc.client().responses.create({ model: 'mock-slow', input: 'x', stream: true });
    await expect(
      (async () => {
        for await (const _ of stream) {
          // drain
        }
      })(),
    ).rejects.toBeInstanceOf(OpenAI.APIError);
  });

  it('ends with response.failed when the upstream dies after the first event, recording usage', async () => {
    const { key, owner } = await svc.createKey();
    upstream.enqueue('mock-small', {
      kind: 'die-mid-stream',
      tokens: ['one ', 'two ', 'three'],
      afterTokens: 2,
    });
    const r = await svc.http('POST', '/v1/responses', {
      key,
      body: { model: 'mock-small', input: 'x', stream: true },
    });
    const frames = parseSse(r.text).filter((f) => f.event !== ':');
    const last = frames.at(-1);
    expect(last?.event).toBe('response.failed');
    expect(last?.data.response).toMatchObject({
      status: 'failed',
      error: { code: 'server_error', message: expect.any(String) },
      output: [
        { type: 'message', status: 'incomplete', content: [{ type: 'output_text', text: 'one two ' }] },
      ],
    });
    expect(frames.map((f) => f.event)).not.toContain('response.completed');
    const rows = await eventually(async () => {
      const rs = await records(owner);
      return rs.length === 1 ? rs : null;
    });
    expect(rows[0]).toMatchObject({ status: 502, source: 'sync', endpoint: 'responses', stream: true });
    expect(rows[0]?.completionTokens).toBeGreaterThan(0);
  });

  it('aborts the upstream when the client goes away mid-stream and records a 499 usage row', async () => {
    const { key, owner } = await svc.createKey();
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: Array.from({ length: 200 }, (_, i) => `t${i} `),
      delayMs: 20,
    });
    const ac = new AbortController();
    const stream = await svc
      .client(key)
      .responses.create({ model: 'mock-small', input: 'long', stream: true }, { signal: ac.signal });
    let n = 0;
    await (async () => {
      for await (const e of stream) if (e.type === 'response.output_text.delta' && ++n === 3) ac.abort();
    })().catch(() => undefined);
    await eventually(() => upstream.requests[0]?.aborted === true);
    const rows = await eventually(async () => {
      const rs = await records(owner);
      return rs.length === 1 ? rs : null;
    });
    expect(rows[0]).toMatchObject({
      status: 499,
      errorCode: 'client_closed',
      source: 'sync',
      endpoint: 'responses',
    });
    expect(rows[0]?.completionTokens).toBeGreaterThan(0);
  });
});

describe('stored responses', () => {
  it('continues a conversation over previous_response_id chains, without earlier instructions', async () => {
    const client = svc.client();
    upstream.enqueue('mock-small', { kind: 'reply', content: 'Hi Ada.' });
    const a = await client.responses.create({
      model: 'mock-small',
      instructions: 'Be kind.',
      input: 'I am Ada.',
    });
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['Noted', '.'] });
    const bStream = client.responses.stream({
      model: 'mock-small',
      previous_response_id: a.id,
      input: 'I like tea.',
    });
    const b = await bStream.finalResponse();
    upstream.enqueue('mock-small', { kind: 'reply', content: 'You are Ada and like tea.' });
    const c = await client.responses.create({
      model: 'mock-small',
      previous_response_id: b.id,
      instructions: 'Be brief.',
      input: 'Who am I?',
    });
    expect(c.output_text).toBe('You are Ada and like tea.');
    expect(upstream.requests[2]?.body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'I am Ada.' },
      { role: 'assistant', content: 'Hi Ada.' },
      { role: 'user', content: 'I like tea.' },
      { role: 'assistant', content: 'Noted.' },
      { role: 'user', content: 'Who am I?' },
    ]);
  });

  it('retrieves a stored response as it was returned', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'kept' });
    const client = svc.client();
    const created = await client.responses.create({ model: 'mock-small', input: 'keep this' });
    const got = await client.responses.retrieve(created.id);
    expect(got).toEqual(created);
    const api = await svc.http('GET', `/api/v1/responses/${created.id}`);
    expect(api.status).toBe(200);
    expect(api.json().id).toBe(created.id);
  });

  it('replays a stored response as events with stream=true, from after starting_after', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'replayed' });
    const created = await svc.client().responses.create({ model: 'mock-small', input: 'x' });
    const r = await svc.http('GET', `/v1/responses/${created.id}?stream=true`);
    const frames = parseSse(r.text);
    expect(frames[0]?.event).toBe('response.created');
    expect(frames.at(-1)?.data.response.output).toEqual(created.output);
    const tail = parseSse(
      (await svc.http('GET', `/v1/responses/${created.id}?stream=true&starting_after=5`)).text,
    );
    expect(tail[0]?.data.sequence_number).toBe(6);
  });

  it('deletes a response: then 404 on retrieve, delete and as previous_response_id', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'short-lived' });
    const client = svc.client();
    const created = await client.responses.create({ model: 'mock-small', input: 'x' });
    const del = await svc.http('DELETE', `/v1/responses/${created.id}`);
    expect(del.status).toBe(200);
    expect(del.json()).toEqual({ id: created.id, object: 'response', deleted: true });
    const got = await svc.http('GET', `/v1/responses/${created.id}`);
    expect(got.status).toBe(404);
    expect(got.json()).toEqual({
      error: {
        message: `Response with id '${created.id}' not found.`,
        type: 'invalid_request_error',
        param: 'response_id',
        code: 'response_not_found',
      },
    });
    expect((await svc.http('DELETE', `/v1/responses/${created.id}`)).status).toBe(404);
    const chained = await client.responses
      .create({ model: 'mock-small', previous_response_id: created.id, input: 'again' })
      .catch((e) => e);
    expect(chained).toBeInstanceOf(OpenAI.NotFoundError);
    expect(chained.error).toMatchObject({
      param: 'previous_response_id',
      code: 'previous_response_not_found',
    });
    expect(upstream.requests).toHaveLength(1);
  });

  it('lists input items newest first by default, with asc order and cursor pagination', async () => {
    const client = svc.client();
    upstream.enqueue('mock-small', { kind: 'reply', content: 'one' });
    const a = await client.responses.create({ model: 'mock-small', input: 'first' });
    upstream.enqueue('mock-small', { kind: 'reply', content: 'two' });
    const b = await client.responses.create({
      model: 'mock-small',
      previous_response_id: a.id,
      input: [
        { role: 'user', content: 'second' },
        { role: 'user', content: [{ type: 'input_text', text: 'third' }] },
      ],
    });
    const text = (i: ResponseItem) => {
      const part = i.type === 'message' ? i.content[0] : undefined;
      return part && 'text' in part ? part.text : undefined;
    };
    const desc = await client.responses.inputItems.list(b.id);
    expect(desc.data.map(text)).toEqual(['third', 'second', 'one', 'first']);
    expect(desc.data.every((i) => typeof i.id === 'string' && i.id.length > 0)).toBe(true);
    const asc = await client.responses.inputItems.list(b.id, { order: 'asc', limit: 2 });
    expect(asc.data.map(text)).toEqual(['first', 'one']);
    expect(asc.has_more).toBe(true);
    const all: string[] = [];
    for await (const item of client.responses.inputItems.list(b.id, { order: 'asc', limit: 1 }))
      all.push(text(item) ?? '');
    expect(all).toEqual(['first', 'one', 'second', 'third']);
    const raw = await svc.http(
      'GET',
      `/v1/responses/${b.id}/input_items?order=asc&limit=2&after=${asc.data[1]?.id}`,
    );
    expect(raw.json()).toMatchObject({ object: 'list', has_more: false, first_id: expect.any(String) });
    expect(raw.json().data.map(text)).toEqual(['second', 'third']);
  });

  it('keeps every stored response to its owner: another key gets the 404 of a missing id', async () => {
    const alice = await svc.createKey();
    const bob = await svc.createKey();
    upstream.enqueue('mock-small', {
      kind: 'reply',
      toolCalls: [{ id: 'call_secret', type: 'function', function: { name: 'f', arguments: '{}' } }],
    });
    const mine = await svc.client(alice.key).responses.create({
      model: 'mock-small',
      input: 'secret',
      tools: [{ type: 'function', name: 'f', parameters: { type: 'object' }, strict: false }],
    });
    const missing = (
      await svc.http('GET', '/v1/responses/resp_00000000000000000000000000000000', { key: bob.key })
    ).json();
    const theirs = await svc.http('GET', `/v1/responses/${mine.id}`, { key: bob.key });
    expect(theirs.status).toBe(404);
    expect(theirs.json().error.code).toBe(missing.error.code);
    expect((await svc.http('GET', `/v1/responses/${mine.id}/input_items`, { key: bob.key })).status).toBe(
      404,
    );
    expect((await svc.http('DELETE', `/v1/responses/${mine.id}`, { key: bob.key })).status).toBe(404);
    const chained = await svc.http('POST', '/v1/responses', {
      key: bob.key,
      body: { model: 'mock-small', previous_response_id: mine.id, input: 'tell me' },
    });
    expect(chained.status).toBe(404);
    expect(chained.json().error.param).toBe('previous_response_id');
    const referenced = await svc.http('POST', '/v1/responses', {
      key: bob.key,
      body: {
        model: 'mock-small',
        input: [
          { role: 'user', content: 'x' },
          { type: 'item_reference', id: mine.output[0]?.id },
        ],
      },
    });
    expect(referenced.status).toBe(404);
    expect(referenced.json().error).toMatchObject({ param: 'input[1].id', code: 'item_not_found' });
    // Nothing of Bob's attempts reached the model, and Alice still has her response.
    expect(upstream.requests).toHaveLength(1);
    expect((await svc.http('GET', `/v1/responses/${mine.id}`, { key: alice.key })).status).toBe(200);
  });

  it('treats an expired response as gone, also as previous_response_id', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'old' });
    const old = await svc.client().responses.create({ model: 'mock-small', input: 'x' });
    await expireStoredResponse(svc, old.id);
    expect((await svc.http('GET', `/v1/responses/${old.id}`)).status).toBe(404);
    const chained = await svc.http('POST', '/v1/responses', {
      body: { model: 'mock-small', previous_response_id: old.id, input: 'more' },
    });
    expect(chained.status).toBe(404);
    expect(chained.json().error).toMatchObject({
      param: 'previous_response_id',
      code: 'previous_response_not_found',
    });
  });

  it("resolves item_reference inputs from the caller's stored items", async () => {
    const client = svc.client();
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'Checking.',
      toolCalls: [{ id: 'call_ref', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }],
    });
    const tools = [{ type: 'function' as const, name: 'f', parameters: { type: 'object' }, strict: false }];
    const first = await client.responses.create({ model: 'mock-small', input: 'go', tools });
    upstream.enqueue('mock-small', { kind: 'reply', content: 'done' });
    await client.responses.create({
      model: 'mock-small',
      tools,
      input: [
        { role: 'user', content: 'go' },
        ...first.output.map((o) => ({ type: 'item_reference' as const, id: o.id ?? '' })),
        { type: 'function_call_output', call_id: 'call_ref', output: 'ok' },
      ],
    });
    expect(upstream.requests[1]?.body.messages).toEqual([
      { role: 'user', content: 'go' },
      {
        role: 'assistant',
        content: 'Checking.',
        tool_calls: [{ id: 'call_ref', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }],
      },
      { role: 'tool', tool_call_id: 'call_ref', content: 'ok' },
    ]);
  });
});

describe('metering: the same keys, limits, cache and usage as chat completions', () => {
  it('writes one usage row per response with tokens, cost and endpoint responses', async () => {
    const { key, owner } = await svc.createKey();
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'a',
      usage: { prompt_tokens: 100, completion_tokens: 10 },
    });
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: ['b'],
      usage: { prompt_tokens: 50, completion_tokens: 5 },
    });
    await svc.client(key).responses.create({ model: 'mock-small', input: 'one' });
    const s = await svc.client(key).responses.create({ model: 'mock-small', input: 'two', stream: true });
    for await (const _ of s) {
      // drain
    }
    const rows = await eventually(async () => {
      const rs = await records(owner);
      return rs.length === 2 ? rs : null;
    });
    const byStream = Object.fromEntries(rows.map((r) => [String(r.stream), r]));
    expect(byStream['false']).toMatchObject({
      promptTokens: 100,
      completionTokens: 10,
      status: 200,
      source: 'sync',
      endpoint: 'responses',
    });
    expect(byStream['false']?.costUsd).toBeCloseTo((100 * 1 + 10 * 2) / 1e6, 12);
    expect(byStream['true']).toMatchObject({
      promptTokens: 50,
      completionTokens: 5,
      status: 200,
      source: 'sync',
      endpoint: 'responses',
    });
  });

  it("applies the key's rate limit (429 with retry-after) before anything reaches the model", async () => {
    const { key } = await svc.createKey({ limits: { rpm: 1 } });
    upstream.enqueue('mock-small', { kind: 'reply', content: 'first' });
    expect(
      (await svc.http('POST', '/v1/responses', { key, body: { model: 'mock-small', input: 'x' } })).status,
    ).toBe(200);
    const second = await svc.http('POST', '/v1/responses', {
      key,
      body: { model: 'mock-small', input: 'x' },
    });
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBeTruthy();
    expect(upstream.requests).toHaveLength(1);
  });

  it('refuses a conversation longer than the context window, naming input (not chat messages)', async () => {
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'mock-tiny', input: 'word '.repeat(200) },
    });
    expect(r.status).toBe(400);
    expect(r.json().error).toMatchObject({ param: 'input', code: 'context_length_exceeded' });
    expect(upstream.requests).toHaveLength(0);
  });

  it("shares the model's concurrency limit: beyond it, 503 server_busy with retry-after", async () => {
    upstream.setDefault('narrow-up', { kind: 'reply', content: 'slow', delayMs: 300 });
    const results = await Promise.all(
      [0, 1].map(() => svc.http('POST', '/v1/responses', { body: { model: 'mock-narrow', input: 'x' } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 503]);
    const busy = results.find((r) => r.status === 503);
    expect(busy?.json().error.code).toBe('server_busy');
    expect(busy?.headers.get('retry-after')).toBeTruthy();
  });

  it('refuses a model the key may not use, naming the field', async () => {
    const { key } = await svc.createKey({ models: ['mock-small'] });
    const r = await svc.http('POST', '/v1/responses', { key, body: { model: 'mock-backup', input: 'x' } });
    expect(r.status).toBe(403);
    expect(r.json().error).toMatchObject({ param: 'model', code: 'model_not_allowed' });
  });

  it('serves a repeated deterministic request from the cache, streamed or not', async () => {
    const { key } = await svc.createKey();
    const body = { model: 'mock-small', input: 'cache me', temperature: 0 };
    upstream.enqueue('mock-small', { kind: 'reply', content: 'cached answer' });
    const first = await svc.http('POST', '/v1/responses', { key, body });
    const second = await svc.http('POST', '/v1/responses', { key, body });
    expect(first.headers.get('x-tollgate-cache')).toBe('MISS');
    expect(second.headers.get('x-tollgate-cache')).toBe('HIT');
    expect(second.json().output_text).toBeUndefined();
    expect(second.json().output[0].content[0].text).toBe('cached answer');
    expect(second.json().id).not.toBe(first.json().id);
    expect(second.headers.get('x-tollgate-cost-usd')).toBe('0.0');
    const streamed = await svc.http('POST', '/v1/responses', { key, body: { ...body, stream: true } });
    expect(streamed.headers.get('x-tollgate-cache')).toBe('HIT');
    const frames = parseSse(streamed.text);
    expect(frames.at(-1)?.data.response.output[0].content[0].text).toBe('cached answer');
    expect(upstream.requests).toHaveLength(1);
  });

  it('bypasses the cache with Cache-Control: no-store', async () => {
    const body = { model: 'mock-small', input: 'no store', temperature: 0 };
    await svc.http('POST', '/v1/responses', { body });
    const r = await svc.http('POST', '/v1/responses', { body, headers: { 'cache-control': 'no-store' } });
    expect(r.headers.get('x-tollgate-cache')).toBe('BYPASS');
    expect(upstream.requests).toHaveLength(2);
  });
});

describe('when the responses table is unavailable', () => {
  it('still answers (streamed or not); the response is just not retrievable', async () => {
    const broken = await startTestService({
      stack,
      plugins: [registerResponsesRoutes],
      env: { TOLLGATE_TABLE_RESPONSES: 'no-such-responses-table' },
      config: { models: [mockModel(upstream, 'mock-small')] },
    });
    try {
      upstream.enqueue('mock-small', { kind: 'reply', content: 'still here' });
      const r = await broken.client().responses.create({ model: 'mock-small', input: 'x' });
      expect(r.output_text).toBe('still here');
      upstream.enqueue('mock-small', { kind: 'stream', tokens: ['streamed ', 'anyway'] });
      const s = await broken.client().responses.stream({ model: 'mock-small', input: 'y' }).finalResponse();
      expect(s.output_text).toBe('streamed anyway');
    } finally {
      await broken.stop();
    }
  });
});

describe('the simulator family', () => {
  it('answers, streams and chains through the Responses API with no upstream', async () => {
    const client = svc.client();
    const a = await client.responses.create({ model: 'sim', input: 'What is Tollgate?' });
    expect(a.output_text).toContain('You asked: "What is Tollgate?"');
    expect(a.usage?.input_tokens).toBeGreaterThan(0);
    const s = client.responses.stream({ model: 'sim', previous_response_id: a.id, input: 'And then?' });
    const b = await s.finalResponse();
    expect(b.output_text).toContain('You asked: "And then?"');
    expect(b.usage?.output_tokens).toBeGreaterThan(0);
    const items = await client.responses.inputItems.list(b.id, { order: 'asc' });
    expect(items.data.map((i) => i.type)).toEqual(['message', 'message', 'message']);
  });

  it('ends a simulated answer cut by max_output_tokens as response.incomplete', async () => {
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'sim', input: 'tell me a long story', max_output_tokens: 3, stream: true },
    });
    const last = parseSse(r.text).at(-1);
    expect(last?.event).toBe('response.incomplete');
    expect(last?.data.response).toMatchObject({
      status: 'incomplete',
      incomplete_details: { reason: 'max_output_tokens' },
    });
  });
});
