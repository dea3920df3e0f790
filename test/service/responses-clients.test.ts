/**
 * The Responses API with the clients that call it by default: the Vercel AI SDK's
 * `openai('...')` model and LangChain's `ChatOpenAI` with `useResponsesApi: true`, against the
 * scripted OpenAI-compatible mock and the simulator.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateObject, generateText, stepCountIs, streamText, tool } from 'ai';
import { z } from 'zod';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { registerResponsesRoutes } from '../helpers/responses';
import { DEV_KEY, mockModel, startTestService, type TestService } from '../helpers/service';

let upstream: MockUpstream;
let svc: TestService;
/** JSON bodies the AI SDK sent to /v1/responses, in order. */
let sent: Array<Record<string, unknown>>;

beforeAll(async () => {
  upstream = await startMockUpstream();
  svc = await startTestService({
    name: 'responses-clients',
    plugins: [registerResponsesRoutes],
    config: {
      models: [
        mockModel(upstream, 'mock-small'),
        { id: 'sim', provider: 'simulator', simulator: { ttftMs: 5, tokensPerSecond: 2000 } },
      ],
      tiers: { basic: { limits: { rpm: 10_000 }, models: ['*'] } },
    },
  });
});

afterAll(async () => {
  await svc?.stop();
  await upstream?.close();
});

beforeEach(() => {
  upstream.reset();
  sent = [];
});

/** The AI SDK's default OpenAI provider, pointed at Tollgate, recording what it sends. */
function vercel() {
  return createOpenAI({
    baseURL: svc.baseURL,
    apiKey: DEV_KEY,
    fetch: async (input, init) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (url.endsWith('/responses') && typeof init?.body === 'string') sent.push(JSON.parse(init.body));
      return fetch(input, init);
    },
  });
}

function langchain(model = 'mock-small', fields: Record<string, unknown> = {}) {
  return new ChatOpenAI({
    model,
    apiKey: DEV_KEY,
    configuration: { baseURL: svc.baseURL },
    useResponsesApi: true,
    maxRetries: 0,
    ...fields,
  });
}

describe('Vercel AI SDK: openai(id) calls /v1/responses', () => {
  it('generateText returns the text and usage', async () => {
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'Paris.',
      usage: { prompt_tokens: 12, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 4 } },
    });
    const r = await generateText({
      model: vercel()('mock-small'),
      system: 'Be brief.',
      prompt: 'Capital of France?',
    });
    expect(r.text).toBe('Paris.');
    expect(r.finishReason).toBe('stop');
    expect(r.usage).toMatchObject({
      inputTokens: 12,
      outputTokens: 2,
      totalTokens: 14,
      cachedInputTokens: 4,
    });
    expect(sent).toHaveLength(1);
    expect(upstream.requests[0]?.body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Capital of France?' },
    ]);
  });

  it('streamText streams the deltas and reports usage', async () => {
    upstream.enqueue('mock-small', {
      kind: 'stream',
      tokens: ['Str', 'eam', 'ed.'],
      usage: { prompt_tokens: 5, completion_tokens: 3 },
    });
    const r = streamText({ model: vercel()('mock-small'), prompt: 'Say streamed.' });
    const parts: string[] = [];
    for await (const d of r.textStream) parts.push(d);
    expect(parts.join('')).toBe('Streamed.');
    expect(parts.length).toBeGreaterThanOrEqual(3);
    expect(await r.usage).toMatchObject({ inputTokens: 5, outputTokens: 3 });
    expect(await r.finishReason).toBe('stop');
  });

  it('runs a multi-step tool loop: the second step refers to the stored message by item_reference', async () => {
    upstream.enqueue(
      'mock-small',
      {
        kind: 'reply',
        content: 'Let me check.',
        toolCalls: [
          { id: 'call_w1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
        ],
      },
      { kind: 'reply', content: 'Snowing in Oslo.' },
    );
    const calls: string[] = [];
    const r = await generateText({
      model: vercel()('mock-small'),
      prompt: 'Weather in Oslo?',
      tools: {
        weather: tool({
          description: 'Current weather',
          inputSchema: z.object({ city: z.string() }),
          execute: async ({ city }) => {
            calls.push(city);
            return { city, sky: 'snow' };
          },
        }),
      },
      stopWhen: stepCountIs(3),
    });
    expect(r.text).toBe('Snowing in Oslo.');
    expect(calls).toEqual(['Oslo']);
    expect(r.steps).toHaveLength(2);
    // Step 2 refers to step 1's stored assistant message by id instead of resending it.
    const step2 = (sent[1]?.input ?? []) as Array<Record<string, unknown>>;
    expect(step2.map((i) => i.type ?? 'message')).toEqual([
      'message',
      'item_reference',
      'function_call',
      'function_call_output',
    ]);
    expect(upstream.requests[1]?.body.messages).toEqual([
      { role: 'user', content: 'Weather in Oslo?' },
      {
        role: 'assistant',
        content: 'Let me check.',
        tool_calls: [
          { id: 'call_w1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_w1', content: '{"city":"Oslo","sky":"snow"}' },
    ]);
  });

  it('continues a conversation from response messages (item_reference to the stored answer)', async () => {
    const model = vercel()('mock-small');
    upstream.enqueue('mock-small', { kind: 'reply', content: 'Hi Ada.' });
    const first = await generateText({ model, prompt: 'I am Ada.' });
    upstream.enqueue('mock-small', { kind: 'reply', content: 'You are Ada.' });
    const second = await generateText({
      model,
      messages: [
        { role: 'user', content: 'I am Ada.' },
        ...first.response.messages,
        { role: 'user', content: 'Who am I?' },
      ],
    });
    expect(second.text).toBe('You are Ada.');
    expect((sent[1]?.input as Array<Record<string, unknown>> | undefined)?.[1]).toMatchObject({
      type: 'item_reference',
    });
    expect(upstream.requests[1]?.body.messages).toEqual([
      { role: 'user', content: 'I am Ada.' },
      { role: 'assistant', content: 'Hi Ada.' },
      { role: 'user', content: 'Who am I?' },
    ]);
  });

  it('streams a tool loop with streamText as well', async () => {
    upstream.enqueue(
      'mock-small',
      {
        kind: 'stream',
        tokens: [],
        toolCalls: [
          { id: 'call_s1', type: 'function', function: { name: 'add', arguments: '{"a":2,"b":3}' } },
        ],
      },
      { kind: 'stream', tokens: ['2 + 3 = ', '5'] },
    );
    const r = streamText({
      model: vercel()('mock-small'),
      prompt: 'Add 2 and 3',
      tools: {
        add: tool({
          inputSchema: z.object({ a: z.number(), b: z.number() }),
          execute: async ({ a, b }) => a + b,
        }),
      },
      stopWhen: stepCountIs(3),
    });
    let text = '';
    for await (const d of r.textStream) text += d;
    expect(text).toBe('2 + 3 = 5');
    expect((await r.steps).length).toBe(2);
    expect(upstream.requests[1]?.body.messages).toContainEqual({
      role: 'tool',
      tool_call_id: 'call_s1',
      content: '5',
    });
  });

  it('generateObject sends a json_schema format and parses the answer', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: '{"name":"Ada","born":1815}' });
    const r = await generateObject({
      model: vercel()('mock-small'),
      schema: z.object({ name: z.string(), born: z.number() }),
      prompt: 'A mathematician',
    });
    expect(r.object).toEqual({ name: 'Ada', born: 1815 });
    expect(upstream.requests[0]?.body.response_format).toMatchObject({
      type: 'json_schema',
      json_schema: { name: 'response', strict: true, schema: { type: 'object', required: ['name', 'born'] } },
    });
  });

  it('works against the simulator family', async () => {
    const r = await generateText({ model: vercel()('sim'), prompt: 'Hello simulator' });
    expect(r.text).toContain('You asked: "Hello simulator"');
    const s = streamText({ model: vercel()('sim'), prompt: 'Stream please' });
    let text = '';
    for await (const d of s.textStream) text += d;
    expect(text).toContain('You asked: "Stream please"');
  });
});

