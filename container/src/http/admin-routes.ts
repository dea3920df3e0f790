import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { FastifyInstance } from 'fastify';
import { isObject } from '../chat/validate';
import { MAX_BUDGET_USD, type ServiceConfig, tierOf } from '../config/service-config';
import { BadRequestError } from '../errors';
import { type Authenticator, type KeyStore, keyView } from '../keys/key-store';
import { roundUsd } from '../usage/pricing';
import { queryDailyUsage } from '../usage/usage-recorder';

export interface AdminRoutesOptions {
  keys: KeyStore;
  auth: Authenticator;
  config: ServiceConfig;
  doc: DynamoDBDocumentClient;
  usageTable: string;
  /** Catalogue ids, to refuse unknown models in a key's allow-list. */
  modelIds: () => Set<string>;
}

const OWNER_RE = /^[A-Za-z0-9._@:-]{1,128}$/;
const LIMIT_FIELDS = ['rpm', 'tpm', 'daily_tokens', 'monthly_budget_usd'] as const;

function parseLimits(v: unknown): Record<string, number> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw new BadRequestError("'limits' must be an object.", { param: 'limits' });
  const out: Record<string, number> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!(LIMIT_FIELDS as readonly string[]).includes(k)) {
      throw new BadRequestError(`Unknown limit '${k}'; expected one of ${LIMIT_FIELDS.join(', ')}.`, {
        param: `limits.${k}`,
      });
    }
    const integer = k !== 'monthly_budget_usd';
    const max = integer ? Number.MAX_SAFE_INTEGER : MAX_BUDGET_USD;
    if (
      typeof val !== 'number' ||
      !Number.isFinite(val) ||
      val <= 0 ||
      val > max ||
      (integer && !Number.isInteger(val))
    ) {
      throw new BadRequestError(
        `'limits.${k}' must be a positive ${integer ? 'integer' : 'number'} up to ${max.toLocaleString('en-US')}.`,
        { param: `limits.${k}` },
      );
    }
    out[k] = val;
  }
  return out;
}

function parseModels(v: unknown, cfgModels: Set<string>): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((m) => typeof m === 'string')) {
    throw new BadRequestError("'models' must be an array of model ids.", { param: 'models' });
  }
  v.forEach((m, i) => {
    if (m !== '*' && cfgModels.size > 0 && !cfgModels.has(m)) {
      throw new BadRequestError(`Unknown model '${m}'.`, { param: `models[${i}]` });
    }
  });
  return v as string[];
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
  const admin = { config: { auth: 'admin' as const } };

  app.post('/admin/keys', admin, async (req, reply) => {
    const b = req.body;
    if (!isObject(b)) throw new BadRequestError('The request body must be a JSON object.');
    if (typeof b.owner !== 'string' || !OWNER_RE.test(b.owner)) {
      throw new BadRequestError("'owner' is required: 1-128 characters of [A-Za-z0-9._@:-].", {
        param: 'owner',
      });
    }
    for (const k of Object.keys(b)) {
      if (!['owner', 'tier', 'limits', 'models'].includes(k))
        throw new BadRequestError(`Unknown field '${k}'.`, { param: k });
    }
    const tier = parseTier(b.tier, opts.config) ?? opts.config.defaultTier;
    const limits = parseLimits(b.limits);
    const models = parseModels(b.models, modelIds());
    const { key, record } = await opts.keys.create({
      owner: b.owner,
      tier,
      ...(limits ? { limits } : {}),
      ...(models ? { models } : {}),
    });
    return reply.code(201).send({ ...keyView(record), key });
  });

  app.get('/admin/keys', admin, async (req) => {
    const owner = (req.query as Record<string, unknown>).owner;
    if (owner !== undefined && (typeof owner !== 'string' || !OWNER_RE.test(owner))) {
      throw new BadRequestError("'owner' must be 1-128 characters of [A-Za-z0-9._@:-].", { param: 'owner' });
    }
    const list = await opts.keys.list(owner as string | undefined);
    return { object: 'list', data: list.map(keyView) };
  });

  app.patch('/admin/keys/:id', admin, async (req) => {
    const { id } = req.params as { id: string };
    const b = req.body;
    if (!isObject(b)) throw new BadRequestError('The request body must be a JSON object.');
    for (const k of Object.keys(b)) {
      if (!['tier', 'limits', 'models'].includes(k))
        throw new BadRequestError(`Unknown or read-only field '${k}'.`, { param: k });
    }
    const tier = parseTier(b.tier, opts.config);
    const limits = parseLimits(b.limits);
    const models = parseModels(b.models, modelIds());
    const rec = await opts.keys.update(id, {
      ...(tier ? { tier } : {}),
      ...(limits ? { limits } : {}),
      ...(models ? { models } : {}),
    });
    opts.auth.invalidate(rec.keyHash);
    return keyView(rec);
  });

  app.delete('/admin/keys/:id', admin, async (req) => {
    const { id } = req.params as { id: string };
    const rec = await opts.keys.revoke(id);
    opts.auth.invalidate(rec.keyHash);
    return { ...keyView(rec), deleted: true };
  });

  app.get('/admin/usage', admin, async (req) => {
    const q = req.query as Record<string, unknown>;
    if (typeof q.owner !== 'string' || !OWNER_RE.test(q.owner)) {
      throw new BadRequestError("'owner' is required.", { param: 'owner' });
    }
    return usageSummary(opts.doc, opts.usageTable, q.owner, q);
  });

  for (const url of ['/v1/usage', '/api/v1/usage']) {
    app.get(url, async (req) =>
      usageSummary(opts.doc, opts.usageTable, req.principal!.owner, req.query as Record<string, unknown>),
    );
  }
}
