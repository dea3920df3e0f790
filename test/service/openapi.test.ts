import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { servicePlugins } from '../../container/src/plugins';
import { startTestService, type TestService } from '../helpers/service';

let svc: TestService;

beforeAll(async () => {
  svc = await startTestService({
    name: 'openapi',
    plugins: servicePlugins,
    env: { TOLLGATE_CORS_ORIGINS: '' },
  });
});

afterAll(async () => {
  await svc?.stop();
});

type Doc = {
  openapi: string;
  paths: Record<
    string,
    Record<string, { security: unknown[]; requestBody?: unknown; responses: Record<string, unknown> }>
  >;
};

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/**
 * The paths the router serves, read from Fastify's own route tree (`printRoutes`), independent of
 * the document's route collector: each line is a path segment under its parent, `(METHODS)` marks
 * a route.
 */
function routerPaths(tree: string): Set<string> {
  const out = new Set<string>();
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[└├]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = (m[1] as string).length / 4;
    stack.length = depth;
    stack.push(m[2] as string);
    if (m[3]) out.add(stack.join(''));
  }
  return out;
}

/** `/v1/chat/async/:id` and `/v1/models/*` as the document writes them. */
function template(path: string, doc: Doc): string {
  const t = path.replace(/:([A-Za-z_]+)/g, '{$1}');
  if (!t.includes('*')) return t;
  const prefix = t.slice(0, t.indexOf('*'));
  return (
    Object.keys(doc.paths).find((p) => p.startsWith(prefix) && /^\{[^}]+\}$/.test(p.slice(prefix.length))) ??
    t
  );
}

describe('the OpenAPI document', () => {
  it('is served without a key at /openapi.json and is valid OpenAPI 3.1', async () => {
    const res = await svc.http('GET', '/openapi.json', { key: null });
    expect(res.status).toBe(200);
    const doc = res.json() as Doc;
    expect(doc.openapi).toBe('3.1.0');
    // The validator is ESM-only, which jest's CommonJS runtime cannot load: its CLI runs it.
    const file = join(mkdtempSync(join(tmpdir(), 'openapi-')), 'openapi.json');
    writeFileSync(file, JSON.stringify(doc));
    const cli = require.resolve('@seriousme/openapi-schema-validator/bin/validate-api-cli.js');
    const { stdout } = await promisify(execFile)(process.execPath, [cli, file]);
    const result = JSON.parse(stdout) as { valid: boolean; errors?: unknown[] };
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('has exactly the paths the server routes (path parameters as {id} templates)', async () => {
    const doc = (await svc.http('GET', '/openapi.json', { key: null })).json() as Doc;
    const served = [...routerPaths(svc.server.app.printRoutes())].map((p) => template(p, doc)).sort();
    expect(Object.keys(doc.paths).sort()).toEqual(served);
    expect(Object.keys(doc.paths).some((p) => p.includes(':') || p.includes('*'))).toBe(false);
  });

  it('documents, for each operation, a method the path really answers (not 405 or 404)', async () => {
    const doc = (await svc.http('GET', '/openapi.json', { key: null })).json() as Doc;
    for (const [path, ops] of Object.entries(doc.paths)) {
      const url = path.replace(/\{[^}]+\}/g, 'x');
      for (const method of Object.keys(ops).filter((m) => METHODS.includes(m))) {
        const r = await svc.server.app.inject({ method: method.toUpperCase() as 'GET', url });
        expect([method, path, r.statusCode]).not.toEqual([method, path, 405]);
        if (r.statusCode === 404)
          expect([method, path, r.json().error.code]).not.toEqual([method, path, 'unknown_url']);
      }
    }
  });

  it('states auth, the request body and the OpenAI error shape of the main operations', async () => {
    const doc = (await svc.http('GET', '/openapi.json', { key: null })).json() as Doc;
    const chat = doc.paths['/v1/chat/completions']?.post;
    expect(chat?.security).toEqual([{ apiKey: [] }]);
    const body = chat?.requestBody as { content: Record<string, { schema: { required: string[] } }> };
    expect(body.content['application/json']?.schema.required).toEqual(['model', 'messages']);
    expect(chat?.responses['401']).toEqual({ $ref: '#/components/responses/E401' });
    expect(doc.paths['/admin/keys']?.post?.security).toEqual([{ adminKey: [] }]);
    expect(doc.paths['/health']?.get?.security).toEqual([]);
    const emb = doc.paths['/v1/embeddings']?.post?.requestBody as {
      content: Record<string, { schema: { properties: Record<string, unknown> } }>;
    };
    expect(Object.keys(emb.content['application/json']?.schema.properties ?? {})).toEqual([
      'model',
      'input',
      'encoding_format',
      'dimensions',
      'user',
    ]);
    const comp = (
      doc as unknown as {
        components: { schemas: { Error: { properties: { error: { required: string[] } } } } };
      }
    ).components;
    expect(comp.schemas.Error.properties.error.required).toEqual(['message', 'type', 'param', 'code']);
  });
});

describe('the rendered reference at /docs', () => {
  it('serves swagger-ui from the service itself under a CSP that allows no inline script', async () => {
    const page = await svc.http('GET', '/docs', { key: null });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(page.text).not.toMatch(/<script>[^<]/);
    const scripts = [...page.text.matchAll(/<script src="([^"]+)"/g)].map((m) => m[1] as string);
    expect(scripts.length).toBeGreaterThanOrEqual(3);
    for (const src of [...scripts, '/docs/assets/swagger-ui.css']) {
      const a = await svc.http('GET', src, { key: null });
      expect([src, a.status]).toEqual([src, 200]);
    }
    expect((await svc.http('GET', '/docs/assets/init.js', { key: null })).text).toMatch(/openapi\.json/);
    expect((await svc.http('GET', '/docs/assets/nope.js', { key: null })).status).toBe(404);
  });
});
