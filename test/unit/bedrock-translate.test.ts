import type { ConverseResponse, ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import { BadRequestError } from '../../container/src/errors';
import {
  EMPTY_TOOL_RESULT,
  OPENING_USER_TEXT,
  PLACEHOLDER_TOOL,
  toConverse,
  toolInput,
} from '../../container/src/providers/bedrock/chat-request';
import { finishReason, toCompletion, toUsage } from '../../container/src/providers/bedrock/chat-response';
import { StreamTranslator } from '../../container/src/providers/bedrock/stream';
import { bedrockIdentifier, ToolNames } from '../../container/src/providers/bedrock/tool-names';
import type { ChatCompletionChunk, ChatRequest } from '../../container/src/wire/chat';

const MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const req = (body: Partial<ChatRequest>): ChatRequest =>
  ({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], ...body }) as ChatRequest;
const PNG = 'iVBORw0KGgo=';

/** The 400 a translation throws, for asserting on its param and message. */
function refusal(body: Partial<ChatRequest>): BadRequestError {
  try {
    toConverse(req(body));
  } catch (err) {
    if (err instanceof BadRequestError) return err;
    throw err;
  }
  throw new Error('expected a 400');
}

const fn = (name: string, extra: Record<string, unknown> = {}) => ({
  type: 'function',
  function: { name, parameters: { type: 'object', properties: { q: { type: 'string' } } }, ...extra },
});
const call = (id: string, name: string, args: string) => ({
  id,
  type: 'function',
  function: { name, arguments: args },
});

