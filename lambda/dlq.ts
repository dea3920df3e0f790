/**
 * Lambda entry: the DLQ handler on the jobs dead-letter queue. Marks jobs whose messages died
 * as failed; see createDlqHandler in container/src/jobs/worker.ts.
 */
import { lambdaEntry } from '../container/src/jobs/lambda-entry';
import { createDlqHandler } from '../container/src/jobs/worker';

// It calls no model: no waiting for model discovery.
export const handler = lambdaEntry((rt) => createDlqHandler(rt), { waitForModels: false });
