import OpenAI from 'openai';
import { VERSION } from 'openai/version';

type BuildRequestOptions = Parameters<OpenAI['buildRequest']>[0];
type BuiltRequest = Awaited<ReturnType<OpenAI['buildRequest']>>;

/** The SDK's per-call auth schemes: chat completions ask for the bearer key only. */
function bearerOnly(security: unknown): boolean {
  if (security === undefined) return true;
  if (!isPlainObject(security) || security['bearerAuth'] !== true) return false;
  return Object.entries(security).every(([k, v]) => k === 'bearerAuth' || !v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * The official SDK, with the request for a JSON POST (every chat completion) built directly:
 * one plain header object made once per client instead of a WHATWG `Headers` merged from six
 * sources on every call. In a heap profile of the gateway that merge, and the SDK's debug
 * formatting iterating the result again whatever the log level, were a third of all
 * allocations. Anything else (GETs such as `models.list`, per-call headers or query, non-JSON
 * bodies, idempotency keys) goes through the SDK's own builder; retries, timeouts, errors and
 * response and SSE parsing are the SDK's in every case.
 */
export class LeanOpenAI extends OpenAI {
  private fixedHeaders: Record<string, string> | undefined;
  /** The SDK's URL for a path without query (it parses and re-serializes on every call). */
  private readonly urls = new Map<string, string>();

  /** Switch to a new key (a rotated secret): both request paths use it from the next call. */
  useApiKey(key: string): void {
    this.apiKey = key;
    this.fixedHeaders = undefined;
  }

  private urlOf(path: string): string {
    let url = this.urls.get(path);
    if (url === undefined) {
      url = this.buildURL(path, undefined);
      this.urls.set(path, url);
    }
    return url;
  }

  override async buildRequest(
    options: BuildRequestOptions,
    { retryCount = 0 }: { retryCount?: number } = {},
  ): Promise<BuiltRequest> {
    const body = options.body;
    if (
      options.method !== 'post' ||
      options.headers !== undefined ||
      options.query !== undefined ||
      options.fetchOptions !== undefined ||
      options.idempotencyKey !== undefined ||
      options.defaultBaseURL !== undefined ||
      this.idempotencyHeader !== undefined ||
      this._options.defaultHeaders !== undefined ||
      typeof this._options.apiKey === 'function' ||
      (this as unknown as { _workloadIdentityAuth?: unknown })._workloadIdentityAuth !== undefined ||
      (this as unknown as { _provider?: unknown })._provider !== undefined ||
      !bearerOnly((options as { __security?: unknown }).__security) ||
      !isPlainObject(body)
    ) {
      return super.buildRequest(options, { retryCount });
    }
    this.fixedHeaders ??= this.makeFixedHeaders();
    const fixed = this.fixedHeaders;
    const timeout = options.timeout ?? this.timeout;
    const req = {
      method: 'post',
      // A plain object where the SDK would build `Headers`: its fetch path, its debug formatting
      // and undici all accept either.
      headers: (retryCount === 0
        ? fixed
        : { ...fixed, 'x-stainless-retry-count': String(retryCount) }) as unknown as Headers,
      body: JSON.stringify(body),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(this.fetchOptions ?? {}),
    } as BuiltRequest['req'];
    return { req, url: this.urlOf(options.path), timeout };
  }

  private makeFixedHeaders(): Record<string, string> {
    // The SDK's own user agent (`<class name>/JS <version>`; this class is named OpenAI below).
    const h: Record<string, string> = {
      accept: 'application/json',
      'content-type': 'application/json',
      'user-agent': `OpenAI/JS ${VERSION}`,
      'x-stainless-retry-count': '0',
    };
    if (this.apiKey) h['authorization'] = `Bearer ${this.apiKey}`;
    if (this.organization) h['openai-organization'] = this.organization;
    if (this.project) h['openai-project'] = this.project;
    return h;
  }
}

// The SDK builds its user agent from the class name: keep it `OpenAI/JS <version>` on both paths.
Object.defineProperty(LeanOpenAI, 'name', { value: 'OpenAI' });
