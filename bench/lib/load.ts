/**
 * Load generation: autocannon (programmatic) for throughput and fixed-rate latency, and a
 * small keep-alive http client for exact request counts and checks.
 */
import { Agent, request } from 'node:http';
import autocannon from 'autocannon';

/** Latency percentiles in milliseconds (microsecond resolution). */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** One load run, summarized. */
export interface LoadResult {
  title: string;
  url: string;
  connections: number;
  /** Seconds of measured load. */
  durationS: number;
  /** Target rate for fixed-rate runs. */
  overallRate: number | undefined;
  requests: number;
  rps: number;
  /** Percentiles over the exact response times of 2xx responses. */
  latency: Percentiles;
  /** autocannon's own (whole-millisecond) histogram, for cross-checking. */
  autocannonLatency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  /** Cores each process used during the run (see CpuMeter). */
  cpu?: Record<string, number>;
  /**
   * Fixed-rate runs only: the target could not keep up (more than a second of requests in
   * flight), so sending stopped early; the latencies are those of an overloaded service.
   */
  saturated?: boolean;
}

export interface LoadOptions {
  title: string;
  url: string;
  connections: number;
  durationS: number;
  overallRate?: number;
  headers: Record<string, string>;
  body: string;
  /** A new body for every request (unique inputs: cache misses); `body` is then unused. */
  makeBody?: () => string;
  /** Short unmeasured run first, same settings. */
  warmupS?: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

export function percentiles(values: number[]): Percentiles {
  const a = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of a) sum += v;
  const r = (n: number) => Math.round(n * 1000) / 1000;
  return {
    p50: r(percentile(a, 0.5)),
    p90: r(percentile(a, 0.9)),
    p99: r(percentile(a, 0.99)),
    p999: r(percentile(a, 0.999)),
    max: r(a.length ? (a[a.length - 1] as number) : Number.NaN),
    mean: r(a.length ? sum / a.length : Number.NaN),
  };
}

function fire(opts: LoadOptions, durationS: number, record: boolean): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const times: number[] = [];
    const inst = autocannon(
      {
        url: opts.url,
        method: 'POST',
        connections: opts.connections,
        duration: durationS,
        headers: opts.headers,
        body: opts.body,
        ...(opts.makeBody
          ? {
              requests: [
                {
                  method: 'POST' as const,
                  setupRequest: (req: autocannon.Request) => ({
                    ...req,
                    body: opts.makeBody?.() ?? opts.body,
                  }),
                },
              ],
            }
          : {}),
        timeout: 10,
        ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
      },
      (err, res) => {
        if (err) {
          reject(err);
          return;
        }
        const statusCodes: Record<string, number> = {};
        for (const [code, v] of Object.entries(res.statusCodeStats ?? {})) statusCodes[code] = v.count ?? 0;
        resolve({
          title: opts.title,
          url: opts.url,
          connections: opts.connections,
          durationS: res.duration,
          overallRate: opts.overallRate,
          requests: res.requests.total,
          rps: Math.round(res.requests.total / res.duration),
          latency: percentiles(times),
          autocannonLatency: { p50: res.latency.p50, p99: res.latency.p99 },
          errors: res.errors,
          timeouts: res.timeouts,
          non2xx: res.non2xx,
          statusCodes,
        });
      },
    );
    if (record) {
      inst.on('response', (_client, statusCode, _bytes, responseTime) => {
        if (statusCode >= 200 && statusCode < 300) times.push(responseTime);
      });
    }
  });
}

/** Warm-up (unmeasured) then the measured run. */
export async function runLoad(opts: LoadOptions, around?: { begin(): void; end(): Record<string, number> }) {
  if (opts.warmupS && opts.warmupS > 0) await fire(opts, opts.warmupS, false);
  around?.begin();
  const r = await fire(opts, opts.durationS, true);
  if (around) r.cpu = around.end();
  return r;
}

/** A keep-alive agent for the exact-count client. */
export function keepAliveAgent(maxSockets = 64): Agent {
  return new Agent({ keepAlive: true, maxSockets });
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  ms: number;
}

