import { z } from 'zod';
import { DEFAULT_METRICS_NAMESPACE, ENV, SERVICE_NAMES, TABLES } from '../contract';
import { ConfigError } from '../errors';
import { formatZodIssues } from './service-config';

/** Idle keep-alive: the ALB's default idle timeout (600 s) plus a margin. */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 605_000;
/** How long a key already seen keeps working while DynamoDB cannot be read. */
export const DEFAULT_KEY_STALE_MS = 60_000;
/**
 * How often `<VAR>_SECRET_ARN` secrets are read again: a rotated provider key reaches running
 * processes within this (one GetSecretValue per secret per interval, ~$0.04/month each).
 */
export const DEFAULT_SECRET_REFRESH_MS = 300_000;

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

const envSchema = z.object({
  [ENV.port]: z.coerce.number().int().min(0).max(65535).default(8080),
  [ENV.host]: z.string().default('0.0.0.0'),
  [ENV.configPath]: optionalString,
  [ENV.configJson]: optionalString,
  [ENV.openaiBaseUrl]: z
    .string()
    .url()
    .optional()
    .or(z.literal('').transform(() => undefined)),
  [ENV.openaiApiKey]: optionalString,
  [ENV.devApiKey]: optionalString,
  [ENV.adminApiKey]: optionalString,
  [ENV.logContent]: bool.default(false),
  [ENV.serviceName]: z.string().default(SERVICE_NAMES.api),
  [ENV.metricsNamespace]: z.string().default(DEFAULT_METRICS_NAMESPACE),
  [ENV.drainTimeoutMs]: z.coerce.number().int().min(0).default(120_000),
  [ENV.drainGraceMs]: z.coerce.number().int().min(0).default(3000),
  // Above the ALB's 600 s idle timeout (AWS: the target's keep-alive must be longer).
  [ENV.keepAliveTimeoutMs]: z.coerce.number().int().positive().default(DEFAULT_KEEP_ALIVE_TIMEOUT_MS),
  [ENV.keyStaleMs]: z.coerce.number().int().min(0).default(DEFAULT_KEY_STALE_MS),
  [ENV.secretRefreshMs]: z.coerce.number().int().min(0).default(DEFAULT_SECRET_REFRESH_MS),
  [ENV.bodyLimitBytes]: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  [ENV.requestTimeoutMs]: z.coerce.number().int().min(0).default(60_000),
  [ENV.pingIntervalMs]: z.coerce.number().int().positive().optional(),
  [ENV.limiterFailureMode]: z.enum(['open', 'closed']).optional(),
  [ENV.corsOrigins]: optionalString,
  [ENV.redisUrl]: optionalString,
  [ENV.redisHost]: optionalString,
  [ENV.redisPort]: z.coerce.number().int().positive().default(6379),
  [ENV.redisTls]: bool.default(false),
  [ENV.redisAuthToken]: optionalString,
  [ENV.redisCluster]: bool.default(false),
  [ENV.tableApiKeys]: z.string().default(TABLES.apiKeys.defaultName),
  [ENV.tableUsage]: z.string().default(TABLES.usage.defaultName),
  [ENV.tableJobs]: z.string().default(TABLES.jobs.defaultName),
  [ENV.tableConversations]: z.string().default(TABLES.conversations.defaultName),
  [ENV.tableResponses]: z.string().default(TABLES.responses.defaultName),
  [ENV.jobsQueueUrl]: optionalString,
  [ENV.jobsDlqUrl]: optionalString,
  [ENV.queueMaxDepth]: z.coerce.number().int().positive().optional(),
  [ENV.workerConcurrency]: z.coerce.number().int().positive().default(5),
  [ENV.consoleEnabled]: bool.default(false),
  [ENV.logFormat]: z.enum(['json', 'dev']).default('json'),
});