describe('Bedrock request translation: messages', () => {
  it('moves system and developer messages, from anywhere, into system[]', () => {
    const { input } = toConverse(
      req({
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'hi' },
          { role: 'developer', content: [{ type: 'text', text: 'Use French.' }] },
          { role: 'assistant', content: 'salut' },
        ],
      }),
    );
    expect(input.system).toEqual([{ text: 'Be brief.' }, { text: 'Use French.' }]);
    expect(input.messages).toEqual([
      { role: 'user', content: [{ text: 'hi' }] },
      { role: 'assistant', content: [{ text: 'salut' }] },
    ]);
  });

  it('turns text and image parts into content blocks, images from data: URIs only', () => {
    const { input } = toConverse(
      req({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is this?' },
              { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}`, detail: 'high' } },
              { type: 'image_url', image_url: { url: `data:image/jpg;base64,${PNG}` } },
            ],
          },
        ],
      }),
    );
    const blocks = input.messages[0]!.content!;
    expect(blocks[0]).toEqual({ text: 'What is this?' });
    expect(blocks[1]!.image!.format).toBe('png');
    expect(Buffer.from(blocks[1]!.image!.source!.bytes!).toString('base64')).toBe(PNG);
    expect(blocks[2]!.image!.format).toBe('jpeg');
  });

  it('refuses an http(s) image URL with a 400 naming the part', () => {
    const e = refusal({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'look' },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
          ],
        },
      ],
    });
    expect(e.param).toBe('messages[0].content[1].image_url.url');
    expect(e.message).toMatch(/does not fetch URLs/);
  });

  it('refuses images of other media types, bad base64 and unknown part types, naming the part', () => {
    const one = (part: unknown) => refusal({ messages: [{ role: 'user', content: [part] }] });
    expect(one({ type: 'image_url', image_url: { url: `data:image/tiff;base64,${PNG}` } }).param).toBe(
      'messages[0].content[0].image_url.url',
    );
    expect(one({ type: 'image_url', image_url: { url: 'data:image/png;base64,@@@' } }).message).toMatch(
      /not valid base64/,
    );
    expect(one({ type: 'input_audio', input_audio: { data: 'x', format: 'wav' } }).param).toBe(
      'messages[0].content[0].type',
    );
  });

  it('turns a file part with inline data into a document block with a legal, unique name', () => {
    const pdf = Buffer.from('%PDF-1.4').toString('base64');
    const { input } = toConverse(
      req({
        messages: [
          {
            role: 'user',
            content: [
              {
                type: 'file',
                file: { file_data: `data:application/pdf;base64,${pdf}`, filename: 'q3_report.v2.pdf' },
              },
              { type: 'file', file: { file_data: `data:text/plain;base64,${pdf}` } },
            ],
          },
        ],
      }),
    );
    const [a, b] = input.messages[0]!.content!;
    expect(a!.document).toMatchObject({ format: 'pdf', name: 'q3 report v2 1' });
    expect(b!.document).toMatchObject({ format: 'txt', name: 'document 2' });
    expect(
      refusal({ messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'f1' } }] }] }).param,
    ).toBe('messages[0].content[0].file.file_data');
  });

  it('drops whitespace-only text and merges consecutive messages of one role', () => {
    const { input } = toConverse(
      req({
        messages: [
          { role: 'user', content: 'one' },
          { role: 'user', content: '   \n' },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'two' },
              { type: 'text', text: ' ' },
            ],
          },
          { role: 'assistant', content: '' },
          { role: 'user', content: 'three' },
          { role: 'assistant', content: 'a' },
          { role: 'assistant', content: 'b' },
        ],
      }),
    );
    expect(input.messages).toEqual([
      { role: 'user', content: [{ text: 'one' }, { text: 'two' }, { text: 'three' }] },
      { role: 'assistant', content: [{ text: 'a' }, { text: 'b' }] },
    ]);
  });

  it('opens with a user turn when the conversation starts with the assistant', () => {
    const { input } = toConverse(
      req({
        messages: [
          { role: 'system', content: 's' },
          { role: 'assistant', content: 'Welcome!' },
          { role: 'user', content: 'hi' },
        ],
      }),
    );
    expect(input.messages[0]).toEqual({ role: 'user', content: [{ text: OPENING_USER_TEXT }] });
    expect(input.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
  });

  it('refuses a conversation of system messages only, naming messages', () => {
    expect(refusal({ messages: [{ role: 'system', content: 'only me' }] }).param).toBe('messages');
  });

  it('sends tool calls as toolUse blocks, "" and invalid JSON arguments as {}', () => {
    const { input } = toConverse(
      req({
        tools: [fn('get_weather'), fn('now')],
        messages: [
          { role: 'user', content: 'weather?' },
          {
            role: 'assistant',
            content: 'Checking.',
            tool_calls: [
              call('call_1', 'get_weather', '{"q":"Paris"}'),
              call('call_2', 'now', ''),
              call('call_3', 'now', '{"broken'),
              call('call_4', 'now', '[1,2]'),
            ],
          },
          { role: 'tool', tool_call_id: 'call_1', content: '18C' },
          { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '12:00' }] },
          { role: 'tool', tool_call_id: 'call_3', content: '' },
          { role: 'tool', tool_call_id: 'call_4', content: 'ok' },
        ],
      }),
    );
    expect(input.messages[1]).toEqual({
      role: 'assistant',
      content: [
        { text: 'Checking.' },
        { toolUse: { toolUseId: 'call_1', name: 'get_weather', input: { q: 'Paris' } } },
        { toolUse: { toolUseId: 'call_2', name: 'now', input: {} } },
        { toolUse: { toolUseId: 'call_3', name: 'now', input: {} } },
        { toolUse: { toolUseId: 'call_4', name: 'now', input: {} } },
      ],
    });
    // All results in ONE user turn right after the call.
    expect(input.messages).toHaveLength(3);
    expect(input.messages[2]).toEqual({
      role: 'user',
      content: [
        { toolResult: { toolUseId: 'call_1', content: [{ text: '18C' }] } },
        { toolResult: { toolUseId: 'call_2', content: [{ text: '12:00' }] } },
        { toolResult: { toolUseId: 'call_3', content: [{ text: EMPTY_TOOL_RESULT }] } },
        { toolResult: { toolUseId: 'call_4', content: [{ text: 'ok' }] } },
      ],
    });
    expect(toolInput({ already: 'object' })).toEqual({ already: 'object' });
  });

  it('puts tool results before the text of the user turn they share', () => {
    const { input } = toConverse(
      req({
        tools: [fn('f')],
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', tool_calls: [call('c1', 'f', '{}')] },
          { role: 'tool', tool_call_id: 'c1', content: 'done' },
          { role: 'user', content: 'and now summarise' },
        ],
      }),
    );
    expect(input.messages[2]!.content).toEqual([
      { toolResult: { toolUseId: 'c1', content: [{ text: 'done' }] } },
      { text: 'and now summarise' },
    ]);
  });

  it('refuses a tool message that does not follow its call, or answers it twice, naming it', () => {
    const bad = refusal({
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', tool_calls: [call('c1', 'f', '{}')] },
        { role: 'user', content: 'wait' },
        { role: 'tool', tool_call_id: 'c1', content: 'late' },
      ],
    });
    expect(bad.param).toBe('messages[3].tool_call_id');
    const twice = refusal({
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', tool_calls: [call('c1', 'f', '{}')] },
        { role: 'tool', tool_call_id: 'c1', content: 'a' },
        { role: 'tool', tool_call_id: 'c1', content: 'b' },
      ],
    });
    expect(twice.param).toBe('messages[3].tool_call_id');
  });

  it('maps tool-use ids Bedrock would refuse, the same way in the call and its result', () => {
    const { input } = toConverse(
      req({
        tools: [fn('f')],
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', tool_calls: [call('functions.f:0', 'f', '{}')] },
          { role: 'tool', tool_call_id: 'functions.f:0', content: 'ok' },
        ],
      }),
    );
    const id = input.messages[1]!.content![0]!.toolUse!.toolUseId!;
    expect(id).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);
    expect(input.messages[2]!.content![0]!.toolResult!.toolUseId).toBe(id);
  });

  it('adds cache points after parts and messages that carry cache_control', () => {
    const { input } = toConverse(
      req({
        messages: [
          { role: 'system', content: 'long rules', cache_control: { type: 'ephemeral' } },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'big document', cache_control: { type: 'ephemeral', ttl: '1h' } },
              { type: 'text', text: 'question' },
            ],
          },
        ],
      }),
    );
    expect(input.system).toEqual([{ text: 'long rules' }, { cachePoint: { type: 'default' } }]);
    expect(input.messages[0]!.content).toEqual([
      { text: 'big document' },
      { cachePoint: { type: 'default', ttl: '1h' } },
      { text: 'question' },
    ]);
  });
});

describe('Bedrock request translation: tools', () => {
  it('sends tools as toolSpecs: name, description, inputSchema.json (an empty object schema by default)', () => {
    const { input } = toConverse(
      req({
        tools: [
          fn('search', { description: 'Search the web', strict: true }),
          { type: 'function', function: { name: 'ping', description: '' } },
        ],
      }),
    );
    expect(input.toolConfig).toEqual({
      tools: [
        {
          toolSpec: {
            name: 'search',
            description: 'Search the web',
            inputSchema: { json: { type: 'object', properties: { q: { type: 'string' } } } },
            strict: true,
          },
        },
        { toolSpec: { name: 'ping', inputSchema: { json: { type: 'object', properties: {} } } } },
      ],
    });
  });

  it('maps tool_choice: auto is the default (not sent), required -> any, named -> tool', () => {
    expect(
      toConverse(req({ tools: [fn('a')], tool_choice: 'auto' })).input.toolConfig?.toolChoice,
    ).toBeUndefined();
    expect(
      toConverse(req({ tools: [fn('a')], tool_choice: 'required' })).input.toolConfig?.toolChoice,
    ).toEqual({
      any: {},
    });
    expect(
      toConverse(
        req({ tools: [fn('a'), fn('b')], tool_choice: { type: 'function', function: { name: 'b' } } }),
      ).input.toolConfig?.toolChoice,
    ).toEqual({ tool: { name: 'b' } });
    expect(
      refusal({ tools: [fn('a')], tool_choice: { type: 'function', function: { name: 'zz' } } }).param,
    ).toBe('tool_choice.function.name');
    expect(refusal({ tools: [fn('a')], tool_choice: 'sometimes' }).param).toBe('tool_choice');
  });

  it('maps allowed_tools to the allowed subset', () => {
    const { input } = toConverse(
      req({
        tools: [fn('a'), fn('b'), fn('c')],
        tool_choice: {
          type: 'allowed_tools',
          allowed_tools: { mode: 'required', tools: [{ type: 'function', function: { name: 'c' } }] },
        },
      }),
    );
    expect(input.toolConfig?.tools?.map((t) => t.toolSpec?.name)).toEqual(['c']);
    expect(input.toolConfig?.toolChoice).toEqual({ any: {} });
  });

  it("handles tool_choice 'none' without sending the tools", () => {
    const plain = toConverse(req({ tools: [fn('a')], tool_choice: 'none' }));
    expect(plain.input.toolConfig).toBeUndefined();
    const withHistory = toConverse(
      req({
        tools: [fn('a')],
        tool_choice: 'none',
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', tool_calls: [call('c1', 'a', '{}')] },
          { role: 'tool', tool_call_id: 'c1', content: 'ok' },
        ],
      }),
    );
    expect(withHistory.input.toolConfig?.tools?.map((t) => t.toolSpec?.name)).toEqual([PLACEHOLDER_TOOL]);
    expect(withHistory.placeholderTool).toBe(PLACEHOLDER_TOOL);
  });

  it('sends a toolConfig Bedrock accepts when the history holds tool calls but the request has no tools', () => {
    const { input, placeholderTool } = toConverse(
      req({
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', tool_calls: [call('c1', 'a', '{}')] },
          { role: 'tool', tool_call_id: 'c1', content: 'ok' },
        ],
      }),
    );
    expect(input.toolConfig).toEqual({
      tools: [
        {
          toolSpec: expect.objectContaining({
            name: PLACEHOLDER_TOOL,
            inputSchema: { json: { type: 'object', properties: {} } },
          }),
        },
      ],
    });
    expect(placeholderTool).toBe(PLACEHOLDER_TOOL);
    expect(toConverse(req({})).input.toolConfig).toBeUndefined();
  });

  it('maps tool names beyond 64 characters of [a-zA-Z0-9_-] and maps them back', () => {
    const long = `lookup_${'x'.repeat(80)}`;
    const dotted = 'github.search_code';
    const c = toConverse(
      req({
        tools: [fn(long), fn(dotted), fn('fine-name_1')],
        tool_choice: { type: 'function', function: { name: dotted } },
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', tool_calls: [call('c1', dotted, '{}')] },
          { role: 'tool', tool_call_id: 'c1', content: 'ok' },
        ],
      }),
    );
    const sent = c.input.toolConfig!.tools!.map((t) => t.toolSpec!.name!);
    for (const n of sent) expect(n).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);
    expect(sent[2]).toBe('fine-name_1');
    expect(sent[0]).not.toBe(long);
    expect(c.input.toolConfig!.toolChoice).toEqual({ tool: { name: sent[1] } });
    // The history names the tool exactly as the tool list does.
    expect(c.input.messages[1]!.content![0]!.toolUse!.name).toBe(sent[1]);
    expect(c.names.original(sent[0]!)).toBe(long);
    expect(c.names.original(sent[1]!)).toBe(dotted);
    // Deterministic across requests.
    expect(bedrockIdentifier(dotted)).toBe(sent[1]);
  });

  it('refuses a legal tool name that collides with another name mapped onto it', () => {
    const names = new ToolNames();
    const mapped = names.add('a.b', 'tools[0].function.name');
    expect(names.original(mapped)).toBe('a.b');
    expect(() => names.add(mapped, 'tools[1].function.name')).toThrow(BadRequestError);
    const fresh = new ToolNames();
    fresh.add(mapped, 'tools[0].function.name');
    expect(() => fresh.add('a.b', 'tools[1].function.name')).toThrow(BadRequestError);
  });

  it('refuses non-function tools and nameless ones, naming the field', () => {
    expect(refusal({ tools: [{ type: 'web_search' }] }).param).toBe('tools[0].type');
    expect(refusal({ tools: [{ type: 'function', function: {} }] }).param).toBe('tools[0].function.name');
    expect(refusal({ tools: [fn('a'), fn('a')] }).param).toBe('tools[1].function.name');
  });
});

describe('Bedrock request translation: parameters and unknown fields', () => {
  it('maps max_completion_tokens (over max_tokens), temperature, top_p and stop into inferenceConfig', () => {
    expect(
      toConverse(
        req({ max_tokens: 10, max_completion_tokens: 20, temperature: 0.2, top_p: 0.9, stop: ['END', ''] }),
      ).input.inferenceConfig,
    ).toEqual({ maxTokens: 20, temperature: 0.2, topP: 0.9, stopSequences: ['END'] });
    expect(toConverse(req({ max_tokens: 7, stop: 'x' })).input.inferenceConfig).toEqual({
      maxTokens: 7,
      stopSequences: ['x'],
    });
    // top_p 1 keeps every token: not sent.
    expect(toConverse(req({ top_p: 1 })).input.inferenceConfig).toBeUndefined();
  });

  it('refuses OpenAI features Bedrock lacks, naming the field, unless set to their neutral value', () => {
    for (const [field, value] of [
      ['frequency_penalty', 0.5],
      ['presence_penalty', -1],
      ['logit_bias', { '50256': -100 }],
      ['logprobs', true],
      ['top_logprobs', 2],
      ['seed', 42],
      ['reasoning_effort', 'high'],
      ['audio', { voice: 'alloy' }],
      ['modalities', ['text', 'audio']],
      ['functions', [{ name: 'f' }]],
    ] as const) {
      const e = refusal({ [field]: value });
      expect(e.param).toBe(field);
      expect(e.status).toBe(400);
    }
    const fine = toConverse(
      req({
        frequency_penalty: 0,
        presence_penalty: 0,
        logit_bias: {},
        logprobs: false,
        modalities: ['text'],
      }),
    );
    expect(fine.input.additionalModelRequestFields).toBeUndefined();
  });

  it('ignores fields that cannot change the answer', () => {
    const c = toConverse(req({ user: 'u1', store: false, metadata: { a: 'b' }, stream: true, n: 1 }));
    expect(c.input.additionalModelRequestFields).toBeUndefined();
    expect(Object.keys(c.input).sort()).toEqual(['messages', 'modelId']);
  });

  it('passes fields that are not OpenAI fields in additionalModelRequestFields', () => {
    const c = toConverse(req({ top_k: 40, thinking: { type: 'enabled', budget_tokens: 1024 } }));
    expect(c.input.additionalModelRequestFields).toEqual({
      top_k: 40,
      thinking: { type: 'enabled', budget_tokens: 1024 },
    });
  });

  it('maps response_format json_schema to outputConfig and refuses json_object', () => {
    const schema = { type: 'object', properties: { a: { type: 'number' } }, required: ['a'] };
    const c = toConverse(
      req({ response_format: { type: 'json_schema', json_schema: { name: 'out', schema } } }),
    );
    expect(c.input.outputConfig).toEqual({
      textFormat: {
        type: 'json_schema',
        structure: { jsonSchema: { schema: JSON.stringify(schema), name: 'out' } },
      },
    });
    expect(toConverse(req({ response_format: { type: 'text' } })).input.outputConfig).toBeUndefined();
    expect(refusal({ response_format: { type: 'json_object' } }).param).toBe('response_format.type');
  });

  it('maps service_tier flex and priority, ignores auto and default, refuses others', () => {
    expect(toConverse(req({ service_tier: 'priority' })).input.serviceTier).toEqual({ type: 'priority' });
    expect(toConverse(req({ service_tier: 'auto' })).input.serviceTier).toBeUndefined();
    expect(refusal({ service_tier: 'scale' }).param).toBe('service_tier');
  });

  it('keeps parallel_tool_calls: false as a one-call answer', () => {
    expect(toConverse(req({ parallel_tool_calls: false })).singleToolCall).toBe(true);
    expect(toConverse(req({ parallel_tool_calls: true })).singleToolCall).toBe(false);
  });
});

describe('Bedrock response translation', () => {
  it('maps all nine stop reasons to OpenAI finish reasons', () => {
    expect(finishReason('end_turn', false)).toBe('stop');
    expect(finishReason('stop_sequence', false)).toBe('stop');
    expect(finishReason('tool_use', true)).toBe('tool_calls');
    expect(finishReason('max_tokens', false)).toBe('length');
    expect(finishReason('model_context_window_exceeded', false)).toBe('length');
    expect(finishReason('guardrail_intervened', false)).toBe('content_filter');
    expect(finishReason('content_filtered', false)).toBe('content_filter');
    expect(finishReason('malformed_model_output', false)).toBe('stop');
    expect(finishReason('malformed_tool_use', true)).toBe('tool_calls');
    expect(finishReason('malformed_tool_use', false)).toBe('stop');
    // A tool_use turn whose calls were all removed, and reasons Bedrock adds later.
    expect(finishReason('tool_use', false)).toBe('stop');
    expect(finishReason('something_new', false)).toBe('stop');
  });

  it('counts cache reads and writes into prompt_tokens and reports them apart', () => {
    expect(
      toUsage({
        inputTokens: 10,
        outputTokens: 5,
        totalTokens: 115,
        cacheReadInputTokens: 60,
        cacheWriteInputTokens: 40,
      }),
    ).toEqual({
      prompt_tokens: 110,
      completion_tokens: 5,
      total_tokens: 115,
      prompt_tokens_details: { cached_tokens: 60, cache_write_tokens: 40 },
    });
    expect(toUsage({ inputTokens: 3, outputTokens: 2, totalTokens: 5 })).toMatchObject({
      prompt_tokens: 3,
      prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
    });
  });

  it('leaves usage out when Bedrock sent none, so the gateway counts the answer itself', () => {
    const c = toConverse(req({}));
    const out = {
      output: { message: { role: 'assistant', content: [{ text: 'hi' }] } },
      stopReason: 'end_turn',
    };
    expect(toCompletion(c, out as ConverseResponse, 'r')).not.toHaveProperty('usage');
    const tr = new StreamTranslator(c, 'x', 1);
    expect(tr.translate({ metadata: { metrics: { latencyMs: 1 } } as never })).toBeNull();
  });

  it('builds a completion with text, tool calls (ids kept, names mapped back) and reasoning', () => {
    const long = `lookup_${'y'.repeat(70)}`;
    const c = toConverse(req({ tools: [fn(long)] }));
    const sent = c.input.toolConfig!.tools![0]!.toolSpec!.name!;
    const out: ConverseResponse = {
      output: {
        message: {
          role: 'assistant',
          content: [
            { reasoningContent: { reasoningText: { text: 'thinking...' } } },
            { text: 'Let me look.' },
            { toolUse: { toolUseId: 'tooluse_abc', name: sent, input: { q: 'x' } } },
          ],
        },
      },
      stopReason: 'tool_use',
      usage: { inputTokens: 7, outputTokens: 9, totalTokens: 16 },
      metrics: { latencyMs: 1 },
    };
    const completion = toCompletion(c, out, 'req-1');
    expect(completion).toMatchObject({
      id: 'chatcmpl-req-1',
      object: 'chat.completion',
      model: MODEL,
      usage: { prompt_tokens: 7, completion_tokens: 9, total_tokens: 16 },
    });
    expect(completion.choices[0]).toMatchObject({
      finish_reason: 'tool_calls',
      native_finish_reason: 'tool_use',
      message: {
        role: 'assistant',
        content: 'Let me look.',
        reasoning_content: 'thinking...',
        tool_calls: [
          { id: 'tooluse_abc', type: 'function', function: { name: long, arguments: '{"q":"x"}' } },
        ],
      },
    });
  });

  it('removes calls to the stand-in tool and keeps only the first call when parallel calls are off', () => {
    const history = [
      { role: 'user' as const, content: 'go' },
      { role: 'assistant' as const, tool_calls: [call('c1', 'a', '{}')] },
      { role: 'tool' as const, tool_call_id: 'c1', content: 'ok' },
    ];
    const none = toConverse(req({ messages: history }));
    const answer = (content: NonNullable<ConverseResponse['output']>['message']) =>
      ({
        output: { message: content },
        stopReason: 'tool_use',
        usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 },
      }) as ConverseResponse;
    const stray = toCompletion(
      none,
      answer({
        role: 'assistant',
        content: [{ toolUse: { toolUseId: 't', name: PLACEHOLDER_TOOL, input: {} } }],
      }),
      'r',
    );
    expect(stray.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: '' } });
    expect(stray.choices[0]!.message.tool_calls).toBeUndefined();

    const single = toConverse(req({ tools: [fn('a')], parallel_tool_calls: false }));
    const two = toCompletion(
      single,
      answer({
        role: 'assistant',
        content: [
          { toolUse: { toolUseId: 't1', name: 'a', input: {} } },
          { toolUse: { toolUseId: 't2', name: 'a', input: {} } },
        ],
      }),
      'r',
    );
    expect(two.choices[0]!.message.tool_calls!.map((t) => t.id)).toEqual(['t1']);
  });
});

describe('Bedrock stream translation', () => {
  const run = (c: ReturnType<typeof toConverse>, events: ConverseStreamOutput[]): ChatCompletionChunk[] => {
    const tr = new StreamTranslator(c, 'chatcmpl-x', 1);
    return events.map((e) => tr.translate(e)).filter((x): x is ChatCompletionChunk => x !== null);
  };
  const deltas = (chunks: ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]?.delta);

  it('gives tool calls dense indexes 0..n-1 whatever block numbers Bedrock uses; id, type and name first', () => {
    const c = toConverse(req({ tools: [fn('a'), fn('b')] }));
    const chunks = run(c, [
      { messageStart: { role: 'assistant' } },
      { contentBlockDelta: { contentBlockIndex: 0, delta: { reasoningContent: { text: 'hmm' } } } },
      { contentBlockStop: { contentBlockIndex: 0 } },
      { contentBlockDelta: { contentBlockIndex: 1, delta: { text: 'Calling.' } } },
      { contentBlockStop: { contentBlockIndex: 1 } },
      { contentBlockStart: { contentBlockIndex: 2, start: { toolUse: { toolUseId: 'id_a', name: 'a' } } } },
      { contentBlockDelta: { contentBlockIndex: 2, delta: { toolUse: { input: '{"q":' } } } },
      { contentBlockDelta: { contentBlockIndex: 2, delta: { toolUse: { input: '"x"}' } } } },
      { contentBlockStop: { contentBlockIndex: 2 } },
      { contentBlockStart: { contentBlockIndex: 3, start: { toolUse: { toolUseId: 'id_b', name: 'b' } } } },
      { contentBlockStop: { contentBlockIndex: 3 } },
      { messageStop: { stopReason: 'tool_use' } },
      {
        metadata: { usage: { inputTokens: 4, outputTokens: 6, totalTokens: 10 }, metrics: { latencyMs: 1 } },
      },
    ]);
    expect(deltas(chunks)).toEqual([
      { role: 'assistant', reasoning_content: 'hmm' },
      { content: 'Calling.' },
      { tool_calls: [{ index: 0, id: 'id_a', type: 'function', function: { name: 'a', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"q":' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '"x"}' } }] },
      { tool_calls: [{ index: 1, id: 'id_b', type: 'function', function: { name: 'b', arguments: '' } }] },
      // A call without argument deltas gets "{}", so the client can parse it.
      { tool_calls: [{ index: 1, function: { arguments: '{}' } }] },
      {},
      undefined,
    ]);
    expect(chunks[7]!.choices[0]).toMatchObject({
      finish_reason: 'tool_calls',
      native_finish_reason: 'tool_use',
    });
    expect(chunks[8]).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 },
    });
    for (const ch of chunks)
      expect(ch).toMatchObject({ id: 'chatcmpl-x', object: 'chat.completion.chunk', model: MODEL });
  });

  it('sends the role with the first chunk that has content, not on messageStart', () => {
    const c = toConverse(req({}));
    const tr = new StreamTranslator(c, 'x', 1);
    expect(tr.translate({ messageStart: { role: 'assistant' } })).toBeNull();
    expect(tr.translate({ contentBlockDelta: { contentBlockIndex: 0, delta: { text: '' } } })).toBeNull();
    expect(
      tr.translate({ contentBlockDelta: { contentBlockIndex: 0, delta: { text: 'Hi' } } })!.choices[0]!.delta,
    ).toEqual({ role: 'assistant', content: 'Hi' });
    expect(tr.stopped).toBe(false);
    const stop = tr.translate({ messageStop: { stopReason: 'max_tokens' } })!;
    expect(stop.choices[0]).toMatchObject({ delta: {}, finish_reason: 'length' });
    expect(tr.stopped).toBe(true);
  });

  it('maps streamed tool names back and leaves out the stand-in tool and calls past the first when asked', () => {
    const long = `t_${'z'.repeat(70)}`;
    const c = toConverse(req({ tools: [fn(long)], parallel_tool_calls: false }));
    const sent = c.input.toolConfig!.tools![0]!.toolSpec!.name!;
    const chunks = run(c, [
      { contentBlockStart: { contentBlockIndex: 0, start: { toolUse: { toolUseId: 'a', name: sent } } } },
      { contentBlockDelta: { contentBlockIndex: 0, delta: { toolUse: { input: '{}' } } } },
      { contentBlockStop: { contentBlockIndex: 0 } },
      { contentBlockStart: { contentBlockIndex: 1, start: { toolUse: { toolUseId: 'b', name: sent } } } },
      { contentBlockDelta: { contentBlockIndex: 1, delta: { toolUse: { input: '{}' } } } },
      { contentBlockStop: { contentBlockIndex: 1 } },
      { messageStop: { stopReason: 'tool_use' } },
    ]);
    expect(chunks).toHaveLength(3);
    expect(chunks[0]!.choices[0]!.delta.tool_calls![0]!.function!.name).toBe(long);

    const history = toConverse(
      req({
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', tool_calls: [call('c1', 'a', '{}')] },
          { role: 'tool', tool_call_id: 'c1', content: 'ok' },
        ],
      }),
    );
    const stray = run(history, [
      {
        contentBlockStart: {
          contentBlockIndex: 0,
          start: { toolUse: { toolUseId: 'p', name: PLACEHOLDER_TOOL } },
        },
      },
      { contentBlockDelta: { contentBlockIndex: 0, delta: { toolUse: { input: '{}' } } } },
      { contentBlockStop: { contentBlockIndex: 0 } },
      { messageStop: { stopReason: 'tool_use' } },
    ]);
    expect(stray).toHaveLength(1);
    expect(stray[0]!.choices[0]).toMatchObject({
      delta: { role: 'assistant', content: '' },
      finish_reason: 'stop',
    });
  });
});
