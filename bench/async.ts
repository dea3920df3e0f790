/**
 * Async path benchmark: jobs per second through the local queue and worker, and the latency of
 * `POST /v1/chat/async` at a fixed 200 submissions/s.
 *
 * Processes, so that each one's CPU is its own: redis-server; dynalite + local-aws-sqs
 * (bench/stack-process.ts); the mock upstream (bench/upstream-process.ts); Tollgate with the
 * async routes and the local poller running the real worker handler in the same process, as
 * `npm run dev` runs it (this file with `--serve`); and this process, the load generator.
 *
 * Phases:
 *  1. submit latency at `rate`/s, open loop, with the worker stopped (the service alone, as in
 *     AWS where Lambda runs the worker), then at a light 50/s (the cost without queueing);
 *  2. drain: the worker is started on what phase 1 queued (topped up to `jobs`) and timed until
 *     every job was processed (jobs/s through queue + worker + mock upstream);
 *  3. submit latency at `rate`/s with the worker running in the same process (the dev
 *     topology), and whether the worker kept up.
 *
 * `npx tsx bench/async.ts [--jobs N] [--rate R] [--duration S] [--warmup S] [--concurrency C]
 * [--batch B]` prints the result as JSON and as markdown lines; bench/run.ts calls
 * runAsyncBench() and formats it with asyncBenchMarkdown().
 */
