/**
 * The Lambda SQS event source on one machine: long-polls the job queue (and its DLQ), builds
 * real `SQSEvent` batches, invokes the same handlers Lambda runs, deletes the records the
 * handler did not report in `batchItemFailures` and leaves those for redelivery. Used by
 * `npm run dev`, the tests and the benchmark; never by the Lambda bundle.
 */
import { randomUUID } from 'node:crypto';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSMessageAttributes, SQSRecord } from 'aws-lambda';
import { type JobsLogger, SQS_ENDPOINT_POLICY } from '../jobs/queue';
import { createDlqHandler, createWorkerHandler, type SqsBatchHandler } from '../jobs/worker';
import type { Runtime } from '../runtime';

export interface LocalWorkerOptions {
  queueUrl: string;
  /** Also poll the DLQ into `dlqHandler`. */
  dlqUrl?: string | undefined;
  handler: SqsBatchHandler;
  dlqHandler?: SqsBatchHandler | undefined;
  /** Records per invocation (the event source's BatchSize). @default 10 */
  batchSize?: number;
  /**
   * How long to keep gathering records for a batch after the first arrived (the event source's
   * MaximumBatchingWindowInSeconds). @default 0: one receive's worth
   */
  batchWindowMs?: number;
  /** Concurrent invocations (the event source's MaximumConcurrency). @default 5 */
  maxConcurrency?: number;
  /**
   * Visibility timeout of received messages, i.e. when a failed or unfinished record comes back
   * (the queue's setting in AWS). Keep it above `waitTimeSeconds` (local-aws-sqs quirk).
   * @default 30
   */
  visibilityTimeoutSeconds?: number;
  /** The invocation deadline handed to the handler (the Lambda timeout). @default the visibility timeout */
  functionTimeoutMs?: number;
  /** Long-poll wait of an idle receive (0: short polls, 50 ms apart while the queue is empty). @default 1 */
  waitTimeSeconds?: number;
  /** @default a client from the standard AWS variables */
  sqs?: SQSClient;
  logger?: JobsLogger;
  /** Shown as the context's function name. @default 'tollgate-worker-local' */
  functionName?: string;
}

/** A running poller. */
export interface LocalWorker {
  /** Stop polling, wait for running invocations to return and their records to be settled. */
  stop(): Promise<void>;
}

const NO_LOG: JobsLogger = { debug() {}, info() {}, warn() {}, error() {} };

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Start polling the queue (and DLQ) into the handlers. Fails fast when a queue does not exist. */
export async function startLocalWorker(opts: LocalWorkerOptions): Promise<LocalWorker> {
  const batchSize = opts.batchSize ?? 10;
  const windowMs = opts.batchWindowMs ?? 0;
  const concurrency = opts.maxConcurrency ?? 5;
  const visibility = opts.visibilityTimeoutSeconds ?? 30;
  const timeoutMs = opts.functionTimeoutMs ?? visibility * 1000;
  const wait = opts.waitTimeSeconds ?? 1;
  const log = opts.logger ?? NO_LOG;
  const functionName = opts.functionName ?? 'tollgate-worker-local';
  // Long polls hold a request open for `wait` seconds: the timeout must allow for that.
  const sqs =
    opts.sqs ??
    new SQSClient({ requestHandler: { requestTimeout: (wait + 10) * 1000 }, ...SQS_ENDPOINT_POLICY });
  const ownClient = !opts.sqs;
  const stopping = new AbortController();

  const arnOf = async (url: string): Promise<string> => {
    const r = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
    const arn = r.Attributes?.QueueArn;
    if (!arn) throw new Error(`no QueueArn for ${url}`);
    return arn;
  };

  interface Source {
    url: string;
    arn: string;
    handler: SqsBatchHandler;
    batchSize: number;
    name: string;
  }

  let lastWarn = 0;
  const warnRarely = (message: string, extra: Record<string, unknown>) => {
    const now = Date.now();
    if (now - lastWarn > 10_000) {
      lastWarn = now;
      log.warn(message, extra);
    }
  };

  // Receives are never aborted: SQS would still take the messages of an abandoned long poll and
  // hide them for the visibility timeout. Stopping waits for the poll (at most `wait` seconds).
  const receive = async (src: Source, max: number, waitSeconds: number) => {
    const r = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: src.url,
        MaxNumberOfMessages: Math.min(10, max),
        WaitTimeSeconds: waitSeconds,
        VisibilityTimeout: visibility,
        // local-aws-sqs only honours the legacy AttributeNames; AWS accepts both.
        AttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    return r.Messages ?? [];
  };

  /** One batch: a long poll, then more receives within the batching window. */
  const gather = async (src: Source): Promise<Message[]> => {
    const byId = new Map<string, Message>();
    const add = (ms: Message[]) => {
      // A receive may return one message twice (local-aws-sqs); its newest receipt handle wins.
      for (const m of ms) if (m.MessageId && m.ReceiptHandle) byId.set(m.MessageId, m);
    };
    add(await receive(src, src.batchSize, wait));
    if (byId.size === 0) return [];
    const windowEnd = Date.now() + windowMs;
    while (byId.size < src.batchSize && Date.now() < windowEnd && !stopping.signal.aborted) {
      const more = await receive(src, src.batchSize - byId.size, 0);
      add(more);
      if (more.length === 0) await sleep(Math.min(50, windowEnd - Date.now()), stopping.signal);
    }
    return [...byId.values()];
  };

  const invoke = async (src: Source, messages: Message[]): Promise<void> => {
    const region = src.arn.split(':')[3] ?? 'us-east-1';
    const event: SQSEvent = { Records: messages.map((m) => toRecord(m, src.arn, region)) };
    const deadline = Date.now() + timeoutMs;
    const context = lambdaContext(functionName, deadline, region);
    const ids = new Set(event.Records.map((r) => r.messageId));
    let failed: Set<string>;
    try {
      failed = failuresOf(await src.handler(event, context), ids);
    } catch (err) {
      // Like Lambda: a thrown handler fails the whole batch.
      log.error('local worker invocation failed; the whole batch will be redelivered', {
        queue: src.name,
        records: messages.length,
        error: (err as Error).message,
      });
      failed = ids;
    }
    const done = messages.filter((m) => !failed.has(m.MessageId as string));
    for (let i = 0; i < done.length; i += 10) {
      const chunk = done.slice(i, i + 10);
      try {
        const r = await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: src.url,
            Entries: chunk.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle as string })),
          }),
        );
        if (r.Failed?.length) log.warn('some processed messages could not be deleted', { failed: r.Failed });
      } catch (err) {
        // They come back after the visibility timeout; the handler is idempotent.
        log.warn('deleting processed messages failed', { queue: src.name, error: (err as Error).message });
      }
    }
  };

  const loop = async (src: Source): Promise<void> => {
    while (!stopping.signal.aborted) {
      let messages: Message[];
      try {
        messages = await gather(src);
      } catch (err) {
        if (stopping.signal.aborted) break;
        warnRarely('local worker cannot receive messages; retrying', {
          queue: src.name,
          error: (err as Error).message,
        });
        await sleep(1000, stopping.signal);
        continue;
      }
      // Messages already received are processed even when stopping: they are ours until then.
      if (messages.length > 0) await invoke(src, messages);
      // Short polls return at once when the queue is empty: do not spin.
      else if (wait === 0) await sleep(50, stopping.signal);
    }
  };

  const sources: Source[] = [
    {
      url: opts.queueUrl,
      arn: await arnOf(opts.queueUrl),
      handler: opts.handler,
      batchSize: Math.max(1, batchSize),
      name: 'jobs',
    },
  ];
  const loops: Promise<void>[] = [];
  for (let i = 0; i < Math.max(1, concurrency); i++) loops.push(loop(sources[0] as Source));
  if (opts.dlqUrl && opts.dlqHandler) {
    const dlq: Source = {
      url: opts.dlqUrl,
      arn: await arnOf(opts.dlqUrl),
      handler: opts.dlqHandler,
      batchSize: 10,
      name: 'dlq',
    };
    loops.push(loop(dlq));
  }

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        stopping.abort();
        await Promise.all(loops);
        if (ownClient) sqs.destroy();
      })();
      return stopped;
    },
  };
}

