import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ApiError,
  BadRequestError,
  InternalServerError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnsupportedMediaTypeError,
} from '../errors';
import type { Telemetry } from '../telemetry/telemetry';

/** Map Fastify's own errors (parser, limits) onto OpenAI-style API errors. */
export function toApiError(
  err: FastifyError | Error,
  bodyLimit: number,
  contentType: string | undefined,
): ApiError | null {
  if (err instanceof ApiError) return err;
  const code = (err as FastifyError).code;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError(bodyLimit);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? new UnsupportedMediaTypeError(contentType)
        : new BadRequestError('Content-Length does not match the body.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new BadRequestError('The request body is empty; send a JSON object.');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return new BadRequestError(`We could not parse the JSON body of your request: ${err.message}`, {
        code: 'invalid_json',
      });
    default:
      break;
  }
  if (
    err instanceof SyntaxError ||
    (err as { status?: number }).status === 400 ||
    (err as FastifyError).statusCode === 400
  ) {
    return new BadRequestError(`We could not parse the JSON body of your request: ${err.message}`, {
      code: 'invalid_json',
    });
  }
  const sc = (err as FastifyError).statusCode;
  if (sc === 413) return new PayloadTooLargeError(bodyLimit);
  if (sc === 415) return new UnsupportedMediaTypeError(contentType);
  if (sc && sc >= 400 && sc < 500) return new BadRequestError(err.message);
  return null;
}

/** Node's socket errors meaning "the dependency cannot be reached right now". */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Whether an unexpected error is a dependency outage rather than a bug: a socket error, or an
 * AWS SDK error the service answered with 5xx or throttling (its `$metadata` / `$fault`). Such a
 * request is answered 503 with Retry-After (the client may retry), never 500.
 */
export function isDependencyOutage(err: unknown): boolean {
  const e = err as {
    code?: unknown;
    name?: unknown;
    $fault?: unknown;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: unknown };
    cause?: unknown;
  } | null;
  if (!e || typeof e !== 'object') return false;
  if (typeof e.code === 'string' && UNREACHABLE_CODES.has(e.code)) return true;
  if (e.name === 'TimeoutError' || e.name === 'ThrottlingException') return true;
  if (e.$retryable !== undefined || e.$fault === 'server') return true;
  const status = e.$metadata?.httpStatusCode;
  if (typeof status === 'number' && status >= 500) return true;
  return e.cause !== undefined && e.cause !== err && isDependencyOutage(e.cause);
}

/**
 * One error handler for the whole app: known 4xx pass through as OpenAI error bodies; a
 * dependency outage is a 503 with Retry-After; anything else is logged with the request id and
 * the client gets a generic 500.
 */
export function installErrorHandling(app: FastifyInstance, telemetry: Telemetry, bodyLimit: number): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const apiErr = toApiError(err, bodyLimit, req.headers['content-type']);
    if (apiErr) {
      req.facts.errorCode = apiErr.code ?? apiErr.type;
      if (apiErr.status >= 500)
        telemetry.logger.warn('request failed', {
          requestId: req.id,
          error: apiErr.message,
          code: apiErr.code,
        });
      return reply.code(apiErr.status).headers(apiErr.headers).send(apiErr.toJSON());
    }
    if (isDependencyOutage(err)) {
      telemetry.logger.warn('request failed: a dependency is unreachable', {
        requestId: req.id,
        error: err.message,
      });
      const e = new ServiceUnavailableError('A service this request needs is unreachable; retry shortly.', {
        code: 'dependency_unavailable',
        retryAfterSeconds: 2,
      });
      req.facts.errorCode = 'dependency_unavailable';
      return reply.code(e.status).headers(e.headers).send(e.toJSON());
    }
    telemetry.logger.error('unhandled error', { requestId: req.id, error: err });
    req.facts.errorCode = 'internal_error';
    return reply.code(500).send(new InternalServerError().toJSON());
  });

  app.setNotFoundHandler((req, reply) => {
    const e = new NotFoundError(`Unknown request URL: ${req.method} ${req.url.split('?')[0]}.`, {
      code: 'unknown_url',
    });
    req.facts.errorCode = 'unknown_url';
    return reply.code(404).send(e.toJSON());
  });
}

/**
 * Answer 405 (with Allow) for known paths called with a method they do not serve. Collects
 * routes as they are added; call the returned function once, after the last route.
 */
export function collectRoutesFor405(app: FastifyInstance): () => void {
  const byPath = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const set = byPath.get(route.url) ?? new Set<string>();
    for (const m of methods) set.add(m);
    byPath.set(route.url, set);
  });
  return () => {
    const all = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
    for (const [url, methods] of [...byPath]) {
      const allow = [...methods].filter((m) => m !== 'HEAD');
      const missing = all.filter((m) => !methods.has(m));
      if (missing.length === 0) continue;
      app.route({
        method: missing,
        url,
        config: { auth: 'none', internal: true },
        handler: async (req, reply) => {
          const e = new MethodNotAllowedError(req.method, url, allow);
          req.facts.errorCode = 'method_not_allowed';
          return reply.code(405).headers(e.headers).send(e.toJSON());
        },
      });
    }
  };
}

/**
 * Fastify's `frameworkErrors`: a path Fastify cannot route (bad percent-encoding) or whose
 * parameter is longer than its router allows. Answered before any hook runs, so the request id
 * header is set here too.
 */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const e =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new NotFoundError('No such resource: a path parameter is longer than any id this API issues.')
      : err.code === 'FST_ERR_BAD_URL'
        ? new BadRequestError('The URL is not valid: it has a malformed percent-encoding.', {
            code: 'invalid_url',
          })
        : new InternalServerError();
  void reply.code(e.status).header('x-request-id', req.id).send(e.toJSON());
}

/**
 * An HTTP/1.1 request without a Host header (RFC 9112 section 3.2: answer 400). Node would
 * answer it itself with an empty body before any hook runs, so the server is told not to
 * (`requireHostHeader: false`) and this `onRequest` hook answers it like every other error,
 * with the request id already set. HTTP/1.0 needs no Host.
 */
export async function rejectMissingHost(req: FastifyRequest): Promise<void> {
  const { httpVersionMajor: major, httpVersionMinor: minor } = req.raw;
  if (req.headers.host === undefined && (major > 1 || (major === 1 && minor >= 1))) {
    throw new BadRequestError('The request has no Host header; HTTP/1.1 requires one.', {
      code: 'missing_host',
    });
  }
}

/**
 * Node's HTTP parser rejected the request (oversized headers, malformed HTTP): answer with an
 * OpenAI-style body instead of Fastify's, then close the connection (as Node does).
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text, message, code] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'The request headers are too large.', 'invalid_http']
      : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
        ? [413, 'Payload Too Large', 'The chunk extensions are too large.', 'invalid_http']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'The request was not received in time.', 'request_timeout']
          : [400, 'Bad Request', 'The request is not valid HTTP.', 'invalid_http'];
  const body = JSON.stringify(
    new ApiError(status, message, { type: 'invalid_request_error', code }).toJSON(),
  );
  // As Node does: never write into a response already under way on this connection (a bad
  // pipelined request behind a stream).
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    socket.write(
      `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
