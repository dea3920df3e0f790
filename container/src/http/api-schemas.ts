/**
 * Response shapes for the OpenAPI document. Requests are documented with the schemas that
 * validate them; responses with these (what the routes build), loose where the upstream's
 * answer passes through.
 */
import { z } from 'zod';

const usage = z.looseObject({
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  total_tokens: z.number().int(),
  prompt_tokens_details: z
    .looseObject({
      cached_tokens: z.number().int().optional(),
      cache_write_tokens: z
        .number()
        .int()
        .optional()
        .meta({ description: 'Prompt tokens written to the provider cache' }),
    })
    .optional(),
});

export const chatCompletionSchema = z.looseObject({
  id: z.string(),
  object: z.literal('chat.completion'),
  created: z.number().int(),
  model: z.string().meta({ description: 'The public model id (the fallback that answered, if one did)' }),
  choices: z.array(
    z.looseObject({
      index: z.number().int(),
      message: z.looseObject({
        role: z.literal('assistant'),
        content: z.string().nullable(),
        tool_calls: z
          .array(z.looseObject({ id: z.string(), type: z.string(), function: z.looseObject({}) }))
          .optional(),
      }),
      finish_reason: z.string().nullable(),
    }),
  ),
  usage: usage.optional(),
});

export const CHAT_STREAM_DESCRIPTION =
  'With `stream: true`: `data: {chat.completion.chunk}` events as tokens arrive, a usage chunk ' +
  '(`choices: []`) when `stream_options.include_usage` is set, then `data: [DONE]`. `: ping` ' +
  'comments keep a slow first token alive. A failure after the first event is a ' +
  '`data: {"error":{...}}` event and no `[DONE]`.';

export const embeddingsResponseSchema = z.object({
  object: z.literal('list'),
  data: z.array(
    z.object({
      object: z.literal('embedding'),
      index: z.number().int(),
      embedding: z
        .union([z.array(z.number()), z.string()])
        .meta({ description: 'Floats, or base64 of little-endian float32 with encoding_format base64' }),
    }),
  ),
  model: z.string(),
  usage: z.object({ prompt_tokens: z.number().int(), total_tokens: z.number().int() }),
});

export const modelSchema = z.object({
  id: z.string(),
  object: z.literal('model'),
  created: z.number().int(),
  owned_by: z.string(),
  context_window: z.number().int(),
  endpoints: z.array(z.enum(['chat', 'embeddings'])),
  dimensions: z.number().int().optional(),
  pricing: z.object({
    input_per_1m: z.number(),
    output_per_1m: z.number(),
    cached_input_per_1m: z.number(),
    cache_write_per_1m: z.number(),
  }),
  simulated: z.boolean().optional(),
});

export const modelListSchema = z.object({ object: z.literal('list'), data: z.array(modelSchema) });

const dependency = z.object({
  name: z.string(),
  status: z.enum(['ok', 'error']),
  latency_ms: z.number(),
  error: z.string().optional(),
});

export const readySchema = z.object({
  status: z.enum(['ready', 'degraded', 'draining']),
  dependencies: z.array(dependency),
  in_flight: z.number().int(),
  queued: z.number().int(),
});

export const healthSchema = z.object({ status: z.enum(['ok', 'draining']) });

const limits = z.object({
  rpm: z.number().int().optional(),
  tpm: z.number().int().optional(),
  daily_tokens: z.number().int().optional(),
  monthly_budget_usd: z.number().optional(),
});

export const apiKeySchema = z.looseObject({
  id: z.string(),
  object: z.literal('api_key'),
  owner: z.string(),
  tier: z.string(),
  limits,
  models: z.array(z.string()),
  prefix: z.string(),
  created: z.string().meta({ description: 'ISO 8601' }),
  revoked: z.boolean(),
  revoked_at: z.string().optional().meta({ description: 'ISO 8601' }),
  expires_at: z
    .string()
    .optional()
    .meta({ description: 'ISO 8601: a short-lived key (the console playground) stops working then' }),
});

export const createdKeySchema = apiKeySchema.extend({
  key: z.string().meta({ description: 'The secret: shown once, never stored in clear' }),
});

export const keyListSchema = z.object({ object: z.literal('list'), data: z.array(apiKeySchema) });

export const usageSummarySchema = z.object({
  object: z.literal('usage'),
  owner: z.string(),
  start: z.string(),
  end: z.string(),
  data: z.array(
    z.looseObject({
      day: z.string(),
      model: z.string(),
      requests: z.number().int(),
      prompt_tokens: z.number().int(),
      completion_tokens: z.number().int(),
      total_tokens: z.number().int(),
      cost_usd: z.number(),
      cached_requests: z.number().int(),
    }),
  ),
  totals: z.object({
    requests: z.number().int(),
    prompt_tokens: z.number().int(),
    completion_tokens: z.number().int(),
    total_tokens: z.number().int(),
    cost_usd: z.number(),
  }),
});

const apiError = z.object({
  message: z.string(),
  type: z.string(),
  param: z.string().nullable(),
  code: z.string().nullable(),
});

export const jobSchema = z.object({
  id: z.string(),
  object: z.literal('chat.completion.job'),
  status: z.enum(['queued', 'processing', 'completed', 'failed']),
  model: z.string(),
  created: z.number().int(),
  started: z.number().int().nullable(),
  completed: z.number().int().nullable(),
  result: chatCompletionSchema.nullable(),
  error: apiError.nullable(),
});

export const jobSubmittedSchema = z.object({
  id: z.string(),
  object: z.literal('chat.completion.job'),
  status: z.literal('queued'),
  model: z.string(),
  created: z.number().int(),
  status_url: z.string(),
});

export const queueStatsSchema = z.object({
  object: z.literal('queue.stats'),
  queue: z.object({
    visible: z.number().int(),
    in_flight: z.number().int(),
    delayed: z.number().int(),
    oldest_message_age_seconds: z.number().int(),
    max_depth: z.number().int(),
  }),
  dlq: z.object({ visible: z.number().int(), in_flight: z.number().int() }).nullable(),
  worker: z.object({ concurrency: z.number().int() }),
});

export const assistantReplySchema = z.object({
  response: z.string(),
  user_id: z.string(),
  conversation_id: z.string(),
  model: z.string(),
  timestamp: z.string(),
  usage: z.object({
    prompt_tokens: z.number().int(),
    completion_tokens: z.number().int(),
    total_tokens: z.number().int(),
  }),
});

export const historySchema = z.object({
  user_id: z.string(),
  conversation_id: z.string(),
  messages: z.array(
    z.object({ role: z.enum(['user', 'assistant']), content: z.string(), timestamp: z.string() }),
  ),
  message_count: z.number().int(),
});

export const deletedHistorySchema = z.object({ user_id: z.string(), deleted: z.literal(true) });

/** The headers every metered answer carries. */
export const METERED_HEADERS = [
  'x-request-id',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-tollgate-cache',
  'x-tollgate-cost-usd',
] as const;
