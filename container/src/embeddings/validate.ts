import { z } from 'zod';
import { parseBody } from '../validation';
import type { EmbeddingsRequest } from '../wire/embeddings';

/** OpenAI's limits: at most this many inputs per request. */
export const MAX_INPUTS = 2048;
/** ...and at most this many tokens across them. */
export const MAX_TOTAL_TOKENS = 300_000;
/** The largest `dimensions` any embedding model offers today (and what a float32 vector of it weighs). */
export const MAX_DIMENSIONS = 16_384;

const text = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' });
const token = z
  .number({ error: 'must be a token id (integer)' })
  .int({ error: 'must be an integer token id' })
  .min(0, {
    error: 'must be a token id (>= 0)',
  });
const tokens = z
  .array(token, { error: 'must be an array of token ids' })
  .min(1, { error: 'must not be empty' });

/** The four shapes OpenAI accepts for `input`; anything else names the field. */
const input = z
  .union([text, z.array(z.unknown())], {
    error: 'must be a string, an array of strings, an array of token ids or an array of token arrays',
  })
  .superRefine((v, ctx) => {
    if (typeof v === 'string') return;
    if (v.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'must contain at least one input' });
      return;
    }
    if (v.length > MAX_INPUTS) {
      ctx.addIssue({ code: 'custom', message: `has ${v.length} items; at most ${MAX_INPUTS} are allowed` });
      return;
    }
    const first = v[0];
    const item = typeof first === 'number' ? token : Array.isArray(first) ? tokens : text;
    for (let i = 0; i < v.length; i++) {
      const r = item.safeParse(v[i]);
      if (!r.success) {
        const kind =
          typeof first === 'number' ? 'a token id' : Array.isArray(first) ? 'a token array' : 'a string';
        const mixed = typeof v[i] !== typeof first || Array.isArray(v[i]) !== Array.isArray(first);
        ctx.addIssue({
          code: 'custom',
          path: [i],
          message: mixed
            ? `must be ${kind} like input[0] (one kind of item per request)`
            : (r.error.issues[0]?.message ?? 'is invalid'),
        });
        return;
      }
    }
  });

/** `POST /v1/embeddings`. */
export const embeddingsRequestSchema = z
  .object({
    model: z
      .string({ error: "is required: the embedding model's id" })
      .min(1, { error: 'must not be empty' }),
    input,
    encoding_format: z.enum(['float', 'base64'], { error: "must be 'float' or 'base64'" }).optional(),
    dimensions: z
      .number({ error: 'must be an integer' })
      .int({ error: 'must be an integer' })
      .min(1, { error: 'must be at least 1' })
      .max(MAX_DIMENSIONS, { error: `must be at most ${MAX_DIMENSIONS}` })
      .optional(),
    user: z
      .string({ error: 'must be a string' })
      .max(256, { error: 'must be at most 256 characters' })
      .optional(),
  })
  .strict();

/** Validate an embeddings body (shape only; token limits need the model and are checked later). */
export function validateEmbeddingsRequest(body: unknown): EmbeddingsRequest {
  return parseBody(embeddingsRequestSchema, body, 'with `model` and `input`') as EmbeddingsRequest;
}
