import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { METRICS } from '../contract';
import { DevLogger } from './dev-log';

/** What one finished request reports: one log line, EMF aggregates and Prometheus series. */
export interface RequestRecord {
  requestId: string;
  method: string;
  route: string;
  status: number;
  latencyMs: number;
  model?: string | undefined;
  ttftMs?: number | undefined;
  tokensIn?: number | undefined;
  tokensOut?: number | undefined;
  costUsd?: number | undefined;
  cache?: 'HIT' | 'MISS' | 'BYPASS' | undefined;
  stream?: boolean | undefined;
  keyId?: string | undefined;
  owner?: string | undefined;
  errorCode?: string | undefined;
  /** Prompt and completion text: only logged when TOLLGATE_LOG_CONTENT=true. */
  content?: { prompt: unknown; completion: unknown } | undefined;
}

export interface TelemetryOptions {
  serviceName: string;
  namespace: string;
  logContent?: boolean;
  /** How often EMF aggregates are written. @default 1000 */
  flushIntervalMs?: number;
  /** Reads the in-flight / queued gauges at each flush. */
  load?: () => { inFlight: number; queued: number };
  /** `dev`: readable lines for a terminal instead of Powertools JSON. @default 'json' */
  logFormat?: 'json' | 'dev';
}

/**
 * Liveness and readiness probes (the ALB, the container health check, dashboards). Not requests
 * anyone made: they are left out of logs, metrics and `/metrics`, so an idle stack writes no
 * log lines and no custom metrics (each probe would otherwise cost a log line and four EMF
 * values: about $1.20 a month idle, and idle dashboards would show traffic).
 */
export const PROBE_ROUTES: ReadonlySet<string> = new Set(['/health', '/ready', '/health/detailed']);

/** Whether a finished request was a probe (GET or HEAD on a probe route). */
export function isProbe(method: string, route: string): boolean {
  return (method === 'GET' || method === 'HEAD') && PROBE_ROUTES.has(route);
}

/** CloudWatch takes at most 100 values per metric per EMF document. */
const MAX_SAMPLES = 100;

interface Window {
  counts: Map<string, number>;
  latency: number[];
  ttft: number[];
  seen: number;
  seenTtft: number;
  byModel: Map<string, { requests: number; cost: number; tokensIn: number; tokensOut: number }>;
}

function emptyWindow(): Window {
  return { counts: new Map(), latency: [], ttft: [], seen: 0, seenTtft: 0, byModel: new Map() };
}

/**
 * Logs (Powertools Logger, JSON), EMF metrics (Powertools Metrics) and Prometheus text from
 * the same measurements. EMF is aggregated per flush interval instead of per request: sums for
 * counters and a reservoir sample of at most 100 latencies, so a busy task writes one EMF
 * document a second rather than thousands.
 */
export class Telemetry {
  readonly logger: Logger;
  readonly registry = new Registry();
  private readonly metrics: Metrics;
  private readonly modelMetrics: Metrics;
  private readonly logContent: boolean;
  private window = emptyWindow();
  private readonly timer: NodeJS.Timeout;
  private readonly load: (() => { inFlight: number; queued: number }) | undefined;
  private readonly prom: {
    requests: Counter<'route' | 'status' | 'model'>;
    duration: Histogram<'route' | 'model'>;
    ttft: Histogram<'model'>;
    tokens: Counter<'model' | 'direction'>;
    cost: Counter<'model'>;
    cache: Counter<'result'>;
    upstreamErrors: Counter<'model'>;
    inFlight: Gauge;
    queued: Gauge;
  };

