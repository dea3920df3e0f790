/**
 * The typed, validated deployment config. `bin/app.ts` loads the raw values (cdk.json
 * context and an optional config file), `parseConfig` validates them once and merges the
 * profile defaults from `lib/defaults.ts`; constructs receive the result as props.
 *
 * Every field is documented in README.md ("Configuration").
 */
import { readFileSync } from 'node:fs';
import { extname, resolve as resolvePath } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
// The one runtime import of the CDK app, on purpose: the catalogue is checked at synth with the
// schema the service will apply at start (pure zod, no I/O), so a bad catalogue fails `cdk synth`,
// not the first task. Everything else the CDK app knows of the runtime is in contract.ts.
import { parseServiceConfig } from '../container/src/config/service-config';
import { ConfigError, type ConfigIssue } from './config-error';
import {
  costThresholds,
  DEFAULT_ENVIRONMENT,
  FIXED,
  PRODUCTION_ENVIRONMENT_NAMES,
  PROFILES,
  type ProfileDefaults,
  type ProfileName,
} from './defaults';
import {
  type CatalogueEntryFields,
  CROSS_REGION_PROFILE_REGIONS,
  DEFAULT_KEY_VARIABLE,
} from './provider-grants';

export { ConfigError, type ConfigIssue } from './config-error';

const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** Fargate task sizes: memory (MiB) allowed per CPU unit value. */
const FARGATE_MEMORY: Readonly<Record<number, readonly number[]>> = {
  256: [512, 1024, 2048],
  512: range(1024, 4096, 1024),
  1024: range(2048, 8192, 1024),
  2048: range(4096, 16384, 1024),
  4096: range(8192, 30720, 1024),
  8192: range(16384, 61440, 4096),
  16384: range(32768, 122880, 8192),
};

function range(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let v = from; v <= to; v += step) out.push(v);
  return out;
}

const int = () => z.number().int();
const hostname = z
  .string()
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i, 'must be a DNS name');

const vpcSchema = z
  .object({
    vpcId: z
      .string()
      .regex(/^vpc-[0-9a-f]{8,17}$/, 'must look like vpc-0123456789abcdef0')
      .optional(),
    cidr: z
      .string()
      .regex(/^(\d{1,3}\.){3}\d{1,3}\/(1[6-9]|2[0-4])$/, 'must be an IPv4 CIDR between /16 and /24')
      .optional(),
    maxAzs: int().min(2).max(3).optional(),
    natGateways: int().min(0).max(3).optional(),
    natType: z.enum(['gateway', 'instance']).optional(),
    natInstanceType: z
      .string()
      .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'must be an EC2 instance type such as t4g.nano')
      .optional(),
    interfaceEndpoints: z.boolean().optional(),
    bedrockEndpoint: z.boolean().optional(),
    flowLogs: z.boolean().optional(),
  })
  .strict();

const domainSchema = z
  .object({
    domainName: hostname.optional(),
    certificateArn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[0-9a-f-]+$/,
        'must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)',
      )
      .optional(),
    hostedZoneId: z
      .string()
      .regex(/^Z[0-9A-Z]{4,31}$/, 'must be a Route 53 hosted zone id such as Z0123456789ABCDEF')
      .optional(),
    hostedZoneName: hostname.optional(),
  })
  .strict();

