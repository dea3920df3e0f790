import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { readEnv } from '../config/env';
import { loadSecretEnv, type SecretRefresher, watchSecrets } from '../config/secrets';
import { ENV, SERVICE_NAMES } from '../contract';
import { createRuntime, type Runtime } from '../runtime';
import type { SqsBatchHandler } from './worker';

export interface LambdaEntryOptions {
  /**
   * Before each invocation, while model discovery (OPENAI_BASE_URL) has found nothing yet, try
   * it once more and wait for that attempt (bounded by its timeout). A frozen Lambda runs its
   * background retries only during invocations, so without this the invocation that meets a
   * recovered upstream would still fail its jobs. Off for handlers that call no model.
   * @default true
   */
  waitForModels?: boolean;
}

interface Ready {
  rt: Runtime;
  handler: SqsBatchHandler;
  secrets: SecretRefresher;
}

/**
 * A Lambda handler over a runtime built once per cold start: secrets first (`<VAR>_SECRET_ARN`,
 * e.g. the provider key), then the runtime. Started during init (Lambda gives init a CPU
 * boost); if it fails, the invocation fails (its batch is retried) and the next one tries again
 * instead of failing for the life of the container. A warm container reads its secrets again
 * once TOLLGATE_SECRET_REFRESH_MS has passed (a rotated provider key), at the start of an
 * invocation.
 */
export function lambdaEntry(make: (rt: Runtime) => SqsBatchHandler, opts: LambdaEntryOptions = {}) {
  const waitForModels = opts.waitForModels ?? true;
  const init = async (): Promise<Ready> => {
    await loadSecretEnv();
    const rt = await createRuntime(readEnv({ [ENV.serviceName]: SERVICE_NAMES.worker, ...process.env }));
    return { rt, handler: make(rt), secrets: watchSecrets(rt.env.secretRefreshMs, rt.telemetry) };
  };
  let ready: Promise<Ready> | null = null;
  const start = () => {
    const p = init();
    ready = p;
    p.catch(() => {
      if (ready === p) ready = null;
    });
    return p;
  };
  start();
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    const { rt, handler, secrets } = await (ready ?? start());
    await secrets.refreshIfDue();
    if (waitForModels && rt.discovery && !rt.discovery.ready) await rt.discovery.retryNow();
    return handler(event, context);
  };
}
