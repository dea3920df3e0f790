/**
 * Ctrl-C through `npm run dev` drains. The terminal's SIGINT reaches every process of the
 * foreground group. npm runs a script in `sh -c`, and that shell dies of the SIGINT at once; npm
 * then exits with it, and the service, still draining, was left orphaned behind a terminal that
 * already showed its prompt, for whatever came next to kill (a supervisor tearing the session
 * down, the pty's hang-up, tsx's CLI parent relaying the signal with a 30 ms SIGKILL escalation).
 * So the script `exec`s node (no shell, no tsx CLI parent: npm's child is the service and npm
 * waits for it), and the service takes the same Ctrl-C delivered twice (the group's and npm's
 * forwarded one) as one stop request.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { LocalStack } from '../../container/src/local/stack';
import { openStream, ROOT, startDev } from '../helpers/dev-process';
import { startTestStack } from '../helpers/service';

/** A simulator slow enough that a stream is still open when the signal comes (~3 s of tokens). */
const SLOW = JSON.stringify({
  models: [{ id: 'slow-sim', provider: 'simulator', simulator: { ttftMs: 200, tokensPerSecond: 15 } }],
});
const ASK = {
  model: 'slow-sim',
  messages: [{ role: 'user', content: 'Please explain, at some length, how a toll gate works.' }],
};

/** Local addresses (hex, as the kernel writes them) listening on a TCP port, from /proc/net/tcp. */
function listenersOn(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A')
    .map((f) => (f[1] as string).split(':')[0] as string);
}

describe('Ctrl-C through npm run dev', () => {
  it('drains: SIGINT to the process group with a stream open, and the stream still ends with [DONE]', async () => {
    const dev = await startDev({ TOLLGATE_CONFIG_JSON: SLOW });
    try {
      // As a person meets it: loopback only, the console URL and the DEV_KEY line in the banner.
      expect(new URL(dev.url).hostname).toBe('127.0.0.1');
      expect(listenersOn(Number(new URL(dev.url).port))).toEqual(['0100007F']);
      expect(dev.output()).toContain(`console:   ${dev.url}/console`);
      expect(dev.output()).toContain(`export DEV_KEY=${dev.devKey}`);
      const stream = await openStream(dev.url, dev.devKey, ASK);
      expect(stream.first).toContain('data: {');
      let outputAtNpmExit = '';
      void dev.exited.then(() => {
        outputAtNpmExit = dev.output();
      });
      const stopping = dev.interrupt();
      const text = await stream.rest();
      expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
      await stopping;
      // npm waited for the drain (its child is the service itself) and exits with its code: the
      // terminal gets its prompt back only once the service stopped.
      expect(await dev.exited).toBe(0);
      expect(outputAtNpmExit).toContain('stopped');
      const out = dev.output();
      expect(out).toContain('draining');
      // One readable line for the request; no JSON, no EMF documents, no SDK Node-version notice.
      const line = out.split('\n').find((l) => l.includes('POST /v1/chat/completions'));
      expect(line).toMatch(
        /^\d\d:\d\d:\d\d\.\d{3} {2}POST \/v1\/chat\/completions {2}200 {2}slow-sim {2}\d+→\d+ tok {2}\$0 {2}\d+ms \(ttft \d+ms\) {2}stream/,
      );
      expect(out).not.toMatch(/^\{"level"/m);
      expect(out).not.toContain('"_aws"');
      expect(out).not.toContain('NodeVersionSupportWarning');
      expect(out).toContain('stopped');
      expect(out).not.toContain('left unwritten');
      // redis-server runs in its own process group: the Ctrl-C did not stop it under the drain.
      expect(out).not.toContain('rate limiter store unavailable');
    } finally {
      await dev.interrupt();
    }
  }, 90_000);
});

describe('npm run dev for a person at a terminal', () => {
  it('shows the EMF documents when POWERTOOLS_METRICS_DISABLED=false asks for them', async () => {
    const dev = await startDev({ POWERTOOLS_METRICS_DISABLED: 'false' });
    try {
      expect(
        (await fetch(`${dev.url}/v1/models`, { headers: { authorization: `Bearer ${dev.devKey}` } })).status,
      ).toBe(200);
      const deadline = Date.now() + 5000;
      while (!dev.output().includes('"_aws"') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(dev.output()).toContain('"CloudWatchMetrics"');
    } finally {
      await dev.interrupt();
    }
  }, 90_000);

  it('says in one line which PORT is busy, and exits 1', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const addr = holder.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    let failure = '';
    try {
      await startDev({ PORT: String(port) });
    } catch (err) {
      failure = (err as Error).message;
    } finally {
      holder.close();
    }
    expect(failure).toContain('npm run dev exited with 1');
    const lines = failure.split('\n').filter((l) => l.includes('failed to start'));
    expect(lines).toEqual([
      `tollgate dev failed to start: port ${port} is already in use (127.0.0.1:${port}); set PORT to a free port (e.g. PORT=8081) or stop the other process.`,
    ]);
    // No stack trace.
    expect(failure).not.toMatch(/^\s+at /m);
    expect(failure).not.toContain('EADDRINUSE');
  }, 90_000);
});

describe('a repeated SIGINT', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack('sigint');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('is the same stop request: the open stream finishes and the process exits 0', async () => {
    const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'container', 'src', 'server.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...stack.env,
        HOST: '127.0.0.1',
        PORT: '0',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        TOLLGATE_DEV_API_KEY: 'sk-tg-dev-sigint-0123456789',
        TOLLGATE_DRAIN_GRACE_MS: '0',
        TOLLGATE_CONFIG_JSON: SLOW,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    proc.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | string | null>((r) => proc.once('exit', (c, s) => r(c ?? s)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no listening line:\n${out}`)), 30_000);
        proc.stdout?.on('data', () => {
          const m = /"message":"listening".*?"url":"([^"]+)"/.exec(out);
          if (m?.[1]) {
            clearTimeout(t);
            resolve(m[1]);
          }
        });
      });
      const stream = await openStream(url, 'sk-tg-dev-sigint-0123456789', ASK);
      // What npm does: the group's SIGINT, then the one it forwards, a moment later.
      proc.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 50));
      proc.kill('SIGINT');
      const text = await stream.rest();
      expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
      expect(await exited).toBe(0);
      expect(out).toContain('"message":"stopped"');
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
  }, 60_000);
});
