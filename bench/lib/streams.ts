/**
 * Many concurrent slow SSE streams over raw node:http keep-alive connections (one socket per
 * stream), counting chunks and telling clean ends (`data: [DONE]`) from failures.
 */
import { Agent, request } from 'node:http';

export interface StreamStats {
  opened: number;
  /** Streams that got a first data chunk. */
  firstChunk: number;
  /** Streams that ended with `data: [DONE]`. */
  completed: number;
  failed: number;
  /** Status codes other than 200, and socket errors. */
  failures: Record<string, number>;
  firstErrors: string[];
  /** Streams open right now: first chunk received, not ended yet. */
  active: number;
  /** Data chunks received over all streams (content, finish, usage). */
  chunks: number;
  /** Time to first data chunk per stream, ms. */
  ttftMs: number[];
}

export interface StreamRun {
  stats: StreamStats;
  /** Resolves once every stream got its first chunk or failed. */
  allStarted: Promise<void>;
  /** Resolves once every stream ended (cleanly or not). */
  allEnded: Promise<void>;
  /** Stop every stream still open (bounded shutdown). */
  abort(): void;
  agent: Agent;
}

/**
 * Open `count` streams spread evenly over `rampMs`; `body(i)` gives each request body.
 */
export function openStreams(opts: {
  url: string;
  headers: Record<string, string>;
  count: number;
  rampMs: number;
  body: (i: number) => string;
}): StreamRun {
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const stats: StreamStats = {
    opened: 0,
    firstChunk: 0,
    completed: 0,
    failed: 0,
    failures: {},
    firstErrors: [],
    active: 0,
    chunks: 0,
    ttftMs: [],
  };
  let started = 0;
  let ended = 0;
  let resolveStarted!: () => void;
  let resolveEnded!: () => void;
  const allStarted = new Promise<void>((r) => {
    resolveStarted = r;
  });
  const allEnded = new Promise<void>((r) => {
    resolveEnded = r;
  });
  const requests = new Set<ReturnType<typeof request>>();
  const timers: NodeJS.Timeout[] = [];

  const markStarted = () => {
    if (++started === opts.count) resolveStarted();
  };
  const fail = (key: string, msg: string, wasStarted: boolean) => {
    stats.failed++;
    stats.failures[key] = (stats.failures[key] ?? 0) + 1;
    if (stats.firstErrors.length < 5) stats.firstErrors.push(msg);
    if (!wasStarted) markStarted();
    if (++ended === opts.count) resolveEnded();
  };

  const open = (i: number) => {
    const t0 = performance.now();
    let gotFirst = false;
    let done = false;
    let finished = false;
    const finish = (ok: boolean, key: string, msg: string) => {
      if (finished) return;
      finished = true;
      requests.delete(req);
      if (gotFirst) stats.active--;
      if (ok) {
        stats.completed++;
        if (++ended === opts.count) resolveEnded();
      } else fail(key, msg, gotFirst);
    };
    const req = request(
      opts.url,
      { agent, method: 'POST', headers: { 'content-type': 'application/json', ...opts.headers } },
      (res) => {
        if (res.statusCode !== 200) {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString('utf8');
          });
          res.on('end', () =>
            finish(false, String(res.statusCode), `${res.statusCode} ${body.slice(0, 200)}`),
          );
          res.on('error', () => finish(false, String(res.statusCode), `${res.statusCode}`));
          return;
        }
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (text: string) => {
          buf += text;
          let cut = buf.indexOf('\n\n');
          while (cut !== -1) {
            const event = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            if (event.startsWith('data: ')) {
              if (event === 'data: [DONE]') done = true;
              else {
                stats.chunks++;
                if (!gotFirst) {
                  gotFirst = true;
                  stats.firstChunk++;
                  stats.active++;
                  stats.ttftMs.push(performance.now() - t0);
                  markStarted();
                }
              }
            }
            cut = buf.indexOf('\n\n');
          }
        });
        res.on('end', () => finish(done, 'no [DONE]', 'stream ended without [DONE]'));
        res.on('error', (err) => finish(false, 'response error', err.message));
        res.on('close', () => finish(done, 'closed early', 'connection closed before [DONE]'));
      },
    );
    requests.add(req);
    req.on('error', (err) => finish(false, (err as NodeJS.ErrnoException).code ?? 'error', err.message));
    req.end(opts.body(i));
    stats.opened++;
  };

  const step = opts.count > 1 ? opts.rampMs / (opts.count - 1) : 0;
  // Batches of streams per timer tick (a timer per stream would skew the ramp on a busy box).
  const perTick = Math.max(1, Math.ceil(opts.count / Math.max(1, opts.rampMs / 10)));
  let i = 0;
  const tick = () => {
    for (let k = 0; k < perTick && i < opts.count; k++) open(i++);
    if (i < opts.count) timers.push(setTimeout(tick, Math.max(1, step * perTick)));
  };
  tick();

  return {
    stats,
    allStarted,
    allEnded,
    agent,
    abort: () => {
      for (const t of timers) clearTimeout(t);
      for (const r of requests) r.destroy();
      agent.destroy();
    },
  };
}
