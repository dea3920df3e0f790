/**
 * A stream that ends during the drain, on a connection the client keeps alive (as a load
 * balancer does): the server must close that connection once the response ended, so the
 * process exits right after the stream instead of when the client (or the keep-alive timeout)
 * lets go of the socket.
 */
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import type { LocalStack } from '../../container/src/local/stack';
import { spawnServer } from '../helpers/child-server';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { ADMIN_KEY, DEV_KEY, mockModel, startTestStack } from '../helpers/service';

let upstream: MockUpstream;
let stack: LocalStack;

beforeAll(async () => {
  upstream = await startMockUpstream();
  stack = await startTestStack('drain-keepalive');
});

afterAll(async () => {
  await stack?.stop();
  await upstream?.close();
});

interface Exchange {
  status: number;
  body: string;
  socket: Socket;
  endedAt: number;
}

function send(agent: Agent, url: string, path: string, body?: object): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, url);
    const req = request(
      u,
      {
        agent,
        method: body ? 'POST' : 'GET',
        headers: {
          authorization: `Bearer ${DEV_KEY}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: text,
            socket: req.socket as Socket,
            endedAt: Date.now(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

describe('a drain with a kept-alive connection', () => {
  it('closes the connection when a stream ends during the drain, and the process exits at once', async () => {
    const server = await spawnServer({
      ...stack.env,
      TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
      TOLLGATE_DEV_API_KEY: DEV_KEY,
      TOLLGATE_DRAIN_TIMEOUT_MS: '60000',
      TOLLGATE_DRAIN_GRACE_MS: '300',
      TOLLGATE_CONFIG_JSON: JSON.stringify({
        models: [mockModel(upstream, 'mock-small', { timeoutMs: 10_000 })],
      }),
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // The connection the stream will reuse.
      const warm = await send(agent, server.url, '/health');
      expect(warm.status).toBe(200);

      upstream.enqueue('mock-small', {
        kind: 'stream',
        tokens: Array.from({ length: 20 }, (_, i) => `t${i} `),
        delayMs: 150,
      });
      const stream = send(agent, server.url, '/v1/chat/completions', {
        model: 'mock-small',
        stream: true,
        messages: [{ role: 'user', content: 'a 3 s answer' }],
      });
      await new Promise((r) => setTimeout(r, 500));
      server.proc.kill('SIGTERM');

      const done = await stream;
      expect(done.status).toBe(200);
      expect(done.body.trim().endsWith('data: [DONE]')).toBe(true);
      expect(done.socket).toBe(warm.socket);

      // The server hangs up the idle connection, although the client would keep it.
      const closedAt = await new Promise<number>((resolve) => {
        if (done.socket.destroyed) resolve(Date.now());
        else done.socket.once('close', () => resolve(Date.now()));
      });
      expect(closedAt - done.endedAt).toBeLessThan(1000);
      expect(await server.exited).toBe(0);
      expect(Date.now() - done.endedAt).toBeLessThan(3000);
    } finally {
      agent.destroy();
      await server.stop();
    }
  }, 90_000);
});
