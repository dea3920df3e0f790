import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { type ServiceConfig, tierOf } from '../config/service-config';
import { BadRequestError } from '../errors';
import { type Authenticator, type KeyStore, keyView } from '../keys/key-store';
import {
  adminUsageQuerySchema,
  createKeySchema,
  listKeysQuerySchema,
  updateKeySchema,
  usageQuerySchema,
} from '../keys/schema';
import { roundUsd } from '../usage/pricing';
import { queryDailyUsage } from '../usage/usage-recorder';
import { parseBody, parseQuery } from '../validation';
import { apiKeySchema, createdKeySchema, keyListSchema, usageSummarySchema } from './api-schemas';
import type { RouteDoc } from './openapi';

export interface AdminRoutesOptions {
  keys: KeyStore;
  auth: Authenticator;
  config: ServiceConfig;
  doc: DynamoDBDocumentClient;
  usageTable: string;
  /** Catalogue ids, to refuse unknown models in a key's allow-list. */
  modelIds: () => Set<string>;
}

/** Limits as the key store keeps them (only the fields given). */
function limitsOf(v: Record<string, number | undefined> | undefined): Record<string, number> | undefined {
  if (!v) return undefined;
  return Object.fromEntries(Object.entries(v).filter((e): e is [string, number] => e[1] !== undefined));
}

/** Every id must be `*` or a catalogue model (unless the catalogue is still empty). */
function checkModels(v: string[] | undefined, cfgModels: Set<string>): string[] | undefined {
  v?.forEach((m, i) => {
    if (m !== '*' && cfgModels.size > 0 && !cfgModels.has(m)) {
      throw new BadRequestError(`Unknown model '${m}'.`, { param: `models[${i}]` });
    }
  });
  return v;
}

function parseTier(v: unknown, cfg: ServiceConfig): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !tierOf(cfg, v)) {
    throw new BadRequestError(`'tier' must be one of ${Object.keys(cfg.tiers).join(', ')}.`, {
      param: 'tier',
    });
  }
  return v;
}

function isCalendarDay(v: string): boolean {
  const t = Date.parse(`${v}T00:00:00Z`);
  return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 10) === v;
}

function day(v: unknown, param: string, fallback: string): string {
  if (v === undefined || v === '') return fallback;
  // The round trip refuses days a month does not have (2026-02-30 would parse as March 2).
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v) || !isCalendarDay(v)) {
    throw new BadRequestError(`'${param}' must be a date YYYY-MM-DD.`, { param });
  }
  return v;
}

/** Usage summary (per day and model + totals) shared by /v1/usage and /admin/usage. */
export async function usageSummary(
  doc: DynamoDBDocumentClient,
  table: string,
  owner: string,
  query: Record<string, unknown>,
) {
  const today = new Date().toISOString().slice(0, 10);
  const monthStart = `${today.slice(0, 7)}-01`;
  const start = day(query.start, 'start', monthStart);
  const end = day(query.end, 'end', today);
  if (start > end) throw new BadRequestError("'start' must not be after 'end'.", { param: 'start' });
  const rows = await queryDailyUsage(doc, table, owner, start, end);
  const totals = rows.reduce(
    (t, r) => ({
      requests: t.requests + r.requests,
      prompt_tokens: t.prompt_tokens + r.promptTokens,
      completion_tokens: t.completion_tokens + r.completionTokens,
      total_tokens: t.total_tokens + r.totalTokens,
      cost_usd: roundUsd(t.cost_usd + r.costUsd),
    }),
    { requests: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cost_usd: 0 },
  );
  return {
    object: 'usage',
    owner,
    start,
    end,
    data: rows.map((r) => ({
      day: r.day,
      model: r.model,
      requests: r.requests,
      prompt_tokens: r.promptTokens,
      completion_tokens: r.completionTokens,
      total_tokens: r.totalTokens,
      cost_usd: r.costUsd,
      cached_requests: r.cachedRequests,
    })),
    totals,
  };
}

