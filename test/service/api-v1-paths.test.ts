/**
 * The README's promise: every route that starts with /v1/ is also served under /api/v1/ (the
 * original tutorial's prefix), with the same methods and answers; and the 404 codes its error
 * table names are the ones the service sends.
 */
import { registerAssistantRoutes } from '../../container/src/conversations/routes';
import { registerAsyncRoutes } from '../../container/src/jobs/routes';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { mockModel, startTestService, type TestService } from '../helpers/service';

let upstream: MockUpstream;
let svc: TestService;

beforeAll(async () => {
  upstream = await startMockUpstream();
  svc = await startTestService({
    name: 'apiv1',
    config: { models: [mockModel(upstream, 'mock-small')], assistant: { model: 'mock-small' } },
    plugins: [registerAsyncRoutes, registerAssistantRoutes],
  });
});

afterAll(async () => {
  await svc?.stop();
  await upstream?.close();
});

/** Every /v1 route of the API reference, with its methods. */
const V1_ROUTES: Array<[string[], string]> = [
  [['POST'], '/v1/chat/completions'],
  [['POST'], '/v1/embeddings'],
  [['GET'], '/v1/models'],
  [['GET'], '/v1/models/mock-small'],
  [['GET'], '/v1/usage'],
  [['POST'], '/v1/chat/async'],
  [['GET'], '/v1/chat/async/job_0123'],
  [['POST'], '/v1/assistant/chat'],
  [['GET', 'DELETE'], '/v1/assistant/history/user-1'],
];

describe('/api/v1 paths', () => {
  it.each(V1_ROUTES)('serves %s %s under /api/v1 as well', async (methods, path) => {
    for (const method of methods) {
      // A route that exists asks for a key (401) before it reads a body; an unknown one is 404.
      const v1 = await svc.http(method, path, { key: null });
      const twin = await svc.http(method, `/api${path}`, { key: null });
      expect([method, path, v1.status]).toEqual([method, path, 401]);
      expect([method, `/api${path}`, twin.status]).toEqual([method, `/api${path}`, 401]);
    }
  });

  it('answers the twin paths like the /v1 ones, with the 404 codes the error table names', async () => {
    for (const prefix of ['/v1', '/api/v1']) {
      const job = await svc.http('GET', `${prefix}/chat/async/job_0123456789abcdef0123456789abcdef`);
      expect([prefix, job.status, job.json().error.code]).toEqual([prefix, 404, 'job_not_found']);
      const history = await svc.http('GET', `${prefix}/assistant/history/nobody-here`);
      expect([prefix, history.status, history.json().error.code]).toEqual([
        prefix,
        404,
        'conversation_not_found',
      ]);
    }
  });
});