import { createHash } from 'node:crypto';
import type { Agent } from 'node:http';
import { join } from 'node:path';
import { CreateQueueCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../container/src/app';
import { readEnv } from '../container/src/config/env';
import { ENV } from '../container/src/contract';
import { JobStore } from '../container/src/jobs/job-store';
import { newJobId } from '../container/src/jobs/producer';
import { createSqsClient, type QueueCounts, queueCounts } from '../container/src/jobs/queue';
import { registerAsyncRoutes } from '../container/src/jobs/routes';
import { encodeJobMessage } from '../container/src/jobs/schema';
import { createDlqHandler, createWorkerHandler, type SqsBatchHandler } from '../container/src/jobs/worker';
import { type LocalWorker, startLocalWorker } from '../container/src/local/poller';
import { getFreePort } from '../container/src/local/ports';
import { createDynamoClients, createRuntime } from '../container/src/runtime';
import {
  httpRequest,
  keepAliveAgent,
  type Percentiles,
  paceOpenLoop,
  percentiles,
  runCount,
  runPaced,
} from './lib/load';
import { CpuMeter, round2, serveUntilStopped, sleep, spawnChild } from './lib/procs';
import {
  createBenchKey,
  dockerfileNodeFlags,
  ROOT,
  startRedis,
  startStack,
  startUpstream,
} from './lib/services';

const ADMIN_KEY = 'sk-tg-admin-bench-async-0123456789';
/** Submissions per second of the light-load phase. */
const LIGHT_RATE = 50;

export interface AsyncBenchOptions {
  /**
   * Least jobs for the drain phase: it drains what the first latency phase queued, topped up
   * to this. @default 2000
   */
  jobs?: number;
  /** Submissions per second for the latency phases. @default 200 */
  rate?: number;
  /** Measured seconds of each latency phase. @default 20 */
  durationS?: number;
  /** Unmeasured seconds before each latency phase. @default 3 */
  warmupS?: number;
  /** Concurrent worker invocations (the event source's MaximumConcurrency). @default 5 */
  workerConcurrency?: number;
  /** Records per invocation. @default 10 */
  batchSize?: number;
}

export interface SubmitLatency {
  rate: number;
  requests: number;
  /** Milliseconds, 202 responses only. */
  latency: Percentiles;
  non2xx: number;
  statusCodes: Record<string, number>;
  /** How far the open-loop sender fell behind its schedule (a loaded load generator). */
  maxSendLagMs: number;
  cpu?: Record<string, number>;
}

export interface AsyncBenchResult {
  drain: {
    jobs: number;
    /** Seconds from starting the worker until the last job was processed. */
    seconds: number;
    jobsPerSecond: number;
    batchSize: number;
    concurrency: number;
    cpu?: Record<string, number>;
  };
  /** Submit latency at a light fixed rate (no queueing), the service alone. */
  submitLight: SubmitLatency;
  /** Submit latency with the worker running in the same process. */
  submitWithWorker: SubmitLatency;
  /** Submit latency with the worker stopped (the service alone). */
  submitAlone: SubmitLatency;
  /**
   * The stand-ins alone at the same rate: the producer's two writes (the conditional job-row put
   * and the SQS send, concurrently, with the same code and payloads) issued straight from the
   * load generator. Its latency is the floor under `submitAlone`; the difference is Tollgate's.
   */
  standIns: SubmitLatency;
  /** Whether the worker kept up at `rate`/s: the queue was empty within 10 s of the load ending. */
  keptUp: boolean;
  /** Seconds after the load ended until the queue was empty (Infinity: not within 50 s). */
  backlogSeconds: number;
}

interface Control {
  url: string;
  agent: Agent;
}

async function control(c: Control, run?: boolean): Promise<{ running: boolean; processed: number }> {
  const r = await httpRequest(c.agent, `${c.url}/bench/worker`, {
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
    ...(run === undefined ? {} : { body: JSON.stringify({ run }) }),
  });
  if (r.status !== 200) throw new Error(`bench control: ${r.status} ${r.body}`);
  return JSON.parse(r.body) as { running: boolean; processed: number };
}

function isEmpty(q: QueueCounts): boolean {
  return q.visible + q.inFlight + q.delayed === 0;
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, everyMs = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > end) throw new Error(`bench: ${what} within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

function latencyOf(r: Awaited<ReturnType<typeof runPaced>>): SubmitLatency {
  return {
    rate: r.overallRate ?? 0,
    requests: r.requests,
    latency: r.latency,
    non2xx: r.non2xx,
    statusCodes: r.statusCodes,
    maxSendLagMs: r.maxSendLagMs,
    ...(r.cpu ? { cpu: r.cpu } : {}),
  };
}

/**
 * Run the whole benchmark. Every process it starts is stopped before it returns, and only
 * those: bench/run.ts imports this module and keeps its own processes running.
 */
export async function runAsyncBench(opts: AsyncBenchOptions = {}): Promise<AsyncBenchResult> {
  const minJobs = opts.jobs ?? 2000;
  const rate = opts.rate ?? 200;
  const durationS = opts.durationS ?? 20;
  const warmupS = opts.warmupS ?? 3;
  const concurrency = opts.workerConcurrency ?? 5;
  const batchSize = opts.batchSize ?? 10;
  const agent = keepAliveAgent(64);
  const mine: Array<() => Promise<void>> = [];
  try {
    const redis = await startRedis();
    mine.push(() => redis.stop());
    const stack = await startStack();
    mine.push(() => stack.stop());
    const upstream = await startUpstream({ streamListeners: 0, tokens: 1, shortTokens: 1, intervalMs: 1 });
    mine.push(() => upstream.child.stop());
    const port = await getFreePort();
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) {
      if (k.startsWith('POWERTOOLS_') || k.startsWith('TOLLGATE_') || k.startsWith('AWS_ENDPOINT'))
        delete env[k];
    }
    Object.assign(env, stack.env, {
      REDIS_URL: redis.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      NODE_ENV: 'production',
      POWERTOOLS_LOG_LEVEL: 'WARN',
      TOLLGATE_ADMIN_API_KEY: ADMIN_KEY,
      TOLLGATE_WORKER_CONCURRENCY: String(concurrency),
      BENCH_BATCH_SIZE: String(batchSize),
      TOLLGATE_CONFIG_JSON: JSON.stringify({
        models: [
          {
            id: 'mock-small',
            provider: 'openai',
            baseUrl: `http://127.0.0.1:${upstream.ports.main}/v1`,
            pricing: { input: 1, output: 2 },
          },
        ],
        jobs: { maxQueueDepth: 1_000_000 },
      }),
    });
    const { child } = await spawnChild(
      'tollgate-async',
      process.execPath,
      [...dockerfileNodeFlags(), '--import', 'tsx', join(ROOT, 'bench', 'async.ts'), '--serve'],
      { cwd: ROOT, env, stdout: 'devnull' },
    );
    mine.push(() => child.stop());
    const url = `http://127.0.0.1:${port}`;
    const c: Control = { url, agent };
    // Straight from SQS (one GetQueueAttributes), not through /admin/queue, whose oldest-age
    // lookup would add index queries on the DynamoDB stand-in while the worker drains.
    const sqs = createSqsClient({
      region: stack.env['AWS_REGION'] ?? 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      endpoint: stack.env['AWS_ENDPOINT_URL_SQS'],
    });
    mine.push(async () => sqs.destroy());
    const counts = () => queueCounts(sqs, stack.env[ENV.jobsQueueUrl] as string);
    await waitFor(
      'tollgate answered /health',
      async () => (await httpRequest(agent, `${url}/health`)).status === 200,
      60_000,
      100,
    );
    const key = await createBenchKey(agent, url, ADMIN_KEY);
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const body = JSON.stringify({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'Summarize the async path.' }],
    });
    const pids = (): Record<string, number | number[]> => ({
      tollgate: child.pid,
      stack: stack.pids,
      redis: redis.pid,
      upstream: upstream.child.pid,
    });
    const paced = (title: string, r = rate, d = durationS, w = warmupS) =>
      runPaced(
        {
          title,
          url: `${url}/v1/chat/async`,
          rate: r,
          durationS: d,
          warmupS: w,
          headers,
          body,
          maxSockets: 32,
        },
        new CpuMeter(pids),
      );

    // 0. The floor: the producer's two writes straight to the stand-ins, at the same rate.
    const standIns = await pacedWrites(stack.env, rate, durationS, warmupS, body, pids);
    // 1. The service alone (the worker runs elsewhere, as Lambda does): submit latency.
    const alone = await paced('submit, worker stopped');
    // The per-submission cost without queueing (a light fixed rate, the process warm by now).
    const light = await paced('submit, light load', LIGHT_RATE, 5, 1);
    // 2. Drain what phase 1 queued (topped up to `jobs`) with the worker.
    let queued = (await counts()).visible;
    if (queued < minJobs) {
      const burst = await runCount(agent, `${url}/v1/chat/async`, headers, minJobs - queued, 32, () => body);
      if ((burst.statusCodes['202'] ?? 0) !== minJobs - queued)
        throw new Error(`bench: submissions failed: ${burst.errors.join('; ')}`);
      queued = (await counts()).visible;
    }
    const drainCpu = new CpuMeter(pids);
    const before = (await control(c)).processed;
    drainCpu.begin();
    const d0 = performance.now();
    await control(c, true);
    await waitFor(
      'the worker drained the queue',
      async () => (await control(c)).processed - before >= queued,
      300_000,
      20,
    );
    const drainSeconds = (performance.now() - d0) / 1000;
    const drainCpuUse = drainCpu.end();
    // 3. Submit latency with the worker in the same process (the `npm run dev` topology).
    const withWorker = await paced('submit, worker running');
    const loadEnd = performance.now();
    // Kept up: empty within 10 s of the load ending. Waiting is capped so that bench/run.ts's
    // time budget holds; a queue still busy then is reported as such.
    let keptUp = true;
    let drained = true;
    try {
      await waitFor('the queue emptied', async () => isEmpty(await counts()), 10_000, 100);
    } catch {
      keptUp = false;
      drained = await waitFor('the queue emptied', async () => isEmpty(await counts()), 40_000, 200).then(
        () => true,
        () => false,
      );
    }
    const backlogSeconds = drained ? (performance.now() - loadEnd) / 1000 : Number.POSITIVE_INFINITY;
    return {
      drain: {
        jobs: queued,
        seconds: round2(drainSeconds),
        jobsPerSecond: Math.round(queued / drainSeconds),
        batchSize,
        concurrency,
        cpu: drainCpuUse,
      },
      submitLight: latencyOf(light),
      submitWithWorker: latencyOf(withWorker),
      submitAlone: latencyOf(alone),
      standIns,
      keptUp,
      backlogSeconds: round2(backlogSeconds),
    };
  } finally {
    agent.destroy();
    for (const stop of mine.reverse()) await stop().catch(() => undefined);
  }
}

