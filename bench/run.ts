/**
 * `npm run bench`: every Tollgate benchmark side by side in one run, on this machine, against
 * 127.0.0.1 only, bounded in time (~4-5 minutes), then `docs/benchmarks.md` is updated.
 *
 *   1. throughput (autocannon, 50 connections): mock direct, Portkey, Tollgate
 *   2. added latency at a fixed 500 RPS: mock direct vs through Tollgate
 *   3. cache-hit latency
 *   4. Redis round trips and commands per request (INFO stats + commandstats + MONITOR)
 *   5. memory per open stream with 2,000 slow concurrent streams
 *   6. the async path (bench/async.ts)
 *   + Tollgate at INFO logging, and a CPU profile of a Tollgate throughput run
 *
 * Flags: --skip-build, --no-portkey, --no-profile, --no-streams, --no-async, --no-doc.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AsyncBenchOptions } from './async';
import {
  httpRequest,
  keepAliveAgent,
  type LoadResult,
  percentiles,
  runCount,
  runLoad,
  runPaced,
} from './lib/load';
import { CpuMeter, cpuSeconds, loadAverage, rssKiB, sleep, stopAll } from './lib/procs';
import { summarizeProfile } from './lib/profile';
import { RedisTap } from './lib/redis-stats';
import { renderTable, updateDoc } from './lib/report';
import {
  createBenchKey,
  portkeyHeaders,
  ROOT,
  resolvePortkey,
  startPortkey,
  startRedis,
  startStack,
  startTollgate,
  startUpstream,
  type Tollgate,
} from './lib/services';
import { openStreams } from './lib/streams';
import type { BenchResults, RedisScenario, SingleOriginResult, StreamResult } from './lib/types';

const run = promisify(execFile);

/** Durations and sizes, in one place. */
const S = {
  warmupS: 2,
  throughputS: 8,
  connections: 50,
  latencyRate: 500,
  latencyS: 10,
  /** Paced 500 RPS rounds (direct + Tollgate each); the median round is reported. */
  latencyRounds: 3,
  lowRate: 100,
  lowS: 5,
  autocannonLatencyS: 6,
  cacheRate: 500,
  cacheS: 8,
  redisRequests: 2000,
  /**
   * One at a time: a request's own round trips to Redis. Concurrent requests share writes
   * (auto-pipelining), which makes exchanges per request fall below what each one waits for.
   */
  redisConcurrency: 1,
  streams: 2000,
  streamOrigins: 8,
  streamTokens: 40,
  streamIntervalMs: 1000,
  streamRampMs: 20_000,
  singleOriginStreams: 320,
  singleOriginRampMs: 2000,
  shortStreamTokens: 5,
};

const ADMIN_KEY = `bench-admin-${process.pid}-${Date.now()}`;
const RESULTS_DIR = join(ROOT, 'bench', 'results');
const DOC = join(ROOT, 'docs', 'benchmarks.md');

function chatBody(model: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    model,
    messages: [{ role: 'user', content: 'Hello! Say something short.' }],
    temperature: 0.7,
    max_tokens: 16,
    ...extra,
  });
}

