/**
 * Responses <-> chat completions: a Responses request becomes the chat request every provider
 * family serves, and a chat completion becomes the Response object.
 */
import { ApiError } from '../errors';
import type { ChatCompletion, ChatMessage, ChatRequest, Usage } from '../wire/chat';
import type {
  ContextItem,
  OutputItem,
  Response,
  ResponseFunctionToolCallItem,
  ResponseOutputMessage,
  ResponseUsage,
} from '../wire/responses';
import type { ItemIds } from './ids';
import type { FunctionToolSpec, ResponsesRequest, TextFormat, ToolChoice } from './schema';

type ChatPart =
  | { type: 'text'; text: string }
  | { type: 'image_url'; image_url: { url: string; detail?: string } };

interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** Chat messages for a conversation: instructions first, consecutive calls merged into one turn. */
export function toChatMessages(instructions: string | null, context: readonly ContextItem[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (instructions) messages.push({ role: 'system', content: instructions });
  // The assistant turn that function calls attach to: the one just before them, if any.
  let turn: ChatMessage | null = null;
  for (const item of context) {
    switch (item.type) {
      case 'message': {
        if (item.role === 'assistant') {
          const text = item.content.map((p) => (p.type === 'output_text' ? p.text : p.refusal)).join('');
          turn = { role: 'assistant', content: text };
          messages.push(turn);
          continue;
        }
        turn = null;
        // Developer instructions are system messages on the chat path every family understands.
        const role = item.role === 'developer' ? 'system' : item.role;
        const parts: ChatPart[] = item.content.flatMap((p): ChatPart[] => {
          if (p.type === 'input_text') return [{ type: 'text', text: p.text }];
          if (p.type === 'input_image' && p.image_url) {
            const detail = p.detail === 'low' || p.detail === 'high' ? p.detail : 'auto';
            return [{ type: 'image_url', image_url: { url: p.image_url, detail } }];
          }
          return [];
        });
        const only = parts[0];
        const content = parts.length === 1 && only?.type === 'text' ? only.text : parts;
        messages.push({ role, content });
        continue;
      }
      case 'function_call': {
        const call: ChatToolCall = {
          id: item.call_id,
          type: 'function',
          function: { name: item.name, arguments: item.arguments },
        };
        if (turn) {
          turn.tool_calls = [...(turn.tool_calls ?? []), call];
          // An assistant turn that only calls tools has null content on the chat path.
          if (turn.content === '') turn.content = null;
        } else {
          turn = { role: 'assistant', content: null, tool_calls: [call] };
          messages.push(turn);
        }
        continue;
      }
      case 'function_call_output': {
        const output = typeof item.output === 'string' ? item.output : '';
        messages.push({ role: 'tool', tool_call_id: item.call_id ?? '', content: output });
        // Calls after a tool result belong to a new assistant turn.
        turn = null;
        continue;
      }
    }
  }
  return messages;
}

function chatTools(tools: readonly FunctionToolSpec[], choice: ToolChoice): FunctionToolSpec[] {
  if (typeof choice === 'object' && choice.type === 'allowed_tools') {
    // Allowed tools restrict what the model may call: only those reach the chat request.
    const allowed = new Set(choice.tools.map((t) => t.name));
    return tools.filter((t) => allowed.has(t.name));
  }
  return [...tools];
}

function chatToolChoice(choice: ToolChoice): unknown {
  if (typeof choice === 'string') return choice;
  if (choice.type === 'function') return { type: 'function', function: { name: choice.name } };
  return choice.mode;
}

function chatResponseFormat(f: TextFormat): unknown {
  if (f.type === 'json_object') return { type: 'json_object' };
  if (f.type === 'json_schema')
    return {
      type: 'json_schema',
      json_schema: {
        name: f.name,
        schema: f.schema,
        ...(f.description ? { description: f.description } : {}),
        ...(f.strict !== null ? { strict: f.strict } : {}),
      },
    };
  return undefined;
}

/**
 * The chat request for a Responses request over its resolved conversation. Only standard chat
 * fields are set, so every family (and any OpenAI-compatible upstream) understands it; hints
 * that do not change the answer stay behind. `reasoningEffort`: the provider takes chat's
 * `reasoning_effort` (else `reasoning.effort` is ignored).
 */
export function toChatRequest(
  req: ResponsesRequest,
  context: readonly ContextItem[],
  { reasoningEffort = false }: { reasoningEffort?: boolean } = {},
): ChatRequest {
  const body: ChatRequest = { model: req.model, messages: toChatMessages(req.instructions, context) };
  const tools = chatTools(req.tools, req.toolChoice);
  if (tools.length > 0) {
    body.tools = tools.map((t) => ({
      type: 'function',
      function: {
        name: t.name,
        ...(t.description !== null ? { description: t.description } : {}),
        parameters: t.parameters ?? { type: 'object', properties: {} },
        ...(t.strict !== null ? { strict: t.strict } : {}),
      },
    }));
    body.tool_choice = chatToolChoice(req.toolChoice);
    // Chat refuses parallel_tool_calls without tools, so it only goes with them.
    if (!req.parallelToolCalls) body.parallel_tool_calls = false;
  }
  const format = chatResponseFormat(req.text.format);
  if (format) body.response_format = format;
  if (req.maxOutputTokens !== null) body.max_completion_tokens = req.maxOutputTokens;
  if (req.temperature !== null) body.temperature = req.temperature;
  if (req.topP !== null) body.top_p = req.topP;
  if (req.user !== null) body.user = req.user;
  // OpenAI's chat field, only for a provider that has it (others refuse or ignore it).
  if (reasoningEffort && req.reasoning.effort !== null) body.reasoning_effort = req.reasoning.effort;
  if (req.stream) body.stream = true;
  return body;
}

/** Chat usage as Responses usage (cache reads and writes, reasoning tokens included). */
export function responseUsage(
  u: Usage | null | undefined,
  counted: { input: number; output: number },
): ResponseUsage {
  const details = u?.prompt_tokens_details as
    | { cached_tokens?: number; cache_write_tokens?: number }
    | undefined;
  const input = count(u?.prompt_tokens) ?? counted.input;
  const output = count(u?.completion_tokens) ?? counted.output;
  return {
    input_tokens: input,
    input_tokens_details: {
      cached_tokens: count(details?.cached_tokens) ?? 0,
      cache_write_tokens: count(details?.cache_write_tokens) ?? 0,
    },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: count(u?.completion_tokens_details?.reasoning_tokens) ?? 0 },
    total_tokens: input + output,
  };
}

