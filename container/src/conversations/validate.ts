import { z } from 'zod';
import { typeName } from '../chat/validate';
import { BadRequestError } from '../errors';
import { jsonType, parseBody } from '../validation';

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

const userIdSchema = z
  .string({
    error: (iss) =>
      iss.input === undefined || iss.input === null
        ? 'is required.'
        : `must be a string, got ${jsonType(iss.input)}.`,
  })
  .min(1, { error: 'is required.' })
  .max(USER_ID_MAX_LENGTH, { error: `is longer than ${USER_ID_MAX_LENGTH} characters.` })
  .regex(USER_ID_RE, { error: 'may only contain letters, digits and . _ @ -' });

/**
 * `POST /api/v1/chat`: `message` (non-blank string), `user_id`, optional boolean `stream`.
 * Other fields are ignored, so clients written for the tutorial's API (which sent extras such as
 * metadata) keep working. The length limit (`assistant.maxMessageChars`) is checked after.
 */
export const assistantRequestSchema = z.looseObject({
  message: z
    .string({
      error: (iss) =>
        iss.input === undefined || iss.input === null
          ? 'is required.'
          : `must be a string, got ${jsonType(iss.input)}.`,
    })
    .refine((m) => m.trim() !== '', { error: 'must not be empty.' }),
  user_id: userIdSchema,
  stream: z
    .boolean({ error: (iss) => `must be a boolean, got ${jsonType(iss.input)}.` })
    .nullable()
    .optional(),
});

/**
 * Validate `POST /api/v1/chat` with {@link assistantRequestSchema}, then the message length.
 * @throws BadRequestError naming the offending field in `param`.
 */
export function parseAssistantRequest(body: unknown, opts: { maxMessageChars: number }): AssistantRequest {
  const b = parseBody(assistantRequestSchema, body, 'with `message` and `user_id`');
  if (charLength(b.message, opts.maxMessageChars) > opts.maxMessageChars) {
    throw new BadRequestError(`'message' is longer than ${opts.maxMessageChars} characters.`, {
      param: 'message',
      code: 'message_too_long',
    });
  }
  return { message: b.message, userId: b.user_id, stream: b.stream === true };
}
