import { DescribeTableCommand, DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Cluster, Redis } from 'ioredis';
import { UndiciHttpHandler } from './aws/undici-handler';
import { EmbeddingCache } from './cache/embedding-cache';
import { MemoryCacheStore, RedisCacheStore, ResponseCache } from './cache/response-cache';
import { ChatService } from './chat/chat-service';
import type { RuntimeEnv } from './config/env';
import { loadServiceConfig, type ServiceConfig, simulatorModels } from './config/service-config';
import { METRICS } from './contract';
import { EmbeddingsService } from './embeddings/embeddings-service';
import { Authenticator, KeyStore } from './keys/key-store';
import { Limiter, MemoryLimiterStore, RedisLimiterStore } from './limits/limiter';
import { recordingSink } from './metering/metered-call';
import { CatalogueDiscovery } from './providers/discovery';
import { type BuiltCatalogue, buildCatalogue, type ModelConfig } from './providers/registry';
import { ModelRouter } from './providers/router';
import type { DependencyCheck } from './telemetry/health';
import { Telemetry } from './telemetry/telemetry';
import { UsageRecorder } from './usage/usage-recorder';

/** Everything the service runs on, built once per process. */
export interface Runtime {
  env: RuntimeEnv;
  config: ServiceConfig;
  telemetry: Telemetry;
  router: ModelRouter;
  redis: Redis | null;
  ddb: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  keys: KeyStore;
  auth: Authenticator;
  limiter: Limiter;
  cache: ResponseCache | null;
  usage: UsageRecorder;
  chat: ChatService;
  embeddings: EmbeddingsService;
  checks: DependencyCheck[];
  /** Model discovery (the OPENAI_BASE_URL shortcut), while or after it runs; null without one. */
  discovery: CatalogueDiscovery | null;
  isDraining: () => boolean;
  setDraining: () => void;
  /** Extra shutdown steps modules register (pollers, queues). Run in reverse order. */
  onClose: Array<() => Promise<void>>;
  close(): Promise<void>;
}

/**
 * Redis with settings for a hot path: fail fast while disconnected, reconnect forever. A
 * cluster-mode endpoint (ElastiCache Serverless) gets the Cluster client; every multi-key
 * script uses hash-tagged keys so it stays in one slot.
 */
export function connectRedis(url: string, cluster = false): Redis {
  const u = new URL(url);
  const tls = u.protocol === 'rediss:' ? { tls: {} } : {};
  const options = {
    // Commands issued in the same tick go out in one write: admission, cache lookup and
    // reconciliations of concurrent requests share syscalls.
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 1000,
    retryStrategy: (times: number) => Math.min(times * 200, 2000),
    ...tls,
  };
  if (!cluster) return new Redis(url, options);
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  // Cluster and Redis share the command surface we use (get/set/evalsha/defineCommand).
  return new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    // ElastiCache answers with node IPs its TLS certificate does not name; keep the host name.
    dnsLookup: (address, callback) => callback(null, address),
    redisOptions: { ...options, ...(password ? { password } : {}) },
    clusterRetryStrategy: (times: number) => Math.min(times * 200, 2000),
  }) as unknown as Redis;
}

async function waitReady(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, ms);
    const onReady = () => {
      clearTimeout(t);
      resolve(true);
    };
    redis.once('ready', onReady);
  });
}

/**
 * The service's DynamoDB clients: the low-level one (usage rows, built by hand) and the document
 * client over it. Endpoint, region and credentials come from the standard variables unless
 * `config` sets them (the benchmark's floor measurement uses the same clients).
 */
export function createDynamoClients(config: DynamoDBClientConfig = {}): {
  ddb: DynamoDBClient;
  doc: DynamoDBDocumentClient;
} {
  const ddb = new DynamoDBClient({ maxAttempts: 3, requestHandler: new UndiciHttpHandler(), ...config });
  const doc = DynamoDBDocumentClient.from(ddb, { marshallOptions: { removeUndefinedValues: true } });
  return { ddb, doc };
}

