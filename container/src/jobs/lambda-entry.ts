import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { readEnv } from '../config/env';
import { loadSecretEnv } from '../config/secrets';
import { ENV, SERVICE_NAMES } from '../contract';
import { createRuntime, type Runtime } from '../runtime';
import type { SqsBatchHandler } from './worker';

/**
 * A Lambda handler over a runtime built once per cold start: secrets first (`<VAR>_SECRET_ARN`,
 * e.g. the provider key), then the runtime. Started during init (Lambda gives init a CPU
 * boost); if it fails, the invocation fails (its batch is retried) and the next one tries again
 * instead of failing for the life of the container.
 */
export function lambdaEntry(make: (rt: Runtime) => SqsBatchHandler) {
  const init = () =>
    loadSecretEnv()
      .then(() => createRuntime(readEnv({ [ENV.serviceName]: SERVICE_NAMES.worker, ...process.env })))
      .then(make);
  let ready: Promise<SqsBatchHandler> | null = init();
  ready.catch(() => {
    ready = null;
  });
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    if (!ready) {
      ready = init();
      ready.catch(() => {
        ready = null;
      });
    }
    return (await ready)(event, context);
  };
}
