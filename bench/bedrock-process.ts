/**
 * The Bedrock-protocol test server for the benchmarks, in a process of its own: models
 * `stream-<n>` (for each `--deltas n`, default 20 and 400) stream n text deltas, `--delay-ms`
 * apart (default 0: as fast as the server writes), every frame split across two writes as in
 * the tests unless `--whole-frames`. Prints `AWS_ENDPOINT_URL_BEDROCK_RUNTIME=<url>` and serves until SIGTERM/SIGINT or until its parent
 * goes away.
 */
import { startBedrockServer } from '../test/helpers/bedrock-server';
import { serveUntilStopped } from './lib/procs';

async function main(): Promise<void> {
  const counts: number[] = [];
  let delayMs = 0;
  for (let i = 0; i < process.argv.length; i++) {
    if (process.argv[i] === '--deltas') counts.push(Number(process.argv[i + 1]));
    if (process.argv[i] === '--delay-ms') delayMs = Number(process.argv[i + 1]);
  }
  const splitFrames = !process.argv.includes('--whole-frames');
  const server = await startBedrockServer();
  for (const n of counts.length ? counts : [20, 400]) {
    server.setDefault(`stream-${n}`, {
      kind: 'stream',
      text: Array.from({ length: n }, (_, i) => `tok${i} `),
      usage: { inputTokens: 12, outputTokens: n },
      delayMs,
      splitFrames,
    });
  }
  console.log(`AWS_ENDPOINT_URL_BEDROCK_RUNTIME=${server.url}`);
  serveUntilStopped(() => server.close());
}

main().catch((err: unknown) => {
  console.error(`bedrock-process failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
