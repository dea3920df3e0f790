/**
 * `npm run bench`: Tollgate's benchmarks, side by side in one run on this machine (127.0.0.1
 * only, every process it starts stopped at the end). Each gateway is a process of its own, so
 * the CPU it spends per request is its own (utime + stime from /proc): on a shared two-core box
 * RPS moves with whatever else runs, CPU per request hardly does.
 *
 * Side by side: the mock upstream called directly, the floor (bench/floor-relay.ts: Fastify +
 * undici, no features), Portkey, Tollgate as built now ("after"), and, with `--baseline DIR`, an
 * earlier commit's build in another worktree ("before"), for changes on the hot path.
 *
 * Phases (all by default; `--phases a,b` picks):
 *   throughput  non-streaming chat, autocannon, 50 connections
 *   latency     added latency at a paced 500 RPS (open loop), three rounds
 *   cache       cache hits at a paced 100 RPS
 *   embeddings  a batch of 16 short inputs: cache miss, hit and bypass, beside the direct upstream
 *   streams     CPU per streamed chunk: OpenAI-compatible and Bedrock upstreams
 *   memory      RSS per open stream with 2,000 slow streams
 *   redis       Redis round trips per request (bypass, miss + store, hit)
 *   async       POST /v1/chat/async at a paced 200/s (the service alone, as in AWS)
 *
 * Flags: --skip-build, --no-portkey, --baseline <dir>, --phases <list>. Results: the tables on
 * stdout and bench/results/run-<date>.json; docs/benchmarks.md is written from them by hand.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { httpRequest, keepAliveAgent, type LoadResult, runCount, runLoad, runPaced } from './lib/load';
import { CpuMeter, loadAverage, round2, rssKiB, sleep, stopAll } from './lib/procs';
import { RedisTap } from './lib/redis-stats';
import {
  createBenchKey,
  portkeyHeaders,
  ROOT,
  resolvePortkey,
  startBedrock,
  startFloor,
  startPortkey,
  startRedis,
  startStack,
  startTollgate,
  startUpstream,
} from './lib/services';
import { openStreams } from './lib/streams';

const run = promisify(execFile);
const ADMIN_KEY = `bench-admin-${process.pid}`;
const PHASES = [
  'throughput',
  'latency',
  'cache',
  'embeddings',
  'streams',
  'memory',
  'redis',
  'async',
] as const;
type Phase = (typeof PHASES)[number];

/** One gateway (or the mock itself) the load goes to. */
interface Target {
  name: string;
  /** Base URL (no path). */
  url: string;
  pid: number;
  headers: Record<string, string>;
  /** Model ids this target knows. */
  chat: string;
}

interface Ctx {
  agent: Agent;
  meter: CpuMeter;
  /** The processes the meter reads; `gateway` is switched to the target under load. */
  pids: Record<string, number | number[]>;
  mockPort: number;
  direct: Target;
  floor: Target;
  portkey: Target | null;
  before: Target | null;
  after: Target;
  tables: string[];
  results: Record<string, unknown>;
}

function log(msg: string): void {
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

function chatBody(model: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    model,
    messages: [{ role: 'user', content: 'Hello! Say something short.' }],
    temperature: 0.7,
    max_tokens: 16,
    ...extra,
  });
}

const SIXTEEN = Array.from({ length: 16 }, (_, i) => `short input number ${i} for the embeddings benchmark`);
let unique = 0;
const embeddingsBody = (model: string, input = SIXTEEN) =>
  JSON.stringify({ model, input, encoding_format: 'float' });

/** CPU milliseconds a process spent per unit of work over the measured window. */
function msPer(cores: number | undefined, seconds: number, units: number): number {
  return cores === undefined || units === 0 ? Number.NaN : round2((cores * seconds * 1000) / units);
}

