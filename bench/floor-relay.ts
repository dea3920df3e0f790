/**
 * The floor: the least a Node gateway can do. Fastify receives the request, undici forwards the
 * body to the upstream on a keep-alive pool and the answer is piped back (streams included):
 * no auth, no limits, no usage, no logging, no validation. Whatever Tollgate spends beyond this
 * process's CPU per request is what its features cost.
 *
 *   tsx bench/floor-relay.ts --upstream http://127.0.0.1:PORT   (prints FLOOR_URL=<url>)
 */
import Fastify from 'fastify';
import { Pool } from 'undici';
import { serveUntilStopped } from './lib/procs';

async function main(): Promise<void> {
  const i = process.argv.indexOf('--upstream');
  const upstream = i === -1 ? undefined : process.argv[i + 1];
  if (!upstream) throw new Error('--upstream http://host:port is required');
  const pool = new Pool(upstream, { connections: 256, keepAliveTimeout: 30_000 });
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  // The body is relayed as bytes: nothing is parsed.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  const relay = async (req: { url: string; body: unknown }, reply: import('fastify').FastifyReply) => {
    const res = await pool.request({
      path: req.url,
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer floor' },
      body: req.body as Buffer,
    });
    reply.code(res.statusCode);
    const type = res.headers['content-type'];
    if (typeof type === 'string') reply.header('content-type', type);
    return reply.send(res.body);
  };
  for (const path of ['/v1/chat/completions', '/v1/embeddings']) app.post(path, relay);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  console.log(`FLOOR_URL=http://127.0.0.1:${port}`);
  serveUntilStopped(async () => {
    await app.close();
    await pool.close();
  });
}

main().catch((err: unknown) => {
  console.error(`floor-relay failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
