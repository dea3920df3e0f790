/**
 * In-process SQS (local-aws-sqs, which speaks the JSON protocol the v3 SDK sends) and the
 * queue set-up shared by dev mode, tests and LocalStack runs.
 */
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { closeHttpServer, type LocalService, listeningPort } from './ports';

export type { LocalService } from './ports';

/**
 * Starts local-aws-sqs in this process on a free 127.0.0.1 port. Queue URLs it hands out
 * use `127.0.0.1` too, so they work as SDK `QueueUrl`s against `url`.
 */
export async function startLocalSqs(): Promise<LocalService> {
  // Loaded lazily: local-aws-sqs is a devDependency and this module sits in the runtime tree.
  const { createSqsServer } = await import('local-aws-sqs');
  const server = await createSqsServer({
    port: 0,
    hostname: '127.0.0.1',
    // Tests recreate queues with the same names; AWS's 60 s wait after a delete would bite.
    emulateQueueCreationLifecycle: false,
  });
  const port = listeningPort(server);
  let stopping: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => {
      stopping ??= closeHttpServer(server);
      return stopping;
    },
  };
}

/** Options for {@link ensureQueues}. */
export interface QueueOptions {
  queueName: string;
  dlqName: string;
  /** Receives before a message moves to the DLQ. Default 3. */
  maxReceiveCount?: number;
  /**
   * Default 30. Keep it above any long-poll `WaitTimeSeconds`: local-aws-sqs was seen to
   * return one message twice in a single receive otherwise.
   */
  visibilityTimeoutSeconds?: number;
}

/** URLs and ARN of the job queue pair. */
export interface QueueUrls {
  queueUrl: string;
  dlqUrl: string;
  dlqArn: string;
}

/**
 * Creates the dead-letter queue, then the main queue redriving to it. CreateQueue is
 * idempotent for identical attributes, so running this twice is fine; it fails (like AWS,
 * `QueueAlreadyExists`) when a queue exists with different attributes.
 */
export async function ensureQueues(client: SQSClient, opts: QueueOptions): Promise<QueueUrls> {
  const maxReceiveCount = opts.maxReceiveCount ?? 3;
  const visibility = opts.visibilityTimeoutSeconds ?? 30;
  const dlq = await client.send(
    new CreateQueueCommand({
      QueueName: opts.dlqName,
      // Longest retention, so dead letters outlive the investigation.
      Attributes: { MessageRetentionPeriod: '1209600' },
    }),
  );
  const dlqUrl = required(dlq.QueueUrl, 'DLQ QueueUrl');
  const attrs = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['QueueArn'] }),
  );
  const dlqArn = required(attrs.Attributes?.QueueArn, 'DLQ QueueArn');
  const main = await client.send(
    new CreateQueueCommand({
      QueueName: opts.queueName,
      Attributes: {
        VisibilityTimeout: String(visibility),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount }),
      },
    }),
  );
  return { queueUrl: required(main.QueueUrl, 'QueueUrl'), dlqUrl, dlqArn };
}

function required(value: string | undefined, what: string): string {
  if (!value) throw new Error(`SQS returned no ${what}`);
  return value;
}