function table(title: string, head: string[], rows: (string | number)[][]): string {
  const fmt = (v: string | number) => (typeof v === 'number' ? (Number.isFinite(v) ? String(v) : 'n/a') : v);
  return [
    `### ${title}`,
    '',
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(fmt).join(' | ')} |`),
    '',
  ].join('\n');
}

/** Point the meter's `gateway` at `t` and measure `fn`. */
function onTarget<T>(ctx: Ctx, t: Target, fn: () => Promise<T>): Promise<T> {
  ctx.pids['gateway'] = t.pid;
  return fn();
}

/** autocannon, 50 connections, 2 s warm-up, 8 s measured. */
function load(
  ctx: Ctx,
  t: Target,
  path: string,
  body: string,
  extra: { makeBody?: () => string; headers?: Record<string, string> } = {},
) {
  return onTarget(ctx, t, () =>
    runLoad(
      {
        title: t.name,
        url: `${t.url}${path}`,
        connections: 50,
        durationS: 8,
        warmupS: 2,
        headers: { ...t.headers, ...extra.headers },
        body,
        ...(extra.makeBody ? { makeBody: extra.makeBody } : {}),
      },
      ctx.meter,
    ),
  );
}

function row(r: LoadResult, units = r.requests): (string | number)[] {
  const cpu = r.cpu ?? {};
  return [
    r.title,
    r.rps,
    r.latency.p50,
    r.latency.p99,
    msPer(cpu['gateway'], r.durationS, units),
    msPer(cpu['mock'], r.durationS, units),
    r.non2xx + r.errors,
  ];
}

const LOAD_HEAD = ['target', 'RPS', 'p50 ms', 'p99 ms', 'gateway CPU ms/req', 'mock CPU ms/req', 'errors'];

/** Every target in the order of the tables, skipping the missing ones. */
function targets(ctx: Ctx, ...which: Array<'direct' | 'floor' | 'portkey' | 'before' | 'after'>): Target[] {
  return which.map((w) => ctx[w]).filter((t): t is Target => t !== null);
}

// --- phases ------------------------------------------------------------------------------------

async function throughput(ctx: Ctx): Promise<void> {
  const out: LoadResult[] = [];
  for (const t of targets(ctx, 'direct', 'floor', 'portkey', 'before', 'after')) {
    const r = await load(ctx, t, '/v1/chat/completions', chatBody(t.chat));
    log(`throughput ${t.name}: ${r.rps} RPS, p99 ${r.latency.p99} ms`);
    out.push(r);
  }
  ctx.results['throughput'] = out;
  ctx.tables.push(
    table(
      'Throughput: non-streaming chat, 50 connections, 8 s',
      LOAD_HEAD,
      out.map((r) => row(r)),
    ),
  );
}

async function paced(ctx: Ctx, t: Target, rate: number, body: string, durationS = 10) {
  return onTarget(ctx, t, () =>
    runPaced(
      {
        title: t.name,
        url: `${t.url}/v1/chat/completions`,
        rate,
        durationS,
        warmupS: 1,
        headers: t.headers,
        body,
      },
      ctx.meter,
    ),
  );
}

async function latency(ctx: Ctx): Promise<void> {
  const rows: (string | number)[][] = [];
  const rounds: unknown[] = [];
  for (let round = 1; round <= 3; round++) {
    const direct = await paced(ctx, ctx.direct, 500, chatBody(ctx.direct.chat));
    for (const t of targets(ctx, 'floor', 'before', 'after')) {
      const r = await paced(ctx, t, 500, chatBody(t.chat));
      rows.push([
        round,
        t.name,
        r.saturated ? 'saturated' : r.rps,
        round2(r.latency.p50 - direct.latency.p50),
        round2(r.latency.p99 - direct.latency.p99),
        round2(r.latency.p999 - direct.latency.p999),
        msPer(r.cpu?.['gateway'], r.durationS, r.requests),
      ]);
      rounds.push({ round, target: t.name, direct: direct.latency, gateway: r.latency, cpu: r.cpu });
    }
    log(`latency round ${round} done`);
  }
  ctx.results['latency'] = rounds;
  ctx.tables.push(
    table(
      'Added latency over the direct upstream at a paced 500 RPS (open loop, 10 s per round)',
      ['round', 'target', 'RPS', '+p50 ms', '+p99 ms', '+p99.9 ms', 'gateway CPU ms/req'],
      rows,
    ),
  );
}

async function cache(ctx: Ctx): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const t of targets(ctx, 'before', 'after')) {
    const body = chatBody(t.chat, {
      temperature: 0,
      messages: [{ role: 'user', content: `cache me (${t.name})` }],
    });
    const prime = await httpRequest(ctx.agent, `${t.url}/v1/chat/completions`, { headers: t.headers, body });
    if (prime.status !== 200) throw new Error(`priming the cache on ${t.name}: ${prime.status}`);
    for (const rate of [100, 500]) {
      let hits = 0;
      let seen = 0;
      const r = await onTarget(ctx, t, () =>
        runPaced(
          {
            title: t.name,
            url: `${t.url}/v1/chat/completions`,
            rate,
            durationS: 8,
            warmupS: 1,
            headers: t.headers,
            body,
            onResponse: (res) => {
              seen++;
              if (res.headers['x-tollgate-cache'] === 'HIT') hits++;
            },
          },
          ctx.meter,
        ),
      );
      rows.push([
        t.name,
        rate,
        r.latency.p50,
        r.latency.p99,
        msPer(r.cpu?.['gateway'], r.durationS, r.requests),
        `${hits}/${seen}`,
      ]);
    }
  }
  ctx.results['cache'] = rows;
  ctx.tables.push(
    table(
      'Cache hits (paced, 8 s)',
      ['target', 'rate', 'p50 ms', 'p99 ms', 'gateway CPU ms/req', 'HIT'],
      rows,
    ),
  );
}

async function embeddings(ctx: Ctx): Promise<void> {
  const out: LoadResult[] = [];
  const path = '/v1/embeddings';
  out.push(await load(ctx, ctx.direct, path, embeddingsBody('text-embedding-3-small')));
  out.push(await load(ctx, ctx.floor, path, embeddingsBody('text-embedding-3-small')));
  const a = ctx.after;
  const miss = await load(ctx, a, path, '', {
    // 16 inputs never seen before on every request: 16 lookups, the upstream call, 16 stores.
    makeBody: () =>
      embeddingsBody(
        'embed-mock',
        SIXTEEN.map((s) => `${s} #${++unique}`),
      ),
  });
  miss.title = `${a.name}, cache miss`;
  out.push(miss);
  await httpRequest(ctx.agent, `${a.url}${path}`, { headers: a.headers, body: embeddingsBody('embed-mock') });
  const hit = await load(ctx, a, path, embeddingsBody('embed-mock'));
  hit.title = `${a.name}, cache hit`;
  out.push(hit);
  const bypass = await load(ctx, a, path, embeddingsBody('embed-mock'), {
    headers: { 'cache-control': 'no-store' },
  });
  bypass.title = `${a.name}, cache bypassed`;
  out.push(bypass);
  ctx.results['embeddings'] = out;
  ctx.tables.push(
    table(
      'Embeddings: 16 short inputs per request, 50 connections, 8 s',
      LOAD_HEAD,
      out.map((r) => row(r)),
    ),
  );
}

