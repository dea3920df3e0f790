import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

/**
 * Response headers a browser client may read (by name: `*` is not honoured with
 * Authorization): the request id, OpenAI's rate-limit headers, Retry-After and Tollgate's own.
 */
export const EXPOSED_HEADERS = [
  'x-request-id',
  'x-ratelimit-limit-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-requests',
  'x-ratelimit-reset-tokens',
  'retry-after',
  'x-tollgate-cache',
  'x-tollgate-cost-usd',
  'idempotent-replayed',
  'location',
] as const;

const LOCALHOST = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/;

/** Whether `origin` is allowed by the configured list (`*`, `localhost`, exact origins). */
export function originAllowed(allowed: readonly string[], origin: string): boolean {
  for (const a of allowed) {
    if (a === '*') return true;
    if (a === 'localhost' ? LOCALHOST.test(origin) : a.toLowerCase() === origin.toLowerCase()) return true;
  }
  return false;
}

/**
 * CORS for browser clients, with `@fastify/cors`. Registered before every other hook so a
 * preflight (which carries no API key) is answered 204 before authentication. The preflight
 * allows whatever request headers the browser asks for (the openai SDK's `x-stainless-*` set
 * varies by version). With no allowed origins nothing changes: no CORS headers, OPTIONS 405.
 */
export function installCors(app: FastifyInstance, allowed: readonly string[]): void {
  if (allowed.length === 0) return;
  void app.register(cors, {
    origin: (origin, cb) => cb(null, origin !== undefined && originAllowed(allowed, origin)),
    methods: ['GET', 'POST', 'PATCH', 'DELETE'],
    exposedHeaders: [...EXPOSED_HEADERS],
    maxAge: 600,
    strictPreflight: false,
  });
}
