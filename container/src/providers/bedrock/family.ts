import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { z } from 'zod';
import { ConfigError } from '../../errors';
import type { DependencyCheck } from '../../telemetry/health';
import { familyModelSchema } from '../catalogue';
import type { BuiltFamily, FamilyContext, Provider, ProviderFamily } from '../types';
import { COHERE_INPUT_TYPES, embeddingApi, TITAN_CONCURRENCY } from './embeddings';
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
  client?: BedrockRuntimeClient;
  /** Connections the region's entries can use at once (their concurrency slots). */
  sockets: number;
  chatModel?: string;
  embeddingModel?: string;
}

/**
 * The region's client: retries off (the provider retries per maxRetries, within the call's
 * deadline), and HTTP/1.1 with keep-alive rather than the SDK's default HTTP/2 handler, which
 * opens a fresh HTTP/2 session (a TCP and TLS handshake) for every ConverseStream call and
 * costs more CPU per streamed event; measured in bench/bedrock-translate.ts.
 */
function regionClient(region: string, sockets: number): BedrockRuntimeClient {
  const agent = { keepAlive: true, maxSockets: sockets };
  return new BedrockRuntimeClient({
    region,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agent),
      httpsAgent: new HttpsAgent(agent),
    }),
  });
}

/** One client (one connection pool, one credentials cache) per region, shared by its entries. */
function build(models: readonly BedrockModelConfig[], ctx: FamilyContext): BuiltFamily {
  const regions = new Map<string, Region>();
  const providers = new Map<string, Provider>();
  const pending: Array<{
    id: string;
    region: Region;
    regionName: string;
    inputType: BedrockModelConfig['input_type'];
  }> = [];
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
      r = { sockets: 0 };
      regions.set(region, r);
    }
    // A Titan embeddings call fans out into several InvokeModel calls per slot.
    r.sockets += m.maxConcurrent * (api === 'titan' ? TITAN_CONCURRENCY : 1);
    if (m.endpoints.includes('chat')) r.chatModel ??= upstream;
    if (m.endpoints.includes('embeddings')) r.embeddingModel ??= upstream;
    pending.push({ id: m.id, region: r, regionName: region, inputType: m.input_type });
  }
  const checks: DependencyCheck[] = [];
  const clients: BedrockRuntimeClient[] = [];
  for (const [region, r] of regions) {
    const client = regionClient(region, r.sockets);
    r.client = client;
    clients.push(client);
    const probe: RegionProbe = r.chatModel
      ? { region, client, model: r.chatModel, kind: 'chat' }
      : { region, client, model: r.embeddingModel as string, kind: 'embeddings' };
    checks.push(regionCheck(probe));
  }
  for (const p of pending) {
    providers.set(
      p.id,
      new BedrockProvider({
        client: p.region.client as BedrockRuntimeClient,
        region: p.regionName,
        inputType: p.inputType,
      }),
    );
  }
  return {
    providers,
    checks,
    close: async () => {
      for (const c of clients) c.destroy();
    },
  };
}

/** The `bedrock` family: Amazon Bedrock's Converse API (chat) and InvokeModel (embeddings). */
export const bedrockFamily = {
  name: 'bedrock' as const,
  schema: bedrockModelSchema,
  build,
} satisfies ProviderFamily<typeof bedrockModelSchema>;
