import { isObject, typeName } from '../chat/validate';
import { BadRequestError } from '../errors';

/** Characters allowed in a `user_id`: safe in URLs, logs and keys without escaping. */
const USER_ID_RE = /^[A-Za-z0-9._@-]+$/;
/** Longest accepted `user_id`. */
export const USER_ID_MAX_LENGTH = 128;

/** A validated assistant message. */
export interface AssistantRequest {
  message: string;
  userId: string;
  stream: boolean;
}

/** Length in characters (code points), so an emoji counts once, like a person would count it. */
function charLength(s: string, max: number): number {
  // UTF-16 length bounds the code point count from above: only long strings need the slow count.
  if (s.length <= max) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * Validate a `user_id` from a body or a path.
 * @throws BadRequestError with `param: 'user_id'`.
 */
export function parseUserId(v: unknown): string {
  if (v === undefined || v === null || v === '') {
    throw new BadRequestError("'user_id' is required.", { param: 'user_id' });
  }
  if (typeof v !== 'string') {
    throw new BadRequestError(`'user_id' must be a string, got ${typeName(v)}.`, { param: 'user_id' });
  }
  if (v.length > USER_ID_MAX_LENGTH) {
    throw new BadRequestError(`'user_id' is longer than ${USER_ID_MAX_LENGTH} characters.`, {
      param: 'user_id',
    });
  }
  if (!USER_ID_RE.test(v)) {
    throw new BadRequestError("'user_id' may only contain letters, digits and . _ @ -", {
      param: 'user_id',
    });
  }
  return v;
}

/**
 * Validate `POST /api/v1/chat`: `message` (non-blank string, at most `maxMessageChars`),
 * `user_id`, optional boolean `stream`. Other fields are ignored, so clients written for the
 * tutorial's API (which sent extras such as metadata) keep working.
 * @throws BadRequestError naming the offending field in `param`.
 */
export function parseAssistantRequest(body: unknown, opts: { maxMessageChars: number }): AssistantRequest {
  if (body === undefined || body === null || body === '') {
    throw new BadRequestError('The request body is empty; send a JSON object with `message` and `user_id`.');
  }
  if (!isObject(body)) {
    throw new BadRequestError(`The request body must be a JSON object, got ${typeName(body)}.`);
  }
  const message = body['message'];
  if (message === undefined || message === null) {
    throw new BadRequestError("'message' is required.", { param: 'message' });
  }
  if (typeof message !== 'string') {
    throw new BadRequestError(`'message' must be a string, got ${typeName(message)}.`, { param: 'message' });
  }
  if (message.trim() === '') {
    throw new BadRequestError("'message' must not be empty.", { param: 'message' });
  }
  if (charLength(message, opts.maxMessageChars) > opts.maxMessageChars) {
    throw new BadRequestError(`'message' is longer than ${opts.maxMessageChars} characters.`, {
      param: 'message',
      code: 'message_too_long',
    });
  }
  const userId = parseUserId(body['user_id']);
  const stream = body['stream'];
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    throw new BadRequestError(`'stream' must be a boolean, got ${typeName(stream)}.`, { param: 'stream' });
  }
  return { message, userId, stream: stream === true };
}
