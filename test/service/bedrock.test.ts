/**
 * Bedrock models through the real service: the official openai SDK as the client, Tollgate
 * with its real Redis, dynalite and local-aws-sqs, the real @aws-sdk/client-bedrock-runtime
 * talking to the scripted Bedrock-protocol server (AWS_ENDPOINT_URL_BEDROCK_RUNTIME),
 * and the scripted OpenAI-compatible mock for fallbacks across families.
 */
import OpenAI from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { readEnv } from '../../container/src/config/env';
import { SERVICE_NAMES } from '../../container/src/contract';
import { registerAssistantRoutes } from '../../container/src/conversations/routes';
import { JobStore } from '../../container/src/jobs/job-store';
import { JobProcessor } from '../../container/src/jobs/processor';
import { registerAsyncRoutes } from '../../container/src/jobs/routes';
import { createDlqHandler, createWorkerHandler } from '../../container/src/jobs/worker';
import { type LocalWorker, startLocalWorker } from '../../container/src/local/poller';
import { bedrockIdentifier } from '../../container/src/providers/bedrock/tool-names';
import { createRuntime, type Runtime } from '../../container/src/runtime';
import { queryUsageRecords } from '../../container/src/usage/usage-recorder';
import {
  type BedrockScript,
  type BedrockServer,
  bedrockModel,
  embedding,
  startBedrockServer,
} from '../helpers/bedrock-server';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { eventually, mockModel, startTestService, type TestService } from '../helpers/service';

const CLAUDE = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const RETRYING = 'anthropic.claude-haiku-retry-v1:0';
const FALLING = 'anthropic.claude-falls-back-v1:0';
const EU = 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0';
const SINGLE = 'anthropic.claude-one-at-a-time-v1:0';
const TITAN = 'amazon.titan-embed-text-v2:0';
const COHERE = 'cohere.embed-english-v3';

let bedrock: BedrockServer;
let upstream: MockUpstream;
let svc: TestService;
let workerRt: Runtime;
let worker: LocalWorker;
let openai: OpenAI;

function catalogue(u: MockUpstream) {
  return [
    bedrockModel('claude', { upstreamModel: CLAUDE }),
    bedrockModel('claude-retry', { upstreamModel: RETRYING, maxRetries: 2 }),
    bedrockModel('claude-fb', { upstreamModel: FALLING, fallbacks: ['mock-small'] }),
    bedrockModel('claude-eu', { upstreamModel: EU, region: 'eu-west-1' }),
    bedrockModel('claude-one', { upstreamModel: SINGLE, maxConcurrent: 1, maxQueue: 0 }),
    bedrockModel('titan', { upstreamModel: TITAN, endpoints: ['embeddings'], pricing: { input: 0.02 } }),
    bedrockModel('cohere', {
      upstreamModel: COHERE,
      endpoints: ['embeddings'],
      input_type: 'search_query',
      pricing: { input: 0.1 },
    }),
    mockModel(u, 'mock-small'),
    mockModel(u, 'mock-fb', { upstreamModel: 'mock-fb-up', fallbacks: ['claude'] }),
  ];
}

beforeAll(async () => {
  bedrock = await startBedrockServer();
  upstream = await startMockUpstream();
  svc = await startTestService({
    name: 'bedrock',
    plugins: [registerAsyncRoutes, registerAssistantRoutes],
    env: { AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url },
    config: {
      models: catalogue(upstream),
      auto: { rules: [{ codeHeavy: true, model: 'mock-small' }], default: 'claude' },
      tiers: { basic: { limits: { rpm: 100_000 }, models: ['*'] } },
      usage: { flushIntervalMs: 100 },
    },
  });
  // The async worker with a runtime of its own, as the Lambda has.
  workerRt = await createRuntime(
    readEnv({
      ...process.env,
      ...svc.stack.env,
      POWERTOOLS_SERVICE_NAME: SERVICE_NAMES.worker,
      TOLLGATE_CONFIG_JSON: JSON.stringify({ models: catalogue(upstream) }),
    }),
  );
  const processor = new JobProcessor({
    rt: workerRt,
    store: new JobStore(workerRt.doc, workerRt.env.tables.jobs),
  });
  worker = await startLocalWorker({
    queueUrl: svc.stack.env.TOLLGATE_JOBS_QUEUE_URL as string,
    dlqUrl: svc.stack.env.TOLLGATE_JOBS_DLQ_URL,
    handler: createWorkerHandler(workerRt, { processor, deadlineMarginMs: 2000 }),
    dlqHandler: createDlqHandler(workerRt),
    batchSize: 10,
    batchWindowMs: 50,
    maxConcurrency: 2,
    visibilityTimeoutSeconds: 5,
    functionTimeoutMs: 30_000,
    waitTimeSeconds: 0,
    logger: workerRt.telemetry.logger,
  });
  openai = svc.client();
});

afterAll(async () => {
  await worker?.stop();
  await workerRt?.close();
  await svc?.stop();
  await upstream?.close();
  await bedrock?.close();
});

