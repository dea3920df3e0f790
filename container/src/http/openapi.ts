/**
 * The OpenAPI 3.1 document, generated from the routes the app registers: each route declares a
 * {@link RouteDoc} in its `config.doc`, with the zod schemas that validate its body and query
 * (zod 4's JSON Schema output is OpenAPI 3.1's dialect). A route without one fails the build of
 * the document, so the document cannot drift from the server. Served at `/openapi.json`, and
 * rendered with swagger-ui (from npm, served by the app itself) at `/docs`.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { NotFoundError } from '../errors';

/** One response of an operation. */
export interface ResponseDoc {
  description: string;
  schema?: z.ZodType;
  /** A `text/event-stream` answer (its events described in `description`). */
  sse?: boolean;
  /** Response headers worth naming. */
  headers?: readonly string[];
}

/** What a route tells the document about itself. */
export interface RouteDoc {
  summary: string;
  description?: string;
  tags: readonly string[];
  /** The path as the document shows it, when the route's own is a wildcard (`/v1/models/{id}`). */
  path?: string;
  /** Path parameters: name -> description. */
  params?: Readonly<Record<string, string>>;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Request headers that change what the call does (Idempotency-Key, Cache-Control). */
  headers?: Readonly<Record<string, string>>;
  responses: Readonly<Record<number, ResponseDoc>>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** This route's entry in the OpenAPI document. */
    doc?: RouteDoc;
    /** Machinery, not API (405 answers, the CORS preflight): left out of the document. */
    internal?: boolean;
  }
}

/** A route as the app registered it. */
export interface RegisteredRoute {
  method: string;
  url: string;
  auth: 'user' | 'admin' | 'none';
  doc: RouteDoc | undefined;
  internal: boolean;
}

/** Collects routes as they are added (call before registering any). */
export function collectRoutes(app: FastifyInstance): RegisteredRoute[] {
  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (r) => {
    const methods = (Array.isArray(r.method) ? r.method : [r.method]).filter((m) => m !== 'HEAD');
    const config = (r.config ?? {}) as { auth?: RegisteredRoute['auth']; doc?: RouteDoc; internal?: boolean };
    // The CORS plugin's catch-all preflight route is machinery too.
    const internal = config.internal === true || (r.url === '*' && methods.every((m) => m === 'OPTIONS'));
    for (const method of methods)
      routes.push({ method, url: r.url, auth: config.auth ?? 'user', doc: config.doc, internal });
  });
  return routes;
}

/** `/v1/chat/async/:id` -> `/v1/chat/async/{id}`. */
export function templatePath(url: string): string {
  return url.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
}

export const errorSchema = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.string().meta({
        description:
          'invalid_request_error, requests, insufficient_quota, server_error, upstream_error, timeout',
      }),
      param: z.string().nullable().meta({ description: 'The request field at fault, e.g. messages[0].role' }),
      code: z.string().nullable(),
    }),
  })
  .meta({ description: "OpenAI's error shape: every 4xx and 5xx answers with it." });

const ERROR_STATUSES: Readonly<Record<number, string>> = {
  400: 'Bad request: `param` names the field.',
  401: 'No key, or an unknown or revoked key (`invalid_api_key`).',
  403: 'The key may not do this (`model_not_allowed`, `admin_only`).',
  404: 'Not found.',
  413: 'Body larger than the limit.',
  415: 'Not `application/json`.',
  429: 'Rate limit, token quota or budget (`rate_limit_exceeded`, `insufficient_quota`), with Retry-After.',
  500: 'A bug: logged with the request id.',
  502: 'The upstream failed.',
  503: 'Busy, or a dependency is unavailable (Retry-After).',
  504: 'The upstream timed out.',
};

/** Statuses every operation of a kind may answer, beyond its own. */
function standardErrors(route: RegisteredRoute): number[] {
  const out = route.method === 'GET' || route.method === 'DELETE' ? [404, 500] : [400, 413, 415, 500];
  if (route.auth !== 'none') out.push(401);
  if (route.auth === 'admin') out.push(403);
  return out;
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const s = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
    reused: 'inline',
  }) as Record<string, unknown>;
  delete s['$schema'];
  return s;
}

