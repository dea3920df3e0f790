import type { ServerResponse } from 'node:http';
import type { ApiError } from '../errors';

/**
 * A server-sent-events writer on the raw response. Headers go out lazily (first chunk or first
 * ping) so that failures before then can still be a proper JSON error with its status.
 */
export class SseWriter {
  private started = false;
  private ended = false;
  private sentData = false;
  private pings: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: () => Record<string, string>,
  ) {}

  get headersSent(): boolean {
    return this.started;
  }

  get closed(): boolean {
    return this.ended || this.res.destroyed;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, {
      ...this.headers(),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Tell nginx-style proxies not to buffer the stream.
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
  }

  /** Write one event; resolves when the socket can take more (backpressure). */
  write(payload: string): Promise<void> | undefined {
    if (this.closed) return undefined;
    this.start();
    if (this.res.write(payload)) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }

  data(obj: unknown): Promise<void> | undefined {
    this.firstData();
    return this.write(`data: ${JSON.stringify(obj)}\n\n`);
  }

  /** A named event (`event: <type>`), as the Responses API streams them. */
  event(type: string, obj: unknown): Promise<void> | undefined {
    this.firstData();
    return this.write(`event: ${type}\ndata: ${JSON.stringify(obj)}\n\n`);
  }

  ping(): void {
    void this.write(': ping\n\n');
  }

  /**
   * `: ping` comments every `intervalMs` until the first event goes out (a slow first token must
   * not look like a dead connection to proxies and clients). Returns the stop function.
   */
  keepAlive(intervalMs: number): () => void {
    this.stopPings();
    this.pings = setInterval(() => this.ping(), intervalMs);
    return () => this.stopPings();
  }

  private firstData(): void {
    if (this.sentData) return;
    this.sentData = true;
    this.stopPings();
  }

  private stopPings(): void {
    if (this.pings) clearInterval(this.pings);
    this.pings = undefined;
  }

  /**
   * Report a failure: as an error event when the stream already started (the SDKs raise it),
   * else as a normal JSON error response with its status.
   */
  async fail(e: ApiError, headers: Record<string, string>): Promise<void> {
    this.stopPings();
    if (this.started) {
      await this.data(e.toJSON());
      this.end(false);
      return;
    }
    if (this.res.destroyed) return;
    this.ended = true;
    this.res.writeHead(e.status, {
      ...headers,
      ...e.headers,
      'content-type': 'application/json; charset=utf-8',
    });
    this.res.end(JSON.stringify(e.toJSON()));
  }

  end(done = true): void {
    this.stopPings();
    if (this.closed) return;
    if (done) this.res.write('data: [DONE]\n\n');
    this.ended = true;
    this.res.end();
  }
}
