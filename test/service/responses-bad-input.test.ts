/**
 * Bad input to the Responses API: every field, wrong item types, unknown tool types, another
 * key's stored id, a previous response that no longer exists. Each answer is an OpenAI-style
 * 4xx naming the field, and nothing reaches the model.
 */
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { registerResponsesRoutes } from '../helpers/responses';
import { mockModel, startTestService, type TestService } from '../helpers/service';

let upstream: MockUpstream;
let svc: TestService;

beforeAll(async () => {
  upstream = await startMockUpstream();
  svc = await startTestService({
    name: 'responses-bad',
    plugins: [registerResponsesRoutes],
    config: {
      models: [mockModel(upstream, 'mock-small')],
      tiers: { basic: { limits: { rpm: 100_000 }, models: ['*'] } },
    },
  });
});

afterAll(async () => {
  await svc?.stop();
  await upstream?.close();
});

beforeEach(() => upstream.reset());

const fn = (name = 'f', extra: Record<string, unknown> = {}) => ({
  type: 'function',
  name,
  parameters: { type: 'object', properties: {} },
  strict: false,
  ...extra,
});
const user = (content: unknown) => ({ role: 'user', content });

type Case = [name: string, body: Record<string, unknown>, param: string | null, code?: string];

/** Bodies are merged over a valid request, so each case breaks exactly one thing. */
const CASES: Case[] = [
  // model
  ['model missing', { model: undefined }, 'model', 'missing_required_parameter'],
  ['model not a string', { model: 42 }, 'model', 'invalid_type'],
  ['model empty', { model: '' }, 'model'],
  ['model unknown', { model: 'no-such-model' }, 'model', 'model_not_found'],
  // input
  ['input missing', { input: undefined }, 'input', 'missing_required_parameter'],
  ['input a number', { input: 7 }, 'input', 'invalid_type'],
  ['input an object', { input: { role: 'user', content: 'x' } }, 'input', 'invalid_type'],
  ['input empty', { input: [] }, 'input'],
  ['input item a string', { input: ['hello'] }, 'input[0]', 'invalid_type'],
  ['input item without type, role or id', { input: [{ content: 'x' }] }, 'input[0].type'],
  ['input item of a built-in tool', { input: [{ type: 'web_search_call', id: 'ws_1' }] }, 'input[0].type'],
  [
    'input item computer_call_output',
    { input: [{ type: 'computer_call_output', call_id: 'c' }] },
    'input[0].type',
  ],
  ['input item mcp_call', { input: [{ type: 'mcp_call', id: 'm' }] }, 'input[0].type'],
  ['input item custom_tool_call', { input: [{ type: 'custom_tool_call', call_id: 'c' }] }, 'input[0].type'],
  ['input item of an unknown type', { input: [{ type: 'telepathy' }] }, 'input[0].type', 'unsupported_value'],
  // messages
  ['message role unknown', { input: [{ role: 'robot', content: 'x' }] }, 'input[0].role', 'invalid_value'],
  [
    'message without content',
    { input: [{ role: 'user' }] },
    'input[0].content',
    'missing_required_parameter',
  ],
  ['message content a number', { input: [user(5)] }, 'input[0].content', 'invalid_type'],
  ['content part of unknown type', { input: [user([{ type: 'input_audio' }])] }, 'input[0].content[0].type'],
  ['input_text without text', { input: [user([{ type: 'input_text' }])] }, 'input[0].content[0].text'],
  [
    'input_text text not a string',
    { input: [user([{ type: 'input_text', text: 1 }])] },
    'input[0].content[0].text',
  ],
  [
    'input_image without a URL',
    { input: [user([{ type: 'input_image', detail: 'auto' }])] },
    'input[0].content[0].image_url',
  ],
  [
    'input_image with an ftp URL',
    { input: [user([{ type: 'input_image', image_url: 'ftp://x/y.png' }])] },
    'input[0].content[0].image_url',
  ],
  [
    'input_image detail unknown',
    { input: [user([{ type: 'input_image', image_url: 'data:image/png;base64,AA==', detail: 'ultra' }])] },
    'input[0].content[0].detail',
  ],
  [
    'input_image by file_id',
    { input: [user([{ type: 'input_image', file_id: 'file-1' }])] },
    'input[0].content[0].file_id',
    'unsupported_parameter',
  ],
  [
    'input_file',
    { input: [user([{ type: 'input_file', file_data: 'data:application/pdf;base64,AA==' }])] },
    'input[0].content[0]',
    'unsupported_parameter',
  ],
  [
    'an output_text part in a user message',
    { input: [user([{ type: 'output_text', text: 'x' }])] },
    'input[0].content[0].type',
  ],
  [
    'an image in an assistant message',
    {
      input: [
        { role: 'assistant', content: [{ type: 'input_image', image_url: 'data:image/png;base64,AA==' }] },
      ],
    },
    'input[0].content[0].type',
  ],
  ['message status unknown', { input: [{ ...user('x'), status: 'done' }] }, 'input[0].status'],
  // function calls and their outputs
  [
    'function_call without call_id',
    { input: [{ type: 'function_call', name: 'f', arguments: '{}' }] },
    'input[0].call_id',
    'missing_required_parameter',
  ],
  [
    'function_call without name',
    { input: [{ type: 'function_call', call_id: 'c', arguments: '{}' }] },
    'input[0].name',
  ],
  [
    'function_call arguments an object',
    { input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: { a: 1 } }] },
    'input[0].arguments',
    'invalid_type',
  ],
  [
    'function_call_output without call_id',
    { input: [{ type: 'function_call_output', output: 'x' }] },
    'input[0].call_id',
  ],
  [
    'function_call_output output a number',
    { input: [{ type: 'function_call_output', call_id: 'c', output: 3 }] },
    'input[0].output',
  ],
  [
    'function_call_output with an image',
    {
      input: [
        { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' },
        {
          type: 'function_call_output',
          call_id: 'c',
          output: [{ type: 'input_image', image_url: 'data:image/png;base64,AA==' }],
        },
      ],
    },
    'input[1].output[0]',
    'unsupported_parameter',
  ],
  [
    'function_call_output answering no call',
    { input: [user('x'), { type: 'function_call_output', call_id: 'call_nobody', output: 'r' }] },
    'input[1].call_id',
  ],
  [
    'item_reference without id',
    { input: [{ type: 'item_reference' }] },
    'input[0].id',
    'missing_required_parameter',
  ],
  // instructions
  ['instructions not a string', { instructions: ['be nice'] }, 'instructions', 'invalid_type'],
  // tools
  ['tools not an array', { tools: fn() }, 'tools', 'invalid_type'],
  ['tool web_search', { tools: [{ type: 'web_search' }] }, 'tools[0].type', 'unsupported_value'],
  ['tool web_search_preview', { tools: [{ type: 'web_search_preview' }] }, 'tools[0].type'],
  ['tool file_search', { tools: [{ type: 'file_search', vector_store_ids: ['vs_1'] }] }, 'tools[0].type'],
  [
    'tool code_interpreter',
    { tools: [{ type: 'code_interpreter', container: { type: 'auto' } }] },
    'tools[0].type',
  ],
  ['tool computer_use_preview', { tools: [{ type: 'computer_use_preview' }] }, 'tools[0].type'],
  ['tool image_generation', { tools: [{ type: 'image_generation' }] }, 'tools[0].type'],
  ['tool mcp', { tools: [{ type: 'mcp', server_label: 'x' }] }, 'tools[0].type'],
  ['tool custom', { tools: [{ type: 'custom', name: 'c' }] }, 'tools[0].type'],
  ['tool of an unknown type', { tools: [fn(), { type: 'teleport' }] }, 'tools[1].type'],
  ['tool without type', { tools: [{ name: 'f' }] }, 'tools[0].type'],
  [
    'function without name',
    { tools: [{ type: 'function', parameters: {} }] },
    'tools[0].name',
    'missing_required_parameter',
  ],
  ['function name with spaces', { tools: [fn('get weather')] }, 'tools[0].name'],
  ['function name too long', { tools: [fn('f'.repeat(65))] }, 'tools[0].name'],
  [
    'function parameters not an object',
    { tools: [fn('f', { parameters: 'object' })] },
    'tools[0].parameters',
    'invalid_type',
  ],
  [
    'function strict not a boolean',
    { tools: [fn('f', { strict: 'yes' })] },
    'tools[0].strict',
    'invalid_type',
  ],
  [
    'function with defer_loading',
    { tools: [fn('f', { defer_loading: true })] },
    'tools[0].defer_loading',
    'unsupported_parameter',
  ],
  ['async function', { tools: [fn('f', { async: true })] }, 'tools[0].async', 'unsupported_parameter'],
  ['duplicate function names', { tools: [fn('f'), fn('f')] }, 'tools[1].name'],
  // tool_choice
  ['tool_choice unknown string', { tools: [fn()], tool_choice: 'sometimes' }, 'tool_choice'],
  [
    'tool_choice function without name',
    { tools: [fn()], tool_choice: { type: 'function' } },
    'tool_choice.name',
  ],
  [
    'tool_choice a built-in tool',
    { tools: [fn()], tool_choice: { type: 'web_search_preview' } },
    'tool_choice.type',
  ],
  [
    'tool_choice naming no tool',
    { tools: [fn()], tool_choice: { type: 'function', name: 'g' } },
    'tool_choice.name',
  ],
  [
    'tool_choice allowed_tools mode unknown',
    {
      tools: [fn()],
      tool_choice: { type: 'allowed_tools', mode: 'maybe', tools: [{ type: 'function', name: 'f' }] },
    },
    'tool_choice.mode',
  ],
  [
    'tool_choice allowed_tools naming no tool',
    {
      tools: [fn()],
      tool_choice: { type: 'allowed_tools', mode: 'auto', tools: [{ type: 'function', name: 'x' }] },
    },
    'tool_choice.tools[0].name',
  ],
  ['tool_choice required without tools', { tool_choice: 'required' }, 'tool_choice'],
  [
    'parallel_tool_calls not a boolean',
    { parallel_tool_calls: 'yes' },
    'parallel_tool_calls',
    'invalid_type',
  ],
  // text
  ['text not an object', { text: 'json' }, 'text', 'invalid_type'],
  ['text.format of unknown type', { text: { format: { type: 'xml' } } }, 'text.format.type'],
  [
    'json_schema without name',
    { text: { format: { type: 'json_schema', schema: { type: 'object' } } } },
    'text.format.name',
    'missing_required_parameter',
  ],
  [
    'json_schema without schema',
    { text: { format: { type: 'json_schema', name: 'x' } } },
    'text.format.schema',
  ],
  [
    'json_schema name with spaces',
    { text: { format: { type: 'json_schema', name: 'my schema', schema: {} } } },
    'text.format.name',
  ],
  [
    'json_schema strict not a boolean',
    { text: { format: { type: 'json_schema', name: 'x', schema: {}, strict: 1 } } },
    'text.format.strict',
  ],
  ['text.verbosity unknown', { text: { verbosity: 'loud' } }, 'text.verbosity', 'invalid_value'],
  // sampling and limits
  ['max_output_tokens 0', { max_output_tokens: 0 }, 'max_output_tokens'],
  ['max_output_tokens fractional', { max_output_tokens: 1.5 }, 'max_output_tokens'],
  ['max_output_tokens a string', { max_output_tokens: '10' }, 'max_output_tokens', 'invalid_type'],
  ['temperature above 2', { temperature: 2.5 }, 'temperature'],
  ['temperature negative', { temperature: -0.1 }, 'temperature'],
  ['top_p above 1', { top_p: 1.5 }, 'top_p'],
  ['top_logprobs above 20', { top_logprobs: 21 }, 'top_logprobs'],
  ['max_tool_calls 0', { max_tool_calls: 0 }, 'max_tool_calls'],
  // metadata and identity
  ['metadata not an object', { metadata: 'x' }, 'metadata', 'invalid_type'],
  ['metadata value not a string', { metadata: { a: 1 } }, 'metadata.a', 'invalid_type'],
  ['metadata value too long', { metadata: { a: 'x'.repeat(513) } }, 'metadata.a'],
  ['metadata key too long', { metadata: { ['k'.repeat(65)]: 'v' } }, `metadata.${'k'.repeat(65)}`],
  [
    'metadata with 17 keys',
    { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) },
    'metadata',
  ],
  ['user not a string', { user: 7 }, 'user', 'invalid_type'],
  ['safety_identifier not a string', { safety_identifier: 7 }, 'safety_identifier', 'invalid_type'],
  // delivery and storage
  ['stream not a boolean', { stream: 'yes' }, 'stream', 'invalid_type'],
  ['stream_options not an object', { stream_options: true }, 'stream_options', 'invalid_type'],
  ['store not a boolean', { store: 'no' }, 'store', 'invalid_type'],
  ['previous_response_id empty', { previous_response_id: '' }, 'previous_response_id'],
  ['previous_response_id a number', { previous_response_id: 5 }, 'previous_response_id', 'invalid_type'],
  // reasoning and hints
  ['reasoning not an object', { reasoning: 'high' }, 'reasoning', 'invalid_type'],
  ['reasoning.effort unknown', { reasoning: { effort: 'extreme' } }, 'reasoning.effort', 'invalid_value'],
  ['reasoning.summary unknown', { reasoning: { summary: 'verbose' } }, 'reasoning.summary'],
  ['include of an unknown value', { include: ['bogus.field'] }, 'include[0]', 'invalid_value'],
  ['include not an array', { include: 'reasoning.encrypted_content' }, 'include', 'invalid_type'],
  ['service_tier unknown', { service_tier: 'turbo' }, 'service_tier'],
  ['truncation unknown', { truncation: 'sometimes' }, 'truncation'],
  ['prompt_cache_retention unknown', { prompt_cache_retention: 'forever' }, 'prompt_cache_retention'],
  ['prompt_cache_key not a string', { prompt_cache_key: 1 }, 'prompt_cache_key', 'invalid_type'],
  // refused: changes the answer and cannot be honoured
  ['background: true', { background: true }, 'background', 'unsupported_parameter'],
  ['conversation id', { conversation: 'conv_123' }, 'conversation', 'unsupported_parameter'],
  ['conversation object', { conversation: { id: 'conv_123' } }, 'conversation', 'unsupported_parameter'],
  ['prompt template', { prompt: { id: 'pmpt_1', version: '2' } }, 'prompt', 'unsupported_parameter'],
  [
    'context_management',
    { context_management: [{ type: 'compaction' }] },
    'context_management',
    'unsupported_parameter',
  ],
  ['moderation', { moderation: { model: 'omni-moderation-latest' } }, 'moderation', 'unsupported_parameter'],
  // unknown fields
  ['an unknown top-level field', { temprature: 0.5 }, 'temprature', 'unknown_parameter'],
  [
    'a chat field sent by mistake',
    { messages: [{ role: 'user', content: 'x' }] },
    'messages',
    'unknown_parameter',
  ],
];