beforeEach(() => {
  bedrock.reset();
  upstream.reset();
});

const user = (content: string) => [{ role: 'user' as const, content }];
const records = (owner: string) =>
  queryUsageRecords(svc.server.runtime.doc, svc.server.runtime.env.tables.usage, owner);
const conv = (i: number) => bedrock.requests[i]!.body;

const weatherTools: OpenAI.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } },
];

/** Raw SSE events of a streamed request, `[DONE]` included. */
async function rawStream(body: object, key?: string): Promise<{ status: number; events: unknown[] }> {
  const r = await svc.http('POST', '/v1/chat/completions', {
    body: { ...body, stream: true },
    ...(key ? { key } : {}),
  });
  const events = r.text
    .split('\n\n')
    .filter((b) => b.startsWith('data: '))
    .map((b) => (b.slice(6) === '[DONE]' ? '[DONE]' : JSON.parse(b.slice(6))));
  return { status: r.status, events };
}

describe('chat completions on a Bedrock model', () => {
  it('sends the translated Converse request, signed for the region, and answers like OpenAI', async () => {
    bedrock.enqueue(CLAUDE, {
      kind: 'reply',
      text: 'Bonjour !',
      usage: { inputTokens: 12, outputTokens: 3 },
    });
    const c = await openai.chat.completions.create({
      model: 'claude',
      messages: [
        { role: 'system', content: 'Answer in French.' },
        { role: 'user', content: 'Hello' },
      ],
      max_tokens: 50,
      temperature: 0.3,
      stop: ['\n\n'],
    });
    expect(c).toMatchObject({
      object: 'chat.completion',
      model: 'claude',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Bonjour !' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
    });
    expect(bedrock.requests).toHaveLength(1);
    // HTTP/1.1 with keep-alive by choice (family.ts): the SDK's HTTP/2 default opens a session per stream.
    expect(bedrock.requests[0]).toMatchObject({ operation: 'converse', modelId: CLAUDE, httpVersion: '1.1' });
    expect(bedrock.requests[0]!.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=\w+\/\d+\/us-east-1\/bedrock\//,
    );
    expect(conv(0)).toEqual({
      messages: [{ role: 'user', content: [{ text: 'Hello' }] }],
      system: [{ text: 'Answer in French.' }],
      inferenceConfig: { maxTokens: 50, temperature: 0.3, stopSequences: ['\n\n'] },
    });
  });

  it('streams chunks as events arrive; the stream helper reassembles parallel tool calls exactly', async () => {
    bedrock.enqueue(CLAUDE, {
      kind: 'stream',
      text: ['Let me ', 'check.'],
      toolUses: [
        {
          toolUseId: 'tooluse_w1',
          name: 'get_weather',
          input: { city: 'Paris' },
          fragments: ['{"ci', 'ty":"Pa', 'ris"}'],
        },
        { toolUseId: 'tooluse_t2', name: 'get_time', input: {}, fragments: [] },
        { toolUseId: 'tooluse_w3', name: 'get_weather', input: { city: 'Oslo' } },
      ],
      usage: { inputTokens: 20, outputTokens: 15 },
    });
    const stream = openai.chat.completions.stream({
      model: 'claude',
      messages: user('Weather in Paris and Oslo, and the time?'),
      tools: weatherTools,
      stream_options: { include_usage: true },
    });
    const chunks: ChatCompletionChunk[] = [];
    stream.on('chunk', (c) => chunks.push(c));
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    expect(final.choices[0]!.message.content).toBe('Let me check.');
    expect(final.choices[0]!.message.tool_calls).toEqual([
      {
        id: 'tooluse_w1',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
      },
      { id: 'tooluse_t2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
      { id: 'tooluse_w3', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
    ]);
    expect(final.usage).toMatchObject({ prompt_tokens: 20, completion_tokens: 15, total_tokens: 35 });
    // Dense indexes, and id + type + name on each call's first delta.
    const starts = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).filter((t) => t.id);
    expect(starts.map((t) => [t.index, t.type, t.function?.name])).toEqual([
      [0, 'function', 'get_weather'],
      [1, 'function', 'get_time'],
      [2, 'function', 'get_weather'],
    ]);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.model === 'claude')).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    // The server really split every frame across writes.
    const r = bedrock.requests[0]!;
    expect(r.operation).toBe('converse-stream');
    expect(r.writes).toBe(2 * r.frames);
    expect(r.frames).toBeGreaterThan(10);
  });

  it('ends a stream with the usage chunk only when asked, then [DONE]', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'stream', text: ['a', 'b'], usage: { inputTokens: 4, outputTokens: 2 } });
    const withUsage = await rawStream({
      model: 'claude',
      messages: user('x'),
      stream_options: { include_usage: true },
    });
    expect(withUsage.status).toBe(200);
    expect(withUsage.events.at(-1)).toBe('[DONE]');
    expect(withUsage.events.at(-2)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 4, completion_tokens: 2 },
    });
    bedrock.enqueue(CLAUDE, { kind: 'stream', text: ['a', 'b'] });
    const without = await rawStream({ model: 'claude', messages: user('x') });
    expect(without.events.at(-1)).toBe('[DONE]');
    expect(without.events.some((e) => typeof e === 'object' && (e as { usage?: unknown }).usage)).toBe(false);
  });

  it('answers parallel tool calls with their Bedrock ids', async () => {
    bedrock.enqueue(CLAUDE, {
      kind: 'reply',
      text: '',
      toolUses: [
        { toolUseId: 'tooluse_a', name: 'get_weather', input: { city: 'Rome' } },
        { toolUseId: 'tooluse_b', name: 'get_weather', input: { city: 'Lima' } },
        { toolUseId: 'tooluse_c', name: 'get_time', input: {} },
      ],
    });
    const c = await openai.chat.completions.create({
      model: 'claude',
      messages: user('three calls'),
      tools: weatherTools,
    });
    expect(c.choices[0]!.finish_reason).toBe('tool_calls');
    expect(c.choices[0]!.message.content).toBeNull();
    expect(c.choices[0]!.message.tool_calls).toEqual([
      { id: 'tooluse_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
      { id: 'tooluse_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lima"}' } },
      { id: 'tooluse_c', type: 'function', function: { name: 'get_time', arguments: '{}' } },
    ]);
    expect(conv(0).toolConfig).toEqual({
      tools: [
        {
          toolSpec: {
            name: 'get_weather',
            description: 'Weather for a city',
            inputSchema: {
              json: weatherTools[0]!.type === 'function' ? weatherTools[0]!.function.parameters : {},
            },
          },
        },
        { toolSpec: { name: 'get_time', inputSchema: { json: { type: 'object', properties: {} } } } },
      ],
    });
  });

  it('round-trips tool results: toolUse then toolResult in one user turn; long names mapped both ways', async () => {
    const dotted = 'weather.lookup_by_city';
    const sent = bedrockIdentifier(dotted);
    const tools: OpenAI.ChatCompletionTool[] = [
      {
        type: 'function',
        function: { name: dotted, parameters: { type: 'object', properties: { city: { type: 'string' } } } },
      },
    ];
    bedrock.enqueue(
      CLAUDE,
      {
        kind: 'reply',
        text: 'Looking.',
        toolUses: [
          { toolUseId: 'tooluse_1', name: sent, input: { city: 'Paris' } },
          { toolUseId: 'tooluse_2', name: sent, input: { city: 'Oslo' } },
        ],
      },
      { kind: 'reply', text: 'Paris 18C, Oslo 4C.' },
    );
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Paris and Oslo?' }];
    const first = await openai.chat.completions.create({ model: 'claude', messages, tools });
    const assistant = first.choices[0]!.message;
    expect(assistant.tool_calls?.map((t) => (t.type === 'function' ? t.function.name : ''))).toEqual([
      dotted,
      dotted,
    ]);
    messages.push(
      assistant,
      { role: 'tool', tool_call_id: 'tooluse_1', content: '18C' },
      {
        role: 'tool',
        tool_call_id: 'tooluse_2',
        content: '4C',
      },
    );
    const second = await openai.chat.completions.create({ model: 'claude', messages, tools });
    expect(second.choices[0]!.message.content).toBe('Paris 18C, Oslo 4C.');
    expect(sent).not.toBe(dotted);
    expect(conv(1).toolConfig).toMatchObject({ tools: [{ toolSpec: { name: sent } }] });
    expect(conv(1).messages).toEqual([
      { role: 'user', content: [{ text: 'Paris and Oslo?' }] },
      {
        role: 'assistant',
        content: [
          { text: 'Looking.' },
          { toolUse: { toolUseId: 'tooluse_1', name: sent, input: { city: 'Paris' } } },
          { toolUse: { toolUseId: 'tooluse_2', name: sent, input: { city: 'Oslo' } } },
        ],
      },
      {
        role: 'user',
        content: [
          { toolResult: { toolUseId: 'tooluse_1', content: [{ text: '18C' }] } },
          { toolResult: { toolUseId: 'tooluse_2', content: [{ text: '4C' }] } },
        ],
      },
    ]);
  });

  it('sends a conversation Bedrock would refuse as written in a shape it accepts', async () => {
    // A streamed call without arguments, echoed back by the client with arguments "".
    bedrock.enqueue(
      CLAUDE,
      {
        kind: 'stream',
        toolUses: [{ toolUseId: 'tooluse_now', name: 'get_time', input: {}, fragments: [] }],
      },
      { kind: 'reply', text: 'It is noon.' },
    );
    const first = await openai.chat.completions
      .stream({ model: 'claude', messages: user('time?'), tools: weatherTools })
      .finalChatCompletion();
    const call = first.choices[0]!.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call).toMatchObject({ id: 'tooluse_now', function: { name: 'get_time', arguments: '{}' } });
    const c = await openai.chat.completions.create({
      model: 'claude',
      // No tools any more, though the history holds a call: Bedrock wants a toolConfig.
      messages: [
        { role: 'assistant', content: 'Hi! Ask me anything.' },
        { role: 'user', content: 'What time' },
        { role: 'user', content: '   ' },
        { role: 'user', content: 'is it?' },
        {
          role: 'assistant',
          content: ' ',
          tool_calls: [{ ...call, function: { ...call.function, arguments: '' } }],
        },
        { role: 'tool', tool_call_id: 'tooluse_now', content: '12:00' },
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Thanks' },
      ],
    });
    expect(c.choices[0]!.message.content).toBe('It is noon.');
    expect(conv(1).system).toEqual([{ text: 'Be brief.' }]);
    expect((conv(1).messages as Array<{ role: string }>).map((m) => m.role)).toEqual([
      'user',
      'assistant',
      'user',
      'assistant',
      'user',
    ]);
    expect((conv(1).messages as unknown[])[3]).toEqual({
      role: 'assistant',
      content: [{ toolUse: { toolUseId: 'tooluse_now', name: 'get_time', input: {} } }],
    });
    expect((conv(1).messages as unknown[])[4]).toEqual({
      role: 'user',
      content: [
        { toolResult: { toolUseId: 'tooluse_now', content: [{ text: '12:00' }] } },
        { text: 'Thanks' },
      ],
    });
  });

  it('refuses what Bedrock cannot take with a 400 naming the field, before calling Bedrock', async () => {
    const url = await openai.chat.completions
      .create({
        model: 'claude',
        messages: [
          { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] },
        ],
      })
      .catch((e: unknown) => e);
    expect(url).toBeInstanceOf(OpenAI.BadRequestError);
    expect((url as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(
      'messages[0].content[0].image_url.url',
    );
    const seed = await openai.chat.completions
      .create({ model: 'claude', messages: user('x'), seed: 7 })
      .catch((e) => e);
    expect(seed).toMatchObject({ status: 400, param: 'seed' });
    expect(bedrock.requests).toHaveLength(0);
  });
});

