/**
 * One contract, every provider family: the same cases through the real service against the
 * simulator, an OpenAI-compatible upstream (the scripted mock) and Amazon Bedrock (the scripted
 * Bedrock-protocol server). What a client sees must not depend on the family behind a model.
 * Cases that need a scripted upstream (tool calls, errors) run for the families that have one.
 */
import type OpenAI from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { queryUsageRecords } from '../../container/src/usage/usage-recorder';
import { type BedrockServer, bedrockModel, startBedrockServer } from '../helpers/bedrock-server';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { eventually, mockModel, startTestService, type TestService } from '../helpers/service';

interface ToolCall {
  id: string;
  name: string;
  args: Record<string, unknown>;
}

/** How a case scripts the next answer of a family's upstream. */
interface Script {
  text(pieces: string[], usage: { prompt: number; completion: number }): void;
  stream(pieces: string[], usage: { prompt: number; completion: number }): void;
  length(pieces: string[]): void;
  toolCalls(calls: ToolCall[], streamed: boolean): void;
  error(kind: 'rate_limited' | 'refused' | 'server_error'): void;
  failMidStream(pieces: string[], after: number): void;
  slowStream(pieces: string[], delayMs: number): void;
  hang(): void;
  /** The last upstream request was cut by the gateway. */
  lastAborted(): boolean;
}

interface Family {
  name: string;
  model: string;
  /** Null for the simulator: its answers are its own. */
  script: Script | null;
}

const BEDROCK_MODEL = 'anthropic.claude-contract-v1:0';

let bedrock: BedrockServer;
let upstream: MockUpstream;
let svc: TestService;

const families: Family[] = [
  { name: 'simulator', model: 'c-sim', script: null },
  {
    name: 'openai',
    model: 'c-openai',
    script: {
      text: (pieces, u) =>
        upstream.enqueue('c-openai', {
          kind: 'reply',
          content: pieces.join(''),
          usage: { prompt_tokens: u.prompt, completion_tokens: u.completion },
        }),
      stream: (pieces, u) =>
        upstream.enqueue('c-openai', {
          kind: 'stream',
          tokens: pieces,
          usage: { prompt_tokens: u.prompt, completion_tokens: u.completion },
        }),
      length: (pieces) =>
        upstream.enqueue('c-openai', { kind: 'reply', content: pieces.join(''), finishReason: 'length' }),
      toolCalls: (calls, streamed) => {
        const toolCalls = calls.map((c) => ({
          id: c.id,
          type: 'function' as const,
          function: { name: c.name, arguments: JSON.stringify(c.args) },
        }));
        upstream.enqueue(
          'c-openai',
          streamed ? { kind: 'stream', tokens: [], toolCalls } : { kind: 'reply', toolCalls },
        );
      },
      error: (kind) =>
        upstream.enqueue('c-openai', {
          kind: 'error',
          status: kind === 'rate_limited' ? 429 : kind === 'refused' ? 400 : 500,
        }),
      failMidStream: (pieces, after) =>
        upstream.enqueue('c-openai', { kind: 'die-mid-stream', tokens: pieces, afterTokens: after }),
      slowStream: (pieces, delayMs) =>
        upstream.enqueue('c-openai', { kind: 'stream', tokens: pieces, delayMs }),
      hang: () => upstream.enqueue('c-openai', { kind: 'hang' }),
      lastAborted: () => upstream.requests.at(-1)?.aborted === true,
    },
  },
  {
    name: 'bedrock',
    model: 'c-bedrock',
    script: {
      text: (pieces, u) =>
        bedrock.enqueue(BEDROCK_MODEL, {
          kind: 'reply',
          text: pieces.join(''),
          usage: { inputTokens: u.prompt, outputTokens: u.completion },
        }),
      stream: (pieces, u) =>
        bedrock.enqueue(BEDROCK_MODEL, {
          kind: 'stream',
          text: pieces,
          usage: { inputTokens: u.prompt, outputTokens: u.completion },
        }),
      length: (pieces) =>
        bedrock.enqueue(BEDROCK_MODEL, { kind: 'reply', text: pieces.join(''), stopReason: 'max_tokens' }),
      toolCalls: (calls, streamed) => {
        const toolUses = calls.map((c) => ({ toolUseId: c.id, name: c.name, input: c.args }));
        bedrock.enqueue(BEDROCK_MODEL, streamed ? { kind: 'stream', toolUses } : { kind: 'reply', toolUses });
      },
      error: (kind) =>
        bedrock.enqueue(BEDROCK_MODEL, {
          kind: 'error',
          type:
            kind === 'rate_limited'
              ? 'ThrottlingException'
              : kind === 'refused'
                ? 'ValidationException'
                : 'InternalServerException',
        }),
      failMidStream: (pieces, after) =>
        bedrock.enqueue(BEDROCK_MODEL, {
          kind: 'stream',
          text: pieces,
          // messageStart, then `after` text deltas.
          failAfter: { events: 1 + after, exception: 'modelStreamErrorException' },
        }),
      slowStream: (pieces, delayMs) =>
        bedrock.enqueue(BEDROCK_MODEL, { kind: 'stream', text: pieces, delayMs }),
      hang: () => bedrock.enqueue(BEDROCK_MODEL, { kind: 'hang' }),
      lastAborted: () => bedrock.requests.at(-1)?.aborted === true,
    },
  },
];
const scripted = families.filter((f): f is Family & { script: Script } => f.script !== null);