/** `count` streams, `concurrency` at a time, counting SSE data events. */
function streamAll(
  agent: Agent,
  url: string,
  headers: Record<string, string>,
  body: string,
  count: number,
  concurrency: number,
) {
  let chunks = 0;
  let failed = 0;
  let next = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request(
        url,
        { agent, method: 'POST', headers: { ...headers, 'content-type': 'application/json' } },
        (res) => {
          if (res.statusCode !== 200) failed++;
          let tail = '';
          res.setEncoding('utf8');
          res.on('data', (text: string) => {
            const s = tail + text;
            const parts = s.split('\n\n');
            tail = parts.pop() ?? '';
            for (const p of parts) if (p.startsWith('data: ') && p !== 'data: [DONE]') chunks++;
          });
          res.on('end', resolve);
          res.on('error', () => {
            failed++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        failed++;
        resolve();
      });
      req.end(body);
    });
  const worker = async () => {
    while (next++ < count) await one();
  };
  return Promise.all(Array.from({ length: concurrency }, worker)).then(() => ({ chunks, failed }));
}

async function streams(ctx: Ctx, bedrockModel: string | null): Promise<void> {
  const rows: (string | number)[][] = [];
  const cases: Array<[Target, string, string]> = [
    [ctx.direct, 'fast-stream', 'mock direct (OpenAI SSE)'],
    [ctx.floor, 'fast-stream', 'floor relay'],
    ...(ctx.before
      ? [[ctx.before, 'fast-stream', `${ctx.before.name} -> openai`] as [Target, string, string]]
      : []),
    [ctx.after, 'fast-stream', `${ctx.after.name} -> openai`],
    ...(bedrockModel
      ? [[ctx.after, bedrockModel, `${ctx.after.name} -> bedrock (event stream)`] as [Target, string, string]]
      : []),
  ];
  for (const [t, model, title] of cases) {
    const body = JSON.stringify({
      model,
      messages: [{ role: 'user', content: 'stream please' }],
      stream: true,
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    await streamAll(agent, `${t.url}/v1/chat/completions`, t.headers, body, 16, 8);
    ctx.pids['gateway'] = t.pid;
    ctx.meter.begin();
    const t0 = performance.now();
    const r = await streamAll(agent, `${t.url}/v1/chat/completions`, t.headers, body, 120, 8);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = ctx.meter.end();
    agent.destroy();
    rows.push([title, 120, r.chunks, r.failed, round2(((cpu['gateway'] ?? 0) * seconds * 1e6) / r.chunks)]);
    log(`streams ${title}: ${r.chunks} chunks`);
  }
  ctx.results['streams'] = rows;
  ctx.tables.push(
    table(
      'Streaming: 120 streams of 200 chunks (1 ms apart), 8 at a time',
      ['path', 'streams', 'chunks received', 'failed', 'serving process CPU µs/chunk'],
      rows,
    ),
  );
}

async function memory(ctx: Ctx, startFresh: (which: 'before' | 'after') => Promise<Target>): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const which of ['before', 'after'] as const) {
    if (which === 'before' && !ctx.before) continue;
    const t = await startFresh(which);
    const models = Array.from({ length: 8 }, (_, i) => `slow-stream-${i}`);
    await sleep(1000);
    const idle = rssKiB(t.pid);
    const s = openStreams({
      url: `${t.url}/v1/chat/completions`,
      headers: t.headers,
      count: 2000,
      rampMs: 20_000,
      body: (i) =>
        JSON.stringify({
          model: models[i % models.length],
          messages: [{ role: 'user', content: `s${i}` }],
          stream: true,
        }),
    });
    await s.allStarted;
    const samples: number[] = [];
    for (let i = 0; i < 16; i++) {
      samples.push(rssKiB(t.pid));
      await sleep(500);
    }
    const open = s.stats.active;
    const rss = samples.sort((a, b) => a - b)[8] as number;
    await s.allEnded;
    rows.push([
      t.name,
      open,
      round2(idle / 1024),
      round2(rss / 1024),
      round2((rss - idle) / Math.max(1, open)),
      s.stats.completed,
      s.stats.failed,
    ]);
    s.agent.destroy();
    await stopTarget(t);
    log(`memory ${t.name}: ${open} open, ${round2((rss - idle) / Math.max(1, open))} KiB per stream`);
  }
  ctx.results['memory'] = rows;
  ctx.tables.push(
    table(
      'Memory: 2,000 slow streams (a token a second for 40 s), opened over 20 s',
      [
        'target',
        'open at once',
        'idle RSS MiB',
        'RSS MiB, all open',
        'KiB per open stream',
        'completed',
        'failed',
      ],
      rows,
    ),
  );
}

