import { ResponseStream } from 'openai/lib/responses/ResponseStream';
import { BadRequestError, NotFoundError } from '../../container/src/errors';
import { buildContext, type StoredTurn } from '../../container/src/responses/context';
import { ResponseEventStream, replayEvents } from '../../container/src/responses/events';
import { ItemIds, isResponseId, newResponseId, responseIdOfItem } from '../../container/src/responses/ids';
import { parseResponsesRequest, type ResponsesRequest } from '../../container/src/responses/schema';
import {
  asResponsesError,
  buildResponse,
  completionOutput,
  responsesParam,
  responseUsage,
  takesReasoningEffort,
  toChatMessages,
  toChatRequest,
} from '../../container/src/responses/translate';
import type { ChatCompletion, ChatCompletionChunk } from '../../container/src/wire/chat';
import type { ContextItem, Response, ResponseStreamEvent } from '../../container/src/wire/responses';

const parse = (body: Record<string, unknown>) => parseResponsesRequest({ model: 'm', ...body });

function badRequest(body: unknown): BadRequestError {
  try {
    parseResponsesRequest(body);
  } catch (err) {
    if (err instanceof BadRequestError) return err;
    throw err;
  }
  throw new Error('expected a 400');
}

/** Feed events to the official SDK's stream accumulator, as a client would see them. */
async function sdkFinal(events: ResponseStreamEvent[]) {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode(`${events.map((e) => JSON.stringify(e)).join('\n')}\n`));
      c.close();
    },
  });
  const seen: string[] = [];
  const s = ResponseStream.fromReadableStream(body);
  s.on('event', (e) => seen.push(e.type));
  const final = await s.finalResponse();
  return { final, seen };
}

function chunk(
  delta: ChatCompletionChunk.Choice['delta'],
  finish: ChatCompletionChunk.Choice['finish_reason'] = null,
): ChatCompletionChunk {
  return {
    id: 'c',
    object: 'chat.completion.chunk',
    created: 0,
    model: 'm',
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  };
}

function stream(req: ResponsesRequest = parse({ input: 'hi' })) {
  const id = newResponseId();
  const ids = new ItemIds(id);
  const base = { id, created_at: 1, model: 'public-model', req };
  return new ResponseEventStream(
    (s) => buildResponse(base, s),
    (p) => ids.take(p),
  );
}

