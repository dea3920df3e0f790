import { BadRequestError } from '../errors';
import type { ChatMessage, ChatRequest } from '../wire/chat';

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

function fail(param: string, message: string): never {
  throw new BadRequestError(message, { param });
}

/** A plain JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The JSON type of a value, for error messages. */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function optNumber(
  body: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
  integer = false,
): void {
  const v = body[key];
  if (v === undefined || v === null) return;
  if (typeof v !== 'number') fail(key, `'${key}' must be a number, got ${typeName(v)}.`);
  if (!Number.isFinite(v)) fail(key, `'${key}' must be a finite number.`);
  if (integer && !Number.isInteger(v)) fail(key, `'${key}' must be an integer.`);
  if (v < min || v > max) fail(key, `${v} is out of range for '${key}': expected ${min} to ${max}.`);
}

function validateMessage(m: unknown, i: number): ChatMessage {
  const p = `messages[${i}]`;
  if (!isObject(m)) fail(p, `'${p}' must be an object, got ${typeName(m)}.`);
  const role = m.role;
  if (typeof role !== 'string') fail(`${p}.role`, `'${p}.role' is required and must be a string.`);
  if (!ROLES.has(role)) {
    fail(
      `${p}.role`,
      `'${role}' is not a valid role for '${p}.role'; expected one of system, developer, user, assistant, tool.`,
    );
  }
  const c = m.content;
  const hasToolCalls = Array.isArray(m.tool_calls) && m.tool_calls.length > 0;
  if (c === undefined || c === null) {
    if (!(role === 'assistant' && (hasToolCalls || m.function_call))) {
      fail(`${p}.content`, `'${p}.content' is required for role '${role}'.`);
    }
  } else if (typeof c !== 'string') {
    if (!Array.isArray(c))
      fail(`${p}.content`, `'${p}.content' must be a string or an array of content parts.`);
    c.forEach((part, j) => {
      if (!isObject(part) || typeof part.type !== 'string') {
        fail(`${p}.content[${j}]`, `'${p}.content[${j}]' must be an object with a 'type'.`);
      }
      if (part.type === 'text' && typeof part.text !== 'string') {
        fail(`${p}.content[${j}].text`, `'${p}.content[${j}].text' must be a string.`);
      }
    });
  }
  if (m.name !== undefined && typeof m.name !== 'string') fail(`${p}.name`, `'${p}.name' must be a string.`);
  if (m.tool_calls !== undefined && !Array.isArray(m.tool_calls))
    fail(`${p}.tool_calls`, `'${p}.tool_calls' must be an array.`);
  if (role === 'tool' && typeof m.tool_call_id !== 'string') {
    fail(`${p}.tool_call_id`, `'${p}.tool_call_id' is required for role 'tool'.`);
  }
  return m as ChatMessage;
}

/** Validate a chat completion body; unknown extra fields are kept (they go upstream untouched). */
export function validateChatRequest(body: unknown, { allowStream = true } = {}): ChatRequest {
  if (body === undefined || body === null || body === '') {
    throw new BadRequestError('The request body is empty; send a JSON object with `model` and `messages`.');
  }
  if (!isObject(body))
    throw new BadRequestError(`The request body must be a JSON object, got ${typeName(body)}.`);
  if (body.model === undefined) fail('model', "You must provide a model parameter ('model').");
  if (typeof body.model !== 'string' || body.model.length === 0) {
    fail('model', `'model' must be a non-empty string, got ${typeName(body.model)}.`);
  }
  if (body.messages === undefined) fail('messages', "Missing required parameter: 'messages'.");
  if (!Array.isArray(body.messages))
    fail('messages', `'messages' must be an array, got ${typeName(body.messages)}.`);
  if (body.messages.length === 0) fail('messages', "'messages' must contain at least one message.");
  body.messages.forEach(validateMessage);

  optNumber(body, 'temperature', 0, 2);
  optNumber(body, 'top_p', 0, 1);
  optNumber(body, 'frequency_penalty', -2, 2);
  optNumber(body, 'presence_penalty', -2, 2);
  optNumber(body, 'max_tokens', 1, Number.MAX_SAFE_INTEGER, true);
  optNumber(body, 'max_completion_tokens', 1, Number.MAX_SAFE_INTEGER, true);
  optNumber(body, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true);
  optNumber(body, 'top_logprobs', 0, 20, true);
  if (body.n !== undefined && body.n !== null) {
    optNumber(body, 'n', 1, 128, true);
    if (body.n !== 1) fail('n', `Only n=1 is supported by this server; got n=${String(body.n)}.`);
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') {
    fail('stream', `'stream' must be a boolean, got ${typeName(body.stream)}.`);
  }
  if (body.stream === true && !allowStream) fail('stream', "'stream' is not supported on this endpoint.");
  if (body.stream_options !== undefined && body.stream_options !== null) {
    if (!isObject(body.stream_options)) fail('stream_options', "'stream_options' must be an object.");
    const iu = body.stream_options.include_usage;
    if (iu !== undefined && typeof iu !== 'boolean')
      fail('stream_options.include_usage', "'stream_options.include_usage' must be a boolean.");
  }
  const stop = body.stop;
  if (stop !== undefined && stop !== null) {
    const ok =
      typeof stop === 'string' ||
      (Array.isArray(stop) && stop.length <= 4 && stop.every((s) => typeof s === 'string'));
    if (!ok) fail('stop', "'stop' must be a string or an array of up to 4 strings.");
  }
  if (body.tools !== undefined && body.tools !== null) {
    if (!Array.isArray(body.tools)) fail('tools', "'tools' must be an array.");
    body.tools.forEach((t, i) => {
      if (!isObject(t) || typeof t.type !== 'string')
        fail(`tools[${i}]`, `'tools[${i}]' must be an object with a 'type'.`);
    });
  }
  if (body.tool_choice !== undefined && body.tool_choice !== null) {
    if (typeof body.tool_choice !== 'string' && !isObject(body.tool_choice)) {
      fail('tool_choice', "'tool_choice' must be a string or an object.");
    }
  }
  if (body.response_format !== undefined && body.response_format !== null) {
    if (!isObject(body.response_format) || typeof body.response_format.type !== 'string') {
      fail('response_format', "'response_format' must be an object with a 'type'.");
    }
  }
  if (body.user !== undefined && typeof body.user !== 'string') fail('user', "'user' must be a string.");
  return body as ChatRequest;
}
