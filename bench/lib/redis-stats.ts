/**
 * Redis commands per request: `INFO commandstats` deltas (which also count the commands a Lua
 * script runs inside Redis) and a MONITOR tap that tells the gateway's own commands apart
 * from those script-internal calls. Raw sockets: a client library in monitor mode has its
 * own ideas about replies, and nothing here needs more than two commands.
 */
import { connect, type Socket } from 'node:net';

export type CommandCounts = Record<string, number>;

function parseCommandStats(info: string): CommandCounts {
  const out: CommandCounts = {};
  for (const line of info.split('\r\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (m) out[m[1] as string] = Number(m[2]);
  }
  return out;
}

function readsProcessed(stats: string): number {
  const m = /total_reads_processed:(\d+)/.exec(stats);
  if (!m?.[1]) throw new Error('redis INFO stats has no total_reads_processed (Redis >= 6 needed)');
  return Number(m[1]);
}

export interface RoundTripCounts {
  /** From INFO commandstats: every command executed, script-internal ones included. */
  commandstats: CommandCounts;
  /** From MONITOR: commands the gateway sent over its connection. */
  client: CommandCounts;
  /** From MONITOR: commands Lua scripts ran inside Redis. */
  lua: CommandCounts;
  /**
   * From INFO stats `total_reads_processed` (less the tap's own INFO calls): read events Redis
   * processed, i.e. network exchanges. Commands written in the same tick (ioredis
   * auto-pipelining) arrive in one read, so this is the round-trip count.
   */
  reads: number;
}

function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** `INFO <section>` over a fresh connection (one bulk-string reply). */
async function info(host: string, port: number, section = 'commandstats'): Promise<string> {
  const s = await open(host, port);
  try {
    return await new Promise<string>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const nl = buf.indexOf('\r\n');
        if (nl === -1) return;
        const head = buf.subarray(0, nl).toString('latin1');
        if (!head.startsWith('$')) {
          reject(new Error(`redis INFO: ${head}`));
          return;
        }
        const len = Number(head.slice(1));
        if (buf.length >= nl + 2 + len) resolve(buf.subarray(nl + 2, nl + 2 + len).toString('utf8'));
      });
      s.once('error', reject);
      s.write(`INFO ${section}\r\n`);
    });
  } finally {
    s.destroy();
  }
}

/** Taps one Redis; `measure(fn)` returns the command counts caused while `fn` ran. */
export class RedisTap {
  private readonly host: string;
  private readonly port: number;

  constructor(url: string) {
    const u = new URL(url);
    this.host = u.hostname;
    this.port = Number(u.port || 6379);
  }

  async measure(fn: () => Promise<void>, settleMs = 500): Promise<RoundTripCounts> {
    const client: CommandCounts = {};
    const lua: CommandCounts = {};
    const mon = await open(this.host, this.port);
    let pending = '';
    let onReady: () => void = () => {};
    const ready = new Promise<void>((resolve) => {
      onReady = resolve;
    });
    // Lines look like: +1700000000.123456 [0 127.0.0.1:5555] "evalsha" "abc" ... or [0 lua] "get" ...
    mon.setEncoding('utf8');
    mon.on('data', (text: string) => {
      pending += text;
      let nl = pending.indexOf('\r\n');
      while (nl !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 2);
        const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
        if (m) {
          const cmd = (m[2] as string).toLowerCase();
          const bucket = m[1] === 'lua' ? lua : client;
          bucket[cmd] = (bucket[cmd] ?? 0) + 1;
        } else if (line === '+OK') onReady();
        nl = pending.indexOf('\r\n');
      }
    });
    mon.write('MONITOR\r\n');
    await ready;
    try {
      // What the tap's own INFO calls add to the read count (each connection's command and its
      // close are read events), measured around nothing, then subtracted from the real window.
      const r0 = readsProcessed(await info(this.host, this.port, 'stats'));
      await info(this.host, this.port);
      const own = readsProcessed(await info(this.host, this.port, 'stats')) - r0;
      const before = parseCommandStats(await info(this.host, this.port));
      const readsBefore = readsProcessed(await info(this.host, this.port, 'stats'));
      await fn();
      // Reconciliation runs after the response went out; give it time to land.
      await new Promise((r) => setTimeout(r, settleMs));
      const after = parseCommandStats(await info(this.host, this.port));
      const reads = readsProcessed(await info(this.host, this.port, 'stats')) - readsBefore - own;
      const commandstats: CommandCounts = {};
      for (const [k, v] of Object.entries(after)) {
        const d = v - (before[k] ?? 0);
        if (d > 0) commandstats[k] = d;
      }
      // INFO is ours (and client libraries' ready checks), never the gateway's hot path.
      delete commandstats['info'];
      delete client['info'];
      return { commandstats, client, lua, reads };
    } finally {
      mon.destroy();
    }
  }

  /**
   * Sequential PINGs over one connection: what a single loopback round trip to another
   * process costs on this machine (wake-ups included), the floor under any Redis hop.
   */
  async pingMs(count = 1000): Promise<number[]> {
    const s = await open(this.host, this.port);
    s.setNoDelay(true);
    const times: number[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        let t0 = 0;
        let pending = '';
        const next = () => {
          if (times.length === count) {
            resolve();
            return;
          }
          t0 = performance.now();
          s.write('PING\r\n');
        };
        s.setEncoding('latin1');
        s.on('data', (text: string) => {
          pending += text;
          while (pending.startsWith('+PONG\r\n')) {
            pending = pending.slice(7);
            times.push(performance.now() - t0);
            next();
          }
        });
        s.once('error', reject);
        next();
      });
    } finally {
      s.destroy();
    }
    return times;
  }
}
