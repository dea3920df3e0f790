import {
  type BedrockRuntimeClient,
  ConverseCommand,
  InvokeModelCommand,
} from '@aws-sdk/client-bedrock-runtime';
import type { DependencyCheck } from '../../telemetry/health';
import { mapBedrockError } from './errors';

/** What the readiness check of a region calls. */
export interface RegionProbe {
  readonly region: string;
  readonly client: BedrockRuntimeClient;
  /** A model of the region's catalogue entries. */
  readonly model: string;
  /** Chat models are probed with Converse, embedding-only regions with InvokeModel. */
  readonly kind: 'chat' | 'embeddings';
}

/** Bedrock's answer to an invalid model id is a ValidationException too: not a pass. */
const BAD_MODEL_ID = /model identifier is invalid|invalid model identifier/i;

/**
 * A readiness check per region that costs nothing and needs no permission beyond
 * `bedrock:InvokeModel`: a request for a configured model that Bedrock refuses with a
 * ValidationException before the model generates anything (Converse with no messages,
 * InvokeModel with an empty body). Reaching that refusal proves the endpoint, the credentials
 * and the access to that model (AccessDenied, ResourceNotFound and throttling fail the check).
 */
export function regionCheck(p: RegionProbe): DependencyCheck {
  return {
    name: `bedrock:${p.region}`,
    check: async (signal) => {
      try {
        if (p.kind === 'chat') {
          await p.client.send(
            new ConverseCommand({ modelId: p.model, messages: [], inferenceConfig: { maxTokens: 1 } }),
            { abortSignal: signal },
          );
        } else {
          await p.client.send(
            new InvokeModelCommand({
              modelId: p.model,
              body: '{}',
              contentType: 'application/json',
              accept: 'application/json',
            }),
            { abortSignal: signal },
          );
        }
        return { model: p.model };
      } catch (err) {
        const e = err as { name?: string; message?: string };
        if (e.name === 'ValidationException' && !BAD_MODEL_ID.test(e.message ?? ''))
          return { model: p.model };
        if (signal.aborted) throw new Error(`Amazon Bedrock in ${p.region} did not answer in time.`);
        throw mapBedrockError(err, { model: p.model, region: p.region });
      }
    },
  };
}
