/**
 * The admin API the operator console reads (and anyone with the admin key may call): the
 * catalogue and tiers, each key's live standing against its limits, usage series by hour or
 * day per owner, key and model (JSON or CSV), the overview of the last hour and day, and
 * short-lived playground keys.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { BadRequestError, NotFoundError, ServiceUnavailableError } from '../errors';
import { type KeyRecord, keyView, toPrincipal } from '../keys/key-store';
import type { Runtime } from '../runtime';
import {
  DIMENSIONS,
  type Dimension,
  type Granularity,
  type HourlyUsage,
  queryHourlyUsage,
  type SeriesPoint,
  toSeries,
  totalsOf,
} from '../usage/usage-series';
import { parseBody, parseQuery } from '../validation';
import {
  catalogueSchema,
  overviewSchema,
  playgroundKeyResponseSchema,
  playgroundKeySchema,
  seriesQuerySchema,
  seriesSchema,
  standingListSchema,
  standingQuerySchema,
  standingSchema,
} from './admin-console-schemas';
import type { RouteDoc } from './openapi';

const KEY_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Longest ranges one series request may span. */
export const MAX_SERIES_HOURS = 31 * 24;
export const MAX_SERIES_DAYS = 92;

/** Owner of the keys `POST /admin/playground/keys` mints. */
export const PLAYGROUND_OWNER = 'playground';
/** How long a playground key lives unless the request says otherwise (bounds: the body schema). */
const PLAYGROUND_TTL = 3600;

const withDoc = (doc: RouteDoc) => ({ config: { auth: 'admin' as const, doc } });

/** Owners whose usage partitions are read at once (one query each): no burst of thousands. */
const OWNER_READS_IN_FLIGHT = 8;

/** `f` over `items`, at most `limit` at a time, results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

function isLive(r: KeyRecord, now: number): boolean {
  return !r.revoked && (r.expiresAt === undefined || Date.parse(r.expiresAt) > now);
}

/** Epoch ms of the start of a UTC hour written `YYYY-MM-DDTHH` (or any ISO time within it). */
function parseHour(v: unknown, param: string): number {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d{1,3})?)?)?Z?)?$/.test(v)) {
    throw new BadRequestError(`'${param}' must be an hour YYYY-MM-DDTHH (UTC) or a date YYYY-MM-DD.`, {
      param,
    });
  }
  const iso =
    v.length === 10 ? `${v}T00:00:00Z` : v.length === 13 ? `${v}:00:00Z` : v.endsWith('Z') ? v : `${v}Z`;
  const t = Date.parse(iso);
  // The round trip refuses days and hours a calendar does not have (2026-02-30, hour 24).
  const given = v.slice(0, 13);
  if (Number.isNaN(t) || new Date(t).toISOString().slice(0, given.length) !== given) {
    throw new BadRequestError(`'${param}' is not a calendar date and hour.`, { param });
  }
  return Math.floor(t / HOUR_MS) * HOUR_MS;
}

const hourString = (ms: number) => new Date(ms).toISOString().slice(0, 13);

interface SeriesQuery {
  granularity: Granularity;
  startMs: number;
  endMs: number;
  owner: string | undefined;
  keyId: string | undefined;
  model: string | undefined;
  groupBy: Dimension[];
  format: 'json' | 'csv';
}

function parseSeriesQuery(query: unknown, now: number): SeriesQuery {
  const q = parseQuery(seriesQuerySchema, query);
  const granularity = q.granularity ?? 'hour';
  const thisHour = Math.floor(now / HOUR_MS) * HOUR_MS;
  let endMs: number;
  let startMs: number;
  if (granularity === 'hour') {
    endMs = q.end === undefined || q.end === '' ? thisHour : parseHour(q.end, 'end');
    startMs = q.start === undefined || q.start === '' ? endMs - 23 * HOUR_MS : parseHour(q.start, 'start');
  } else {
    const day = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;
    endMs = q.end === undefined || q.end === '' ? day(now) : day(parseHour(q.end, 'end'));
    startMs =
      q.start === undefined || q.start === '' ? endMs - 29 * DAY_MS : day(parseHour(q.start, 'start'));
    // The last day's hours, up to its last one.
    endMs += DAY_MS - HOUR_MS;
  }
  if (startMs > endMs) throw new BadRequestError("'start' must not be after 'end'.", { param: 'start' });
  const span =
    granularity === 'hour'
      ? (endMs - startMs) / HOUR_MS + 1
      : Math.round((endMs - startMs + HOUR_MS) / DAY_MS);
  const max = granularity === 'hour' ? MAX_SERIES_HOURS : MAX_SERIES_DAYS;
  if (span > max) {
    throw new BadRequestError(`A series spans at most ${max} ${granularity}s; this one spans ${span}.`, {
      param: 'start',
    });
  }
  const owner = q.owner || undefined;
  const keyId = q.key_id || undefined;
  const model = q.model || undefined;
  let groupBy: Dimension[] = [...DIMENSIONS];
  if (q.group_by !== undefined) {
    groupBy = [];
    for (const d of q.group_by.split(',').filter((x) => x !== '')) {
      if (!(DIMENSIONS as readonly string[]).includes(d))
        throw new BadRequestError(`'group_by' takes ${DIMENSIONS.join(', ')}; got '${d}'.`, {
          param: 'group_by',
        });
      if (!groupBy.includes(d as Dimension)) groupBy.push(d as Dimension);
    }
  }
  return { granularity, startMs, endMs, owner, keyId, model, groupBy, format: q.format ?? 'json' };
}