describe('usage and cost of Bedrock calls', () => {
  // 100 uncached * $3 + 1000 cache reads * $0.3 + 500 cache writes * $3.75 + 50 out * $15, per 1M.
  const CACHE_USAGE = {
    inputTokens: 100,
    outputTokens: 50,
    cacheReadInputTokens: 1000,
    cacheWriteInputTokens: 500,
  };
  const CACHE_COST = (100 * 3 + 1000 * 0.3 + 500 * 3.75 + 50 * 15) / 1e6;

  it('reports cache reads and writes in usage and prices each at its own rate (non-stream)', async () => {
    const { key, owner } = await svc.createKey();
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: 'cached answer', usage: CACHE_USAGE });
    const r = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: { model: 'claude', messages: user('c') },
    });
    expect(r.status).toBe(200);
    expect(r.json().usage).toEqual({
      prompt_tokens: 1600,
      completion_tokens: 50,
      total_tokens: 1650,
      prompt_tokens_details: { cached_tokens: 1000, cache_write_tokens: 500 },
    });
    expect(Number(r.headers.get('x-tollgate-cost-usd'))).toBeCloseTo(CACHE_COST, 9);
    const [row] = await eventually(async () => {
      const rs = await records(owner);
      return rs.length === 1 ? rs : null;
    });
    expect(row).toMatchObject({
      model: 'claude',
      status: 200,
      promptTokens: 1600,
      completionTokens: 50,
      cachedTokens: 1000,
      cacheWriteTokens: 500,
      estimated: false,
    });
    expect(row!.costUsd).toBeCloseTo(CACHE_COST, 9);
  });

  it('does the same for a stream: the usage chunk and the usage row', async () => {
    const { key, owner } = await svc.createKey();
    bedrock.enqueue(CLAUDE, { kind: 'stream', text: ['cached ', 'stream'], usage: CACHE_USAGE });
    const s = await rawStream(
      { model: 'claude', messages: user('c'), stream_options: { include_usage: true } },
      key,
    );
    expect(s.events.at(-2)).toMatchObject({
      usage: { prompt_tokens: 1600, prompt_tokens_details: { cached_tokens: 1000, cache_write_tokens: 500 } },
    });
    const [row] = await eventually(async () => {
      const rs = await records(owner);
      return rs.length === 1 ? rs : null;
    });
    expect(row).toMatchObject({
      stream: true,
      promptTokens: 1600,
      completionTokens: 50,
      cachedTokens: 1000,
      cacheWriteTokens: 500,
    });
    expect(row!.costUsd).toBeCloseTo(CACHE_COST, 9);
  });

  it('reconciles reservations with Bedrock usage and counts cache tokens against token limits', async () => {
    // Each request reserves ~600 tokens: without reconciliation the second would pass 1000 TPM.
    const tpm = await svc.createKey({ limits: { tpm: 1000 } });
    bedrock.setDefault(CLAUDE, { kind: 'reply', text: 'ok', usage: { inputTokens: 9, outputTokens: 1 } });
    const body = { model: 'claude', messages: user('hi'), max_tokens: 590 };
    const a = await svc.http('POST', '/v1/chat/completions', { key: tpm.key, body });
    await new Promise((r) => setTimeout(r, 100));
    const b = await svc.http('POST', '/v1/chat/completions', { key: tpm.key, body });
    expect([a.status, b.status]).toEqual([200, 200]);
    // 5 input + 20 cache reads + 10 output = 35 of 40 daily tokens: the next one is refused.
    const daily = await svc.createKey({ limits: { daily_tokens: 40 } });
    bedrock.setDefault(CLAUDE, {
      kind: 'reply',
      text: 'ok',
      usage: { inputTokens: 5, outputTokens: 10, cacheReadInputTokens: 20 },
    });
    const first = await svc.http('POST', '/v1/chat/completions', {
      key: daily.key,
      body: { model: 'claude', messages: user('hi'), max_tokens: 10 },
    });
    await new Promise((r) => setTimeout(r, 100));
    const second = await svc.http('POST', '/v1/chat/completions', {
      key: daily.key,
      body: { model: 'claude', messages: user('hi'), max_tokens: 10 },
    });
    expect(first.status).toBe(200);
    expect(second.status).toBe(429);
    expect(second.json().error.code).toBe('insufficient_quota');
  });
});