describe('POST /v1/responses refuses bad input with a 4xx naming the field', () => {
  // A rest parameter: jest passes `done` to callbacks declaring more parameters than a row has.
  it.each(CASES)('%s', async (...row: Case) => {
    const [, patch, param, code] = row;
    const body: Record<string, unknown> = { model: 'mock-small', input: 'hi', ...patch };
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    const r = await svc.http('POST', '/v1/responses', { body });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    const err = r.json().error;
    expect(Object.keys(err).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(err.type).toBe('invalid_request_error');
    expect(typeof err.message).toBe('string');
    expect(err.message.length).toBeGreaterThan(10);
    expect(err.param).toBe(param);
    if (code) expect(err.code).toBe(code);
    expect(upstream.requests).toHaveLength(0);
  });

  it('says why a built-in tool is refused', async () => {
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'mock-small', input: 'hi', tools: [{ type: 'web_search' }] },
    });
    expect(r.json().error.message).toContain("run only on OpenAI's servers");
  });

  it('refuses a body that is not a JSON object', async () => {
    for (const body of ['[1,2]', '"text"', 'null']) {
      const r = await svc.http('POST', '/v1/responses', { body });
      expect(r.status).toBe(400);
      expect(r.json().error.type).toBe('invalid_request_error');
    }
    const broken = await svc.http('POST', '/v1/responses', { body: '{"model":' });
    expect(broken.status).toBe(400);
    expect(broken.json().error.code).toBe('invalid_json');
  });

  it('accepts the hints it ignores, documented as such', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'ok' });
    const r = await svc.http('POST', '/v1/responses', {
      body: {
        model: 'mock-small',
        input: 'hi',
        service_tier: 'flex',
        prompt_cache_key: 'k1',
        prompt_cache_retention: '24h',
        safety_identifier: 'user-hash',
        truncation: 'auto',
        include: ['reasoning.encrypted_content', 'message.output_text.logprobs'],
        top_logprobs: 2,
        max_tool_calls: 3,
        stream_options: { include_obfuscation: false },
        background: false,
        conversation: null,
        reasoning: { effort: null, summary: 'auto' },
        text: { verbosity: 'low' },
      },
    });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({
      prompt_cache_key: 'k1',
      safety_identifier: 'user-hash',
      truncation: 'auto',
    });
    for (const field of [
      'service_tier',
      'prompt_cache_key',
      'safety_identifier',
      'truncation',
      'include',
      'verbosity',
    ])
      expect(upstream.requests[0]?.body).not.toHaveProperty(field);
  });
});

