import { type AddressInfo, connect, createServer } from 'node:net';
import {
  type AttributeValue,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import Redis from 'ioredis';
import { TABLES } from '../../container/src/contract';
import { ensureTables, startDynalite } from '../../container/src/local/dynamo';
import type { LocalService } from '../../container/src/local/ports';
import { type RedisServer, startRedisServer } from '../../container/src/local/redis';
import { ensureQueues, startLocalSqs } from '../../container/src/local/sqs';
import { awsClientConfig, startEmulators } from '../helpers/emulators';

const names = {
  apiKeys: 'test-api-keys',
  usage: 'test-usage',
  jobs: 'test-jobs',
  conversations: 'test-conversations',
  responses: 'test-responses',
};

/** Whether anything accepts TCP connections on the port. */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('redis-server', () => {
  let redis: RedisServer | null = null;
  let client: Redis | undefined;

  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it('starts on a free port, answers commands, and stop() leaves no process', async () => {
    redis = await startRedisServer();
    if (redis === null) throw new Error('redis-server not on PATH; install the Debian package redis-server');
    expect(redis.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await client.connect();
    await client.set('k', 'v');
    expect(await client.get('k')).toBe('v');
    // Started without persistence, so nothing touches the working directory.
    expect(await client.config('GET', 'save')).toEqual(['save', '']);
    client.disconnect();
    client = undefined;

    await redis.stop();
    await redis.stop(); // idempotent
    expect(processAlive(redis.pid)).toBe(false);
    expect(await portOpen(redis.port)).toBe(false);
  });
});

describe('redis-server start failures', () => {
  it('fails fast with the server output when the port is taken', async () => {
    const blocker = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      await expect(startRedisServer({ port })).rejects.toThrow(/exited before answering[\s\S]*in use/i);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});

describe('dynalite + ensureTables', () => {
  let dynamo: LocalService;
  let client: DynamoDBClient;

  beforeAll(async () => {
    dynamo = await startDynalite();
    client = new DynamoDBClient(awsClientConfig(dynamo.url));
  });

  afterAll(async () => {
    client.destroy();
    await dynamo.stop();
  });

  it('creates the tables ACTIVE with the contract schema, and is idempotent', async () => {
    await ensureTables(client, names);
    await ensureTables(client, names);

    const { Table } = await client.send(new DescribeTableCommand({ TableName: names.apiKeys }));
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'keyHash', KeyType: 'HASH' }]);
    const gsis = Object.fromEntries((Table?.GlobalSecondaryIndexes ?? []).map((g) => [g.IndexName, g]));
    expect(gsis['byId']?.KeySchema).toEqual([{ AttributeName: 'id', KeyType: 'HASH' }]);
    expect(gsis['byOwner']?.KeySchema).toEqual([
      { AttributeName: 'owner', KeyType: 'HASH' },
      { AttributeName: 'createdAt', KeyType: 'RANGE' },
    ]);
    expect(gsis['byOwner']?.Projection?.ProjectionType).toBe('ALL');

    const usage = await client.send(new DescribeTableCommand({ TableName: names.usage }));
    expect(usage.Table?.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    const responses = await client.send(new DescribeTableCommand({ TableName: names.responses }));
    expect(responses.Table?.KeySchema).toEqual([
      { AttributeName: 'responseId', KeyType: 'HASH' },
      { AttributeName: 'chunk', KeyType: 'RANGE' },
    ]);
    // Quirk: dynalite has no UpdateTimeToLive, so TTL stays DISABLED (and items never expire).
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: names.usage }));
    expect(ttl.TimeToLiveDescription?.TimeToLiveStatus).toBe('DISABLED');
  });

  it('stores and reads items in every table, and queries the byOwner index', async () => {
    await ensureTables(client, names);
    const items: Array<{
      table: string;
      item: Record<string, AttributeValue>;
      key: Record<string, AttributeValue>;
    }> = [
      {
        table: names.apiKeys,
        item: {
          keyHash: { S: 'h1' },
          id: { S: 'key_1' },
          owner: { S: 'alice' },
          createdAt: { S: '2026-01-01T00:00:00Z' },
        },
        key: { keyHash: { S: 'h1' } },
      },
      {
        table: names.usage,
        item: { pk: { S: 'key_1' }, sk: { S: '2026-01-01' }, expiresAt: { N: '1' } },
        key: { pk: { S: 'key_1' }, sk: { S: '2026-01-01' } },
      },
      {
        table: names.jobs,
        item: { jobId: { S: 'job_1' }, status: { S: 'queued' } },
        key: { jobId: { S: 'job_1' } },
      },
      {
        table: names.conversations,
        item: { conversationId: { S: 'conv_1' }, messages: { S: '[]' } },
        key: { conversationId: { S: 'conv_1' } },
      },
    ];
    for (const { table, item, key } of items) {
      await client.send(new PutItemCommand({ TableName: table, Item: item }));
      const got = await client.send(new GetItemCommand({ TableName: table, Key: key, ConsistentRead: true }));
      expect(got.Item).toEqual(item);
    }
    const byOwner = await client.send(
      new QueryCommand({
        TableName: names.apiKeys,
        IndexName: TABLES.apiKeys.byOwnerIndex.name,
        KeyConditionExpression: '#o = :o',
        ExpressionAttributeNames: { '#o': 'owner' },
        ExpressionAttributeValues: { ':o': { S: 'alice' } },
      }),
    );
    expect(byOwner.Items?.map((i) => i['id']?.S)).toEqual(['key_1']);
  });

  it('stop() closes the port', async () => {
    const other = await startDynalite();
    const c = new DynamoDBClient(awsClientConfig(other.url));
    await ensureTables(c, names); // leaves keep-alive sockets open, which stop() must close
    c.destroy();
    await other.stop();
    expect(await portOpen(portOf(other.url))).toBe(false);
  });
});