/** Runtime settings from the environment, parsed once at process start. */
export interface RuntimeEnv {
  port: number;
  host: string;
  configPath: string | undefined;
  configJson: string | undefined;
  openaiBaseUrl: string | undefined;
  openaiApiKey: string | undefined;
  devApiKey: string | undefined;
  adminApiKey: string | undefined;
  logContent: boolean;
  serviceName: string;
  metricsNamespace: string;
  drainTimeoutMs: number;
  drainGraceMs: number;
  /** Idle keep-alive of client connections (longer than the load balancer's idle timeout). */
  keepAliveTimeoutMs: number;
  /** How long a key already seen keeps working while the key table cannot be read. 0: never. */
  keyStaleMs: number;
  /** How often secrets named by `<VAR>_SECRET_ARN` are read again. 0: only at start. */
  secretRefreshMs: number;
  bodyLimitBytes: number;
  requestTimeoutMs: number;
  pingIntervalMs: number | undefined;
  limiterFailureMode: 'open' | 'closed' | undefined;
  /** CORS origins from the environment (overrides `cors.allowedOrigins` of the config). */
  corsOrigins: string[] | undefined;
  /** Redis connection URL, built from host/port/TLS/auth when REDIS_URL is unset. */
  redisUrl: string | undefined;
  /** Cluster-mode endpoint (ElastiCache Serverless). */
  redisCluster: boolean;
  tables: { apiKeys: string; usage: string; jobs: string; conversations: string; responses: string };
  jobsQueueUrl: string | undefined;
  jobsDlqUrl: string | undefined;
  queueMaxDepth: number | undefined;
  workerConcurrency: number;
  /** Serve the operator console at /console. */
  consoleEnabled: boolean;
  /** Log output: Powertools JSON, or readable lines for a terminal. */
  logFormat: 'json' | 'dev';
}

/** Parse and validate the environment; throws a ConfigError naming every bad variable. */
export function readEnv(source: NodeJS.ProcessEnv = process.env): RuntimeEnv {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) throw new ConfigError(formatZodIssues('environment', parsed.error));
  const e = parsed.data;
  let redisUrl = e[ENV.redisUrl];
  const host = e[ENV.redisHost];
  if (!redisUrl && host) {
    const token = e[ENV.redisAuthToken];
    const auth = token ? `:${encodeURIComponent(token)}@` : '';
    redisUrl = `${e[ENV.redisTls] ? 'rediss' : 'redis'}://${auth}${host}:${e[ENV.redisPort]}`;
  }
  return {
    port: e[ENV.port],
    host: e[ENV.host],
    configPath: e[ENV.configPath],
    configJson: e[ENV.configJson],
    openaiBaseUrl: e[ENV.openaiBaseUrl],
    openaiApiKey: e[ENV.openaiApiKey],
    devApiKey: e[ENV.devApiKey],
    adminApiKey: e[ENV.adminApiKey],
    logContent: e[ENV.logContent],
    serviceName: e[ENV.serviceName],
    metricsNamespace: e[ENV.metricsNamespace],
    drainTimeoutMs: e[ENV.drainTimeoutMs],
    drainGraceMs: e[ENV.drainGraceMs],
    keepAliveTimeoutMs: e[ENV.keepAliveTimeoutMs],
    keyStaleMs: e[ENV.keyStaleMs],
    secretRefreshMs: e[ENV.secretRefreshMs],
    bodyLimitBytes: e[ENV.bodyLimitBytes],
    requestTimeoutMs: e[ENV.requestTimeoutMs],
    pingIntervalMs: e[ENV.pingIntervalMs],
    limiterFailureMode: e[ENV.limiterFailureMode],
    corsOrigins: e[ENV.corsOrigins]
      ?.split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    redisUrl,
    redisCluster: e[ENV.redisCluster],
    tables: {
      apiKeys: e[ENV.tableApiKeys],
      usage: e[ENV.tableUsage],
      jobs: e[ENV.tableJobs],
      conversations: e[ENV.tableConversations],
      responses: e[ENV.tableResponses],
    },
    jobsQueueUrl: e[ENV.jobsQueueUrl],
    jobsDlqUrl: e[ENV.jobsDlqUrl],
    queueMaxDepth: e[ENV.queueMaxDepth],
    workerConcurrency: e[ENV.workerConcurrency],
    consoleEnabled: e[ENV.consoleEnabled],
    logFormat: e[ENV.logFormat],
  };
}
