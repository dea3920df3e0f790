/**
 * Service fixtures: the real service (real port, real Redis, dynalite, local-aws-sqs) over a
 * scripted mock upstream, and the official openai SDK as the client.
 */
import OpenAI from 'openai';
import type { RoutePlugin } from '../../container/src/app';
import { readEnv } from '../../container/src/config/env';
import { type LocalStack, startLocalStack } from '../../container/src/local/stack';
import { type RunningServer, startServer } from '../../container/src/server';
import type { MockUpstream } from './mock-upstream';

export const ADMIN_KEY = 'sk-tg-admin-test-0123456789';
export const DEV_KEY = 'sk-tg-dev-test-0123456789';

let seq = 0;
/** A unique table/queue prefix per test file and call, so suites never share rows. */
export function uniquePrefix(name: string): string {
  seq++;
  return `t${process.pid}-${name}-${seq}`.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 60);
}

/** A catalogue entry for a mock upstream model, with short test-friendly timeouts. */
export function mockModel(
  upstream: MockUpstream,
  id: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id,
    provider: 'openai',
    baseUrl: upstream.baseUrl,
    pricing: { input: 1, output: 2, cachedInput: 0.5 },
    contextWindow: 8192,
    maxOutputTokens: 256,
    timeoutMs: 2000,
    maxRetries: 0,
    ...overrides,
  };
}

/**
 * The local stand-ins for one suite: its own redis-server always; dynalite and local-aws-sqs
 * unless the developer pointed AWS_ENDPOINT_URL* at LocalStack before running jest.
 */
export function startTestStack(name: string): Promise<LocalStack> {
  const endpoints = JSON.parse(process.env.TOLLGATE_TEST_ENDPOINTS ?? '{}') as Record<string, string>;
  return startLocalStack({ prefix: uniquePrefix(name), env: { AWS_REGION: 'us-east-1', ...endpoints } });
}

export interface TestService {
  url: string;
  /** Base URL for the openai SDK: `${url}/v1`. */
  baseURL: string;
  server: RunningServer;
  stack: LocalStack;
  /** An SDK client with a key (default: the dev key). Retries off so tests see first answers. */
  client(key?: string, opts?: Partial<ConstructorParameters<typeof OpenAI>[0]>): OpenAI;
  /** Plain HTTP for what the SDK cannot send (bad bodies, other methods). */
  http(
    method: string,
    path: string,
    opts?: { body?: string | object; headers?: Record<string, string>; key?: string | null },
  ): Promise<HttpResult>;
  /** Create a user key through the admin API. */
  createKey(body?: Record<string, unknown>): Promise<{ id: string; key: string; owner: string }>;
  stop(): Promise<void>;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests assert on arbitrary response bodies
  json: () => any;
}

export interface StartOptions {
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  plugins?: RoutePlugin[];
  /** Reuse a running stack (two services sharing one Redis). */
  stack?: LocalStack;
  name?: string;
}

export async function startTestService(opts: StartOptions = {}): Promise<TestService> {
  const ownStack = !opts.stack;
  const stack = opts.stack ?? (await startTestStack(opts.name ?? 'svc'));
  // The AWS SDK reads endpoints from process.env (no endpoint code of ours). Overrides are
  // undone on stop so they cannot leak into the next suite in this jest worker.
  const saved = Object.fromEntries(Object.keys(opts.env ?? {}).map((k) => [k, process.env[k]]));
  Object.assign(process.env, stack.env, opts.env ?? {});
  const restoreEnv = () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  const env = readEnv({
    ...process.env,
    ...stack.env,
    PORT: '0',
    HOST: '127.0.0.1',
    TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
    TOLLGATE_DEV_API_KEY: DEV_KEY,
    TOLLGATE_DRAIN_GRACE_MS: '0',
    TOLLGATE_CONFIG_JSON: JSON.stringify(opts.config ?? {}),
    ...opts.env,
  });
  let server: RunningServer;
  try {
    server = await startServer(env, opts.plugins ?? []);
  } catch (err) {
    restoreEnv();
    if (ownStack) await stack.stop();
    throw err;
  }
  const url = server.url;
  const http: TestService['http'] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    const key = o.key === undefined ? DEV_KEY : o.key;
    if (key) headers.authorization = `Bearer ${key}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
  };
  let stopped = false;
  return {
    url,
    baseURL: `${url}/v1`,
    server,
    stack,
    client: (key = DEV_KEY, o = {}) =>
      new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 20_000, ...o }),
    http,
    async createKey(body = {}) {
      const r = await http('POST', '/admin/keys', {
        key: ADMIN_KEY,
        body: { owner: `owner-${++seq}`, ...body },
      });
      if (r.status !== 201) throw new Error(`createKey failed: ${r.status} ${r.text}`);
      return r.json();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.shutdown();
      restoreEnv();
      if (ownStack) await stack.stop();
    },
  };
}

/** Poll until `fn` returns a truthy value (or throw after `timeoutMs`). */
export async function eventually<T>(
  fn: () => Promise<T> | T,
  timeoutMs = 5000,
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end)
      throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