function count(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

/** How a response ended, from the chat finish reason. */
export function statusOf(finishReason: string | null | undefined): {
  status: 'completed' | 'incomplete';
  incomplete_details: Response['incomplete_details'];
} {
  if (finishReason === 'length')
    return { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } };
  if (finishReason === 'content_filter')
    return { status: 'incomplete', incomplete_details: { reason: 'content_filter' } };
  return { status: 'completed', incomplete_details: null };
}

/** The output items of a chat completion: its message (when it has text) and its tool calls. */
export function completionOutput(c: ChatCompletion, ids: ItemIds): OutputItem[] {
  const choice = c.choices[0];
  const msg = choice?.message;
  const { status } = statusOf(choice?.finish_reason);
  const out: OutputItem[] = [];
  const text = typeof msg?.content === 'string' ? msg.content : '';
  const refusal = typeof msg?.refusal === 'string' && msg.refusal ? msg.refusal : null;
  const calls = (msg?.tool_calls ?? []).filter(
    (t): t is ChatToolCall => (t as { type?: string }).type === 'function' && 'function' in t,
  );
  if (text || refusal || calls.length === 0) out.push(messageItem(ids.take('msg'), text, refusal, status));
  for (const t of calls)
    out.push(functionCallItem(ids.take('fc'), t.id, t.function.name, t.function.arguments));
  return out;
}

