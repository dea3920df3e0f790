/**
 * Shared plumbing for the local emulators (Redis, DynamoDB, SQS) used by `dev.ts`, the
 * service tests and the benchmarks. Nothing here is loaded by the production server.
 */
import { createServer } from 'node:net';

/** A local emulator process or in-process server, with its endpoint. */
export interface LocalService {
  /** Where clients connect: `redis://127.0.0.1:N` or `http://127.0.0.1:N`. */
  url: string;
  /** Stops the service and releases its port; safe to call more than once. */
  stop(): Promise<void>;
}

/**
 * Asks the kernel for a free TCP port on 127.0.0.1. The port is released before this
 * resolves, so another process can take it in between: callers that spawn a child on it
 * should retry on a bind failure. In-process servers should rather listen on port 0.
 */
export function getFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not read the port of a probe socket'));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

/** The port a listening server got, for servers started on port 0. */
export function listeningPort(server: { address(): unknown }): number {
  const addr = server.address();
  if (typeof addr === 'object' && addr !== null && 'port' in addr && typeof addr.port === 'number') {
    return addr.port;
  }
  throw new Error('server is not listening on a TCP port');
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Closes a node:http server and every connection it holds. `close()` alone waits for
 * keep-alive sockets (the AWS SDK keeps them open), which would hang a test teardown.
 */
export function closeHttpServer(server: {
  close(cb?: (err?: Error) => void): unknown;
  closeAllConnections?: () => void;
}): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err?: Error) => {
      // Closing an already closed server is not a failure for a teardown.
      if (err && (err as NodeJS.ErrnoException).code !== 'ERR_SERVER_NOT_RUNNING') reject(err);
      else resolve();
    });
    server.closeAllConnections?.();
  });
}
