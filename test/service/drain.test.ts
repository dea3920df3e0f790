import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { LocalStack } from '../../container/src/local/stack';
import { queryUsageRecords } from '../../container/src/usage/usage-recorder';
import { spawnServer } from '../helpers/child-server';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { ADMIN_KEY, DEV_KEY, eventually, mockModel, startTestStack } from '../helpers/service';

let upstream: MockUpstream;
let stack: LocalStack;

beforeAll(async () => {
  upstream = await startMockUpstream();
  stack = await startTestStack('drain');
});

afterAll(async () => {
  await stack?.stop();
  await upstream?.close();
});

describe('SIGTERM', () => {
  it('turns /health 503, refuses new work, lets an open stream finish, flushes usage and exits 0', async () => {
    const server = await spawnServer({
      ...stack.env,
      TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
      TOLLGATE_DEV_API_KEY: DEV_KEY,
      TOLLGATE_DRAIN_TIMEOUT_MS: '20000',
      TOLLGATE_DRAIN_GRACE_MS: '500',
      TOLLGATE_CONFIG_JSON: JSON.stringify({
        models: [mockModel(upstream, 'mock-small', { timeoutMs: 10_000 })],
        // Usage stays buffered until shutdown, so the flush on SIGTERM is what writes it.
        usage: { flushIntervalMs: 600_000 },
      }),
    });
    try {
      upstream.enqueue('mock-small', {
        kind: 'stream',
        tokens: Array.from({ length: 15 }, (_, i) => `t${i} `),
        delayMs: 100,
      });
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEV_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'mock-small',
          messages: [{ role: 'user', content: 'long answer please' }],
          stream: true,
        }),
      });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toContain('data: ');

      server.proc.kill('SIGTERM');
      const health = await eventually(
        async () => {
          const h = await fetch(`${server.url}/health`);
          return h.status === 503 ? h : null;
        },
        400,
        10,
      );
      expect(await health.json()).toEqual({ status: 'draining' });
      // After the grace period the listener is closed: new connections are refused.
      await new Promise((r) => setTimeout(r, 700));
      await expect(fetch(`${server.url}/health`)).rejects.toThrow();

      let text = new TextDecoder().decode(first.value);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text.trim().endsWith('data: [DONE]')).toBe(true);
      expect(text).toContain('t14 ');
      expect(await server.exited).toBe(0);
      expect(server.output()).toContain('"message":"draining"');

      const doc = DynamoDBDocumentClient.from(
        new DynamoDBClient({ endpoint: stack.env.AWS_ENDPOINT_URL_DYNAMODB }),
      );
      const rows = await queryUsageRecords(doc, stack.env.TOLLGATE_TABLE_USAGE as string, 'dev');
      expect(rows.filter((r) => r.stream && r.status === 200)).toHaveLength(1);
      doc.destroy();
    } finally {
      await server.stop();
    }
  }, 60_000);
});
