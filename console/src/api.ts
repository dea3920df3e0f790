/**
 * Calls to the service. Admin calls carry the admin key in the Authorization header and nowhere
 * else (no cookie, no query string); playground calls carry the user key the same way.
 */

/** An OpenAI-style error answer, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

interface ErrorBody {
  error?: { message?: unknown; code?: unknown; param?: unknown };
}

/** The error of a non-2xx response, read from its OpenAI-style body when it has one. */
export async function errorOf(res: Response): Promise<ApiError> {
  let body: ErrorBody | null = null;
  try {
    body = (await res.json()) as ErrorBody;
  } catch {
    body = null;
  }
  const e = body?.error;
  return new ApiError(
    res.status,
    typeof e?.message === 'string' ? e.message : `${res.status} ${res.statusText}`,
    typeof e?.code === 'string' ? e.code : null,
    typeof e?.param === 'string' ? e.param : null,
  );
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  key: string;
  signal?: AbortSignal;
  /** `json` (default) or `text` (CSV). */
  as?: 'json' | 'text';
}

/** One call with a bearer key; throws ApiError for anything but 2xx. */
export async function call<T>(path: string, opts: CallOptions): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${opts.key}` };
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method: opts.method ?? 'GET',
      headers,
      body,
      signal: opts.signal ?? null,
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, `The service did not answer: ${(err as Error).message}`);
  }
  if (!res.ok) throw await errorOf(res);
  if (opts.as === 'text') return (await res.text()) as T;
  return (await res.json()) as T;
}

/** Without a key (`/ready`). */
export async function publicGet<T>(path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(path, { credentials: 'omit', cache: 'no-store' });
  return { status: res.status, body: (await res.json()) as T };
}