beforeAll(async () => {
  bedrock = await startBedrockServer();
  upstream = await startMockUpstream();
  svc = await startTestService({
    name: 'contract',
    env: { AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url },
    config: {
      models: [
        { id: 'c-sim', provider: 'simulator', simulator: { ttftMs: 5, tokensPerSecond: 2000 } },
        mockModel(upstream, 'c-openai'),
        bedrockModel('c-bedrock', { upstreamModel: BEDROCK_MODEL, pricing: { input: 1, output: 2 } }),
        { id: 'e-sim', provider: 'simulator', endpoints: ['embeddings'] },
        mockModel(upstream, 'e-openai', {
          upstreamModel: 'text-embedding-3-small',
          endpoints: ['embeddings'],
        }),
        bedrockModel('e-bedrock', {
          upstreamModel: 'amazon.titan-embed-text-v2:0',
          endpoints: ['embeddings'],
        }),
      ],
      tiers: { basic: { limits: { rpm: 100_000 }, models: ['*'] } },
      usage: { flushIntervalMs: 100 },
    },
  });
});

afterAll(async () => {
  await svc?.stop();
  await upstream?.close();
  await bedrock?.close();
});

beforeEach(() => {
  bedrock.reset();
  upstream.reset();
});

const user = (content: string) => [{ role: 'user' as const, content }];
const PIECES = ['The ', 'answer ', 'is ', '42.'];
const USAGE = { prompt: 11, completion: 4 };
const records = (owner: string) =>
  queryUsageRecords(svc.server.runtime.doc, svc.server.runtime.env.tables.usage, owner);
const oneRecord = (owner: string) =>
  eventually(async () => {
    const rs = await records(owner);
    return rs.length === 1 ? rs[0] : null;
  });

async function rawStream(body: object) {
  const r = await svc.http('POST', '/v1/chat/completions', { body: { ...body, stream: true } });
  return r.text
    .split('\n\n')
    .filter((b) => b.startsWith('data: '))
    .map((b) => (b.slice(6) === '[DONE]' ? '[DONE]' : JSON.parse(b.slice(6))));
}

