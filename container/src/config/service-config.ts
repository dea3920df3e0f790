import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { type ModelConfig, modelSchema } from '../providers/registry';

/**
 * The service config file (`tollgate.config.json` / `.yaml`): model catalogue, tiers,
 * cache, limiter, routing, assistant. Validated once at start; a bad field fails with a
 * message naming it.
 */

/** Far above any real budget, and exact as a DynamoDB number and in micro-dollars in the limiter. */
export const MAX_BUDGET_USD = 1e9;

const limitsSchema = z
  .object({
    rpm: z.number().int().positive().optional(),
    tpm: z.number().int().positive().optional(),
    daily_tokens: z.number().int().positive().optional(),
    monthly_budget_usd: z.number().positive().max(MAX_BUDGET_USD).optional(),
  })
  .strict();

const tierSchema = z
  .object({
    limits: limitsSchema.default({}),
    /** Allowed model ids; `*` = all. */
    models: z.array(z.string()).default(['*']),
    /** Upper bound on max_tokens for this tier (a larger request is capped, not refused). */
    maxTokensCap: z.number().int().positive().optional(),
  })
  .strict();

const autoRuleSchema = z
  .object({
    tiers: z.array(z.string()).optional(),
    minPromptTokens: z.number().int().min(0).optional(),
    /** Matches when the prompt contains code (fences or common code shapes). */
    codeHeavy: z.boolean().optional(),
    model: z.string(),
  })
  .strict();

export const serviceConfigSchema = z
  .object({
    models: z.array(modelSchema).default([]),
    tiers: z.record(z.string(), tierSchema).default({
      basic: {
        limits: { rpm: 60, tpm: 100_000, daily_tokens: 1_000_000, monthly_budget_usd: 50 },
        models: ['*'],
        maxTokensCap: 4096,
      },
      premium: {
        limits: { rpm: 600, tpm: 1_000_000, daily_tokens: 20_000_000, monthly_budget_usd: 1000 },
        models: ['*'],
      },
    }),
    defaultTier: z.string().default('basic'),
    auto: z
      .object({ rules: z.array(autoRuleSchema).default([]), default: z.string().optional() })
      .strict()
      .default({ rules: [] }),
    /** What to do when a prompt exceeds the model's context window. */
    contextOverflow: z.enum(['trim', 'reject']).default('trim'),
    cache: z
      .object({
        enabled: z.boolean().default(true),
        ttlSeconds: z.number().int().positive().default(3600),
        maxEntryBytes: z
          .number()
          .int()
          .positive()
          .default(256 * 1024),
        /** Requests with temperature <= this (or with a seed) are cacheable. */
        temperatureThreshold: z.number().min(0).max(2).default(0),
        scope: z.enum(['owner', 'global']).default('owner'),
      })
      .strict()
      .default({
        enabled: true,
        ttlSeconds: 3600,
        maxEntryBytes: 256 * 1024,
        temperatureThreshold: 0,
        scope: 'owner',
      }),
    limiter: z
      .object({ failureMode: z.enum(['open', 'closed']).default('open') })
      .strict()
      .default({ failureMode: 'open' }),
    /**
     * Browser origins allowed to call the API: exact origins (`https://app.example.com`),
     * `localhost` (any port on localhost, 127.0.0.1, [::1]) or `*`. None by default.
     */
    cors: z
      .object({
        allowedOrigins: z
          .array(
            z
              .string()
              .regex(
                /^(\*|localhost|https?:\/\/[^/\s]+)$/,
                'must be an origin (https://host[:port]), localhost or *',
              ),
          )
          .default([]),
      })
      .strict()
      .default({ allowedOrigins: [] }),
    streaming: z
      .object({ pingIntervalMs: z.number().int().positive().default(15_000) })
      .strict()
      .default({ pingIntervalMs: 15_000 }),
    assistant: z
      .object({
        systemPrompt: z.string().min(1).optional(),
        model: z.string().optional(),
        historyLimit: z.number().int().positive().default(50),
        maxMessageChars: z.number().int().positive().default(8000),
        maxTokens: z.number().int().positive().default(512),
        /** Days a conversation is kept after its last message (DynamoDB TTL); 0 = until deleted. */
        retentionDays: z.number().min(0).default(0),
      })
      .strict()
      .default({ historyLimit: 50, maxMessageChars: 8000, maxTokens: 512, retentionDays: 0 }),
    jobs: z
      .object({
        ttlDays: z.number().positive().default(7),
        maxQueueDepth: z.number().int().positive().default(10_000),
        depthCheckIntervalMs: z.number().int().positive().default(5000),
      })
      .strict()
      .default({ ttlDays: 7, maxQueueDepth: 10_000, depthCheckIntervalMs: 5000 }),
    usage: z
      .object({
        flushIntervalMs: z.number().int().positive().default(1000),
        maxBatch: z.number().int().positive().max(25).default(25),
        /** Keep per-request rows this long (days); 0 = forever. */
        retentionDays: z.number().min(0).default(400),
      })
      .strict()
      .default({ flushIntervalMs: 1000, maxBatch: 25, retentionDays: 400 }),
  })
  .strict();

