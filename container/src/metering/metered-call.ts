/**
 * The metered call: the one place a request becomes admission (limits + reservation), a cache
 * decision, the provider call and exactly one usage record with its reconciliation. Every
 * endpoint (chat completions, embeddings, responses, the assistant) and the async producer and
 * worker drive their calls through one of these; an endpoint only adds how it asks the router
 * and what its cache stores.
 */
import { ApiError, ClientAbortError } from '../errors';
import type { Principal } from '../keys/key-store';
import type { AdmissionResult, Limiter, Reservation } from '../limits/limiter';
import type { Endpoint } from '../providers/catalogue';
import type { ModelConfig } from '../providers/registry';
import type { Telemetry } from '../telemetry/telemetry';
import { countTextTokens } from '../tokens/count';
import { costUsd } from '../usage/pricing';
import type { UsageRecord } from '../usage/usage-recorder';
import type { Usage } from '../wire/chat';

export type CacheStatus = 'HIT' | 'MISS' | 'BYPASS';

/**
 * Where a finished call's usage record and its reconciliation go. The default writes the record
 * and reconciles at once; the async worker holds both until its job's final write is won.
 */
export interface UsageSink {
  commit(record: UsageRecord, reconcile: () => void): void;
}

/** What metering runs on. */
export interface MeterDeps {
  limiter: Limiter;
  sink: UsageSink;
  telemetry: Telemetry;
}

/** Per-call settings from the caller (HTTP route, worker, assistant). */
export interface MeteredCallOptions {
  requestId: string;
  signal: AbortSignal;
  /** The client's Cache-Control header (`no-store` bypasses the cache). */
  cacheControl?: string | undefined;
  /** `sync`, `async` or `assistant`: recorded on the usage row. */
  source: string;
  /**
   * Admission happened elsewhere (the async worker: at submission). The call reconciles
   * `reservation` (the job's), when given, instead of making its own.
   */
  skipAdmission?: boolean;
  reservation?: Reservation | null | undefined;
}

/** What the endpoint worked out before admission. */
export interface CallPlan {
  endpoint: Endpoint | 'responses';
  /** The catalogue entry asked for (after `auto` routing). */
  model: ModelConfig;
  stream: boolean;
  /** The prompt as the gateway counts it (used when the upstream's usage lacks it). */
  promptTokens: number;
  /** Tokens reserved at admission: prompt + the most the answer may use. */
  reserveTokens: number;
  /** USD reserved at admission (worst case). */
  reserveCostUsd: number;
}

/** Token counts of one call, in the gateway's terms. */
export interface TokenCounts {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens read from the provider's prompt cache (part of promptTokens). */
  cachedTokens: number;
  /** Prompt tokens written to the provider's prompt cache (part of promptTokens). */
  cacheWriteTokens: number;
}

/** How a call ended, as the endpoint saw it. */
export interface CallOutcome {
  status: number;
  /** The upstream's usage, in OpenAI's shape; trusted for amounts, checked for types. */
  usage?: Usage | null | undefined;
  /** What reached the client, counted when the usage lacks the completion count. */
  deliveredText?: string | undefined;
  errorCode?: string | undefined;
  /** Served from the gateway's cache: no cost, no tokens charged. */
  cached?: boolean | undefined;
  /** The catalogue entry that answered (a fallback), priced and recorded; @default the plan's */
  servedBy?: ModelConfig | undefined;
}

/** What finishing a call reports back (for logs and headers). */
export interface CallSummary {
  model: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
  estimated: boolean;
  ttftMs: number | undefined;
}

/** One metered call from admission to its single usage record. HTTP-free. */
export class MeteredCall {
  readonly startedAt = performance.now();
  cacheStatus: CacheStatus = 'BYPASS';
  private admission: AdmissionResult = { reservation: null, headers: {} };
  private finished: CallSummary | null = null;
  private firstTokenAt: number | undefined;
  private handedOff = false;
  private served: ModelConfig | undefined;

  constructor(
    protected readonly meter: MeterDeps,
    readonly principal: Principal,
    readonly plan: CallPlan,
    readonly opts: MeteredCallOptions,
  ) {
    if (opts.reservation) this.admission = { reservation: opts.reservation, headers: {} };
  }

  /** The public id of the model asked for. */
  get modelId(): string {
    return this.plan.model.id;
  }

  /** What admission reserved (null when nothing was, or after a hand-off). */
  get reservation(): Reservation | null {
    return this.admission.reservation;
  }

  /** Rate-limit and cache headers for the response. */
  headers(): Record<string, string> {
    return { ...this.admission.headers, 'x-tollgate-cache': this.cacheStatus };
  }

  /** Admission alone (no cache). A refusal throws the limiter's 429 (with its headers) or 503. */
  admit(): Promise<unknown> {
    return this.admitWith(null);
  }

  /**
   * Admission, and the endpoint's cache lookup when there is one, concurrently (one Redis round
   * trip of latency). The cache status is HIT when `lookup` found something, MISS when it ran and
   * found nothing, else BYPASS.
   */
  protected async admitWith<T>(lookup: Promise<T | null> | null): Promise<T | null> {
    const admitting = this.opts.skipAdmission
      ? Promise.resolve(this.admission)
      : this.meter.limiter.admit(
          this.principal.keyId,
          this.principal.limits,
          this.plan.reserveTokens,
          this.plan.reserveCostUsd,
        );
    const [admission, hit] = await Promise.all([admitting, lookup ?? Promise.resolve(null)]);
    this.admission = admission;
    if (lookup) this.cacheStatus = hit ? 'HIT' : 'MISS';
    return hit;
  }

