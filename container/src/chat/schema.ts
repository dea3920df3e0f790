/**
 * The chat completion request as a zod schema: what `/v1/chat/completions` (and the async and
 * Responses paths, which translate onto it) validate, and what the OpenAPI document shows. Fields
 * the gateway does not know are kept and passed upstream untouched.
 */
import { z } from 'zod';
import { jsonType } from '../validation';

export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'] as const;

/** `must be <what>, got <type>.`, or `is required.` when the field is missing. */
function typeError(what: string) {
  return (iss: { input?: unknown }) =>
    iss.input === undefined ? 'is required.' : `must be ${what}, got ${jsonType(iss.input)}.`;
}

/** An optional, nullable number in [min, max] (an integer when `int`), named in its errors. */
function num(min: number, max: number, int = false) {
  let n = z.number({
    error: (iss) =>
      typeof iss.input === 'number'
        ? 'must be a finite number.'
        : `must be a number, got ${jsonType(iss.input)}.`,
  });
  if (int) n = n.int({ error: 'must be an integer.' });
  return n
    .min(min, { error: (iss) => `must be between ${min} and ${max}, got ${String(iss.input)}.` })
    .max(max, { error: (iss) => `must be between ${min} and ${max}, got ${String(iss.input)}.` })
    .nullable()
    .optional();
}

/**
 * An object with a string `type` (a content part, a tool, a response format): anything else is
 * named at the object (`tools[0]`), not at its missing field.
 */
function typed(description: string) {
  return z
    .custom<{ type: string; [k: string]: unknown }>(
      (v) =>
        typeof v === 'object' &&
        v !== null &&
        !Array.isArray(v) &&
        typeof (v as { type?: unknown }).type === 'string',
      { error: "must be an object with a 'type'." },
    )
    .meta({
      description,
      type: 'object',
      required: ['type'],
      properties: { type: { type: 'string' } },
      additionalProperties: true,
    });
}

const contentPart = typed('A content part: text, image_url, input_audio, file...');

const contentParts = z.array(contentPart);

export const chatMessageSchema = z
  .looseObject(
    {
      role: z.enum(CHAT_ROLES, {
        error: (iss) =>
          typeof iss.input === 'string'
            ? `'${iss.input}' is not a valid role; expected one of system, developer, user, assistant, tool.`
            : 'is required and must be a string.',
      }),
      content: z
        .union([z.string(), contentParts], { error: 'must be a string or an array of content parts.' })
        .nullable()
        .optional(),
      name: z.string({ error: typeError('a string') }).optional(),
      tool_calls: z.array(z.unknown(), { error: typeError('an array') }).optional(),
      tool_call_id: z.string({ error: typeError('a string') }).optional(),
    },
    { error: (iss) => `must be an object, got ${jsonType(iss.input)}.` },
  )
  .superRefine((m, ctx) => {
    const hasToolCalls = Array.isArray(m.tool_calls) && m.tool_calls.length > 0;
    if (
      (m.content === undefined || m.content === null) &&
      !(m.role === 'assistant' && (hasToolCalls || m['function_call']))
    ) {
      ctx.addIssue({ code: 'custom', path: ['content'], message: `is required for role '${m.role}'.` });
    }
    if (Array.isArray(m.content)) {
      m.content.forEach((part, j) => {
        if (part.type === 'text' && typeof part['text'] !== 'string')
          ctx.addIssue({ code: 'custom', path: ['content', j, 'text'], message: 'must be a string.' });
      });
    }
    if (m.role === 'tool' && typeof m.tool_call_id !== 'string')
      ctx.addIssue({ code: 'custom', path: ['tool_call_id'], message: "is required for role 'tool'." });
  });

/** `POST /v1/chat/completions`. */
export const chatRequestSchema = z.looseObject({
  model: z
    .string({
      error: (iss) =>
        iss.input === undefined
          ? "You must provide a model parameter ('model')."
          : `must be a non-empty string, got ${jsonType(iss.input)}.`,
    })
    .min(1, { error: 'must be a non-empty string, got an empty string.' }),
  messages: z
    .array(chatMessageSchema, {
      error: (iss) =>
        iss.input === undefined
          ? "Missing required parameter: 'messages'."
          : `must be an array, got ${jsonType(iss.input)}.`,
    })
    .min(1, { error: 'must contain at least one message.' }),
  temperature: num(0, 2),
  top_p: num(0, 1),
  frequency_penalty: num(-2, 2),
  presence_penalty: num(-2, 2),
  max_tokens: num(1, Number.MAX_SAFE_INTEGER, true),
  max_completion_tokens: num(1, Number.MAX_SAFE_INTEGER, true),
  seed: num(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true),
  top_logprobs: num(0, 20, true),
  n: num(1, 128, true).refine((v) => v === undefined || v === null || v === 1, {
    error: (iss) => `Only n=1 is supported by this server; got n=${String(iss.input)}.`,
  }),
  stream: z
    .boolean({ error: typeError('a boolean') })
    .nullable()
    .optional(),
  stream_options: z
    .looseObject(
      { include_usage: z.boolean({ error: typeError('a boolean') }).optional() },
      { error: 'must be an object.' },
    )
    .nullable()
    .optional(),
  stop: z
    .union([z.string(), z.array(z.string()).max(4)], {
      error: 'must be a string or an array of up to 4 strings.',
    })
    .nullable()
    .optional(),
  tools: z
    .array(typed('a tool'), { error: typeError('an array') })
    .nullable()
    .optional(),
  tool_choice: z
    .union([z.string(), z.looseObject({})], { error: 'must be a string or an object.' })
    .nullable()
    .optional(),
  response_format: typed('{ type: "text" | "json_object" | "json_schema", json_schema? }')
    .nullable()
    .optional(),
  user: z.string({ error: typeError('a string') }).optional(),
});
