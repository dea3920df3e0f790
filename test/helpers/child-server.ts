/**
 * The service as a separate OS process (`node --import tsx container/src/server.ts`), for what only a real
 * process shows: two replicas sharing one Redis, SIGTERM drains.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export interface ChildServer {
  url: string;
  proc: ChildProcess;
  /** Everything the process wrote to stdout (JSON log lines, EMF). */
  output: () => string;
  /** Resolves with the exit code once the process ended. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

const ROOT = join(__dirname, '..', '..');

export async function spawnServer(env: Record<string, string>, timeoutMs = 30_000): Promise<ChildServer> {
  const proc = spawn(
    process.execPath,
    // tsx as a loader in this very process, not its CLI: the CLI is a parent that relays signals
    // and SIGKILLs its child when the child does not acknowledge one within 30 ms (a busy
    // machine), which cut drains under test.
    ['--import', 'tsx', join(ROOT, 'container', 'src', 'server.ts')],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        POWERTOOLS_METRICS_DISABLED: 'true',
        HOST: '127.0.0.1',
        PORT: '0',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`server did not start in ${timeoutMs} ms:\n${out}\n${err}`)),
      timeoutMs,
    );
    const check = () => {
      const m = /"message":"listening".*?"url":"([^"]+)"/.exec(out);
      if (m?.[1]) {
        clearTimeout(t);
        proc.stdout?.off('data', check);
        resolve(m[1]);
      }
    };
    proc.stdout?.on('data', check);
    void exited.then((code) => {
      clearTimeout(t);
      reject(new Error(`server exited with ${code} before listening:\n${out}\n${err}`));
    });
  });
  return {
    url,
    proc,
    output: () => out,
    exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
