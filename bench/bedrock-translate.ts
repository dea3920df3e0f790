/**
 * Side experiment (not part of `npm run bench`): what translating Bedrock's ConverseStream into
 * OpenAI chunks costs per streamed chunk.
 *
 *   1. In process: CPU per event of StreamTranslator (the event -> chunk mapping alone), beside
 *      what every chunk costs anyway (JSON.stringify for the SSE write) and the upstream-side
 *      decoding of one event (event-stream frame decode with CRCs + JSON.parse) against an
 *      OpenAI SSE line (JSON.parse).
 *   2. End to end: the built gateway (`node container/dist/server.js`, run `npm run build`
 *      first or pass --build) streaming from the Bedrock-protocol server and from the OpenAI
 *      mock, each in its own process; the gateway's own CPU (utime+stime from /proc) per stream
 *      at 20 and 400 chunks, the difference divided by 380 being the CPU per chunk.
 *
 * Both upstreams send one chunk every `--interval-ms` (default 1), so each chunk reaches the
 * gateway on its own, as from a real model.
 *
 *   npx tsx bench/bedrock-translate.ts [--build] [--streams 300] [--concurrency 8] [--interval-ms 1]
 *     [--profile DIR]   (a V8 CPU profile of the gateway)
 */
import { execFileSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import type { ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import { toConverse } from '../container/src/providers/bedrock/chat-request';
import { StreamTranslator } from '../container/src/providers/bedrock/stream';
import type { ChatRequest } from '../container/src/wire/chat';
import { type Child, cpuSeconds, spawnChild, stopAll } from './lib/procs';
import { createBenchKey, ROOT, startRedis, startStack, startTollgate, startUpstream } from './lib/services';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i === -1 ? undefined : Number(process.argv[i + 1]);
  return v !== undefined && Number.isFinite(v) ? v : fallback;
}

// --- 1. in process ------------------------------------------------------------------------------

/** A realistic answer: 300 text deltas of a word each, then a tool call in 40 fragments. */
function answerEvents(): ConverseStreamOutput[] {
  const ev: ConverseStreamOutput[] = [{ messageStart: { role: 'assistant' } }];
  for (let i = 0; i < 300; i++)
    ev.push({ contentBlockDelta: { contentBlockIndex: 0, delta: { text: ` word${i}` } } });
  ev.push({ contentBlockStop: { contentBlockIndex: 0 } });
  ev.push({
    contentBlockStart: {
      contentBlockIndex: 1,
      start: { toolUse: { toolUseId: 'tooluse_x', name: 'search' } },
    },
  });
  for (let i = 0; i < 40; i++)
    ev.push({ contentBlockDelta: { contentBlockIndex: 1, delta: { toolUse: { input: `{"q${i}":` } } } });
  ev.push({ contentBlockStop: { contentBlockIndex: 1 } });
  ev.push({ messageStop: { stopReason: 'tool_use' } });
  ev.push({
    metadata: { usage: { inputTokens: 50, outputTokens: 340, totalTokens: 390 }, metrics: { latencyMs: 1 } },
  });
  return ev;
}

/** ns per item of `fn` over `items`, best of 5 rounds after a warm-up. */
function nsPer<T>(items: T[], rounds: number, fn: (items: T[]) => void): number {
  for (let i = 0; i < rounds; i++) fn(items);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) fn(items);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / (rounds * items.length));
  }
  return best;
}

function inProcess(): Record<string, number> {
  const body = {
    model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
    messages: [{ role: 'user', content: 'search for it' }],
    tools: [{ type: 'function', function: { name: 'search', parameters: { type: 'object' } } }],
  } as ChatRequest;
  const call = toConverse(body);
  const events = answerEvents();
  let sink = 0;
  const translate = nsPer(events, 2000, (evs) => {
    const tr = new StreamTranslator(call, 'chatcmpl-x', 1);
    for (const e of evs) if (tr.translate(e)) sink++;
  });
  const chunks = (() => {
    const tr = new StreamTranslator(call, 'chatcmpl-x', 1);
    return events.map((e) => tr.translate(e)).filter((c) => c !== null);
  })();
  const stringify = nsPer(chunks, 2000, (cs) => {
    for (const c of cs) sink += JSON.stringify(c).length;
  });
  const codec = new EventStreamCodec(toUtf8, fromUtf8);
  const frames = events.map((e) => {
    const [type, payload] = Object.entries(e)[0] as [string, unknown];
    return codec.encode({
      headers: {
        ':event-type': { type: 'string', value: type },
        ':content-type': { type: 'string', value: 'application/json' },
        ':message-type': { type: 'string', value: 'event' },
      },
      body: fromUtf8(JSON.stringify(payload)),
    });
  });
  const decodeFrame = nsPer(frames, 2000, (fs) => {
    for (const f of fs) sink += (JSON.parse(toUtf8(codec.decode(f).body)) as object) ? 1 : 0;
  });
  const sseLines = chunks.map((c) => JSON.stringify(c));
  const parseSse = nsPer(sseLines, 2000, (ls) => {
    for (const l of ls) sink += (JSON.parse(l) as object) ? 1 : 0;
  });
  if (sink === 0) throw new Error('nothing measured');
  return {
    events: events.length,
    chunks: chunks.length,
    translateNsPerEvent: Math.round(translate),
    stringifyNsPerChunk: Math.round(stringify),
    decodeFrameNsPerEvent: Math.round(decodeFrame),
    parseSseLineNsPerChunk: Math.round(parseSse),
  };
}

// --- 2. end to end ------------------------------------------------------------------------------

