/**
 * The SQS handlers behind `lambda/worker.ts` and `lambda/dlq.ts`, built over a Runtime so the
 * local poller (dev, tests) runs exactly the code Lambda runs. Partial batch responses via
 * Powertools: a failed record is redelivered alone, the rest of its batch is not redone.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { ChangeMessageVisibilityCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { METRICS } from '../contract';
import type { Runtime } from '../runtime';
import { type JobError, type JobRow, JobStore } from './job-store';
import { JobProcessor, RetryLaterError } from './processor';
import { createSqsClient, QueueUrlResolver } from './queue';
import { PoisonMessageError, parseJobMessage } from './schema';

/** An SQS batch handler with partial batch responses (what Lambda and the local poller call). */
export type SqsBatchHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

/** SQS's longest visibility timeout (12 h). */
const MAX_VISIBILITY_SECONDS = 43_200;

export interface WorkerHandlerOptions {
  /** @default a JobProcessor over the runtime */
  processor?: JobProcessor;
  /** For visibility changes. @default a client from the standard AWS variables */
  sqs?: SQSClient;
  /**
   * Time kept free before the invocation deadline: no record starts, and running model calls
   * are aborted (their jobs released for redelivery), once less than this remains. What is left
   * goes to releasing jobs and flushing usage.
   * @default 10000
   */
  deadlineMarginMs?: number;
  /**
   * Redelivery delay after a retryable failure: `baseSeconds * 2^(receiveCount-1)`, at most
   * `maxSeconds`, at least an upstream's Retry-After. Applied with ChangeMessageVisibility, so
   * retries do not wait out the queue's visibility timeout (6x the function timeout).
   * @default { baseSeconds: 30, maxSeconds: 900 }
   */
  retryBackoff?: { baseSeconds: number; maxSeconds: number };
}

/**
 * The worker: each record is a job message; completed and non-retryable jobs are acknowledged,
 * retryable failures are reported (with a backoff) for SQS to redeliver. Usage and metrics are
 * flushed before every return, since Lambda may freeze the process right after.
 */
export function createWorkerHandler(rt: Runtime, opts: WorkerHandlerOptions = {}): SqsBatchHandler {
  const store = new JobStore(rt.doc, rt.env.tables.jobs);
  const processor = opts.processor ?? new JobProcessor({ rt, store });
  const sqs = opts.sqs ?? ownedClient(rt);
  const urls = new QueueUrlResolver(sqs);
  const marginMs = opts.deadlineMarginMs ?? 10_000;
  const backoff = opts.retryBackoff ?? { baseSeconds: 30, maxSeconds: 900 };
  const { logger } = rt.telemetry;

  const delayFor = (err: unknown, receiveCount: number): number => {
    if (err instanceof PoisonMessageError) return 0;
    if (err instanceof RetryLaterError && err.kind === 'deadline') return 0;
    if (err instanceof RetryLaterError && err.kind === 'busy') return err.delaySeconds ?? backoff.baseSeconds;
    // Upstream failures and crashes back off; an upstream's Retry-After is the least.
    const exp = backoff.baseSeconds * 2 ** Math.max(0, receiveCount - 1);
    const floor = err instanceof RetryLaterError ? (err.delaySeconds ?? 0) : 0;
    return Math.min(MAX_VISIBILITY_SECONDS, Math.max(Math.min(backoff.maxSeconds, exp), floor));
  };

  const redeliverIn = async (record: SQSRecord, seconds: number): Promise<void> => {
    try {
      const queueUrl = await urls.resolve(record.eventSourceARN);
      await sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: queueUrl,
          ReceiptHandle: record.receiptHandle,
          VisibilityTimeout: Math.round(seconds),
        }),
      );
    } catch (err) {
      // The queue's own visibility timeout still brings the message back, only later.
      logger.warn('could not set the redelivery delay of a failed job message', {
        messageId: record.messageId,
        error: (err as Error).message,
      });
    }
  };

  return async (event, context) => {
    const deadline = Date.now() + context.getRemainingTimeInMillis();
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.max(0, deadline - marginMs - Date.now()));
    const onRecord = async (record: SQSRecord): Promise<void> => {
      try {
        const sentAt = Number(record.attributes.SentTimestamp) || Date.now();
        await processor.process(parseJobMessage(record.body), {
          deadline,
          signal: ac.signal,
          marginMs,
          sentAt,
        });
      } catch (err) {
        const receiveCount = Number(record.attributes.ApproximateReceiveCount) || 1;
        if (err instanceof PoisonMessageError) {
          logger.error('unreadable job message; it goes to the DLQ after its last receive', {
            messageId: record.messageId,
            error: err.message,
          });
        }
        await redeliverIn(record, delayFor(err, receiveCount));
        throw err;
      }
    };
    try {
      // A new processor per invocation: the local poller runs invocations concurrently.
      return await processPartialResponse(event, onRecord, new BatchProcessor(EventType.SQS), {
        context,
        throwOnFullBatchFailure: false,
      });
    } finally {
      clearTimeout(timer);
      // Reconciliations are merged and written on a timer: a frozen container would keep the
      // reservations of this invocation's jobs charged (the counters over-count until the
      // windows expire). Never throws.
      await rt.limiter.flush();
      // Usage recorded in this invocation must land before it returns: a frozen or recycled
      // container would keep it buffered, or lose it. Failed writes are retried (with the
      // recorder's backoff) while time is left.
      await rt.usage.flush();
      // Bounded: with the local poller, concurrent invocations keep adding records.
      for (let round = 0; round < 5 && rt.usage.pending > 0 && Date.now() < deadline - 1000; round++)
        await rt.usage.flush();
      if (rt.usage.pending > 0)
        logger.error('usage records still unwritten at the end of an invocation', {
          pending: rt.usage.pending,
        });
      rt.telemetry.flush();
    }
  };
}

