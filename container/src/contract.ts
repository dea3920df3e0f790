/**
 * The contract between the runtime (service + worker) and the deployment (CDK app):
 * environment variable names, table key schemas, metric names. Plain constants with no
 * imports, so `lib/` can read them without pulling runtime code into the CDK app.
 */

/** Environment variables the service and the worker read at start. */
export const ENV = {
  port: 'PORT',
  host: 'HOST',
  /** Path of the catalogue / tiers file (JSON or YAML). */
  configPath: 'TOLLGATE_CONFIG',
  /** The same file's content inline (the CDK app passes it this way). */
  configJson: 'TOLLGATE_CONFIG_JSON',
  openaiBaseUrl: 'OPENAI_BASE_URL',
  openaiApiKey: 'OPENAI_API_KEY',
  devApiKey: 'TOLLGATE_DEV_API_KEY',
  adminApiKey: 'TOLLGATE_ADMIN_API_KEY',
  logContent: 'TOLLGATE_LOG_CONTENT',
  logLevel: 'POWERTOOLS_LOG_LEVEL',
  serviceName: 'POWERTOOLS_SERVICE_NAME',
  metricsNamespace: 'POWERTOOLS_METRICS_NAMESPACE',
  drainTimeoutMs: 'TOLLGATE_DRAIN_TIMEOUT_MS',
  /** After SIGTERM, keep serving (with /health 503) this long so the load balancer notices. */
  drainGraceMs: 'TOLLGATE_DRAIN_GRACE_MS',
  /**
   * How long an idle keep-alive connection stays open. Must exceed the load balancer's idle
   * timeout (the CDK app passes its own plus a margin), or the ALB may reuse a connection the
   * app is closing and answer 502.
   */
  keepAliveTimeoutMs: 'TOLLGATE_KEEP_ALIVE_TIMEOUT_MS',
  /**
   * How long a key already seen keeps working from its last good copy while the key table
   * cannot be read (DynamoDB outage). Also the longest a revocation can lag during such an outage.
   */
  keyStaleMs: 'TOLLGATE_KEY_STALE_MS',
  /** How often secrets named by `<VAR>_SECRET_ARN` are read again (rotated provider keys). */
  secretRefreshMs: 'TOLLGATE_SECRET_REFRESH_MS',
  bodyLimitBytes: 'TOLLGATE_BODY_LIMIT_BYTES',
  /** Time to receive a whole request (headers and body); 408 after it. 0 turns it off. */
  requestTimeoutMs: 'TOLLGATE_REQUEST_TIMEOUT_MS',
  pingIntervalMs: 'TOLLGATE_PING_INTERVAL_MS',
  limiterFailureMode: 'TOLLGATE_LIMITER_FAILURE_MODE',
  /** Browser origins allowed to call the API (CORS), comma-separated: origins, `localhost`, or `*`. */
  corsOrigins: 'TOLLGATE_CORS_ORIGINS',
  /** Full Redis URL (`redis://` or `rediss://`); takes precedence over host/port. */
  redisUrl: 'REDIS_URL',
  redisHost: 'REDIS_HOST',
  redisPort: 'REDIS_PORT',
  redisTls: 'REDIS_TLS',
  redisAuthToken: 'REDIS_AUTH_TOKEN',
  /** 'true' for cluster-mode endpoints (ElastiCache Serverless): ioredis Cluster client. */
  redisCluster: 'REDIS_CLUSTER',
  tableApiKeys: 'TOLLGATE_TABLE_API_KEYS',
  tableUsage: 'TOLLGATE_TABLE_USAGE',
  tableJobs: 'TOLLGATE_TABLE_JOBS',
  tableConversations: 'TOLLGATE_TABLE_CONVERSATIONS',
  /** Stored Responses API responses (`store: true`). */
  tableResponses: 'TOLLGATE_TABLE_RESPONSES',
  jobsQueueUrl: 'TOLLGATE_JOBS_QUEUE_URL',
  jobsDlqUrl: 'TOLLGATE_JOBS_DLQ_URL',
  queueMaxDepth: 'TOLLGATE_QUEUE_MAX_DEPTH',
  workerConcurrency: 'TOLLGATE_WORKER_CONCURRENCY',
  /** 'true' serves the operator console at /console (off unless the deployment turns it on). */
  consoleEnabled: 'TOLLGATE_CONSOLE_ENABLED',
  /** `json` (Powertools, the default) or `dev` (one readable line per request; `npm run dev`). */
  logFormat: 'TOLLGATE_LOG_FORMAT',
} as const;

/**
 * Lambda cannot inject secrets as variables: `<VAR>_SECRET_ARN` names a Secrets Manager secret
 * whose value the runtime loads into `<VAR>` at cold start (e.g. OPENAI_API_KEY_SECRET_ARN).
 */
export const SECRET_ARN_SUFFIX = '_SECRET_ARN';

