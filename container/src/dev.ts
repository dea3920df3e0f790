/**
 * `npm run dev`: the whole system on one machine. Starts the embedded stand-ins (redis-server,
 * dynalite, local-aws-sqs), creates tables and queues, then the service on PORT (8080). Serves
 * the built-in simulator unless OPENAI_BASE_URL or TOLLGATE_CONFIG names an upstream.
 */
import { randomBytes } from 'node:crypto';
import { readEnv } from './config/env';
import { ConfigError } from './errors';
import { startDevWorker } from './local/poller';
import { startLocalStack } from './local/stack';
import { main } from './server';

async function dev(): Promise<void> {
  const stack = await startLocalStack();
  Object.assign(process.env, stack.env);
  const key = (name: string, prefix: string) => {
    process.env[name] ||= `${prefix}${randomBytes(18).toString('base64url')}`;
    return process.env[name] as string;
  };
  // Browser apps on any localhost port may call the API in dev (none are allowed by default).
  process.env['TOLLGATE_CORS_ORIGINS'] ??= 'localhost';
  const devKey = key('TOLLGATE_DEV_API_KEY', 'sk-tg-dev-');
  const adminKey = key('TOLLGATE_ADMIN_API_KEY', 'sk-tg-admin-');
  const env = readEnv();
  const server = await main(env);
  // onClose runs in reverse: the poller stops before the emulators it polls.
  server.runtime.onClose.push(() => stack.stop());
  await startDevWorker(server.runtime);

  const base = server.url;
  const upstream =
    env.openaiBaseUrl ??
    (env.configPath ? `models from ${env.configPath}` : 'built-in simulator (no upstream configured)');
  console.log(`
  Tollgate is running at ${base}   (Ctrl-C drains and stops)
    models:   ${server.runtime.router
      .list()
      .map((e) => e.config.id)
      .join(', ')}  [${upstream}]
    stand-ins: ${stack.started.length ? stack.started.join(', ') : 'none (using the endpoints from your environment)'}
    dev key:   ${devKey}
    admin key: ${adminKey}

  Try:
    curl ${base}/v1/chat/completions -H "Authorization: Bearer ${devKey}" \\
      -H "Content-Type: application/json" -d '{"model":"${server.runtime.router.list().find((e) => e.config.endpoints.includes('chat'))?.config.id}","messages":[{"role":"user","content":"Hello!"}]}'
`);
}

dev().catch((err: unknown) => {
  console.error(
    `tollgate dev failed to start: ${err instanceof ConfigError ? err.message : ((err as Error).stack ?? String(err))}`,
  );
  process.exit(1);
});
