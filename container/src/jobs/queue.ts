/**
 * SQS plumbing shared by the API and the worker: the client, the cached depth check that
 * guards submissions, the admin queue statistics and queue-URL look-ups from event ARNs.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SQSClient,
  type SQSClientConfig,
} from '@aws-sdk/client-sqs';
import { UndiciHttpHandler } from '../aws/undici-handler';
import { ServiceUnavailableError } from '../errors';

/** The logger surface the jobs modules need (the runtime's Powertools logger). */
export type JobsLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

/**
 * An SQS client for request/response calls (not long polls). Endpoint and region come from the
 * standard variables (`AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL`, `AWS_REGION`), so the same code
 * talks to AWS, LocalStack or local-aws-sqs. Short timeouts: a submission answers 503 quickly
 * when SQS is unreachable instead of holding the client.
 */
export function createSqsClient(config: SQSClientConfig = {}): SQSClient {
  return new SQSClient({
    maxAttempts: 3,
    requestHandler: new UndiciHttpHandler({ connectionTimeout: 1000, requestTimeout: 5000 }),
    ...SQS_ENDPOINT_POLICY,
    ...SQS_NO_MD5,
    // The middleware chain is resolved once per command class instead of on every send: ~100 µs
    // of CPU less per SendMessage on the submission path (local-aws-sqs, steady state). Safe
    // for SQS's plain commands (not for lib-dynamodb's, whose handler keeps the first command's
    // input). A call with per-call options (an abort signal) resolves its own and drops the
    // cache, which the next plain send rebuilds.
    cacheMiddleware: true,
    // Endpoint, region or credentials given explicitly (the benchmark's floor measurement).
    ...config,
  });
}

/**
 * Calls go to the configured endpoint, not to the host in the QueueUrl. In AWS both are the same;
 * LocalStack hands out queue URLs on another host name than AWS_ENDPOINT_URL, and the SDK would
 * otherwise switch hosts and print a console warning on every call.
 */
export const SQS_ENDPOINT_POLICY = { useQueueUrlAsEndpoint: false } as const;

/**
 * The SDK's MD5 checks of message bodies cost more CPU than the rest of a send on the
 * submission path; TLS already guarantees the bytes arrive intact.
 */
const SQS_NO_MD5 = { md5: false } as const;

/** Counts SQS reports for one queue (all approximate, as SQS says). */
export interface QueueCounts {
  visible: number;
  inFlight: number;
  delayed: number;
}

/** Approximate message counts of a queue. */
export async function queueCounts(
  sqs: SQSClient,
  queueUrl: string,
  signal?: AbortSignal,
): Promise<QueueCounts> {
  const r = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
    signal ? { abortSignal: signal } : undefined,
  );
  const a = r.Attributes ?? {};
  const n = (v: string | undefined) => (v === undefined ? 0 : Number(v) || 0);
  return {
    visible: n(a.ApproximateNumberOfMessages),
    inFlight: n(a.ApproximateNumberOfMessagesNotVisible),
    delayed: n(a.ApproximateNumberOfMessagesDelayed),
  };
}

export interface QueueDepthGateOptions {
  sqs: SQSClient;
  queueUrl: string;
  /** Refuse submissions while this many messages (or more) wait. */
  maxDepth: number;
  /** Read the depth at most this often. */
  intervalMs: number;
  logger: JobsLogger;
}

/**
 * Refuses submissions while the queue is too deep. The depth is read at most once per interval,
 * in the background (never on the request path after the first read), and bumped locally for
 * every message this process sends, so a burst between reads cannot overshoot much.
 */
export class QueueDepthGate {
  private depth: number | undefined;
  private readAt = 0;
  private reading: Promise<void> | null = null;
  private lastWarn = 0;

  constructor(private readonly opts: QueueDepthGateOptions) {}

  /** The last depth read (plus local sends), if any read succeeded. */
  get current(): number | undefined {
    return this.depth;
  }

