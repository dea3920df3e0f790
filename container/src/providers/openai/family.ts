import { z } from 'zod';
import { familyModelSchema } from '../catalogue';
import type { BuiltFamily, FamilyContext, Provider, ProviderFamily } from '../types';
import { OpenAIProvider } from './openai-provider';

/** A catalogue entry served by any OpenAI-compatible server (OpenAI, vLLM, Ollama, LiteLLM...). */
export const openaiModelSchema = familyModelSchema('openai', {
  /** Upstream base URL (e.g. https://api.openai.com/v1). @default OPENAI_BASE_URL */
  baseUrl: z.string().url().optional(),
  /** Name of the env var holding the upstream API key. @default OPENAI_API_KEY */
  apiKeyEnv: z.string().min(1).optional(),
});

export type OpenAIModelConfig = z.infer<typeof openaiModelSchema>;

/** The default variable of the upstream key. */
export const DEFAULT_API_KEY_ENV = 'OPENAI_API_KEY';

/**
 * Models on one upstream (base URL + key) share one SDK client and connection pool, sized for
 * all their concurrency slots so a slot never waits for a socket.
 */
function build(models: readonly OpenAIModelConfig[], ctx: FamilyContext): BuiltFamily {
  const upstreams = new Map<
    string,
    { baseUrl: string; keyEnv: string; connections: number; ids: string[] }
  >();
  for (const m of models) {
    const baseUrl = m.baseUrl ?? ctx.defaultBaseUrl;
    if (!baseUrl) throw new Error(`Model '${m.id}' has no baseUrl and OPENAI_BASE_URL is not set.`);
    const keyEnv = m.apiKeyEnv ?? DEFAULT_API_KEY_ENV;
    const key = `${baseUrl}|${keyEnv}`;
    const cur = upstreams.get(key) ?? { baseUrl, keyEnv, connections: 0, ids: [] };
    cur.connections += m.maxConcurrent;
    cur.ids.push(m.id);
    upstreams.set(key, cur);
  }
  const providers = new Map<string, Provider>();
  const checks: BuiltFamily['checks'][number][] = [];
  const clients: OpenAIProvider[] = [];
  for (const u of upstreams.values()) {
    // The key is read at each call: a rotated secret reaches running clients (see config/secrets).
    const provider = new OpenAIProvider({
      baseUrl: u.baseUrl,
      apiKey: () => ctx.env[u.keyEnv],
      connections: u.connections,
    });
    clients.push(provider);
    for (const id of u.ids) providers.set(id, provider);
    checks.push({ name: `upstream:${u.ids[0]}`, check: (signal) => provider.check(signal) });
  }
  return {
    providers,
    checks,
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

/**
 * The OPENAI_BASE_URL shortcut: every model the upstream's `GET /models` lists; ids that say
 * "embed" serve embeddings, the rest chat.
 */
function discover(ctx: FamilyContext): ((signal: AbortSignal) => Promise<unknown[]>) | null {
  const baseUrl = ctx.defaultBaseUrl;
  if (!baseUrl) return null;
  return async (signal) => {
    const provider = new OpenAIProvider({ baseUrl, apiKey: () => ctx.env[DEFAULT_API_KEY_ENV] });
    try {
      const ids = await provider.listModels(signal);
      if (ids.length === 0) throw new Error(`OPENAI_BASE_URL=${baseUrl} lists no models (GET /models).`);
      return ids.map((id) => ({
        id,
        provider: 'openai',
        baseUrl,
        ownedBy: 'upstream',
        endpoints: /embed/i.test(id) ? ['embeddings'] : ['chat'],
      }));
    } finally {
      await provider.close();
    }
  };
}

/** The `openai` family: the official openai SDK against any OpenAI-compatible base URL. */
export const openaiFamily = {
  name: 'openai' as const,
  schema: openaiModelSchema,
  build,
  discover,
} satisfies ProviderFamily<typeof openaiModelSchema>;