/**
 * `npm run dev`: the worker and DLQ handler over the service's own runtime, polling the queues
 * in TOLLGATE_JOBS_QUEUE_URL / TOLLGATE_JOBS_DLQ_URL with the deployed defaults (batches of 5,
 * TOLLGATE_WORKER_CONCURRENCY invocations, a 5-minute function timeout). Stops with the runtime.
 */
export async function startDevWorker(rt: Runtime): Promise<LocalWorker> {
  const queueUrl = rt.env.jobsQueueUrl;
  if (!queueUrl) {
    rt.telemetry.logger.warn('no TOLLGATE_JOBS_QUEUE_URL: the local job worker is not started');
    return { stop: async () => {} };
  }
  const worker = await startLocalWorker({
    queueUrl,
    dlqUrl: rt.env.jobsDlqUrl,
    handler: createWorkerHandler(rt),
    dlqHandler: createDlqHandler(rt),
    batchSize: 5,
    maxConcurrency: rt.env.workerConcurrency,
    visibilityTimeoutSeconds: 360,
    functionTimeoutMs: 300_000,
    logger: rt.telemetry.logger,
  });
  rt.onClose.push(() => worker.stop());
  return worker;
}

function toRecord(m: Message, arn: string, region: string): SQSRecord {
  const a = m.Attributes ?? {};
  const now = String(Date.now());
  const attributes: SQSRecord['attributes'] = {
    ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
    SentTimestamp: a.SentTimestamp ?? now,
    SenderId: a.SenderId ?? 'local',
    ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? now,
  };
  if (a.DeadLetterQueueSourceArn) attributes.DeadLetterQueueSourceArn = a.DeadLetterQueueSourceArn;
  if (a.AWSTraceHeader) attributes.AWSTraceHeader = a.AWSTraceHeader;
  const messageAttributes: SQSMessageAttributes = {};
  for (const [k, v] of Object.entries(m.MessageAttributes ?? {})) {
    messageAttributes[k] = {
      dataType: v.DataType ?? 'String',
      stringListValues: [],
      binaryListValues: [],
      ...(v.StringValue !== undefined ? { stringValue: v.StringValue } : {}),
      ...(v.BinaryValue !== undefined ? { binaryValue: Buffer.from(v.BinaryValue).toString('base64') } : {}),
    };
  }
  return {
    messageId: m.MessageId as string,
    receiptHandle: m.ReceiptHandle as string,
    body: m.Body ?? '',
    attributes,
    messageAttributes,
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: arn,
    awsRegion: region,
  };
}

/** Lambda's rule: an unknown or empty itemIdentifier fails the whole batch. */
function failuresOf(res: SQSBatchResponse | undefined | null, ids: Set<string>): Set<string> {
  const failed = new Set<string>();
  for (const f of res?.batchItemFailures ?? []) {
    if (!f.itemIdentifier || !ids.has(f.itemIdentifier)) return new Set(ids);
    failed.add(f.itemIdentifier);
  }
  return failed;
}

function lambdaContext(functionName: string, deadline: number, region: string): Context {
  const requestId = randomUUID();
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:000000000000:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/${requestId}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}