/** One request over `agent`; the whole body is read. */
export function httpRequest(
  agent: Agent,
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      url,
      {
        agent,
        method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
        headers:
          opts.body === undefined ? opts.headers : { 'content-type': 'application/json', ...opts.headers },
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            ms: performance.now() - t0,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Exactly `count` requests, `concurrency` at a time; `makeBody(i)` gives each body.
 * Returns the status counts and the first few failures.
 */
export async function runCount(
  agent: Agent,
  url: string,
  headers: Record<string, string>,
  count: number,
  concurrency: number,
  makeBody: (i: number) => string,
  onResponse?: (r: HttpResponse, i: number) => void,
): Promise<{ statusCodes: Record<string, number>; errors: string[]; ms: number[] }> {
  const statusCodes: Record<string, number> = {};
  const errors: string[] = [];
  const ms: number[] = [];
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      try {
        const r = await httpRequest(agent, url, { headers, body: makeBody(i) });
        statusCodes[r.status] = (statusCodes[r.status] ?? 0) + 1;
        ms.push(r.ms);
        if (r.status !== 200 && errors.length < 5) errors.push(`${r.status} ${r.body.slice(0, 200)}`);
        onResponse?.(r, i);
      } catch (err) {
        statusCodes['error'] = (statusCodes['error'] ?? 0) + 1;
        if (errors.length < 5) errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { statusCodes, errors, ms };
}

/**
 * Open-loop pacing: call i of `op` starts at t0 + i / rate whatever earlier calls do, for
 * `durationS`; resolves once every call has settled (`op` must not reject). When more than a
 * second of calls is unsettled the target cannot keep up: sending stops (`saturated`) rather
 * than grow an unbounded backlog, which would measure only its own queue.
 */
export async function paceOpenLoop(
  rate: number,
  durationS: number,
  op: () => Promise<void>,
): Promise<{ sent: number; maxLagMs: number; saturated: boolean }> {
  const total = Math.round(rate * durationS);
  const interval = 1000 / rate;
  const inflight = new Set<Promise<void>>();
  let sent = 0;
  let maxLagMs = 0;
  let saturated = false;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (inflight.size > rate) {
        saturated = true;
        resolve();
        return;
      }
      while (sent < total && t0 + sent * interval <= now) {
        maxLagMs = Math.max(maxLagMs, now - (t0 + sent * interval));
        const p = op();
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, Math.max(0, t0 + sent * interval - performance.now()));
    };
    tick();
  });
  await Promise.all(inflight);
  return { sent, maxLagMs, saturated };
}

/**
 * Open-loop constant rate: request i goes out at t0 + i / rate whatever the answers do
 * (autocannon's `overallRate` instead lets each connection fire its per-second quota
 * back to back at the start of every second, i.e. bursts). Latency is measured from the
 * moment a request is handed to the socket.
 */
export async function runPaced(
  opts: {
    title: string;
    url: string;
    rate: number;
    durationS: number;
    headers: Record<string, string>;
    body: string;
    maxSockets?: number;
    warmupS?: number;
    onResponse?: (r: HttpResponse) => void;
  },
  around?: { begin(): void; end(): Record<string, number> },
): Promise<LoadResult & { maxSendLagMs: number }> {
  const agent = keepAliveAgent(opts.maxSockets ?? 64);
  const once = async (durationS: number, record: boolean) => {
    const times: number[] = [];
    const statusCodes: Record<string, number> = {};
    let errors = 0;
    let timeouts = 0;
    const send = () =>
      httpRequest(agent, opts.url, { headers: opts.headers, body: opts.body }).then(
        (r) => {
          statusCodes[r.status] = (statusCodes[r.status] ?? 0) + 1;
          if (record && r.status >= 200 && r.status < 300) times.push(r.ms);
          if (record) opts.onResponse?.(r);
        },
        (err: Error) => {
          errors++;
          if (err.message.startsWith('timeout')) timeouts++;
        },
      );
    const t0 = performance.now();
    const { sent, maxLagMs: maxLag, saturated } = await paceOpenLoop(opts.rate, durationS, send);
    const wall = (performance.now() - t0) / 1000;
    let non2xx = 0;
    for (const [code, n] of Object.entries(statusCodes)) if (!code.startsWith('2')) non2xx += n;
    return {
      title: opts.title,
      url: opts.url,
      connections: opts.maxSockets ?? 64,
      durationS: Math.round(wall * 100) / 100,
      overallRate: opts.rate,
      requests: sent,
      rps: Math.round(sent / wall),
      latency: percentiles(times),
      autocannonLatency: { p50: Number.NaN, p99: Number.NaN },
      errors,
      timeouts,
      non2xx,
      statusCodes,
      maxSendLagMs: Math.round(maxLag * 1000) / 1000,
      ...(saturated ? { saturated } : {}),
    };
  };
  try {
    if (opts.warmupS && opts.warmupS > 0) await once(opts.warmupS, false);
    around?.begin();
    const r = await once(opts.durationS, true);
    return around ? { ...r, cpu: around.end() } : r;
  } finally {
    agent.destroy();
  }
}