/** Admin API (keys, usage) and the caller's own `/v1/usage`. */
export function registerAdminRoutes(app: FastifyInstance, opts: AdminRoutesOptions): void {
  const { modelIds } = opts;
  const withDoc = (doc: RouteDoc) => ({ config: { auth: 'admin' as const, doc } });

  const keyTags = ['Admin: keys'];
  app.post(
    '/admin/keys',
    withDoc({
      summary: 'Create an API key',
      tags: keyTags,
      body: createKeySchema,
      responses: { 201: { description: 'The key, with its secret (shown once)', schema: createdKeySchema } },
    }),
    async (req, reply) => {
      const b = parseBody(createKeySchema, req.body, 'with `owner`');
      const tier = parseTier(b.tier, opts.config) ?? opts.config.defaultTier;
      const limits = limitsOf(b.limits);
      const models = checkModels(b.models, modelIds());
      const { key, record } = await opts.keys.create({
        owner: b.owner,
        tier,
        ...(limits ? { limits } : {}),
        ...(models ? { models } : {}),
      });
      return reply.code(201).send({ ...keyView(record), key });
    },
  );

  app.get(
    '/admin/keys',
    withDoc({
      summary: 'List API keys',
      tags: keyTags,
      query: listKeysQuerySchema,
      responses: { 200: { description: 'The keys (never their secrets)', schema: keyListSchema } },
    }),
    async (req) => {
      const { owner } = parseQuery(listKeysQuerySchema, req.query);
      const list = await opts.keys.list(owner);
      return { object: 'list', data: list.map(keyView) };
    },
  );

  app.patch(
    '/admin/keys/:id',
    withDoc({
      summary: 'Change a key (tier, limits, models)',
      tags: keyTags,
      params: { id: 'The key id (key_...)' },
      body: updateKeySchema,
      responses: { 200: { description: 'The key', schema: apiKeySchema } },
    }),
    async (req) => {
      const { id } = req.params as { id: string };
      const b = parseBody(updateKeySchema, req.body, 'with `tier`, `limits` or `models`');
      const tier = parseTier(b.tier, opts.config);
      const limits = limitsOf(b.limits);
      const models = checkModels(b.models, modelIds());
      const rec = await opts.keys.update(id, {
        ...(tier ? { tier } : {}),
        ...(limits ? { limits } : {}),
        ...(models ? { models } : {}),
      });
      opts.auth.invalidate(rec.keyHash);
      return keyView(rec);
    },
  );

  app.delete(
    '/admin/keys/:id',
    withDoc({
      summary: 'Revoke a key',
      tags: keyTags,
      params: { id: 'The key id (key_...)' },
      responses: {
        200: { description: 'The revoked key', schema: apiKeySchema.extend({ deleted: z.literal(true) }) },
      },
    }),
    async (req) => {
      const { id } = req.params as { id: string };
      const rec = await opts.keys.revoke(id);
      opts.auth.invalidate(rec.keyHash);
      return { ...keyView(rec), deleted: true };
    },
  );

  app.get(
    '/admin/usage',
    withDoc({
      summary: "An owner's usage per day and model",
      tags: ['Admin: usage'],
      query: adminUsageQuerySchema,
      responses: { 200: { description: 'Daily totals', schema: usageSummarySchema } },
    }),
    async (req) => {
      const q = parseQuery(adminUsageQuerySchema, req.query);
      return usageSummary(opts.doc, opts.usageTable, q.owner, q);
    },
  );

  const ownUsage: RouteDoc = {
    summary: "The caller's usage per day and model",
    tags: ['Usage'],
    query: usageQuerySchema,
    responses: { 200: { description: 'Daily totals of the key owner', schema: usageSummarySchema } },
  };
  for (const url of ['/v1/usage', '/api/v1/usage']) {
    app.get(url, { config: { doc: ownUsage } }, async (req) =>
      usageSummary(opts.doc, opts.usageTable, req.principal!.owner, parseQuery(usageQuerySchema, req.query)),
    );
  }
}