/**
 * Open loop at `rate`/s for `durationS` (after `warmupS` unmeasured): each tick writes a job row
 * with `JobStore.create` (conditional put) and sends its message, concurrently, like
 * `JobProducer.submit` after admission. Latency from the tick to both answers.
 */
async function pacedWrites(
  stackEnv: Record<string, string>,
  rate: number,
  durationS: number,
  warmupS: number,
  requestJson: string,
  pids: () => Record<string, number | number[]>,
): Promise<SubmitLatency> {
  const aws = {
    region: stackEnv['AWS_REGION'] ?? 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  };
  // The service's own clients, so the difference is Tollgate's and not the clients'.
  const { ddb, doc } = createDynamoClients({ ...aws, endpoint: stackEnv['AWS_ENDPOINT_URL_DYNAMODB'] });
  const sqs = createSqsClient({ ...aws, endpoint: stackEnv['AWS_ENDPOINT_URL_SQS'] });
  const store = new JobStore(doc, stackEnv[ENV.tableJobs] as string);
  // A queue of its own on the same SQS stand-in: the worker phases must not find these messages.
  const jobsQueueName = new URL(stackEnv[ENV.jobsQueueUrl] as string).pathname.split('/').pop() ?? 'jobs';
  const created = await sqs.send(new CreateQueueCommand({ QueueName: `${jobsQueueName}-floor` }));
  const queueUrl = created.QueueUrl as string;
  const requestHash = createHash('sha256').update(requestJson).digest('hex');
  const principal = {
    keyId: 'key_benchfloor',
    owner: 'bench-floor',
    tier: 'premium',
    limits: { rpm: 1e8, tpm: 1e9, daily_tokens: 1e12, monthly_budget_usd: 1e9 },
    models: [],
    maxTokensCap: undefined,
  };
  const one = async (): Promise<number> => {
    const t0 = performance.now();
    const jobId = newJobId();
    const now = Date.now();
    await Promise.all([
      store.create({
        jobId,
        owner: principal.owner,
        keyId: principal.keyId,
        principal,
        model: 'mock-small',
        status: 'queued',
        request: requestJson,
        requestHash,
        createdAt: now,
        expiresAt: Math.floor(now / 1000) + 86_400,
      }),
      sqs.send(
        new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: encodeJobMessage(jobId, requestJson) }),
      ),
    ]);
    return performance.now() - t0;
  };
  const run = async (seconds: number, meter?: CpuMeter) => {
    const times: number[] = [];
    let failed = 0;
    meter?.begin();
    const paced = await paceOpenLoop(rate, seconds, () =>
      one().then(
        (ms) => {
          times.push(ms);
        },
        () => {
          failed++;
        },
      ),
    );
    return { times, failed, maxLag: paced.maxLagMs, cpu: meter?.end() };
  };
  try {
    if (warmupS > 0) await run(warmupS);
    const r = await run(durationS, new CpuMeter(pids));
    return {
      rate,
      requests: r.times.length + r.failed,
      latency: percentiles(r.times),
      non2xx: r.failed,
      statusCodes: { ok: r.times.length, ...(r.failed ? { failed: r.failed } : {}) },
      maxSendLagMs: round2(r.maxLag),
      ...(r.cpu ? { cpu: r.cpu } : {}),
    };
  } finally {
    ddb.destroy();
    sqs.destroy();
  }
}

