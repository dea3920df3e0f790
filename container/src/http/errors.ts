import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ApiError,
  BadRequestError,
  InternalServerError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
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

/**
 * One error handler for the whole app: known 4xx pass through as OpenAI error bodies; anything
 * else is logged with the request id and the client gets a generic 500.
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
