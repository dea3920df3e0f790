/**
 * Lambda entry: the async job worker on the jobs queue (SQS event source, partial batch
 * responses). The runtime is built once per cold start; see container/src/jobs/worker.ts.
 */
import { lambdaEntry } from '../container/src/jobs/lambda-entry';
import { createWorkerHandler } from '../container/src/jobs/worker';

export const handler = lambdaEntry((rt) => createWorkerHandler(rt));
