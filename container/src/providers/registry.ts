/**
 * The provider families. Adding one (Anthropic, Azure OpenAI...) is a folder under
 * `providers/` exporting a {@link ProviderFamily}, plus one line in {@link FAMILIES}.
 */
import { z } from 'zod';
import type { DependencyCheck } from '../telemetry/health';
import { bedrockFamily } from './bedrock/family';
import { openaiFamily } from './openai/family';
import { simulatorFamily } from './simulator/family';
import type { FamilyContext, Provider } from './types';

export const FAMILIES = [openaiFamily, bedrockFamily, simulatorFamily] as const;

/** The `provider` values the catalogue accepts. */
export const FAMILY_NAMES: readonly string[] = FAMILIES.map((f) => f.name);

type Family = (typeof FAMILIES)[number];

/** One catalogue entry: a branch of the union on `provider`. */
export type ModelConfig = z.infer<Family['schema']>;

/** Entries without `provider` are OpenAI-compatible (the catalogue's first and default family). */
function defaultProvider(v: unknown): unknown {
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !('provider' in v))
    return { ...v, provider: 'openai' };
  return v;
}

/** A catalogue entry: the common fields plus its family's, by `provider`. */
export const modelSchema = z.preprocess(
  defaultProvider,
  z.discriminatedUnion('provider', [FAMILIES[0].schema, ...FAMILIES.slice(1).map((f) => f.schema)], {
    error: (issue) =>
      issue.code === 'invalid_union' ? `provider must be one of ${FAMILY_NAMES.join(', ')}` : undefined,
  }),
) as unknown as z.ZodType<ModelConfig, unknown>;

/** A catalogue entry with the provider that serves it. */
export interface CatalogueEntry {
  readonly config: ModelConfig;
  readonly provider: Provider;
}

/** The providers of a whole catalogue. */
export interface BuiltCatalogue {
  readonly entries: readonly CatalogueEntry[];
  readonly checks: readonly DependencyCheck[];
  close(): Promise<void>;
}

/** Build every family's providers for `models` (catalogue order kept). */
export function buildCatalogue(models: readonly ModelConfig[], ctx: FamilyContext): BuiltCatalogue {
  const byId = new Map<string, Provider>();
  const checks: DependencyCheck[] = [];
  const closers: Array<() => Promise<void>> = [];
  for (const family of FAMILIES) {
    const mine = models.filter((m) => m.provider === family.name);
    if (mine.length === 0) continue;
    // Each family's build takes its own branch of the union.
    const built = (
      family.build as (m: readonly ModelConfig[], c: FamilyContext) => ReturnType<Family['build']>
    )(mine, ctx);
    for (const [id, p] of built.providers) byId.set(id, p);
    checks.push(...built.checks);
    if (built.close) closers.push(built.close);
  }
  const entries = models.map((config) => {
    const provider = byId.get(config.id);
    if (!provider) throw new Error(`No provider was built for model '${config.id}' (${config.provider}).`);
    return { config, provider };
  });
  return {
    entries,
    checks,
    close: async () => {
      await Promise.allSettled(closers.map((c) => c()));
    },
  };
}