describe('stop reasons', () => {
  const cases: Array<[string, string, boolean]> = [
    ['end_turn', 'stop', false],
    ['stop_sequence', 'stop', false],
    ['tool_use', 'tool_calls', true],
    ['max_tokens', 'length', false],
    ['model_context_window_exceeded', 'length', false],
    ['guardrail_intervened', 'content_filter', false],
    ['content_filtered', 'content_filter', false],
    ['malformed_model_output', 'stop', false],
    ['malformed_tool_use', 'tool_calls', true],
  ];

  it.each(cases)('maps %s to finish_reason %s, streamed and not', async (stopReason, finish, tool) => {
    const toolUses = tool ? [{ toolUseId: 'tooluse_x', name: 'get_time', input: {} }] : undefined;
    bedrock.enqueue(
      CLAUDE,
      { kind: 'reply', text: 'partial', stopReason, ...(toolUses ? { toolUses } : {}) },
      { kind: 'stream', text: ['partial'], stopReason, ...(toolUses ? { toolUses } : {}) },
    );
    const c = await openai.chat.completions.create({
      model: 'claude',
      messages: user('s'),
      tools: weatherTools,
    });
    expect(c.choices[0]!.finish_reason).toBe(finish);
    expect((c.choices[0] as unknown as { native_finish_reason: string }).native_finish_reason).toBe(
      stopReason,
    );
    const stream = await openai.chat.completions.create({
      model: 'claude',
      messages: user('s'),
      tools: weatherTools,
      stream: true,
    });
    const reasons: string[] = [];
    for await (const ch of stream)
      if (ch.choices[0]?.finish_reason) reasons.push(ch.choices[0].finish_reason);
    expect(reasons).toEqual([finish]);
  });
});

