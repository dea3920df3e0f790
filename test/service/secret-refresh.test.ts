/**
 * A rotated provider key reaches running processes without a restart: the service (ECS injects
 * the key at start and the task also gets its secret ARN) and a warm worker Lambda both read
 * `<VAR>_SECRET_ARN` again every TOLLGATE_SECRET_REFRESH_MS. The secret store is a scripted
 * Secrets Manager speaking the real JSON protocol; the upstream accepts only the current key.
 */
import type { Context, SQSEvent } from 'aws-lambda';
import { lambdaEntry } from '../../container/src/jobs/lambda-entry';
import { registerAsyncRoutes } from '../../container/src/jobs/routes';
import { createWorkerHandler } from '../../container/src/jobs/worker';
import type { LocalStack } from '../../container/src/local/stack';
import type { Runtime } from '../../container/src/runtime';
import { spawnServer } from '../helpers/child-server';
import { lambdaContext, receiveJobEvent } from '../helpers/lambda-events';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { type ScriptedSecretsManager, startSecretsManager } from '../helpers/secrets-manager';
import {
  ADMIN_KEY,
  DEV_KEY,
  eventually,
  mockModel,
  startTestService,
  startTestStack,
  type TestService,
} from '../helpers/service';

let upstream: MockUpstream;
let sm: ScriptedSecretsManager;

beforeAll(async () => {
  upstream = await startMockUpstream();
  sm = await startSecretsManager();
});

afterAll(async () => {
  await sm?.close();
  await upstream?.close();
});

const lastKey = () => upstream.requests.at(-1)?.headers.authorization;

describe('the service', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack('secret-svc');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('uses a rotated provider key within the refresh interval, without a restart', async () => {
    const arn = sm.put('tollgate/provider-key', 'sk-one');
    upstream.apiKey = 'sk-one';
    const server = await spawnServer({
      ...stack.env,
      TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
      TOLLGATE_DEV_API_KEY: DEV_KEY,
      TOLLGATE_DRAIN_GRACE_MS: '0',
      TOLLGATE_CONFIG_JSON: JSON.stringify({ models: [mockModel(upstream, 'mock-small')] }),
      // As on ECS: the value injected at start, and the ARN to read it again.
      OPENAI_API_KEY: 'sk-one',
      OPENAI_API_KEY_SECRET_ARN: arn,
      TOLLGATE_SECRET_REFRESH_MS: '200',
      AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url,
    });
    const complete = () =>
      fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEV_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mock-small', messages: [{ role: 'user', content: 'hi' }] }),
      });
    try {
      expect((await complete()).status).toBe(200);
      expect(lastKey()).toBe('Bearer sk-one');

      sm.put('tollgate/provider-key', 'sk-two');
      upstream.apiKey = 'sk-two';
      await eventually(async () => (await complete()).status === 200, 5000, 100);
      expect(lastKey()).toBe('Bearer sk-two');
      // The log names the variable, never the value.
      expect(server.output()).toContain('"message":"secret refreshed"');
      expect(server.output()).not.toContain('sk-two');
    } finally {
      await server.stop();
    }
  });
});

describe('a warm worker Lambda', () => {
  let svc: TestService;
  let workerRt: Runtime | undefined;
  const saved: Record<string, string | undefined> = {};
  const workerEnv = (arn: string): Record<string, string> => ({
    OPENAI_API_KEY_SECRET_ARN: arn,
    TOLLGATE_SECRET_REFRESH_MS: '200',
    AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url,
    TOLLGATE_CONFIG_JSON: JSON.stringify({ models: [mockModel(upstream, 'mock-small')] }),
  });

  beforeAll(async () => {
    // The API only submits jobs here (no secret ARN in its environment).
    svc = await startTestService({
      name: 'secret-worker',
      plugins: [registerAsyncRoutes],
      config: { models: [mockModel(upstream, 'mock-small')] },
    });
  });
  afterAll(async () => {
    await workerRt?.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await svc?.stop();
  });

  it('reads the rotated key at the next invocation once the refresh interval has passed', async () => {
    const arn = sm.put('tollgate/worker-key', 'sk-three');
    upstream.apiKey = 'sk-three';
    // Lambda has no secret injection: the key variable is unset, the ARN names the secret.
    for (const [k, v] of Object.entries({ ...workerEnv(arn), OPENAI_API_KEY: undefined })) {
      saved[k] = process.env[k];
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    const handler = lambdaEntry((rt) => {
      workerRt = rt;
      return createWorkerHandler(rt);
    });

    const first = await runJob(handler);
    expect(first.status).toBe('completed');
    expect(lastKey()).toBe('Bearer sk-three');

    sm.put('tollgate/worker-key', 'sk-four');
    upstream.apiKey = 'sk-four';
    // The container stays warm past the interval (frozen between invocations: no timer ran).
    await new Promise((r) => setTimeout(r, 300));
    const second = await runJob(handler);
    expect(second.status).toBe('completed');
    expect(lastKey()).toBe('Bearer sk-four');
  });

  /** Submit a job through the API and invoke the handler with its message. */
  async function runJob(handler: (e: SQSEvent, c: Context) => Promise<unknown>) {
    const r = await svc.http('POST', '/v1/chat/async', {
      body: { model: 'mock-small', messages: [{ role: 'user', content: 'hi' }] },
    });
    expect(r.status).toBe(202);
    const id = r.json().id as string;
    await handler(
      await receiveJobEvent(svc.stack.env.TOLLGATE_JOBS_QUEUE_URL as string, id),
      lambdaContext(),
    );
    return (await svc.http('GET', `/v1/chat/async/${id}`)).json();
  }
});
