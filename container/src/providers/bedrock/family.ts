import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { z } from 'zod';
import { ConfigError } from '../../errors';
import type { DependencyCheck } from '../../telemetry/health';
import { familyModelSchema } from '../catalogue';
import type { BuiltFamily, FamilyContext, Provider, ProviderFamily } from '../types';
import { COHERE_INPUT_TYPES, embeddingApi } from './embeddings';
import { BedrockProvider } from './provider';
import { type RegionProbe, regionCheck } from './readiness';

/**
 * A catalogue entry served by Amazon Bedrock: `upstreamModel` is a model id, an inference
 * profile id or an ARN; credentials come from the default AWS chain and the endpoint from the
 * SDK's own `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` when set.
 */
export const bedrockModelSchema = familyModelSchema('bedrock', {
  /** AWS region of the model or inference profile. @default AWS_REGION */
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'region must be an AWS region name such as us-east-1')
    .optional(),
  /** Cohere embed models: what the texts are for (Cohere's own parameter). @default search_document */
  input_type: z.enum(COHERE_INPUT_TYPES).optional(),
});

export type BedrockModelConfig = z.infer<typeof bedrockModelSchema>;

interface Region {
  client: BedrockRuntimeClient;
  chatModel?: string;
  embeddingModel?: string;
}

/** One client (one HTTP/2 connection pool, one credentials cache) per region, shared by its entries. */
function build(models: readonly BedrockModelConfig[], ctx: FamilyContext): BuiltFamily {
  const regions = new Map<string, Region>();
  const providers = new Map<string, Provider>();
  for (const m of models) {
    const region = m.region ?? ctx.env.AWS_REGION;
    if (!region) {
      throw new ConfigError(
        `Model '${m.id}' (provider bedrock) has no region and AWS_REGION is not set; set one of them.`,
      );
    }
    const upstream = m.upstreamModel ?? m.id;
    const api = embeddingApi(upstream);
    if (m.endpoints.includes('embeddings') && !api) {
      throw new ConfigError(
        `Model '${m.id}' (provider bedrock) serves embeddings, but '${upstream}' is neither an amazon.titan-embed-* nor a cohere.embed-* model.`,
      );
    }
    if (m.input_type !== undefined && api !== 'cohere') {
      throw new ConfigError(
        `Model '${m.id}': input_type applies to Cohere embed models only, not '${upstream}'.`,
      );
    }
    let r = regions.get(region);
    if (!r) {
      // Retries are the provider's (per maxRetries, within the call's deadline), not the SDK's.
      r = { client: new BedrockRuntimeClient({ region, maxAttempts: 1 }) };
      regions.set(region, r);
    }
    if (m.endpoints.includes('chat')) r.chatModel ??= upstream;
    if (m.endpoints.includes('embeddings')) r.embeddingModel ??= upstream;
    providers.set(m.id, new BedrockProvider({ client: r.client, region, inputType: m.input_type }));
  }
  const checks: DependencyCheck[] = [];
  for (const [region, r] of regions) {
    const probe: RegionProbe = r.chatModel
      ? { region, client: r.client, model: r.chatModel, kind: 'chat' }
      : { region, client: r.client, model: r.embeddingModel as string, kind: 'embeddings' };
    checks.push(regionCheck(probe));
  }
  return {
    providers,
    checks,
    close: async () => {
      for (const r of regions.values()) r.client.destroy();
    },
  };
}

/** The `bedrock` family: Amazon Bedrock's Converse API (chat) and InvokeModel (embeddings). */
export const bedrockFamily = {
  name: 'bedrock' as const,
  schema: bedrockModelSchema,
  build,
} satisfies ProviderFamily<typeof bedrockModelSchema>;
