import {
  ApiError,
  BadRequestError,
  ClientAbortError,
  GatewayTimeoutError,
  isRetryable,
  ServiceUnavailableError,
  UpstreamError,
} from '../../errors';

/** Where a failed call went, for messages an operator can act on. */
export interface BedrockTarget {
  /** Model id, inference profile id or ARN. */
  readonly model: string;
  readonly region: string;
}

/** What the SDK's errors carry that the mapping reads. */
interface SdkError {
  name?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string | undefined> };
  originalStatusCode?: number;
  originalMessage?: string;
}

function asSdkError(err: unknown): SdkError {
  return typeof err === 'object' && err !== null ? (err as SdkError) : { message: String(err) };
}

/** Failures worth another attempt on the same model (before any byte reached the client). */
const RETRIED = new Set([
  'ThrottlingException',
  'ServiceUnavailableException',
  'ModelNotReadyException',
  'InternalServerException',
]);

/**
 * Whether the provider tries again (within `maxRetries`): throttling, Bedrock's own 5xx and
 * connection failures. A timeout of the model or a model error is not retried here (the
 * router's fallbacks still apply to them).
 */
export function shouldRetry(err: unknown): boolean {
  if (err instanceof ApiError) return isRetryable(err);
  if (err instanceof ClientAbortError) return false;
  const e = asSdkError(err);
  if (e.name && RETRIED.has(e.name)) return true;
  // No $fault: the request never got a modelled answer (connection refused, reset, TLS...).
  return e.$fault === undefined && !isCredentialsError(e) && !isAbort(e);
}

function isAbort(e: SdkError): boolean {
  return e.name === 'AbortError';
}

function isCredentialsError(e: SdkError): boolean {
  return e.name === 'CredentialsProviderError' || e.name === 'ProviderError';
}

/** Seconds from a Retry-After header Bedrock may send; 1 otherwise (the openai family's rule). */
function retryAfter(e: SdkError): number {
  const raw = e.$response?.headers?.['retry-after'];
  const n = Number(raw ?? '');
  return Number.isFinite(n) && n > 0 ? Math.ceil(n) : 1;
}

const AUTH_ERRORS = new Set([
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'ExpiredTokenException',
  'IncompleteSignatureException',
  'MissingAuthenticationTokenException',
  'InvalidClientTokenId',
]);

/**
 * A Bedrock failure as the gateway's error: 400 for a request Bedrock refused, 503 (with
 * Retry-After) when throttled or unavailable, 504 on a model timeout, 502 with what to fix for
 * access, model and credential problems; never a 500.
 */
export function mapBedrockError(err: unknown, to: BedrockTarget, signal?: AbortSignal): Error {
  if (err instanceof ApiError || err instanceof ClientAbortError) return err;
  if (signal?.aborted) return signal.reason instanceof ApiError ? signal.reason : new ClientAbortError();
  const e = asSdkError(err);
  const detail = e.message ?? 'no message';
  const where = `model '${to.model}' in ${to.region}`;
  switch (e.name) {
    case 'ValidationException':
      return new BadRequestError(`Upstream rejected the request: ${detail}`, {
        code: 'upstream_invalid_request',
      });
    case 'ThrottlingException':
      return new ServiceUnavailableError('The upstream model is rate limited; retry shortly.', {
        code: 'upstream_rate_limited',
        retryAfterSeconds: retryAfter(e),
      });
    case 'ServiceQuotaExceededException':
      return new ServiceUnavailableError(
        `The Amazon Bedrock quota for ${where} is used up (${detail}); retry later.`,
        { code: 'upstream_rate_limited', retryAfterSeconds: retryAfter(e) },
      );
    case 'ServiceUnavailableException':
    case 'ModelNotReadyException':
      return new ServiceUnavailableError(`Amazon Bedrock cannot serve ${where} right now; retry shortly.`, {
        code: 'upstream_unavailable',
        retryAfterSeconds: retryAfter(e),
      });
    case 'ModelTimeoutException':
      return new GatewayTimeoutError(`Amazon Bedrock timed out running ${where}.`);
    case 'AccessDeniedException':
      return new UpstreamError(
        `Amazon Bedrock denied access to ${where}: ${detail} Check that access to this model is granted in the Bedrock console for the account and region, and that the role allows bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream on it (a cross-region inference profile needs its profile ARN and the foundation-model ARN in each of its regions).`,
        403,
        { code: 'upstream_access_denied' },
      );
    case 'ResourceNotFoundException':
      return new UpstreamError(
        `Amazon Bedrock has no ${where}: ${detail} Check the model id, inference profile id or ARN in the catalogue and its region (a profile such as us.* or eu.* exists only in its geography; some models are served on demand only through an inference profile).`,
        404,
        { code: 'upstream_model_not_found' },
      );
    case 'ModelStreamErrorException':
      return new UpstreamError(
        `The model failed while streaming: ${e.originalMessage ?? detail}`,
        // Counted as a server-side failure so fallbacks apply before the first byte.
        500,
      );
    case 'ModelErrorException':
      return new UpstreamError(`The model failed to process the request: ${detail}`, 500);
    case 'InternalServerException':
      return new UpstreamError(`Amazon Bedrock failed (InternalServerException): ${detail}`, 500);
    default:
      break;
  }
  if (e.name && AUTH_ERRORS.has(e.name)) {
    return new UpstreamError(
      `Amazon Bedrock refused the AWS credentials (${e.name}): ${detail} Check the task role, AWS_PROFILE or the AWS_* variables.`,
      403,
      { code: 'upstream_access_denied' },
    );
  }
  if (isCredentialsError(e)) {
    return new UpstreamError(
      `No AWS credentials for Amazon Bedrock: ${detail} The service takes them from the default chain (task or Lambda role, AWS_PROFILE, AWS_ACCESS_KEY_ID).`,
      401,
      { code: 'upstream_access_denied' },
    );
  }
  if (e.$fault === 'client') {
    // Another modelled client error (ConflictException, a new one): the request was refused.
    return new BadRequestError(`Upstream rejected the request (${e.name}): ${detail}`, {
      code: 'upstream_invalid_request',
    });
  }
  if (e.$fault === 'server')
    return new UpstreamError(
      `Amazon Bedrock failed (${e.name ?? 'unknown error'}): ${detail}`,
      e.$metadata?.httpStatusCode,
    );
  return new UpstreamError(`Could not reach Amazon Bedrock in ${to.region}: ${detail}`);
}