export function messageItem(
  id: string,
  text: string,
  refusal: string | null,
  status: ResponseOutputMessage['status'],
): ResponseOutputMessage {
  const content: ResponseOutputMessage['content'] = [];
  if (text || !refusal) content.push({ type: 'output_text', text, annotations: [], logprobs: [] });
  if (refusal) content.push({ type: 'refusal', refusal });
  return { id, type: 'message', status, role: 'assistant', content };
}

export function functionCallItem(
  id: string,
  callId: string,
  name: string,
  args: string,
  status: ResponseFunctionToolCallItem['status'] = 'completed',
): ResponseFunctionToolCallItem {
  return { id, type: 'function_call', status, arguments: args, call_id: callId, name };
}

/** What a Response echoes of its request. */
export interface ResponseBase {
  id: string;
  created_at: number;
  model: string;
  req: ResponsesRequest;
}

/** A Response object, in OpenAI's field order, for any stage of its life. */
export function buildResponse(
  base: ResponseBase,
  state: {
    status: 'in_progress' | 'completed' | 'incomplete' | 'failed';
    output: OutputItem[];
    usage: ResponseUsage | null;
    incomplete_details?: Response['incomplete_details'];
    error?: Response['error'];
  },
): Response {
  const { req } = base;
  const r = {
    id: base.id,
    object: 'response',
    created_at: base.created_at,
    status: state.status,
    background: false,
    completed_at: state.status === 'completed' ? Math.floor(Date.now() / 1000) : null,
    error: state.error ?? null,
    incomplete_details: state.incomplete_details ?? null,
    instructions: req.instructions,
    max_output_tokens: req.maxOutputTokens,
    max_tool_calls: req.echo.max_tool_calls,
    model: base.model,
    output: state.output,
    parallel_tool_calls: req.parallelToolCalls,
    previous_response_id: req.previousResponseId,
    prompt_cache_key: req.echo.prompt_cache_key,
    reasoning: { effort: req.reasoning.effort, summary: req.reasoning.summary },
    safety_identifier: req.echo.safety_identifier,
    store: req.store,
    temperature: req.temperature ?? 1,
    text: { format: req.text.format, verbosity: req.text.verbosity },
    tool_choice: req.toolChoice,
    tools: req.tools,
    top_logprobs: req.echo.top_logprobs ?? 0,
    top_p: req.topP ?? 1,
    truncation: req.echo.truncation,
    usage: state.usage,
    user: req.user,
    metadata: req.metadata,
  };
  // The SDK type marks SDK-derived and OpenAI-only fields (output_text, access_programs) as
  // required; the wire object, like OpenAI's, has neither.
  return r as unknown as Response;
}

/** Providers whose chat path takes `reasoning_effort` (OpenAI's chat field). */
const REASONING_EFFORT_PROVIDERS = new Set(['openai']);

/** Whether `reasoning.effort` reaches a catalogue entry of this provider family. */
export function takesReasoningEffort(provider: string | undefined): boolean {
  return provider !== undefined && REASONING_EFFORT_PROVIDERS.has(provider);
}

/** A chat field's name as the Responses request calls it, for errors the chat path raises. */
export function responsesParam(param: string | null): string | null {
  if (param === null) return null;
  const renames: Array<[RegExp, string]> = [
    [/^response_format(\.json_schema)?/, 'text.format'],
    [/^max_(completion_)?tokens$/, 'max_output_tokens'],
    [/^reasoning_effort$/, 'reasoning.effort'],
    [/^tool_choice\.function\.name$/, 'tool_choice.name'],
    [/^(tools\[\d+\])\.function/, '$1'],
    [/^messages(\[\d+\].*)?$/, 'input'],
  ];
  for (const [re, to] of renames) if (re.test(param)) return param.replace(re, to);
  return param;
}

/**
 * An error from the chat path (a provider refusing a field, a context overflow) with its `param`
 * named as in the Responses request; anything else unchanged.
 */
export function asResponsesError(err: unknown): unknown {
  if (!(err instanceof ApiError)) return err;
  const param = responsesParam(err.param);
  if (param === err.param) return err;
  return new ApiError(
    err.status,
    err.message,
    { type: err.type, code: err.code },
    { param, code: err.code, type: err.type, headers: err.headers },
  );
}
