/**
 * DynamoDB unreachable (connection refused, through a TCP proxy that is cut): keys already seen
 * keep working from their last good copy for TOLLGATE_KEY_STALE_MS, a key that cannot be checked
 * gets 503 with Retry-After, and nothing answers 500.
 */
import type { LocalStack } from '../../container/src/local/stack';
import { ADMIN_KEY, startTestService, startTestStack, type TestService } from '../helpers/service';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

// Generous: under a loaded machine, one failed read (with the SDK's retries) takes a while.
const STALE_MS = 8000;

let stack: LocalStack;
let proxy: TcpProxy;
let svc: TestService;

beforeAll(async () => {
  stack = await startTestStack('key-outage');
  const ddb = new URL(stack.env.AWS_ENDPOINT_URL_DYNAMODB as string);
  proxy = await startTcpProxy(ddb.hostname, Number(ddb.port));
  svc = await startTestService({
    stack,
    env: { AWS_ENDPOINT_URL_DYNAMODB: proxy.url, TOLLGATE_KEY_STALE_MS: String(STALE_MS) },
    config: {
      models: [{ id: 'sim', provider: 'simulator', simulator: { ttftMs: 0, tokensPerSecond: 100_000 } }],
    },
  });
});

afterAll(async () => {
  await svc?.stop();
  await proxy?.close();
  await stack?.stop();
});

const chat = (key: string) =>
  svc.http('POST', '/v1/chat/completions', {
    key,
    body: { model: 'sim', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 },
  });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an api key table outage', () => {
  it('serves seen keys from their last good copy for a bounded time, 503s the rest, never 500s', async () => {
    const seen = await svc.createKey();
    const unseen = await svc.createKey();
    const revoked = await svc.createKey();
    expect((await chat(seen.key)).status).toBe(200);
    expect((await svc.http('DELETE', `/admin/keys/${revoked.id}`, { key: ADMIN_KEY })).status).toBe(200);
    expect((await chat(revoked.key)).status).toBe(401);
    const lastGoodRead = Date.now();

    proxy.down();
    // Past the 1 s key cache: every answer now comes from the outage path.
    await sleep(1200);
    const during: number[] = [];
    while (Date.now() - lastGoodRead < STALE_MS / 2) {
      during.push((await chat(seen.key)).status);
      await sleep(100);
    }
    expect(during.length).toBeGreaterThan(3);
    expect(new Set(during)).toEqual(new Set([200]));

    // A revoked key stays revoked from its copy.
    expect((await chat(revoked.key)).status).toBe(401);

    const cannotCheck = await chat(unseen.key);
    expect(cannotCheck.status).toBe(503);
    expect(Number(cannotCheck.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(cannotCheck.headers.get('x-request-id')).toBeTruthy();
    expect(cannotCheck.json()).toEqual({
      error: {
        message: expect.stringContaining('cannot be checked'),
        type: 'server_error',
        param: null,
        code: 'auth_unavailable',
      },
    });

    // Other reads of the table during the outage: 503 too, not 500.
    const admin = await svc.http('GET', `/admin/keys?owner=${seen.owner}`, { key: ADMIN_KEY });
    expect(admin.status).toBe(503);
    expect(admin.json().error.code).toBe('dependency_unavailable');

    // The stale copy has an end: past it, the seen key cannot be checked either.
    await sleep(Math.max(0, lastGoodRead + STALE_MS + 1500 - Date.now()));
    const expired = await chat(seen.key);
    expect(expired.status).toBe(503);
    expect(expired.json().error.code).toBe('auth_unavailable');

    proxy.up();
    await sleep(1100);
    expect((await chat(seen.key)).status).toBe(200);
    expect((await chat(unseen.key)).status).toBe(200);
  });
});
