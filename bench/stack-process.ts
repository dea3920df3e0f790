/**
 * DynamoDB (dynalite) and SQS (local-aws-sqs) stand-ins with Tollgate's tables and queues,
 * in a process of their own so that their CPU is not charged to the load generator. Prints
 * `STACK_ENV=<json>` (the variables to run the service with) and serves until SIGTERM/SIGINT
 * or until its parent goes away.
 */
import { startLocalStack } from '../container/src/local/stack';

async function main(): Promise<void> {
  const stack = await startLocalStack({ redis: false, prefix: process.argv[2] ?? 'tgbench' });
  console.log(`STACK_ENV=${JSON.stringify(stack.env)}`);
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    void stack.stop().finally(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  // An orphan (parent killed with SIGKILL) notices the lost IPC-less parent by polling.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) shutdown();
  }, 1000).unref();
  setInterval(() => {}, 1 << 30);
}

main().catch((err: unknown) => {
  console.error(`stack-process failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
