import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

/** The subset of `Headers` the openai SDK reads from a response. */
class ResponseHeaders {
  constructor(private readonly raw: Record<string, string | string[] | undefined>) {}

  get(name: string): string | null {
    const v = this.raw[name.toLowerCase()];
    if (v === undefined) return null;
    return Array.isArray(v) ? v.join(', ') : v;
  }

  has(name: string): boolean {
    return this.raw[name.toLowerCase()] !== undefined;
  }

  *entries(): IterableIterator<[string, string]> {
    for (const k of Object.keys(this.raw)) {
      const v = this.get(k);
      if (v !== null) yield [k, v];
    }
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  forEach(fn: (value: string, key: string) => void): void {
    for (const [k, v] of this.entries()) fn(v, k);
  }
}

/** The subset of `Response` the openai SDK uses: status, headers, a body it can iterate, text, json. */
class LeanResponse {
  readonly ok: boolean;
  readonly statusText = '';
  readonly redirected = false;
  readonly type = 'basic';
  readonly headers: ResponseHeaders;

  constructor(
    readonly url: string,
    readonly status: number,
    headers: Record<string, string | string[] | undefined>,
    /** undici's body: a Node Readable, async-iterable, which the SDK's stream reader accepts. */
    readonly body: Readable & { text(): Promise<string>; json(): Promise<unknown> },
  ) {
    this.ok = status >= 200 && status < 300;
    this.headers = new ResponseHeaders(headers);
  }

  text(): Promise<string> {
    return this.body.text();
  }

  json(): Promise<unknown> {
    return this.body.json();
  }
}

/**
 * A `fetch` for the openai SDK on undici's `request` API instead of WHATWG fetch. The SDK
 * accepts any fetch (its documented `fetch` option) and only touches status, headers, body,
 * text() and json(); skipping the web-streams Request/Response machinery roughly halves the
 * per-call CPU of an upstream call, which is most of what a gateway does.
 */
export function createLeanFetch(dispatcher: Dispatcher): typeof fetch {
  // The SDK calls the same few URLs over and over: parse each once.
  const parsed = new Map<string, { origin: string; path: string }>();
  const parse = (url: string) => {
    let p = parsed.get(url);
    if (!p) {
      const u = new URL(url);
      p = { origin: u.origin, path: u.pathname + u.search };
      if (parsed.size >= 256) parsed.clear();
      parsed.set(url, p);
    }
    return p;
  };
  const lean = async (input: string | URL | Request, init: RequestInit = {}): Promise<LeanResponse> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const { origin, path } = parse(url);
    const res = await dispatcher.request({
      origin,
      path,
      method: (init.method ?? 'GET').toUpperCase() as Dispatcher.HttpMethod,
      headers: init.headers as Dispatcher.DispatchOptions['headers'],
      body: (init.body as string | Buffer | null | undefined) ?? null,
      signal: init.signal ?? null,
    });
    return new LeanResponse(url, res.statusCode, res.headers, res.body as unknown as LeanResponse['body']);
  };
  return lean as unknown as typeof fetch;
}
