import { randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { SERVICE_VERSION } from './contract';
import { AuthenticationError, PermissionDeniedError } from './errors';
import { registerAdminConsoleRoutes } from './http/admin-console-routes';
import { registerAdminRoutes } from './http/admin-routes';
import { registerBasicRoutes } from './http/basic-routes';
import { registerChatRoutes } from './http/chat-routes';
import { installCors } from './http/cors';
import { registerEmbeddingsRoutes } from './http/embeddings-routes';
import {
  clientErrorHandler,
  collectRoutesFor405,
  frameworkErrors,
  installErrorHandling,
  rejectMissingHost,
} from './http/errors';
import { installJsonBodyParser } from './http/json-body';
import { collectRoutes, registerOpenApiRoutes } from './http/openapi';
import { requestRecord } from './http/request-log';
import { hashKey } from './keys/key-store';
import type { Runtime } from './runtime';
import './http/context';

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** Extra route groups later modules add (async jobs, assistant). */
export type RoutePlugin = (app: FastifyInstance, rt: Runtime) => void;

/**
 * Node's own settings that make `requestTimeout` work. Fastify sets it after creating the
 * server, where Node no longer lowers `headersTimeout` (60 s) to it, and Node only enforces a
 * request deadline when the headers' one is not longer; it checks both on an interval (30 s by
 * default), kept below the timeout here.
 */
function httpServerTimeouts(requestTimeoutMs: number) {
  // A request without Host is answered by rejectMissingHost (with a body), not by Node.
  if (requestTimeoutMs <= 0) return { requireHostHeader: false };
  return {
    requireHostHeader: false,
    headersTimeout: Math.min(60_000, requestTimeoutMs),
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(requestTimeoutMs / 4))),
  };
}

/** Build the HTTP app over a runtime (no listen: tests inject or listen themselves). */
export function buildApp(rt: Runtime, plugins: RoutePlugin[] = []): FastifyInstance {
  const { env, telemetry } = rt;
  // Hashed once: every request hashes its token once and compares in constant time.
  const adminHash = env.adminApiKey ? Buffer.from(hashKey(env.adminApiKey), 'hex') : null;
  const app = Fastify({
    logger: false,
    bodyLimit: env.bodyLimitBytes,
    // Bounds how long a client may take to send its request (a trickled body holds a
    // connection and its buffer otherwise); answered 408. It does not limit how long a
    // response (a stream) may take once the request is in.
    requestTimeout: env.requestTimeoutMs,
    http: httpServerTimeouts(env.requestTimeoutMs),
    keepAliveTimeout: env.keepAliveTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Errors Fastify and Node's HTTP parser answer before any route or hook runs (a bad
    // percent-encoding, an over-long path parameter, oversized headers, malformed HTTP) get
    // OpenAI-style bodies too.
    frameworkErrors,
    clientErrorHandler,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID_RE.test(given)
        ? given
        : `req_${randomUUID().replace(/-/g, '')}`;
    },
  });

  // Before every hook: a preflight is answered ahead of authentication.
  installCors(app, env.corsOrigins ?? rt.config.cors.allowedOrigins);
  installJsonBodyParser(app);

  app.decorateRequest('principal', null);
  app.decorateRequest('facts', null as never);
  app.addHook('onRequest', async (req, reply) => {
    req.facts = {};
    reply.header('x-request-id', req.id);
    if (rt.isDraining()) reply.header('connection', 'close');
  });
  app.addHook('onRequest', rejectMissingHost);

  // Auth runs before the body is read: an unauthenticated client cannot make us parse 1 MiB.
  app.addHook('onRequest', async (req) => {
    // A mistyped URL answers 404 with or without a key (as OpenAI's API does), not 401.
    if (req.is404) return;
    const mode = req.routeOptions.config.auth ?? 'user';
    if (mode === 'none') return;
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) {
      throw new AuthenticationError(
        "You didn't provide an API key. Send it in the Authorization header: 'Authorization: Bearer YOUR_KEY'.",
      );
    }
    const hash = hashKey(m[1] as string);
    const isAdmin = adminHash !== null && timingSafeEqual(Buffer.from(hash, 'hex'), adminHash);
    if (mode === 'admin') {
      if (isAdmin) return;
      const user = await rt.auth.authenticateHash(hash);
      if (user)
        throw new PermissionDeniedError('This route needs the admin key; user API keys cannot call it.', {
          code: 'admin_only',
        });
      throw new AuthenticationError();
    }
    if (isAdmin)
      throw new PermissionDeniedError('The admin key only works on /admin routes; use a user API key here.', {
        code: 'admin_key_not_allowed',
      });
    const principal = await rt.auth.authenticateHash(hash);
    if (!principal) throw new AuthenticationError();
    req.principal = principal;
  });

  app.addHook('onResponse', async (req, reply) => {
    if (!req.facts || req.facts.logged) return;
    telemetry.request(
      requestRecord(req, { status: reply.statusCode, latencyMs: Math.round(reply.elapsedTime * 10) / 10 }),
    );
  });

  installErrorHandling(app, telemetry, env.bodyLimitBytes);
  const routes = collectRoutes(app);
  const finishRoutes = collectRoutesFor405(app);
  registerOpenApiRoutes(app, routes, {
    title: 'Tollgate',
    version: SERVICE_VERSION,
    description:
      'An OpenAI-compatible LLM API with keys, limits, budgets, cache, usage, async jobs and a support assistant.',
  });

  registerBasicRoutes(app, { router: rt.router, telemetry, checks: rt.checks, isDraining: rt.isDraining });
  registerChatRoutes(app, {
    chat: rt.chat,
    telemetry,
    pingIntervalMs: env.pingIntervalMs ?? rt.config.streaming.pingIntervalMs,
    logContent: env.logContent,
  });
  registerEmbeddingsRoutes(app, { embeddings: rt.embeddings, logContent: env.logContent });
  registerAdminRoutes(app, {
    keys: rt.keys,
    auth: rt.auth,
    config: rt.config,
    doc: rt.doc,
    usageTable: env.tables.usage,
    modelIds: () => new Set(rt.router.list().map((e) => e.config.id)),
  });
  registerAdminConsoleRoutes(app, rt);
  for (const p of plugins) p(app, rt);
  finishRoutes();
  return app;
}