const usage = responseUsage(
  { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
  { input: 0, output: 0 },
);

describe('request schema', () => {
  it('turns a string input into one user message and applies OpenAI defaults', () => {
    const r = parse({ input: 'Hello' });
    expect(r.input).toEqual([
      {
        item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello' }], id: null },
        param: 'input',
      },
    ]);
    expect(r).toMatchObject({
      store: true,
      stream: false,
      parallelToolCalls: true,
      toolChoice: 'auto',
      text: { format: { type: 'text' }, verbosity: 'medium' },
      metadata: {},
    });
  });

  it('accepts items without type: role means a message, an id alone an item reference', () => {
    const r = parse({
      input: [{ role: 'user', content: 'q' }, { id: 'msg_x' }],
    });
    expect(r.input.map((e) => e.item.type)).toEqual(['message', 'item_reference']);
  });

  it('accepts output items sent back as input with their id and status', () => {
    const r = parse({
      input: [
        { role: 'user', content: 'q' },
        {
          id: 'msg_1',
          type: 'message',
          role: 'assistant',
          status: 'completed',
          content: [{ type: 'output_text', text: 'a', annotations: [] }],
        },
        { id: 'fc_1', type: 'function_call', status: 'completed', call_id: 'c1', name: 'f', arguments: '{}' },
        { type: 'function_call_output', call_id: 'c1', output: 'r' },
      ],
    });
    expect(r.input[1]?.item).toMatchObject({ id: 'msg_1', role: 'assistant', status: 'completed' });
    expect(r.input[2]?.item).toMatchObject({ id: 'fc_1', call_id: 'c1' });
  });

  it('skips reasoning items and keeps the index of the others in error names', () => {
    const r = parse({
      input: [
        { type: 'reasoning', id: 'rs_1', summary: [] },
        { role: 'user', content: 'q' },
      ],
    });
    expect(r.input).toHaveLength(1);
    expect(r.input[0]?.param).toBe('input[1]');
  });

  it('maps an assistant input_text part (LangChain sends those) to output_text', () => {
    const r = parse({ input: [{ role: 'assistant', content: [{ type: 'input_text', text: 'said' }] }] });
    expect(r.input[0]?.item).toMatchObject({ content: [{ type: 'output_text', text: 'said' }] });
  });

  it('names the field of the first problem, OpenAI-style', () => {
    expect(badRequest({ input: 'x' })).toMatchObject({ param: 'model', code: 'missing_required_parameter' });
    expect(badRequest({ model: 'm', input: 'x', temperature: 'hot' })).toMatchObject({
      param: 'temperature',
      code: 'invalid_type',
    });
    expect(badRequest({ model: 'm', input: 'x', wat: 1 })).toMatchObject({
      param: 'wat',
      code: 'unknown_parameter',
      message: "Unknown parameter: 'wat'.",
    });
    expect(
      badRequest({ model: 'm', input: [{ role: 'user', content: [{ type: 'input_text', text: 1 }] }] }),
    ).toMatchObject({
      param: 'input[0].content[0].text',
    });
    expect(badRequest({ model: 'm', input: [{ role: 'user', content: 5 }] }).message).toContain(
      'expected string or array',
    );
  });

  it('refuses built-in tools and their tool choices, saying why', () => {
    const e = badRequest({ model: 'm', input: 'x', tools: [{ type: 'web_search' }] });
    expect(e).toMatchObject({ param: 'tools[0].type', status: 400 });
    expect(e.message).toContain("run only on OpenAI's servers");
    expect(badRequest({ model: 'm', input: 'x', tool_choice: { type: 'file_search' } })).toMatchObject({
      param: 'tool_choice.type',
    });
  });

  it('refuses what it cannot honour instead of dropping it', () => {
    for (const [field, value] of [
      ['background', true],
      ['conversation', 'conv_1'],
      ['prompt', { id: 'pmpt_1' }],
      ['context_management', [{ type: 'compaction' }]],
      ['moderation', { model: 'omni' }],
    ] as const) {
      expect(badRequest({ model: 'm', input: 'x', [field]: value })).toMatchObject({
        param: field,
        code: 'unsupported_parameter',
      });
    }
    // Unset (false / null / empty) is fine.
    expect(() =>
      parse({ input: 'x', background: false, conversation: null, context_management: [] }),
    ).not.toThrow();
  });

  it('checks that tool_choice names a defined function', () => {
    const tools = [{ type: 'function', name: 'f', parameters: { type: 'object' }, strict: false }];
    expect(
      badRequest({ model: 'm', input: 'x', tools, tool_choice: { type: 'function', name: 'g' } }),
    ).toMatchObject({ param: 'tool_choice.name' });
    expect(badRequest({ model: 'm', input: 'x', tool_choice: 'required' })).toMatchObject({
      param: 'tool_choice',
    });
  });
});

describe('Responses request -> chat request', () => {
  it('puts instructions first, developer as system, images as image_url parts', async () => {
    const r = parse({
      instructions: 'Be brief.',
      input: [
        { role: 'developer', content: 'Use French.' },
        {
          role: 'user',
          content: [
            { type: 'input_text', text: 'What is this?' },
            { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' },
          ],
        },
      ],
    });
    const ctx = await buildContext(r, new ItemIds(newResponseId()), async () => null);
    expect(toChatMessages(r.instructions, ctx)).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'system', content: 'Use French.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is this?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' } },
        ],
      },
    ]);
  });

  it('merges an assistant message and the function calls after it into one chat turn', () => {
    const ctx: ContextItem[] = [
      {
        id: 'm0',
        type: 'message',
        role: 'user',
        status: 'completed',
        content: [{ type: 'input_text', text: 'q' }],
      },
      {
        id: 'm1',
        type: 'message',
        role: 'assistant',
        status: 'completed',
        content: [{ type: 'output_text', text: 'Checking.', annotations: [] }],
      },
      { id: 'f1', type: 'function_call', call_id: 'c1', name: 'a', arguments: '{}', status: 'completed' },
      {
        id: 'f2',
        type: 'function_call',
        call_id: 'c2',
        name: 'b',
        arguments: '{"x":1}',
        status: 'completed',
      },
      { id: 'o1', type: 'function_call_output', call_id: 'c1', output: 'A', status: 'completed' },
      { id: 'o2', type: 'function_call_output', call_id: 'c2', output: 'B', status: 'completed' },
      { id: 'f3', type: 'function_call', call_id: 'c3', name: 'a', arguments: '{}', status: 'completed' },
    ];
    expect(toChatMessages(null, ctx)).toEqual([
      { role: 'user', content: 'q' },
      {
        role: 'assistant',
        content: 'Checking.',
        tool_calls: [
          { id: 'c1', type: 'function', function: { name: 'a', arguments: '{}' } },
          { id: 'c2', type: 'function', function: { name: 'b', arguments: '{"x":1}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'c1', content: 'A' },
      { role: 'tool', tool_call_id: 'c2', content: 'B' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'c3', type: 'function', function: { name: 'a', arguments: '{}' } }],
      },
    ]);
  });

  it('maps tools, tool_choice, text.format, max_output_tokens and reasoning onto chat fields', () => {
    const r = parse({
      input: 'x',
      tools: [
        { type: 'function', name: 'f', description: 'd', parameters: { type: 'object' }, strict: true },
        { type: 'function', name: 'g', parameters: null, strict: null },
      ],
      tool_choice: { type: 'function', name: 'f' },
      parallel_tool_calls: false,
      text: { format: { type: 'json_schema', name: 'out', schema: { type: 'object' }, strict: true } },
      max_output_tokens: 99,
      temperature: 0.3,
      top_p: 0.9,
      user: 'u1',
      reasoning: { effort: 'low', summary: 'auto' },
      service_tier: 'flex',
      prompt_cache_key: 'k',
    });
    const body = toChatRequest(r, [], { reasoningEffort: true });
    expect(body).toMatchObject({
      tools: [
        {
          type: 'function',
          function: { name: 'f', description: 'd', parameters: { type: 'object' }, strict: true },
        },
        { type: 'function', function: { name: 'g', parameters: { type: 'object', properties: {} } } },
      ],
      tool_choice: { type: 'function', function: { name: 'f' } },
      parallel_tool_calls: false,
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'out', schema: { type: 'object' }, strict: true },
      },
      max_completion_tokens: 99,
      temperature: 0.3,
      top_p: 0.9,
      user: 'u1',
      reasoning_effort: 'low',
    });
    // Hints stay behind: the chat body has only fields every family understands.
    expect(body).not.toHaveProperty('service_tier');
    expect(body).not.toHaveProperty('prompt_cache_key');
    expect(body).not.toHaveProperty('store');
    expect(body).not.toHaveProperty('metadata');
  });

  it('sends reasoning effort only to a provider whose chat path takes it', () => {
    const r = parse({ input: 'x', reasoning: { effort: 'high' } });
    expect(toChatRequest(r, [], { reasoningEffort: true }).reasoning_effort).toBe('high');
    expect(toChatRequest(r, [])).not.toHaveProperty('reasoning_effort');
    expect(takesReasoningEffort('openai')).toBe(true);
    expect(takesReasoningEffort('bedrock')).toBe(false);
    expect(takesReasoningEffort('simulator')).toBe(false);
    expect(takesReasoningEffort(undefined)).toBe(false);
  });

  it('names chat-path fields in errors as the Responses request calls them', () => {
    const e = asResponsesError(new BadRequestError('no JSON mode', { param: 'response_format.type' }));
    expect(e).toMatchObject({ status: 400, param: 'text.format.type', message: 'no JSON mode' });
    expect(responsesParam('messages')).toBe('input');
    expect(responsesParam('messages[3].content')).toBe('input');
    expect(responsesParam('max_tokens')).toBe('max_output_tokens');
    expect(responsesParam('reasoning_effort')).toBe('reasoning.effort');
    expect(responsesParam('tool_choice.function.name')).toBe('tool_choice.name');
    expect(responsesParam('tools[1].function.parameters')).toBe('tools[1].parameters');
    expect(responsesParam('model')).toBe('model');
    const same = new BadRequestError('x', { param: 'model' });
    expect(asResponsesError(same)).toBe(same);
  });

  it('keeps only the allowed tools of an allowed_tools choice', () => {
    const r = parse({
      input: 'x',
      tools: ['a', 'b', 'c'].map((name) => ({ type: 'function', name, parameters: {}, strict: false })),
      tool_choice: { type: 'allowed_tools', mode: 'required', tools: [{ type: 'function', name: 'b' }] },
    });
    const body = toChatRequest(r, []);
    expect((body.tools as Array<{ function: { name: string } }>).map((t) => t.function.name)).toEqual(['b']);
    expect(body.tool_choice).toBe('required');
  });

  it('sends json_object as response_format and no parallel_tool_calls without tools', () => {
    const body = toChatRequest(
      parse({ input: 'x', text: { format: { type: 'json_object' } }, parallel_tool_calls: false }),
      [],
    );
    expect(body.response_format).toEqual({ type: 'json_object' });
    expect(body).not.toHaveProperty('parallel_tool_calls');
    expect(body).not.toHaveProperty('tools');
  });
});

