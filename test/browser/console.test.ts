/**
 * The operator console in a real browser: headless Chromium (Debian's `chromium`) driven by
 * playwright-core, against `npm run dev` started here on a free port, as a newcomer would use it.
 * The steps run in order on one page (one signed-in tab), each an `it` of its own.
 */
import { randomUUID } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchBrowser } from '../helpers/browser';
import { type DevProcess, startDev } from '../helpers/dev-process';

/** A simulator slow enough that a streamed answer takes ~2 s: text shows while it is still coming. */
const CONFIG = JSON.stringify({
  models: [
    { id: 'simulator', provider: 'simulator', simulator: { ttftMs: 200, tokensPerSecond: 25 } },
    { id: 'simulator-fast', provider: 'simulator' },
  ],
});

let dev: DevProcess;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Console messages and uncaught errors of the page: a CSP violation would show here. */
const problems: string[] = [];
const dialogs: string[] = [];
const owner = `e2e-${randomUUID().slice(0, 8)}`;
let newKey = '';
let newKeyId = '';

const adminApi = async (path: string, init: RequestInit = {}) => {
  const res = await fetch(`${dev.url}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${dev.adminKey}`,
      'content-type': 'application/json',
      ...(init.headers ?? {}),
    },
  });
  return { status: res.status, body: await res.json() };
};

beforeAll(async () => {
  dev = await startDev({ TOLLGATE_CONFIG_JSON: CONFIG });
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: dev.url });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy|Trusted Type/i.test(m.text()))
      problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await dev?.interrupt();
});

const rowOf = (id: string) => page.locator(`tr[data-key-id="${id}"]`);