describe('Bedrock errors', () => {
  const cases: Array<[string, number, RegExp]> = [
    ['ValidationException', 400, /Upstream rejected the request: Scripted ValidationException/],
    ['AccessDeniedException', 502, /model access|access to this model.*bedrock:InvokeModel/],
    ['ResourceNotFoundException', 502, /inference profile.*region|region/],
    ['ModelTimeoutException', 504, /timed out/],
    ['ServiceUnavailableException', 503, /cannot serve/],
    ['ModelNotReadyException', 503, /cannot serve/],
    ['ThrottlingException', 503, /rate limited/],
    ['InternalServerException', 502, /InternalServerException/],
    ['ModelErrorException', 502, /failed to process/],
  ];

  it.each(cases)('maps %s to %i before the first byte, streamed and not', async (type, status, message) => {
    const error: BedrockScript = { kind: 'error', type };
    bedrock.enqueue(CLAUDE, error, error);
    const plain = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'claude', messages: user('e') },
    });
    const streamed = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'claude', messages: user('e'), stream: true },
    });
    for (const r of [plain, streamed]) {
      expect(r.status).toBe(status);
      expect(r.headers.get('content-type')).toMatch(/application\/json/);
      expect(r.json().error.message).toMatch(message);
      expect(r.json().error).toHaveProperty('type');
    }
    if (status === 503) expect(plain.headers.get('retry-after')).toBe('1');
    expect(bedrock.requests.map((q) => q.operation)).toEqual(['converse', 'converse-stream']);
  });

  it('never answers 500, also through the SDK, and reports Bedrock message for a refused request', async () => {
    bedrock.enqueue(CLAUDE, {
      kind: 'error',
      type: 'ValidationException',
      message: 'messages.0: text is too long',
    });
    const e = await openai.chat.completions.create({ model: 'claude', messages: user('v') }).catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.message).toContain('messages.0: text is too long');
  });

  it('retries ThrottlingException per maxRetries, then answers 503 with Retry-After', async () => {
    const throttled: BedrockScript = {
      kind: 'error',
      type: 'ThrottlingException',
      message: 'Too many requests',
    };
    bedrock.enqueue(RETRYING, throttled, throttled, { kind: 'reply', text: 'third time lucky' });
    const ok = await openai.chat.completions.create({ model: 'claude-retry', messages: user('t') });
    expect(ok.choices[0]!.message.content).toBe('third time lucky');
    expect(bedrock.requests).toHaveLength(3);
    bedrock.reset();
    bedrock.enqueue(RETRYING, throttled, throttled, throttled, { kind: 'reply', text: 'never reached' });
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'claude-retry', messages: user('t') },
    });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.json().error.code).toBe('upstream_rate_limited');
    expect(bedrock.requests).toHaveLength(3);
  });

  it('retries a throttling exception frame that arrives before any output, like an HTTP error', async () => {
    bedrock.enqueue(
      RETRYING,
      { kind: 'stream', text: ['never'], failAfter: { events: 1, exception: 'throttlingException' } },
      { kind: 'stream', text: ['second ', 'try'] },
    );
    const stream = await openai.chat.completions.create({
      model: 'claude-retry',
      messages: user('t'),
      stream: true,
    });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('second try');
    expect(bedrock.requests).toHaveLength(2);
  });

  it('turns an exception frame mid-stream into the SSE error event, keeps the text sent and writes usage', async () => {
    const { key, owner } = await svc.createKey();
    bedrock.enqueue(CLAUDE, {
      kind: 'stream',
      text: ['Hello ', 'brave ', 'new ', 'world'],
      failAfter: { events: 4, exception: 'modelStreamErrorException', message: 'model crashed' },
    });
    const s = await rawStream({ model: 'claude', messages: user('m') }, key);
    expect(s.status).toBe(200);
    expect(s.events).not.toContain('[DONE]');
    const text = s.events
      .slice(0, -1)
      .map((e) => (e as ChatCompletionChunk).choices[0]?.delta.content ?? '')
      .join('');
    expect(text).toBe('Hello brave new ');
    expect(s.events.at(-1)).toMatchObject({ error: { message: expect.stringMatching(/model crashed/) } });
    const [row] = await eventually(async () => {
      const rs = await records(owner);
      return rs.length === 1 ? rs : null;
    });
    expect(row).toMatchObject({ status: 502, stream: true, estimated: true });
    expect(row!.completionTokens).toBeGreaterThan(0);

    // The SDK raises it as an APIError after the text.
    bedrock.enqueue(CLAUDE, {
      kind: 'stream',
      text: ['Hello ', 'again'],
      failAfter: { events: 3, exception: 'internalServerException' },
    });
    const stream = await openai.chat.completions.create({
      model: 'claude',
      messages: user('m'),
      stream: true,
    });
    let got = '';
    const err = await (async () => {
      for await (const c of stream) got += c.choices[0]?.delta.content ?? '';
    })().catch((x: unknown) => x);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(got).toBe('Hello again');
  });

  it('fails a stream that ends before messageStop instead of passing it off as complete', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'stream', text: ['cut ', 'short', 'here'], endAfter: 3 });
    const s = await rawStream({ model: 'claude', messages: user('m') });
    expect(s.events).not.toContain('[DONE]');
    expect(s.events.at(-1)).toMatchObject({ error: { message: expect.stringMatching(/ended before/) } });
  });

  it('aborts the Bedrock request when the client goes away mid-stream, and records a 499', async () => {
    const { key, owner } = await svc.createKey();
    bedrock.enqueue(CLAUDE, {
      kind: 'stream',
      text: Array.from({ length: 200 }, (_, i) => `w${i} `),
      delayMs: 20,
    });
    const ac = new AbortController();
    const stream = await svc
      .client(key)
      .chat.completions.create(
        { model: 'claude', messages: user('long'), stream: true },
        { signal: ac.signal },
      );
    let n = 0;
    await (async () => {
      for await (const _ of stream) if (++n === 5) ac.abort();
    })().catch(() => undefined);
    await eventually(() => bedrock.requests[0]?.aborted === true);
    expect(bedrock.requests[0]!.frames).toBeLessThan(100);
    const [row] = await eventually(async () => {
      const rs = await records(owner);
      return rs.length === 1 ? rs : null;
    });
    expect(row).toMatchObject({ status: 499, estimated: true, stream: true });
  });

  it('answers 504 when Bedrock sends nothing within timeoutMs, and closes the request', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'hang' });
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'claude', messages: user('h') },
    });
    expect(r.status).toBe(504);
    await eventually(() => bedrock.requests[0]?.aborted === true);
  });
});

