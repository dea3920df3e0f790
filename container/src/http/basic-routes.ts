import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isAllowed } from '../chat/prepare';
import { ModelNotFoundError } from '../errors';
import type { ModelEntry, ModelRouter } from '../providers/router';
import type { DependencyCheck } from '../telemetry/health';
import type { Telemetry } from '../telemetry/telemetry';
import { healthSchema, modelListSchema, modelSchema, readySchema } from './api-schemas';
import type { RouteDoc } from './openapi';

export interface BasicRoutesOptions {
  router: ModelRouter;
  telemetry: Telemetry;
  checks: DependencyCheck[];
  isDraining: () => boolean;
}

async function runCheck(
  c: DependencyCheck,
): Promise<{ name: string; status: 'ok' | 'error'; latency_ms: number; error?: string }> {
  const t0 = performance.now();
  const signal = AbortSignal.timeout(2000);
  try {
    await c.check(signal);
    return { name: c.name, status: 'ok', latency_ms: Math.round((performance.now() - t0) * 10) / 10 };
  } catch (err) {
    return {
      name: c.name,
      status: 'error',
      latency_ms: Math.round(performance.now() - t0),
      error: (err as Error).message,
    };
  }
}

/** `/v1/models`, `/health`, `/ready`, `/health/detailed`, `/metrics`. */
export function registerBasicRoutes(app: FastifyInstance, opts: BasicRoutesOptions): void {
  const view = (e: ModelEntry) => ({
    id: e.config.id,
    object: 'model' as const,
    created: e.created,
    owned_by: e.config.ownedBy,
    context_window: e.config.contextWindow,
    /** What the model serves: `chat` (chat completions, responses) and/or `embeddings`. */
    endpoints: e.config.endpoints,
    ...(e.config.dimensions !== undefined ? { dimensions: e.config.dimensions } : {}),
    pricing: {
      input_per_1m: e.config.pricing.input,
      output_per_1m: e.config.pricing.output,
      cached_input_per_1m: e.config.pricing.cachedInput ?? e.config.pricing.input,
      cache_write_per_1m: e.config.pricing.cacheWrite ?? e.config.pricing.input,
    },
    ...(e.config.provider === 'simulator' ? { simulated: true } : {}),
  });
  const models = async (req: FastifyRequest) => ({
    object: 'list',
    data: opts.router
      .list()
      .filter((e) => !req.principal || isAllowed(req.principal, e.config.id))
      .map(view),
  });
  const listDoc: RouteDoc = {
    summary: 'List models',
    description: 'The catalogue models this key may use, with what each serves (`endpoints`) and its prices.',
    tags: ['Models'],
    responses: { 200: { description: 'The models', schema: modelListSchema } },
  };
  for (const url of ['/v1/models', '/api/v1/models']) app.get(url, { config: { doc: listDoc } }, models);

  // One model; a model the key may not use answers exactly like one that does not exist.
  // A wildcard, not `:id`: model ids may hold `/` (`meta-llama/Llama-3.1-8B`) and `:` (Bedrock ids).
  const model = async (req: FastifyRequest<{ Params: { '*': string } }>) => {
    const id = req.params['*'];
    const e = opts.router.get(id);
    if (!e || (req.principal && !isAllowed(req.principal, e.config.id))) throw new ModelNotFoundError(id);
    return view(e);
  };
  for (const url of ['/v1/models/*', '/api/v1/models/*']) {
    const doc: RouteDoc = {
      summary: 'Retrieve a model',
      tags: ['Models'],
      path: url.replace('*', '{id}'),
      params: { id: 'A catalogue id (may contain / and :)' },
      responses: { 200: { description: 'The model', schema: modelSchema } },
    };
    app.get(url, { config: { doc } }, model);
  }

  // Liveness: no dependency is consulted, so one Redis blip cannot pull every task out of the ALB.
  const healthDoc: RouteDoc = {
    summary: 'Liveness',
    description:
      'What the load balancer checks: 200 while the process serves, 503 once it drains. No dependency is consulted.',
    tags: ['Health'],
    responses: {
      200: { description: 'Serving', schema: healthSchema },
      503: { description: 'Draining', schema: healthSchema },
    },
  };
  app.get('/health', { config: { auth: 'none', doc: healthDoc } }, async (_req, reply) => {
    if (opts.isDraining()) return reply.code(503).send({ status: 'draining' });
    return { status: 'ok' };
  });

  const detailed = async (_req: unknown, reply: import('fastify').FastifyReply) => {
    const results = await Promise.all(opts.checks.map(runCheck));
    const load = opts.router.load();
    const ok = results.every((r) => r.status === 'ok') && !opts.isDraining();
    return reply.code(ok ? 200 : 503).send({
      status: opts.isDraining() ? 'draining' : ok ? 'ready' : 'degraded',
      dependencies: results,
      in_flight: load.inFlight,
      queued: load.queued,
    });
  };
  const readyDoc: RouteDoc = {
    summary: 'Readiness',
    description:
      'Each dependency (Redis, DynamoDB, upstreams, the model catalogue) with its latency; 503 when one fails.',
    tags: ['Health'],
    responses: {
      200: { description: 'Ready', schema: readySchema },
      503: { description: 'Degraded or draining', schema: readySchema },
    },
  };
  app.get('/ready', { config: { auth: 'none', doc: readyDoc } }, detailed);
  app.get('/health/detailed', { config: { auth: 'none', doc: readyDoc } }, detailed);

  // Admin key required: the series reveal spend and traffic.
  const metricsDoc: RouteDoc = {
    summary: 'Prometheus metrics',
    tags: ['Health'],
    responses: { 200: { description: 'Prometheus text exposition format' } },
  };
  app.get('/metrics', { config: { auth: 'admin', doc: metricsDoc } }, async (_req, reply) => {
    reply.header('content-type', opts.telemetry.registry.contentType);
    return opts.telemetry.prometheus();
  });
}
