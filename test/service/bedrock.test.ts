/**
 * Bedrock models through the real service: the official openai SDK as the client, Tollgate
 * with its real Redis, dynalite and local-aws-sqs, the real @aws-sdk/client-bedrock-runtime
 * talking HTTP/2 to the scripted Bedrock-protocol server (AWS_ENDPOINT_URL_BEDROCK_RUNTIME),
 * and the scripted OpenAI-compatible mock for fallbacks across families.
 */
import OpenAI from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { readEnv } from '../../container/src/config/env';
import { SERVICE_NAMES } from '../../container/src/contract';
import { registerAssistantRoutes } from '../../container/src/conversations/routes';
import { BadRequestError } from '../../container/src/errors';
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
  it('sends the translated Converse request over HTTP/2 and answers like OpenAI', async () => {
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
    expect(bedrock.requests[0]).toMatchObject({ operation: 'converse', modelId: CLAUDE, httpVersion: '2.0' });
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