  constructor({
    serviceName,
    namespace,
    logContent = false,
    flushIntervalMs = 1000,
    load,
    logFormat = 'json',
  }: TelemetryOptions) {
    this.logger = logFormat === 'dev' ? new DevLogger({ serviceName }) : new Logger({ serviceName });
    this.metrics = new Metrics({ namespace, serviceName });
    this.modelMetrics = new Metrics({ namespace, serviceName });
    this.logContent = logContent;
    this.load = load;
    const registers = [this.registry];
    this.prom = {
      requests: new Counter({
        name: 'tollgate_requests_total',
        help: 'Requests by route, status and model',
        labelNames: ['route', 'status', 'model'],
        registers,
      }),
      duration: new Histogram({
        name: 'tollgate_request_duration_seconds',
        help: 'Request latency',
        labelNames: ['route', 'model'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
        registers,
      }),
      ttft: new Histogram({
        name: 'tollgate_time_to_first_token_seconds',
        help: 'Time to first token (streams)',
        labelNames: ['model'],
        buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
        registers,
      }),
      tokens: new Counter({
        name: 'tollgate_tokens_total',
        help: 'Tokens by model and direction',
        labelNames: ['model', 'direction'],
        registers,
      }),
      cost: new Counter({
        name: 'tollgate_cost_usd_total',
        help: 'LLM cost in USD',
        labelNames: ['model'],
        registers,
      }),
      cache: new Counter({
        name: 'tollgate_cache_total',
        help: 'Response cache results',
        labelNames: ['result'],
        registers,
      }),
      upstreamErrors: new Counter({
        name: 'tollgate_upstream_errors_total',
        help: 'Upstream failures',
        labelNames: ['model'],
        registers,
      }),
      inFlight: new Gauge({
        name: 'tollgate_in_flight_requests',
        help: 'Upstream calls in flight',
        registers,
        collect: () => this.collectLoad(),
      }),
      queued: new Gauge({
        name: 'tollgate_queued_requests',
        help: 'Requests waiting for a model slot',
        registers,
      }),
    };
    this.timer = setInterval(() => this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  private collectLoad(): void {
    const l = this.load?.();
    if (!l) return;
    this.prom.inFlight.set(l.inFlight);
    this.prom.queued.set(l.queued);
  }

  private count(name: string, by = 1): void {
    this.window.counts.set(name, (this.window.counts.get(name) ?? 0) + by);
  }

  /** Reservoir sampling keeps the EMF sample unbiased whatever the request rate. */
  private sample(arr: number[], seen: number, v: number): void {
    if (arr.length < MAX_SAMPLES) arr.push(v);
    else {
      const j = Math.floor(Math.random() * seen);
      if (j < MAX_SAMPLES) arr[j] = v;
    }
  }

  /** Count something outside a request (limiter fail-open, usage write failures, jobs). */
  increment(metric: string, by = 1): void {
    this.count(metric, by);
  }

  upstreamError(model: string): void {
    this.count(METRICS.upstreamErrors);
    this.prom.upstreamErrors.inc({ model });
  }

  /** Record one finished request (probes are not recorded: {@link isProbe}). */
  request(r: RequestRecord): void {
    if (isProbe(r.method, r.route)) return;
    const w = this.window;
    const model = r.model ?? 'none';
    this.count(METRICS.requests);
    if (r.status >= 500) this.count(METRICS.errors5xx);
    else if (r.status >= 400) this.count(METRICS.errors4xx);
    if (r.status === 429) this.count(METRICS.rateLimited);
    w.seen++;
    this.sample(w.latency, w.seen, r.latencyMs);
    if (r.ttftMs !== undefined) {
      w.seenTtft++;
      this.sample(w.ttft, w.seenTtft, r.ttftMs);
      this.prom.ttft.observe({ model }, r.ttftMs / 1000);
    }
    if (r.cache === 'HIT') this.count(METRICS.cacheHits);
    else if (r.cache === 'MISS') this.count(METRICS.cacheMisses);
    if (r.cache) this.prom.cache.inc({ result: r.cache });
    if (r.model) {
      let m = w.byModel.get(r.model);
      if (!m) {
        m = { requests: 0, cost: 0, tokensIn: 0, tokensOut: 0 };
        w.byModel.set(r.model, m);
      }
      m.requests++;
      m.cost += r.costUsd ?? 0;
      m.tokensIn += r.tokensIn ?? 0;
      m.tokensOut += r.tokensOut ?? 0;
    }
    if (r.tokensIn) {
      this.count(METRICS.tokensIn, r.tokensIn);
      this.prom.tokens.inc({ model, direction: 'in' }, r.tokensIn);
    }
    if (r.tokensOut) {
      this.count(METRICS.tokensOut, r.tokensOut);
      this.prom.tokens.inc({ model, direction: 'out' }, r.tokensOut);
    }
    if (r.costUsd) {
      this.count(METRICS.costUsd, r.costUsd);
      this.prom.cost.inc({ model }, r.costUsd);
    }
    this.prom.requests.inc({ route: r.route, status: String(r.status), model });
    this.prom.duration.observe({ route: r.route, model }, r.latencyMs / 1000);

    const { content, ...fields } = r;
    const line: Record<string, unknown> = fields;
    if (this.logContent && content) line.content = content;
    if (r.status >= 500) this.logger.error('request', line);
    else this.logger.info('request', line);
  }

  /** Write the aggregates of the last interval as EMF documents and start a new window. */
  flush(): void {
    const w = this.window;
    this.window = emptyWindow();
    const load = this.load?.();
    if (w.seen === 0 && w.counts.size === 0 && (!load || (load.inFlight === 0 && load.queued === 0))) return;
    const m = this.metrics;
    for (const [name, value] of w.counts)
      m.addMetric(name, name === METRICS.costUsd ? MetricUnit.NoUnit : MetricUnit.Count, value);
    for (const v of w.latency) m.addMetric(METRICS.latency, MetricUnit.Milliseconds, v);
    for (const v of w.ttft) m.addMetric(METRICS.timeToFirstToken, MetricUnit.Milliseconds, v);
    if (load) {
      m.addMetric(METRICS.inFlight, MetricUnit.Count, load.inFlight);
      m.addMetric(METRICS.queued, MetricUnit.Count, load.queued);
    }
    m.publishStoredMetrics();
    for (const [model, v] of w.byModel) {
      const mm = this.modelMetrics;
      mm.addDimension('model', model);
      mm.addMetric(METRICS.requestsByModel, MetricUnit.Count, v.requests);
      mm.addMetric(METRICS.costUsdByModel, MetricUnit.NoUnit, v.cost);
      mm.addMetric('TokensInByModel', MetricUnit.Count, v.tokensIn);
      mm.addMetric('TokensOutByModel', MetricUnit.Count, v.tokensOut);
      mm.publishStoredMetrics();
    }
  }

  /** Prometheus text exposition. */
  prometheus(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