const stoppers = new Map<number, () => Promise<void>>();
async function stopTarget(t: Target): Promise<void> {
  await stoppers.get(t.pid)?.();
}

async function redisTrips(ctx: Ctx, redisUrl: string): Promise<void> {
  const tap = new RedisTap(redisUrl);
  const t = ctx.after;
  const url = `${t.url}/v1/chat/completions`;
  const rows: (string | number)[][] = [];
  const scenario = async (name: string, makeBody: (i: number) => string, prime?: string) => {
    if (prime) await httpRequest(ctx.agent, url, { headers: t.headers, body: prime });
    const n = 500;
    const counts = await tap.measure(async () => {
      await runCount(ctx.agent, url, t.headers, n, 1, makeBody);
    });
    rows.push([name, n, round2(counts.reads / n), JSON.stringify(counts.client)]);
  };
  await scenario('cache bypass (temperature 0.7)', () => chatBody(t.chat));
  await scenario('cache miss + store', (i) =>
    chatBody(t.chat, { temperature: 0, messages: [{ role: 'user', content: `unique ${i} ${Date.now()}` }] }),
  );
  const hit = chatBody(t.chat, { temperature: 0, messages: [{ role: 'user', content: 'the same prompt' }] });
  await scenario('cache hit', () => hit, hit);
  ctx.results['redis'] = rows;
  ctx.tables.push(
    table(
      'Redis round trips per request (one request at a time)',
      ['scenario', 'requests', 'round trips per request', 'commands sent'],
      rows,
    ),
  );
}

