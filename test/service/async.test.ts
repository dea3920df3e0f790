/**
 * The async path end to end: the real service (POST /v1/chat/async), local-aws-sqs with its
 * DLQ, the local poller calling the real worker and DLQ handlers over a worker runtime of its
 * own (as Lambda would), dynalite, redis-server and the scripted mock upstream.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { DeleteCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Context, SQSRecord } from 'aws-lambda';
import OpenAI from 'openai';
import { readEnv } from '../../container/src/config/env';
import { SERVICE_NAMES, TABLES } from '../../container/src/contract';
import { type JobRow, JobStore, pendingShard } from '../../container/src/jobs/job-store';
import { JobProcessor, type RunResult } from '../../container/src/jobs/processor';
import { asyncRoutes, registerAsyncRoutes } from '../../container/src/jobs/routes';
import type { JobMessage } from '../../container/src/jobs/schema';
import { createDlqHandler, createWorkerHandler, type SqsBatchHandler } from '../../container/src/jobs/worker';
import { type LocalWorker, startLocalWorker } from '../../container/src/local/poller';
import { ensureQueues, startLocalSqs } from '../../container/src/local/sqs';
import { createRuntime, type Runtime } from '../../container/src/runtime';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { ADMIN_KEY, eventually, mockModel, startTestService, type TestService } from '../helpers/service';

/** Before any job of this file exists: no job here is older. */
const SUITE_START = Date.now();
/** Short so that redelivery tests stay fast; short polls, so no long poll outlasts it (local-aws-sqs quirk). */
const VISIBILITY_S = 3;
const MARGIN_MS = 2000;

let upstream: MockUpstream;
let svc: TestService;
let workerRt: Runtime;
let handler: SqsBatchHandler;
let dlqHandler: SqsBatchHandler;
let worker: LocalWorker | undefined;
let sqs: SQSClient;
const sides: Array<{ stop(): Promise<void> }> = [];

/** One record the worker (or DLQ handler) was invoked with. */
interface Delivery {
  batch: number;
  jobId: string | undefined;
  messageId: string;
  receiveCount: number;
  hasRequest: boolean;
  /** The invocation returned (its usage records were flushed). */
  done: boolean;
}
const deliveries: Delivery[] = [];
const dlqDeliveries: Delivery[] = [];
let batchSeq = 0;

/** Content markers whose job crashes once, after the model answered and before the job is settled. */
const crashOnce = new Set<string>();

class FaultInjectingProcessor extends JobProcessor {
  protected override async run(job: JobRow, msg: JobMessage, signal: AbortSignal): Promise<RunResult> {
    const result = await super.run(job, msg, signal);
    const text = JSON.stringify(msg.request ?? job.request ?? '');
    for (const marker of crashOnce) {
      if (text.includes(marker)) {
        crashOnce.delete(marker);
        throw new Error(`simulated worker crash (${marker})`);
      }
    }
    return result;
  }
}

function models(u: MockUpstream, opts: { retired: boolean }) {
  return [
    mockModel(u, 'mock-small'),
    mockModel(u, 'mock-flaky', { upstreamModel: 'flaky-up' }),
    mockModel(u, 'mock-broken', { upstreamModel: 'broken-up' }),
    mockModel(u, 'mock-big', { upstreamModel: 'big-up', contextWindow: 400_000, maxOutputTokens: 16 }),
    ...(opts.retired ? [mockModel(u, 'mock-retired', { upstreamModel: 'retired-up' })] : []),
  ];
}

function spied(h: SqsBatchHandler, into: Delivery[]): SqsBatchHandler {
  return async (event, context) => {
    const batch = ++batchSeq;
    const mine: Delivery[] = [];
    for (const r of event.Records) {
      let body: { jobId?: unknown; request?: unknown } = {};
      try {
        body = JSON.parse(r.body) as typeof body;
      } catch {
        // an unreadable message: recorded without a job id
      }
      const d: Delivery = {
        batch,
        jobId: typeof body.jobId === 'string' ? body.jobId : undefined,
        messageId: r.messageId,
        receiveCount: Number(r.attributes.ApproximateReceiveCount),
        hasRequest: body.request !== undefined,
        done: false,
      };
      into.push(d);
      mine.push(d);
    }
    try {
      return await h(event, context);
    } finally {
      for (const d of mine) d.done = true;
    }
  };
}

async function startWorker(o: { maxConcurrency?: number; batchWindowMs?: number } = {}): Promise<void> {
  worker = await startLocalWorker({
    queueUrl: svc.stack.env.TOLLGATE_JOBS_QUEUE_URL as string,
    dlqUrl: svc.stack.env.TOLLGATE_JOBS_DLQ_URL,
    handler: spied(handler, deliveries),
    dlqHandler: spied(dlqHandler, dlqDeliveries),
    batchSize: 10,
    batchWindowMs: o.batchWindowMs ?? 50,
    maxConcurrency: o.maxConcurrency ?? 4,
    visibilityTimeoutSeconds: VISIBILITY_S,
    functionTimeoutMs: 30_000,
    waitTimeSeconds: 0,
    logger: workerRt.telemetry.logger,
  });
}

async function stopWorker(): Promise<void> {
  await worker?.stop();
  worker = undefined;
}