describe('chat completion -> Response', () => {
  const completion = (message: Record<string, unknown>, finish = 'stop'): ChatCompletion =>
    ({
      id: 'x',
      object: 'chat.completion',
      created: 0,
      model: 'up',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', refusal: null, ...message },
          finish_reason: finish,
          logprobs: null,
        },
      ],
    }) as ChatCompletion;

  it('gives a message item with an output_text part carrying annotations', () => {
    const out = completionOutput(completion({ content: 'Hi.' }), new ItemIds(newResponseId()));
    expect(out).toEqual([
      {
        id: expect.stringMatching(/^msg_/),
        type: 'message',
        status: 'completed',
        role: 'assistant',
        content: [{ type: 'output_text', text: 'Hi.', annotations: [], logprobs: [] }],
      },
    ]);
  });

  it('gives function_call items whose call_id is the upstream tool-call id', () => {
    const out = completionOutput(
      completion(
        {
          content: null,
          tool_calls: [
            { id: 'call_up_1', type: 'function', function: { name: 'get', arguments: '{"a":1}' } },
          ],
        },
        'tool_calls',
      ),
      new ItemIds(newResponseId()),
    );
    expect(out).toEqual([
      {
        id: expect.stringMatching(/^fc_/),
        type: 'function_call',
        status: 'completed',
        call_id: 'call_up_1',
        name: 'get',
        arguments: '{"a":1}',
      },
    ]);
  });

  it('marks a cut answer incomplete and keeps a refusal as a refusal part', () => {
    const cut = completionOutput(
      completion({ content: 'Once upon' }, 'length'),
      new ItemIds(newResponseId()),
    );
    expect(cut[0]?.status).toBe('incomplete');
    const refused = completionOutput(
      completion({ content: null, refusal: 'No.' }),
      new ItemIds(newResponseId()),
    );
    expect(refused[0]).toMatchObject({ content: [{ type: 'refusal', refusal: 'No.' }] });
  });

  it('maps usage: cached and cache-write input tokens, reasoning tokens, totals', () => {
    expect(
      responseUsage(
        {
          prompt_tokens: 100,
          completion_tokens: 40,
          total_tokens: 140,
          prompt_tokens_details: { cached_tokens: 60, cache_write_tokens: 10 } as never,
          completion_tokens_details: { reasoning_tokens: 25 },
        },
        { input: 0, output: 0 },
      ),
    ).toEqual({
      input_tokens: 100,
      input_tokens_details: { cached_tokens: 60, cache_write_tokens: 10 },
      output_tokens: 40,
      output_tokens_details: { reasoning_tokens: 25 },
      total_tokens: 140,
    });
    // Without upstream usage (a stream cut short): what the call counted.
    expect(responseUsage(null, { input: 7, output: 2 })).toMatchObject({
      input_tokens: 7,
      output_tokens: 2,
      total_tokens: 9,
    });
  });
});