function log(msg: string): void {
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

function brief(r: LoadResult): string {
  return `${r.rps} RPS, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}`;
}

async function machineInfo() {
  let redis = 'unknown';
  try {
    redis = (await run('redis-server', ['--version'])).stdout.trim().split(' ').slice(0, 3).join(' ');
  } catch {
    // reported as unknown
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    redis,
    kernel: release(),
    loadAvgAtStart: loadAverage(),
  };
}

async function gitRevision(): Promise<string> {
  try {
    const { stdout } = await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT });
    const dirty = (
      await run('git', ['status', '--porcelain', '--', 'container/src'], { cwd: ROOT })
    ).stdout.trim();
    return `${stdout.trim()}${dirty ? ' (+ uncommitted changes in container/src)' : ''}`;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const args = new Set(process.argv.slice(2));
  const started = Date.now();
  mkdirSync(RESULTS_DIR, { recursive: true });
  const agent = keepAliveAgent(16);
  const results: BenchResults = {
    date: new Date().toISOString(),
    gitRevision: await gitRevision(),
    machine: await machineInfo(),
    settings: { ...S },
    throughput: { direct: null, portkey: null, tollgate: null, tollgateInfoLog: null },
    latency500: { direct: null, tollgate: null, directAutocannon: null, tollgateAutocannon: null },
    latencyLow: { direct: null, tollgate: null },
    cache: { runLow: null, run: null, sampleChecked: 0, sampleHits: 0, hitsCounted: null },
    redis: { bypass: null, missStore: null, hit: null },
    streams: null,
    singleOrigin: null,
    profile: null,
    profilePath: null,
    async: { status: 'skipped', note: 'not run' },
    problems: [],
    wallSeconds: 0,
  };
  /** A phase that fails is reported and the run goes on with the next one. */
  const phase = async (name: string, fn: () => Promise<void>) => {
    log(`${name}...`);
    try {
      await fn();
    } catch (err) {
      const msg = `${name} failed: ${(err as Error).message}`;
      results.problems.push(msg.slice(0, 2000));
      console.error(`[bench] ${msg}`);
    }
  };

  try {
    if (!args.has('--skip-build')) {
      log('npm run build (the production entry container/dist/server.js)');
      await run('npm', ['run', 'build'], { cwd: ROOT, timeout: 180_000 });
    }
    if (!existsSync(join(ROOT, 'container', 'dist', 'server.js'))) throw new Error('run npm run build first');

    log(
      'starting redis-server, AWS stand-ins, mock upstream' + (args.has('--no-portkey') ? '' : ', Portkey'),
    );
    const portkeyScript = args.has('--no-portkey') ? null : resolvePortkey();
    portkeyScript?.catch(() => {});
    const [redis, stack, upstream] = await Promise.all([
      startRedis(),
      startStack(),
      startUpstream({
        streamListeners: S.streamOrigins,
        tokens: S.streamTokens,
        shortTokens: S.shortStreamTokens,
        intervalMs: S.streamIntervalMs,
      }),
    ]);
    const mockUrl = `http://127.0.0.1:${upstream.ports.main}/v1/chat/completions`;
    const ping = percentiles(await new RedisTap(redis.url).pingMs(1000));
    results.machine.redisPing = { p50: ping.p50, p99: ping.p99 };
    log(`loopback Redis PING: p50 ${ping.p50} ms, p99 ${ping.p99} ms`);
    const priced = { provider: 'openai', pricing: { input: 0.15, output: 0.6 } };
    const config = {
      models: [
        { id: 'mock-small', baseUrl: `http://127.0.0.1:${upstream.ports.main}/v1`, ...priced },
        ...upstream.ports.streams.map((port, i) => ({
          id: `slow-stream-${i}`,
          baseUrl: `http://127.0.0.1:${port}/v1`,
          upstreamModel: 'slow-stream',
          maxConcurrent: 4096,
          ...priced,
        })),
        {
          id: 'short-stream-single-origin',
          baseUrl: `http://127.0.0.1:${upstream.ports.main}/v1`,
          upstreamModel: 'short-stream',
          maxConcurrent: 4096,
          ...priced,
        },
      ],
    };
    const tollgateEnv: Record<string, string> = {
      ...stack.env,
      REDIS_URL: redis.url,
      TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
      TOLLGATE_CONFIG_JSON: JSON.stringify(config),
      OPENAI_API_KEY: 'bench',
    };
    const pids: Record<string, number | number[]> = {
      gateway: -1,
      mock: upstream.child.pid,
      redis: redis.pid,
      'aws-stand-ins': stack.pids,
    };
    const meter = new CpuMeter(() => pids);

    let tollgate: Tollgate = await startTollgate(agent, {
      name: 'tollgate',
      env: tollgateEnv,
      logLevel: 'WARN',
    });
    pids.gateway = tollgate.child.pid;
    const apiKey = await createBenchKey(agent, tollgate.url, ADMIN_KEY);
    const tgHeaders = { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` };
    const tgUrl = () => `${tollgate.url}/v1/chat/completions`;
    const check = await httpRequest(agent, tgUrl(), { headers: tgHeaders, body: chatBody('mock-small') });
    if (check.status !== 200) throw new Error(`Tollgate smoke request: ${check.status} ${check.body}`);

    let portkey: Awaited<ReturnType<typeof startPortkey>> | null = null;
    if (portkeyScript) {
      await phase('starting Portkey', async () => {
        portkey = await startPortkey(agent, await portkeyScript, upstream.ports.main, chatBody('mock-small'));
        pids['portkey'] = portkey.child.pid;
      });
    }

    // 1. Throughput ------------------------------------------------------------------------
    /** `window` gets the measured part's start and end on the monotonic clock, in µs. */
    const throughput = (
      title: string,
      url: string,
      headers: Record<string, string>,
      window?: { fromUs: number; toUs: number },
    ) =>
      runLoad(
        {
          title,
          url,
          connections: S.connections,
          durationS: S.throughputS,
          warmupS: S.warmupS,
          headers,
          body: chatBody('mock-small'),
        },
        {
          begin: () => {
            if (window) window.fromUs = monotonicUs();
            meter.begin();
          },
          end: () => {
            if (window) window.toUs = monotonicUs();
            return meter.end();
          },
        },
      );
    await phase('1a throughput: mock upstream direct', async () => {
      results.throughput.direct = await throughput('mock direct', mockUrl, {
        'content-type': 'application/json',
      });
      log(brief(results.throughput.direct));
    });
    const pk = portkey as Awaited<ReturnType<typeof startPortkey>> | null;
    if (pk) {
      await phase('1b throughput: Portkey -> mock', async () => {
        results.throughput.portkey = await throughput(
          'Portkey',
          `${pk.url}/v1/chat/completions`,
          portkeyHeaders(upstream.ports.main),
        );
        log(brief(results.throughput.portkey));
      });
    }
    await phase('1c throughput: Tollgate -> mock (auth + limits + usage, WARN logs)', async () => {
      results.throughput.tollgate = await throughput('Tollgate', tgUrl(), tgHeaders);
      log(brief(results.throughput.tollgate));
    });

    // 2. Added latency at a fixed rate -------------------------------------------------------
    const paced = (
      title: string,
      url: string,
      headers: Record<string, string>,
      rate = S.latencyRate,
      durationS = S.latencyS,
    ) =>
      runPaced(
        {
          title,
          url,
          rate,
          durationS,
          warmupS: 1,
          headers,
          body: chatBody('mock-small'),
        },
        meter,
      );
    const rounds: Array<{ direct: LoadResult; tollgate: LoadResult }> = [];
    for (let i = 1; i <= S.latencyRounds; i++) {
      await phase(
        `2a/2b latency @500 RPS (paced), round ${i}/${S.latencyRounds}: mock direct, Tollgate`,
        async () => {
          const direct = await paced('mock direct', mockUrl, { 'content-type': 'application/json' });
          log(brief(direct));
          const tollgate = await paced('Tollgate', tgUrl(), tgHeaders);
          log(brief(tollgate));
          rounds.push({ direct, tollgate });
        },
      );
    }
    if (rounds.length > 0) {
      const median = medianBy(rounds, (x) => x.tollgate.latency.p99 - x.direct.latency.p99);
      results.latency500.rounds = rounds;
      results.latency500.direct = median?.direct ?? null;
      results.latency500.tollgate = median?.tollgate ?? null;
    }
    await phase(`2e latency @${S.lowRate} RPS (paced): mock direct`, async () => {
      results.latencyLow.direct = await paced(
        'mock direct',
        mockUrl,
        { 'content-type': 'application/json' },
        S.lowRate,
        S.lowS,
      );
      log(brief(results.latencyLow.direct));
    });
    await phase(`2f latency @${S.lowRate} RPS (paced): Tollgate`, async () => {
      results.latencyLow.tollgate = await paced('Tollgate', tgUrl(), tgHeaders, S.lowRate, S.lowS);
      log(brief(results.latencyLow.tollgate));
    });
    const acRate = (title: string, url: string, headers: Record<string, string>) =>
      runLoad(
        {
          title,
          url,
          connections: S.connections,
          overallRate: S.latencyRate,
          durationS: S.autocannonLatencyS,
          warmupS: 1,
          headers,
          body: chatBody('mock-small'),
        },
        meter,
      );
    await phase('2c latency @500 RPS (autocannon overallRate): mock direct', async () => {
      results.latency500.directAutocannon = await acRate('mock direct', mockUrl, {
        'content-type': 'application/json',
      });
      log(brief(results.latency500.directAutocannon));
    });
    await phase('2d latency @500 RPS (autocannon overallRate): Tollgate', async () => {
      results.latency500.tollgateAutocannon = await acRate('Tollgate', tgUrl(), tgHeaders);
      log(brief(results.latency500.tollgateAutocannon));
    });

    // 3. Cache hits ---------------------------------------------------------------------------
    const cachedBody = chatBody('mock-small', {
      temperature: 0,
      messages: [{ role: 'user', content: 'cache bench' }],
    });
    const hitCount = async (): Promise<number | null> => {
      const r = await httpRequest(agent, `${tollgate.url}/metrics`, {
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
      });
      if (r.status !== 200) return null;
      const m = /^tollgate_cache_total\{result="HIT"\} (\d+)/m.exec(r.body);
      return m ? Number(m[1]) : 0;
    };
    await phase('3 cache-hit latency', async () => {
      const first = await httpRequest(agent, tgUrl(), { headers: tgHeaders, body: cachedBody });
      const second = await httpRequest(agent, tgUrl(), { headers: tgHeaders, body: cachedBody });
      if (second.headers['x-tollgate-cache'] !== 'HIT')
        throw new Error(
          `expected a HIT after a MISS, got ${first.headers['x-tollgate-cache']} then ${second.headers['x-tollgate-cache']}`,
        );
      const before = await hitCount();
      let checked = 0;
      let hits = 0;
      const hitRun = (rate: number, durationS: number) =>
        runPaced(
          {
            title: `Tollgate cache HIT @${rate}`,
            url: tgUrl(),
            rate,
            durationS,
            warmupS: 1,
            headers: tgHeaders,
            body: cachedBody,
            // Every measured response is checked, not a sample: cheap at these rates.
            onResponse: (res) => {
              checked++;
              if (res.headers['x-tollgate-cache'] === 'HIT') hits++;
            },
          },
          meter,
        );
      const lows: LoadResult[] = [];
      for (let i = 0; i < S.latencyRounds; i++) {
        const one = await hitRun(S.lowRate, S.lowS);
        log(brief(one));
        lows.push(one);
      }
      const low = medianBy(lows, (x) => x.latency.p50) as LoadResult;
      const r = await hitRun(S.cacheRate, S.cacheS);
      const after = await hitCount();
      results.cache = {
        runLow: low,
        lowRoundsP50: lows.map((x) => x.latency.p50),
        run: r,
        sampleChecked: checked,
        sampleHits: hits,
        // The warm-up seconds are counted by the server too.
        hitsCounted: before !== null && after !== null ? after - before : null,
      };
      log(`${brief(r)}; x-tollgate-cache HIT on ${hits}/${checked}`);
    });

    // 4. Redis commands per request -----------------------------------------------------------
    await phase('4 Redis commands per request', async () => {
      const tap = new RedisTap(redis.url);
      const counted = async (makeBody: (i: number) => string): Promise<RedisScenario> => {
        let statusCodes: Record<string, number> = {};
        const counts = await tap.measure(async () => {
          const r = await runCount(agent, tgUrl(), tgHeaders, S.redisRequests, S.redisConcurrency, makeBody);
          statusCodes = r.statusCodes;
        });
        return { requests: S.redisRequests, statusCodes, ...counts };
      };
      results.redis.bypass = await counted(() => chatBody('mock-small'));
      const run = Date.now();
      results.redis.missStore = await counted((i) =>
        chatBody('mock-small', {
          temperature: 0,
          messages: [{ role: 'user', content: `miss ${run} ${i}` }],
        }),
      );
      results.redis.hit = await counted(() => cachedBody);
      log(
        `bypass ${JSON.stringify(results.redis.bypass.client)} miss ${JSON.stringify(results.redis.missStore.client)} hit ${JSON.stringify(results.redis.hit.client)}`,
      );
    });

    // 1d. Throughput with INFO logging (production setting), stdout to /dev/null -------------
    const restart = async (
      name: string,
      logLevel: 'WARN' | 'INFO',
      cpuProfile?: { dir: string; name: string },
    ) => {
      await tollgate.child.stop();
      tollgate = await startTollgate(agent, {
        name,
        env: tollgateEnv,
        logLevel,
        ...(cpuProfile ? { cpuProfile } : {}),
      });
      pids.gateway = tollgate.child.pid;
    };
    await phase('1d throughput: Tollgate with INFO logging to /dev/null', async () => {
      await restart('tollgate-info', 'INFO');
      results.throughput.tollgateInfoLog = await throughput('Tollgate (INFO logs)', tgUrl(), tgHeaders);
      log(brief(results.throughput.tollgateInfoLog));
    });

    // Profile of a throughput run ----------------------------------------------------------
    if (!args.has('--no-profile')) {
      await phase('profile: Tollgate throughput run under node --cpu-prof', async () => {
        const name = 'tollgate-throughput.cpuprofile.json';
        await restart('tollgate-profiled', 'WARN', { dir: RESULTS_DIR, name });
        const window = { fromUs: 0, toUs: 0 };
        await throughput('Tollgate (profiled)', tgUrl(), tgHeaders, window);
        await tollgate.child.stop();
        const path = join(RESULTS_DIR, name);
        results.profilePath = `bench/results/${name}`;
        results.profile = summarizeProfile(path, 10, window);
        log(`profile: busy ${results.profile.busyMs} ms; top ${results.profile.top[0]?.name}`);
      });
    }

    // 5. Slow streams -----------------------------------------------------------------------
    if (!args.has('--no-streams')) {
      await phase('5 memory per open stream', async () => {
        await restart('tollgate-streams', 'WARN');
        results.streams = await streamBench(tollgate, tgHeaders, agent);
        const s = results.streams;
        log(
          `idle ${s.idleRssKiB} KiB, open ${s.openRssKiBMedian} KiB -> ${s.perStreamKiB} KiB/stream; completed ${s.completed}/${s.streams}, failed ${s.failed}`,
        );
      });
      await phase('5b single upstream origin: concurrent streams', async () => {
        results.singleOrigin = await singleOriginBench(tollgate, tgHeaders);
        const s = results.singleOrigin;
        log(`${s.delayed}/${s.streams} streams waited > ${s.delayedAfterMs} ms for their first chunk`);
      });
    }

    // 6. Async path ------------------------------------------------------------------------
    // bench/async.ts starts its own processes: stop ours first so they compete with nothing.
    log('stopping the processes of phases 1-5');
    await stopAll();
    if (!args.has('--no-async')) {
      await phase('6 async path (bench/async.ts)', async () => {
        results.async = await asyncBench(ASYNC_OPTIONS);
      });
    }
  } catch (err) {
    results.problems.push(`aborted: ${(err as Error).message}`.slice(0, 2000));
    console.error(`[bench] aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    log('stopping everything');
    agent.destroy();
    await stopAll();
  }
  results.wallSeconds = Math.round((Date.now() - started) / 1000);
  const stamp = results.date.replace(/[:.]/g, '-');
  writeFileSync(join(RESULTS_DIR, `run-${stamp}.json`), JSON.stringify(results, null, 2));
  console.log('');
  console.log(renderTable(results));
  if (!args.has('--no-doc')) {
    const before = existsSync(DOC) ? readFileSync(DOC, 'utf8') : null;
    writeFileSync(DOC, updateDoc(before, results));
    log(`wrote docs/benchmarks.md and bench/results/run-${stamp}.json (${results.wallSeconds} s)`);
  }
  if (results.problems.length > 0) {
    console.error(`[bench] ${results.problems.length} problem(s):\n  ${results.problems.join('\n  ')}`);
    process.exitCode = 1;
  }
  // Every child is stopped; a library handle left behind (a reconnecting client, a timer)
  // must not keep the benchmark alive.
  process.exit();
}

/** 2,000 slow streams held open: RSS idle vs while held. */
async function streamBench(
  tollgate: Tollgate,
  headers: Record<string, string>,
  agent: ReturnType<typeof keepAliveAgent>,
): Promise<StreamResult> {
  const url = `${tollgate.url}/v1/chat/completions`;
  const pid = tollgate.child.pid;
  const startRss = rssKiB(pid);
  // Warm the code paths (non-streaming and streaming) so that "idle" is a warmed-up process.
  await runCount(agent, url, headers, 500, 10, () => chatBody('mock-small'));
  const warm = openStreams({
    url,
    headers,
    count: 50,
    rampMs: 100,
    body: () => chatBody('short-stream-single-origin', { stream: true }),
  });
  await Promise.race([warm.allEnded, sleep(15_000)]);
  warm.abort();
  await sleep(2000);
  const idleSamples: number[] = [];
  for (let i = 0; i < 5; i++) {
    idleSamples.push(rssKiB(pid));
    await sleep(200);
  }
  const idle = median(idleSamples);

  const runS = openStreams({
    url,
    headers,
    count: S.streams,
    rampMs: S.streamRampMs,
    body: (i) => chatBody(`slow-stream-${i % S.streamOrigins}`, { stream: true }),
  });
  const timeoutMs = S.streamRampMs + S.streamTokens * S.streamIntervalMs + 20_000;
  try {
    await Promise.race([runS.allStarted, sleep(S.streamRampMs + 20_000)]);
    // Held open: sample memory for a few seconds while every stream is mid-answer.
    await sleep(1500);
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    const held: number[] = [];
    const active: number[] = [];
    let fds = 0;
    for (let i = 0; i < 16; i++) {
      held.push(rssKiB(pid));
      active.push(runS.stats.active);
      if (i === 8) fds = countFds(pid);
      await sleep(500);
    }
    const cpuHeld = (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000);
    const ended = await Promise.race([runS.allEnded.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!ended) runS.abort();
    const open = median(held);
    const heldOpen = median(active);
    const st = runS.stats;
    return {
      streams: S.streams,
      origins: S.streamOrigins,
      tokens: S.streamTokens,
      intervalMs: S.streamIntervalMs,
      rampMs: S.streamRampMs,
      startRssKiB: startRss,
      idleRssKiB: idle,
      openRssKiBMedian: open,
      openRssKiBMax: Math.max(...held),
      perStreamKiB: Math.round(((open - idle) / heldOpen) * 10) / 10,
      heldOpen,
      openFds: fds,
      gatewayCpuWhileHeld: Math.round(cpuHeld * 100) / 100,
      opened: st.opened,
      firstChunk: st.firstChunk,
      completed: st.completed,
      failed: st.failed + (ended ? 0 : S.streams - st.completed - st.failed),
      failures: ended
        ? st.failures
        : { ...st.failures, 'still open at timeout': S.streams - st.completed - st.failed },
      firstErrors: st.firstErrors,
      chunks: st.chunks,
      // Per stream: one chunk per token plus the finish chunk.
      expectedChunks: S.streams * (S.streamTokens + 1),
      ttft: percentiles(st.ttftMs),
      afterRssKiB: rssKiB(pid),
    };
  } finally {
    runS.abort();
  }
}

/**
 * Streams to ONE upstream origin: how many run concurrently before the gateway's connection
 * pool makes them wait. Short streams (5 tokens, 1 s apart) keep this bounded; the ramp is slow
 * enough that the gateway's CPU does not queue them by itself.
 */
async function singleOriginBench(
  tollgate: Tollgate,
  headers: Record<string, string>,
): Promise<SingleOriginResult> {
  const r = openStreams({
    url: `${tollgate.url}/v1/chat/completions`,
    headers,
    count: S.singleOriginStreams,
    rampMs: S.singleOriginRampMs,
    body: () => chatBody('short-stream-single-origin', { stream: true }),
  });
  try {
    await Promise.race([r.allEnded, sleep(30_000)]);
  } finally {
    r.abort();
  }
  // The last streams open at rampMs and the first ones end at tokens * interval: a stream that
  // had to wait for one of those to end got its first chunk at least this late.
  const delayedAfterMs = Math.max(
    1000,
    S.shortStreamTokens * S.streamIntervalMs - S.singleOriginRampMs - 500,
  );
  return {
    streams: S.singleOriginStreams,
    tokens: S.shortStreamTokens,
    intervalMs: S.streamIntervalMs,
    rampMs: S.singleOriginRampMs,
    delayedAfterMs,
    delayed: r.stats.ttftMs.filter((t) => t > delayedAfterMs).length,
    completed: r.stats.completed,
    failed: r.stats.failed,
    ttft: percentiles(r.stats.ttftMs),
  };
}

/**
 * Options for bench/async.ts's runAsyncBench(), sized so the whole `npm run bench` stays
 * around five minutes (`npx tsx bench/async.ts` alone runs its longer defaults).
 */
const ASYNC_OPTIONS = { jobs: 1000, durationS: 8, warmupS: 2 };
const ASYNC_TIMEOUT_MS = 150_000;

/** The async path's benchmark (bench/async.ts). */
async function asyncBench(opts: AsyncBenchOptions): Promise<BenchResults['async']> {
  // Imported when needed: the module only runs code when started as a script.
  const { runAsyncBench, asyncBenchMarkdown } = await import('./async');
  let timer: NodeJS.Timeout | undefined;
  const out = await Promise.race([
    runAsyncBench(opts),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`runAsyncBench() did not finish within ${ASYNC_TIMEOUT_MS / 1000} s`)),
        ASYNC_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  return {
    status: 'ok',
    note: `bench/async.ts runAsyncBench(${JSON.stringify(opts)})`,
    data: out,
    markdown: asyncBenchMarkdown(out),
  };
}

/** The round whose `key` is the median (the lower one of an even count). */
function medianBy<T>(xs: T[], key: (x: T) => number): T | undefined {
  return [...xs].sort((a, b) => key(a) - key(b))[Math.floor((xs.length - 1) / 2)];
}

function countFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

function median(v: number[]): number {
  const a = [...v].filter(Number.isFinite).sort((x, y) => x - y);
  return a.length ? (a[Math.floor(a.length / 2)] as number) : Number.NaN;
}

main().catch(async (err: unknown) => {
  console.error(`[bench] ${(err as Error).stack ?? String(err)}`);
  await stopAll();
  process.exit(1);
});
