/**
 * Test fixtures: the local stand-ins for ElastiCache, DynamoDB and SQS.
 *
 * By default Redis is a `redis-server` child and DynamoDB / SQS run in-process (dynalite,
 * local-aws-sqs). With `AWS_ENDPOINT_URL` (or the per-service `AWS_ENDPOINT_URL_DYNAMODB` /
 * `AWS_ENDPOINT_URL_SQS`) set, e.g. for LocalStack, that service is not started and the
 * given endpoint is used instead.
 */
import { startDynalite } from '../../container/src/local/dynamo';
import type { LocalService } from '../../container/src/local/ports';
import { startRedisServer } from '../../container/src/local/redis';
import { startLocalSqs } from '../../container/src/local/sqs';

/** Endpoints of the running emulators. */
export interface Emulators {
  redisUrl: string;
  dynamoEndpoint: string;
  sqsEndpoint: string;
  /** Stops what this call started (never an external endpoint); safe to call twice. */
  stop(): Promise<void>;
}

/** The endpoint an env var points a service at, if any (`AWS_ENDPOINT_URL_<SERVICE>` wins). */
function externalEndpoint(service: 'DYNAMODB' | 'SQS'): string | undefined {
  return process.env[`AWS_ENDPOINT_URL_${service}`] || process.env['AWS_ENDPOINT_URL'] || undefined;
}

/**
 * Starts Redis, DynamoDB and SQS emulators (or adopts external endpoints, see the module
 * doc). On failure, whatever already started is stopped before the error propagates.
 *
 * @throws when `redis-server` is not on PATH.
 */
export async function startEmulators(): Promise<Emulators> {
  const started: LocalService[] = [];
  const stopAll = async (): Promise<void> => {
    const results = await Promise.allSettled(started.splice(0).map((s) => s.stop()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  // allSettled, not all: on a failure every sibling must have finished starting before
  // stopAll runs, or one could start after the clean-up and leak.
  const results = await Promise.allSettled([
    startRedisServer().then((r) => {
      if (r === null) {
        throw new Error(
          'redis-server is not on PATH: the tests need a real Redis. Install the Debian package ' +
            '`redis-server` (apt-get install redis-server), or put a redis-server binary on PATH.',
        );
      }
      started.push(r);
      return r.url;
    }),
    externalEndpoint('DYNAMODB') ??
      startDynalite().then((s) => {
        started.push(s);
        return s.url;
      }),
    externalEndpoint('SQS') ??
      startLocalSqs().then((s) => {
        started.push(s);
        return s.url;
      }),
  ]);
  const [redis, dynamo, sqs] = results;
  if (redis?.status !== 'fulfilled' || dynamo?.status !== 'fulfilled' || sqs?.status !== 'fulfilled') {
    await stopAll().catch(() => undefined);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    throw failed?.reason ?? new Error('emulators failed to start');
  }
  let stopping: Promise<void> | undefined;
  return {
    redisUrl: redis.value,
    dynamoEndpoint: dynamo.value,
    sqsEndpoint: sqs.value,
    stop: () => {
      stopping ??= stopAll();
      return stopping;
    },
  };
}

/** SDK client settings for an emulator; `endpoint` undefined lets the SDK read it from the env. */
export interface AwsClientConfig {
  endpoint?: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/**
 * Config for `new DynamoDBClient(...)` / `new SQSClient(...)` against an emulator, with
 * dummy credentials (neither emulator checks signatures).
 */
export function awsClientConfig(endpoint?: string): AwsClientConfig {
  const config: AwsClientConfig = {
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  };
  if (endpoint !== undefined) config.endpoint = endpoint;
  return config;
}