/** Stream `count` requests (`concurrency` at a time) and count the data events received. */
async function streamAll(
  url: string,
  key: string,
  model: string,
  count: number,
  concurrency: number,
): Promise<{ chunks: number; failed: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'go' }], stream: true });
  let started = 0;
  let chunks = 0;
  let failed = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request(
        `${url}/v1/chat/completions`,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            text += d;
          });
          res.on('end', () => {
            if (res.statusCode !== 200 || !text.endsWith('data: [DONE]\n\n')) failed++;
            chunks += text.split('\n\n').length - 2;
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
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started++ < count) await one();
    }),
  );
  agent.destroy();
  return { chunks, failed };
}

async function endToEnd(streams: number, concurrency: number, intervalMs: number) {
  const redis = await startRedis();
  const stack = await startStack();
  const upstream = await startUpstream({ streamListeners: 1, tokens: 400, shortTokens: 20, intervalMs });
  const { child: bedrock, match } = await spawnChild(
    'bedrock-server',
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'bench', 'bedrock-process.ts'),
      '--deltas',
      '20',
      '--deltas',
      '400',
      '--delay-ms',
      String(intervalMs),
      // Like Bedrock: one event per write (the tests split them on purpose).
      '--whole-frames',
    ],
    { cwd: ROOT, ready: /^AWS_ENDPOINT_URL_BEDROCK_RUNTIME=(\S+)$/m, readyTimeoutMs: 60_000 },
  );
  const streamPort = upstream.ports.streams[0] as number;
  const openai = (id: string, port: number, upstreamModel: string) => ({
    id,
    provider: 'openai',
    baseUrl: `http://127.0.0.1:${port}/v1`,
    upstreamModel,
    maxRetries: 0,
  });
  const models = [
    openai('openai-20', upstream.ports.main, 'short-stream'),
    openai('openai-400', streamPort, 'slow-stream'),
    { id: 'bedrock-20', provider: 'bedrock', upstreamModel: 'stream-20', region: 'us-east-1', maxRetries: 0 },
    {
      id: 'bedrock-400',
      provider: 'bedrock',
      upstreamModel: 'stream-400',
      region: 'us-east-1',
      maxRetries: 0,
    },
  ];
  const admin = 'sk-tg-admin-bench-0123456789';
  const agent = new Agent({ keepAlive: true });
  const profileDir = process.argv[process.argv.indexOf('--profile') + 1];
  const gw = await startTollgate(agent, {
    name: 'tollgate',
    logLevel: 'WARN',
    ...(process.argv.includes('--profile') && profileDir
      ? { cpuProfile: { dir: profileDir, name: 'gateway.cpuprofile' } }
      : {}),
    env: {
      ...stack.env,
      REDIS_URL: redis.url,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: match?.[1] ?? '',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      TOLLGATE_ADMIN_API_KEY: admin,
      TOLLGATE_CONFIG_JSON: JSON.stringify({ models, cache: { enabled: false } }),
    },
  });
  const key = await createBenchKey(agent, gw.url, admin);
  const rows: Record<string, Record<string, number>> = {};
  const measure = async (model: string, n: number) => {
    const c0 = cpuSeconds(gw.child.pid);
    const b0 = cpuSeconds(bedrock.pid);
    const t0 = performance.now();
    const r = await streamAll(gw.url, key, model, n, concurrency);
    const wall = (performance.now() - t0) / 1000;
    return {
      gatewayUsPerStream: ((cpuSeconds(gw.child.pid) - c0) * 1e6) / n,
      upstreamServerCpuS: cpuSeconds(bedrock.pid) - b0,
      chunksPerStream: r.chunks / n,
      failed: r.failed,
      streamsPerSecond: n / wall,
    };
  };
  // Warm-up (JIT, connection pools, credentials), then two interleaved rounds; the second counts.
  for (const m of ['openai-20', 'openai-400', 'bedrock-20', 'bedrock-400']) await measure(m, 50);
  for (let round = 0; round < 2; round++) {
    for (const m of ['openai-20', 'bedrock-20', 'openai-400', 'bedrock-400'])
      rows[m] = await measure(m, streams);
  }
  const perChunk = (family: string) => {
    const a = rows[`${family}-20`]!;
    const b = rows[`${family}-400`]!;
    return (b.gatewayUsPerStream! - a.gatewayUsPerStream!) / (b.chunksPerStream! - a.chunksPerStream!);
  };
  await gw.child.stop();
  await (bedrock as Child).stop();
  return { rows, usPerChunk: { openai: perChunk('openai'), bedrock: perChunk('bedrock') } };
}

async function main(): Promise<void> {
  if (process.argv.includes('--build'))
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  const micro = inProcess();
  console.log('in process (ns):', micro);
  const e2e = await endToEnd(arg('--streams', 300), arg('--concurrency', 8), arg('--interval-ms', 1));
  const fmt = (x: number) => Math.round(x * 10) / 10;
  console.log('end to end, gateway CPU:');
  for (const [m, r] of Object.entries(e2e.rows))
    console.log(
      `  ${m.padEnd(12)} ${fmt(r.gatewayUsPerStream!)} us/stream, ${fmt(r.chunksPerStream!)} chunks/stream, ${fmt(r.streamsPerSecond!)} streams/s, ${r.failed} failed`,
    );
  console.log(
    `  per chunk: openai ${fmt(e2e.usPerChunk.openai)} us, bedrock ${fmt(e2e.usPerChunk.bedrock)} us (bedrock - openai: ${fmt(e2e.usPerChunk.bedrock - e2e.usPerChunk.openai)} us)`,
  );
}

main()
  .catch((err: unknown) => {
    console.error((err as Error).stack ?? String(err));
    process.exitCode = 1;
  })
  .finally(() => stopAll());
