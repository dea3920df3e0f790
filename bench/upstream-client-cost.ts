/**
 * Side experiment (not part of `npm run bench`): CPU per upstream call for the ways Tollgate
 * could call an OpenAI-compatible upstream, against the same mock upstream process:
 *
 *   - the official openai SDK over undici's WHATWG fetch (OpenAIProvider before 64fa274),
 *   - the SDK over Tollgate's lean fetch on undici's request API (OpenAIProvider since 64fa274),
 *   - undici's fetch without the SDK,
 *   - undici's Pool.request, no SDK (the floor for an HTTP/1.1 upstream call from Node),
 *
 * and CPU per Redis script call with ioredis auto-pipelining off and on. Each variant runs
 * twice, interleaved; the second round is the warmed-up one.
 *
 *   npx tsx bench/upstream-client-cost.ts
 */
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { Agent, Pool, fetch as undiciFetch } from 'undici';
import { createLeanFetch } from '../container/src/providers/openai/lean-fetch';
import { stopAll } from './lib/procs';
import { startRedis, startUpstream } from './lib/services';

const REQUESTS = 4000;
const REDIS_COMMANDS = 20_000;
const CONCURRENCY = 50;

async function measure(
  count: number,
  fn: () => Promise<unknown>,
): Promise<{ cpuUs: number; perSecond: number }> {
  let started = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started++ < count) await fn();
    }),
  );
  const c = process.cpuUsage(c0);
  return { cpuUs: (c.user + c.system) / count, perSecond: count / ((performance.now() - t0) / 1000) };
}

async function main(): Promise<void> {
  const upstream = await startUpstream({ streamListeners: 0, tokens: 1, shortTokens: 1, intervalMs: 1000 });
  const origin = `http://127.0.0.1:${upstream.ports.main}`;
  const body = {
    model: 'mock-small',
    messages: [{ role: 'user' as const, content: 'Hello! Say something short.' }],
    temperature: 0.7,
    max_tokens: 16,
  };
  const json = JSON.stringify(body);
  const headers = { 'content-type': 'application/json', authorization: 'Bearer x' };
  const dispatcher = new Agent({ connections: 256, keepAliveTimeout: 30_000, pipelining: 1 });
  const sdk = new OpenAI({
    baseURL: `${origin}/v1`,
    apiKey: 'x',
    maxRetries: 0,
    fetch: undiciFetch as unknown as typeof fetch,
    fetchOptions: { dispatcher } as Record<string, unknown>,
  });
  const leanDispatcher = new Agent({ connections: 256, keepAliveTimeout: 30_000 });
  const sdkLean = new OpenAI({
    baseURL: `${origin}/v1`,
    apiKey: 'x',
    maxRetries: 0,
    fetch: createLeanFetch(leanDispatcher),
  });
  const pool = new Pool(origin, { connections: 256 });
  const variants: Record<string, () => Promise<unknown>> = {
    'openai SDK + undici fetch': () =>
      sdk.chat.completions.create(body, { signal: new AbortController().signal }),
    'openai SDK + lean fetch': () =>
      sdkLean.chat.completions.create(body, { signal: new AbortController().signal }),
    'undici fetch, no SDK': async () => {
      const r = await undiciFetch(`${origin}/v1/chat/completions`, {
        method: 'POST',
        body: json,
        headers,
        dispatcher,
        signal: new AbortController().signal,
      });
      return r.json();
    },
    'undici Pool.request': async () => {
      const r = await pool.request({
        path: '/v1/chat/completions',
        method: 'POST',
        body: json,
        headers,
        signal: new AbortController().signal,
      });
      return r.body.json();
    },
  };
  console.log(`upstream call, ${REQUESTS} requests, ${CONCURRENCY} concurrent (CPU of this process only):`);
  for (let round = 1; round <= 2; round++) {
    for (const [name, fn] of Object.entries(variants)) {
      const r = await measure(REQUESTS, fn);
      console.log(
        `  round ${round}  ${name.padEnd(26)} ${r.cpuUs.toFixed(0).padStart(5)} µs CPU / call  ${r.perSecond.toFixed(0)} calls/s`,
      );
    }
  }
  await pool.close();
  await dispatcher.close();
  await leanDispatcher.close();

  const redis = await startRedis();
  console.log(`redis EVAL, ${REDIS_COMMANDS} calls, ${CONCURRENCY} concurrent:`);
  for (let round = 1; round <= 2; round++) {
    for (const auto of [false, true]) {
      const r = new Redis(redis.url, { enableAutoPipelining: auto });
      await r.ping();
      const m = await measure(REDIS_COMMANDS, () => r.eval("return redis.call('GET', KEYS[1])", 1, 'k'));
      console.log(
        `  round ${round}  enableAutoPipelining=${String(auto).padEnd(5)} ${m.cpuUs.toFixed(1).padStart(6)} µs CPU / call  ${m.perSecond.toFixed(0)} calls/s`,
      );
      await r.quit();
    }
  }
  await stopAll();
  process.exit(0);
}

main().catch(async (err: unknown) => {
  console.error((err as Error).stack ?? String(err));
  await stopAll();
  process.exit(1);
});