async function asyncSubmit(ctx: Ctx): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const t of targets(ctx, 'before', 'after')) {
    const r = await onTarget(ctx, t, () =>
      runPaced(
        {
          title: t.name,
          url: `${t.url}/v1/chat/async`,
          rate: 200,
          durationS: 8,
          warmupS: 1,
          headers: t.headers,
          body: chatBody(t.chat),
        },
        ctx.meter,
      ),
    );
    rows.push([
      t.name,
      r.rps,
      r.latency.p50,
      r.latency.p99,
      msPer(r.cpu?.['gateway'], r.durationS, r.requests),
      JSON.stringify(r.statusCodes),
    ]);
  }
  ctx.results['async'] = rows;
  ctx.tables.push(
    table(
      'Async submissions: POST /v1/chat/async at a paced 200/s (row + message, no worker)',
      ['target', 'RPS', 'p50 ms', 'p99 ms', 'gateway CPU ms/submit', 'statuses'],
      rows,
    ),
  );
}

// --- the run -------------------------------------------------------------------------------------

async function gitRevision(dir: string): Promise<string> {
  try {
    return (await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir })).stdout.trim();
  } catch {
    return 'unknown';
  }
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

async function main(): Promise<void> {
  const args = new Set(process.argv.slice(2));
  const phases = new Set<Phase>((argValue('--phases')?.split(',') as Phase[] | undefined) ?? PHASES);
  const baseline = argValue('--baseline');
  const started = Date.now();
  if (!args.has('--skip-build')) {
    log('npm run build');
    await run('npm', ['run', 'build'], { cwd: ROOT, timeout: 300_000 });
  }
  if (baseline && !existsSync(join(baseline, 'container', 'dist', 'server.js')))
    throw new Error(`--baseline ${baseline}: build it first (npm ci && npm run build there)`);

  const agent = keepAliveAgent(64);
  const portkeyScript = args.has('--no-portkey') ? null : resolvePortkey();
  portkeyScript?.catch(() => undefined);
  const [redis, stack, upstream, bedrock] = await Promise.all([
    startRedis(),
    startStack(),
    startUpstream({ streamListeners: 8, tokens: 40, shortTokens: 5, intervalMs: 1000 }),
    startBedrock([200]),
  ]);
  const floorProc = await startFloor(upstream.ports.main);
  const mockBase = `http://127.0.0.1:${upstream.ports.main}`;
  const priced = { provider: 'openai', pricing: { input: 0.15, output: 0.6 } };
  const models = [
    { id: 'mock-small', baseUrl: `${mockBase}/v1`, ...priced },
    { id: 'fast-stream', baseUrl: `${mockBase}/v1`, maxConcurrent: 4096, ...priced },
    ...upstream.ports.streams.map((port, i) => ({
      id: `slow-stream-${i}`,
      baseUrl: `http://127.0.0.1:${port}/v1`,
      upstreamModel: 'slow-stream',
      maxConcurrent: 4096,
      ...priced,
    })),
  ];
  const afterConfig = {
    models: [
      ...models,
      {
        id: 'embed-mock',
        baseUrl: `${mockBase}/v1`,
        upstreamModel: 'text-embedding-3-small',
        endpoints: ['embeddings'],
        ...priced,
      },
      {
        id: 'bedrock-stream',
        provider: 'bedrock',
        upstreamModel: 'stream-200',
        region: 'us-east-1',
        maxConcurrent: 4096,
        pricing: { input: 3, output: 15 },
      },
    ],
  };
  const env = (config: unknown): Record<string, string> => ({
    ...stack.env,
    REDIS_URL: redis.url,
    TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
    TOLLGATE_CONFIG_JSON: JSON.stringify(config),
    OPENAI_API_KEY: 'bench',
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
  });
  const startGateway = async (which: 'before' | 'after'): Promise<Target> => {
    const t = await startTollgate(agent, {
      name: `tollgate-${which}`,
      ...(which === 'before' && baseline ? { root: baseline } : {}),
      env: env(which === 'before' ? { models } : afterConfig),
      logLevel: 'WARN',
    });
    stoppers.set(t.child.pid, () => t.child.stop());
    const key = await createBenchKey(agent, t.url, ADMIN_KEY);
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
    const check = await httpRequest(agent, `${t.url}/v1/chat/completions`, {
      headers,
      body: chatBody('mock-small'),
    });
    if (check.status !== 200) throw new Error(`tollgate-${which}: ${check.status} ${check.body}`);
    const name =
      which === 'before'
        ? `Tollgate before (${await gitRevision(baseline as string)})`
        : `Tollgate after (${await gitRevision(ROOT)})`;
    return { name, url: t.url, pid: t.child.pid, headers, chat: 'mock-small' };
  };

  const pids: Record<string, number | number[]> = {
    gateway: -1,
    mock: upstream.child.pid,
    redis: redis.pid,
    aws: stack.pids,
  };
  const ctx: Ctx = {
    agent,
    meter: new CpuMeter(() => pids),
    pids,
    mockPort: upstream.ports.main,
    direct: {
      name: 'mock upstream, direct',
      url: mockBase,
      pid: upstream.child.pid,
      headers: { 'content-type': 'application/json' },
      chat: 'mock-small',
    },
    floor: {
      name: 'floor: Fastify + undici relay',
      url: floorProc.url,
      pid: floorProc.child.pid,
      headers: { 'content-type': 'application/json' },
      chat: 'mock-small',
    },
    portkey: null,
    before: baseline ? await startGateway('before') : null,
    after: await startGateway('after'),
    tables: [],
    results: {},
  };
  if (portkeyScript) {
    try {
      const pk = await startPortkey(agent, await portkeyScript, upstream.ports.main, chatBody('mock-small'));
      ctx.portkey = {
        name: 'Portkey 1.15.2',
        url: pk.url,
        pid: pk.child.pid,
        headers: portkeyHeaders(upstream.ports.main),
        chat: 'mock-small',
      };
    } catch (err) {
      log(`Portkey unavailable: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  const bedrockModel = 'bedrock-stream';
  const phaseFns: Record<Phase, () => Promise<void>> = {
    throughput: () => throughput(ctx),
    latency: () => latency(ctx),
    cache: () => cache(ctx),
    embeddings: () => embeddings(ctx),
    streams: () => streams(ctx, bedrockModel),
    memory: () => memory(ctx, startGateway),
    redis: () => redisTrips(ctx, redis.url),
    async: () => asyncSubmit(ctx),
  };
  const problems: string[] = [];
  for (const p of PHASES) {
    if (!phases.has(p)) continue;
    log(`${p}... (load average ${loadAverage()})`);
    try {
      await phaseFns[p]();
    } catch (err) {
      problems.push(`${p}: ${(err as Error).message}`);
      log(`${p} failed: ${(err as Error).message}`);
    }
  }
  const machine = {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadAverageAtEnd: loadAverage(),
  };
  const doc = [
    `## Run of ${new Date().toISOString()}`,
    '',
    `Machine: ${JSON.stringify(machine)}; wall ${Math.round((Date.now() - started) / 1000)} s.`,
    '',
    ...ctx.tables,
    ...(problems.length ? ['Problems:', ...problems.map((p) => `- ${p}`)] : []),
  ].join('\n');
  console.log(`\n${doc}`);
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `run-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ machine, results: ctx.results, problems, markdown: doc }, null, 2));
  log(`results: ${file}`);
}

main()
  .catch((err: unknown) => {
    console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
