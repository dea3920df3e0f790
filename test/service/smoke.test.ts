/**
 * `npm run smoke` against `npm run dev` (the real service, worker poller and local stand-ins, as
 * separate processes): it passes, and against a broken target it fails naming what broke.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { registerAsyncRoutes } from '../../container/src/jobs/routes';
import { type MockUpstream, startMockUpstream } from '../helpers/mock-upstream';
import { ADMIN_KEY, mockModel, startTestService, type TestService } from '../helpers/service';

const ROOT = join(__dirname, '..', '..');
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function smoke(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [TSX, join(ROOT, 'scripts', 'smoke.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The result column of a row of the table. */
function row(out: string, name: string): string | undefined {
  const line = out.split('\n').find((l) => l.trimStart().startsWith(`${name}  `));
  return /\b(PASS|FAIL)\b/.exec(line ?? '')?.[1];
}

describe('npm run smoke', () => {
  it('prints its usage with --help and exits 0', async () => {
    const r = await smoke(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: npm run smoke -- --url <base URL> --admin-key <key>');
    expect(r.stdout).toContain('--stack <name>');
  });

  it('refuses to run without a target (exit 2)', async () => {
    const r = await smoke([], { TOLLGATE_ADMIN_API_KEY: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('give --url and --admin-key, or --stack');
  });

  describe('against npm run dev', () => {
    let dev: ChildProcess;
    let url: string;
    let log = '';
    beforeAll(async () => {
      const port = await freePort();
      dev = spawn(process.execPath, [TSX, join(ROOT, 'container', 'src', 'dev.ts')], {
        cwd: ROOT,
        env: {
          ...process.env,
          PORT: String(port),
          TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
          TOLLGATE_DRAIN_GRACE_MS: '0',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      dev.stdout?.on('data', (d: Buffer) => {
        log += d.toString();
      });
      dev.stderr?.on('data', (d: Buffer) => {
        log += d.toString();
      });
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`npm run dev did not start:\n${log}`)), 60_000);
        const poll = setInterval(() => {
          if (log.includes('Tollgate is running')) {
            clearInterval(poll);
            clearTimeout(t);
            resolve();
          }
        }, 100);
        dev.once('exit', (code) => {
          clearInterval(poll);
          clearTimeout(t);
          reject(new Error(`npm run dev exited with ${code}:\n${log}`));
        });
      });
      url = `http://127.0.0.1:${port}`;
    }, 90_000);

    afterAll(async () => {
      if (dev && dev.exitCode === null) {
        const exited = new Promise((r) => dev.once('exit', r));
        dev.kill('SIGTERM');
        await exited;
      }
    });

    it('passes every check and exits 0', async () => {
      const r = await smoke(['--url', url, '--admin-key', ADMIN_KEY, '--timeout', '60']);
      expect(r.stdout).toContain('PASS: all 10 checks passed.');
      for (const name of [
        'health',
        'ready',
        'temporary key',
        'completion',
        'stream with usage',
        'async job submitted',
        '429 at the limit',
        'async job completed',
        'usage recorded',
        'key revoked',
      ])
        expect([name, row(r.stdout, name)]).toEqual([name, 'PASS']);
      expect(r.code).toBe(0);
    }, 120_000);

    it('fails with a wrong admin key, naming the check', async () => {
      const r = await smoke(['--url', url, '--admin-key', 'sk-wrong', '--timeout', '5']);
      expect(r.code).toBe(1);
      expect(row(r.stdout, 'health')).toBe('PASS');
      expect(row(r.stdout, 'temporary key')).toBe('FAIL');
      expect(r.stdout).toMatch(/FAIL: \d+ of 10 checks failed: temporary key/);
    }, 60_000);
  });

  describe('against a broken target', () => {
    let upstream: MockUpstream;
    let svc: TestService;
    beforeAll(async () => {
      upstream = await startMockUpstream();
      svc = await startTestService({
        name: 'smoke-broken',
        plugins: [registerAsyncRoutes],
        config: { models: [mockModel(upstream, 'mock-small')] },
      });
      // The provider refuses the gateway's key (a key never put into the secret).
      upstream.apiKey = 'sk-the-real-key';
    });
    afterAll(async () => {
      await svc?.stop();
      await upstream?.close();
    });

    it('exits non-zero and names the failing rows', async () => {
      const r = await smoke(['--url', svc.url, '--admin-key', ADMIN_KEY, '--timeout', '3']);
      expect(r.code).toBe(1);
      expect(row(r.stdout, 'health')).toBe('PASS');
      expect(row(r.stdout, 'ready')).toBe('FAIL');
      expect(r.stdout).toMatch(/ready +FAIL .*upstream:mock-small/);
      expect(row(r.stdout, 'completion')).toBe('FAIL');
      expect(row(r.stdout, 'key revoked')).toBe('PASS');
      expect(r.stdout).toMatch(/FAIL: \d+ of 10 checks failed: ready, completion/);
    }, 60_000);
  });
});
