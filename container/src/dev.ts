/**
 * `npm run dev`: the whole system on one machine. Starts the embedded stand-ins (redis-server,
 * dynalite, local-aws-sqs), creates tables and queues, builds the console in memory (and again on
 * every change), then the service on HOST:PORT (127.0.0.1:8080). Serves the built-in simulator
 * unless OPENAI_BASE_URL or TOLLGATE_CONFIG names an upstream.
 *
 * Defaults for a person at a terminal, each overridable by setting the variable: readable log
 * lines (TOLLGATE_LOG_FORMAT=json for Powertools JSON), no EMF documents
 * (POWERTOOLS_METRICS_DISABLED=false shows them), loopback only (HOST=0.0.0.0 to share), the
 * console on, no drain grace (there is no load balancer to notice), no AWS SDK Node-version notice.
 */
import { randomBytes } from 'node:crypto';
import { type ConsoleFiles, type ConsoleWatch, watchConsole } from '../../console/build';
import { type RuntimeEnv, readEnv } from './config/env';
import { ENV } from './contract';
import { type ConsoleAssets, consoleAsset } from './http/console-routes';
import { startDevWorker } from './local/poller';
import { type LocalStack, startLocalStack } from './local/stack';
import { servicePluginsWith } from './plugins';
import { describeStartError, main } from './server';

const DEV_DEFAULTS: Record<string, string> = {
  [ENV.host]: '127.0.0.1',
  [ENV.consoleEnabled]: 'true',
  [ENV.logFormat]: 'dev',
  [ENV.drainGraceMs]: '0',
  [ENV.drainTimeoutMs]: '30000',
  POWERTOOLS_METRICS_DISABLED: 'true',
  // The SDK's 9-line notice that it will want Node 22 from 2027; the banner says it in one line.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

function assetsOf(files: ConsoleFiles): ConsoleAssets {
  return new Map([...files].map(([name, body]) => [name, consoleAsset(name, body)]));
}

/** The console, built now and on every change; null (with a warning) if it cannot be built. */
async function startConsoleBuild(state: { assets: ConsoleAssets | null }): Promise<ConsoleWatch | null> {
  try {
    return await watchConsole(
      (files) => {
        state.assets = assetsOf(files);
      },
      (message) => console.error(`console build failed (the last good build stays served): ${message}`),
    );
  } catch (err) {
    console.error(`console build failed; /console is not served: ${(err as Error).message}`);
    return null;
  }
}

/** Read once the environment is parsed, so a start failure can name the port. */
let startEnv: RuntimeEnv | undefined;

async function dev(): Promise<void> {
  for (const [k, v] of Object.entries(DEV_DEFAULTS)) process.env[k] ??= v;
  const consoleState: { assets: ConsoleAssets | null } = { assets: null };
  let stack: LocalStack | undefined;
  let watch: ConsoleWatch | null = null;
  try {
    [stack, watch] = await Promise.all([startLocalStack(), startConsoleBuild(consoleState)]);
  } catch (err) {
    await stack?.stop();
    throw err;
  }
  Object.assign(process.env, stack.env);
  const key = (name: string, prefix: string) => {
    process.env[name] ||= `${prefix}${randomBytes(18).toString('base64url')}`;
    return process.env[name] as string;
  };
  // Browser apps on any localhost port may call the API in dev (none are allowed by default).
  process.env['TOLLGATE_CORS_ORIGINS'] ??= 'localhost';
  const devKey = key('TOLLGATE_DEV_API_KEY', 'sk-tg-dev-');
  const adminKey = key('TOLLGATE_ADMIN_API_KEY', 'sk-tg-admin-');
  let server: Awaited<ReturnType<typeof main>>;
  const env = readEnv();
  startEnv = env;
  try {
    server = await main(env, servicePluginsWith({ console: { assets: () => consoleState.assets } }));
  } catch (err) {
    await watch?.stop();
    await stack.stop();
    throw err;
  }
  const running = stack;
  // onClose runs in reverse: the poller stops before the emulators it polls.
  server.runtime.onClose.push(() => running.stop());
  if (watch) {
    const w = watch;
    server.runtime.onClose.push(() => w.stop());
  }
  await startDevWorker(server.runtime);

  const base = server.url;
  const models = server.runtime.router.list().map((e) => e.config.id);
  const chatModel = server.runtime.router.list().find((e) => e.config.endpoints.includes('chat'))?.config.id;
  const upstream =
    env.openaiBaseUrl ??
    (env.configPath ? `models from ${env.configPath}` : 'built-in simulator (no upstream configured)');
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  const notes: string[] = [];
  if (env.host !== '127.0.0.1' && env.host !== 'localhost' && env.host !== '::1')
    notes.push(`listening on ${env.host}: other machines can reach it, and the keys above work from there`);
  if (nodeMajor < 22)
    notes.push(`Node ${process.versions.node}: fine here; the AWS SDK wants Node 22 from January 2027`);
  if (!consoleState.assets)
    notes.push('the console could not be built (see above); the API works without it');
  console.log(`
  Tollgate is running at ${base}   (Ctrl-C drains and stops)
    console:   ${base}/console   (sign in with the admin key)
    models:    ${models.join(', ')}  [${upstream}]
    stand-ins: ${stack.started.length ? stack.started.join(', ') : 'none (using the endpoints from your environment)'}
    dev key:   ${devKey}
    admin key: ${adminKey}
${notes.map((n) => `    note:      ${n}\n`).join('')}
  Try (in another terminal):
    export DEV_KEY=${devKey}
    curl ${base}/v1/chat/completions -H "Authorization: Bearer $DEV_KEY" \\
      -H "Content-Type: application/json" -d '{"model":"${chatModel}","messages":[{"role":"user","content":"Hello!"}]}'
`);
}

dev().catch((err: unknown) => {
  console.error(`tollgate dev failed to start: ${describeStartError(err, startEnv)}`);
  process.exit(1);
});