beforeAll(async () => {
  upstream = await startMockUpstream();
  svc = await startTestService({
    name: 'async',
    plugins: [registerAsyncRoutes],
    config: { models: models(upstream, { retired: true }) },
  });
  // The worker's own runtime, like a Lambda's: same tables, queue and Redis, its own catalogue
  // (without mock-retired: a model removed between submission and processing).
  workerRt = await createRuntime(
    readEnv({
      ...process.env,
      ...svc.stack.env,
      POWERTOOLS_SERVICE_NAME: SERVICE_NAMES.worker,
      TOLLGATE_CONFIG_JSON: JSON.stringify({ models: models(upstream, { retired: false }) }),
    }),
  );
  const processor = new FaultInjectingProcessor({
    rt: workerRt,
    store: new JobStore(workerRt.doc, workerRt.env.tables.jobs),
  });
  handler = createWorkerHandler(workerRt, {
    processor,
    deadlineMarginMs: MARGIN_MS,
    retryBackoff: { baseSeconds: 1, maxSeconds: 2 },
  });
  dlqHandler = createDlqHandler(workerRt);
  sqs = new SQSClient({ useQueueUrlAsEndpoint: false });
  await startWorker();
});

afterAll(async () => {
  await stopWorker();
  await workerRt?.close();
  for (const s of sides) await s.stop();
  await svc?.stop();
  await upstream?.close();
  sqs?.destroy();
});

beforeEach(() => {
  upstream.reset();
  upstream.setDefault('broken-up', { kind: 'error', status: 500, message: 'upstream is down' });
});

// --- helpers ---------------------------------------------------------------------------------

const user = (content: string) => [{ role: 'user' as const, content }];
const marker = () => `m-${randomUUID()}`;

async function premiumKey(limits: Record<string, number> = {}) {
  return svc.createKey({
    tier: 'premium',
    limits: {
      rpm: 100_000,
      tpm: 100_000_000,
      daily_tokens: 10_000_000_000,
      monthly_budget_usd: 1_000_000,
      ...limits,
    },
  });
}

async function submit(
  key: string,
  body: object,
  headers: Record<string, string> = {},
  path = '/v1/chat/async',
) {
  return svc.http('POST', path, { key, body, headers });
}

async function status(key: string, id: string) {
  return svc.http('GET', `/v1/chat/async/${id}`, { key });
}

/** Polls the status URL until the job is completed or failed. */
/**
 * Polls the status URL until the job is completed or failed, and until every invocation that
 * got the job returned: the status is written before the invocation flushes its usage.
 */
async function settled(key: string, id: string, timeoutMs = 15_000) {
  const job = await eventually(
    async () => {
      const r = await status(key, id);
      const j = r.json();
      return j.status === 'completed' || j.status === 'failed' ? j : undefined;
    },
    timeoutMs,
    50,
  );
  await invocationsReturned([id]);
  return job;
}

/** Every poller invocation (worker or DLQ handler) that got one of these jobs has returned. */
async function invocationsReturned(ids: string[], timeoutMs = 15_000): Promise<void> {
  const want = new Set(ids);
  await eventually(
    () => [...deliveries, ...dlqDeliveries].every((d) => d.done || !want.has(d.jobId ?? '')),
    timeoutMs,
    20,
  );
}

function upstreamCalls(m: string): number {
  return upstream.requests.filter((r) => JSON.stringify(r.body).includes(m)).length;
}

/** The per-request usage rows of an owner (not the daily aggregates), after the worker flushed. */
async function usageRows(owner: string): Promise<Array<Record<string, unknown>>> {
  await workerRt.usage.flush();
  const out: Array<Record<string, unknown>> = [];
  let start: Record<string, unknown> | undefined;
  do {
    const r = await workerRt.doc.send(
      new QueryCommand({
        TableName: workerRt.env.tables.usage,
        KeyConditionExpression: 'pk = :pk AND sk < :d',
        ExpressionAttributeValues: { ':pk': `OWNER#${owner}`, ':d': 'DAY#' },
        ExclusiveStartKey: start,
      }),
    );
    out.push(...(r.Items ?? []));
    start = r.LastEvaluatedKey;
  } while (start);
  return out;
}

/** Whether a job is listed in the jobs table's pending index (unfinished jobs by age). */
async function inPendingIndex(jobId: string): Promise<boolean> {
  const idx = TABLES.jobs.pendingIndex;
  const r = await workerRt.doc.send(
    new QueryCommand({
      TableName: workerRt.env.tables.jobs,
      IndexName: idx.name,
      KeyConditionExpression: '#p = :p',
      ExpressionAttributeNames: { '#p': idx.partitionKey },
      ExpressionAttributeValues: { ':p': pendingShard(jobId) },
    }),
  );
  return (r.Items ?? []).some((i) => i.jobId === jobId);
}

async function jobRows(owner: string): Promise<JobRow[]> {
  const out: JobRow[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const r = await workerRt.doc.send(
      new ScanCommand({
        TableName: workerRt.env.tables.jobs,
        FilterExpression: '#o = :o',
        ExpressionAttributeNames: { '#o': 'owner' },
        ExpressionAttributeValues: { ':o': owner },
        ExclusiveStartKey: start,
      }),
    );
    out.push(...((r.Items ?? []) as JobRow[]));
    start = r.LastEvaluatedKey;
  } while (start);
  return out;
}

const jobStore = () => new JobStore(workerRt.doc, workerRt.env.tables.jobs);

/** With the worker stopped: receive the messages of these jobs ourselves (others go back). */
async function takeMessages(jobIds: string[]): Promise<Message[]> {
  const want = new Set(jobIds);
  const got = new Map<string, Message>();
  const queueUrl = svc.stack.env.TOLLGATE_JOBS_QUEUE_URL as string;
  await eventually(
    async () => {
      const r = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          VisibilityTimeout: 20,
          AttributeNames: ['All'],
        }),
      );
      for (const m of r.Messages ?? []) {
        const id = (JSON.parse(m.Body ?? '{}') as { jobId?: string }).jobId;
        if (id && want.has(id)) got.set(id, m);
        else
          await sqs.send(
            new ChangeMessageVisibilityCommand({
              QueueUrl: queueUrl,
              ReceiptHandle: m.ReceiptHandle,
              VisibilityTimeout: 0,
            }),
          );
      }
      return got.size === want.size;
    },
    10_000,
    50,
  );
  return jobIds.map((id) => got.get(id) as Message);
}