describe('local-aws-sqs + ensureQueues', () => {
  let sqs: LocalService;
  let client: SQSClient;

  beforeAll(async () => {
    sqs = await startLocalSqs();
    client = new SQSClient(awsClientConfig(sqs.url));
  });

  afterAll(async () => {
    client.destroy();
    await sqs.stop();
  });

  it('creates a queue redriving to a DLQ, idempotently, and moves messages', async () => {
    const first = await ensureQueues(client, { queueName: 'jobs', dlqName: 'jobs-dlq' });
    const again = await ensureQueues(client, { queueName: 'jobs', dlqName: 'jobs-dlq' });
    expect(again).toEqual(first);
    expect(first.queueUrl).toBe(`${sqs.url}/123456789012/jobs`);
    expect(first.dlqArn).toBe('arn:aws:sqs:us-east-1:123456789012:jobs-dlq');

    const { Attributes } = await client.send(
      new GetQueueAttributesCommand({ QueueUrl: first.queueUrl, AttributeNames: ['All'] }),
    );
    expect(Attributes?.['VisibilityTimeout']).toBe('30');
    expect(JSON.parse(Attributes?.['RedrivePolicy'] ?? '{}')).toMatchObject({
      deadLetterTargetArn: first.dlqArn,
      maxReceiveCount: 3,
    });

    await client.send(new SendMessageCommand({ QueueUrl: first.queueUrl, MessageBody: '{"jobId":"j1"}' }));
    const got = await client.send(
      new ReceiveMessageCommand({ QueueUrl: first.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    expect(got.Messages?.map((m) => m.Body)).toEqual(['{"jobId":"j1"}']);
    await client.send(
      new DeleteMessageCommand({ QueueUrl: first.queueUrl, ReceiptHandle: got.Messages![0]!.ReceiptHandle! }),
    );
    const empty = await client.send(
      new ReceiveMessageCommand({ QueueUrl: first.queueUrl, WaitTimeSeconds: 0 }),
    );
    expect(empty.Messages ?? []).toEqual([]);
  });

  it('moves a message received maxReceiveCount times to the DLQ', async () => {
    const q = await ensureQueues(client, {
      queueName: 'flaky',
      dlqName: 'flaky-dlq',
      maxReceiveCount: 2,
      visibilityTimeoutSeconds: 1,
    });
    await client.send(new SendMessageCommand({ QueueUrl: q.queueUrl, MessageBody: 'poison' }));
    const receive = (url: string) =>
      client.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          WaitTimeSeconds: 0,
          // Quirk: local-aws-sqs only reads the deprecated AttributeNames, not MessageSystemAttributeNames.
          AttributeNames: ['All'],
        }),
      );

    const counts: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await receive(q.queueUrl);
      expect(r.Messages).toHaveLength(1);
      counts.push(r.Messages![0]!.Attributes?.ApproximateReceiveCount ?? '');
      // Not deleted: wait out the visibility timeout, as a crashed worker would.
      await new Promise((res) => setTimeout(res, 1100));
    }
    expect(counts).toEqual(['1', '2']);
    const third = await receive(q.queueUrl);
    expect(third.Messages ?? []).toEqual([]);
    const dead = await receive(q.dlqUrl);
    expect(dead.Messages?.map((m) => m.Body)).toEqual(['poison']);
  });

  it('stop() closes the port', async () => {
    const other = await startLocalSqs();
    await other.stop();
    expect(await portOpen(portOf(other.url))).toBe(false);
  });
});

describe('startEmulators', () => {
  const saved = { ...process.env };

  afterEach(() => {
    for (const k of ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_SQS', 'AWS_ENDPOINT_URL_DYNAMODB']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('starts all three, and stop() releases every port', async () => {
    delete process.env['AWS_ENDPOINT_URL'];
    delete process.env['AWS_ENDPOINT_URL_SQS'];
    delete process.env['AWS_ENDPOINT_URL_DYNAMODB'];
    const emu = await startEmulators();
    try {
      expect(emu.redisUrl).toMatch(/^redis:\/\//);
      const ddb = new DynamoDBClient(awsClientConfig(emu.dynamoEndpoint));
      const sqs = new SQSClient(awsClientConfig(emu.sqsEndpoint));
      await ensureTables(ddb, names);
      await ensureQueues(sqs, { queueName: 'emu-jobs', dlqName: 'emu-jobs-dlq' });
      ddb.destroy();
      sqs.destroy();
    } finally {
      await emu.stop();
    }
    for (const url of [emu.redisUrl, emu.dynamoEndpoint, emu.sqsEndpoint]) {
      expect(await portOpen(portOf(url))).toBe(false);
    }
  });

  it('uses AWS_ENDPOINT_URL* instead of starting dynalite / local-aws-sqs', async () => {
    process.env['AWS_ENDPOINT_URL'] = 'http://127.0.0.1:4566';
    process.env['AWS_ENDPOINT_URL_SQS'] = 'http://127.0.0.1:4576';
    delete process.env['AWS_ENDPOINT_URL_DYNAMODB'];
    const emu = await startEmulators();
    try {
      expect(emu.dynamoEndpoint).toBe('http://127.0.0.1:4566');
      expect(emu.sqsEndpoint).toBe('http://127.0.0.1:4576');
    } finally {
      await emu.stop();
    }
    expect(await portOpen(portOf(emu.redisUrl))).toBe(false);
  });

  it('awsClientConfig leaves the endpoint out when none is given', () => {
    expect(awsClientConfig()).toEqual({
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    expect(awsClientConfig('http://x:1').endpoint).toBe('http://x:1');
  });
});