describe('stored ids that cannot be used', () => {
  it("answers 404 for another key's stored response and items, as for a missing one", async () => {
    const alice = await svc.createKey();
    const bob = await svc.createKey();
    upstream.enqueue('mock-small', { kind: 'reply', content: 'private' });
    const mine = (
      await svc.http('POST', '/v1/responses', { key: alice.key, body: { model: 'mock-small', input: 'x' } })
    ).json();
    const asBob = [
      await svc.http('GET', `/v1/responses/${mine.id}`, { key: bob.key }),
      await svc.http('GET', `/v1/responses/${mine.id}/input_items`, { key: bob.key }),
      await svc.http('DELETE', `/v1/responses/${mine.id}`, { key: bob.key }),
      await svc.http('POST', '/v1/responses', {
        key: bob.key,
        body: { model: 'mock-small', input: 'x', previous_response_id: mine.id },
      }),
      await svc.http('POST', '/v1/responses', {
        key: bob.key,
        body: { model: 'mock-small', input: [{ type: 'item_reference', id: mine.output[0].id }] },
      }),
    ];
    expect(asBob.map((r) => r.status)).toEqual([404, 404, 404, 404, 404]);
    expect(asBob.map((r) => r.json().error.param)).toEqual([
      'response_id',
      'response_id',
      'response_id',
      'previous_response_id',
      'input[0].id',
    ]);
  });

  it('answers 404 for a previous response that no longer exists', async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'gone soon' });
    const old = (
      await svc.http('POST', '/v1/responses', { body: { model: 'mock-small', input: 'x' } })
    ).json();
    expect((await svc.http('DELETE', `/v1/responses/${old.id}`)).status).toBe(200);
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'mock-small', input: 'more', previous_response_id: old.id },
    });
    expect(r.status).toBe(404);
    expect(r.json().error).toEqual({
      message: `Previous response with id '${old.id}' not found.`,
      type: 'invalid_request_error',
      param: 'previous_response_id',
      code: 'previous_response_not_found',
    });
  });

  it('answers 404 for an item reference to an id Tollgate never issued', async () => {
    const r = await svc.http('POST', '/v1/responses', {
      body: { model: 'mock-small', input: [user('x'), { type: 'item_reference', id: 'msg_abc' }] },
    });
    expect(r.status).toBe(404);
    expect(r.json().error).toMatchObject({ param: 'input[1].id', code: 'item_not_found' });
  });
});

