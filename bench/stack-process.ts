/**
 * One AWS stand-in in a process of its own, so that its CPU is not charged to anybody else and
 * DynamoDB and SQS do not queue behind each other (in AWS they are separate services):
 * `dynamodb` runs dynalite, `sqs` runs local-aws-sqs. Prints `URL=<endpoint>` once listening and
 * serves until SIGTERM/SIGINT or until its parent goes away. The tables and queues are created
 * by the benchmark (`startStack` in lib/services.ts) through the endpoints.
 */
import { startDynalite } from '../container/src/local/dynamo';
import { startLocalSqs } from '../container/src/local/sqs';
import { serveUntilStopped } from './lib/procs';

async function main(): Promise<void> {
  const kind = process.argv[2];
  if (kind !== 'dynamodb' && kind !== 'sqs') throw new Error(`usage: stack-process.ts dynamodb|sqs`);
  const service = kind === 'dynamodb' ? await startDynalite() : await startLocalSqs();
  console.log(`URL=${service.url}`);
  serveUntilStopped(() => service.stop());
}

main().catch((err: unknown) => {
  console.error(`stack-process failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
