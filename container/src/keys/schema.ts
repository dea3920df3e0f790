/** The admin API's request bodies and queries, as zod schemas (validation and the OpenAPI document). */
import { z } from 'zod';
import { MAX_BUDGET_USD } from '../config/service-config';
import { jsonType } from '../validation';

/** Owners: safe in URLs, logs and DynamoDB keys without escaping. */
export const OWNER_RE = /^[A-Za-z0-9._@:-]{1,128}$/;

const ownerSchema = z
  .string({
    error: (iss) =>
      iss.input === undefined
        ? 'is required: 1-128 characters of [A-Za-z0-9._@:-].'
        : `must be a string, got ${jsonType(iss.input)}.`,
  })
  .regex(OWNER_RE, { error: 'must be 1-128 characters of [A-Za-z0-9._@:-].' });

const count = z
  .number({ error: 'must be a positive integer.' })
  .int({ error: 'must be a positive integer.' })
  .positive({ error: 'must be a positive integer.' })
  .max(Number.MAX_SAFE_INTEGER, {
    error: `must be a positive integer up to ${Number.MAX_SAFE_INTEGER.toLocaleString('en-US')}.`,
  });

export const limitsSchema = z
  .object(
    {
      rpm: count.optional().meta({ description: 'Requests per minute' }),
      tpm: count.optional().meta({ description: 'Tokens (prompt + max completion) per minute' }),
      daily_tokens: count.optional().meta({ description: 'Tokens per UTC day' }),
      monthly_budget_usd: z
        .number({ error: 'must be a positive number.' })
        .positive({ error: 'must be a positive number.' })
        .max(MAX_BUDGET_USD, {
          error: `must be a positive number up to ${MAX_BUDGET_USD.toLocaleString('en-US')}.`,
        })
        .optional()
        .meta({ description: 'USD per UTC calendar month' }),
    },
    { error: "'limits' must be an object." },
  )
  .strict();

const tierSchema = z
  .string({ error: 'must be a tier name.' })
  .meta({ description: 'A tier of the service config' });
const modelsSchema = z
  .array(z.string({ error: 'must be a model id.' }), { error: "'models' must be an array of model ids." })
  .meta({ description: 'Catalogue ids the key may use; ["*"] = all' });

/** `POST /admin/keys`. */
export const createKeySchema = z
  .object({
    owner: ownerSchema,
    tier: tierSchema.optional(),
    limits: limitsSchema.optional(),
    models: modelsSchema.optional(),
  })
  .strict();

/** `PATCH /admin/keys/{id}`: owner and the secret are read-only. */
export const updateKeySchema = z
  .object({ tier: tierSchema.optional(), limits: limitsSchema.optional(), models: modelsSchema.optional() })
  .strict();

/** `GET /admin/keys`. */
export const listKeysQuerySchema = z.object({ owner: ownerSchema.optional() });

const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/)
  .meta({ description: 'YYYY-MM-DD (UTC)' });

/** `GET /v1/usage`. */
export const usageQuerySchema = z.object({
  start: day.optional().meta({ description: 'First day (UTC), default the first of this month' }),
  end: day.optional().meta({ description: 'Last day (UTC), default today' }),
});

/** `GET /admin/usage`. */
export const adminUsageQuerySchema = usageQuerySchema.extend({ owner: ownerSchema });