describe('LangChain ChatOpenAI with useResponsesApi', () => {
  it('invokes and reports usage metadata', async () => {
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: 'LangChain ok',
      usage: { prompt_tokens: 7, completion_tokens: 2 },
    });
    const m = await langchain().invoke([
      ['system', 'Be brief.'],
      ['human', 'hello'],
    ]);
    expect(m.text).toBe('LangChain ok');
    expect(m.usage_metadata).toMatchObject({ input_tokens: 7, output_tokens: 2, total_tokens: 9 });
    expect(upstream.requests[0]?.body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello' },
    ]);
  });

  it('streams', async () => {
    upstream.enqueue('mock-small', { kind: 'stream', tokens: ['Lang', 'Chain'] });
    let text = '';
    for await (const chunk of await langchain().stream('hi')) text += chunk.text;
    expect(text).toBe('LangChain');
  });

  it('calls tools and sends their results back', async () => {
    const getTime = {
      type: 'function' as const,
      function: {
        name: 'get_time',
        description: 'Current time in a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    };
    upstream.enqueue('mock-small', {
      kind: 'reply',
      toolCalls: [
        { id: 'call_lc', type: 'function', function: { name: 'get_time', arguments: '{"city":"Rome"}' } },
      ],
    });
    const model = langchain().bindTools([getTime]);
    const ai = await model.invoke('Time in Rome?');
    expect(ai.tool_calls).toEqual([
      expect.objectContaining({ id: 'call_lc', name: 'get_time', args: { city: 'Rome' } }),
    ]);
    upstream.enqueue('mock-small', { kind: 'reply', content: 'It is noon in Rome.' });
    const { ToolMessage, HumanMessage } = await import('@langchain/core/messages');
    const final = await model.invoke([
      new HumanMessage('Time in Rome?'),
      ai,
      new ToolMessage({ tool_call_id: 'call_lc', content: '12:00' }),
    ]);
    expect(final.text).toBe('It is noon in Rome.');
    expect(upstream.requests[1]?.body.messages).toContainEqual({
      role: 'tool',
      tool_call_id: 'call_lc',
      content: '12:00',
    });
  });

  it('returns structured output through a json_schema format', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: '{"answer":42}' });
    const structured = langchain().withStructuredOutput(z.object({ answer: z.number() }), {
      method: 'jsonSchema',
    });
    expect(await structured.invoke('The answer?')).toEqual({ answer: 42 });
    expect(upstream.requests[0]?.body.response_format).toMatchObject({ type: 'json_schema' });
  });

  it('works against the simulator family', async () => {
    const m = await langchain('sim').invoke('Hi from LangChain');
    expect(m.text).toContain('You asked: "Hi from LangChain"');
  });
});