export async function createRuntime(env: RuntimeEnv): Promise<Runtime> {
  const config = loadServiceConfig({ inline: env.configJson, path: env.configPath });
  let router: ModelRouter | undefined;
  const telemetry = new Telemetry({
    serviceName: env.serviceName,
    namespace: env.metricsNamespace,
    logContent: env.logContent,
    load: () => router?.load() ?? { inFlight: 0, queued: 0 },
    logFormat: env.logFormat,
  });
  const {
    serving,
    discovery,
    checks: upstreamChecks,
    close: closeCatalogue,
  } = await loadCatalogue(env, config, telemetry);
  router = serving;

  let redis: Redis | null = null;
  if (env.redisUrl) {
    redis = connectRedis(env.redisUrl, env.redisCluster);
    redis.on('error', () => {}); // reconnects on its own; the limiter reports outages
    if (!(await waitReady(redis, 5000)))
      telemetry.logger.warn('redis not reachable at start; retrying in the background');
  } else {
    telemetry.logger.warn(
      'no REDIS_URL: limits and cache live in this process only (not shared across replicas)',
    );
  }
  const failureMode = env.limiterFailureMode ?? config.limiter.failureMode;
  const limiter = new Limiter({
    store: redis ? new RedisLimiterStore(redis) : new MemoryLimiterStore(),
    failureMode,
    telemetry,
  });
  const cacheStore = redis ? new RedisCacheStore(redis) : new MemoryCacheStore();
  const cache = config.cache.enabled ? new ResponseCache(cacheStore, config.cache) : null;
  const embeddingCache = config.cache.enabled ? new EmbeddingCache(cacheStore, config.cache) : null;

  const { ddb, doc } = createDynamoClients();
  const usage = new UsageRecorder({
    ddb,
    table: env.tables.usage,
    telemetry,
    flushIntervalMs: config.usage.flushIntervalMs,
    maxBatch: config.usage.maxBatch,
    retentionDays: config.usage.retentionDays,
  });
  const keys = new KeyStore(doc, env.tables.apiKeys);
  const auth = new Authenticator(keys, config, { staleMs: env.keyStaleMs, telemetry });
  if (env.devApiKey) {
    // Local runs: the dev key is a real key record, so limits and usage apply to it too.
    await keys.ensure(env.devApiKey, { owner: 'dev', tier: config.defaultTier });
  }
  const sink = recordingSink(usage);
  const chat = new ChatService({ config, router, limiter, cache, sink, telemetry });
  const embeddings = new EmbeddingsService({ router, limiter, cache: embeddingCache, sink, telemetry });

  const checks: DependencyCheck[] = [
    {
      name: 'dynamodb',
      check: (signal) =>
        ddb.send(new DescribeTableCommand({ TableName: env.tables.apiKeys }), { abortSignal: signal }),
    },
  ];
  const r = redis;
  if (r) checks.push({ name: 'redis', check: () => r.ping() });
  // Live: discovery adds the upstreams' checks once it found their models.
  checks.push(...upstreamChecks);

  let draining = false;
  const onClose: Array<() => Promise<void>> = [];
  const rt: Runtime = {
    env,
    config,
    telemetry,
    router,
    redis,
    ddb,
    doc,
    keys,
    auth,
    limiter,
    cache,
    usage,
    chat,
    embeddings,
    checks,
    discovery,
    isDraining: () => draining,
    setDraining: () => {
      draining = true;
    },
    onClose,
    async close() {
      discovery?.stop();
      for (const f of [...onClose].reverse()) await f();
      await limiter.close();
      await usage.close(Math.max(5000, Math.min(env.drainTimeoutMs, 30_000)));
      telemetry.close();
      if (redis) await redis.quit().catch(() => redis.disconnect());
      ddb.destroy();
      await closeCatalogue();
    },
  };
  return rt;
}

/** How long start-up waits for the first model discovery before serving without models. */
const FIRST_DISCOVERY_MS = 10_000;

/**
 * The catalogue: the config's models, else the models an upstream lists (OPENAI_BASE_URL), else
 * the simulator. Discovery is never fatal: a first attempt is awaited (bounded), then retried in
 * the background while `/ready` fails and model requests answer 503.
 */
async function loadCatalogue(env: RuntimeEnv, config: ServiceConfig, telemetry: Telemetry) {
  const ctx = { env: process.env, defaultBaseUrl: env.openaiBaseUrl };
  const builds: BuiltCatalogue[] = [];
  const checks: DependencyCheck[] = [];
  const router = new ModelRouter();
  const serve = (models: readonly ModelConfig[]) => {
    const built = buildCatalogue(models, ctx);
    builds.push(built);
    router.replace(built.entries);
    checks.push(...built.checks);
  };
  const close = async () => {
    await Promise.all(builds.map((b) => b.close()));
  };
  if (config.models.length > 0) {
    serve(config.models);
    return { serving: router, discovery: null, checks, close };
  }
  const discovery = CatalogueDiscovery.forEnvironment({
    ctx,
    attemptTimeoutMs: FIRST_DISCOVERY_MS,
    apply: serve,
    events: {
      discovered: (models) =>
        telemetry.logger.info('serving the upstream models', { baseUrl: env.openaiBaseUrl, models }),
      failed: (error, retryInMs) => {
        telemetry.increment(METRICS.catalogueDiscoveryFailures);
        telemetry.logger.warn('model discovery failed; serving no models until it succeeds', {
          error: error.message,
          retryInMs,
        });
      },
    },
  });
  if (!discovery) {
    telemetry.logger.warn(
      'no upstream configured: serving the built-in simulator models (answers are simulated)',
    );
    serve(simulatorModels());
    return { serving: router, discovery: null, checks, close };
  }
  router.pending = () => discovery.pendingReason;
  checks.push(discovery.check);
  await discovery.start();
  return { serving: router, discovery, checks, close };
}
