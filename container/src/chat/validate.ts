import { BadRequestError } from '../errors';
import { parseBody } from '../validation';
import type { ChatRequest } from '../wire/chat';
import { chatRequestSchema } from './schema';

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

/** Validate a chat completion body; unknown extra fields are kept (they go upstream untouched). */
export function validateChatRequest(body: unknown, { allowStream = true } = {}): ChatRequest {
  const req = parseBody(chatRequestSchema, body, 'with `model` and `messages`') as ChatRequest;
  if (req.stream === true && !allowStream)
    throw new BadRequestError("'stream' is not supported on this endpoint.", { param: 'stream' });
  return req;
}
