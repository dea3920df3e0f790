/**
 * HTTP details a load balancer and odd clients exercise: the keep-alive timeout outlives the
 * ALB's idle timeout, a request without Host gets an OpenAI error body, and health/readiness
 * probes are not counted as requests (no log line, no EMF, no /metrics series).
 */
import { connect } from 'node:net';
import type { LocalStack } from '../../container/src/local/stack';
import { spawnServer } from '../helpers/child-server';
import { ADMIN_KEY, DEV_KEY, startTestService, startTestStack, type TestService } from '../helpers/service';

let svc: TestService;

beforeAll(async () => {
  svc = await startTestService({ name: 'http-edges' });
});

afterAll(async () => {
  await svc?.stop();
});

/** One raw HTTP/1.x exchange: what a client without a Host header really sends. */
function raw(port: number, request: string): Promise<{ head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => {
      data += d.toString();
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.slice(0, end);
      const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (Buffer.byteLength(data.slice(end + 4)) >= len) {
        s.destroy();
        resolve({ head, body: data.slice(end + 4) });
      }
    });
    s.on('error', reject);
    s.write(request);
  });
}

const portOf = (url: string) => Number(new URL(url).port);

describe('keep-alive', () => {
  it('keeps idle connections longer than the ALB idle timeout (600 s) by default', () => {
    expect(svc.server.runtime.env.keepAliveTimeoutMs).toBeGreaterThanOrEqual(605_000);
    expect(svc.server.app.server.keepAliveTimeout).toBe(svc.server.runtime.env.keepAliveTimeoutMs);
  });

  it('tells clients the keep-alive it keeps', async () => {
    const r = await raw(portOf(svc.url), 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(r.head).toMatch(/keep-alive: timeout=605\b/i);
  });
});

describe('a request without a Host header', () => {
  it('gets 400 with an OpenAI error body and a request id', async () => {
    const r = await raw(
      portOf(svc.url),
      `GET /v1/models HTTP/1.1\r\nAuthorization: Bearer ${DEV_KEY}\r\n\r\n`,
    );
    expect(r.head).toMatch(/^HTTP\/1\.1 400 /);
    expect(r.head).toMatch(/x-request-id: req_[0-9a-f]+/i);
    expect(JSON.parse(r.body)).toEqual({
      error: {
        message: expect.stringContaining('Host'),
        type: 'invalid_request_error',
        param: null,
        code: 'missing_host',
      },
    });
  });

  it('is fine over HTTP/1.0, which has no Host requirement', async () => {
    const r = await raw(portOf(svc.url), 'GET /health HTTP/1.0\r\n\r\n');
    expect(r.head).toMatch(/^HTTP\/1\.[01] 200 /);
  });
});

describe('health and readiness probes', () => {
  it('leave no series in /metrics, while real requests do', async () => {
    for (let i = 0; i < 5; i++) {
      for (const path of ['/health', '/ready', '/health/detailed'])
        await svc.http('GET', path, { key: null });
    }
    expect((await svc.http('GET', '/v1/models')).status).toBe(200);
    const metrics = (await svc.http('GET', '/metrics', { key: ADMIN_KEY })).text;
    expect(metrics).toContain('route="/v1/models"');
    for (const path of ['/health', '/ready', '/health/detailed'])
      expect(metrics).not.toContain(`route="${path}"`);
  });

  describe('in a real process with EMF on', () => {
    let stack: LocalStack;
    beforeAll(async () => {
      stack = await startTestStack('probes');
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('write no log line and no EMF document while only probes arrive', async () => {
      const server = await spawnServer({
        ...stack.env,
        TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
        TOLLGATE_DEV_API_KEY: DEV_KEY,
        TOLLGATE_DRAIN_GRACE_MS: '0',
        POWERTOOLS_METRICS_DISABLED: 'false',
      });
      try {
        await new Promise((r) => setTimeout(r, 1200));
        const before = server.output().length;
        for (let i = 0; i < 10; i++) {
          for (const path of ['/health', '/ready', '/health/detailed']) await fetch(`${server.url}${path}`);
        }
        // Past the 1 s EMF flush interval.
        await new Promise((r) => setTimeout(r, 1500));
        const idle = server.output().slice(before);
        expect(idle).not.toContain('"message":"request"');
        expect(idle).not.toContain('"_aws"');

        // The same process does log and emit for a real request.
        await fetch(`${server.url}/v1/models`, { headers: { authorization: `Bearer ${DEV_KEY}` } });
        await new Promise((r) => setTimeout(r, 1500));
        const busy = server.output().slice(before);
        expect(busy).toContain('"message":"request"');
        expect(busy).toContain('"_aws"');
      } finally {
        await server.stop();
      }
    });
  });
});
