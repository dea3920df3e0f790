import { z } from 'zod';

/**
 * The fields every catalogue entry has, whatever its provider family. A family's entry schema
 * is {@link familyModelSchema}`('<family>', { ...its own fields })`; the registry joins them into
 * the discriminated union on `provider`.
 */

const price = z.number().min(0);

/** What a catalogue entry serves. */
export const ENDPOINTS = ['chat', 'embeddings'] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

export const pricingSchema = z
  .object({
    input: price.default(0),
    output: price.default(0),
    /** Cache-read input tokens. @default input */
    cachedInput: price.optional(),
    /** Cache-write input tokens (Bedrock prompt caching). @default input */
    cacheWrite: price.optional(),
  })
  .strict();

export const commonModelFields = z.object({
  /** Public model id clients send. */
  id: z.string().min(1).max(128),
  /** Model name (or id, inference profile, ARN) sent upstream. @default id */
  upstreamModel: z.string().min(1).optional(),
  /** USD per 1M tokens. */
  pricing: pricingSchema.default({ input: 0, output: 0 }),
  contextWindow: z.number().int().positive().default(128_000),
  /** Default completion reservation when the request sets no max_tokens. @default 4096 */
  maxOutputTokens: z.number().int().positive().default(4096),
  /** Per attempt, until the upstream answers (non-stream: whole body; stream: each chunk). */
  timeoutMs: z.number().int().positive().default(60_000),
  /** Retries on 429/5xx/connection errors before any byte reached the client. */
  maxRetries: z.number().int().min(0).max(10).default(2),
  maxConcurrent: z.number().int().positive().default(256),
  /** Requests that may wait for a slot; beyond it: 503 server_busy. */
  maxQueue: z.number().int().min(0).default(1024),
  /** Longest wait for a slot before 503. */
  queueTimeoutMs: z.number().int().positive().default(30_000),
  /** Model ids tried in order when this one fails with a retryable error. */
  fallbacks: z.array(z.string()).default([]),
  /** What the entry serves. @default ['chat'] */
  endpoints: z.array(z.enum(ENDPOINTS)).min(1).default(['chat']),
  ownedBy: z.string().default('tollgate'),
  /** An embedding model's vector size: the most a request's `dimensions` may ask for. */
  dimensions: z.number().int().positive().optional(),
});

/**
 * A family's catalogue entry schema: `id`, `provider` (the family's name), the family's own
 * fields, then the common ones; strict, so a field of another family is refused by name.
 */
export function familyModelSchema<N extends string, S extends z.ZodRawShape>(name: N, own: S) {
  const { id, ...common } = commonModelFields.shape;
  return z.object({ id, provider: z.literal(name), ...own, ...common }).strict();
}

/** The fields the router, admission and pricing read: common to every family. */
export type CommonModelConfig = z.infer<typeof commonModelFields> & { provider: string };
export type Pricing = z.infer<typeof pricingSchema>;