/** Markdown lines for docs/benchmarks.md. */
export function asyncBenchMarkdown(r: AsyncBenchResult): string[] {
  // CPU used by processes outside the benchmark: a busy machine explains bad figures.
  const busy = (cpu: Record<string, number> | undefined) =>
    cpu && (cpu.other ?? 0) > 0.25 ? `; other processes used ${cpu.other} cores meanwhile` : '';
  const cpuPer = (s: SubmitLatency) => {
    const cores = s.cpu?.tollgate;
    return cores === undefined
      ? 'n/a'
      : `${Math.round((cores / s.rate) * 1000 * 100) / 100} ms (Tollgate process)`;
  };
  const lat = (s: SubmitLatency) =>
    `p50 ${s.latency.p50} ms, p99 ${s.latency.p99} ms, max ${s.latency.max} ms (${s.requests} requests at ${s.rate}/s, ${s.non2xx} non-2xx${busy(s.cpu)})`;
  return [
    `- Async drain: ${r.drain.jobs} jobs in ${r.drain.seconds} s = **${r.drain.jobsPerSecond} jobs/s** through local-aws-sqs + worker (batch ${r.drain.batchSize}, concurrency ${r.drain.concurrency}) + mock upstream${busy(r.drain.cpu)}`,
    `- Async submit latency, worker in the same process: **${lat(r.submitWithWorker)}**; worker kept up: ${r.keptUp ? 'yes' : 'no'} (${Number.isFinite(r.backlogSeconds) ? `queue empty ${r.backlogSeconds} s after the load` : 'queue not empty 50 s after the load'})`,
    `- Async submit latency, service alone: ${lat(r.submitAlone)}`,
    `- The stand-ins alone at the same rate (the producer's conditional job-row put and SQS send, concurrently, straight from the load generator): ${lat(r.standIns)}; **added by Tollgate: p50 +${round2(r.submitAlone.latency.p50 - r.standIns.latency.p50)} ms, p99 +${round2(r.submitAlone.latency.p99 - r.standIns.latency.p99)} ms**`,
    `- Async submit latency at a light load, service alone: ${lat(r.submitLight)}; CPU per submission ${cpuPer(r.submitLight)}`,
  ];
}