describe('chat chunks -> Responses events', () => {
  it('emits a text answer in OpenAI order with consecutive sequence numbers', async () => {
    const s = stream();
    const events = [
      ...s.start(),
      ...s.chunk(chunk({ role: 'assistant', content: '' })),
      ...s.chunk(chunk({ content: 'Hel' })),
      ...s.chunk(chunk({ content: 'lo' })),
      ...s.chunk(chunk({}, 'stop')),
      ...s.complete(usage).events,
    ];
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const done = events.find((e) => e.type === 'response.output_text.done');
    expect(done).toMatchObject({ text: 'Hello', output_index: 0, content_index: 0 });
    const { final, seen } = await sdkFinal(events);
    expect(seen).toEqual(events.map((e) => e.type));
    expect(final.output_text).toBe('Hello');
    expect(final.status).toBe('completed');
    expect(final.usage?.total_tokens).toBe(8);
  });

  it('closes the text before the calls and each call before the next', async () => {
    const s = stream();
    const events = [
      ...s.start(),
      ...s.chunk(chunk({ content: 'Let me check.' })),
      ...s.chunk(
        chunk({
          tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'a', arguments: '' } }],
        }),
      ),
      ...s.chunk(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"x":' } }] })),
      ...s.chunk(chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] })),
      ...s.chunk(
        chunk({
          tool_calls: [
            { index: 1, id: 'call_b', type: 'function', function: { name: 'b', arguments: '{}' } },
          ],
        }),
      ),
      ...s.chunk(chunk({}, 'tool_calls')),
      ...s.complete(usage).events,
    ];
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    // Every delta names its item and output index.
    const fcAdded = events.filter((e) => e.type === 'response.output_item.added')[1];
    const fcItem = fcAdded?.type === 'response.output_item.added' ? fcAdded.item : undefined;
    for (const e of events.filter((x) => x.type === 'response.function_call_arguments.delta').slice(0, 2))
      expect(e).toMatchObject({ item_id: fcItem?.id, output_index: 1 });
    const { final } = await sdkFinal(events);
    expect(final.output.map((o) => o.type)).toEqual(['message', 'function_call', 'function_call']);
    expect(final.output[1]).toMatchObject({ call_id: 'call_a', name: 'a', arguments: '{"x":1}' });
    expect(final.output[2]).toMatchObject({ call_id: 'call_b', arguments: '{}' });
  });

  it('waits for a tool call id and name before opening its item', () => {
    const s = stream();
    s.start();
    expect(s.chunk(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a"' } }] }))).toEqual([]);
    const opened = s.chunk(
      chunk({ tool_calls: [{ index: 0, id: 'call_late', function: { name: 'f', arguments: ':2}' } }] }),
    );
    expect(opened.map((e) => e.type)).toEqual([
      'response.output_item.added',
      'response.function_call_arguments.delta',
    ]);
    expect(opened[1]).toMatchObject({ delta: '{"a":2}' });
    const { response } = s.complete(usage);
    expect(response.output[0]).toMatchObject({ call_id: 'call_late', arguments: '{"a":2}' });
  });

  it('ends a cut answer with response.incomplete and max_output_tokens', async () => {
    const s = stream();
    const events = [
      ...s.start(),
      ...s.chunk(chunk({ content: 'Once' })),
      ...s.chunk(chunk({}, 'length')),
      ...s.complete(usage).events,
    ];
    const last = events.at(-1);
    expect(last?.type).toBe('response.incomplete');
    expect(last).toMatchObject({
      response: { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } },
    });
    const { final } = await sdkFinal(events);
    expect(final.status).toBe('incomplete');
  });

  it('fails with response.failed carrying the error and what was produced', () => {
    const s = stream();
    s.start();
    s.chunk(chunk({ content: 'partial' }));
    const { events, response } = s.fail({ code: 'server_error', message: 'upstream died' }, null);
    expect(events.map((e) => e.type)).toEqual(['response.failed']);
    expect(response).toMatchObject({
      status: 'failed',
      error: { code: 'server_error', message: 'upstream died' },
      output: [
        { type: 'message', status: 'incomplete', content: [{ type: 'output_text', text: 'partial' }] },
      ],
    });
  });

  it('answers an empty completion with one empty message', async () => {
    const s = stream();
    const events = [...s.start(), ...s.chunk(chunk({ content: '' }, 'stop')), ...s.complete(usage).events];
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect((await sdkFinal(events)).final.output_text).toBe('');
  });

  it('streams a refusal as refusal events', () => {
    const s = stream();
    s.start();
    const types = [...s.chunk(chunk({ refusal: "I can't" } as never)), ...s.complete(usage).events].map(
      (e) => e.type,
    );
    expect(types).toEqual([
      'response.output_item.added',
      'response.content_part.added',
      'response.refusal.delta',
      'response.refusal.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
  });

  it('replays a stored response as events the SDK rebuilds it from', async () => {
    const s = stream();
    s.start();
    s.chunk(chunk({ content: 'Answer' }));
    s.chunk(chunk({ tool_calls: [{ index: 0, id: 'call_1', function: { name: 'f', arguments: '{}' } }] }));
    const stored: Response = s.complete(usage).response;
    const events = replayEvents(stored);
    expect(events[0]?.type).toBe('response.created');
    expect(events.at(-1)?.type).toBe('response.completed');
    const { final } = await sdkFinal(events);
    expect(final.output).toMatchObject(stored.output);
    expect(final.id).toBe(stored.id);
  });
});

describe('ids', () => {
  it('issues response ids and item ids that lead back to their response', () => {
    const rid = newResponseId();
    expect(isResponseId(rid)).toBe(true);
    const ids = new ItemIds(rid);
    const a = ids.take('msg');
    const b = ids.take('fc');
    expect(a).not.toBe(b);
    expect(responseIdOfItem(a)).toBe(rid);
    expect(responseIdOfItem(b)).toBe(rid);
    expect(responseIdOfItem('msg_67ccd3acc8d48190a77525dc6de64b41')).toBeNull();
  });
});

describe('conversation context', () => {
  const turns = new Map<string, StoredTurn>();
  const load = async (id: string) => turns.get(id) ?? null;
  const prevId = newResponseId();
  const prevIds = new ItemIds(prevId);
  const question: ContextItem = {
    id: prevIds.take('msg'),
    type: 'message',
    role: 'user',
    status: 'completed',
    content: [{ type: 'input_text', text: 'Weather?' }],
  };
  const call = {
    id: prevIds.take('fc'),
    type: 'function_call' as const,
    status: 'completed' as const,
    call_id: 'call_w',
    name: 'weather',
    arguments: '{}',
  };
  turns.set(prevId, { context: [question], output: [call] });

  it('continues a previous response: its context, its output, then the new input', async () => {
    const req = parse({
      previous_response_id: prevId,
      input: [{ type: 'function_call_output', call_id: 'call_w', output: 'sunny' }],
    });
    const ctx = await buildContext(req, new ItemIds(newResponseId()), load);
    expect(ctx.map((i) => i.type)).toEqual(['message', 'function_call', 'function_call_output']);
    expect(ctx[2]).toMatchObject({ id: expect.stringMatching(/^fco_/), call_id: 'call_w', output: 'sunny' });
  });

  it('resolves item references from stored responses, keeping their ids', async () => {
    const req = parse({
      input: [
        { type: 'item_reference', id: question.id },
        { type: 'item_reference', id: call.id },
        { type: 'function_call_output', call_id: 'call_w', output: 'sunny' },
      ],
    });
    const ctx = await buildContext(req, new ItemIds(newResponseId()), load);
    expect(ctx.slice(0, 2)).toEqual([question, call]);
  });

  it('answers 404 for an unknown previous response or item, naming the field', async () => {
    const missing = parse({ previous_response_id: newResponseId(), input: 'x' });
    await expect(buildContext(missing, new ItemIds(newResponseId()), load)).rejects.toMatchObject({
      status: 404,
      param: 'previous_response_id',
      code: 'previous_response_not_found',
    });
    const ref = parse({
      input: [
        { role: 'user', content: 'x' },
        { type: 'item_reference', id: 'msg_not_ours' },
      ],
    });
    const err = await buildContext(ref, new ItemIds(newResponseId()), load).catch((e) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).toMatchObject({ param: 'input[1].id' });
  });

  it('refuses a function_call_output that answers no call', async () => {
    const req = parse({ input: [{ type: 'function_call_output', call_id: 'call_nobody', output: 'x' }] });
    await expect(buildContext(req, new ItemIds(newResponseId()), load)).rejects.toMatchObject({
      status: 400,
      param: 'input[0].call_id',
    });
  });

  it('keeps an item once when a chained request also resends it', async () => {
    const req = parse({ previous_response_id: prevId, input: [{ type: 'item_reference', id: call.id }] });
    const ctx = await buildContext(req, new ItemIds(newResponseId()), load);
    expect(ctx.map((i) => i.id)).toEqual([question.id, call.id]);
  });
});
