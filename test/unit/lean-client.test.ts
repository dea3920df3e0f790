/**
 * LeanOpenAI builds a chat completion's request itself (a plain header object) and leaves
 * everything else to the SDK. A fake fetch shows which path built each request.
 */
import { LeanOpenAI } from '../../container/src/providers/openai/lean-client';

interface Seen {
  url: string;
  init: RequestInit;
}

function nth(seen: Seen[], i: number): Seen {
  const s = seen[i];
  if (!s) throw new Error(`no request #${i}`);
  return s;
}

function client(seen: Seen[], opts: Record<string, unknown> = {}) {
  const fetch = async (url: string, init: RequestInit) => {
    seen.push({ url, init });
    const body = url.endsWith('/models')
      ? { object: 'list', data: [] }
      : {
          id: 'x',
          object: 'chat.completion',
          created: 1,
          model: 'm',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: 'hi' },
              finish_reason: 'stop',
              logprobs: null,
            },
          ],
        };
    return new Response(JSON.stringify(body), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
  };
  return new LeanOpenAI({
    baseURL: 'http://upstream.test/v1',
    apiKey: 'sk-upstream',
    maxRetries: 0,
    fetch: fetch as unknown as typeof globalThis.fetch,
    ...opts,
  });
}

describe('LeanOpenAI', () => {
  it('builds a chat completion request directly: plain headers, JSON body, the SDK user agent', async () => {
    const seen: Seen[] = [];
    await client(seen).chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'q' }] });
    const init = seen[0]?.init;
    expect(seen[0]?.url).toBe('http://upstream.test/v1/chat/completions');
    expect(init?.method).toBe('POST');
    // The lean path: a plain object, where the SDK's own builder makes a Headers instance.
    expect(init?.headers instanceof Headers).toBe(false);
    expect(Object.getPrototypeOf(init?.headers)).toBe(Object.prototype);
    expect(init?.headers).toMatchObject({
      authorization: 'Bearer sk-upstream',
      'content-type': 'application/json',
      accept: 'application/json',
    });
    expect((nth(seen, 0).init.headers as Record<string, string>)['user-agent']).toMatch(/^OpenAI\/JS \d/);
    expect(JSON.parse(String(init?.body))).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'q' }],
    });
  });

  it('sends organization and project headers when configured', async () => {
    const seen: Seen[] = [];
    await client(seen, { organization: 'org-1', project: 'proj-1' }).chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'q' }],
    });
    expect(seen[0]?.init.headers).toMatchObject({
      'openai-organization': 'org-1',
      'openai-project': 'proj-1',
    });
  });

  it('leaves other requests to the SDK: GETs and calls with their own headers', async () => {
    const seen: Seen[] = [];
    const c = client(seen);
    await c.models.list();
    await c.chat.completions.create(
      { model: 'm', messages: [{ role: 'user', content: 'q' }] },
      { headers: { 'x-extra': '1' } },
    );
    expect(seen).toHaveLength(2);
    for (const s of seen) expect(s.init.headers instanceof Headers).toBe(true);
    expect((nth(seen, 1).init.headers as Headers).get('x-extra')).toBe('1');
    // Same user agent on both paths.
    expect((nth(seen, 0).init.headers as Headers).get('user-agent')).toMatch(/^OpenAI\/JS \d/);
  });
});