/** The OpenAPI 3.1 document for the registered routes. Throws naming every undocumented route. */
export function buildOpenApiDocument(
  routes: readonly RegisteredRoute[],
  info: { title: string; version: string; description: string },
): Record<string, unknown> {
  const missing = routes.filter((r) => !r.internal && !r.doc).map((r) => `${r.method} ${r.url}`);
  const wildcards = routes
    .filter((r) => !r.internal && r.doc && r.url.includes('*') && !r.doc.path)
    .map((r) => `${r.method} ${r.url}`);
  if (missing.length || wildcards.length) {
    throw new Error(
      [
        missing.length ? `Routes without an OpenAPI entry (config.doc): ${missing.join(', ')}` : '',
        wildcards.length ? `Wildcard routes without doc.path: ${wildcards.join(', ')}` : '',
      ]
        .filter(Boolean)
        .join('\n'),
    );
  }
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    if (r.internal || !r.doc) continue;
    const d = r.doc;
    const path = d.path ?? templatePath(r.url);
    const params = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
    const parameters: unknown[] = params.map((name) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string' },
      ...(d.params?.[name] ? { description: d.params[name] } : {}),
    }));
    if (d.query) {
      const q = jsonSchema(d.query, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(q.properties ?? {}))
        parameters.push({ name, in: 'query', required: q.required?.includes(name) ?? false, schema });
    }
    for (const [name, description] of Object.entries(d.headers ?? {}))
      parameters.push({ name, in: 'header', required: false, description, schema: { type: 'string' } });
    const responses: Record<string, unknown> = {};
    for (const [status, resp] of Object.entries(d.responses)) {
      const content = resp.sse
        ? { 'text/event-stream': { schema: { type: 'string', description: 'Server-sent events' } } }
        : resp.schema
          ? { 'application/json': { schema: jsonSchema(resp.schema, 'output') } }
          : undefined;
      responses[status] = {
        description: resp.description,
        ...(content ? { content } : {}),
        ...(resp.headers?.length
          ? { headers: Object.fromEntries(resp.headers.map((h) => [h, { schema: { type: 'string' } }])) }
          : {}),
      };
    }
    for (const status of standardErrors(r)) {
      responses[String(status)] ??= { $ref: `#/components/responses/E${status}` };
    }
    const op: Record<string, unknown> = {
      operationId: operationId(r.method, path),
      summary: d.summary,
      ...(d.description ? { description: d.description } : {}),
      tags: [...d.tags],
      security: r.auth === 'none' ? [] : [{ [r.auth === 'admin' ? 'adminKey' : 'apiKey']: [] }],
      ...(parameters.length ? { parameters } : {}),
      ...(d.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: jsonSchema(d.body, 'input') } },
            },
          }
        : {}),
      responses,
    };
    paths[path] ??= {};
    (paths[path] as Record<string, unknown>)[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info,
    servers: [{ url: '/' }],
    paths,
    components: {
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          description: 'A user API key (`Authorization: Bearer sk-tg-...`).',
        },
        adminKey: {
          type: 'http',
          scheme: 'bearer',
          description: 'The admin key (`TOLLGATE_ADMIN_API_KEY`).',
        },
      },
      schemas: { Error: jsonSchema(errorSchema, 'output') },
      responses: Object.fromEntries(
        Object.entries(ERROR_STATUSES).map(([status, description]) => [
          `E${status}`,
          {
            description,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
          },
        ]),
      ),
    },
  };
}

function operationId(method: string, path: string): string {
  const words = path
    .split('/')
    .filter(Boolean)
    .map((p) =>
      p
        .replace(/[{}]/g, '')
        .replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : '')),
    );
  return [method.toLowerCase(), ...words.map((w) => w.charAt(0).toUpperCase() + w.slice(1))].join('');
}

const SWAGGER_FILES: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
};

const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tollgate API reference</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="/docs/assets/init.js"></script></body></html>`;

// A file, not an inline script: the page's Content-Security-Policy allows scripts from self only.
const DOCS_INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout' });`;

const DOCS_CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

const docOf = (summary: string, description: string, type: string): RouteDoc => ({
  summary,
  description,
  tags: ['Meta'],
  responses: { 200: { description: type } },
});

/**
 * `GET /openapi.json` and `GET /docs` (no key needed, like OpenAI's published spec). The
 * document is built once, on the first request, from the routes registered by then.
 */
export function registerOpenApiRoutes(
  app: FastifyInstance,
  routes: readonly RegisteredRoute[],
  info: { title: string; version: string; description: string },
): void {
  let doc: string | undefined;
  app.get(
    '/openapi.json',
    {
      config: {
        auth: 'none',
        doc: docOf('This document', 'The OpenAPI 3.1 document of this server.', 'OpenAPI 3.1'),
      },
    },
    async (_req, reply) => {
      doc ??= JSON.stringify(buildOpenApiDocument(routes, info));
      return reply.type('application/json; charset=utf-8').send(doc);
    },
  );
  app.get(
    '/docs',
    {
      config: {
        auth: 'none',
        doc: docOf('API reference', 'The rendered API reference (swagger-ui).', 'HTML'),
      },
    },
    async (_req, reply) =>
      reply.type('text/html; charset=utf-8').header('content-security-policy', DOCS_CSP).send(DOCS_HTML),
  );
  const dist = dirname(require.resolve('swagger-ui-dist/package.json'));
  const assets = new Map<string, { type: string; body: Buffer | string }>([
    ['init.js', { type: 'text/javascript; charset=utf-8', body: DOCS_INIT }],
  ]);
  app.get(
    '/docs/assets/:file',
    {
      config: {
        auth: 'none',
        doc: {
          summary: 'API reference assets',
          tags: ['Meta'],
          params: {
            file: 'swagger-ui.css, swagger-ui-bundle.js, swagger-ui-standalone-preset.js or init.js',
          },
          responses: { 200: { description: 'The file' } },
        },
      },
    },
    async (req, reply) => {
      const { file } = req.params as { file: string };
      let a = assets.get(file);
      const type = SWAGGER_FILES[file];
      if (!a && type) {
        a = { type, body: readFileSync(join(dist, file)) };
        assets.set(file, a);
      }
      if (!a) throw new NotFoundError(`No API reference asset '${file}'.`, { param: 'file' });
      return reply.type(a.type).header('cache-control', 'public, max-age=86400').send(a.body);
    },
  );
}
