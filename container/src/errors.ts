/**
 * API errors, serialized exactly as OpenAI does: `{"error":{"message","type","param","code"}}`.
 * Shaped after openai-node's `APIError` family, which is what clients parse.
 */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface ApiErrorOptions {
  param?: string | null;
  code?: string | null;
  type?: string;
  /** Extra response headers (e.g. `retry-after`). */
  headers?: Record<string, string>;
}

/** Base class: every error the API answers with deliberately. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    message: string,
    defaults: { type: string; code: string | null },
    opts: ApiErrorOptions = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.type = opts.type ?? defaults.type;
    this.code = opts.code === undefined ? defaults.code : opts.code;
    this.param = opts.param ?? null;
    this.headers = opts.headers ?? {};
  }

  toJSON(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export class BadRequestError extends ApiError {
  constructor(message: string, opts: ApiErrorOptions = {}) {
    super(400, message, { type: 'invalid_request_error', code: opts.param ? 'invalid_value' : null }, opts);
    this.name = 'BadRequestError';
  }
}

export class AuthenticationError extends ApiError {
  constructor(message = 'Incorrect API key provided.', opts: ApiErrorOptions = {}) {
    super(401, message, { type: 'invalid_request_error', code: 'invalid_api_key' }, opts);
    this.name = 'AuthenticationError';
  }
}

export class PermissionDeniedError extends ApiError {
  constructor(message: string, opts: ApiErrorOptions = {}) {
    super(403, message, { type: 'invalid_request_error', code: 'permission_denied' }, opts);
    this.name = 'PermissionDeniedError';
  }
}

export class NotFoundError extends ApiError {
  constructor(message: string, opts: ApiErrorOptions = {}) {
    super(404, message, { type: 'invalid_request_error', code: 'not_found' }, opts);
    this.name = 'NotFoundError';
  }
}

export class ModelNotFoundError extends NotFoundError {
  constructor(model: string) {
    super(`The model \`${model}\` does not exist or you do not have access to it.`, {
      param: 'model',
      code: 'model_not_found',
    });
    this.name = 'ModelNotFoundError';
  }
}

export class MethodNotAllowedError extends ApiError {
  constructor(method: string, url: string, allow: string[]) {
    super(
      405,
      `Method ${method} is not allowed for ${url}. Allowed: ${allow.join(', ')}.`,
      { type: 'invalid_request_error', code: 'method_not_allowed' },
      { headers: { allow: allow.join(', ') } },
    );
    this.name = 'MethodNotAllowedError';
  }
}

export class ConflictError extends ApiError {
  constructor(message: string, opts: ApiErrorOptions = {}) {
    super(409, message, { type: 'invalid_request_error', code: 'conflict' }, opts);
    this.name = 'ConflictError';
  }
}

export class PayloadTooLargeError extends ApiError {
  constructor(limitBytes: number) {
    super(413, `Request body is larger than the limit of ${limitBytes} bytes.`, {
      type: 'invalid_request_error',
      code: 'request_too_large',
    });
    this.name = 'PayloadTooLargeError';
  }
}

export class UnsupportedMediaTypeError extends ApiError {
  constructor(contentType: string | undefined) {
    super(
      415,
      `Unsupported Content-Type ${contentType ? `'${contentType}'` : '(none)'}; send application/json.`,
      { type: 'invalid_request_error', code: 'unsupported_media_type' },
    );
    this.name = 'UnsupportedMediaTypeError';
  }
}

export class RateLimitError extends ApiError {
  constructor(
    message: string,
    opts: ApiErrorOptions & { code: 'rate_limit_exceeded' | 'insufficient_quota' },
  ) {
    super(
      429,
      message,
      { type: opts.code === 'insufficient_quota' ? 'insufficient_quota' : 'requests', code: opts.code },
      opts,
    );
    this.name = 'RateLimitError';
  }
}

export class InternalServerError extends ApiError {
  constructor(message = 'The server had an error while processing your request.') {
    super(500, message, { type: 'server_error', code: null });
    this.name = 'InternalServerError';
  }
}

/** The upstream answered with an error or garbage (502). */
export class UpstreamError extends ApiError {
  /** Status the upstream answered with, when it answered at all. */
  readonly upstreamStatus: number | undefined;
  constructor(message: string, upstreamStatus?: number, opts: ApiErrorOptions = {}) {
    super(502, message, { type: 'upstream_error', code: 'upstream_error' }, opts);
    this.name = 'UpstreamError';
    this.upstreamStatus = upstreamStatus;
  }
}

export class ServiceUnavailableError extends ApiError {
  constructor(message: string, opts: ApiErrorOptions & { retryAfterSeconds?: number } = {}) {
    const headers = { ...opts.headers };
    if (opts.retryAfterSeconds !== undefined) headers['retry-after'] = String(opts.retryAfterSeconds);
    super(503, message, { type: 'server_error', code: 'server_busy' }, { ...opts, headers });
    this.name = 'ServiceUnavailableError';
  }
}

export class GatewayTimeoutError extends ApiError {
  constructor(message: string) {
    super(504, message, { type: 'timeout', code: 'upstream_timeout' });
    this.name = 'GatewayTimeoutError';
  }
}

/** True for failures worth retrying or falling back on: timeouts, 429, 5xx, connection errors. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof GatewayTimeoutError) return true;
  if (err instanceof ServiceUnavailableError) return true;
  if (err instanceof UpstreamError) {
    const s = err.upstreamStatus;
    return s === undefined || s === 408 || s === 409 || s === 429 || s >= 500;
  }
  return false;
}

/** The caller went away; nothing is sent back. */
export class ClientAbortError extends Error {
  constructor() {
    super('The client closed the connection.');
    this.name = 'ClientAbortError';
  }
}

/** A bad config (file or environment): the message names every bad field. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