const serviceSchema = z
  .object({
    cpu: z
      .union([z.literal(256), z.literal(512), z.literal(1024), z.literal(2048), z.literal(4096)])
      .or(z.literal(8192))
      .or(z.literal(16384))
      .optional(),
    memoryMiB: int().min(512).optional(),
    architecture: z.enum(['arm64', 'x86_64']).optional(),
    minTasks: int().min(1).max(100).optional(),
    maxTasks: int().min(1).max(1000).optional(),
    cpuTargetPercent: int().min(10).max(95).optional(),
    requestsPerTargetPerMinute: int().min(1).optional(),
    longestStreamSeconds: int()
      .min(10)
      .max(FIXED.maxDeregistrationDelaySeconds - FIXED.deregistrationMarginSeconds)
      .optional(),
    logRetentionDays: z
      .number()
      .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
        message: `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
      })
      .optional(),
    containerInsights: z.boolean().optional(),
    logLevel: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']).optional(),
    limiterFailureMode: z.enum(['open', 'closed']).optional(),
  })
  .strict();

const envVarName = z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an environment variable name');
const secretName = z
  .string()
  .regex(
    /^([\w/+=.@-]{1,512}|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+-[A-Za-z0-9]{6})$/,
    'must be a Secrets Manager secret name (letters, digits, /_+=.@-) or a complete secret ARN',
  );

const upstreamSchema = z
  .object({
    baseUrl: z.url({ protocol: /^https?$/ }).optional(),
    apiKeySecretName: secretName.optional(),
    extraApiKeySecrets: z.record(envVarName, secretName).optional(),
  })
  .strict();

const cacheSchema = z
  .object({
    mode: z.enum(['node', 'serverless']).optional(),
    engine: z.enum(['valkey', 'redis']).optional(),
    nodeType: z
      .string()
      .regex(/^cache\.[a-z0-9]+\.[a-z0-9]+$/, 'must be a cache node type such as cache.t4g.micro')
      .optional(),
    replicas: int().min(0).max(5).optional(),
    serverlessMaxStorageGb: int().min(1).max(5000).optional(),
    snapshotRetentionDays: int().min(0).max(35).optional(),
  })
  .strict();

const workerSchema = z
  .object({
    timeoutSeconds: int().min(10).max(900).optional(),
    memoryMiB: int().min(128).max(10240).optional(),
    batchSize: int().min(1).max(10).optional(),
    maxConcurrency: int().min(2).max(1000).optional(),
    queueMaxDepth: int().min(1).optional(),
  })
  .strict();

const region = z
  .string()
  .regex(/^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/, 'must be an AWS region such as eu-west-1');

const alarmsSchema = z
  .object({
    email: z.email().optional(),
    topicArn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/,
        'must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)',
      )
      .optional(),
    runbookUrl: z.url({ protocol: /^https?$/ }).optional(),
    queueDepth: int().min(1).optional(),
    oldestMessageAgeSeconds: int().min(60).optional(),
    p99LatencyMs: z.number().positive().optional(),
    error5xxRatePercent: z.number().positive().max(100).optional(),
    unhealthyHosts: int().min(0).optional(),
    redisMemoryPercent: z.number().positive().max(100).optional(),
    workerErrors: int().min(0).optional(),
    costPerHourUsd: z.number().positive().optional(),
    costPerDayUsd: z.number().positive().optional(),
  })
  .strict();

/** The schema of the raw config (every field optional; defaults come from the profile). */
export const configInputSchema = z
  .object({
    environment: z
      .string()
      .regex(
        /^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$/,
        'must be 1-20 lowercase letters, digits or hyphens, starting with a letter',
      )
      .optional(),
    production: z.boolean().optional(),
    account: z
      .string()
      .regex(/^\d{12}$/, 'must be a 12-digit AWS account id')
      .optional(),
    region: region.optional(),
    removalPolicy: z.enum(['destroy', 'retain']).optional(),
    tags: z.record(z.string().min(1).max(128), z.string().max(256)).optional(),
    vpc: vpcSchema.optional(),
    domain: domainSchema.optional(),
    service: serviceSchema.optional(),
    upstream: upstreamSchema.optional(),
    serviceConfigFile: z.string().min(1).optional(),
    /** The model catalogue (checked at synth with the runtime's own schema). */
    models: z.array(z.unknown()).optional(),
    bedrock: z
      .object({
        profileRegions: z
          .record(
            z.string().regex(/^[a-z][a-z-]*$/, 'must be a profile id prefix such as us or eu'),
            z.array(region).min(1),
          )
          .optional(),
      })
      .strict()
      .optional(),
    metricsNamespace: z
      .string()
      .regex(/^[A-Za-z0-9_./#:-]{1,255}$/, 'must be a CloudWatch namespace')
      .refine((n) => !n.startsWith('AWS/'), { message: 'must not start with AWS/' })
      .optional(),
    cache: cacheSchema.optional(),
    worker: workerSchema.optional(),
    loadBalancer: z.object({ accessLogs: z.boolean().optional() }).strict().optional(),
    waf: z
      .object({
        enabled: z.boolean().optional(),
        rateLimitPer5Minutes: int().min(10).max(2_000_000_000).optional(),
      })
      .strict()
      .optional(),
    monthlyLlmBudgetUsd: z.number().positive().optional(),
    alarms: alarmsSchema.optional(),
  })
  .strict();

/** The raw config as a user writes it. */
export type TollgateConfigInput = z.input<typeof configInputSchema>;

/** HTTPS settings: a certificate for `domainName`, and optionally a Route 53 alias record. */
export interface DomainConfig {
  readonly domainName: string;
  readonly certificateArn: string;
  readonly hostedZoneId?: string;
  readonly hostedZoneName?: string;
}

/** The fully resolved deployment config: every default applied, every field checked. */
export interface TollgateConfig {
  readonly environment: string;
  readonly production: boolean;
  readonly profile: ProfileName;
  readonly account?: string;
  readonly region?: string;
  readonly removalPolicy: 'destroy' | 'retain';
  readonly tags: Readonly<Record<string, string>>;
  readonly vpc: ProfileDefaults['vpc'] & {
    readonly vpcId?: string;
    readonly interfaceEndpoints: boolean;
    /** @default - on when the catalogue has Bedrock models and the profile is production or has no NAT */
    readonly bedrockEndpoint?: boolean;
  };
  readonly domain?: DomainConfig;
  readonly service: ProfileDefaults['service'] & { readonly limiterFailureMode?: 'open' | 'closed' };
  readonly upstream: {
    readonly baseUrl?: string;
    readonly apiKeySecretName?: string;
    readonly extraApiKeySecrets: Readonly<Record<string, string>>;
  };
  readonly serviceConfigFile?: string;
  /** The catalogue as written (validated with the service config by {@link resolveServiceConfig}). */
  readonly models?: readonly unknown[];
  readonly bedrock: {
    /** Destination regions of geographic cross-region profiles, by prefix (defaults merged in). */
    readonly profileRegions: Readonly<Record<string, readonly string[]>>;
  };
  readonly metricsNamespace: string;
  readonly cache: ProfileDefaults['cache'];
  readonly worker: ProfileDefaults['worker'];
  readonly loadBalancer: ProfileDefaults['loadBalancer'];
  readonly waf: ProfileDefaults['waf'];
  readonly monthlyLlmBudgetUsd: number;
  readonly alarms: ProfileDefaults['alarms'] & {
    readonly email?: string;
    readonly topicArn?: string;
    readonly runbookUrl?: string;
    readonly costPerHourUsd: number;
    readonly costPerDayUsd: number;
  };
}

type Input = z.output<typeof configInputSchema>;

/**
 * Validate a raw config and merge the profile defaults. Throws one {@link ConfigError}
 * naming every bad field, including conflicts between fields.
 */
export function parseConfig(raw: unknown): TollgateConfig {
  const parsed = configInputSchema.safeParse(raw ?? {});
  if (parsed.success) {
    const config = resolve(parsed.data);
    const conflicts = crossFieldIssues(parsed.data, config);
    if (conflicts.length > 0) throw new ConfigError(conflicts);
    return config;
  }
  const issues = zodIssues(parsed.error);
  // Check conflicts among the fields that are valid on their own, so one run names all.
  const reparsed = configInputSchema.safeParse(withoutPaths(raw, parsed.error.issues));
  if (reparsed.success) issues.push(...crossFieldIssues(reparsed.data, resolve(reparsed.data)));
  throw new ConfigError(dedupe(issues));
}

function resolve(input: Input): TollgateConfig {
  const environment = input.environment ?? DEFAULT_ENVIRONMENT;
  const production = input.production ?? PRODUCTION_ENVIRONMENT_NAMES.includes(environment);
  const profile: ProfileName = production ? 'production' : 'small';
  const d = PROFILES[profile];
  const budget = input.monthlyLlmBudgetUsd ?? d.monthlyLlmBudgetUsd;
  const cost = costThresholds(budget);
  const vpc = { ...d.vpc, ...input.vpc };
  const alarms = { ...d.alarms, ...input.alarms };
  return {
    environment,
    production,
    profile,
    ...(input.account !== undefined && { account: input.account }),
    ...(input.region !== undefined && { region: input.region }),
    removalPolicy: input.removalPolicy ?? d.removalPolicy,
    tags: input.tags ?? {},
    vpc: { ...vpc, interfaceEndpoints: input.vpc?.interfaceEndpoints ?? vpc.natGateways === 0 },
    ...(input.domain?.domainName !== undefined &&
      input.domain.certificateArn !== undefined && {
        domain: {
          domainName: input.domain.domainName,
          certificateArn: input.domain.certificateArn,
          ...(input.domain.hostedZoneId !== undefined && { hostedZoneId: input.domain.hostedZoneId }),
          ...(input.domain.hostedZoneName !== undefined && { hostedZoneName: input.domain.hostedZoneName }),
        },
      }),
    service: { ...d.service, ...input.service },
    upstream: {
      ...(input.upstream?.baseUrl !== undefined && { baseUrl: input.upstream.baseUrl }),
      ...(input.upstream?.apiKeySecretName !== undefined && {
        apiKeySecretName: input.upstream.apiKeySecretName,
      }),
      extraApiKeySecrets: input.upstream?.extraApiKeySecrets ?? {},
    },
    ...(input.serviceConfigFile !== undefined && { serviceConfigFile: input.serviceConfigFile }),
    ...(input.models !== undefined && { models: input.models }),
    bedrock: { profileRegions: { ...CROSS_REGION_PROFILE_REGIONS, ...input.bedrock?.profileRegions } },
    metricsNamespace: input.metricsNamespace ?? d.metricsNamespace,
    cache: { ...d.cache, ...input.cache },
    worker: { ...d.worker, ...input.worker },
    loadBalancer: { ...d.loadBalancer, ...input.loadBalancer },
    waf: { ...d.waf, ...input.waf },
    monthlyLlmBudgetUsd: budget,
    alarms: {
      ...alarms,
      costPerHourUsd: alarms.costPerHourUsd ?? cost.perHourUsd,
      costPerDayUsd: alarms.costPerDayUsd ?? cost.perDayUsd,
    },
  };
}

/** Conflicts between fields, checked on the explicit input and the merged result. */
function crossFieldIssues(input: Input, c: TollgateConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path, message });

  const dom = input.domain;
  if (dom) {
    if ((dom.domainName === undefined) !== (dom.certificateArn === undefined)) {
      add(
        dom.domainName === undefined ? 'domain.domainName' : 'domain.certificateArn',
        'domain.domainName and domain.certificateArn go together (HTTPS needs both)',
      );
    }
    if ((dom.hostedZoneId === undefined) !== (dom.hostedZoneName === undefined)) {
      add(
        dom.hostedZoneId === undefined ? 'domain.hostedZoneId' : 'domain.hostedZoneName',
        'domain.hostedZoneId and domain.hostedZoneName go together',
      );
    }
    if (dom.hostedZoneName && dom.domainName && !isWithinZone(dom.domainName, dom.hostedZoneName)) {
      add('domain.domainName', `must be inside the hosted zone ${dom.hostedZoneName}`);
    }
    const certRegion = dom.certificateArn?.split(':')[3];
    if (certRegion && c.region && certRegion !== c.region) {
      add('domain.certificateArn', `is in ${certRegion} but the stack deploys to ${c.region}`);
    }
  }

  if (input.vpc?.vpcId !== undefined) {
    for (const key of ['cidr', 'maxAzs', 'natGateways', 'natType', 'natInstanceType', 'flowLogs'] as const) {
      if (input.vpc[key] !== undefined) {
        add(`vpc.${key}`, 'applies only to a new VPC; remove it or remove vpc.vpcId');
      }
    }
  } else if (c.vpc.natGateways > c.vpc.maxAzs) {
    add('vpc.natGateways', `must not exceed vpc.maxAzs (${c.vpc.maxAzs})`);
  }

  const allowedMemory = FARGATE_MEMORY[c.service.cpu] ?? [];
  if (!allowedMemory.includes(c.service.memoryMiB)) {
    add(
      'service.memoryMiB',
      `${c.service.memoryMiB} is not a Fargate size for service.cpu ${c.service.cpu}; ` +
        `allowed: ${compactList(allowedMemory)}`,
    );
  }
  if (c.service.minTasks > c.service.maxTasks) {
    add('service.minTasks', `must not exceed service.maxTasks (${c.service.maxTasks})`);
  }

  if (c.cache.mode === 'serverless') {
    for (const key of ['nodeType', 'replicas'] as const) {
      if (input.cache?.[key] !== undefined) add(`cache.${key}`, 'applies only to cache.mode "node"');
    }
  } else if (input.cache?.serverlessMaxStorageGb !== undefined) {
    add('cache.serverlessMaxStorageGb', 'applies only to cache.mode "serverless"');
  }

  if (input.waf?.rateLimitPer5Minutes !== undefined && !c.waf.enabled) {
    add('waf.rateLimitPer5Minutes', 'has no effect while waf.enabled is false');
  }
  return issues;
}

function isWithinZone(name: string, zone: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const z2 = zone.toLowerCase().replace(/\.$/, '');
  return n === z2 || n.endsWith(`.${z2}`);
}

function compactList(values: readonly number[]): string {
  if (values.length <= 4) return values.join(', ');
  return `${values[0]}-${values[values.length - 1]} in steps of ${(values[1] ?? 0) - (values[0] ?? 0)}`;
}

function zodIssues(error: z.ZodError): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const base = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ path: base ? `${base}.${key}` : key, message: 'is not a known field' });
      }
    } else {
      out.push({ path: base, message: issue.message });
    }
  }
  return out;
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.path}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** A deep copy of `raw` without the values at the failing paths (and unknown keys). */
function withoutPaths(raw: unknown, issues: readonly z.core.$ZodIssue[]): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return {};
  const copy = structuredClone(raw) as Record<string, unknown>;
  for (const issue of issues) {
    const path = issue.path.map(String);
    const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...path, k]) : [path];
    for (const p of keys) deletePath(copy, p);
  }
  return copy;
}

function deletePath(obj: Record<string, unknown>, path: readonly string[]): void {
  if (path.length === 0) return;
  let node: unknown = obj;
  for (const key of path.slice(0, -1)) {
    if (typeof node !== 'object' || node === null) return;
    node = (node as Record<string, unknown>)[key];
  }
  if (typeof node === 'object' && node !== null)
    delete (node as Record<string, unknown>)[path[path.length - 1]!];
}

/** Where the stack deploys: explicit account/region from the config, else the CLI's defaults. */
export interface StackEnvironment {
  readonly account?: string;
  readonly region?: string;
}

/**
 * The stack environment. The stack stays environment-agnostic unless the config names an
 * account/region, except where synthesis needs them: importing a VPC (`Vpc.fromLookup`
 * needs account and region) and ALB access logs (the bucket policy names the region's
 * load balancer principal). Those fall back to the CLI's `CDK_DEFAULT_ACCOUNT` /
 * `CDK_DEFAULT_REGION` and fail with a clear message without them.
 */
export function resolveStackEnvironment(
  config: TollgateConfig,
  processEnv: Readonly<Record<string, string | undefined>>,
): StackEnvironment {
  const needsAccount = config.vpc.vpcId !== undefined;
  const needsRegion = needsAccount || config.loadBalancer.accessLogs;
  const account = config.account ?? (needsAccount ? processEnv['CDK_DEFAULT_ACCOUNT'] : undefined);
  const region = config.region ?? (needsRegion ? processEnv['CDK_DEFAULT_REGION'] : undefined);
  const why = needsAccount ? 'to import vpc.vpcId (Vpc.fromLookup)' : 'for loadBalancer.accessLogs';
  const hint =
    `is required ${why}; set it in the config, or run the CDK CLI with AWS credentials ` +
    'so it sets CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION';
  const issues: ConfigIssue[] = [];
  if (needsAccount && !account) issues.push({ path: 'account', message: hint });
  if (needsRegion && !region) issues.push({ path: 'region', message: hint });
  if (issues.length > 0) throw new ConfigError(issues);
  return { ...(account && { account }), ...(region && { region }) };
}

/**
 * Read a JSON (`.json`) or YAML (anything else) file; `check` may refuse the parsed value.
 * Failures are ConfigErrors on `field`.
 */
function readJsonOrYaml(absolutePath: string, field: string, check?: (value: unknown) => void): unknown {
  let text: string;
  try {
    text = readFileSync(absolutePath, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: field, message: `cannot read ${absolutePath}: ${errText(err)}` }]);
  }
  try {
    const value: unknown =
      extname(absolutePath).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
    check?.(value);
    return value;
  } catch (err) {
    throw new ConfigError([{ path: field, message: `${absolutePath} is not valid: ${errText(err)}` }]);
  }
}

/**
 * The service config the runtime gets (TOLLGATE_CONFIG_JSON for the service, a file in the worker
 * bundle): `serviceConfigFile` with the deployment config's `models` as its catalogue, checked at
 * synth with the runtime's own schema.
 */
export interface ServiceConfigBundle {
  /** Compact JSON; absent when neither a file nor models are configured (the runtime's defaults). */
  readonly json?: string;
  /** The validated catalogue (empty: model discovery via OPENAI_BASE_URL, or the simulator). */
  readonly models: readonly CatalogueEntryFields[];
}

/**
 * Read `serviceConfigFile` (JSON or YAML, relative to `sourceRoot`), put the deployment config's
 * `models` in it, and validate the result as the service will at start. A catalogue in both
 * places is refused (one place to read it). Failures are ConfigErrors naming the field.
 */
export function resolveServiceConfig(config: TollgateConfig, sourceRoot: string): ServiceConfigBundle {
  let fromFile: Record<string, unknown> | undefined;
  if (config.serviceConfigFile !== undefined) {
    const file = resolvePath(sourceRoot, config.serviceConfigFile);
    fromFile = readJsonOrYaml(file, 'serviceConfigFile', (v) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        throw new Error('the top level must be an object');
    }) as Record<string, unknown>;
  }
  if (fromFile === undefined && config.models === undefined) return { models: [] };
  if (fromFile && 'models' in fromFile && config.models !== undefined) {
    throw new ConfigError([
      { path: 'models', message: 'the catalogue is set both here and in serviceConfigFile; keep one' },
    ]);
  }
  const merged = { ...fromFile, ...(config.models !== undefined && { models: config.models }) };
  const field = config.models !== undefined ? 'models' : 'serviceConfigFile';
  let parsed: ReturnType<typeof parseServiceConfig>;
  try {
    parsed = parseServiceConfig(merged, field === 'models' ? 'models' : config.serviceConfigFile);
  } catch (err) {
    throw new ConfigError(runtimeIssues(err, field));
  }
  const models: CatalogueEntryFields[] = parsed.models;
  const issues = keyIssues(config, models);
  if (issues.length > 0) throw new ConfigError(issues);
  return { json: JSON.stringify(merged), models };
}

/** The runtime's message ("Invalid X:\n  - path: message") as issues; paths under `field`. */
function runtimeIssues(err: unknown, field: string): ConfigIssue[] {
  const text = err instanceof Error ? err.message : String(err);
  const lines = text.split('\n').filter((l) => l.startsWith('  - '));
  if (lines.length === 0) return [{ path: field, message: text }];
  return lines.map((l) => {
    const body = l.slice(4);
    const colon = body.indexOf(': ');
    const at = colon < 0 ? '' : body.slice(0, colon);
    const message = colon < 0 ? body : body.slice(colon + 2);
    // Inline models: the runtime's path is the config's path. A file: name the file's field.
    if (field === 'models' && at.startsWith('models')) return { path: at, message };
    return { path: field, message: at ? `${at}: ${message}` : message };
  });
}

/** Every key variable an OpenAI-compatible entry names needs a secret (OPENAI_API_KEY has one). */
function keyIssues(config: TollgateConfig, models: readonly CatalogueEntryFields[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  models.forEach((m, i) => {
    const v = m.provider === 'openai' ? m.apiKeyEnv : undefined;
    if (v !== undefined && v !== DEFAULT_KEY_VARIABLE && !(v in config.upstream.extraApiKeySecrets)) {
      issues.push({
        path: `models.${i}.apiKeyEnv`,
        message: `${v} has no secret: add upstream.extraApiKeySecrets.${v} (a secret name or ARN)`,
      });
    }
  });
  return issues;
}

/**
 * Read a deployment config file (JSON or YAML). Used by `bin/app.ts` for `-c configFile=...`.
 */
export function readConfigFile(absolutePath: string): unknown {
  return readJsonOrYaml(absolutePath, 'configFile');
}

/**
 * Merge config layers: later layers win, objects merge key by key, everything else
 * (arrays, scalars) is replaced.
 */
export function mergeConfigLayers(...layers: readonly unknown[]): unknown {
  let out: unknown = {};
  for (const layer of layers) {
    if (layer === undefined || layer === null) continue;
    out = mergeTwo(out, layer);
  }
  return out;
}

function mergeTwo(a: unknown, b: unknown): unknown {
  if (isPlainObject(a) && isPlainObject(b)) {
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = k in out ? mergeTwo(out[k], v) : v;
    return out;
  }
  return b;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
