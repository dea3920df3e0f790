/**
 * Every deployment default in one place. `lib/config.ts` merges these with the user's
 * config (user values win); constructs receive the merged result and never invent their
 * own defaults for anything a user can set.
 *
 * Two profiles: `small` (dev, staging, demos: sized to stay under about $60/month idle,
 * see README.md) and `production` (multi-AZ, more headroom, data retained).
 */
import { DEFAULT_METRICS_NAMESPACE } from '../container/src/contract';
import type { LogLevel } from './constructs/runtime-props';

/** Profile names; `production` is chosen by `production: true` or environment `prod`/`production`. */
export type ProfileName = 'small' | 'production';

/**
 * The values a profile supplies. Each field is a deployment config field of the same path
 * (README.md has the table with both profiles' values).
 */
export interface ProfileDefaults {
  /** `retain` keeps tables, secrets, log groups and a final cache snapshot when the stack is deleted. */
  readonly removalPolicy: 'destroy' | 'retain';
  readonly vpc: {
    /** IPv4 range of a new VPC. */
    readonly cidr: string;
    /** Availability zones of a new VPC (2 or 3). */
    readonly maxAzs: number;
    /** NAT gateways or instances (0: isolated app subnets, VPC endpoints, no internet). */
    readonly natGateways: number;
    /** `gateway` (managed, HA per AZ) or `instance` (EC2 NAT instance, a fraction of the cost). */
    readonly natType: 'gateway' | 'instance';
    /** Instance type of NAT instances. */
    readonly natInstanceType: string;
    /** VPC flow logs (rejected traffic) to CloudWatch Logs. */
    readonly flowLogs: boolean;
  };
  readonly service: {
    /** Fargate task CPU units (256 = 0.25 vCPU). */
    readonly cpu: number;
    /** Fargate task memory (MiB); must be a valid size for `cpu`. */
    readonly memoryMiB: number;
    /** CPU architecture of tasks and Lambdas. */
    readonly architecture: 'arm64' | 'x86_64';
    /** Fewest tasks: autoscaling's minimum (the template sets no desired count). */
    readonly minTasks: number;
    /** Most tasks autoscaling may start. */
    readonly maxTasks: number;
    /** Target average CPU (%) for scaling. */
    readonly cpuTargetPercent: number;
    /** Target ALB requests per task per minute for scaling. */
    readonly requestsPerTargetPerMinute: number;
    /**
     * The longest stream (or other response) a task stop (deploy, scale-in) must let finish.
     * The target group's deregistration delay, the container's stop timeout and the app's drain
     * timeout derive from it ({@link stopSequence}).
     */
    readonly longestStreamSeconds: number;
    /** Retention (days) of every log group. */
    readonly logRetentionDays: number;
    /** Container Insights (task count and per-task metrics; extra CloudWatch cost). */
    readonly containerInsights: boolean;
    /** Runtime log level (POWERTOOLS_LOG_LEVEL) of the service and the Lambdas. */
    readonly logLevel: LogLevel;
  };
  readonly cache: {
    /** `node` (replication group) or `serverless` (ElastiCache Serverless). */
    readonly mode: 'node' | 'serverless';
    /** `valkey` or `redis` (Redis OSS). */
    readonly engine: 'valkey' | 'redis';
    /** Node type (node mode). */
    readonly nodeType: string;
    /** Replicas (node mode); 1 or more turns on Multi-AZ with automatic failover. */
    readonly replicas: number;
    /** Data storage cap in GB (serverless mode). */
    readonly serverlessMaxStorageGb: number;
    /** Days of automatic snapshots (0 = none). */
    readonly snapshotRetentionDays: number;
  };
  readonly worker: {
    /** Worker Lambda timeout; the queue's visibility timeout is 6x this. */
    readonly timeoutSeconds: number;
    /** Worker Lambda memory (MiB). */
    readonly memoryMiB: number;
    /** Messages per worker invocation (1-10). */
    readonly batchSize: number;
    /** Most concurrent worker invocations (2-1000): protects the upstream. */
    readonly maxConcurrency: number;
    /** Queue depth above which the API refuses new async jobs (TOLLGATE_QUEUE_MAX_DEPTH). */
    readonly queueMaxDepth: number;
  };
  readonly loadBalancer: {
    /** ALB access logs to a new S3 bucket (needs the stack region). */
    readonly accessLogs: boolean;
  };
  readonly waf: {
    /** A WAF web ACL on the ALB (about $8/month plus $0.60 per million requests). */
    readonly enabled: boolean;
    /** Requests per client IP per 5 minutes before WAF blocks it. */
    readonly rateLimitPer5Minutes: number;
  };
  /** CloudWatch namespace of the runtime's EMF metrics. */
  readonly metricsNamespace: string;
  /** Monthly LLM budget (USD) the cost alarms derive from. */
  readonly monthlyLlmBudgetUsd: number;
  readonly alarms: {
    /** Jobs waiting in the queue, sustained 15 minutes. */
    readonly queueDepth: number;
    /** Age of the oldest job (seconds). */
    readonly oldestMessageAgeSeconds: number;
    /** p99 of the API's request latency (ms), sustained 15 minutes. */
    readonly p99LatencyMs: number;
    /** 5xx share of ALB requests (%), sustained 15 minutes. */
    readonly error5xxRatePercent: number;
    /** Unhealthy targets tolerated (the alarm fires above this). */
    readonly unhealthyHosts: number;
    /** Cache memory used (%), sustained 15 minutes. */
    readonly redisMemoryPercent: number;
    /** Worker invocation errors tolerated per 5 minutes. */
    readonly workerErrors: number;
  };
}

