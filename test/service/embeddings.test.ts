import { createOpenAI } from '@ai-sdk/openai';
import { OpenAIEmbeddings } from '@langchain/openai';
import { embed, embedMany } from 'ai';
import type { LocalStack } from '../../container/src/local/stack';
import { simulatedEmbedding } from '../../container/src/providers/simulator/simulator-provider';
import { queryUsageRecords } from '../../container/src/usage/usage-recorder';
import {
  type MockUpstream,
  mockEmbedding,
  mockEmbeddingTokens,
  startMockUpstream,
} from '../helpers/mock-upstream';
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
  stack = await startTestStack('embeddings');
  svc = await startTestService({
    stack,
    config: {
      models: [
        mockModel(upstream, 'embed-small', {
          upstreamModel: 'text-embedding-3-small',
          endpoints: ['embeddings'],
          pricing: { input: 20, output: 0 },
          contextWindow: 64,
          dimensions: 16,
        }),
        mockModel(upstream, 'mock-chat'),
        {
          id: 'sim-embed',
          provider: 'simulator',
          endpoints: ['embeddings'],
          dimensions: 32,
          simulator: { ttftMs: 0 },
        },
      ],
      tiers: {
        basic: { limits: { rpm: 10_000 }, models: ['*'] },
        tight: { limits: { rpm: 10_000, tpm: 40 }, models: ['*'] },
        chatonly: { limits: { rpm: 10_000 }, models: ['mock-chat'] },
      },
      usage: { flushIntervalMs: 100 },
    },
  });
});

afterAll(async () => {
  await svc?.stop();
  await stack?.stop();
  await upstream?.close();
});

beforeEach(() => upstream.reset());

const embeddingRequests = () => upstream.requests.filter((r) => r.path.endsWith('/embeddings'));
const records = (owner: string) =>
  queryUsageRecords(svc.server.runtime.doc, svc.server.runtime.env.tables.usage, owner);

