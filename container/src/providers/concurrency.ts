import { ClientAbortError, ServiceUnavailableError } from '../errors';

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  signal: AbortSignal;
  onAbort: () => void;
}

/**
 * A per-model concurrency limit with a bounded FIFO wait queue. A full queue fails fast
 * with 503 + Retry-After so one hot model cannot pile up unbounded work.
 */
export class ConcurrencyLimiter {
  private active = 0;
  private readonly waiters: Waiter[] = [];
  private head = 0;

  constructor(
    readonly model: string,
    readonly maxConcurrent: number,
    readonly maxQueue: number,
    readonly queueTimeoutMs: number,
  ) {}

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiters.length - this.head;
  }

  /** Resolves with a release function once a slot is free. */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(new ClientAbortError());
    if (this.active < this.maxConcurrent && this.queued === 0) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.queued >= this.maxQueue) {
      return Promise.reject(
        new ServiceUnavailableError(`Model '${this.model}' is at capacity; retry shortly.`, {
          code: 'server_busy',
          retryAfterSeconds: 1,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        timer: setTimeout(() => {
          this.remove(waiter);
          reject(
            new ServiceUnavailableError(`Timed out waiting for capacity on model '${this.model}'.`, {
              code: 'server_busy',
              retryAfterSeconds: 1,
            }),
          );
        }, this.queueTimeoutMs),
        onAbort: () => {
          this.remove(waiter);
          reject(new ClientAbortError());
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private remove(w: Waiter): void {
    clearTimeout(w.timer);
    w.signal.removeEventListener('abort', w.onAbort);
    const i = this.waiters.indexOf(w, this.head);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.next();
    };
  }

  private next(): void {
    while (this.active < this.maxConcurrent && this.head < this.waiters.length) {
      const w = this.waiters[this.head++] as Waiter;
      clearTimeout(w.timer);
      w.signal.removeEventListener('abort', w.onAbort);
      this.active++;
      w.resolve(this.releaser());
    }
    // Compact the array once the consumed prefix dominates, keeping shift() off the hot path.
    if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters.splice(0, this.head);
      this.head = 0;
    }
  }
}
