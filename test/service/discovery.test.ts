/**
 * Model discovery (OPENAI_BASE_URL, no catalogue in the config) is never fatal: the first deploy
 * runs with a placeholder provider key, so the upstream's `GET /models` answers 401 until the
 * real key is in place. The service must start and stay live; the worker Lambda must serve the
 * models on the first invocation after the upstream recovers.
 */
import { lambdaEntry } from '../../container/src/jobs/lambda-entry';
import { registerAsyncRoutes } from '../../container/src/jobs/routes';
import { createWorkerHandler } from '../../container/src/jobs/worker';
import type { Runtime } from '../../container/src/runtime';
import { lambdaContext, receiveJobEvent } from '../helpers/lambda-events';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { eventually, startTestService, type TestService } from '../helpers/service';

const PLACEHOLDER_KEY = 'sk-placeholder-from-the-first-deploy';

let upstream: MockUpstream;
let svc: TestService;
let workerRt: Runtime | undefined;

beforeAll(async () => {
  upstream = await startMockUpstream();
  // The provider refuses the placeholder key: discovery fails at start.
  upstream.apiKey = 'sk-the-real-key';
  svc = await startTestService({
    name: 'discovery',
    plugins: [registerAsyncRoutes],
    env: { OPENAI_BASE_URL: upstream.baseUrl, OPENAI_API_KEY: PLACEHOLDER_KEY },
  });
});

afterAll(async () => {
  await workerRt?.close();
  await svc?.stop();
  await upstream?.close();
});

const chat = (model: string) => ({ model, messages: [{ role: 'user', content: 'hi' }] });

describe('the service with an upstream that refuses the key at start', () => {
  it('starts, is live, is not ready, answers 503 models_unavailable, then serves once the upstream recovers', async () => {
    expect((await svc.http('GET', '/health', { key: null })).status).toBe(200);

    const ready = await svc.http('GET', '/ready', { key: null });
    expect(ready.status).toBe(503);
    const catalogue = ready.json().dependencies.find((d: { name: string }) => d.name === 'catalogue');
    expect(catalogue).toMatchObject({ status: 'error', error: expect.stringContaining('401') });

    const refused = await svc.http('POST', '/v1/chat/completions', { body: chat('mock-small') });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBeTruthy();
    expect(refused.json().error).toMatchObject({ code: 'models_unavailable', type: 'server_error' });
    // No 404: the model may well exist, the catalogue is just not known yet.
    expect(refused.json().error.code).not.toBe('model_not_found');

    // The provider key is fixed (here: the upstream accepts it now); the background retry finds the models.
    upstream.apiKey = null;
    await eventually(
      async () => (await svc.http('GET', '/ready', { key: null })).status === 200,
      10_000,
      100,
    );
    const served = await svc.client().chat.completions.create({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(served.choices[0]?.message.content).toBe('Hello from the mock upstream.');
  });
});

describe('the worker Lambda with an upstream that refuses the key at cold start', () => {
  it('fails the job while the upstream refuses, and completes it on the first invocation after it recovered', async () => {
    // The API (already serving) accepts a job; the worker starts cold while the key is refused.
    const submitted = await svc.http('POST', '/v1/chat/async', { body: chat('mock-small') });
    expect(submitted.status).toBe(202);
    const jobId = submitted.json().id as string;
    upstream.apiKey = 'sk-the-real-key';

    const saved = { base: process.env.OPENAI_BASE_URL, key: process.env.OPENAI_API_KEY };
    process.env.OPENAI_BASE_URL = upstream.baseUrl;
    process.env.OPENAI_API_KEY = PLACEHOLDER_KEY;
    try {
      const handler = lambdaEntry((rt) => {
        workerRt = rt;
        return createWorkerHandler(rt, { retryBackoff: { baseSeconds: 60, maxSeconds: 60 } });
      });
      const event = await receiveJobEvent(svc.stack.env.TOLLGATE_JOBS_QUEUE_URL as string, jobId);

      const first = await handler(event, lambdaContext());
      expect(first.batchItemFailures).toEqual([{ itemIdentifier: event.Records[0]?.messageId }]);

      // Fixed well before the runtime's own background retry (2 s after the failure) is due.
      upstream.apiKey = null;
      const second = await handler(event, lambdaContext());
      expect(second.batchItemFailures).toEqual([]);
    } finally {
      restore('OPENAI_BASE_URL', saved.base);
      restore('OPENAI_API_KEY', saved.key);
    }
    const job = (await svc.http('GET', `/v1/chat/async/${jobId}`)).json();
    expect(job).toMatchObject({ status: 'completed' });
  });
});

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