describe('routing with Bedrock models', () => {
  it('falls back from a throttled Bedrock model to an OpenAI-compatible one, and back', async () => {
    bedrock.enqueue(FALLING, { kind: 'error', type: 'ThrottlingException' });
    upstream.enqueue('mock-small', { kind: 'reply', content: 'from the openai family' });
    const one = await openai.chat.completions.create({ model: 'claude-fb', messages: user('f') });
    expect(one.model).toBe('mock-small');
    expect(one.choices[0]!.message.content).toBe('from the openai family');

    upstream.enqueue('mock-fb-up', { kind: 'error', status: 503 });
    bedrock.enqueue(CLAUDE, { kind: 'stream', text: ['from ', 'bedrock'] });
    const stream = await openai.chat.completions.create({
      model: 'mock-fb',
      messages: user('f'),
      stream: true,
    });
    let text = '';
    const models = new Set<string>();
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? '';
      models.add(c.model);
    }
    expect(text).toBe('from bedrock');
    expect([...models]).toEqual(['mock-fb']);
    expect(bedrock.requests.map((r) => r.modelId)).toEqual([FALLING, CLAUDE]);
  });

  it('does not fall back on a request Bedrock refused (400)', async () => {
    bedrock.enqueue(FALLING, { kind: 'error', type: 'ValidationException' });
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'claude-fb', messages: user('f') },
    });
    expect(r.status).toBe(400);
    expect(upstream.requests).toHaveLength(0);
  });

  it('routes model "auto" to a Bedrock model', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: 'auto picked me' });
    const c = await openai.chat.completions.create({ model: 'auto', messages: user('which model?') });
    expect(c.model).toBe('claude');
    expect(c.choices[0]!.message.content).toBe('auto picked me');
  });

  it('holds a Bedrock model to its maxConcurrent: one more call answers 503 server_busy', async () => {
    bedrock.enqueue(SINGLE, { kind: 'reply', text: 'slow', delayMs: 400 });
    const first = svc.http('POST', '/v1/chat/completions', {
      body: { model: 'claude-one', messages: user('1') },
    });
    await bedrock.waitForRequests(1);
    const second = await svc.http('POST', '/v1/chat/completions', {
      body: { model: 'claude-one', messages: user('2') },
    });
    expect(second.status).toBe(503);
    expect(second.json().error.code).toBe('server_busy');
    expect((await first).status).toBe(200);
    expect(bedrock.requests).toHaveLength(1);
  });

  it('serves a repeated deterministic request from the response cache without calling Bedrock', async () => {
    const { key } = await svc.createKey();
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: 'cache me' });
    const body = { model: 'claude', messages: user('same question'), temperature: 0 };
    const a = await svc.http('POST', '/v1/chat/completions', { key, body });
    const b = await svc.http('POST', '/v1/chat/completions', { key, body });
    expect([a.headers.get('x-tollgate-cache'), b.headers.get('x-tollgate-cache')]).toEqual(['MISS', 'HIT']);
    expect(b.json().choices[0].message.content).toBe('cache me');
    expect(bedrock.requests).toHaveLength(1);
  });

  it('serves models in another region through that region’s client', async () => {
    bedrock.enqueue(EU, { kind: 'reply', text: 'from eu-west-1' });
    const c = await openai.chat.completions.create({ model: 'claude-eu', messages: user('eu') });
    expect(c.choices[0]!.message.content).toBe('from eu-west-1');
    expect(bedrock.requests[0]!.headers.authorization).toMatch(/\/eu-west-1\/bedrock\//);
  });
});

