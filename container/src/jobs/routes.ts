/**
 * The async API: `POST /v1/chat/async` (submit), `GET /v1/chat/async/{id}` (status, owner
 * only) and `GET /admin/queue`, plus the `/api/v1` aliases.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePlugin } from '../app';
import { chatRequestSchema } from '../chat/schema';
import { validateChatRequest } from '../chat/validate';
import { BadRequestError, NotFoundError, ServiceUnavailableError } from '../errors';
import { failedJobsQuerySchema, failedJobsSchema } from '../http/admin-console-schemas';
import { jobSchema, jobSubmittedSchema, queueStatsSchema } from '../http/api-schemas';
import type { RouteDoc } from '../http/openapi';
import type { Runtime } from '../runtime';
import { parseQuery } from '../validation';
import type { ChatCompletion } from '../wire/chat';
import { type FailedJob, type JobRow, JobStore, resultOf } from './job-store';
import { JobProducer, parseIdempotencyKey } from './producer';
import { createSqsClient, QueueDepthGate, queueStats } from './queue';
import { JOB_ID_RE } from './schema';

/** `object` of job resources. */
export const JOB_OBJECT = 'chat.completion.job';

/** The status resource of a job (`GET /v1/chat/async/{id}`); timestamps in Unix seconds. */
export interface JobView {
  id: string;
  object: typeof JOB_OBJECT;
  status: JobRow['status'];
  model: string;
  created: number;
  started: number | null;
  completed: number | null;
  result: ChatCompletion | null;
  error: { message: string; type: string; param: string | null; code: string | null } | null;
}

const seconds = (ms: number | undefined): number | null => (ms === undefined ? null : Math.floor(ms / 1000));

/** The public view of a row: never the request, the principal or the reservation. */
export function jobView(job: JobRow): JobView {
  const e = job.error;
  return {
    id: job.jobId,
    object: JOB_OBJECT,
    status: job.status,
    model: job.model,
    created: Math.floor(job.createdAt / 1000),
    started: seconds(job.startedAt),
    completed: seconds(job.completedAt),
    result: job.status === 'completed' ? (resultOf(job) ?? null) : null,
    error: e ? { message: e.message, type: e.type, param: e.param, code: e.code } : null,
  };
}

export interface AsyncRoutesOptions {
  /** SQS client for submissions and queue statistics. @default a client from the standard AWS variables */
  sqs?: SQSClient;
}

/** The async routes with options (tests inject an SQS client); see {@link registerAsyncRoutes}. */
export function asyncRoutes(options: AsyncRoutesOptions = {}): RoutePlugin {
  return (app, rt) => register(app, rt, options);
}

/** The async routes over the runtime's tables and the queue in TOLLGATE_JOBS_QUEUE_URL. */
export const registerAsyncRoutes: RoutePlugin = asyncRoutes();

