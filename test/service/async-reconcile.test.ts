/**
 * Fault 3, end to end from the template: async jobs charge their reservation at submission, and
 * the worker (or, for a dead job, the DLQ handler) must reconcile it with the real usage exactly
 * once. The worker and the DLQ handler here run with exactly the environment variables the
 * synthesized stack gives the two Lambdas (values mapped to the local stand-ins; only REDIS_TLS
 * is turned off, the local redis-server has no TLS), so a function the template leaves without
 * the cache's settings leaves the counters charged with the reservations, as in the audit
 * (12,342 tokens counted for 72 real ones).
 */
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import { SERVICE_NAMES } from '../../container/src/contract';
import { lambdaEntry } from '../../container/src/jobs/lambda-entry';
import { registerAsyncRoutes } from '../../container/src/jobs/routes';
import { createDlqHandler, createWorkerHandler } from '../../container/src/jobs/worker';
import { type LocalWorker, startLocalWorker } from '../../container/src/local/poller';
import type { LocalStack } from '../../container/src/local/stack';
import type { Runtime } from '../../container/src/runtime';
import { queryUsageRecords } from '../../container/src/usage/usage-recorder';
import { lambdaContext } from '../helpers/lambda-events';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { type ScriptedSecretsManager, startSecretsManager } from '../helpers/secrets-manager';
import {
  eventually,
  mockModel,
  startTestService,
  startTestStack,
  type TestService,
} from '../helpers/service';
import { buildStack, functionEnvironment } from '../infra/helpers';

const REDIS_PASSWORD = 'cache-auth-token-0123456789';

let upstream: MockUpstream;
let sm: ScriptedSecretsManager;
let stack: LocalStack;
let svc: TestService;
let redis: Redis;
let worker: LocalWorker | undefined;
const runtimes: Runtime[] = [];
const savedEnv: Record<string, string | undefined> = {};

const models = (u: MockUpstream) => [
  mockModel(u, 'mock-small'),
  mockModel(u, 'mock-broken', { upstreamModel: 'broken-up' }),
];

/**
 * The Lambda's variables, from the template, with values for this machine. A variable the
 * template does not give the function is not set, whatever this test would like.
 */
function lambdaEnvironment(fromTemplate: Record<string, unknown>): Record<string, string> {
  const redisUrl = new URL(stack.env.REDIS_URL as string);
  const local: Record<string, string> = {
    TOLLGATE_TABLE_JOBS: stack.env.TOLLGATE_TABLE_JOBS as string,
    TOLLGATE_TABLE_USAGE: stack.env.TOLLGATE_TABLE_USAGE as string,
    TOLLGATE_TABLE_API_KEYS: stack.env.TOLLGATE_TABLE_API_KEYS as string,
    REDIS_HOST: redisUrl.hostname,
    REDIS_PORT: redisUrl.port,
    REDIS_TLS: 'false',
    REDIS_AUTH_TOKEN_SECRET_ARN: sm.arn('cache-auth-token'),
    OPENAI_API_KEY_SECRET_ARN: sm.arn('provider-key'),
    // The catalogue file bundled with the worker; the same catalogue inline here.
    TOLLGATE_CONFIG: '',
    TOLLGATE_CONFIG_JSON: JSON.stringify({ models: models(upstream) }),
  };
  const out: Record<string, string> = { AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url };
  for (const [name, value] of Object.entries(fromTemplate)) {
    if (name in local) out[name] = local[name] as string;
    else if (typeof value === 'string') out[name] = value;
    else throw new Error(`no local value for the template variable ${name}`);
  }
  if ('TOLLGATE_CONFIG' in out) out.TOLLGATE_CONFIG_JSON = local.TOLLGATE_CONFIG_JSON as string;
  return out;
}

/** Set a function's variables in process.env (what lambdaEntry reads at cold start), undone later. */
function useEnvironment(vars: Record<string, string>, remove: readonly string[]): void {
  for (const k of [...Object.keys(vars), ...remove]) if (!(k in savedEnv)) savedEnv[k] = process.env[k];
  for (const k of remove) delete process.env[k];
  Object.assign(process.env, vars);
}

beforeAll(async () => {
  upstream = await startMockUpstream();
  upstream.setDefault('broken-up', { kind: 'error', status: 500, message: 'upstream is down' });
  sm = await startSecretsManager();
  sm.put('cache-auth-token', REDIS_PASSWORD);
  sm.put('provider-key', 'sk-provider');
  stack = await startTestStack('async-reconcile');
  // The cache requires its AUTH token, as ElastiCache does.
  const url = new URL(stack.env.REDIS_URL as string);
  const admin = new Redis(Number(url.port), url.hostname);
  await admin.config('SET', 'requirepass', REDIS_PASSWORD);
  admin.disconnect();
  const redisUrl = `redis://:${REDIS_PASSWORD}@${url.hostname}:${url.port}`;
  redis = new Redis(redisUrl);
  svc = await startTestService({
    stack,
    plugins: [registerAsyncRoutes],
    config: { models: models(upstream) },
    env: { REDIS_URL: redisUrl },
  });
});

afterAll(async () => {
  await worker?.stop();
  for (const rt of runtimes) await rt.close();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  redis?.disconnect();
  await svc?.stop();
  await stack?.stop();
  await sm?.close();
  await upstream?.close();
});

