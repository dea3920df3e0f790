import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { EXPOSED_HEADERS } from '../../container/src/http/cors';
import { launchBrowser } from '../helpers/browser';
import { DEV_KEY, startTestService, type TestService } from '../helpers/service';

let svc: TestService;
let browser: Browser;
let page: Server;
let pageOrigin: string;

beforeAll(async () => {
  // The simulator streams slowly enough to see text arrive before the end.
  svc = await startTestService({
    name: 'cors',
    config: {
      models: [{ id: 'sim', provider: 'simulator', simulator: { ttftMs: 50, tokensPerSecond: 60 } }],
    },
    env: { TOLLGATE_CORS_ORIGINS: 'localhost' },
  });
  page = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>another origin</title><pre id="out"></pre>');
  });
  await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
  pageOrigin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => page?.close(r));
  await svc?.stop();
});

describe('CORS', () => {
  it('lets a page on another localhost origin stream a completion with fetch, reading the exposed headers', async () => {
    const tab = await browser.newPage();
    await tab.goto(pageOrigin);
    const result = await tab.evaluate(
      async ({ api, key }) => {
        const res = await fetch(`${api}/v1/chat/completions`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${key}`,
            'content-type': 'application/json',
            // What the openai SDK sends from a browser (its set varies by version).
            'x-stainless-lang': 'js',
            'x-stainless-os': 'Linux',
          },
          body: JSON.stringify({
            model: 'sim',
            messages: [{ role: 'user', content: 'stream to the browser' }],
            stream: true,
            stream_options: { include_usage: true },
          }),
        });
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        const decoder = new TextDecoder();
        let text = '';
        let reads = 0;
        let firstTextAt = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          reads++;
          text += decoder.decode(value, { stream: true });
          if (!firstTextAt && text.includes('"content"')) firstTextAt = performance.now();
        }
        const endAt = performance.now();
        return {
          status: res.status,
          requestId: res.headers.get('x-request-id'),
          cache: res.headers.get('x-tollgate-cache'),
          remaining: res.headers.get('x-ratelimit-remaining-requests'),
          reads,
          gapMs: endAt - firstTextAt,
          done: text.trimEnd().endsWith('data: [DONE]'),
          usage: text.includes('"usage"'),
        };
      },
      { api: svc.url.replace('127.0.0.1', 'localhost'), key: DEV_KEY },
    );
    expect(result.status).toBe(200);
    expect(result.requestId).toMatch(/^req_/);
    expect(result.cache).toBe('BYPASS');
    expect(result.remaining).not.toBeNull();
    expect(result.done).toBe(true);
    expect(result.usage).toBe(true);
    // Streamed, not buffered: several reads, and text well before the end.
    expect(result.reads).toBeGreaterThan(3);
    expect(result.gapMs).toBeGreaterThan(100);
    await tab.close();
  });

  it('answers a preflight 204, echoing the headers asked for and exposing response headers by name', async () => {
    const asked = 'authorization, content-type, x-stainless-arch, x-stainless-retry-count';
    const res = await fetch(`${svc.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:5173',
        'access-control-request-method': 'POST',
        'access-control-request-headers': asked,
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    expect(res.headers.get('access-control-allow-headers')).toBe(asked);
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    const ok = await fetch(`${svc.url}/v1/models`, {
      headers: { origin: 'http://localhost:5173', authorization: `Bearer ${DEV_KEY}` },
    });
    const exposed = ok.headers.get('access-control-expose-headers')?.split(/,\s*/) ?? [];
    expect(exposed).toEqual([...EXPOSED_HEADERS]);
    expect(exposed).not.toContain('*');
  });

  it('gives an origin that is not allowed no CORS headers', async () => {
    const res = await fetch(`${svc.url}/v1/models`, {
      headers: { origin: 'https://evil.example', authorization: `Bearer ${DEV_KEY}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const pre = await fetch(`${svc.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('allows no origin when none is configured (the production default)', async () => {
    // '' = unset (the other service of this file set the variable in this process).
    const closed = await startTestService({
      name: 'cors-off',
      stack: svc.stack,
      config: {},
      env: { TOLLGATE_CORS_ORIGINS: '' },
    });
    try {
      const pre = await fetch(`${closed.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST' },
      });
      expect(pre.status).toBe(405);
      expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await closed.stop();
    }
  });
});
