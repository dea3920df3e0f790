/**
 * What the Lambda event source hands the worker, built from the real queue: for tests that
 * invoke a handler directly (one invocation at a time, in the test's own order) instead of
 * through the local poller.
 */
import {
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { eventually } from './service';

/** A one-record event with the message of job `jobId` (received, so hidden for 60 s). */
export async function receiveJobEvent(queueUrl: string, jobId: string): Promise<SQSEvent> {
  const sqs = new SQSClient({});
  try {
    const arn = (
      await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))
    ).Attributes?.QueueArn as string;
    const message = await eventually(async () => {
      const r = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: 60,
          AttributeNames: ['All'],
        }),
      );
      return r.Messages?.find((m) => m.Body?.includes(jobId));
    });
    return { Records: [sqsRecord(message, arn)] };
  } finally {
    sqs.destroy();
  }
}

export function sqsRecord(m: Message, arn: string): SQSRecord {
  const a = m.Attributes ?? {};
  return {
    messageId: m.MessageId as string,
    receiptHandle: m.ReceiptHandle as string,
    body: m.Body as string,
    attributes: {
      ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
      SentTimestamp: a.SentTimestamp ?? String(Date.now()),
      SenderId: 'test',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: arn,
    awsRegion: arn.split(':')[3] ?? 'us-east-1',
  };
}

/** A Lambda context with `timeoutMs` left. */
export function lambdaContext(timeoutMs = 60_000): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'tollgate-worker-test',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:tollgate-worker-test',
    memoryLimitInMB: '512',
    awsRequestId: 'test',
    logGroupName: '/aws/lambda/tollgate-worker-test',
    logStreamName: 'test',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}