describe('readiness', () => {
  it('checks each region with a Converse call Bedrock refuses before generating', async () => {
    // The server refuses an empty conversation as Bedrock does.
    const r = await svc.http('GET', '/ready', { key: null });
    const deps = r.json().dependencies as Array<{ name: string; status: string; error?: string }>;
    expect(deps.filter((d) => d.name.startsWith('bedrock:'))).toEqual([
      expect.objectContaining({ name: 'bedrock:us-east-1', status: 'ok' }),
      expect.objectContaining({ name: 'bedrock:eu-west-1', status: 'ok' }),
    ]);
    const probes = bedrock.requests.filter((q) => q.operation === 'converse');
    expect(probes.map((q) => q.modelId).sort()).toEqual([CLAUDE, EU].sort());
    for (const p of probes) expect(p.body).toEqual({ messages: [], inferenceConfig: { maxTokens: 1 } });
  });

  it('fails the region check with what to fix when the role may not invoke the model', async () => {
    bedrock.setDefault(CLAUDE, { kind: 'error', type: 'AccessDeniedException', message: 'not authorized' });
    const r = await svc.http('GET', '/ready', { key: null });
    expect(r.status).toBe(503);
    const dep = (r.json().dependencies as Array<{ name: string; status: string; error?: string }>).find(
      (d) => d.name === 'bedrock:us-east-1',
    );
    expect(dep).toMatchObject({ status: 'error', error: expect.stringMatching(/bedrock:InvokeModel/) });
  });
});

