import type { DependencyCheck } from '../telemetry/health';
import { FAMILIES, type ModelConfig, modelSchema } from './registry';
import type { FamilyContext } from './types';

/** What the catalogue loader reports (the runtime turns it into logs and metrics). */
export interface DiscoveryEvents {
  discovered(models: string[]): void;
  failed(error: Error, retryInMs: number): void;
}

export interface DiscoveryOptions {
  ctx: FamilyContext;
  /** Serve what was found (called once, on the first success). */
  apply(models: ModelConfig[]): void;
  events: DiscoveryEvents;
  /** How long one attempt may take. @default 10000 */
  attemptTimeoutMs?: number;
  /** Retry delays after failures: from `minRetryMs`, doubling, at most `maxRetryMs`. */
  minRetryMs?: number;
  maxRetryMs?: number;
}

/**
 * Models listed by an upstream (the OPENAI_BASE_URL shortcut). Never fatal: a start with an
 * upstream that is down, slow or refuses the key (a placeholder secret on the first deploy)
 * serves nothing until a later attempt succeeds, with `/ready` failing meanwhile.
 */
export class CatalogueDiscovery {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastError: Error | null = null;
  private done = false;
  private delay: number;
  private current: Promise<void> | null = null;

  constructor(
    private readonly o: DiscoveryOptions,
    private readonly run: (signal: AbortSignal) => Promise<unknown[]>,
  ) {
    this.delay = o.minRetryMs ?? 2000;
  }

  /** A discovery for the first family the environment configures, or null. */
  static forEnvironment(o: DiscoveryOptions): CatalogueDiscovery | null {
    for (const f of FAMILIES) {
      const run = 'discover' in f ? f.discover(o.ctx) : null;
      if (run) return new CatalogueDiscovery(o, run);
    }
    return null;
  }

  /** Whether models were found. */
  get ready(): boolean {
    return this.done;
  }

  /** Why the catalogue is still empty, if it is. */
  get pendingReason(): string | null {
    if (this.done) return null;
    return this.lastError ? this.lastError.message : 'model discovery has not finished yet';
  }

  /** The readiness check: fails until the upstream listed its models. */
  readonly check: DependencyCheck = {
    name: 'catalogue',
    check: async () => {
      if (!this.done) throw new Error(`no models yet: ${this.pendingReason}`);
    },
  };

  /** One attempt now (bounded); on failure, retries continue in the background. */
  async start(): Promise<boolean> {
    await this.attempt();
    return this.done;
  }

  /**
   * Try now instead of at the next scheduled retry (joining an attempt under way), and tell
   * whether models are served. For processes that freeze between invocations (Lambda), where a
   * background retry only runs while an invocation does: the one that found the upstream
   * recovered would otherwise still fail.
   */
  async retryNow(): Promise<boolean> {
    if (this.done || this.stopped) return this.done;
    if (!this.current && this.timer) clearTimeout(this.timer);
    await this.attempt();
    return this.done;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** One attempt at a time: a scheduled retry and {@link retryNow} share it. */
  private attempt(): Promise<void> {
    this.current ??= this.tryOnce().finally(() => {
      this.current = null;
    });
    return this.current;
  }

  private async tryOnce(): Promise<void> {
    if (this.stopped || this.done) return;
    try {
      const raw = await this.run(AbortSignal.timeout(this.o.attemptTimeoutMs ?? 10_000));
      // One odd entry (an id longer than the catalogue allows) must not block the rest forever.
      const models = raw.flatMap((m) => {
        const r = modelSchema.safeParse(m);
        return r.success ? [r.data] : [];
      });
      if (models.length === 0) throw new Error('the upstream lists no model the catalogue can serve');
      this.done = true;
      this.lastError = null;
      this.o.apply(models);
      this.o.events.discovered(models.map((m) => m.id));
    } catch (err) {
      this.lastError = err instanceof Error ? err : new Error(String(err));
      const wait = this.delay;
      this.delay = Math.min(this.delay * 2, this.o.maxRetryMs ?? 60_000);
      this.o.events.failed(this.lastError, wait);
      if (this.stopped) return;
      this.timer = setTimeout(() => void this.attempt(), wait);
      this.timer.unref();
    }
  }
}
