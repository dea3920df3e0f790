import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { ENV } from '../contract';
import { ensureTables, startDynalite } from './dynamo';
import type { LocalService } from './ports';
import { startRedisServer } from './redis';
import { ensureQueues, startLocalSqs } from './sqs';

export interface LocalStack {
  /** Variables to run the service with (merged over process.env by the caller). */
  env: Record<string, string>;
  /** What was started here (for the banner). */
  started: string[];
  stop(): Promise<void>;
}

export interface LocalStackOptions {
  /** Environment to read endpoints from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Table and queue name prefix (tests use unique ones). @default 'tollgate' */
  prefix?: string;
  /** Spawn redis-server when no REDIS_URL is set. @default true */
  redis?: boolean;
}

/**
 * The embedded stand-ins for `npm run dev` and the tests: redis-server on a free port (when on
 * PATH and no REDIS_URL), dynalite for DynamoDB and local-aws-sqs for SQS (unless an
 * AWS_ENDPOINT_URL* points elsewhere, e.g. LocalStack), with the tables and queues created.
 */
export async function startLocalStack({
  env = process.env,
  prefix = 'tollgate',
  redis = true,
}: LocalStackOptions = {}): Promise<LocalStack> {
  const services: LocalService[] = [];
  const started: string[] = [];
  const out: Record<string, string> = {};
  const stop = async () => {
    await Promise.allSettled(
      services
        .splice(0)
        .reverse()
        .map((s) => s.stop()),
    );
  };
  try {
    if (redis && !env[ENV.redisUrl] && !env[ENV.redisHost]) {
      const r = await startRedisServer();
      if (r) {
        services.push(r);
        started.push(`redis-server ${r.url}`);
        out[ENV.redisUrl] = r.url;
      }
    }
    const aws = { region: env.AWS_REGION ?? 'us-east-1' };
    out.AWS_REGION = aws.region;
    if (!env.AWS_ACCESS_KEY_ID && !env.AWS_PROFILE) {
      out.AWS_ACCESS_KEY_ID = 'local';
      out.AWS_SECRET_ACCESS_KEY = 'local';
    }
    let ddbEndpoint = env.AWS_ENDPOINT_URL_DYNAMODB ?? env.AWS_ENDPOINT_URL;
    if (!ddbEndpoint) {
      const d = await startDynalite();
      services.push(d);
      started.push(`dynalite ${d.url}`);
      ddbEndpoint = d.url;
      out.AWS_ENDPOINT_URL_DYNAMODB = d.url;
    }
    let sqsEndpoint = env.AWS_ENDPOINT_URL_SQS ?? env.AWS_ENDPOINT_URL;
    if (!sqsEndpoint) {
      const q = await startLocalSqs();
      services.push(q);
      started.push(`local-aws-sqs ${q.url}`);
      sqsEndpoint = q.url;
      out.AWS_ENDPOINT_URL_SQS = q.url;
    }
    const credentials = out.AWS_ACCESS_KEY_ID
      ? { accessKeyId: 'local', secretAccessKey: 'local' }
      : undefined;
    const tables = {
      apiKeys: `${prefix}-api-keys`,
      usage: `${prefix}-usage`,
      jobs: `${prefix}-jobs`,
      conversations: `${prefix}-conversations`,
      responses: `${prefix}-responses`,
    };
    const ddb = new DynamoDBClient({
      ...aws,
      endpoint: ddbEndpoint,
      ...(credentials ? { credentials } : {}),
    });
    await ensureTables(ddb, tables);
    ddb.destroy();
    out[ENV.tableApiKeys] = tables.apiKeys;
    out[ENV.tableUsage] = tables.usage;
    out[ENV.tableJobs] = tables.jobs;
    out[ENV.tableConversations] = tables.conversations;
    out[ENV.tableResponses] = tables.responses;
    const sqs = new SQSClient({ ...aws, endpoint: sqsEndpoint, ...(credentials ? { credentials } : {}) });
    const q = await ensureQueues(sqs, {
      queueName: `${prefix}-jobs`,
      dlqName: `${prefix}-jobs-dlq`,
      visibilityTimeoutSeconds: 30,
    });
    sqs.destroy();
    out[ENV.jobsQueueUrl] = q.queueUrl;
    out[ENV.jobsDlqUrl] = q.dlqUrl;
  } catch (err) {
    await stop();
    throw err;
  }
  return { env: out, started, stop };
}