describe('GET /v1/responses/{id} and input_items query parameters', () => {
  let id: string;
  beforeAll(async () => {
    upstream.enqueue('mock-small', { kind: 'reply', content: 'stored' });
    id = (await svc.http('POST', '/v1/responses', { body: { model: 'mock-small', input: 'x' } })).json().id;
  });

  it.each([
    ['limit 0', 'limit=0', 'limit'],
    ['limit 101', 'limit=101', 'limit'],
    ['limit not a number', 'limit=ten', 'limit'],
    ['order unknown', 'order=sideways', 'order'],
    ['after an unknown item', 'after=msg_nope', 'after'],
    ['include of an unknown value', 'include=bogus', 'include'],
    ['limit given twice', 'limit=1&limit=2', 'limit'],
  ])('input_items: %s', async (_name, query, param) => {
    const r = await svc.http('GET', `/v1/responses/${id}/input_items?${query}`);
    expect(r.status).toBe(400);
    expect(r.json().error.param).toBe(param);
  });

  it.each([
    ['stream not a boolean', 'stream=maybe', 'stream'],
    ['starting_after negative', 'starting_after=-1', 'starting_after'],
    ['include of an unknown value', 'include[]=bogus', 'include'],
  ])('retrieve: %s', async (_name, query, param) => {
    const r = await svc.http('GET', `/v1/responses/${id}?${query}`);
    expect(r.status).toBe(400);
    expect(r.json().error.param).toBe(param);
  });

  it('answers 404 for an id that is not a response id, and 405 for other methods', async () => {
    expect((await svc.http('GET', '/v1/responses/not-an-id')).status).toBe(404);
    expect((await svc.http('PUT', `/v1/responses/${id}`, { body: {} })).status).toBe(405);
    expect((await svc.http('GET', '/v1/responses')).status).toBe(405);
  });

  it('needs an API key', async () => {
    expect((await svc.http('GET', `/v1/responses/${id}`, { key: null })).status).toBe(401);
    expect(
      (await svc.http('POST', '/v1/responses', { key: null, body: { model: 'mock-small', input: 'x' } }))
        .status,
    ).toBe(401);
  });
});
