/**
 * Starts a throwaway `redis-server` child process for development and tests.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { getFreePort, type LocalService, sleep } from './ports';

export type { LocalService } from './ports';

/** A running redis-server child. */
export interface RedisServer extends LocalService {
  /** The child's pid, so callers (and tests) can check it is gone after `stop()`. */
  readonly pid: number;
  readonly port: number;
}

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
/** Bytes of the child's output kept for error messages. */
const OUTPUT_TAIL = 4096;

/** Full path of an executable found on PATH, or null. */
export function findOnPath(command: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/**
 * Spawns `redis-server` on a free loopback port without persistence and waits until it
 * answers (checked over a raw socket). Resolves null when `redis-server` is not on PATH, so callers can decide
 * whether that is fatal. The child is killed when this process exits, even without `stop()`.
 *
 * @param opts.port - a fixed port; a free one is picked when omitted.
 * @throws when the server does not answer within 10 s (the message carries its output).
 */
export async function startRedisServer(opts: { port?: number } = {}): Promise<RedisServer | null> {
  const bin = findOnPath('redis-server');
  if (bin === null) return null;
  // A free port can be taken between the probe and the bind; only retry picked ports.
  const attempts = opts.port === undefined ? 3 : 1;
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    const port = opts.port ?? (await getFreePort());
    try {
      return await spawnRedis(bin, port);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

async function spawnRedis(bin: string, port: number): Promise<RedisServer> {
  const child = spawn(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
    ],
    // Its own process group: a Ctrl-C in the terminal (sent to the whole foreground group) must
    // not stop Redis while the service is still draining; stop() and the exit hook stop it.
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  // Drain the pipes (a full pipe would block redis) and keep a tail for error messages.
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  let exited = child.exitCode !== null || child.signalCode !== null;
  let spawnError: Error | undefined;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  child.once('error', (err) => {
    spawnError = err;
    exited = true;
  });
  // A test runner killed mid-suite must not leave a redis behind.
  const killOnExit = (): void => {
    if (!exited) child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exitPromise;
      clearTimeout(timer);
    }
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await answers(port, child.pid))) {
    if (exited || spawnError) {
      await stop();
      throw new Error(
        `redis-server exited before answering on 127.0.0.1:${port}` +
          (spawnError ? `: ${spawnError.message}` : '') +
          `\n${output.trim()}`,
      );
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `redis-server did not answer on 127.0.0.1:${port} within ${READY_TIMEOUT_MS} ms\n${output.trim()}`,
      );
    }
    await sleep(25);
  }

  let stopping: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid ?? -1,
    port,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}

/**
 * Whether the redis on `port` answers and is our child: a raw `INFO server` (a raw socket
 * avoids a client library's reconnect loop and logging) whose `process_id` must be `pid`,
 * because a racing process could have taken the port while our child failed to bind it.
 */
function answers(port: number, pid: number | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('INFO server\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      // An error reply (e.g. -LOADING) means not ready yet.
      if (reply.startsWith('-')) return done(false);
      const m = /\r\nprocess_id:(\d+)\r\n/.exec(reply);
      if (m) done(Number(m[1]) === pid);
    });
    socket.once('end', () => done(false));
  });
}