  /** The catalogue entry that is answering (a fallback, maybe): usage is recorded and priced for it. */
  servedBy(model: ModelConfig): void {
    this.served = model;
  }

  /** The first token (or whole answer) arrived: time to first token is measured to here. */
  markFirstToken(): void {
    this.firstTokenAt ??= performance.now();
  }

  /** What finish() recorded, once the call finished (read-only: never records anything). */
  get summary(): CallSummary | null {
    return this.finished;
  }

  /**
   * The reservation leaves with the caller (the async producer stores it on the job, whose
   * worker reconciles it): this call records nothing and reconciles nothing.
   */
  handOff(): Reservation | null {
    this.handedOff = true;
    return this.admission.reservation;
  }

  /** Nothing was used and no usage row is due (a job that was never created): the reservation goes back whole. */
  abandon(): void {
    if (this.finished || this.handedOff) return;
    this.handedOff = true;
    this.meter.limiter.reconcile(this.admission.reservation, 0, 0);
  }

  /**
   * Record the call's one usage record and reconcile the reservation. Idempotent: only the first
   * call counts, later ones return its summary.
   */
  finish(outcome: CallOutcome): CallSummary {
    if (this.finished) return this.finished;
    const model = outcome.servedBy ?? this.served ?? this.plan.model;
    const cached = outcome.cached ?? false;
    const { counts, estimated } = this.count(outcome);
    const cost = cached ? 0 : costUsd(model, counts);
    const ttftMs =
      this.firstTokenAt !== undefined ? Math.round(this.firstTokenAt - this.startedAt) : undefined;
    this.finished = { model: model.id, ...counts, costUsd: cost, estimated, ttftMs };
    if (this.handedOff) return this.finished;
    const record: UsageRecord = {
      requestId: this.opts.requestId,
      keyId: this.principal.keyId,
      owner: this.principal.owner,
      model: model.id,
      endpoint: this.plan.endpoint,
      ...counts,
      costUsd: cost,
      latencyMs: Math.round(performance.now() - this.startedAt),
      ttftMs: ttftMs ?? null,
      status: outcome.status,
      cached,
      estimated,
      stream: this.plan.stream,
      source: this.opts.source,
      ts: Date.now(),
      ...(outcome.errorCode ? { errorCode: outcome.errorCode } : {}),
    };
    const reservation = this.admission.reservation;
    // Cache hits cost nothing and use no model tokens: the whole reservation goes back.
    const used = cached ? 0 : counts.promptTokens + counts.completionTokens;
    this.meter.sink.commit(record, () => this.meter.limiter.reconcile(reservation, used, cost));
    return this.finished;
  }

  /** Record a failed call (status from the error; 499 when the client went away). */
  fail(err: unknown, deliveredText?: string): CallSummary {
    const status = err instanceof ApiError ? err.status : err instanceof ClientAbortError ? 499 : 500;
    if (status >= 500 && !(err instanceof ClientAbortError)) this.meter.telemetry.upstreamError(this.modelId);
    const code =
      err instanceof ApiError
        ? (err.code ?? err.type)
        : err instanceof ClientAbortError
          ? 'client_closed'
          : 'internal_error';
    return this.finish({
      status,
      errorCode: code,
      ...(deliveredText !== undefined ? { deliveredText } : {}),
    });
  }

  /**
   * Tokens from the upstream's usage where it gave sound numbers, else the gateway's own count
   * (the prompt as admitted, the delivered text), flagged as estimated.
   */
  private count(outcome: CallOutcome): { counts: TokenCounts; estimated: boolean } {
    const delivered = outcome.deliveredText ?? '';
    const u = outcome.usage;
    if (u) {
      const p = tokenCount(u.prompt_tokens);
      const c = tokenCount(u.completion_tokens);
      const details = u.prompt_tokens_details as
        | { cached_tokens?: unknown; cache_write_tokens?: unknown }
        | undefined;
      return {
        counts: {
          promptTokens: p ?? this.plan.promptTokens,
          completionTokens: c ?? countTextTokens(delivered),
          cachedTokens: tokenCount(details?.cached_tokens) ?? 0,
          cacheWriteTokens: tokenCount(details?.cache_write_tokens) ?? 0,
        },
        estimated: p === null || c === null,
      };
    }
    if (outcome.status === 200 || outcome.status === 499 || delivered !== '') {
      // Cut short (or an upstream that sends no usage): count what was delivered ourselves.
      // A request that failed before the model produced anything is not billed.
      return {
        counts: {
          promptTokens: this.plan.promptTokens,
          completionTokens: countTextTokens(delivered),
          cachedTokens: 0,
          cacheWriteTokens: 0,
        },
        estimated: true,
      };
    }
    return {
      counts: { promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0 },
      estimated: false,
    };
  }
}

/** A token count as an upstream should send it (a non-negative integer), else null. */
export function tokenCount(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

/** The default sink: the usage recorder, then the reconciliation, at once. */
export function recordingSink(usage: { record(r: UsageRecord): void }): UsageSink {
  return {
    commit(record, reconcile) {
      usage.record(record);
      reconcile();
    },
  };
}
