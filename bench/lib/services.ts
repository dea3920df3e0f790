/**
 * The processes under test and their dependencies: redis-server, the AWS stand-ins, the mock
 * upstream, Tollgate (built, `node container/dist/server.js`) and the Portkey gateway.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Agent } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { getFreePort } from '../../container/src/local/ports';
import { type RedisServer, startRedisServer } from '../../container/src/local/redis';
import { startLocalStack } from '../../container/src/local/stack';
import { type HttpResponse, httpRequest } from './load';
import { type Child, sleep, spawnChild, track } from './procs';

export const ROOT = join(__dirname, '..', '..');
const TSX_LOADER = ['--import', 'tsx'];

export const PORTKEY_PACKAGE = '@portkey-ai/gateway@1.15.2';

/** redis-server on a free port, stopped at the end of the run (or earlier with `stop`). */
export async function startRedis(): Promise<RedisServer> {
  const r = await startRedisServer();
  if (!r) throw new Error('redis-server is not on PATH (apt-get install redis-server)');
  track('redis-server', () => r.stop());
  return r;
}

export interface Stack {
  /** dynalite, then local-aws-sqs: a process each. */
  pids: number[];
  /** The variables to run the service with (endpoints, tables, queue URLs). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * dynalite and local-aws-sqs, each in a process of its own (stack-process.ts), with Tollgate's
 * tables and queues created through their endpoints (`startLocalStack` with both endpoints set
 * starts nothing itself).
 */
export async function startStack(): Promise<Stack> {
  const children: Child[] = [];
  const stop = async () => {
    for (const c of children.splice(0)) await c.stop();
  };
  try {
    const urls: string[] = [];
    for (const kind of ['dynamodb', 'sqs']) {
      const { child, match } = await spawnChild(
        `aws-stand-in ${kind}`,
        process.execPath,
        [...TSX_LOADER, join(ROOT, 'bench', 'stack-process.ts'), kind],
        { cwd: ROOT, ready: /^URL=(\S+)$/m, readyTimeoutMs: 60_000 },
      );
      children.push(child);
      urls.push(match?.[1] ?? '');
    }
    const stack = await startLocalStack({
      env: { AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_DYNAMODB: urls[0], AWS_ENDPOINT_URL_SQS: urls[1] },
      prefix: 'tgbench',
      redis: false,
    });
    const env: Record<string, string> = {
      ...stack.env,
      AWS_ENDPOINT_URL_DYNAMODB: urls[0] as string,
      AWS_ENDPOINT_URL_SQS: urls[1] as string,
    };
    return { pids: children.map((c) => c.pid), env, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A real API key for the load, through `POST /admin/keys`, with limits far above any benchmark
 * load: admission, reservation, reconciliation and usage all run, nothing is rate limited.
 */
export async function createBenchKey(agent: Agent, url: string, adminKey: string): Promise<string> {
  const created = await httpRequest(agent, `${url}/admin/keys`, {
    headers: { authorization: `Bearer ${adminKey}` },
    body: JSON.stringify({
      owner: 'bench',
      tier: 'premium',
      limits: {
        rpm: 100_000_000,
        tpm: 1_000_000_000,
        daily_tokens: 1_000_000_000_000,
        monthly_budget_usd: 1_000_000_000,
      },
    }),
  });
  if (created.status !== 201) throw new Error(`creating the API key: ${created.status} ${created.body}`);
  return (JSON.parse(created.body) as { key: string }).key;
}

export interface UpstreamPorts {
  main: number;
  streams: number[];
}

/** The mock upstream process (see upstream-process.ts). */
export async function startUpstream(opts: {
  streamListeners: number;
  tokens: number;
  shortTokens: number;
  intervalMs: number;
}): Promise<{ child: Child; ports: UpstreamPorts }> {
  const { child, match } = await spawnChild(
    'mock-upstream',
    process.execPath,
    [
      ...TSX_LOADER,
      join(ROOT, 'bench', 'upstream-process.ts'),
      '--stream-listeners',
      String(opts.streamListeners),
      '--tokens',
      String(opts.tokens),
      '--short-tokens',
      String(opts.shortTokens),
      '--interval-ms',
      String(opts.intervalMs),
    ],
    { cwd: ROOT, ready: /^UPSTREAM_PORTS=(.+)$/m, readyTimeoutMs: 60_000 },
  );
  return { child, ports: JSON.parse(match?.[1] ?? '{}') as UpstreamPorts };
}

/** Poll `probe` until it resolves truthy or the child exits or the time is up. */
async function waitUntil(
  name: string,
  child: Child,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  let exited = false;
  void child.exited.then(() => {
    exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) throw new Error(`${name} exited before it answered:\n${child.output()}`);
    try {
      if (await probe()) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`${name} did not answer within ${timeoutMs} ms:\n${child.output()}`);
    await sleep(100);
  }
}

export interface TollgateOptions {
  name: string;
  /**
   * The checkout to run (`<root>/container/dist/server.js` with `<root>/container/Dockerfile`'s
   * node flags): another worktree runs an earlier commit beside this one.
   * @default ROOT
   */
  root?: string;
  env: Record<string, string>;
  /** POWERTOOLS_LOG_LEVEL. */
  logLevel: 'WARN' | 'INFO';
  /** Write a V8 CPU profile to this directory/name on exit. */
  cpuProfile?: { dir: string; name: string };
}

export interface Tollgate {
  child: Child;
  url: string;
  port: number;
}

/** The node flags of the container's `CMD` (e.g. the young-generation size), so the benchmark runs what production runs. */
export function dockerfileNodeFlags(root = ROOT): string[] {
  const dockerfile = readFileSync(join(root, 'container', 'Dockerfile'), 'utf8');
  const cmd = /^CMD\s+(\[.*\])\s*$/m.exec(dockerfile);
  if (!cmd?.[1]) throw new Error('container/Dockerfile has no exec-form CMD');
  const argv = JSON.parse(cmd[1]) as string[];
  return argv.slice(1).filter((a) => a.startsWith('--'));
}

/**
 * The production entry (`node container/dist/server.js`, with the Dockerfile's node flags) with stdout to /dev/null: at INFO
 * that is one JSON line per request written by the process, as in production, without the
 * benchmark paying to read it. Ready once `GET /health` answers 200.
 */
export async function startTollgate(agent: Agent, opts: TollgateOptions): Promise<Tollgate> {
  const port = await getFreePort();
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Whatever the shell has, the run decides these.
  for (const k of Object.keys(env)) {
    if (k.startsWith('POWERTOOLS_') || k.startsWith('TOLLGATE_') || k.startsWith('AWS_ENDPOINT'))
      delete env[k];
  }
  delete env['REDIS_URL'];
  delete env['NODE_OPTIONS'];
  Object.assign(env, opts.env, {
    PORT: String(port),
    HOST: '127.0.0.1',
    POWERTOOLS_LOG_LEVEL: opts.logLevel,
    NODE_ENV: 'production',
  });
  const root = opts.root ?? ROOT;
  const args: string[] = dockerfileNodeFlags(root);
  if (opts.cpuProfile) {
    args.push(
      '--cpu-prof',
      `--cpu-prof-dir=${opts.cpuProfile.dir}`,
      `--cpu-prof-name=${opts.cpuProfile.name}`,
    );
  }
  args.push(join(root, 'container', 'dist', 'server.js'));
  const { child } = await spawnChild(opts.name, process.execPath, args, {
    cwd: root,
    env,
    stdout: 'devnull',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    opts.name,
    child,
    async () => (await httpRequest(agent, `${url}/health`, { timeoutMs: 1000 })).status === 200,
    30_000,
  );
  return { child, url, port };
}

/** The floor relay (floor-relay.ts) in front of `upstreamPort`. */
export async function startFloor(upstreamPort: number): Promise<{ child: Child; url: string }> {
  const { child, match } = await spawnChild(
    'floor-relay',
    process.execPath,
    [...TSX_LOADER, join(ROOT, 'bench', 'floor-relay.ts'), '--upstream', `http://127.0.0.1:${upstreamPort}`],
    { cwd: ROOT, ready: /^FLOOR_URL=(\S+)$/m, readyTimeoutMs: 60_000 },
  );
  return { child, url: match?.[1] ?? '' };
}

/**
 * The Bedrock-protocol server (bedrock-process.ts); models `stream-<n>` stream n deltas,
 * `delayMs` apart (1 ms: each reaches the gateway on its own, like the mock's fast stream).
 */
export async function startBedrock(deltas: number[], delayMs = 1): Promise<{ child: Child; url: string }> {
  const { child, match } = await spawnChild(
    'bedrock-server',
    process.execPath,
    [
      ...TSX_LOADER,
      join(ROOT, 'bench', 'bedrock-process.ts'),
      ...deltas.flatMap((n) => ['--deltas', String(n)]),
    ],
    { cwd: ROOT, ready: /^AWS_ENDPOINT_URL_BEDROCK_RUNTIME=(\S+)$/m, readyTimeoutMs: 60_000 },
  );
  return { child, url: match?.[1] ?? '' };
}

/**
 * Where npx keeps the Portkey gateway's entry script (fetched from the npm registry on the
 * first run). Run directly with node so the measured pid is the gateway itself, not npx.
 */
export async function resolvePortkey(): Promise<string> {
  const run = promisify(execFile);
  const { stdout } = await run(
    'npx',
    [
      '-y',
      '-p',
      PORTKEY_PACKAGE,
      '-c',
      'node -e "console.log(require(\'fs\').realpathSync(process.argv[1]))" "$(command -v gateway)"',
    ],
    { cwd: '/tmp', timeout: 300_000, maxBuffer: 1 << 20 },
  );
  const path = stdout.trim().split('\n').pop() ?? '';
  if (!path.endsWith('start-server.js')) throw new Error(`could not locate ${PORTKEY_PACKAGE}: ${stdout}`);
  return path;
}

export interface Portkey {
  child: Child;
  url: string;
  port: number;
}

/** Headers that make Portkey forward to the mock as an OpenAI-compatible provider. */
export function portkeyHeaders(upstreamPort: number): Record<string, string> {
  return {
    'content-type': 'application/json',
    authorization: 'Bearer anything',
    'x-portkey-provider': 'openai',
    'x-portkey-custom-host': `http://127.0.0.1:${upstreamPort}/v1`,
  };
}

/**
 * Portkey's open-source gateway, `--headless` (no request-log console: its cheapest mode) and
 * NODE_ENV=production. It listens on every interface; only loopback traffic is sent to it.
 */
export async function startPortkey(
  agent: Agent,
  script: string,
  upstreamPort: number,
  probeBody: string,
): Promise<Portkey> {
  const port = await getFreePort();
  const { child } = await spawnChild('portkey', process.execPath, [script, `--port=${port}`, '--headless'], {
    cwd: '/tmp',
    env: { ...process.env, NODE_ENV: 'production' },
    stdout: 'devnull',
  });
  const url = `http://127.0.0.1:${port}`;
  let last: HttpResponse | undefined;
  await waitUntil(
    'portkey',
    child,
    async () => {
      last = await httpRequest(agent, `${url}/v1/chat/completions`, {
        headers: portkeyHeaders(upstreamPort),
        body: probeBody,
        timeoutMs: 2000,
      });
      return last.status === 200;
    },
    60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nlast answer: ${last?.status} ${last?.body.slice(0, 300)}`);
  });
  return { child, url, port };
}