async function queueArn(): Promise<string> {
  const url = new URL(svc.stack.env.TOLLGATE_JOBS_QUEUE_URL as string);
  const [, account, name] = url.pathname.split('/');
  return `arn:aws:sqs:us-east-1:${account}:${name}`;
}

function recordOf(m: Message, arn: string): SQSRecord {
  return {
    messageId: m.MessageId as string,
    receiptHandle: m.ReceiptHandle as string,
    body: m.Body as string,
    attributes: {
      ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? '1',
      SentTimestamp: m.Attributes?.SentTimestamp ?? String(Date.now()),
      SenderId: 'test',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: arn,
    awsRegion: 'us-east-1',
  };
}

function contextWith(remainingMs: number): Context {
  const deadline = Date.now() + remainingMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'test-worker',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:test-worker',
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/test-worker',
    logStreamName: 'test',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** A second service on the shared stack whose queue lives on an SQS of its own. */
async function sideService(name: string, jobs: Record<string, number> = {}) {
  const ownSqs = await startLocalSqs();
  const client = new SQSClient({ endpoint: ownSqs.url });
  const q = await ensureQueues(client, { queueName: `${name}-jobs`, dlqName: `${name}-dlq` });
  const saved = {
    queue: process.env.TOLLGATE_JOBS_QUEUE_URL,
    dlq: process.env.TOLLGATE_JOBS_DLQ_URL,
  };
  const side = await startTestService({
    stack: svc.stack,
    plugins: [asyncRoutes({ sqs: client })],
    config: { models: models(upstream, { retired: true }), jobs },
    env: { TOLLGATE_JOBS_QUEUE_URL: q.queueUrl, TOLLGATE_JOBS_DLQ_URL: q.dlqUrl },
  });
  // startTestService exports its env to process.env; the main service's queue stays the default.
  process.env.TOLLGATE_JOBS_QUEUE_URL = saved.queue;
  process.env.TOLLGATE_JOBS_DLQ_URL = saved.dlq;
  const handle = {
    svc: side,
    sqs: ownSqs,
    async stop() {
      await side.stop();
      client.destroy();
      await ownSqs.stop();
    },
  };
  sides.push(handle);
  return handle;
}

// --- submission --------------------------------------------------------------------------------

describe('submitting a job', () => {
  it('answers 202 with a queued job and a status URL, and the job completes with the chat.completion', async () => {
    const { key } = await premiumKey();
    const m = marker();
    upstream.enqueue('mock-small', {
      kind: 'reply',
      content: `done ${m}`,
      usage: { prompt_tokens: 12, completion_tokens: 3 },
    });
    const r = await submit(key, { model: 'mock-small', messages: user(`hello ${m}`) });
    expect(r.status).toBe(202);
    const body = r.json();
    expect(body).toMatchObject({ object: 'chat.completion.job', status: 'queued', model: 'mock-small' });
    expect(body.id).toMatch(/^job_[a-f0-9]{32}$/);
    expect(body.status_url).toBe(`/v1/chat/async/${body.id}`);
    expect(r.headers.get('location')).toBe(body.status_url);
    expect(r.headers.get('x-ratelimit-limit-requests')).toBe('100000');

    const job = await settled(key, body.id);
    expect(job).toMatchObject({ id: body.id, status: 'completed', error: null });
    expect(job.result).toMatchObject({
      object: 'chat.completion',
      model: 'mock-small',
      choices: [{ message: { role: 'assistant', content: `done ${m}` }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
    });
    expect(job.created).toBeLessThanOrEqual(job.started);
    expect(job.started).toBeLessThanOrEqual(job.completed);
  });

  it('works with the official openai SDK (generic post/get), errors included', async () => {
    const { key } = await premiumKey();
    const client = svc.client(key);
    const job = await client.post<{ id: string; status: string }>('/chat/async', {
      body: { model: 'mock-small', messages: user('from the SDK') },
      headers: { 'Idempotency-Key': marker() },
    });
    expect(job.status).toBe('queued');
    const done = await eventually(async () => {
      const j = await client.get<{ status: string; result: { object: string } | null }>(
        `/chat/async/${job.id}`,
      );
      return j.status === 'completed' ? j : undefined;
    }, 10_000);
    expect(done.result?.object).toBe('chat.completion');
    await expect(client.get(`/chat/async/job_${'f'.repeat(32)}`)).rejects.toBeInstanceOf(
      OpenAI.NotFoundError,
    );
  });

  it('serves the same API under /api/v1/chat/async and /api/v1/requests/{id}', async () => {
    const { key } = await premiumKey();
    const r = await submit(key, { model: 'mock-small', messages: user('via api') }, {}, '/api/v1/chat/async');
    expect(r.status).toBe(202);
    const { id, status_url } = r.json();
    expect(status_url).toBe(`/api/v1/requests/${id}`);
    await settled(key, id);
    const s = await svc.http('GET', status_url, { key });
    expect(s.status).toBe(200);
    expect(s.json()).toMatchObject({ id, status: 'completed' });
  });

  it('validates the body like /v1/chat/completions and refuses stream', async () => {
    const { key } = await premiumKey();
    const missing = await submit(key, { model: 'mock-small' });
    expect(missing.status).toBe(400);
    expect(missing.json().error).toMatchObject({ type: 'invalid_request_error', param: 'messages' });
    const stream = await submit(key, { model: 'mock-small', messages: user('x'), stream: true });
    expect(stream.status).toBe(400);
    expect(stream.json().error.param).toBe('stream');
    const unknown = await submit(key, { model: 'no-such-model-x7q', messages: user('x') });
    expect(unknown.status).toBe(404);
    expect(unknown.json().error.code).toBe('model_not_found');
    // A name the catalogue does not know never becomes a metrics label.
    const metrics = await svc.http('GET', '/metrics', { key: ADMIN_KEY });
    expect(metrics.status).toBe(200);
    expect(metrics.text).not.toContain('no-such-model-x7q');
    const anonymous = await svc.http('POST', '/v1/chat/async', {
      key: null,
      body: { model: 'mock-small', messages: user('x') },
    });
    expect(anonymous.status).toBe(401);
  });

  it('admits like the synchronous path: over the RPM limit it answers 429 and creates no job', async () => {
    const { key, owner } = await premiumKey({ rpm: 1 });
    expect((await submit(key, { model: 'mock-small', messages: user('one') })).status).toBe(202);
    const second = await submit(key, { model: 'mock-small', messages: user('two') });
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(second.json().error.code).toBe('rate_limit_exceeded');
    expect(await jobRows(owner)).toHaveLength(1);
  });

  it('returns the same job for a repeated Idempotency-Key and admits it only once', async () => {
    const { key, owner } = await premiumKey({ rpm: 1 });
    const body = { model: 'mock-small', messages: user(`idem ${marker()}`) };
    const first = await submit(key, body, { 'Idempotency-Key': 'retry-me-1' });
    const again = await submit(key, body, { 'Idempotency-Key': 'retry-me-1' });
    expect(first.status).toBe(202);
    // A replay is not a new request: the RPM limit of 1 would have refused a second admission.
    expect(again.status).toBe(202);
    expect(again.json().id).toBe(first.json().id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    // The same request with its fields in another order, as another client library sends it.
    const reordered = await submit(
      key,
      { messages: body.messages, model: body.model },
      { 'Idempotency-Key': 'retry-me-1' },
    );
    expect(reordered.status).toBe(202);
    expect(reordered.json().id).toBe(first.json().id);
    await settled(key, first.json().id);
    const late = await submit(key, body, { 'Idempotency-Key': 'retry-me-1' });
    expect(late.json()).toMatchObject({ id: first.json().id, status: 'completed' });
    expect(await jobRows(owner)).toHaveLength(1);
    expect(await usageRows(owner)).toHaveLength(1);
  });

  it('still replays a job whose row holds the fingerprint of the body as sent (written before the canonical form)', async () => {
    const { key, owner } = await premiumKey();
    const body = { model: 'mock-small', messages: user(`legacy ${marker()}`) };
    const first = await submit(key, body, { 'Idempotency-Key': 'legacy-1' });
    expect(first.status).toBe(202);
    const [row] = await jobRows(owner);
    await workerRt.doc.send(
      new UpdateCommand({
        TableName: workerRt.env.tables.jobs,
        Key: { jobId: row!.jobId },
        UpdateExpression: 'SET requestHash = :h',
        ExpressionAttributeValues: { ':h': createHash('sha256').update(JSON.stringify(body)).digest('hex') },
      }),
    );
    const again = await submit(key, body, { 'Idempotency-Key': 'legacy-1' });
    expect(again.status).toBe(202);
    expect(again.json().id).toBe(first.json().id);
    const other = await submit(
      key,
      { ...body, messages: user('something else') },
      { 'Idempotency-Key': 'legacy-1' },
    );
    expect(other.status).toBe(422);
    await settled(key, first.json().id);
  });

  it('creates one job when submissions with one Idempotency-Key race', async () => {
    const { key, owner } = await premiumKey();
    const body = { model: 'mock-small', messages: user(`race ${marker()}`) };
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => submit(key, body, { 'Idempotency-Key': 'same-key' })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(202));
    expect(new Set(answers.map((a) => a.json().id)).size).toBe(1);
    await settled(key, answers[0]?.json().id);
    expect(await jobRows(owner)).toHaveLength(1);
    expect(await usageRows(owner)).toHaveLength(1);
  });

  it('refuses an Idempotency-Key reused with a different body with 422, and a malformed key with 400', async () => {
    const { key } = await premiumKey();
    await submit(key, { model: 'mock-small', messages: user('a') }, { 'Idempotency-Key': 'k-422' });
    const other = await submit(
      key,
      { model: 'mock-small', messages: user('b') },
      { 'Idempotency-Key': 'k-422' },
    );
    expect(other.status).toBe(422);
    expect(other.json().error).toMatchObject({ code: 'idempotency_key_reused', param: 'Idempotency-Key' });
    const bad = await submit(
      key,
      { model: 'mock-small', messages: user('c') },
      { 'Idempotency-Key': 'é'.repeat(3) },
    );
    expect(bad.status).toBe(400);
    expect(bad.json().error.code).toBe('invalid_idempotency_key');
  });

  it('does not share an Idempotency-Key between owners', async () => {
    const a = await premiumKey();
    const b = await premiumKey();
    const body = { model: 'mock-small', messages: user('shared key') };
    const ra = await submit(a.key, body, { 'Idempotency-Key': 'shared' });
    const rb = await submit(b.key, body, { 'Idempotency-Key': 'shared' });
    expect(rb.status).toBe(202);
    expect(rb.json().id).not.toBe(ra.json().id);
  });

  it('keeps a request too large for an SQS message in the job row and sends only the id', async () => {
    const { key } = await premiumKey();
    const m = marker();
    const content = `${m} ${'lorem ipsum dolor sit amet '.repeat(11_000)}`;
    expect(content.length).toBeGreaterThan(256 * 1024);
    const r = await submit(key, { model: 'mock-big', messages: user(content) });
    expect(r.status).toBe(202);
    const { id } = r.json();
    const job = await settled(key, id);
    expect(job.status).toBe('completed');
    expect(deliveries.filter((d) => d.jobId === id).map((d) => d.hasRequest)).toEqual([false]);
    const sent = upstream.requests.find((q) => JSON.stringify(q.body).includes(m));
    expect(JSON.stringify(sent?.body).length).toBeGreaterThan(content.length);
    // Stored compressed: the row stays far below DynamoDB's 400 KB item limit.
    const row = await jobStore().get(id);
    expect(row?.request).toBeUndefined();
    expect(row?.requestGz?.byteLength).toBeLessThan(64 * 1024);
  });

  it('answers 503 queue_full with Retry-After once the queue holds maxQueueDepth jobs', async () => {
    const side = await sideService('full', { maxQueueDepth: 3, depthCheckIntervalMs: 200 });
    const { key } = await side.svc.createKey({ tier: 'premium' });
    const body = { model: 'mock-small', messages: user('fill') };
    for (let i = 0; i < 3; i++) {
      expect((await side.svc.http('POST', '/v1/chat/async', { key, body })).status).toBe(202);
    }
    const full = await side.svc.http('POST', '/v1/chat/async', { key, body });
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('1');
    expect(full.json().error).toMatchObject({ type: 'server_error', code: 'queue_full' });
    // The real depth (read in the background) agrees.
    await new Promise((r) => setTimeout(r, 300));
    expect((await side.svc.http('POST', '/v1/chat/async', { key, body })).status).toBe(503);
  });

  it('answers 503 queue_unavailable when SQS is unreachable and leaves no queued job behind', async () => {
    const side = await sideService('down');
    const { key, owner } = await side.svc.createKey({ tier: 'premium' });
    await side.sqs.stop();
    const r = await side.svc.http('POST', '/v1/chat/async', {
      key,
      body: { model: 'mock-small', messages: user('lost?') },
      headers: { 'Idempotency-Key': 'after-outage' },
    });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('2');
    expect(r.json().error).toMatchObject({ type: 'server_error', code: 'queue_unavailable' });
    expect(await jobRows(owner)).toEqual([]);
  });
});

// --- status -----------------------------------------------------------------------------------

describe('job status', () => {
  it('shows a job to its owner only: another key gets the same 404 as an unknown id', async () => {
    const alice = await premiumKey();
    const bob = await premiumKey();
    const { id } = (await submit(alice.key, { model: 'mock-small', messages: user('mine') })).json();
    await settled(alice.key, id);
    const stranger = await status(bob.key, id);
    const unknown = await status(bob.key, `job_${'0'.repeat(32)}`);
    expect(stranger.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(stranger.json().error).toMatchObject({ type: 'invalid_request_error', code: 'job_not_found' });
    expect(stranger.json().error.message).toBe(`No job with id '${id}'.`);
    expect((await svc.http('GET', `/api/v1/requests/${id}`, { key: bob.key })).status).toBe(404);
  });

  it('answers 404 for a malformed id', async () => {
    const { key } = await premiumKey();
    const r = await status(key, 'not-a-job');
    expect(r.status).toBe(404);
    expect(r.json().error.code).toBe('job_not_found');
  });

  it('reports a non-retryable upstream error (400) as failed with the OpenAI error object after one attempt', async () => {
    const { key, owner } = await premiumKey();
    upstream.enqueue('mock-small', { kind: 'error', status: 400, message: 'bad logit_bias' });
    const { id } = (await submit(key, { model: 'mock-small', messages: user(`bad ${marker()}`) })).json();
    const job = await settled(key, id);
    expect(job).toMatchObject({ status: 'failed', result: null });
    expect(job.error).toMatchObject({ type: 'invalid_request_error' });
    expect(job.error.message).toContain('bad logit_bias');
    expect(deliveries.filter((d) => d.jobId === id)).toHaveLength(1);
    // Like a failed synchronous call: one usage record with the status, no tokens billed.
    const rows = await usageRows(owner);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ requestId: id, status: 400, source: 'async', promptTokens: 0 });
  });

  it('fails a job whose model was removed from the catalogue before it ran', async () => {
    const { key } = await premiumKey();
    const m = marker();
    const { id } = (await submit(key, { model: 'mock-retired', messages: user(m) })).json();
    const job = await settled(key, id);
    expect(job.status).toBe('failed');
    expect(job.error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(upstreamCalls(m)).toBe(0);
  });

  it('gives the unused part of the reservation back when the job completes', async () => {
    // Each job reserves its prompt plus max output (256) against a TPM of 600: two fit, a third
    // does not until the worker charged the two with their real (tiny) usage.
    const { key } = await premiumKey({ tpm: 600 });
    const a = await submit(key, { model: 'mock-small', messages: user('one') });
    const b = await submit(key, { model: 'mock-small', messages: user('two') });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect((await submit(key, { model: 'mock-small', messages: user('three') })).status).toBe(429);
    await settled(key, a.json().id);
    await settled(key, b.json().id);
    const third = await eventually(async () => {
      const r = await submit(key, { model: 'mock-small', messages: user('three') });
      return r.status === 202 ? r : undefined;
    }, 3000);
    await settled(key, third.json().id);
  });

  it('fails the jobs of a key revoked before they ran', async () => {
    await stopWorker();
    try {
      const { key, id: keyId } = await premiumKey();
      const m = marker();
      const { id } = (await submit(key, { model: 'mock-small', messages: user(m) })).json();
      expect((await svc.http('DELETE', `/admin/keys/${keyId}`, { key: ADMIN_KEY })).status).toBe(200);
      await startWorker();
      const row = await eventually(async () => {
        const j = await jobStore().get(id);
        return j?.status === 'failed' ? j : undefined;
      }, 10_000);
      expect(row.error).toMatchObject({ code: 'key_revoked', status: 401 });
      expect(upstreamCalls(m)).toBe(0);
    } finally {
      if (!worker) await startWorker();
    }
  });
});

// --- worker -----------------------------------------------------------------------------------

describe('worker', () => {
  it('completes 200 concurrently submitted jobs exactly once, with exactly 200 usage records', async () => {
    const { key, owner } = await premiumKey();
    const tag = marker();
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        submit(key, { model: 'mock-small', messages: user(`${tag} job ${i}`) }),
      ),
    );
    expect(answers.every((a) => a.status === 202)).toBe(true);
    const ids = answers.map((a) => a.json().id as string);
    expect(new Set(ids).size).toBe(200);
    await eventually(
      async () => (await jobRows(owner)).filter((j) => j.status === 'completed').length === 200,
      30_000,
      200,
    );
    await invocationsReturned(ids);
    expect(upstreamCalls(tag)).toBe(200);
    const rows = await usageRows(owner);
    expect(rows).toHaveLength(200);
    expect(new Set(rows.map((r) => r.requestId))).toEqual(new Set(ids));
    expect(rows.every((r) => r.status === 200 && r.source === 'async')).toBe(true);
  }, 60_000);

  it('redelivers only the record that crashed mid-batch; it completes once and usage is not doubled', async () => {
    await stopWorker();
    const { key, owner } = await premiumKey();
    const markers = Array.from({ length: 5 }, () => marker());
    const victim = markers[2] as string;
    crashOnce.add(victim);
    const ids: string[] = [];
    for (const m of markers)
      ids.push((await submit(key, { model: 'mock-small', messages: user(m) })).json().id);
    // One poller and a batching window: the five jobs arrive in one batch.
    await startWorker({ maxConcurrency: 1, batchWindowMs: 300 });
    await eventually(
      async () => (await jobRows(owner)).filter((j) => j.status === 'completed').length === 5,
      15_000,
      100,
    );
    await invocationsReturned(ids);
    const victimId = ids[2] as string;
    const first = deliveries.find((d) => d.jobId === victimId);
    const batch = deliveries.filter((d) => d.batch === first?.batch).map((d) => d.jobId);
    expect(new Set(batch)).toEqual(new Set(ids));
    // Nobody else in the batch was delivered again or called the model twice.
    for (const [i, id] of ids.entries()) {
      const times = deliveries.filter((d) => d.jobId === id).length;
      expect([id, times]).toEqual([id, id === victimId ? 2 : 1]);
      expect(upstreamCalls(markers[i] as string)).toBe(id === victimId ? 2 : 1);
    }
    const rows = await usageRows(owner);
    expect(rows).toHaveLength(5);
    expect(rows.filter((r) => r.requestId === victimId)).toHaveLength(1);
    const row = await jobStore().get(victimId);
    expect(row?.attempts).toBe(2);
    await stopWorker();
    await startWorker();
  });

  it('retries a retryable upstream failure (500) after a backoff and completes on the redelivery', async () => {
    const { key, owner } = await premiumKey();
    upstream.enqueue('flaky-up', { kind: 'error', status: 500 });
    const { id } = (await submit(key, { model: 'mock-flaky', messages: user('flaky') })).json();
    const job = await settled(key, id);
    expect(job.status).toBe('completed');
    const tries = deliveries.filter((d) => d.jobId === id).map((d) => d.receiveCount);
    expect(tries).toHaveLength(2);
    expect(await usageRows(owner)).toHaveLength(1);
    expect((await jobStore().get(id))?.attempts).toBe(2);
  });

  it('acknowledges a redelivered message for a finished job and does nothing', async () => {
    const { key, owner } = await premiumKey();
    const m = marker();
    const { id } = (await submit(key, { model: 'mock-small', messages: user(m) })).json();
    await settled(key, id);
    const message: Message = {
      MessageId: randomUUID(),
      ReceiptHandle: 'stale-receipt',
      Body: JSON.stringify({ v: 1, jobId: id }),
    };
    const res = await handler({ Records: [recordOf(message, await queueArn())] }, contextWith(30_000));
    expect(res.batchItemFailures).toEqual([]);
    expect(upstreamCalls(m)).toBe(1);
    expect(await usageRows(owner)).toHaveLength(1);
  });

  it('runs a message delivered twice at once only once: the second delivery waits for the lease', async () => {
    await stopWorker();
    try {
      const { key, owner } = await premiumKey();
      upstream.setDefault('flaky-up', { kind: 'reply', content: 'slow', delayMs: 300 });
      const mk = marker();
      const { id } = (await submit(key, { model: 'mock-flaky', messages: user(mk) })).json();
      const [m] = await takeMessages([id]);
      const record = recordOf(m as Message, await queueArn());
      const [a, b] = await Promise.all([
        handler({ Records: [record] }, contextWith(30_000)),
        handler({ Records: [{ ...record, messageId: `${record.messageId}-dup` }] }, contextWith(30_000)),
      ]);
      // One delivery ran it; the other was told to come back after the lease.
      expect([a.batchItemFailures.length, b.batchItemFailures.length].sort()).toEqual([0, 1]);
      expect((await jobStore().get(id))?.status).toBe('completed');
      expect(upstreamCalls(mk)).toBe(1);
      expect(await usageRows(owner)).toHaveLength(1);
      await sqs.send(
        new DeleteMessageCommand({
          QueueUrl: svc.stack.env.TOLLGATE_JOBS_QUEUE_URL,
          ReceiptHandle: m?.ReceiptHandle,
        }),
      );
    } finally {
      await startWorker();
    }
  });

  it('stops taking work before the Lambda deadline and leaves the records for redelivery', async () => {
    await stopWorker();
    let restarted = false;
    try {
      const { key, owner } = await premiumKey();
      const mk = marker();
      const { id } = (await submit(key, { model: 'mock-small', messages: user(mk) })).json();
      const [m] = await takeMessages([id]);
      const res = await handler(
        { Records: [recordOf(m as Message, await queueArn())] },
        contextWith(MARGIN_MS - 500),
      );
      expect(res.batchItemFailures).toEqual([{ itemIdentifier: m?.MessageId }]);
      const row = await jobStore().get(id);
      expect(row).toMatchObject({ status: 'queued' });
      expect(row?.attempts).toBeUndefined();
      expect(upstreamCalls(mk)).toBe(0);
      // Released at once for the next invocation, which completes it.
      await startWorker();
      restarted = true;
      expect(await settled(key, id)).toMatchObject({ status: 'completed', error: null });
      expect(await usageRows(owner)).toHaveLength(1);
    } finally {
      if (!restarted) await startWorker();
    }
  });

  it('aborts a model call still running at the deadline margin and releases its job for redelivery', async () => {
    await stopWorker();
    let restarted = false;
    try {
      const { key, owner } = await premiumKey();
      upstream.setDefault('flaky-up', { kind: 'hang' });
      const mk = marker();
      const { id } = (await submit(key, { model: 'mock-flaky', messages: user(mk) })).json();
      const [m] = await takeMessages([id]);
      const started = Date.now();
      const res = await handler(
        { Records: [recordOf(m as Message, await queueArn())] },
        contextWith(MARGIN_MS + 500),
      );
      // Given up at the margin, not at the model's 2 s timeout.
      expect(Date.now() - started).toBeLessThan(1800);
      expect(res.batchItemFailures).toEqual([{ itemIdentifier: m?.MessageId }]);
      expect(upstream.requests.find((r) => JSON.stringify(r.body).includes(mk))?.aborted).toBe(true);
      expect(await jobStore().get(id)).toMatchObject({ status: 'queued', attempts: 1 });
      upstream.setDefault('flaky-up', { kind: 'reply', content: 'finally' });
      await startWorker();
      restarted = true;
      expect(await settled(key, id)).toMatchObject({ status: 'completed' });
      expect(upstreamCalls(mk)).toBe(2);
      expect(await usageRows(owner)).toHaveLength(1);
    } finally {
      if (!restarted) await startWorker();
    }
  });

  it('moves a poison job to the DLQ after its last receive; the DLQ handler marks it failed', async () => {
    const { key, owner } = await premiumKey();
    const { id } = (await submit(key, { model: 'mock-broken', messages: user('never works') })).json();
    const job = await settled(key, id, 30_000);
    expect(job.status).toBe('failed');
    expect(job.error).toMatchObject({ type: 'server_error', code: 'retries_exhausted' });
    expect(job.error.message).toContain('status 500');
    expect(deliveries.filter((d) => d.jobId === id).length).toBeGreaterThanOrEqual(2);
    expect(dlqDeliveries.filter((d) => d.jobId === id)).toHaveLength(1);
    // Failed is finished: it no longer counts towards the age of the oldest message.
    expect(await inPendingIndex(id)).toBe(false);
    // No attempt won a final write: no usage record for a job that never got an answer.
    expect(await usageRows(owner)).toHaveLength(0);
  }, 40_000);

  it('sends an unreadable message to the DLQ, where it is dropped without touching any job', async () => {
    const body = `not json ${marker()}`;
    const sent = await sqs.send(
      new SendMessageCommand({ QueueUrl: svc.stack.env.TOLLGATE_JOBS_QUEUE_URL, MessageBody: body }),
    );
    await eventually(() => dlqDeliveries.some((d) => d.messageId === sent.MessageId), 20_000, 100);
    expect(deliveries.filter((d) => d.messageId === sent.MessageId).length).toBeGreaterThanOrEqual(1);
    const stats = await eventually(async () => {
      const s = (await svc.http('GET', '/admin/queue', { key: ADMIN_KEY })).json();
      return s.dlq.visible === 0 && s.dlq.in_flight === 0 ? s : undefined;
    }, 10_000);
    expect(stats.dlq).toEqual({ visible: 0, in_flight: 0 });
  }, 30_000);
});

describe('job store', () => {
  /** A queued job row written straight to the store (no message). */
  function storeRow(createdAt: number): JobRow {
    const principal = {
      keyId: 'key_storetest',
      owner: 'store-test',
      tier: 'basic',
      limits: { rpm: 1, tpm: 1, daily_tokens: 1, monthly_budget_usd: 1 },
      models: [],
      maxTokensCap: undefined,
    };
    return {
      jobId: `job_${randomUUID().replace(/-/g, '')}`,
      owner: principal.owner,
      keyId: principal.keyId,
      principal,
      model: 'mock-small',
      status: 'queued',
      request: '{}',
      requestHash: 'x',
      createdAt,
      expiresAt: Math.floor(Date.now() / 1000) + 600,
    };
  }

  /** A document client that sends each UpdateItem twice, like an SDK retry after a lost answer. */
  function retryingStore(): JobStore {
    const doc = workerRt.doc;
    const twice = {
      send: async (cmd: Parameters<typeof doc.send>[0]) => {
        if (cmd instanceof UpdateCommand) {
          await doc.send(cmd);
        }
        return doc.send(cmd);
      },
    } as unknown as typeof doc;
    return new JobStore(twice, workerRt.env.tables.jobs);
  }

  async function queuedJob(): Promise<JobRow> {
    const { key } = await premiumKey();
    await stopWorker();
    try {
      const { id } = (await submit(key, { model: 'mock-small', messages: user(marker()) })).json();
      await takeMessages([id]);
      return (await jobStore().get(id)) as JobRow;
    } finally {
      await startWorker();
    }
  }

  it('treats a create whose first answer was lost (then retried) as its own, not a replay', async () => {
    const doc = workerRt.doc;
    const twice = {
      send: async (cmd: Parameters<typeof doc.send>[0]) => {
        if (cmd instanceof PutCommand) await doc.send(cmd);
        return doc.send(cmd);
      },
    } as unknown as typeof doc;
    const store = new JobStore(twice, workerRt.env.tables.jobs);
    const row = storeRow(Date.now());
    expect(await store.create(row)).toBe(true);
    // Someone else's write to the same id is still a conflict.
    expect(await jobStore().create(row)).toBe(false);
  });

  it('unlists pending-index entries that cannot stand for a queued message', async () => {
    const store = jobStore();
    const now = Date.now();
    // Finished by a worker that predates the index (status set, index key left behind), and
    // older than any job this file writes, so it is among the first entries looked at.
    const finished = storeRow(SUITE_START - 60_000);
    // Older than the queue keeps messages: its message is gone.
    const expired = storeRow(now - (TABLES.jobs.queueRetentionDays + 1) * 86_400_000);
    const waiting = storeRow(now);
    try {
      for (const j of [finished, expired, waiting]) expect(await store.create(j)).toBe(true);
      await workerRt.doc.send(
        new UpdateCommand({
          TableName: workerRt.env.tables.jobs,
          Key: { jobId: finished.jobId },
          UpdateExpression: 'SET #s = :c',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':c': 'completed' },
        }),
      );
      expect(await inPendingIndex(finished.jobId)).toBe(true);
      const oldest = await store.oldestPendingSince();
      expect(oldest).not.toBeNull();
      expect(oldest).toBeLessThanOrEqual(waiting.createdAt);
      expect(oldest).toBeGreaterThan(finished.createdAt);
      expect(await inPendingIndex(finished.jobId)).toBe(false);
      expect(await inPendingIndex(expired.jobId)).toBe(false);
      expect(await inPendingIndex(waiting.jobId)).toBe(true);
    } finally {
      for (const j of [finished, expired, waiting]) {
        await workerRt.doc.send(
          new DeleteCommand({ TableName: workerRt.env.tables.jobs, Key: { jobId: j.jobId } }),
        );
      }
    }
  });

  it('treats a claim and a final write whose first answer was lost (then retried) as won', async () => {
    const job = await queuedJob();
    const store = retryingStore();
    const claim = await store.claim(job.jobId, Date.now(), Date.now() + 30_000);
    expect(claim).toMatchObject({ kind: 'claimed', attempt: 1 });
    const completion = {
      id: 'c',
      object: 'chat.completion' as const,
      created: 0,
      model: 'mock-small',
      choices: [],
    };
    expect(await store.complete(job.jobId, 1, Date.now(), completion, undefined)).toBe(true);
    // A stale attempt still loses.
    expect(await store.complete(job.jobId, 0, Date.now(), completion, undefined)).toBe(false);
    expect(await jobStore().get(job.jobId)).toMatchObject({ status: 'completed', attempts: 1 });
  });
});

describe('GET /admin/queue', () => {
  it('reports the queue, the DLQ and the worker concurrency to the admin key only', async () => {
    const r = await svc.http('GET', '/admin/queue', { key: ADMIN_KEY });
    expect(r.status).toBe(200);
    const s = r.json();
    expect(s).toMatchObject({
      object: 'queue.stats',
      queue: { max_depth: 10_000 },
      worker: { concurrency: 5 },
    });
    for (const v of [s.queue.visible, s.queue.in_flight, s.queue.delayed, s.dlq.visible, s.dlq.in_flight])
      expect(Number.isInteger(v) && v >= 0).toBe(true);
    expect(
      Number.isInteger(s.queue.oldest_message_age_seconds) && s.queue.oldest_message_age_seconds >= 0,
    ).toBe(true);
    const { key } = await premiumKey();
    expect((await svc.http('GET', '/admin/queue', { key })).status).toBe(403);
  });

  it('ages the oldest unfinished job from its submission until it completes', async () => {
    const { key } = await premiumKey();
    await stopWorker();
    let id: string;
    try {
      id = (await submit(key, { model: 'mock-small', messages: user(`waits ${marker()}`) })).json().id;
      const submitted = Date.now();
      expect(await inPendingIndex(id)).toBe(true);
      await new Promise((r) => setTimeout(r, 2100));
      const age = (await svc.http('GET', '/admin/queue', { key: ADMIN_KEY })).json().queue
        .oldest_message_age_seconds;
      // This job waits, so the oldest waits at least as long (older leftovers only add), and no
      // job of this file is older than the file: seconds, not milliseconds.
      expect(age).toBeGreaterThanOrEqual(Math.floor((Date.now() - submitted) / 1000) - 1);
      expect(age).toBeGreaterThanOrEqual(1);
      expect(age).toBeLessThanOrEqual(Math.ceil((Date.now() - SUITE_START) / 1000) + 1);
    } finally {
      await startWorker();
    }
    expect((await settled(key, id)).status).toBe('completed');
    expect(await inPendingIndex(id)).toBe(false);
  }, 30_000);
});
