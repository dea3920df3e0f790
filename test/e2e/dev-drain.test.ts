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

describe('Ctrl-C through npm run dev', () => {
  it('drains: SIGINT to the process group with a stream open, and the stream still ends with [DONE]', async () => {
    const dev = await startDev({ TOLLGATE_CONFIG_JSON: SLOW });
    try {
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
      expect(out).toMatch(/POST \/v1\/chat\/completions {2}200 {2}slow-sim/);
      expect(out).toContain('stopped');
      expect(out).not.toContain('left unwritten');
    } finally {
      await dev.interrupt();
    }
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