describe('POST /v1/embeddings with the official openai SDK', () => {
  it('decodes its default base64 request into the upstream vectors, and reports the upstream usage', async () => {
    const { key } = await svc.createKey();
    const res = await svc
      .client(key)
      .embeddings.create({ model: 'embed-small', input: ['alpha', 'beta gamma'] });
    expect(res.model).toBe('embed-small');
    expect(res.data.map((d) => d.index)).toEqual([0, 1]);
    expect(Array.from(res.data[0]?.embedding as number[])).toEqual(mockEmbedding('alpha', 8));
    expect(Array.from(res.data[1]?.embedding as number[])).toEqual(mockEmbedding('beta gamma', 8));
    const tokens = mockEmbeddingTokens('alpha') + mockEmbeddingTokens('beta gamma');
    expect(res.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    // The public id never goes upstream; the upstream name does.
    expect(embeddingRequests()[0]?.body['model']).toBe('text-embedding-3-small');
  });

  it('answers float and base64 with the same numbers, and passes dimensions upstream', async () => {
    const { key } = await svc.createKey();
    const client = svc.client(key);
    const float = await client.embeddings.create(
      { model: 'embed-small', input: 'same text', encoding_format: 'float', dimensions: 12 },
      { headers: { 'cache-control': 'no-store' } },
    );
    const b64 = await client.embeddings.create({
      model: 'embed-small',
      input: 'same text',
      encoding_format: 'base64',
      dimensions: 12,
    });
    const bytes = Buffer.from(b64.data[0]?.embedding as unknown as string, 'base64');
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    expect(float.data[0]?.embedding).toEqual(decoded);
    expect(decoded).toHaveLength(12);
    expect(embeddingRequests().every((r) => r.body['dimensions'] === 12)).toBe(true);
  });

  it('serves deterministic unit vectors from the simulator with no upstream', async () => {
    const { key } = await svc.createKey();
    const res = await svc.client(key).embeddings.create({ model: 'sim-embed', input: ['x', 'y'] });
    const v = Array.from(res.data[0]?.embedding as number[]);
    expect(v).toHaveLength(32);
    expect(v).toEqual(Array.from(simulatedEmbedding('x', 32)));
    expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    expect(res.data[1]?.embedding).not.toEqual(res.data[0]?.embedding);
    expect(embeddingRequests()).toHaveLength(0);
  });
});

describe('the per-item embeddings cache', () => {
  it('sends only the new items upstream, answers HIT when every item was cached, and counts cached items as embedded', async () => {
    const { key } = await svc.createKey();
    const send = (input: string[], headers: Record<string, string> = {}) =>
      svc.http('POST', '/v1/embeddings', {
        key,
        headers,
        body: { model: 'embed-small', input, encoding_format: 'float' },
      });

    const first = await send(['one', 'two']);
    expect(first.headers.get('x-tollgate-cache')).toBe('MISS');
    const second = await send(['one', 'two']);
    expect(second.headers.get('x-tollgate-cache')).toBe('HIT');
    expect(second.headers.get('x-tollgate-cost-usd')).toBe('0.0');
    expect(second.json().data).toEqual(first.json().data);
    expect(second.json().usage).toEqual(first.json().usage);

    const third = await send(['two', 'three']);
    expect(third.headers.get('x-tollgate-cache')).toBe('MISS');
    expect(third.json().data[0].embedding).toEqual(first.json().data[1].embedding);
    expect(third.json().data[1].embedding).toEqual(mockEmbedding('three', 8));
    const sent = embeddingRequests().map((r) => r.body['input']);
    expect(sent).toEqual([['one', 'two'], ['three']]);
    const t = (s: string) => mockEmbeddingTokens(s);
    expect(third.json().usage.prompt_tokens).toBe(t('two') + t('three'));

    const bypass = await send(['one', 'two'], { 'cache-control': 'no-store' });
    expect(bypass.headers.get('x-tollgate-cache')).toBe('BYPASS');
    expect(embeddingRequests()).toHaveLength(3);
  });
});

describe('embeddings are metered like chat', () => {
  it('writes a usage row with the upstream tokens and their cost, and only bills what went upstream', async () => {
    const { key, owner } = await svc.createKey();
    const input = ['metered item number one', 'and number two'];
    const res = await svc.http('POST', '/v1/embeddings', { key, body: { model: 'embed-small', input } });
    expect(res.status).toBe(200);
    const tokens = input.reduce((n, s) => n + mockEmbeddingTokens(s), 0);
    expect(res.headers.get('x-tollgate-cost-usd')).toBe(((tokens * 20) / 1e6).toFixed(9).replace(/0+$/, ''));
    await svc.http('POST', '/v1/embeddings', { key, body: { model: 'embed-small', input } });
    const rows = await eventually(async () => {
      const r = await records(owner);
      return r.length === 2 ? r : null;
    });
    const [miss, hit] = rows.sort((a, b) => a.ts - b.ts);
    expect(miss).toMatchObject({
      endpoint: 'embeddings',
      model: 'embed-small',
      promptTokens: tokens,
      completionTokens: 0,
      cached: false,
      status: 200,
    });
    expect(miss?.costUsd).toBeCloseTo((tokens * 20) / 1e6, 12);
    expect(hit).toMatchObject({ endpoint: 'embeddings', cached: true, costUsd: 0 });
  });

  it('admits on input tokens: a batch beyond the key tokens-per-minute limit is refused with 429', async () => {
    const { key } = await svc.createKey({ tier: 'tight' });
    const big = Array.from({ length: 3 }, (_, i) => `${'word '.repeat(15)}${i}`);
    const res = await svc.http('POST', '/v1/embeddings', { key, body: { model: 'embed-small', input: big } });
    expect(res.status).toBe(429);
    expect(res.json().error.code).toBe('rate_limit_exceeded');
    expect(embeddingRequests()).toHaveLength(0);
  });
});

describe('models by endpoint', () => {
  it('refuses a chat model for embeddings and an embedding model for chat, saying what each serves', async () => {
    const { key } = await svc.createKey();
    const e = await svc.http('POST', '/v1/embeddings', { key, body: { model: 'mock-chat', input: 'x' } });
    expect(e.status).toBe(400);
    expect(e.json().error).toMatchObject({ param: 'model', code: 'unsupported_model' });
    expect(e.json().error.message).toMatch(/does not serve embeddings/);
    const c = await svc.http('POST', '/v1/chat/completions', {
      key,
      body: { model: 'embed-small', messages: [{ role: 'user', content: 'hi' }] },
    });
    expect(c.status).toBe(400);
    expect(c.json().error.message).toMatch(/does not serve chat completions .*; it serves embeddings/);
  });

  it('lists what each model serves, and retrieves one model (404 for unknown ids and for models the key may not use)', async () => {
    const { key } = await svc.createKey();
    const client = svc.client(key);
    const list = await svc.http('GET', '/v1/models', { key });
    const byId = Object.fromEntries(list.json().data.map((m: { id: string }) => [m.id, m]));
    expect(byId['embed-small'].endpoints).toEqual(['embeddings']);
    expect(byId['mock-chat'].endpoints).toEqual(['chat']);
    const one = await client.models.retrieve('embed-small');
    expect(one).toMatchObject({ id: 'embed-small', object: 'model', owned_by: 'tollgate' });
    await expect(client.models.retrieve('nope')).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
    const { key: limited } = await svc.createKey({ tier: 'chatonly' });
    await expect(svc.client(limited).models.retrieve('embed-small')).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
    expect((await svc.client(limited).models.retrieve('mock-chat')).id).toBe('mock-chat');
  });
});

describe('bad embeddings input gets a 400 naming the field', () => {
  const cases: Array<[string, unknown, string]> = [
    ['missing model', { input: 'x' }, 'model'],
    ['missing input', { model: 'embed-small' }, 'input'],
    ['empty string', { model: 'embed-small', input: '' }, 'input'],
    ['empty array', { model: 'embed-small', input: [] }, 'input'],
    ['an empty string item', { model: 'embed-small', input: ['a', ''] }, 'input[1]'],
    ['mixed item types', { model: 'embed-small', input: ['a', 3] }, 'input[1]'],
    ['a non-integer token', { model: 'embed-small', input: [1, 2.5] }, 'input[1]'],
    ['an empty token array', { model: 'embed-small', input: [[1], []] }, 'input[1]'],
    ['input of the wrong type', { model: 'embed-small', input: { text: 'x' } }, 'input'],
    ['too many items', { model: 'embed-small', input: Array.from({ length: 2049 }, () => 'x') }, 'input'],
    [
      'an item over the model limit',
      { model: 'embed-small', input: ['ok', 'long '.repeat(100)] },
      'input[1]',
    ],
    ['a single input over the model limit', { model: 'embed-small', input: 'long '.repeat(100) }, 'input'],
    ['dimensions 0', { model: 'embed-small', input: 'x', dimensions: 0 }, 'dimensions'],
    ['fractional dimensions', { model: 'embed-small', input: 'x', dimensions: 1.5 }, 'dimensions'],
    ['dimensions beyond the model', { model: 'embed-small', input: 'x', dimensions: 17 }, 'dimensions'],
    [
      'an unknown encoding_format',
      { model: 'embed-small', input: 'x', encoding_format: 'hex' },
      'encoding_format',
    ],
    ['user not a string', { model: 'embed-small', input: 'x', user: 5 }, 'user'],
    ['an unknown field', { model: 'embed-small', input: 'x', temperature: 0 }, 'temperature'],
  ];
  it.each(cases)('%s', async (_name, body, param) => {
    const { key } = await svc.createKey();
    const res = await svc.http('POST', '/v1/embeddings', { key, body: body as object });
    expect(res.status).toBe(400);
    expect(res.json().error.type).toBe('invalid_request_error');
    expect(res.json().error.param).toBe(param);
    expect(embeddingRequests()).toHaveLength(0);
  });

  it('answers an unknown model 404 model_not_found and an empty body 400', async () => {
    const { key } = await svc.createKey();
    const unknown = await svc.http('POST', '/v1/embeddings', { key, body: { model: 'nope', input: 'x' } });
    expect(unknown.status).toBe(404);
    expect(unknown.json().error.code).toBe('model_not_found');
    const empty = await svc.http('POST', '/v1/embeddings', {
      key,
      body: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(empty.status).toBe(400);
  });
});

describe('other clients', () => {
  it("the Vercel AI SDK's embed and embedMany", async () => {
    const { key } = await svc.createKey();
    const openai = createOpenAI({ baseURL: svc.baseURL, apiKey: key });
    const one = await embed({ model: openai.embedding('embed-small'), value: 'vercel one' });
    expect(one.embedding).toEqual(mockEmbedding('vercel one', 8));
    const many = await embedMany({ model: openai.embedding('embed-small'), values: ['a b', 'c d', 'e f'] });
    expect(many.embeddings).toEqual(['a b', 'c d', 'e f'].map((v) => mockEmbedding(v, 8)));
    expect(many.usage.tokens).toBe(['a b', 'c d', 'e f'].reduce((n, s) => n + mockEmbeddingTokens(s), 0));
  });

  it("LangChain's OpenAIEmbeddings", async () => {
    const { key } = await svc.createKey();
    const emb = new OpenAIEmbeddings({
      model: 'embed-small',
      apiKey: key,
      configuration: { baseURL: svc.baseURL },
    });
    const docs = await emb.embedDocuments(['lang one', 'lang two']);
    expect(docs).toEqual([mockEmbedding('lang one', 8), mockEmbedding('lang two', 8)]);
    const q = await emb.embedQuery('lang query');
    expect(q).toEqual(mockEmbedding('lang query', 8));
  });
});

describe('the OPENAI_BASE_URL shortcut', () => {
  it('serves embeddings for discovered models whose id says embedding, and chat for the rest', async () => {
    upstream.models = ['mock-small', 'text-embedding-3-small'];
    const shortcut = await startTestService({
      stack,
      name: 'emb-shortcut',
      config: {},
      env: { OPENAI_BASE_URL: upstream.baseUrl },
    });
    try {
      const models = (await shortcut.http('GET', '/v1/models')).json().data;
      expect(models.map((m: { id: string; endpoints: string[] }) => [m.id, m.endpoints])).toEqual([
        ['mock-small', ['chat']],
        ['text-embedding-3-small', ['embeddings']],
      ]);
      const res = await shortcut
        .client()
        .embeddings.create({ model: 'text-embedding-3-small', input: 'shortcut' });
      expect(Array.from(res.data[0]?.embedding as number[])).toEqual(mockEmbedding('shortcut', 8));
    } finally {
      await shortcut.stop();
    }
  });
});