describe.each(families)('provider contract: $name', (f) => {
  it('answers a completion in OpenAI shape under the public model id, and records its usage once', async () => {
    const { key, owner } = await svc.createKey();
    f.script?.text(PIECES, USAGE);
    const c = await svc
      .client(key)
      .chat.completions.create({ model: f.model, messages: user('What is it?') });
    expect(c).toMatchObject({ object: 'chat.completion', model: f.model });
    expect(c.id).toMatch(/^chatcmpl-/);
    expect(c.choices).toHaveLength(1);
    expect(c.choices[0]).toMatchObject({ index: 0, finish_reason: 'stop', message: { role: 'assistant' } });
    expect(typeof c.choices[0]!.message.content).toBe('string');
    expect(c.choices[0]!.message.content!.length).toBeGreaterThan(0);
    if (f.script) expect(c.choices[0]!.message.content).toBe(PIECES.join(''));
    const u = c.usage!;
    expect(u.total_tokens).toBe(u.prompt_tokens + u.completion_tokens);
    expect(u.prompt_tokens).toBeGreaterThan(0);
    expect(u.completion_tokens).toBeGreaterThan(0);
    expect(await oneRecord(owner)).toMatchObject({
      model: f.model,
      status: 200,
      promptTokens: u.prompt_tokens,
      completionTokens: u.completion_tokens,
      estimated: false,
    });
  });

  it('streams the same answer: one id, the role first, usage when asked, then [DONE]', async () => {
    f.script?.text(PIECES, USAGE);
    const whole = await svc
      .client()
      .chat.completions.create({ model: f.model, messages: user('What is it?') });
    f.script?.stream(PIECES, USAGE);
    const events = await rawStream({
      model: f.model,
      messages: user('What is it?'),
      stream_options: { include_usage: true },
    });
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as ChatCompletionChunk[];
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.model === f.model && c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0]!.message.content);
    const finishes = chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
    expect(finishes).toEqual(['stop']);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({
      prompt_tokens: whole.usage!.prompt_tokens,
      completion_tokens: whole.usage!.completion_tokens,
    });
  });

  it("reports finish_reason 'length' when the answer is cut by max_tokens", async () => {
    f.script?.length(['cut']);
    const c = await svc
      .client()
      .chat.completions.create({ model: f.model, messages: user('long please'), max_tokens: 3 });
    expect(c.choices[0]!.finish_reason).toBe('length');
  });

  it('records a 499 when the client leaves mid-stream', async () => {
    const { key, owner } = await svc.createKey();
    const pieces = Array.from({ length: 60 }, (_, i) => `w${i} `);
    f.script?.slowStream(pieces, 20);
    const ac = new AbortController();
    const stream = await svc.client(key).chat.completions.create(
      // The simulator's answer echoes the question: a long one makes a long stream.
      { model: f.model, messages: user('word '.repeat(200)), stream: true },
      { signal: ac.signal },
    );
    let n = 0;
    await (async () => {
      for await (const _ of stream) if (++n === 3) ac.abort();
    })().catch(() => undefined);
    expect(await oneRecord(owner)).toMatchObject({ status: 499, stream: true, estimated: true });
    if (f.script) await eventually(() => f.script!.lastAborted());
  });
});