function register(app: FastifyInstance, rt: Runtime, options: AsyncRoutesOptions): void {
  const { env, config, telemetry } = rt;
  const sqs = options.sqs ?? createSqsClient();
  if (!options.sqs) rt.onClose.push(async () => sqs.destroy());
  const store = new JobStore(rt.doc, env.tables.jobs);
  const maxDepth = env.queueMaxDepth ?? config.jobs.maxQueueDepth;
  const queueUrl = env.jobsQueueUrl;
  const producer = queueUrl
    ? new JobProducer({
        config,
        chat: rt.chat,
        telemetry,
        store,
        sqs,
        queueUrl,
        gate: new QueueDepthGate({
          sqs,
          queueUrl,
          maxDepth,
          intervalMs: config.jobs.depthCheckIntervalMs,
          logger: telemetry.logger,
        }),
      })
    : undefined;
  if (!producer)
    telemetry.logger.error('TOLLGATE_JOBS_QUEUE_URL is not set: async job submissions answer 503');
  const noQueue = () =>
    new ServiceUnavailableError('Async jobs are not configured on this server (no job queue).', {
      code: 'async_unavailable',
    });

  const submit = (statusBase: string) => async (req: FastifyRequest, reply: FastifyReply) => {
    const body = validateChatRequest(req.body, { allowStream: false });
    const idempotencyKey = parseIdempotencyKey(req.headers['idempotency-key']);
    if (!producer) throw noQueue();
    // Only a catalogue model becomes a metrics label (not whatever was sent), also when the
    // submission is then refused (429, 503).
    if (rt.router.get(body.model)) req.facts.model = body.model;
    const s = await producer.submit(req.principal!, body, { idempotencyKey });
    const { job } = s;
    req.facts.model = job.model;
    const statusUrl = `${statusBase}/${job.jobId}`;
    reply.code(202).headers(s.headers).header('location', statusUrl);
    if (s.replayed) reply.header('idempotent-replayed', 'true');
    const { id, object, status, model, created } = jobView(job);
    return { id, object, status, model, created, status_url: statusUrl };
  };
  const submitDoc: RouteDoc = {
    summary: 'Submit an async chat completion',
    description:
      'The same validation, routing and admission as /v1/chat/completions (no streaming); the job ' +
      'runs on the worker. `Idempotency-Key` makes retries safe (same key + same body = same job; ' +
      'another body is 422 idempotency_key_reused).',
    tags: ['Async jobs'],
    body: chatRequestSchema,
    headers: { 'Idempotency-Key': '1-255 printable ASCII characters' },
    responses: {
      202: {
        description: 'Queued; poll status_url (also in Location)',
        schema: jobSubmittedSchema,
        headers: ['location', 'idempotent-replayed'],
      },
      422: { description: 'The Idempotency-Key was used with another body' },
      503: { description: 'The queue is full or unavailable' },
    },
  };
  app.post('/v1/chat/async', { config: { doc: submitDoc } }, submit('/v1/chat/async'));
  app.post('/api/v1/chat/async', { config: { doc: submitDoc } }, submit('/api/v1/requests'));

  const status = async (req: FastifyRequest<{ Params: { id: string } }>): Promise<JobView> => {
    const { id } = req.params;
    const job = JOB_ID_RE.test(id) ? await store.get(id) : undefined;
    // Someone else's job answers exactly like a missing one: ids reveal nothing.
    if (!job || job.owner !== req.principal!.owner) {
      throw new NotFoundError(`No job with id '${id}'.`, { param: 'id', code: 'job_not_found' });
    }
    req.facts.model = job.model;
    return jobView(job);
  };
  const statusDoc: RouteDoc = {
    summary: "An async job's status and result",
    tags: ['Async jobs'],
    params: { id: 'The job id (job_...)' },
    responses: {
      200: { description: 'The job; `result` is the chat.completion once completed', schema: jobSchema },
    },
  };
  // Every /v1 path is also under /api/v1; /api/v1/requests/{id} is the original tutorial's name.
  for (const url of ['/v1/chat/async/:id', '/api/v1/chat/async/:id', '/api/v1/requests/:id'])
    app.get(url, { config: { doc: statusDoc } }, status);

  const failedDoc: RouteDoc = {
    summary: 'The most recent failed jobs',
    description:
      "Newest first, from the jobs table's failed-jobs index: owner, model, attempts, error; never the request.",
    tags: ['Admin: queue'],
    query: failedJobsQuerySchema,
    responses: { 200: { description: 'The failed jobs', schema: failedJobsSchema } },
  };
  app.get('/admin/jobs/failed', { config: { auth: 'admin', doc: failedDoc } }, async (req) => {
    const limit = Number(parseQuery(failedJobsQuerySchema, req.query).limit ?? '20');
    if (!(limit >= 1 && limit <= 100))
      throw new BadRequestError("'limit' must be an integer from 1 to 100.", { param: 'limit' });
    let failed: FailedJob[];
    try {
      failed = await store.recentFailures(limit, { signal: AbortSignal.timeout(5000) });
    } catch (err) {
      telemetry.logger.warn('failed jobs unavailable', { error: (err as Error).message });
      throw new ServiceUnavailableError('The jobs table is unreachable.', {
        code: 'jobs_unavailable',
        retryAfterSeconds: 2,
      });
    }
    return {
      object: 'list',
      data: failed.map((j) => ({
        id: j.jobId,
        object: JOB_OBJECT,
        status: 'failed' as const,
        owner: j.owner,
        key_id: j.keyId,
        model: j.model,
        attempts: j.attempts,
        created: Math.floor(j.createdAt / 1000),
        failed: Math.floor(j.failedAt / 1000),
        error: j.error
          ? {
              message: j.error.message,
              type: j.error.type,
              param: j.error.param,
              code: j.error.code,
              status: j.error.status,
            }
          : null,
      })),
    };
  });

  const queueDoc: RouteDoc = {
    summary: 'Job queue statistics',
    tags: ['Admin: queue'],
    responses: { 200: { description: 'Depth, in flight, DLQ, oldest age', schema: queueStatsSchema } },
  };
  app.get('/admin/queue', { config: { auth: 'admin', doc: queueDoc } }, async () => {
    if (!queueUrl) throw noQueue();
    try {
      return await queueStats({
        sqs,
        queueUrl,
        dlqUrl: env.jobsDlqUrl,
        maxDepth,
        workerConcurrency: env.workerConcurrency,
        oldestMessageAgeSeconds: async () => {
          const since = await store.oldestPendingSince({ signal: AbortSignal.timeout(5000) });
          // Like SQS's ApproximateAgeOfOldestMessage: 0 when nothing is waiting.
          return since === null ? 0 : Math.max(0, Math.floor((Date.now() - since) / 1000));
        },
      });
    } catch (err) {
      telemetry.logger.warn('queue statistics unavailable', { error: (err as Error).message });
      throw new ServiceUnavailableError('The job queue is unreachable.', {
        code: 'queue_unavailable',
        retryAfterSeconds: 2,
      });
    }
  });
}