/** A CSV field: quoted when needed, and never read as a formula by a spreadsheet. */
function csvField(v: string | number | undefined): string {
  if (v === undefined) return '';
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n']/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const CSV_COLUMNS = [
  'period',
  'owner',
  'key_id',
  'model',
  'requests',
  'errors',
  'prompt_tokens',
  'completion_tokens',
  'total_tokens',
  'cached_tokens',
  'cost_usd',
  'cached_requests',
] as const;

export function seriesCsv(points: readonly SeriesPoint[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const p of points) lines.push(CSV_COLUMNS.map((c) => csvField(p[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** Register the console's admin API over the runtime. */
export function registerAdminConsoleRoutes(app: FastifyInstance, rt: Runtime): void {
  const { keys, limiter, config, doc, router } = rt;
  const usageTable = rt.env.tables.usage;

  const standingOf = async (rec: KeyRecord, now: number) => {
    const p = toPrincipal(rec, config);
    let s: Awaited<ReturnType<typeof limiter.standing>>;
    try {
      s = await limiter.standing(rec.id, now);
    } catch (err) {
      rt.telemetry.logger.warn('limiter counters unavailable', { error: (err as Error).message });
      throw new ServiceUnavailableError('The rate limiter store is unreachable; retry shortly.', {
        code: 'limiter_unavailable',
        retryAfterSeconds: 2,
      });
    }
    // The limiter keeps per-minute counters only for keys with that limit.
    return {
      object: 'key.standing',
      key_id: rec.id,
      owner: rec.owner,
      tier: rec.tier,
      limits: p.limits,
      requests_this_minute: p.limits.rpm ? s.requestsThisMinute : null,
      tokens_this_minute: p.limits.tpm ? s.tokensThisMinute : null,
      tokens_today: s.tokensToday,
      spend_this_month_usd: Math.round(s.spendThisMonthUsd * 1e6) / 1e6,
      at: new Date(s.at).toISOString(),
    };
  };

  const tags = ['Admin: console'];
  app.get(
    '/admin/catalogue',
    withDoc({
      summary: 'Tiers and models, for forms',
      tags,
      responses: {
        200: { description: 'Tiers, the default tier, models with prices', schema: catalogueSchema },
      },
    }),
    async () => ({
      object: 'catalogue',
      default_tier: config.defaultTier,
      tiers: Object.fromEntries(
        Object.entries(config.tiers).map(([name, t]) => [
          name,
          { limits: t.limits, models: t.models, max_tokens_cap: t.maxTokensCap ?? null },
        ]),
      ),
      models: router.list().map((e) => ({
        id: e.config.id,
        endpoints: e.config.endpoints,
        context_window: e.config.contextWindow,
        pricing: {
          input_per_1m: e.config.pricing.input,
          output_per_1m: e.config.pricing.output,
          cached_input_per_1m: e.config.pricing.cachedInput ?? e.config.pricing.input,
        },
        simulated: e.config.provider === 'simulator',
      })),
      playground_owner: PLAYGROUND_OWNER,
    }),
  );

  app.get(
    '/admin/standing',
    withDoc({
      summary: "Every live key's standing against its limits",
      description:
        'Requests and tokens this minute (the sliding window admission uses), tokens today, spend this month.',
      tags,
      query: standingQuerySchema,
      responses: { 200: { description: 'One entry per live key', schema: standingListSchema } },
    }),
    async (req) => {
      const { owner } = parseQuery(standingQuerySchema, req.query);
      const now = Date.now();
      const live = (await keys.list(owner || undefined)).filter((r) => isLive(r, now));
      return { object: 'list', data: await Promise.all(live.map((r) => standingOf(r, now))) };
    },
  );

  app.get(
    '/admin/keys/:id/standing',
    withDoc({
      summary: "One key's standing against its limits",
      tags,
      params: { id: 'The key id (key_...)' },
      responses: { 200: { description: 'The standing', schema: standingSchema } },
    }),
    async (req) => {
      const { id } = req.params as { id: string };
      const rec = KEY_ID_RE.test(id) ? await keys.getById(id) : undefined;
      if (!rec)
        throw new NotFoundError(`No API key with id '${id}'.`, { param: 'id', code: 'key_not_found' });
      return standingOf(rec, Date.now());
    },
  );

  /** Hourly rows of the owners asked for (every owner with a key when none is named). */
  const hourlyRows = async (startMs: number, endMs: number, owner?: string, keyId?: string) => {
    let owners: string[];
    if (owner) owners = [owner];
    else if (keyId) {
      const rec = await keys.getById(keyId);
      owners = rec ? [rec.owner] : [];
    } else owners = [...new Set((await keys.list()).map((r) => r.owner))];
    const perOwner = await mapLimit(owners, OWNER_READS_IN_FLIGHT, (o) =>
      queryHourlyUsage(doc, usageTable, o, hourString(startMs), hourString(endMs)),
    );
    return perOwner.flat();
  };

  const seriesDoc: RouteDoc = {
    summary: 'Usage by hour or day per owner, key and model',
    tags,
    query: seriesQuerySchema,
    responses: {
      200: { description: 'The points (JSON), or a CSV download with format=csv', schema: seriesSchema },
    },
  };
  app.get('/admin/usage/series', withDoc(seriesDoc), async (req, reply: FastifyReply) => {
    const s = parseSeriesQuery(req.query, Date.now());
    const rows = (await hourlyRows(s.startMs, s.endMs, s.owner, s.keyId)).filter(
      (r) => (!s.keyId || r.keyId === s.keyId) && (!s.model || r.model === s.model),
    );
    const data = toSeries(rows, s.granularity, s.groupBy);
    const start = s.granularity === 'hour' ? hourString(s.startMs) : hourString(s.startMs).slice(0, 10);
    const end = s.granularity === 'hour' ? hourString(s.endMs) : hourString(s.endMs).slice(0, 10);
    if (s.format === 'csv') {
      return reply
        .type('text/csv; charset=utf-8')
        .header(
          'content-disposition',
          `attachment; filename="tollgate-usage-${s.granularity}-${start}-${end}.csv"`,
        )
        .send(seriesCsv(data));
    }
    const { latency_ms: _l, ttft_ms: _t, ...totals } = totalsOf(rows);
    return {
      object: 'usage.series',
      granularity: s.granularity,
      start,
      end,
      group_by: s.groupBy,
      data,
      totals,
    };
  });

  const overviewDoc: RouteDoc = {
    summary: 'This hour and the last 24 hours, over every owner',
    tags,
    responses: { 200: { description: 'Totals with latency and TTFT percentiles', schema: overviewSchema } },
  };
  app.get('/admin/overview', withDoc(overviewDoc), async () => {
    const now = Date.now();
    const thisHour = Math.floor(now / HOUR_MS) * HOUR_MS;
    const dayStart = thisHour - 23 * HOUR_MS;
    const rows: HourlyUsage[] = await hourlyRows(dayStart, thisHour);
    const current = hourString(thisHour);
    return {
      object: 'usage.overview',
      at: new Date(now).toISOString(),
      hour: { since: new Date(thisHour).toISOString(), ...totalsOf(rows.filter((r) => r.hour === current)) },
      day: { since: new Date(dayStart).toISOString(), ...totalsOf(rows) },
      series: toSeries(rows, 'hour', []),
    };
  });

  const playgroundDoc: RouteDoc = {
    summary: 'A short-lived key for the console playground',
    description: `Owner \`${PLAYGROUND_OWNER}\`, the default tier; refused from \`expires_at\` on, to the millisecond.`,
    tags,
    body: playgroundKeySchema,
    responses: {
      201: { description: 'The key, with its secret (shown once)', schema: playgroundKeyResponseSchema },
    },
  };
  app.post('/admin/playground/keys', withDoc(playgroundDoc), async (req, reply) => {
    // No body at all is the same as {}: every field has a default.
    const b = parseBody(playgroundKeySchema, req.body ?? {}, 'with `ttl_seconds`');
    const ttl = b.ttl_seconds ?? PLAYGROUND_TTL;
    const { key, record } = await keys.create({
      owner: PLAYGROUND_OWNER,
      tier: config.defaultTier,
      expiresAt: new Date(Date.now() + ttl * 1000),
    });
    return reply.code(201).send({ ...keyView(record), key });
  });
}