describe('async jobs and their reservations', () => {
  it('charge the real usage exactly once: completed jobs by the worker, a dead job by the DLQ handler', async () => {
    // The functions as the stack defines them.
    const built = buildStack({ models: models(upstream) }, { bundle: false });
    const workerVars = lambdaEnvironment(functionEnvironment(built, built.stack.asyncWorker.worker));
    const dlqVars = lambdaEnvironment(functionEnvironment(built, built.stack.asyncWorker.dlqHandler));
    expect(workerVars.POWERTOOLS_SERVICE_NAME).toBe(SERVICE_NAMES.worker);

    // Lambda sets neither the API's cache URL nor its catalogue: only what the template says.
    const notLambda = [
      'REDIS_URL',
      'REDIS_HOST',
      'REDIS_PORT',
      'REDIS_TLS',
      'REDIS_AUTH_TOKEN',
      'TOLLGATE_CONFIG_JSON',
    ];
    useEnvironment(workerVars, notLambda);
    const handler = lambdaEntry((rt) => {
      runtimes.push(rt);
      return createWorkerHandler(rt, { retryBackoff: { baseSeconds: 0, maxSeconds: 0 } });
    });
    await handler({ Records: [] }, lambdaContext());
    useEnvironment(dlqVars, notLambda);
    const dlqHandler = lambdaEntry(
      (rt) => {
        runtimes.push(rt);
        return createDlqHandler(rt);
      },
      { waitForModels: false },
    );
    await dlqHandler({ Records: [] }, lambdaContext());

    const {
      key,
      id: keyId,
      owner,
    } = await svc.createKey({
      tier: 'premium',
      limits: { rpm: 1000, tpm: 10_000_000, daily_tokens: 10_000_000, monthly_budget_usd: 1000 },
    });
    const chat = (model: string, content: string) => ({ model, messages: [{ role: 'user', content }] });
    const jobs: string[] = [];
    for (const c of ['one', 'two', 'three']) {
      const r = await svc.http('POST', '/v1/chat/async', { key, body: chat('mock-small', c) });
      expect(r.status).toBe(202);
      jobs.push(r.json().id as string);
    }
    const dead = await svc.http('POST', '/v1/chat/async', { key, body: chat('mock-broken', 'doomed') });
    expect(dead.status).toBe(202);
    expect(
      (await svc.http('POST', '/v1/chat/completions', { key, body: chat('mock-small', 'sync') })).status,
    ).toBe(200);

    const queueUrl = stack.env.TOLLGATE_JOBS_QUEUE_URL as string;
    // Every message body the worker got, to deliver one again (SQS is at-least-once).
    const bodies = new Map<string, string>();
    const handled = new Set<string>();
    const seen =
      (h: typeof handler): typeof handler =>
      async (event, context) => {
        for (const r of event.Records) bodies.set(r.messageId, r.body);
        try {
          return await h(event, context);
        } finally {
          for (const r of event.Records) handled.add(r.messageId);
        }
      };
    worker = await startLocalWorker({
      queueUrl,
      dlqUrl: stack.env.TOLLGATE_JOBS_DLQ_URL,
      handler: seen(handler),
      dlqHandler,
      batchSize: 5,
      visibilityTimeoutSeconds: 2,
      functionTimeoutMs: 30_000,
      waitTimeSeconds: 0,
    });
    const status = async (id: string) =>
      (await svc.http('GET', `/v1/chat/async/${id}`, { key })).json().status;
    await eventually(
      async () => (await Promise.all(jobs.map(status))).every((s) => s === 'completed'),
      30_000,
      200,
    );
    await eventually(async () => (await status(dead.json().id)) === 'failed', 60_000, 200);
    // A completed job's message once more: acknowledged, nothing charged or given back twice.
    const again = [...bodies.values()].find((b) => b.includes(jobs[0] as string)) as string;
    const sqs = new SQSClient({});
    const resent = await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: again }));
    sqs.destroy();
    await eventually(() => handled.has(resent.MessageId as string), 20_000, 100);
    await worker.stop();
    worker = undefined;
    for (const rt of runtimes) {
      await rt.usage.flush();
      await rt.limiter.flush();
    }
    await svc.server.runtime.usage.flush();
    await svc.server.runtime.limiter.flush();

    // What was really used: the usage rows (three jobs, one request; the dead job used nothing).
    const rows = await eventually(async () => {
      const r = await queryUsageRecords(
        svc.server.runtime.doc,
        stack.env.TOLLGATE_TABLE_USAGE as string,
        owner,
      );
      return r.length >= 4 ? r : undefined;
    });
    expect(rows.filter((r) => r.status === 200)).toHaveLength(4);
    const tokens = rows.reduce((t, r) => t + r.promptTokens + r.completionTokens, 0);
    const microUsd = rows.reduce((t, r) => t + Math.ceil(r.costUsd * 1e6), 0);
    expect(tokens).toBeGreaterThan(0);

    const at = new Date().toISOString().slice(0, 10);
    await eventually(async () => {
      const day = Number(await redis.get(`{tg:${keyId}}:day:${at}`));
      return day === tokens;
    }, 5000).catch(async () => {
      throw new Error(`daily counter ${await redis.get(`{tg:${keyId}}:day:${at}`)} != ${tokens} real tokens`);
    });
    expect(Number(await redis.get(`{tg:${keyId}}:day:${at}`))).toBe(tokens);
    expect(Number(await redis.get(`{tg:${keyId}}:month:${at.slice(0, 7)}`))).toBe(microUsd);
  }, 120_000);
});