  /** Throws 503 `queue_full` (with Retry-After) when the queue is at its cap. */
  async check(): Promise<void> {
    if (this.readAt === 0) await this.refresh();
    else if (Date.now() - this.readAt >= this.opts.intervalMs) void this.refresh();
    if (this.depth !== undefined && this.depth >= this.opts.maxDepth) {
      throw new ServiceUnavailableError(
        `The job queue is full (${this.opts.maxDepth} jobs waiting); retry later or use /v1/chat/completions.`,
        { code: 'queue_full', retryAfterSeconds: Math.max(1, Math.ceil(this.opts.intervalMs / 1000)) },
      );
    }
  }

  /** One more message on the queue (sent by this process). */
  noteSent(): void {
    if (this.depth !== undefined) this.depth++;
  }

  private refresh(): Promise<void> {
    // Stamped before the read: an unreachable SQS is retried once per interval, not per request.
    this.readAt = Date.now();
    this.reading ??= queueCounts(this.opts.sqs, this.opts.queueUrl)
      .then(
        (c) => {
          this.depth = c.visible;
        },
        (err: unknown) => {
          // Unknown depth admits: the send itself fails (503) if SQS is really down.
          const now = Date.now();
          if (now - this.lastWarn > 60_000) {
            this.lastWarn = now;
            this.opts.logger.warn('job queue depth unavailable', { error: (err as Error).message });
          }
        },
      )
      .finally(() => {
        this.reading = null;
      });
    return this.reading;
  }
}

/** `GET /admin/queue`: the queue, its DLQ and the worker's concurrency. */
export interface QueueStats {
  object: 'queue.stats';
  queue: {
    visible: number;
    in_flight: number;
    delayed: number;
    /**
     * Seconds since the oldest unfinished job was submitted (its message lives until the job
     * completes or fails), from the jobs table's pending index: SQS reports its own
     * `ApproximateAgeOfOldestMessage` only as a CloudWatch metric. 0 when nothing waits; null when
     * the table could not be read.
     */
    oldest_message_age_seconds: number | null;
    max_depth: number;
  };
  dlq: { visible: number; in_flight: number } | null;
  worker: { concurrency: number };
}

/** Read the counts of the queue and its DLQ (when configured) in parallel. */
export async function queueStats(opts: {
  sqs: SQSClient;
  queueUrl: string;
  dlqUrl: string | undefined;
  maxDepth: number;
  workerConcurrency: number;
  oldestMessageAgeSeconds?: () => Promise<number | null>;
}): Promise<QueueStats> {
  const signal = AbortSignal.timeout(5000);
  const [q, d, age] = await Promise.all([
    queueCounts(opts.sqs, opts.queueUrl, signal),
    opts.dlqUrl ? queueCounts(opts.sqs, opts.dlqUrl, signal) : Promise.resolve(null),
    opts.oldestMessageAgeSeconds ? opts.oldestMessageAgeSeconds().catch(() => null) : Promise.resolve(null),
  ]);
  return {
    object: 'queue.stats',
    queue: {
      visible: q.visible,
      in_flight: q.inFlight,
      delayed: q.delayed,
      oldest_message_age_seconds: age,
      max_depth: opts.maxDepth,
    },
    dlq: d ? { visible: d.visible, in_flight: d.inFlight } : null,
    worker: { concurrency: opts.workerConcurrency },
  };
}

/**
 * Queue URLs from SQS event source ARNs (`arn:aws:sqs:<region>:<account>:<name>`), looked up once
 * per ARN with GetQueueUrl (which every SQS event source role may call), so the worker needs no
 * queue URL in its environment.
 */
export class QueueUrlResolver {
  private readonly urls = new Map<string, Promise<string>>();

  constructor(private readonly sqs: SQSClient) {}

  resolve(arn: string): Promise<string> {
    let url = this.urls.get(arn);
    if (!url) {
      const parts = arn.split(':');
      const name = parts[5];
      const account = parts[4];
      if (parts.length !== 6 || !name || !account) return Promise.reject(new Error(`not an SQS ARN: ${arn}`));
      url = this.sqs
        .send(new GetQueueUrlCommand({ QueueName: name, QueueOwnerAWSAccountId: account }))
        .then((r) => {
          if (!r.QueueUrl) throw new Error(`SQS returned no URL for ${arn}`);
          return r.QueueUrl;
        });
      // A failed look-up is not cached: the next failure tries again.
      url.catch(() => this.urls.delete(arn));
      this.urls.set(arn, url);
    }
    return url;
  }
}
