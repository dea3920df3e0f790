/**
 * The AWS SDK over Tollgate's undici request handler: the SDK's retry strategy must still see
 * refused connections, silent servers and dropped sockets as transient, and an abort as final.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { UndiciHttpHandler } from '../../container/src/aws/undici-handler';
import { getFreePort } from '../../container/src/local/ports';

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

function client(endpoint: string, handler = new UndiciHttpHandler({ requestTimeout: 300 })) {
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials,
    maxAttempts: 3,
    requestHandler: handler,
  });
}

const get = () => new GetItemCommand({ TableName: 'things', Key: { id: { S: 'a' } } });

async function listen(server: Server | TcpServer): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** Closed after each test, dropping whatever connections the client left open. */
function track(server: Server | TcpServer): void {
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
}

describe('UndiciHttpHandler under the AWS SDK', () => {
  it('carries a request and its answer: method, path, signed headers, JSON body', async () => {
    const seen: Array<{ method?: string; url?: string; headers: Record<string, unknown>; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify({ Item: { id: { S: 'a' }, n: { N: '7' } } }));
      });
    });
    track(server);
    const c = client(await listen(server));
    const out = await c.send(get());
    expect(out.Item).toEqual({ id: { S: 'a' }, n: { N: '7' } });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/' });
    expect(seen[0]?.headers['x-amz-target']).toBe('DynamoDB_20120810.GetItem');
    expect(String(seen[0]?.headers['authorization'])).toMatch(/^AWS4-HMAC-SHA256 Credential=test\//);
    expect(JSON.parse(seen[0]?.body ?? '{}')).toEqual({ TableName: 'things', Key: { id: { S: 'a' } } });
    c.destroy();
  });

  it('retries a refused connection as transient, then reports it', async () => {
    const port = await getFreePort();
    const c = client(`http://127.0.0.1:${port}`);
    const err = (await c.send(get()).catch((e: unknown) => e)) as Error & {
      code?: string;
      $metadata?: { attempts?: number };
    };
    // Three attempts: the strategy saw a transient error. (Under jest the SDK wraps errors from
    // Node's realm, keeping the message, not the code.)
    expect(err.$metadata?.attempts).toBe(3);
    expect(err.message).toContain('ECONNREFUSED');
    c.destroy();
  });

  it('times out a silent server as TimeoutError, retried by the SDK', async () => {
    let connections = 0;
    const server = createTcpServer((socket) => {
      connections++;
      socket.on('error', () => {});
      // Reads the request, never answers.
    });
    track(server);
    const c = client(await listen(server));
    const started = Date.now();
    const err = (await c.send(get()).catch((e: unknown) => e)) as Error & {
      $metadata?: { attempts?: number };
    };
    expect(err.$metadata?.attempts).toBe(3);
    expect(err.message).toMatch(/timeout/i);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3 * 300);
    expect(connections).toBeGreaterThanOrEqual(1);
    c.destroy();
  });

  it('retries a connection dropped mid-answer as ECONNRESET and succeeds when the server recovers', async () => {
    let calls = 0;
    const server = createServer((req, res) => {
      calls++;
      req.resume();
      req.on('end', () => {
        if (calls === 1) {
          // Headers promise a body that never comes: the socket dies mid-response.
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'content-length': '100' });
          res.write('{"Item":');
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
        res.end('{}');
      });
    });
    track(server);
    const c = client(await listen(server));
    const out = await c.send(get());
    expect(out.$metadata.attempts).toBe(2);
    expect(calls).toBe(2);
    c.destroy();
  });

  it('stops at an abort without retrying', async () => {
    let calls = 0;
    const server = createServer((req) => {
      calls++;
      req.resume();
    });
    track(server);
    const c = client(await listen(server), new UndiciHttpHandler({ requestTimeout: 10_000 }));
    const ac = new AbortController();
    // A reason of the caller's own (as AbortSignal.timeout gives a TimeoutError): still an abort.
    setTimeout(() => ac.abort(new Error('caller gave up')), 50);
    const err = (await c.send(get(), { abortSignal: ac.signal }).catch((e: unknown) => e)) as Error & {
      $metadata?: { attempts?: number };
    };
    expect(err.name).toBe('AbortError');
    expect(err.$metadata?.attempts ?? 1).toBe(1);
    expect(calls).toBe(1);
    c.destroy();
  });
});