describe('the operator console', () => {
  it('is served with a strict Content-Security-Policy header', async () => {
    const res = await page.goto(`${dev.url}/console`);
    expect(res?.status()).toBe(200);
    const csp = res?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
    expect(csp).toContain("require-trusted-types-for 'script'");
    // Every script and stylesheet the page loads comes from the service itself.
    const sources = await page.evaluate(() =>
      [...document.querySelectorAll('script[src], link[href]')].map(
        (e) => (e as HTMLScriptElement).src || (e as HTMLLinkElement).href,
      ),
    );
    expect(sources.length).toBeGreaterThanOrEqual(2);
    for (const s of sources) expect(new URL(s).origin).toBe(new URL(dev.url).origin);
    expect(await page.locator('script:not([src])').count()).toBe(0);
    // Trusted Types with no policy: no string can reach an HTML sink, whatever a page does.
    const before = problems.length;
    const sink = await page.evaluate(() => {
      try {
        document.createElement('div').innerHTML = '<img src=x>';
        return 'assigned';
      } catch (e) {
        return (e as Error).name;
      }
    });
    expect(sink).toBe('TypeError');
    problems.splice(before);
  });

  it('refuses a wrong admin key', async () => {
    await page.fill('#admin-key', 'sk-tg-admin-not-the-right-one');
    await page.press('#admin-key', 'Enter');
    await expect(page.getByRole('alert').textContent()).resolves.toContain('That admin key was refused');
    expect(await page.locator('nav').count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });

  it('signs in with the admin key in a password field that submits on Enter, kept in the tab session only', async () => {
    expect(await page.getAttribute('#admin-key', 'type')).toBe('password');
    await page.fill('#admin-key', dev.adminKey);
    await page.press('#admin-key', 'Enter');
    await page.waitForSelector('nav');
    const nav = await page.locator('nav a').allTextContents();
    expect(nav).toEqual(['Overview', 'Keys', 'Usage', 'Queue', 'Playground']);
    const stored = await page.evaluate(() => ({
      session: Object.values(sessionStorage),
      local: localStorage.length,
      cookie: document.cookie,
    }));
    expect(stored.session).toContain(dev.adminKey);
    expect(stored.local).toBe(0);
    expect(stored.cookie).toBe('');
    expect(await context.cookies()).toEqual([]);
  });

  it('renders HTML in a prompt and in its answer as text, in a playground that works right after sign-in', async () => {
    await page.click('nav a:text-is("Playground")');
    const html = '<img src=x onerror=alert(1)>';
    await page.selectOption('select[name=model]', 'simulator-fast');
    await page.fill('textarea#prompt', html);
    await page.click('button:text-is("Send")');
    const answer = page.locator('.msg.assistant').last();
    await answer.locator('[data-testid=answer-meta]').waitFor({ timeout: 20_000 });
    expect(await page.locator('.msg.user .text').last().textContent()).toBe(html);
    // The simulator echoes the question: the answer holds the same characters, as characters.
    expect(await answer.locator('.text').textContent()).toContain(html);
    expect(await page.locator('.chat img').count()).toBe(0);
    expect(dialogs).toEqual([]);
  });

  it('creates a key and shows it once, with a copy button', async () => {
    await page.click('nav a:text-is("Keys")');
    await page.fill('form[aria-label="Create a key"] input[name=owner]', owner);
    await page.click('button:text-is("Create key")');
    const shown = page.locator('[data-testid=new-key]');
    await shown.waitFor();
    newKey = await shown.inputValue();
    expect(newKey).toMatch(/^sk-tg-[A-Za-z0-9]{40}$/);
    await page.click('section[aria-label="New key"] button:text-is("Copy")');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(newKey);
    const listed = (await adminApi(`/admin/keys?owner=${owner}`)).body.data;
    expect(listed).toHaveLength(1);
    newKeyId = listed[0].id;
    await rowOf(newKeyId).waitFor();
    await page.click('section[aria-label="New key"] button:text-is("Done")');
    // Gone from the page for good: the list never shows a key, only its id and prefix.
    expect(await page.locator('[data-testid=new-key]').count()).toBe(0);
    expect(await page.content()).not.toContain(newKey);
  });

  it('finds the key by its owner and edits its limits', async () => {
    await page.fill('input[name=search]', owner);
    expect(await page.locator('tr[data-key-id]').count()).toBe(1);
    await rowOf(newKeyId).locator('button:text-is("Edit")').click();
    const form = page.locator(`form[aria-label="Edit ${newKeyId}"]`);
    await form.locator('input[name=rpm]').fill('5');
    await form.locator('input[name=daily_tokens]').fill('50000');
    await form.locator('button:text-is("Save")').click();
    await form.waitFor({ state: 'detached' });
    const k = (await adminApi(`/admin/keys?owner=${owner}`)).body.data[0];
    expect(k.limits).toEqual({ rpm: 5, daily_tokens: 50000 });
    // The standing shows the new limits once it is read again (at once after a save).
    await page.waitForFunction(
      (id) => document.querySelector(`tr[data-key-id="${id}"] [data-standing=rpm]`)?.textContent === '0 / 5',
      newKeyId,
    );
    await page.waitForFunction(
      (id) =>
        document
          .querySelector(`tr[data-key-id="${id}"] [data-standing=daily]`)
          ?.textContent?.includes('50,000'),
      newKeyId,
    );
  });

  it('streams an answer in the playground with that key: text appears before the answer ends', async () => {
    await page.click('nav a:text-is("Playground")');
    await page.selectOption('select[name=key-source]', `fresh:${newKeyId}`);
    await page.selectOption('select[name=model]', 'simulator');
    await page.fill('textarea#prompt', 'How does a toll gate decide who may pass?');
    await page.click('button:text-is("Send")');
    const answer = page.locator('.msg.assistant').last();
    // Part of the answer is on screen while the message is still pending (the stream is open).
    await page.waitForFunction(() => {
      const m = [...document.querySelectorAll('.msg.assistant')].pop() as HTMLElement | undefined;
      return m?.dataset.pending === 'true' && (m.querySelector('.text')?.textContent ?? '').length > 0;
    });
    const partial = (await answer.locator('.text').textContent()) ?? '';
    await answer.locator('[data-testid=answer-meta]').waitFor({ timeout: 20_000 });
    const full = (await answer.locator('.text').textContent()) ?? '';
    expect(full.length).toBeGreaterThan(partial.length);
    expect(full.startsWith(partial)).toBe(true);
    const meta = (await answer.locator('[data-testid=answer-meta]').textContent()) ?? '';
    expect(meta).toMatch(/TTFT \d+(\.\d)? ms/);
    expect(meta).toMatch(/\d+ → \d+ tokens/);
    expect(meta).toContain('$0');
    expect(meta).toMatch(/cache (BYPASS|MISS|HIT)/);
  });

  it("shows the key's standing change and its usage in the chart", async () => {
    await page.click('nav a:text-is("Keys")');
    await page.fill('input[name=search]', owner);
    await page.waitForFunction(
      (id) =>
        document.querySelector(`tr[data-key-id="${id}"] [data-standing=rpm]`)?.textContent?.includes('1 / 5'),
      newKeyId,
      { timeout: 15_000 },
    );
    const today = await rowOf(newKeyId).locator('[data-standing=daily]').textContent();
    expect(today).toMatch(/^[1-9][\d,]* \/ 50,000/);

    await page.click('nav a:text-is("Usage")');
    await page.selectOption('select[name=group]', 'key_id');
    await page.selectOption('select[name=owner]', owner);
    const row = page.locator(`table.usage tr[data-group="${newKeyId}"]`);
    await page.waitForFunction(
      (id) =>
        document.querySelector(`table.usage tr[data-group="${id}"] [data-col=requests]`)?.textContent === '1',
      newKeyId,
      { timeout: 15_000 },
    );
    expect(await row.count()).toBe(1);
    // The chart is drawn (a canvas) and its legend names the key by owner and prefix, as text.
    await page.locator('.chart canvas').first().waitFor();
    expect(await page.locator('.chart .u-legend').textContent()).toContain(owner);
  });

  it('revokes the key after a confirmation, and the playground then gets 401', async () => {
    await page.click('nav a:text-is("Keys")');
    await page.fill('input[name=search]', owner);
    await rowOf(newKeyId).locator('button:text-is("Revoke")').click();
    const confirm = page.locator('tr.confirm');
    await expect(confirm.textContent()).resolves.toContain(newKeyId);
    await confirm.locator('button:text-is("Revoke key")').click();
    await rowOf(newKeyId).waitFor({ state: 'detached' });
    expect((await adminApi(`/admin/keys?owner=${owner}`)).body.data[0].revoked).toBe(true);

    await page.click('nav a:text-is("Playground")');
    await page.selectOption('select[name=key-source]', `fresh:${newKeyId}`);
    await page.fill('textarea#prompt', 'still there?');
    await page.click('button:text-is("Send")');
    const failed = page.locator('.msg.assistant').last().locator('.error');
    await failed.waitFor({ timeout: 15_000 });
    expect(await failed.textContent()).toMatch(/^401 invalid_api_key/);
  });

  it('reported no CSP violation or script error along the way', () => {
    expect(problems.filter((p) => !/401 \(Unauthorized\)/.test(p))).toEqual([]);
  });
});
