import type { FastifyInstance } from 'fastify';
import { buildApp, type RoutePlugin } from './app';
import { type RuntimeEnv, readEnv } from './config/env';
import { loadSecretEnv, watchSecrets } from './config/secrets';
import { ConfigError } from './errors';
import { servicePlugins } from './plugins';
import { createRuntime, type Runtime } from './runtime';
import { loadTokenizer } from './tokens/o200k';

export interface RunningServer {
  app: FastifyInstance;
  runtime: Runtime;
  url: string;
  /** Drain and stop: /health 503, stop accepting, finish open streams (bounded), flush usage. */
  shutdown(): Promise<void>;
}

/** How often a drain closes connections whose last response just ended. */
const DRAIN_SWEEP_MS = 100;

/** Start the service on env.host:env.port. */
export async function startServer(env: RuntimeEnv, plugins: RoutePlugin[] = []): Promise<RunningServer> {
  // Every request counts prompt tokens: read the rank table now, not on the first request.
  // (The Lambdas load it when they first need it; the DLQ handler never does.)
  loadTokenizer();
  const runtime = await createRuntime(env);
  const secrets = watchSecrets(env.secretRefreshMs, runtime.telemetry);
  secrets.start();
  runtime.onClose.push(async () => secrets.stop());
  let app: FastifyInstance;
  try {
    app = buildApp(runtime, plugins);
    await app.listen({ host: env.host, port: env.port });
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : env.port;
  const url = `http://${env.host === '0.0.0.0' ? '127.0.0.1' : env.host}:${port}`;
  let stopping: Promise<void> | null = null;
  const shutdown = () => {
    stopping ??= (async () => {
      runtime.setDraining();
      runtime.telemetry.logger.info('draining', { graceMs: env.drainGraceMs, timeoutMs: env.drainTimeoutMs });
      // Still serving, /health says 503: the load balancer takes the task out before we stop
      // accepting connections.
      if (env.drainGraceMs > 0) await new Promise((r) => setTimeout(r, env.drainGraceMs));
      const forced = setTimeout(() => app.server.closeAllConnections(), env.drainTimeoutMs);
      forced.unref();
      // A response that ends during the drain on a kept-alive connection (a stream whose headers
      // went out before the drain, so without `connection: close`) would otherwise hold its idle
      // socket, and the process, until the client closes it or the keep-alive timeout (605 s)
      // ends. Node closes idle connections only once, when closing starts: sweep until done.
      const sweep = setInterval(() => app.server.closeIdleConnections(), DRAIN_SWEEP_MS);
      sweep.unref();
      try {
        await app.close();
      } finally {
        clearInterval(sweep);
        clearTimeout(forced);
      }
      // The usage of the requests that just finished, before the runtime's close hooks stop what
      // it writes to (in `npm run dev`: the emulators). Since the drain no longer waits for kept-
      // alive connections, the last stream can end a few ms before this; runtime.close retries
      // whatever is still unwritten.
      await runtime.usage.flush().catch(() => undefined);
      await runtime.close();
      runtime.telemetry.logger.info('stopped');
    })();
    return stopping;
  };
  return { app, runtime, url, shutdown };
}

/**
 * A repeat of the same signal within this long is the same stop request delivered again: a
 * Ctrl-C under `npm run dev` reaches this process twice (the terminal signals the whole process
 * group, and npm forwards what it got to its child).
 */
export const REPEATED_SIGNAL_MS = 2000;

/** One line for a start failure: the message of a config error or a busy port, else the stack. */
export function describeStartError(err: unknown, env?: Pick<RuntimeEnv, 'host' | 'port'>): string {
  if (err instanceof ConfigError) return err.message;
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e?.code === 'EADDRINUSE') {
    const where = `${e.address ?? env?.host ?? ''}:${e.port ?? env?.port ?? ''}`;
    return `port ${e.port ?? env?.port} is already in use (${where}); set PORT to a free port (e.g. PORT=8081) or stop the other process.`;
  }
  if (e?.code === 'EACCES' && e.syscall === 'listen')
    return `not allowed to listen on port ${e.port ?? env?.port}; set PORT to a port above 1023.`;
  return (err as Error)?.stack ?? String(err);
}

/**
 * Process entry: start, and drain on SIGTERM/SIGINT, then exit 0. The first signal drains; its
 * repeats are ignored; an interactive SIGINT sent again later (Ctrl-C pressed twice) stops at once.
 */
export async function main(
  env: RuntimeEnv = readEnv(),
  plugins: RoutePlugin[] = servicePlugins,
): Promise<RunningServer> {
  const server = await startServer(env, plugins);
  server.runtime.telemetry.logger.info('listening', {
    url: server.url,
    models: server.runtime.router.list().map((e) => e.config.id),
  });
  let firstAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now();
    if (firstAt !== 0) {
      if (signal === 'SIGINT' && now - firstAt > REPEATED_SIGNAL_MS) {
        server.runtime.telemetry.logger.warn('second Ctrl-C: stopping now, open streams are cut');
        process.exit(130);
      }
      return;
    }
    firstAt = now;
    server.runtime.telemetry.logger.info('signal received', { signal });
    server.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        server.runtime.telemetry.logger.error('shutdown failed', { error: err as Error });
        process.exit(1);
      },
    );
  };
  // `on`, not `once`: with no listener left, a repeated signal would kill the process mid-drain.
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return server;
}

if (require.main === module) {
  loadSecretEnv()
    .then(() => main())
    .catch((err: unknown) => {
      process.stderr.write(`tollgate failed to start: ${describeStartError(err)}\n`);
      process.exit(1);
    });
}