/** DynamoDB key schemas. Every key attribute is a string. */
export const TABLES = {
  apiKeys: {
    defaultName: 'tollgate-api-keys',
    partitionKey: 'keyHash',
    /** GSI for admin look-ups by key id (PATCH / DELETE /admin/keys/{id}). */
    byIdIndex: { name: 'byId', partitionKey: 'id' },
    /** GSI for `GET /admin/keys?owner=`. */
    byOwnerIndex: { name: 'byOwner', partitionKey: 'owner', sortKey: 'createdAt' },
  },
  usage: {
    defaultName: 'tollgate-usage',
    partitionKey: 'pk',
    sortKey: 'sk',
    ttlAttribute: 'expiresAt',
  },
  jobs: {
    defaultName: 'tollgate-jobs',
    partitionKey: 'jobId',
    ttlAttribute: 'expiresAt',
    /**
     * Sparse GSI of unfinished jobs by age, for the age of the oldest job message on
     * `GET /admin/queue` (SQS gives that only as a CloudWatch metric). A job carries the keys from
     * creation until it completes or fails; the partition key is one of `shards` values so no
     * single index partition takes every submission. Keys only; `pendingSince` is the creation
     * time as 13 zero-padded digits of epoch ms (strings sort like the numbers).
     */
    pendingIndex: { name: 'pendingByAge', partitionKey: 'pendingShard', sortKey: 'pendingSince', shards: 8 },
    /**
     * Sparse GSI of failed jobs by failure time, for the most recent failures on
     * `GET /admin/jobs/failed` (the operator console's queue page). A job gets the keys when it
     * fails; `failedAt` is 13 zero-padded digits of epoch ms. The projection carries what the
     * list shows, never the request or the principal.
     */
    failedIndex: {
      name: 'failedByTime',
      partitionKey: 'failedShard',
      sortKey: 'failedAt',
      shards: 4,
      projected: ['owner', 'keyId', 'model', 'error', 'attempts', 'createdAt', 'completedAt'],
    },
    /**
     * How long SQS keeps a job message (the CDK queue's retention): a job pending for longer
     * can no longer have one, so it does not count for the oldest-message age.
     */
    queueRetentionDays: 4,
  },
  conversations: {
    defaultName: 'tollgate-conversations',
    partitionKey: 'conversationId',
    ttlAttribute: 'expiresAt',
  },
  /**
   * Stored responses of `POST /v1/responses`: one record per response id (gzip'd JSON), split
   * over rows `chunk = 0000, 0001...` when it is larger than one DynamoDB item.
   */
  responses: {
    defaultName: 'tollgate-responses',
    partitionKey: 'responseId',
    sortKey: 'chunk',
    ttlAttribute: 'expiresAt',
  },
} as const;

/** Service names (the Powertools `service` dimension on every metric). */
export const SERVICE_NAMES = {
  api: 'tollgate-api',
  worker: 'tollgate-worker',
} as const;

export const DEFAULT_METRICS_NAMESPACE = 'Tollgate';

/**
 * EMF metric names. Every metric carries the dimension `service`; `CostUsdByModel`,
 * `RequestsByModel` and `TokensByModel` add `model`.
 */
export const METRICS = {
  requests: 'Requests',
  requestsByModel: 'RequestsByModel',
  errors4xx: 'Errors4xx',
  errors5xx: 'Errors5xx',
  rateLimited: 'RateLimited',
  latency: 'Latency',
  timeToFirstToken: 'TimeToFirstToken',
  tokensIn: 'TokensIn',
  tokensOut: 'TokensOut',
  costUsd: 'CostUsd',
  costUsdByModel: 'CostUsdByModel',
  cacheHits: 'CacheHits',
  cacheMisses: 'CacheMisses',
  upstreamErrors: 'UpstreamErrors',
  inFlight: 'InFlight',
  queued: 'Queued',
  limiterFailOpen: 'LimiterFailOpen',
  usageWriteFailures: 'UsageWriteFailures',
  jobsSubmitted: 'JobsSubmitted',
  jobsCompleted: 'JobsCompleted',
  jobsFailed: 'JobsFailed',
  /** An attempt to list the upstream's models (OPENAI_BASE_URL shortcut) failed. */
  catalogueDiscoveryFailures: 'CatalogueDiscoveryFailures',
  /** A read of the api keys table failed (a stale copy or a 503 answered). */
  keyLookupFailures: 'KeyLookupFailures',
  /** A `<VAR>_SECRET_ARN` secret could not be read again (the previous value stays). */
  secretRefreshFailures: 'SecretRefreshFailures',
} as const;

/** The API's version (the OpenAPI document's `info.version`; package.json's version). */
export const SERVICE_VERSION = '0.2.0';

/** The container port and the liveness path the ALB checks. */
export const CONTAINER_PORT = 8080;
export const HEALTH_PATH = '/health';

/**
 * The o200k_base rank file the tokenizer reads (container/src/tokens/o200k.ts): in the package,
 * and under this name beside the bundle in the Lambdas (the CDK app copies it there).
 */
export const TOKENIZER_RANKS = {
  packageFile: 'gpt-tokenizer/data/o200k_base.tiktoken',
  bundledName: 'o200k_base.tiktoken',
} as const;