export type { ModelConfig };
export type TierConfig = z.infer<typeof tierSchema>;
export type Limits = z.infer<typeof limitsSchema>;
export type ServiceConfig = z.infer<typeof serviceConfigSchema>;

/**
 * The tier named `name`, or undefined. Own properties only: `cfg.tiers['constructor']` would
 * otherwise find Object's constructor and hand out a key with no limits at all.
 */
export function tierOf(cfg: Pick<ServiceConfig, 'tiers'>, name: string): TierConfig | undefined {
  return Object.hasOwn(cfg.tiers, name) ? cfg.tiers[name] : undefined;
}

export function formatZodIssues(source: string, error: z.ZodError): string {
  const lines = error.issues.flatMap((i) => {
    const at = i.path.join('.');
    // One line per unknown field, named (a field of another provider family, a typo).
    if (i.code === 'unrecognized_keys')
      return i.keys.map((k) => `  - ${at ? `${at}.${k}` : k}: is not a known field here`);
    return [`  - ${at || '(root)'}: ${i.message}`];
  });
  return `Invalid ${source}:\n${lines.join('\n')}`;
}

/** Validate a parsed config object; cross-field checks (fallbacks, tiers, auto rules) included. */
export function parseServiceConfig(raw: unknown, source = 'service config'): ServiceConfig {
  const result = serviceConfigSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatZodIssues(source, result.error));
  const cfg = result.data;
  const problems: string[] = [];
  const ids = new Set<string>();
  cfg.models.forEach((m, i) => {
    if (ids.has(m.id)) problems.push(`models.${i}.id: duplicate model id '${m.id}'`);
    if (m.id === 'auto') problems.push(`models.${i}.id: 'auto' is reserved for automatic routing`);
    ids.add(m.id);
  });
  cfg.models.forEach((m, i) => {
    m.fallbacks.forEach((f, j) => {
      if (!ids.has(f)) problems.push(`models.${i}.fallbacks.${j}: unknown model '${f}'`);
      if (f === m.id) problems.push(`models.${i}.fallbacks.${j}: a model cannot fall back to itself`);
    });
  });
  if (!tierOf(cfg, cfg.defaultTier)) problems.push(`defaultTier: unknown tier '${cfg.defaultTier}'`);
  cfg.auto.rules.forEach((r, i) => {
    if (ids.size && !ids.has(r.model)) problems.push(`auto.rules.${i}.model: unknown model '${r.model}'`);
  });
  if (problems.length)
    throw new ConfigError(`Invalid ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return cfg;
}

/** Read the config from TOLLGATE_CONFIG_JSON (inline) or a JSON/YAML file path; empty config when neither. */
export function loadServiceConfig(opts: {
  inline?: string | undefined;
  path?: string | undefined;
}): ServiceConfig {
  if (opts.inline) {
    let raw: unknown;
    try {
      raw = JSON.parse(opts.inline);
    } catch (err) {
      throw new ConfigError(`TOLLGATE_CONFIG_JSON is not valid JSON: ${(err as Error).message}`);
    }
    return parseServiceConfig(raw, 'TOLLGATE_CONFIG_JSON');
  }
  if (opts.path) {
    let text: string;
    try {
      text = readFileSync(opts.path, 'utf8');
    } catch (err) {
      throw new ConfigError(`TOLLGATE_CONFIG: cannot read ${opts.path}: ${(err as Error).message}`);
    }
    let raw: unknown;
    try {
      raw = /\.ya?ml$/i.test(opts.path) ? parseYaml(text) : JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`TOLLGATE_CONFIG: ${opts.path} does not parse: ${(err as Error).message}`);
    }
    return parseServiceConfig(raw, opts.path);
  }
  return parseServiceConfig({});
}

/** The simulator catalogue served when no model and no upstream is configured. */
export function simulatorModels(): ModelConfig[] {
  const base = { provider: 'simulator', pricing: { input: 0, output: 0 }, ownedBy: 'tollgate-simulator' };
  return [
    modelSchema.parse({ ...base, id: 'simulator', contextWindow: 128_000 }),
    modelSchema.parse({ ...base, id: 'simulator-large', contextWindow: 200_000 }),
    // Deterministic unit vectors, so embeddings work with no upstream too.
    modelSchema.parse({
      ...base,
      id: 'simulator-embedding',
      endpoints: ['embeddings'],
      contextWindow: 8192,
      dimensions: 256,
    }),
  ];
}