const SMALL: ProfileDefaults = {
  removalPolicy: 'destroy',
  vpc: {
    cidr: '10.0.0.0/16',
    maxAzs: 2,
    natGateways: 1,
    // A NAT gateway alone is ~$33/month + its IPv4 address; a t4g.nano NAT instance is ~$7.
    natType: 'instance',
    natInstanceType: 't4g.nano',
    flowLogs: true,
  },
  service: {
    cpu: 256,
    memoryMiB: 512,
    architecture: 'arm64',
    minTasks: 1,
    maxTasks: 2,
    cpuTargetPercent: 60,
    requestsPerTargetPerMinute: 600,
    longestStreamSeconds: 300,
    logRetentionDays: 14,
    containerInsights: false,
    logLevel: 'INFO',
  },
  cache: {
    mode: 'node',
    engine: 'valkey',
    nodeType: 'cache.t4g.micro',
    replicas: 0,
    serverlessMaxStorageGb: 1,
    snapshotRetentionDays: 1,
  },
  worker: {
    timeoutSeconds: 300,
    memoryMiB: 512,
    batchSize: 5,
    maxConcurrency: 5,
    queueMaxDepth: 1000,
  },
  loadBalancer: { accessLogs: false },
  waf: { enabled: false, rateLimitPer5Minutes: 2000 },
  metricsNamespace: DEFAULT_METRICS_NAMESPACE,
  monthlyLlmBudgetUsd: 100,
  alarms: {
    queueDepth: 100,
    oldestMessageAgeSeconds: 900,
    p99LatencyMs: 60_000,
    error5xxRatePercent: 5,
    unhealthyHosts: 0,
    redisMemoryPercent: 80,
    workerErrors: 0,
  },
};

const PRODUCTION: ProfileDefaults = {
  ...SMALL,
  removalPolicy: 'retain',
  vpc: { ...SMALL.vpc, natGateways: 2, natType: 'gateway' },
  service: {
    ...SMALL.service,
    cpu: 1024,
    memoryMiB: 2048,
    minTasks: 2,
    maxTasks: 10,
    logRetentionDays: 90,
    containerInsights: true,
  },
  cache: {
    ...SMALL.cache,
    nodeType: 'cache.t4g.small',
    replicas: 1,
    serverlessMaxStorageGb: 5,
    snapshotRetentionDays: 7,
  },
  loadBalancer: { accessLogs: true },
  waf: { ...SMALL.waf, enabled: true },
};

/** Defaults per profile. */
export const PROFILES: Readonly<Record<ProfileName, ProfileDefaults>> = {
  small: SMALL,
  production: PRODUCTION,
};

/** Environment names that select the production profile when `production` is not set. */
export const PRODUCTION_ENVIRONMENT_NAMES: readonly string[] = ['prod', 'production'];

/** The default environment name. */
export const DEFAULT_ENVIRONMENT = 'dev';

/**
 * The hourly cost alarm fires at this multiple of the average hour of the monthly budget
 * (budget / 730 h): traffic concentrates in working hours (about 170 of 730 h a month), so
 * a busy hour legitimately runs at 4x the average.
 */