/** `--serve`: Tollgate with the async routes, plus a bench-only switch for the local worker. */
async function serve(): Promise<void> {
  const env = readEnv();
  const rt = await createRuntime(env);
  let processed = 0;
  const inner = createWorkerHandler(rt);
  const handler: SqsBatchHandler = async (event, context) => {
    const res = await inner(event, context);
    processed += event.Records.length - res.batchItemFailures.length;
    return res;
  };
  const dlqHandler = createDlqHandler(rt);
  let worker: LocalWorker | undefined;
  const benchControl = (app: FastifyInstance) => {
    const admin = { config: { auth: 'admin' as const } };
    app.get('/bench/worker', admin, async () => ({ running: worker !== undefined, processed }));
    app.post('/bench/worker', admin, async (req) => {
      const run = (req.body as { run?: unknown } | null)?.run === true;
      if (run && !worker) {
        worker = await startLocalWorker({
          queueUrl: env.jobsQueueUrl as string,
          dlqUrl: env.jobsDlqUrl,
          handler,
          dlqHandler,
          batchSize: Number(process.env.BENCH_BATCH_SIZE) || 10,
          maxConcurrency: env.workerConcurrency,
          visibilityTimeoutSeconds: 120,
          functionTimeoutMs: 60_000,
          logger: rt.telemetry.logger,
        });
      } else if (!run && worker) {
        await worker.stop();
        worker = undefined;
      }
      return { running: worker !== undefined, processed };
    });
  };
  const app = buildApp(rt, [registerAsyncRoutes, benchControl]);
  await app.listen({ host: env.host, port: env.port });
  serveUntilStopped(async () => {
    await worker?.stop();
    await app.close();
    await rt.close();
  });
}

if (process.argv.includes('--serve')) {
  serve().catch((err: unknown) => {
    console.error(`bench async --serve failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
} else if (require.main === module) {
  const num = (flag: string): number | undefined => {
    const i = process.argv.indexOf(flag);
    const v = i === -1 ? Number.NaN : Number(process.argv[i + 1]);
    return Number.isFinite(v) ? v : undefined;
  };
  const cli: AsyncBenchOptions = {};
  for (const [flag, key] of [
    ['--jobs', 'jobs'],
    ['--rate', 'rate'],
    ['--duration', 'durationS'],
    ['--warmup', 'warmupS'],
    ['--concurrency', 'workerConcurrency'],
    ['--batch', 'batchSize'],
  ] as const) {
    const v = num(flag);
    if (v !== undefined) cli[key] = v;
  }
  runAsyncBench(cli).then(
    (r) => {
      console.log(JSON.stringify(r, null, 2));
      for (const line of asyncBenchMarkdown(r)) console.log(line);
    },
    (err: unknown) => {
      console.error(`bench async failed: ${(err as Error).stack ?? String(err)}`);
      process.exit(1);
    },
  );
}
