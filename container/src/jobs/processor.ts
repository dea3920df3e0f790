/**
 * Runs one job: claim it, call the model through the same ChatService as the synchronous path
 * (provider, timeouts, retries, fallbacks), then move it to `completed` or `failed` and write its
 * one usage record.
 *
 * Exactly one usage record per job, also when SQS delivers a message twice or an attempt dies
 * half-way: the model call's usage record is held back and written only by the attempt that
 * wins the conditional `processing -> completed|failed` write (fenced by the attempt number),
 * with that write's timestamp and the job id as its request id. A losing or crashing attempt
 * writes none, and the daily aggregates (`ADD`) are never applied twice.
 */

import { type ChatCall, ChatService } from '../chat/chat-service';
import { validateChatRequest } from '../chat/validate';
import { METRICS } from '../contract';
import { ApiError, AuthenticationError, ClientAbortError, isRetryable } from '../errors';
import type { UsageSink } from '../metering/metered-call';
import type { Runtime } from '../runtime';
import type { UsageRecord } from '../usage/usage-recorder';
import type { ChatCompletion } from '../wire/chat';
import { type JobError, type JobRow, type JobStore, requestOf, toJobError } from './job-store';
import type { JobMessage } from './schema';

/**
 * A failure worth another delivery; the record is reported failed and SQS redelivers it.
 * `deadline`: the invocation ran out of time (redeliver at once); `busy`: another attempt holds
 * the job for `delaySeconds` more; `upstream`: a retryable model failure (backoff, at least
 * `delaySeconds` when the upstream said Retry-After).
 */
export class RetryLaterError extends Error {
  constructor(
    message: string,
    readonly kind: 'deadline' | 'busy' | 'upstream',
    readonly delaySeconds?: number,
    readonly reason?: unknown,
  ) {
    super(message);
    this.name = 'RetryLaterError';
  }
}

/** A call's usage record and its reconciliation, held until the job's final write is won. */
export interface HeldUsage {
  record: UsageRecord;
  reconcile: () => void;
}

/** What running the model gave: a completion, or an error that retrying cannot fix. */
export type RunResult =
  | { ok: true; completion: ChatCompletion; usage: HeldUsage | undefined }
  | { ok: false; error: ApiError; usage: HeldUsage | undefined };

/** What `process` did with a message. */
export type ProcessOutcome =
  | 'completed'
  | 'failed'
  /** The job was finished already (redelivery) or is gone: acknowledged, nothing done. */
  | 'skipped'
  /** Another attempt finished the job first: this attempt's result was dropped. */
  | 'lost';

/** One delivery of a message, as the worker hands it over. */
export interface AttemptContext {
  /** Epoch ms after which this invocation may be killed: the job's lease ends there. */
  deadline: number;
  /** Aborts the model call when the invocation runs out of time. */
  signal: AbortSignal;
  /** Nothing starts with less than this left before the deadline. */
  marginMs: number;
  /** When SQS accepted the message (epoch ms). */
  sentAt: number;
}

/**
 * The API writes a job's row and sends its message concurrently, so a message can arrive before
 * its row: it is retried while younger than this. Older, it names a job that was never created
 * (the row write failed) or was removed (the send was reported failed), and is dropped.
 */
export const MISSING_ROW_GRACE_MS = 60_000;
const MISSING_ROW_RETRY_SECONDS = 5;

export interface JobProcessorOptions {
  rt: Runtime;
  store: JobStore;
  /**
   * How long a key's revocation status is trusted before it is read again.
   * @default 5000
   */
  keyCheckTtlMs?: number;
}

/**
 * Usage records of the worker's calls and their reconciliations, held until the job's final
 * write is won (a metered call always commits; this keeps the record from reaching the table,
 * and the counters from being reconciled, early). One instance per worker.
 */
class HeldSink implements UsageSink {
  private readonly held = new Map<string, HeldUsage>();

  commit(record: UsageRecord, reconcile: () => void): void {
    this.held.set(record.requestId, { record, reconcile });
  }

  take(requestId: string): HeldUsage | undefined {
    const r = this.held.get(requestId);
    this.held.delete(requestId);
    return r;
  }
}

