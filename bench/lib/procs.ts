/**
 * Child processes of the benchmark: spawn, wait until ready, read their CPU and memory from
 * /proc, and stop every one of them at the end, on an error and on SIGINT/SIGTERM. Nothing
 * the benchmark starts may outlive it.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** A process the benchmark started. */
export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** The tail of stdout + stderr, for error messages. */
  output(): string;
  /** Resolves with the exit code (or the signal name) once the process ended. */
  readonly exited: Promise<number | string | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

interface Stoppable {
  name: string;
  /** What `forget` matches on. */
  ref?: unknown;
  stop(): Promise<void>;
  /** Last-resort synchronous kill (process exit). */
  kill(): void;
}

const OUTPUT_TAIL = 16_384;
const registry: Stoppable[] = [];
let handlersInstalled = false;
let stoppingAll: Promise<void> | null = null;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\nbench: ${signal}: stopping everything it started...`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Whatever happens, no child survives the benchmark process.
  process.on('exit', () => {
    for (const s of registry) s.kill();
  });
}

/** Register something to stop at the end (a redis-server handle, a mock). */
export function track(name: string, stop: () => Promise<void>, kill: () => void = () => {}): void {
  installHandlers();
  registry.push({ name, stop, kill });
}

/** Stop everything registered, most recent first. Safe to call more than once. */
export function stopAll(): Promise<void> {
  stoppingAll ??= (async () => {
    while (registry.length > 0) {
      const s = registry.pop() as Stoppable;
      try {
        await s.stop();
      } catch (err) {
        console.error(`bench: stopping ${s.name} failed: ${(err as Error).message}`);
        s.kill();
      }
    }
  })().finally(() => {
    stoppingAll = null;
  });
  return stoppingAll;
}

export interface SpawnChildOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve once stdout matches this (the match is returned). */
  ready?: RegExp;
  readyTimeoutMs?: number;
  /** Where stdout goes once ready: kept as a tail (default) or discarded at the OS level. */
  stdout?: 'tail' | 'devnull';
}

/**
 * Spawn a child and (optionally) wait until its stdout matches `ready`. With `stdout:
 * 'devnull'` the child writes straight into /dev/null (no pipe, no parsing cost here), so
 * `ready` cannot be used and the caller polls instead.
 */
export async function spawnChild(
  name: string,
  command: string,
  args: string[],
  opts: SpawnChildOptions = {},
): Promise<{ child: Child; match: RegExpExecArray | null }> {
  installHandlers();
  const toNull = opts.stdout === 'devnull';
  if (toNull && opts.ready) throw new Error(`${name}: 'ready' needs stdout piped`);
  const spawnOpts: SpawnOptions = {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', toNull ? 'ignore' : 'pipe', 'pipe'],
  };
  const proc = spawn(command, args, spawnOpts);
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  let gone = false;
  const exited = new Promise<number | string | null>((resolve) => {
    proc.once('exit', (code, signal) => {
      gone = true;
      resolve(code ?? signal);
    });
    proc.once('error', (err) => {
      gone = true;
      out += `\nspawn error: ${err.message}`;
      resolve(null);
    });
  });
  let stopping: Promise<void> | null = null;
  const stop = (graceMs = 10_000): Promise<void> => {
    stopping ??= (async () => {
      if (gone) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => {
        if (!gone) proc.kill('SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(t);
    })();
    return stopping;
  };
  const child: Child = {
    name,
    pid: proc.pid ?? -1,
    proc,
    output: () => out,
    exited,
    stop,
  };
  // A child that is gone needs no stopping at the end (it may be restarted with other settings).
  void exited.then(() => forget(child));
  registry.push({
    name,
    ref: child,
    stop: () => stop(),
    kill: () => {
      if (!gone) proc.kill('SIGKILL');
    },
  });
  if (!opts.ready) return { child, match: null };
  const ready = opts.ready;
  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`${name} not ready within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const check = () => {
      const m = ready.exec(out);
      if (m) {
        cleanup();
        resolve(m);
      }
    };
    const onExit = () => {
      cleanup();
      reject(new Error(`${name} exited before it was ready:\n${out}`));
    };
    const cleanup = () => {
      clearTimeout(t);
      proc.stdout?.off('data', check);
      proc.off('exit', onExit);
    };
    proc.stdout?.on('data', check);
    proc.once('exit', onExit);
    check();
  });
  return { child, match };
}

/** Remove a child from the stop list (done by itself when the child exits). */
function forget(child: Child): void {
  const i = registry.findIndex((s) => s.ref === child);
  if (i >= 0) registry.splice(i, 1);
}

/** Resident set size of a process in KiB (VmRSS), or NaN when it is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Clock ticks per second for /proc times (USER_HZ; 100 on every Linux this runs on). */
const TICKS = 100;

/** CPU seconds (user + system, all threads) a process used so far, or NaN when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself contain spaces and parentheses.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(rest[11]) + Number(rest[12])) / TICKS;
  } catch {
    return Number.NaN;
  }
}

/** Busy CPU seconds of the whole machine (all cores) so far, from /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - idle) / TICKS;
}

/** The 1-minute load average. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/**
 * CPU used by each named process and by the machine as a whole over a window, so a result
 * says who had the two cores: gateway, mock, Redis, the load generator, and anybody else.
 */
export class CpuMeter {
  private readonly start = new Map<string, number>();
  private machine0 = 0;
  private self0: NodeJS.CpuUsage = process.cpuUsage();
  private t0 = 0;

  /** A name may stand for several processes (their CPU is summed). */
  constructor(private readonly pids: () => Record<string, number | number[]>) {}

  begin(): void {
    this.start.clear();
    for (const [name, pid] of Object.entries(this.pids())) this.start.set(name, cpuOf(pid));
    this.machine0 = machineBusySeconds();
    this.self0 = process.cpuUsage();
    this.t0 = performance.now();
  }

  /** Cores used (CPU seconds per wall second) by each process, `loadgen` and `other`. */
  end(): Record<string, number> {
    const wall = (performance.now() - this.t0) / 1000;
    const out: Record<string, number> = {};
    let ours = 0;
    for (const [name, pid] of Object.entries(this.pids())) {
      const s = this.start.get(name);
      const used = cpuOf(pid) - (s ?? Number.NaN);
      if (Number.isFinite(used)) {
        out[name] = round2(used / wall);
        ours += used;
      }
    }
    const self = process.cpuUsage(this.self0);
    const selfSec = (self.user + self.system) / 1e6;
    out['loadgen'] = round2(selfSec / wall);
    ours += selfSec;
    const machine = machineBusySeconds() - this.machine0;
    out['other'] = round2(Math.max(0, machine - ours) / wall);
    out['machine'] = round2(machine / wall);
    return out;
  }
}

function cpuOf(pid: number | number[]): number {
  return Array.isArray(pid) ? pid.reduce((sum, p) => sum + cpuSeconds(p), 0) : cpuSeconds(pid);
}

/** Two decimals. */
export function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * For a stand-in process of the benchmark: run `stop` and exit on SIGTERM/SIGINT, or when the
 * parent goes away (an orphan of a parent killed with SIGKILL notices by polling, as it has no
 * IPC channel), and stay alive until then.
 */
export function serveUntilStopped(stop: () => Promise<unknown>): void {
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    void stop().finally(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) shutdown();
  }, 1000).unref();
  setInterval(() => {}, 1 << 30);
}