export const HOURLY_BUDGET_BURST_FACTOR = 5;

/** The daily cost alarm fires at this multiple of a day's share (budget / 30): busy weekdays. */
export const DAILY_BUDGET_BURST_FACTOR = 1.5;

/** The LLM cost alarm thresholds (USD) derived from a monthly budget, rounded to cents. */
export function costThresholds(monthlyBudgetUsd: number): { perHourUsd: number; perDayUsd: number } {
  const cents = (usd: number) => Math.max(0.01, Math.round(usd * 100) / 100);
  return {
    perHourUsd: cents((monthlyBudgetUsd / 730) * HOURLY_BUDGET_BURST_FACTOR),
    perDayUsd: cents((monthlyBudgetUsd / 30) * DAILY_BUDGET_BURST_FACTOR),
  };
}

/** Fixed operational constants (not user settings; changing them needs a code review). */
export const FIXED = {
  /** ECS caps a container's stop timeout at 120 s on Fargate. */
  stopTimeoutSeconds: 120,
  /** Seconds the target group waits beyond the longest stream before it closes connections. */
  deregistrationMarginSeconds: 10,
  /** The app's own drain grace after SIGTERM (TOLLGATE_DRAIN_GRACE_MS, runtime default 3 s). */
  drainGraceSeconds: 3,
  /** The longest the app's final usage flush may take (the runtime caps it at 30 s). */
  usageFlushReserveSeconds: 30,
  /** Slack between the app's last step and the stop timeout's SIGKILL. */
  stopMarginSeconds: 2,
  /** The longest deregistration delay a target group allows. */
  maxDeregistrationDelaySeconds: 3600,
  /** SQS visibility timeout = this multiple of the worker timeout (AWS guidance: 6x). */
  visibilityTimeoutFactor: 6,
  /** Receives before a job message moves to the DLQ (AWS: at least 5 for a Lambda event source). */
  maxReceiveCount: 5,
  /** ALB idle timeout: token streams can go quiet for minutes. */
  idleTimeoutSeconds: 600,
  /**
   * The app's keep-alive exceeds the ALB idle timeout by this (AWS: the target's keep-alive must
   * be longer, or the ALB may reuse a connection the target is closing and answer 502).
   */
  keepAliveMarginSeconds: 5,
  /** Target group health check. */
  healthCheck: { intervalSeconds: 15, timeoutSeconds: 5, healthyThreshold: 2, unhealthyThreshold: 3 },
  /** The DLQ handler's concurrency (the minimum SQS allows). */
  dlqHandlerMaxConcurrency: 2,
  /** Minimum ALB requests in a period before the 5xx rate counts. */
  min5xxRateRequests: 10,
} as const;

/** The three timings of a task stop, derived from the longest stream to let finish. */
export interface StopSequence {
  /**
   * Target group deregistration delay: ECS deregisters the task, waits this long (or until no
   * request is in flight) and only then sends SIGTERM; the load balancer keeps streams running
   * meanwhile and cuts what is still open at its end.
   */
  readonly deregistrationDelaySeconds: number;
  /**
   * The app's drain after SIGTERM (TOLLGATE_DRAIN_TIMEOUT_MS). By then the load balancer has
   * finished or cut its streams; this covers what arrived another way, within the stop timeout.
   */
  readonly drainTimeoutSeconds: number;
  /** The container's stop timeout: SIGKILL after SIGTERM (Fargate allows at most 120 s). */
  readonly stopTimeoutSeconds: number;
}

/**
 * Deregistration delay, drain timeout and stop timeout from one setting. The bound a client
 * sees: a response shorter than `longestStreamSeconds` survives every task stop; a longer one
 * may be cut (the load balancer closes it at the end of the deregistration delay).
 */
export function stopSequence(longestStreamSeconds: number): StopSequence {
  const f = FIXED;
  const afterSigterm = f.drainGraceSeconds + f.usageFlushReserveSeconds + f.stopMarginSeconds;
  const drain = Math.min(longestStreamSeconds, f.stopTimeoutSeconds - afterSigterm);
  return {
    deregistrationDelaySeconds: Math.min(
      f.maxDeregistrationDelaySeconds,
      longestStreamSeconds + f.deregistrationMarginSeconds,
    ),
    drainTimeoutSeconds: drain,
    stopTimeoutSeconds: Math.min(f.stopTimeoutSeconds, drain + afterSigterm),
  };
}