/** Claims, runs and settles jobs. Subclass `run` to wrap the model call (tests inject faults). */
export class JobProcessor {
  protected readonly rt: Runtime;
  protected readonly store: JobStore;
  private readonly held: HeldSink;
  private readonly chat: ChatService;
  private readonly keyCheckTtlMs: number;
  private readonly keyChecks = new Map<string, { at: number; revoked: Promise<boolean> }>();

  constructor(opts: JobProcessorOptions) {
    this.rt = opts.rt;
    this.store = opts.store;
    this.keyCheckTtlMs = opts.keyCheckTtlMs ?? 5000;
    this.held = new HeldSink();
    this.chat = new ChatService({ ...opts.rt.chat.deps, sink: this.held });
  }

  /**
   * Process one delivery. Returns what happened; throws {@link RetryLaterError} (or anything
   * unexpected) when the message should be delivered again.
   */
  async process(msg: JobMessage, a: AttemptContext): Promise<ProcessOutcome> {
    const { logger } = this.rt.telemetry;
    const now = Date.now();
    if (a.deadline - now < a.marginMs || a.signal.aborted)
      throw new RetryLaterError('too close to the invocation deadline to start', 'deadline');
    const claim = await this.store.claim(msg.jobId, now, a.deadline);
    switch (claim.kind) {
      case 'missing':
        // Seconds, not less: a row write still retrying must land before the message runs out of
        // receives (the DLQ handler would then fail a job that was about to exist).
        if (now - a.sentAt < MISSING_ROW_GRACE_MS)
          throw new RetryLaterError('the job row is not there yet', 'busy', MISSING_ROW_RETRY_SECONDS);
        logger.warn('message for an unknown job acknowledged', { jobId: msg.jobId });
        return 'skipped';
      case 'finished':
        logger.info('redelivered message for a finished job acknowledged', {
          jobId: msg.jobId,
          status: claim.job.status,
        });
        return 'skipped';
      case 'busy':
        throw new RetryLaterError(
          'another attempt holds the job',
          'busy',
          Math.ceil((claim.leaseUntil - now) / 1000) + 1,
        );
      case 'claimed':
        break;
    }
    const { job, attempt } = claim;
    let result: RunResult;
    try {
      result = await this.run(job, msg, a.signal);
    } catch (err) {
      // Give the job back at once so the redelivery can claim it (a dead attempt's lease would
      // otherwise hold it until the deadline).
      await this.store.release(job.jobId, attempt, lastErrorOf(err)).catch((e: unknown) => {
        logger.warn('could not release a job after a failed attempt', {
          jobId: job.jobId,
          error: (e as Error).message,
        });
      });
      logger.warn('job attempt failed; it will be retried', {
        jobId: job.jobId,
        attempt,
        error: (err as Error).message,
      });
      throw err;
    }
    try {
      return await this.settle(job, attempt, result, now);
    } catch (err) {
      // The final write failed outright (DynamoDB unavailable): give the job back for the
      // redelivery. Should the write have landed anyway, the release is refused and the
      // redelivery finds the job finished.
      await this.store.release(job.jobId, attempt, undefined).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Call the model for a claimed job. Non-retryable API errors come back as `{ ok: false }`;
   * retryable ones throw {@link RetryLaterError}; anything else throws as is.
   */
  protected async run(job: JobRow, msg: JobMessage, signal: AbortSignal): Promise<RunResult> {
    if (await this.keyRevoked(job.keyId)) {
      return {
        ok: false,
        error: new AuthenticationError(
          'The API key that submitted this job was revoked before the job ran.',
          {
            code: 'key_revoked',
          },
        ),
        usage: undefined,
      };
    }
    let call: ChatCall;
    try {
      const body = validateChatRequest(msg.request ?? requestOf(job), { allowStream: false });
      call = this.chat.begin(job.principal, body, {
        requestId: job.jobId,
        signal,
        source: 'async',
        // Admission happened at submission: the call reconciles the job's reservation (only a
        // shared Redis holds the counters admission charged; an in-process one does not).
        skipAdmission: true,
        reservation: this.rt.redis ? (job.reservation ?? null) : null,
      });
    } catch (err) {
      // A model removed from the catalogue since submission, a permission taken away: final.
      if (err instanceof ApiError && !isRetryable(err)) return { ok: false, error: err, usage: undefined };
      throw err;
    }
    try {
      const completion = await call.complete(null);
      return { ok: true, completion, usage: this.held.take(job.jobId) };
    } catch (err) {
      const usage = this.held.take(job.jobId);
      if (err instanceof ClientAbortError || signal.aborted)
        throw new RetryLaterError('the invocation ran out of time', 'deadline', 0, err);
      if (isRetryable(err))
        throw new RetryLaterError((err as Error).message, 'upstream', retryAfterOf(err), err);
      if (err instanceof ApiError) return { ok: false, error: err, usage };
      throw err;
    }
  }

  /** The final write; only its winner records usage, reconciles and counts the job. */
  private async settle(
    job: JobRow,
    attempt: number,
    r: RunResult,
    claimedAt: number,
  ): Promise<ProcessOutcome> {
    const { rt } = this;
    const at = Date.now();
    const held = r.usage;
    const u = held?.record;
    const usage = u
      ? { promptTokens: u.promptTokens, completionTokens: u.completionTokens, costUsd: u.costUsd }
      : undefined;
    const won = r.ok
      ? await this.store.complete(job.jobId, attempt, at, r.completion, usage)
      : await this.store.fail(job.jobId, attempt, at, toJobError(r.error), usage);
    if (!won) {
      rt.telemetry.logger.warn('another attempt finished the job first; this result is dropped', {
        jobId: job.jobId,
        attempt,
      });
      return 'lost';
    }
    if (held && u) {
      // The transition's timestamp: a record rebuilt from this row would have the same key.
      rt.usage.record({ ...u, ts: at });
      held.reconcile();
    } else if (rt.redis) {
      // Refused before the model was called (key revoked, model gone): nothing was used.
      rt.limiter.reconcile(job.reservation ?? null, 0, 0);
    }
    rt.telemetry.increment(r.ok ? METRICS.jobsCompleted : METRICS.jobsFailed);
    rt.telemetry.request({
      requestId: job.jobId,
      method: 'JOB',
      route: 'async-worker',
      status: r.ok ? 200 : r.error.status,
      latencyMs: at - claimedAt,
      model: job.model,
      ttftMs: u?.ttftMs ?? undefined,
      tokensIn: u?.promptTokens,
      tokensOut: u?.completionTokens,
      costUsd: u?.costUsd,
      keyId: job.keyId,
      owner: job.owner,
      errorCode: r.ok ? undefined : (r.error.code ?? r.error.type),
    });
    return r.ok ? 'completed' : 'failed';
  }

  /** Whether the submitting key was revoked (or deleted) meanwhile; cached briefly per key. */
  private keyRevoked(keyId: string): Promise<boolean> {
    const now = Date.now();
    const hit = this.keyChecks.get(keyId);
    if (hit && now - hit.at < this.keyCheckTtlMs) return hit.revoked;
    const revoked = this.rt.keys.getById(keyId).then((rec) => !rec || rec.revoked);
    this.keyChecks.set(keyId, { at: now, revoked });
    // A failed read is not cached (and fails this attempt, which is retried).
    revoked.catch(() => this.keyChecks.delete(keyId));
    if (this.keyChecks.size > 10_000) {
      for (const [k, e] of this.keyChecks) if (now - e.at >= this.keyCheckTtlMs) this.keyChecks.delete(k);
    }
    return revoked;
  }
}

/** Seconds the upstream asked to wait (a 429's Retry-After), if it said. */
function retryAfterOf(err: unknown): number | undefined {
  if (!(err instanceof ApiError)) return undefined;
  const v = Number(err.headers['retry-after']);
  return Number.isFinite(v) && v > 0 ? Math.ceil(v) : undefined;
}

/** What a failed attempt leaves on the row, for the DLQ handler's message. */
function lastErrorOf(err: unknown): JobError {
  const cause = err instanceof RetryLaterError ? err.reason : err;
  if (cause instanceof ApiError) return toJobError(cause);
  return {
    message: err instanceof RetryLaterError ? err.message : 'The worker failed while processing the job.',
    type: 'server_error',
    param: null,
    code: 'worker_error',
    status: 500,
  };
}