describe.each(scripted)('provider contract with a scripted upstream: $name', (f) => {
  const calls: ToolCall[] = [
    { id: 'call_a1', name: 'get_weather', args: { city: 'Paris' } },
    { id: 'call_b2', name: 'get_weather', args: { city: 'Oslo' } },
  ];
  const tools: OpenAI.ChatCompletionTool[] = [
    {
      type: 'function',
      function: {
        name: 'get_weather',
        parameters: { type: 'object', properties: { city: { type: 'string' } } },
      },
    },
  ];
  const expected = calls.map((c) => ({
    id: c.id,
    type: 'function',
    function: { name: c.name, arguments: JSON.stringify(c.args) },
  }));

  it('answers parallel tool calls the same way streamed and not', async () => {
    f.script.toolCalls(calls, false);
    const c = await svc
      .client()
      .chat.completions.create({ model: f.model, messages: user('weather?'), tools });
    expect(c.choices[0]!.finish_reason).toBe('tool_calls');
    expect(c.choices[0]!.message.tool_calls).toEqual(expected);
    f.script.toolCalls(calls, true);
    const final = await svc
      .client()
      .chat.completions.stream({ model: f.model, messages: user('weather?'), tools })
      .finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    expect(final.choices[0]!.message.tool_calls).toEqual(expected);
  });

  it('takes the tool results back in the next turn', async () => {
    f.script.toolCalls(calls, false);
    const first = await svc
      .client()
      .chat.completions.create({ model: f.model, messages: user('weather?'), tools });
    f.script.text(['Paris 18C, Oslo 4C.'], USAGE);
    const second = await svc.client().chat.completions.create({
      model: f.model,
      tools,
      messages: [
        ...user('weather?'),
        first.choices[0]!.message,
        { role: 'tool', tool_call_id: 'call_a1', content: '18C' },
        { role: 'tool', tool_call_id: 'call_b2', content: '4C' },
      ],
    });
    expect(second.choices[0]!.message.content).toBe('Paris 18C, Oslo 4C.');
  });

  it.each([
    ['rate_limited', 503],
    ['refused', 400],
    ['server_error', 502],
  ] as const)('maps an upstream %s to %i with an OpenAI error body', async (kind, status) => {
    f.script.error(kind);
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: f.model, messages: user('e') },
    });
    expect(r.status).toBe(status);
    expect(r.json().error).toEqual({
      message: expect.any(String),
      type: expect.any(String),
      param: null,
      code: expect.any(String),
    });
    if (kind === 'rate_limited') {
      expect(r.headers.get('retry-after')).toBe('1');
      expect(r.json().error.code).toBe('upstream_rate_limited');
    }
  });

  it('turns a failure mid-stream into the error event after the text already sent, and records it', async () => {
    const { key, owner } = await svc.createKey();
    f.script.failMidStream(['one ', 'two ', 'three ', 'four'], 2);
    const r = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: { model: f.model, messages: user('m'), stream: true },
    });
    const events = r.text
      .split('\n\n')
      .filter((b) => b.startsWith('data: '))
      .map((b) => JSON.parse(b.slice(6)));
    expect(r.text).not.toContain('[DONE]');
    expect(events.at(-1)).toMatchObject({ error: { type: expect.any(String), message: expect.any(String) } });
    const text = (events.slice(0, -1) as ChatCompletionChunk[])
      .map((c) => c.choices[0]?.delta.content ?? '')
      .join('');
    expect(text).toBe('one two ');
    expect(await oneRecord(owner)).toMatchObject({ status: 502, stream: true, estimated: true });
  });

  it('answers 504 when the upstream says nothing within timeoutMs, and closes the upstream request', async () => {
    f.script.hang();
    const r = await svc.http('POST', '/v1/chat/completions', {
      body: { model: f.model, messages: user('h') },
    });
    expect(r.status).toBe(504);
    await eventually(() => f.script.lastAborted());
  });
});

describe.each(['e-sim', 'e-openai', 'e-bedrock'])('embeddings contract: %s', (model) => {
  it('answers one vector per input in order, the same numbers as float and base64, with usage and one usage row', async () => {
    const { key, owner } = await svc.createKey();
    const client = svc.client(key);
    const input = ['first text', 'a second, longer text', 'third'];
    const noStore = { headers: { 'cache-control': 'no-store' } };
    const float = await client.embeddings.create(
      { model, input, encoding_format: 'float', dimensions: 16 },
      noStore,
    );
    const b64 = await client.embeddings.create({ model, input, dimensions: 16 }, noStore);
    expect(float).toMatchObject({ object: 'list', model });
    expect(float.data.map((d) => [d.object, d.index])).toEqual(input.map((_, i) => ['embedding', i]));
    for (const d of float.data) expect(d.embedding).toHaveLength(16);
    expect(new Set(float.data.map((d) => JSON.stringify(d.embedding))).size).toBe(3);
    expect(b64.data.map((d) => Array.from(d.embedding))).toEqual(float.data.map((d) => d.embedding));
    expect(float.usage.prompt_tokens).toBeGreaterThan(0);
    expect(float.usage.total_tokens).toBe(float.usage.prompt_tokens);
    const rows = await eventually(async () => {
      const rs = await records(owner);
      return rs.length === 2 ? rs : null;
    });
    for (const r of rows)
      expect(r).toMatchObject({ model, status: 200, promptTokens: float.usage.prompt_tokens });
  });
});
