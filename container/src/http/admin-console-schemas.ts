/**
 * The console admin API's queries and bodies (validation and the OpenAPI document) and the
 * shapes of its answers (the document).
 */
import { z } from 'zod';
import { OWNER_RE } from '../keys/schema';
import { apiKeySchema } from './api-schemas';

const owner = z
  .string()
  .regex(OWNER_RE, { error: 'must be 1-128 characters of [A-Za-z0-9._@:-].' })
  .meta({ description: 'Only this owner' });

/** `GET /admin/standing`. */
export const standingQuerySchema = z.object({ owner: owner.optional() }).strict();

/** `GET /admin/usage/series`. */
export const seriesQuerySchema = z
  .object({
    granularity: z
      .enum(['hour', 'day'], { error: "must be 'hour' or 'day'." })
      .optional()
      .meta({ description: 'Points per UTC hour (default) or per UTC day' }),
    start: z.string().optional().meta({
      description:
        'First hour `YYYY-MM-DDTHH` or day `YYYY-MM-DD` (UTC); default 23 hours / 29 days before end',
    }),
    end: z.string().optional().meta({ description: 'Last hour or day (UTC), inclusive; default now' }),
    owner: owner.optional(),
    key_id: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be a key id.' })
      .optional()
      .meta({ description: 'Only this key' }),
    model: z
      .string()
      .regex(/^[\x21-\x7e]{1,256}$/, { error: 'must be a model id.' })
      .optional()
      .meta({ description: 'Only this model' }),
    group_by: z.string().optional().meta({
      description: 'Comma-separated dimensions: owner, key_id, model (default all three; empty: totals)',
    }),
    format: z
      .enum(['json', 'csv'], { error: "must be 'json' or 'csv'." })
      .optional()
      .meta({ description: 'csv: a download with one line per point' }),
  })
  .strict();

/** `GET /admin/jobs/failed`. */
export const failedJobsQuerySchema = z
  .object({
    limit: z
      .string()
      .regex(/^\d{1,3}$/, { error: 'must be an integer from 1 to 100.' })
      .optional()
      .meta({ description: 'How many (1-100, default 20)' }),
  })
  .strict();

/** `POST /admin/playground/keys`. */
export const playgroundKeySchema = z
  .object({
    ttl_seconds: z
      .number({ error: 'must be an integer from 60 to 86400.' })
      .int({ error: 'must be an integer from 60 to 86400.' })
      .min(60, { error: 'must be an integer from 60 to 86400.' })
      .max(86_400, { error: 'must be an integer from 60 to 86400.' })
      .optional()
      .meta({ description: 'Lifetime in seconds (default 3600)' }),
  })
  .strict();

const limits = z.looseObject({});
const nullableInt = z.number().int().nullable();

export const standingSchema = z.object({
  object: z.literal('key.standing'),
  key_id: z.string(),
  owner: z.string(),
  tier: z.string(),
  limits: limits.meta({ description: 'Effective limits (tier + key overrides)' }),
  requests_this_minute: nullableInt.meta({ description: 'Sliding-window count; null without an rpm limit' }),
  tokens_this_minute: nullableInt.meta({ description: 'Sliding-window count; null without a tpm limit' }),
  tokens_today: z.number().int(),
  spend_this_month_usd: z.number(),
  at: z.string(),
});

export const standingListSchema = z.object({ object: z.literal('list'), data: z.array(standingSchema) });

const point = z.looseObject({
  period: z.string(),
  owner: z.string().optional(),
  key_id: z.string().optional(),
  model: z.string().optional(),
  requests: z.number().int(),
  errors: z.number().int(),
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  total_tokens: z.number().int(),
  cached_tokens: z.number().int(),
  cost_usd: z.number(),
  cached_requests: z.number().int(),
});

export const seriesSchema = z.object({
  object: z.literal('usage.series'),
  granularity: z.enum(['hour', 'day']),
  start: z.string(),
  end: z.string(),
  group_by: z.array(z.string()),
  data: z.array(point),
  totals: z.looseObject({}),
});

const percentiles = z.object({
  p50: z.number().nullable(),
  p90: z.number().nullable(),
  p99: z.number().nullable(),
});
const totals = z.looseObject({
  since: z.string(),
  requests: z.number().int(),
  errors: z.number().int(),
  cache_hit_rate: z.number().nullable(),
  cost_usd: z.number(),
  latency_ms: percentiles,
  ttft_ms: percentiles,
});

export const overviewSchema = z.object({
  object: z.literal('usage.overview'),
  at: z.string(),
  hour: totals,
  day: totals,
  series: z.array(point),
});

export const catalogueSchema = z.looseObject({
  object: z.literal('catalogue'),
  default_tier: z.string(),
  tiers: z.record(z.string(), z.looseObject({})),
  models: z.array(z.looseObject({ id: z.string(), endpoints: z.array(z.string()) })),
});

export const failedJobsSchema = z.object({
  object: z.literal('list'),
  data: z.array(
    z.looseObject({
      id: z.string(),
      status: z.literal('failed'),
      owner: z.string(),
      model: z.string(),
      attempts: z.number().int(),
      created: z.number().int(),
      failed: z.number().int(),
      error: z
        .looseObject({ message: z.string(), code: z.string().nullable(), status: z.number().int() })
        .nullable(),
    }),
  ),
});

export const playgroundKeyResponseSchema = apiKeySchema.extend({
  key: z.string().meta({ description: 'The secret (shown once)' }),
  expires_at: z.string().meta({ description: 'Refused from this moment on' }),
});
