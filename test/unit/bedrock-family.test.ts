import {
  AccessDeniedException,
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  ModelNotReadyException,
  ModelStreamErrorException,
  ModelTimeoutException,
  ResourceNotFoundException,
  ServiceUnavailableException,
  ThrottlingException,
  ValidationException,
} from '@aws-sdk/client-bedrock-runtime';
import { parse as parseYaml } from 'yaml';
import { parseServiceConfig } from '../../container/src/config/service-config';
import { ApiError, ClientAbortError, ConfigError, GatewayTimeoutError } from '../../container/src/errors';
import { mapBedrockError, shouldRetry } from '../../container/src/providers/bedrock/errors';
import { bedrockFamily } from '../../container/src/providers/bedrock/family';
import { buildCatalogue } from '../../container/src/providers/registry';
import { type BedrockServer, converseViolation, startBedrockServer } from '../helpers/bedrock-server';

const to = { model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', region: 'us-east-1' };
const meta = { $metadata: {} };

describe('the bedrock catalogue entry', () => {
  it("takes the issue's shape (YAML) with the common fields", () => {
    const cfg = parseServiceConfig(
      parseYaml(`
models:
  - id: claude-sonnet
    provider: bedrock
    upstreamModel: us.anthropic.claude-sonnet-4-5-20250929-v1:0
    region: us-east-1
    pricing: { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75 }
    maxRetries: 3
    fallbacks: [claude-haiku]
    timeoutMs: 30000
    maxConcurrent: 8
    contextWindow: 200000
  - id: claude-haiku
    provider: bedrock
    upstreamModel: arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-haiku-4-5-20251001-v1:0
`),
    );
    expect(cfg.models[0]).toMatchObject({
      id: 'claude-sonnet',
      provider: 'bedrock',
      region: 'us-east-1',
      pricing: { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75 },
      maxRetries: 3,
      fallbacks: ['claude-haiku'],
      endpoints: ['chat'],
    });
  });

  it('refuses a bad region, an unknown input_type and another family’s fields, naming them', () => {
    expect(() =>
      parseServiceConfig({
        models: [{ id: 'a', provider: 'bedrock', region: 'US East', baseUrl: 'http://x' }],
      }),
    ).toThrow(/models\.0\.region[\s\S]*baseUrl|baseUrl[\s\S]*models\.0\.region/);
    expect(() =>
      parseServiceConfig({ models: [{ id: 'a', provider: 'bedrock', input_type: 'queries' }] }),
    ).toThrow(/models\.0\.input_type/);
  });

  it('fails at build with the model named when no region is known or the embedding model is not Titan/Cohere', () => {
    const [noRegion] = parseServiceConfig({ models: [{ id: 'x', provider: 'bedrock' }] }).models;
    expect(() => bedrockFamily.build([noRegion as never], { env: {} })).toThrow(ConfigError);
    expect(() => bedrockFamily.build([noRegion as never], { env: {} })).toThrow(/'x'.*AWS_REGION/);
    const { models } = parseServiceConfig({
      models: [
        { id: 'emb', provider: 'bedrock', upstreamModel: 'meta.llama3-8b', endpoints: ['embeddings'] },
        {
          id: 'typed',
          provider: 'bedrock',
          upstreamModel: 'amazon.titan-embed-text-v2:0',
          input_type: 'search_query',
        },
      ],
    });
    expect(() => bedrockFamily.build([models[0] as never], { env: { AWS_REGION: 'us-east-1' } })).toThrow(
      /'emb'.*titan-embed.*cohere\.embed/,
    );
    expect(() => bedrockFamily.build([models[1] as never], { env: { AWS_REGION: 'us-east-1' } })).toThrow(
      /input_type applies to Cohere/,
    );
  });

  it('builds one provider per entry, one readiness check per region', async () => {
    const { models } = parseServiceConfig({
      models: [
        { id: 'a', provider: 'bedrock', upstreamModel: 'm-a' },
        { id: 'b', provider: 'bedrock', upstreamModel: 'm-b' },
        { id: 'c', provider: 'bedrock', upstreamModel: 'm-c', region: 'eu-central-1' },
        {
          id: 'e',
          provider: 'bedrock',
          upstreamModel: 'cohere.embed-v4:0',
          region: 'ap-south-1',
          endpoints: ['embeddings'],
        },
      ],
    });
    const built = buildCatalogue(models, { env: { AWS_REGION: 'us-west-2' } });
    expect(built.entries.map((e) => e.provider.family)).toEqual(['bedrock', 'bedrock', 'bedrock', 'bedrock']);
    expect(built.checks.map((c) => c.name)).toEqual([
      'bedrock:us-west-2',
      'bedrock:eu-central-1',
      'bedrock:ap-south-1',
    ]);
    await built.close();
  });
});

describe('Bedrock error mapping', () => {
  it.each([
    [new ValidationException({ message: 'bad input', ...meta }), 400, 'upstream_invalid_request'],
    [new ThrottlingException({ message: 'slow down', ...meta }), 503, 'upstream_rate_limited'],
    [new AccessDeniedException({ message: 'no', ...meta }), 502, 'upstream_access_denied'],
    [new ResourceNotFoundException({ message: 'no such model', ...meta }), 502, 'upstream_model_not_found'],
    [new ModelTimeoutException({ message: 'took too long', ...meta }), 504, 'upstream_timeout'],
    [new ServiceUnavailableException({ message: 'down', ...meta }), 503, 'upstream_unavailable'],
    [new ModelNotReadyException({ message: 'warming', ...meta }), 503, 'upstream_unavailable'],
    [
      new ModelStreamErrorException({ message: 'x', originalMessage: 'boom', ...meta }),
      502,
      'upstream_error',
    ],
  ])('maps %p to %i', (err, status, code) => {
    const mapped = mapBedrockError(err, to);
    expect(mapped).toBeInstanceOf(ApiError);
    expect(mapped).toMatchObject({ status, code });
  });

  it('says what an operator must fix for access and model problems', () => {
    expect(mapBedrockError(new AccessDeniedException({ message: 'denied.', ...meta }), to).message).toMatch(
      /us\.anthropic.*us-east-1.*model is granted.*bedrock:InvokeModel/,
    );
    expect(mapBedrockError(new ResourceNotFoundException({ message: 'gone.', ...meta }), to).message).toMatch(
      /inference profile.*region/,
    );
    const creds = Object.assign(new Error('Could not load credentials from any providers'), {
      name: 'CredentialsProviderError',
    });
    expect(mapBedrockError(creds, to)).toMatchObject({
      status: 502,
      message: expect.stringMatching(/AWS credentials/),
    });
    expect(shouldRetry(creds)).toBe(false);
  });

  it('maps an abort to ClientAbortError, or to the reason the router gave', () => {
    const ac = new AbortController();
    ac.abort();
    expect(
      mapBedrockError(Object.assign(new Error('Request aborted'), { name: 'AbortError' }), to, ac.signal),
    ).toBeInstanceOf(ClientAbortError);
    const idle = new AbortController();
    const reason = new GatewayTimeoutError('idle');
    idle.abort(reason);
    expect(mapBedrockError(new Error('x'), to, idle.signal)).toBe(reason);
  });

  it('retries throttling, unavailability and connection failures, not refusals or timeouts', () => {
    expect(shouldRetry(new ThrottlingException({ message: '', ...meta }))).toBe(true);
    expect(shouldRetry(new ServiceUnavailableException({ message: '', ...meta }))).toBe(true);
    expect(shouldRetry(new ModelNotReadyException({ message: '', ...meta }))).toBe(true);
    expect(shouldRetry(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(
      true,
    );
    expect(shouldRetry(new ValidationException({ message: '', ...meta }))).toBe(false);
    expect(shouldRetry(new AccessDeniedException({ message: '', ...meta }))).toBe(false);
    expect(shouldRetry(new ModelTimeoutException({ message: '', ...meta }))).toBe(false);
  });
});

describe('the Bedrock-protocol test server', () => {
  let server: BedrockServer;
  let client: BedrockRuntimeClient;
  const saved = process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME;

  beforeAll(async () => {
    server = await startBedrockServer();
    process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME = server.url;
    client = new BedrockRuntimeClient({ region: 'us-east-1', maxAttempts: 1 });
  });
  afterAll(async () => {
    client.destroy();
    await server.close();
    if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME;
    else process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME = saved;
  });
  beforeEach(() => server.reset());

  const hello = [{ role: 'user' as const, content: [{ text: 'hi' }] }];

  it('streams event-stream frames split across writes that the real SDK decodes', async () => {
    server.enqueue('m', {
      kind: 'stream',
      text: ['a', 'b'],
      toolUses: [{ toolUseId: 't1', name: 'f', input: { x: 1 } }],
      usage: { inputTokens: 3, outputTokens: 4, cacheReadInputTokens: 5 },
    });
    const out = await client.send(new ConverseStreamCommand({ modelId: 'm', messages: hello }));
    const events = [];
    for await (const e of out.stream!) events.push(e);
    expect(events.map((e) => Object.keys(e)[0])).toEqual([
      'messageStart',
      'contentBlockDelta',
      'contentBlockDelta',
      'contentBlockStop',
      'contentBlockStart',
      'contentBlockDelta',
      'contentBlockDelta',
      'contentBlockStop',
      'messageStop',
      'metadata',
    ]);
    expect(events.at(-1)).toMatchObject({
      metadata: { usage: { inputTokens: 3, outputTokens: 4, cacheReadInputTokens: 5, totalTokens: 12 } },
    });
    const rec = server.requests[0]!;
    expect(rec).toMatchObject({ httpVersion: '2.0', operation: 'converse-stream', frames: 10, writes: 20 });
  });

  it('sends exception frames the SDK throws as the modelled exception', async () => {
    server.enqueue('m', {
      kind: 'stream',
      text: ['a'],
      failAfter: { events: 2, exception: 'throttlingException' },
    });
    const out = await client.send(new ConverseStreamCommand({ modelId: 'm', messages: hello }));
    const err = await (async () => {
      for await (const _ of out.stream!) {
        // drain
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ThrottlingException);
  });

  it('answers HTTP errors with x-amzn-errortype, and Bedrock’s conversation rules as ValidationException', async () => {
    server.enqueue('m', { kind: 'error', type: 'ModelTimeoutException', message: 'slow' });
    await expect(client.send(new ConverseCommand({ modelId: 'm', messages: hello }))).rejects.toBeInstanceOf(
      ModelTimeoutException,
    );
    await expect(
      client.send(
        new ConverseCommand({
          modelId: 'm',
          messages: [
            { role: 'user', content: [{ text: 'a' }] },
            { role: 'user', content: [{ text: 'b' }] },
          ],
        }),
      ),
    ).rejects.toThrow(/alternate/);
  });

  it('applies the conversation rules Bedrock enforces', () => {
    const ok = { messages: [{ role: 'user', content: [{ text: 'a' }] }] };
    expect(converseViolation(ok)).toBeNull();
    expect(converseViolation({ messages: [] })).toMatch(/start with a user/);
    expect(converseViolation({ messages: [{ role: 'user', content: [{ text: ' ' }] }] })).toMatch(/blank/);
    const withTools = {
      messages: [
        { role: 'user', content: [{ text: 'a' }] },
        { role: 'assistant', content: [{ toolUse: { toolUseId: 't1', name: 'f', input: {} } }] },
        { role: 'user', content: [{ toolResult: { toolUseId: 't1', content: [{ text: 'r' }] } }] },
      ],
    };
    expect(converseViolation(withTools)).toMatch(/toolConfig/);
    expect(
      converseViolation({ ...withTools, toolConfig: { tools: [{ toolSpec: { name: 'f' } }] } }),
    ).toBeNull();
    const orphan = structuredClone(withTools) as typeof withTools & { toolConfig?: unknown };
    orphan.toolConfig = { tools: [{ toolSpec: { name: 'f' } }] };
    (orphan.messages[2]!.content[0] as { toolResult: { toolUseId: string } }).toolResult.toolUseId = 'other';
    expect(converseViolation(orphan)).toMatch(/no matching toolUse/);
  });

  it('serves InvokeModel for Titan with the token count header, and HTTP/1.1 too', async () => {
    const out = await client.send(
      new InvokeModelCommand({
        modelId: 'amazon.titan-embed-text-v2:0',
        body: JSON.stringify({ inputText: 'two words' }),
      }),
    );
    expect(JSON.parse(Buffer.from(out.body!).toString())).toMatchObject({ inputTextTokenCount: 2 });
    const r = await fetch(
      `${server.url}/model/${encodeURIComponent('amazon.titan-embed-text-v2:0')}/invoke`,
      {
        method: 'POST',
        body: JSON.stringify({ inputText: 'three words here' }),
      },
    );
    expect(r.headers.get('x-amzn-bedrock-input-token-count')).toBe('3');
    expect(server.requests.map((q) => q.httpVersion)).toEqual(['2.0', '1.1']);
  });

  it('records a request the client aborted', async () => {
    server.enqueue('m', { kind: 'hang' });
    const ac = new AbortController();
    const p = client.send(new ConverseCommand({ modelId: 'm', messages: hello }), { abortSignal: ac.signal });
    await server.waitForRequests(1);
    ac.abort();
    await expect(p).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 100));
    expect(server.requests[0]).toMatchObject({ aborted: true, finished: false });
  });
});