describe('embeddings on Bedrock models', () => {
  /** What the gateway answers for the server's vector: float32, as every embedding API computes them. */
  const f32 = (text: string, dims: number) => Array.from(Float32Array.from(embedding(text, dims)));
  const noStore = { headers: { 'cache-control': 'no-store' } };

  it('calls Titan once per input, at most 8 at a time, in order, with its per-item token counts', async () => {
    const { key, owner } = await svc.createKey();
    bedrock.setDefault(TITAN, { kind: 'embed', delayMs: 40 });
    const input = Array.from({ length: 20 }, (_, i) => `text number ${i}${' x'.repeat(i)}`);
    const r = await svc
      .client(key)
      .embeddings.create({ model: 'titan', input, dimensions: 256, encoding_format: 'float' }, noStore);
    expect(bedrock.requests).toHaveLength(20);
    expect(bedrock.peakInFlight).toBeLessThanOrEqual(8);
    expect(bedrock.peakInFlight).toBeGreaterThan(1);
    expect(r.data.map((d) => d.index)).toEqual(input.map((_, i) => i));
    expect(r.data.map((d) => d.embedding)).toEqual(input.map((t) => f32(t, 256)));
    const tokens = input.reduce((a, t) => a + t.split(/\s+/).length, 0);
    expect(r.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    expect(bedrock.requests.every((q) => q.operation === 'invoke' && q.body.dimensions === 256)).toBe(true);
    const row = await eventually(async () => (await records(owner))[0]);
    expect(row).toMatchObject({ model: 'titan', status: 200, promptTokens: tokens, completionTokens: 0 });
    expect(row.costUsd).toBeCloseTo((tokens * 0.02) / 1e6, 12);
  });

  it('batches Cohere inputs 96 at a time with the entry’s input_type, tokens from Bedrock’s header', async () => {
    const input = Array.from({ length: 200 }, (_, i) => `doc ${i}`);
    // The SDK's default: base64, decoded by the SDK into the same floats.
    const r = await openai.embeddings.create({ model: 'cohere', input }, noStore);
    const batches = bedrock.requests.map((q) => (q.body.texts as string[]).length).sort((a, b) => b - a);
    expect(batches).toEqual([96, 96, 8]);
    expect(bedrock.requests.every((q) => q.body.input_type === 'search_query')).toBe(true);
    expect(r.data.map((d) => d.embedding)).toEqual(input.map((t) => f32(t, 8)));
    expect(r.usage.prompt_tokens).toBe(400);
  });

  it('refuses token-array inputs with a 400 naming input, without calling Bedrock', async () => {
    const err = await openai.embeddings
      .create({ model: 'titan', input: [[1, 2, 3]] }, noStore)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400, param: 'input' });
    expect(bedrock.requests).toHaveLength(0);
  });

  it('maps an InvokeModel error like a chat one', async () => {
    bedrock.setDefault(TITAN, { kind: 'error', type: 'ThrottlingException' });
    const r = await svc.http('POST', '/v1/embeddings', {
      body: { model: 'titan', input: 'a' },
      headers: { 'cache-control': 'no-store' },
    });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.json().error.code).toBe('upstream_rate_limited');
    expect(bedrock.requests).toHaveLength(1);
  });
});

describe('the rest of the gateway on Bedrock models', () => {
  it('runs an async job through the worker on a Bedrock model', async () => {
    const { key, owner } = await svc.createKey();
    bedrock.enqueue(CLAUDE, {
      kind: 'reply',
      text: 'done later',
      usage: { inputTokens: 8, outputTokens: 2 },
    });
    const r = await svc.http('POST', '/v1/chat/async', {
      key,
      body: { model: 'claude', messages: user('async job') },
    });
    expect(r.status).toBe(202);
    const id = r.json().id as string;
    const job = await eventually(
      async () => {
        const j = (await svc.http('GET', `/v1/chat/async/${id}`, { key })).json();
        return j.status === 'completed' || j.status === 'failed' ? j : undefined;
      },
      15_000,
      50,
    );
    expect(job).toMatchObject({
      status: 'completed',
      result: {
        model: 'claude',
        choices: [{ message: { content: 'done later' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 8, completion_tokens: 2 },
      },
    });
    expect(bedrock.requests[0]).toMatchObject({ operation: 'converse', modelId: CLAUDE });
    const rows = await eventually(async () => {
      const rs = await records(owner);
      return rs.length === 1 ? rs : null;
    }, 10_000);
    expect(rows[0]).toMatchObject({ source: 'async', promptTokens: 8, completionTokens: 2 });
  });

  it('serves the support assistant from a Bedrock model, system prompt in system[]', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: 'Shipping is free over $50.' });
    const r = await svc.http('POST', '/api/v1/chat', {
      body: { message: 'Is shipping free?', user_id: 'bedrock-user-1' },
    });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ response: 'Shipping is free over $50.', model: 'claude' });
    const sent = conv(0);
    expect((sent.system as Array<{ text: string }>)[0]!.text).toMatch(/TechCorp/);
    expect(sent.messages).toEqual([{ role: 'user', content: [{ text: 'Is shipping free?' }] }]);
  });
});
