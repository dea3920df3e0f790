/**
 * The Responses API on the Bedrock family: the real @aws-sdk/client-bedrock-runtime talking to
 * the scripted Bedrock-protocol server, with the official openai SDK, the Vercel AI SDK and
 * LangChain as clients. A Responses request is a chat request underneath, so what reaches
 * Bedrock is the family's Converse translation of it.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateObject, generateText, stepCountIs, streamText, tool } from 'ai';
import OpenAI from 'openai';
import { z } from 'zod';
import { queryUsageRecords } from '../../container/src/usage/usage-recorder';
import { type BedrockServer, bedrockModel, startBedrockServer } from '../helpers/bedrock-server';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { parseSse, registerResponsesRoutes } from '../helpers/responses';
import { DEV_KEY, eventually, mockModel, startTestService, type TestService } from '../helpers/service';

const CLAUDE = 'anthropic.claude-responses-v1:0';

let bedrock: BedrockServer;
let upstream: MockUpstream;
let svc: TestService;

beforeAll(async () => {
  bedrock = await startBedrockServer();
  upstream = await startMockUpstream();
  svc = await startTestService({
    name: 'responses-bedrock',
    plugins: [registerResponsesRoutes],
    env: { AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url },
    config: {
      models: [bedrockModel('claude', { upstreamModel: CLAUDE }), mockModel(upstream, 'mock-small')],
      tiers: { basic: { limits: { rpm: 100_000 }, models: ['*'] } },
      usage: { flushIntervalMs: 50 },
    },
  });
});

afterAll(async () => {
  await svc?.stop();
  await bedrock?.close();
  await upstream?.close();
});

beforeEach(() => {
  bedrock.reset();
  upstream.reset();
});

const converse = (i = -1) => bedrock.requests.at(i)?.body ?? {};

const weatherTool = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'Weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  strict: false,
};

describe('openai SDK on Bedrock', () => {
  it('answers text with instructions as the system prompt and Bedrock usage mapped', async () => {
    bedrock.enqueue(CLAUDE, {
      kind: 'reply',
      text: 'Bonjour.',
      usage: { inputTokens: 30, outputTokens: 3, cacheReadInputTokens: 20, cacheWriteInputTokens: 5 },
    });
    const { key, owner } = await svc.createKey();
    const r = await svc.client(key).responses.create({
      model: 'claude',
      instructions: 'Answer in French.',
      input: 'Hello',
      // No reasoning effort on Bedrock's chat path: ignored, not refused.
      reasoning: { effort: 'low' },
    });
    expect(r.output_text).toBe('Bonjour.');
    expect(r.model).toBe('claude');
    expect(r.usage).toMatchObject({
      input_tokens_details: { cached_tokens: 20, cache_write_tokens: 5 },
      output_tokens: 3,
    });
    expect(converse()).toMatchObject({
      system: [{ text: 'Answer in French.' }],
      messages: [{ role: 'user', content: [{ text: 'Hello' }] }],
    });
    expect(JSON.stringify(converse())).not.toContain('reasoning');
    const rows = await eventually(async () => {
      const rs = await queryUsageRecords(svc.server.runtime.doc, svc.server.runtime.env.tables.usage, owner);
      return rs.length === 1 ? rs : null;
    });
    expect(rows[0]).toMatchObject({
      model: 'claude',
      endpoint: 'responses',
      cachedTokens: 20,
      cacheWriteTokens: 5,
    });
  });

  it('streams named events in order and finalResponse() rebuilds the answer', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'stream', text: ['Stre', 'amed ', 'on Bedrock'] });
    const seen: string[] = [];
    const s = svc.client().responses.stream({ model: 'claude', input: 'go' });
    s.on('event', (e) => seen.push(e.type));
    const final = await s.finalResponse();
    expect(final.output_text).toBe('Streamed on Bedrock');
    expect(seen[0]).toBe('response.created');
    expect(seen.at(-1)).toBe('response.completed');
    expect(seen.filter((t) => t === 'response.output_text.delta')).toHaveLength(3);
    expect(bedrock.requests[0]?.operation).toBe('converse-stream');
  });

  it('runs a function-calling round trip: toolUse out as function_call, function_call_output back as toolResult', async () => {
    const client = svc.client();
    bedrock.enqueue(CLAUDE, {
      kind: 'reply',
      toolUses: [{ toolUseId: 'tooluse_rt1', name: 'get_weather', input: { city: 'Lima' } }],
    });
    const first = await client.responses.create({
      model: 'claude',
      input: 'Weather in Lima?',
      tools: [weatherTool],
    });
    expect(first.output).toEqual([
      expect.objectContaining({
        type: 'function_call',
        call_id: 'tooluse_rt1',
        name: 'get_weather',
        arguments: '{"city":"Lima"}',
      }),
    ]);
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: 'Cloudy in Lima.' });
    const second = await client.responses.create({
      model: 'claude',
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: 'tooluse_rt1', output: 'cloudy' }],
      tools: [weatherTool],
    });
    expect(second.output_text).toBe('Cloudy in Lima.');
    expect(converse().messages).toEqual([
      { role: 'user', content: [{ text: 'Weather in Lima?' }] },
      {
        role: 'assistant',
        content: [{ toolUse: { toolUseId: 'tooluse_rt1', name: 'get_weather', input: { city: 'Lima' } } }],
      },
      {
        role: 'user',
        content: [{ toolResult: { toolUseId: 'tooluse_rt1', content: [{ text: 'cloudy' }] } }],
      },
    ]);
  });

  it('streams a tool call as function_call events with the toolUse id', async () => {
    bedrock.enqueue(CLAUDE, {
      kind: 'stream',
      toolUses: [{ toolUseId: 'tooluse_s1', name: 'get_weather', input: { city: 'Oslo' } }],
    });
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'claude', input: 'Oslo?', tools: [weatherTool], stream: true },
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
      'response.completed',
    ]);
    expect(frames[2]?.data.item).toMatchObject({ call_id: 'tooluse_s1', name: 'get_weather' });
    expect(frames[5]?.data.arguments).toBe('{"city":"Oslo"}');
  });

  it('turns text.format json_schema into Bedrock structured output', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: '{"city":"Quito"}' });
    const schema = {
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
      additionalProperties: false,
    };
    const r = await svc.client().responses.parse({
      model: 'claude',
      input: 'A capital as JSON',
      text: { format: { type: 'json_schema', name: 'capital', schema, strict: true } },
    });
    expect(r.output_parsed).toEqual({ city: 'Quito' });
    expect(JSON.stringify(converse())).toContain('capital');
  });

  it('names the Responses field when Bedrock refuses what it cannot do (json_object without a schema)', async () => {
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'claude', input: 'x', text: { format: { type: 'json_object' } } },
    });
    expect(r.status).toBe(400);
    expect(r.json().error.param).toBe('text.format.type');
    expect(bedrock.requests).toHaveLength(0);
  });

  it('ends with response.failed when Bedrock fails mid-stream', async () => {
    bedrock.enqueue(CLAUDE, {
      kind: 'stream',
      text: ['one ', 'two ', 'three'],
      failAfter: { events: 3, exception: 'modelStreamErrorException', message: 'boom' },
    });
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'claude', input: 'x', stream: true },
    });
    const last = parseSse(r.text).at(-1);
    expect(last?.event).toBe('response.failed');
    expect(last?.data.response.status).toBe('failed');
  });

  it('continues on Bedrock a conversation started on an OpenAI-compatible model', async () => {
    upstream.enqueue('mock-small', {
      kind: 'reply',
      toolCalls: [
        { id: 'call_x1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
      ],
    });
    const client = svc.client();
    const first = await client.responses.create({
      model: 'mock-small',
      input: 'Rome?',
      tools: [weatherTool],
    });
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: 'Sunny in Rome.' });
    const second = await client.responses.create({
      model: 'claude',
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: 'call_x1', output: 'sunny' }],
      tools: [weatherTool],
    });
    expect(second.output_text).toBe('Sunny in Rome.');
    expect(JSON.stringify(converse().messages)).toContain('"toolResult"');
  });

  it('keeps the 404s of stored ids the same as on any family', async () => {
    const err = await svc
      .client()
      .responses.create({
        model: 'claude',
        previous_response_id: 'resp_00000000000000000000000000000000',
        input: 'x',
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(bedrock.requests).toHaveLength(0);
  });
});

describe('Vercel AI SDK and LangChain on Bedrock', () => {
  const vercel = () => createOpenAI({ baseURL: svc.baseURL, apiKey: DEV_KEY });

  it('generateText and streamText', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: 'Generated.' });
    expect((await generateText({ model: vercel()('claude'), prompt: 'x' })).text).toBe('Generated.');
    bedrock.enqueue(CLAUDE, { kind: 'stream', text: ['Str', 'eamed.'] });
    const s = streamText({ model: vercel()('claude'), prompt: 'y' });
    let text = '';
    for await (const d of s.textStream) text += d;
    expect(text).toBe('Streamed.');
  });

  it('a multi-step tool loop with item_reference', async () => {
    bedrock.enqueue(
      CLAUDE,
      {
        kind: 'reply',
        text: 'Checking.',
        toolUses: [{ toolUseId: 'tooluse_v1', name: 'weather', input: { city: 'Bern' } }],
      },
      { kind: 'reply', text: 'Mild in Bern.' },
    );
    const r = await generateText({
      model: vercel()('claude'),
      prompt: 'Weather in Bern?',
      tools: {
        weather: tool({ inputSchema: z.object({ city: z.string() }), execute: async () => 'mild' }),
      },
      stopWhen: stepCountIs(3),
    });
    expect(r.text).toBe('Mild in Bern.');
    expect(converse().messages).toEqual([
      { role: 'user', content: [{ text: 'Weather in Bern?' }] },
      {
        role: 'assistant',
        content: [
          { text: 'Checking.' },
          { toolUse: { toolUseId: 'tooluse_v1', name: 'weather', input: { city: 'Bern' } } },
        ],
      },
      { role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_v1', content: [{ text: 'mild' }] } }] },
    ]);
  });

  it('generateObject', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: '{"answer":7}' });
    const o = await generateObject({
      model: vercel()('claude'),
      schema: z.object({ answer: z.number() }),
      prompt: 'n',
    });
    expect(o.object).toEqual({ answer: 7 });
  });

  it('LangChain ChatOpenAI with useResponsesApi', async () => {
    bedrock.enqueue(CLAUDE, { kind: 'reply', text: 'LangChain on Bedrock.' });
    const lc = new ChatOpenAI({
      model: 'claude',
      apiKey: DEV_KEY,
      configuration: { baseURL: svc.baseURL },
      useResponsesApi: true,
      maxRetries: 0,
    });
    expect((await lc.invoke('hi')).text).toBe('LangChain on Bedrock.');
    bedrock.enqueue(CLAUDE, { kind: 'stream', text: ['Lang', 'Chain'] });
    let text = '';
    for await (const c of await lc.stream('hi')) text += c.text;
    expect(text).toBe('LangChain');
  });
});
