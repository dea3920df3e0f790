/**
 * The mock upstream for the benchmarks, in a process of its own: one listener for the
 * non-streaming runs (the mock's default reply) plus `--stream-listeners N` more whose
 * model `slow-stream` streams `--tokens` tokens, one every `--interval-ms`. Separate
 * listeners are separate origins, i.e. separate connection pools in the gateway. The first
 * listener also serves `short-stream` (`--short-tokens`, same interval). Prints
 * `UPSTREAM_PORTS=<json>` and serves until SIGTERM/SIGINT or until its parent goes away.
 */
import { type MockUpstream, startMockUpstream } from '../test/helpers/mock-upstream';
import { serveUntilStopped } from './lib/procs';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i === -1 ? undefined : Number(process.argv[i + 1]);
  return v !== undefined && Number.isFinite(v) ? v : fallback;
}

async function main(): Promise<void> {
  const streamListeners = arg('--stream-listeners', 8);
  const tokens = arg('--tokens', 30);
  const intervalMs = arg('--interval-ms', 1000);
  const main = await startMockUpstream();
  const streams: MockUpstream[] = [];
  const script = {
    kind: 'stream' as const,
    tokens: Array.from({ length: tokens }, (_, i) => `tok${i} `),
    delayMs: intervalMs,
  };
  for (let i = 0; i < streamListeners; i++) {
    const m = await startMockUpstream();
    m.setDefault('slow-stream', script);
    streams.push(m);
  }
  // The main listener also has short streams, for the single-origin check and warm-ups.
  main.setDefault('short-stream', {
    kind: 'stream',
    tokens: Array.from({ length: arg('--short-tokens', 3) }, (_, i) => `tok${i} `),
    delayMs: intervalMs,
  });
  // Fast streams for the per-chunk cost: one token every millisecond, so each reaches the
  // gateway on its own as from a real model.
  const fast = arg('--fast-tokens', 200);
  main.setDefault('fast-stream', {
    kind: 'stream',
    tokens: Array.from({ length: fast }, (_, i) => `tok${i} `),
    delayMs: 1,
    usage: { prompt_tokens: 12, completion_tokens: fast },
  });
  console.log(`UPSTREAM_PORTS=${JSON.stringify({ main: main.port, streams: streams.map((m) => m.port) })}`);
  serveUntilStopped(() => Promise.allSettled([main, ...streams].map((m) => m.close())));
}

main().catch((err: unknown) => {
  console.error(`upstream-process failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
