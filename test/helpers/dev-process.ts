/**
 * `npm run dev` as a person starts it, as a child process in its own process group (so a test
 * can send the group a Ctrl-C the way a terminal does), on a free port, with its banner parsed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export interface DevProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  adminKey: string;
  devKey: string;
  proc: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output: () => string;
  /** Resolves with the exit code (or the signal name) of `npm`. */
  exited: Promise<number | string | null>;
  /**
   * Resolves once every process holding the output pipes is gone: npm, and the service, which
   * may outlive npm (the shell npm runs scripts in dies of the Ctrl-C at once; npm then exits
   * with it while the service drains).
   */
  closed: Promise<void>;
  /** Ctrl-C to the whole process group, then wait for `closed` (SIGKILL to the group after `timeoutMs`). */
  interrupt(timeoutMs?: number): Promise<void>;
}

export const ROOT = join(__dirname, '..', '..');

/** Variables a test runner leaves in its environment that would point the child elsewhere. */
const DROP =
  /^(AWS_ENDPOINT_URL.*|REDIS_.*|TOLLGATE_.*|PORT|HOST|POWERTOOLS_.*|TEST_LOG|NO_COLOR|FORCE_COLOR)$/;

export async function startDev(env: Record<string, string> = {}, timeoutMs = 60_000): Promise<DevProcess> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !DROP.test(k)));
  const proc = spawn('npm', ['run', 'dev'], {
    cwd: ROOT,
    env: { ...base, PORT: '0', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | string | null>((resolve) =>
    proc.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  const closed = new Promise<void>((resolve) => proc.once('close', () => resolve()));
  const banner = await new Promise<{ url: string; adminKey: string; devKey: string }>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`npm run dev did not start in ${timeoutMs} ms:\n${out}`)),
      timeoutMs,
    );
    const check = () => {
      const url = /Tollgate is running at (http:\/\/\S+)/.exec(out)?.[1];
      const adminKey = /admin key: +(\S+)/.exec(out)?.[1];
      const devKey = /dev key: +(\S+)/.exec(out)?.[1];
      if (url && adminKey && devKey && /Try \(in another terminal\)/.test(out)) {
        clearTimeout(t);
        proc.stdout?.off('data', check);
        resolve({ url, adminKey, devKey });
      }
    };
    proc.stdout?.on('data', check);
    void exited.then((code) => {
      clearTimeout(t);
      reject(new Error(`npm run dev exited with ${code} before it served:\n${out}`));
    });
  });
  const group = proc.pid as number;
  return {
    ...banner,
    proc,
    output: () => out,
    exited,
    closed,
    async interrupt(ms = 40_000) {
      const signal = (s: NodeJS.Signals) => {
        try {
          process.kill(-group, s);
        } catch {
          // the group is gone
        }
      };
      signal('SIGINT');
      const t = setTimeout(() => signal('SIGKILL'), ms);
      await closed;
      clearTimeout(t);
    },
  };
}

/** An open SSE stream: its first bytes have arrived; `rest()` reads it to its end (or its cut). */
export async function openStream(
  url: string,
  key: string,
  body: Record<string, unknown>,
): Promise<{ first: string; rest: () => Promise<string> }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (res.status !== 200) throw new Error(`stream answered ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let first = '';
  while (!first.includes('data: {')) {
    const { value, done } = await reader.read();
    if (done) break;
    first += dec.decode(value, { stream: true });
  }
  return {
    first,
    async rest() {
      let text = first;
      for (;;) {
        const r = await reader.read().catch(() => ({ value: undefined, done: true as const }));
        if (r.done) break;
        text += dec.decode(r.value, { stream: true });
      }
      return text;
    },
  };
}