/**
 * The DLQ handler: a job whose message died (too many failed receives) becomes `failed`, with
 * the last error it met, so no job stays `queued` or `processing` forever. Needs only the jobs
 * table (GetItem, UpdateItem); gives the job's reservation back when it has Redis.
 */
export function createDlqHandler(rt: Runtime): SqsBatchHandler {
  const store = new JobStore(rt.doc, rt.env.tables.jobs);
  const { logger } = rt.telemetry;

  const onRecord = async (record: SQSRecord): Promise<void> => {
    let jobId: string;
    try {
      jobId = parseJobMessage(record.body).jobId;
    } catch (err) {
      // Nothing names a job in it: log enough to find it, never its content.
      logger.error('unreadable message in the job DLQ dropped', {
        messageId: record.messageId,
        bytes: record.body.length,
        error: (err as Error).message,
      });
      return;
    }
    const r = await store.failDead(jobId, Date.now(), deadError);
    switch (r.kind) {
      case 'failed':
        rt.telemetry.increment(METRICS.jobsFailed);
        if (rt.redis) void rt.limiter.reconcile(r.job.reservation ?? null, 0, 0);
        logger.error('job failed: its message reached the DLQ', {
          jobId,
          owner: r.job.owner,
          model: r.job.model,
          attempts: r.job.attempts ?? 0,
          lastError: r.job.lastError?.code ?? null,
        });
        return;
      case 'finished':
        logger.info('dead message for a finished job acknowledged', { jobId, status: r.job.status });
        return;
      case 'missing':
        logger.warn('dead message for an unknown job acknowledged', { jobId });
        return;
      case 'busy':
        // An attempt still runs it (local runs with a function timeout above the visibility
        // timeout): look again once its lease is over.
        throw new Error(
          `job ${jobId} is still held by an attempt until ${new Date(r.leaseUntil).toISOString()}`,
        );
    }
  };

  return async (event, context) => {
    try {
      return await processPartialResponse(event, onRecord, new BatchProcessor(EventType.SQS), {
        context,
        throwOnFullBatchFailure: false,
      });
    } finally {
      // The reservations given back above must be written before Lambda freezes the process.
      await rt.limiter.flush();
      rt.telemetry.flush();
    }
  };
}

/** The error a dead-lettered job reports: the last one it met, with the number of attempts. */
function deadError(job: JobRow): JobError {
  const attempts = job.attempts ?? 0;
  const last = job.lastError;
  return {
    message: last
      ? `The job failed ${attempts} time(s) and was given up; the last error: ${last.message}`
      : `The job could not be processed (${attempts} attempt(s)) and was given up.`,
    type: 'server_error',
    param: null,
    code: 'retries_exhausted',
    status: last?.status ?? 500,
  };
}

function ownedClient(rt: Runtime): SQSClient {
  const sqs = createSqsClient();
  rt.onClose.push(async () => sqs.destroy());
  return sqs;
}
