import { Annotations, Aws, Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import {
  type AlarmWithAnnotation,
  AxisPosition,
  type CustomMetricGroup,
  type CustomThreshold,
  DefaultDashboardFactory,
  ElastiCacheClusterType,
  GraphWidgetType,
  MonitoringFacade,
  multipleActions,
  SnsAlarmActionStrategy,
} from 'cdk-monitoring-constructs';
import { Construct } from 'constructs';
import { DEFAULT_METRICS_NAMESPACE, METRICS, SERVICE_NAMES } from '../../container/src/contract';
import { costThresholds, FIXED, PROFILES } from '../defaults';
import type { AsyncWorker } from './async-worker';
import type { Cache } from './cache';
import type { ChatService } from './chat-service';
import type { Data } from './data';

/**
 * The first runbook steps of each alarm, carried in its description: an alarm arrives as an
 * e-mail or a chat message, where a link into the repository's README means nothing. The full
 * runbooks are the README's `#### Runbook: <title>` sections (slug = the heading's anchor), linked
 * when `runbookUrl` says where the README is published.
 */
export const FIRST_STEPS: Readonly<Record<string, string>> = {
  'p99-latency':
    'First steps: compare time to first token with latency on the dashboard. TTFT up too: the provider is slow ' +
    '(its status page, UpstreamErrors, retries in the API logs). Only latency up: longer answers or CPU-bound ' +
    'tasks (ECS CPU near the target, tasks at service.maxTasks). Mitigate: raise service.maxTasks, or route the ' +
    'model to a fallback.',
  '5xx-rate':
    'First steps: ELB 5xx (502/503/504) mean no healthy task answered: check the unhealthy-hosts alarm and the ' +
    'ECS service events (deployments, stopped tasks; exit code 137 = out of memory). Target 5xx come from the ' +
    'app: search the API log group for "level":"ERROR" and UpstreamErrors on the dashboard. A release caused ' +
    'it: cdk deploy the previous commit.',
  'unhealthy-hosts':
    'First steps: GET /health fails only when the process is stuck or crashing (a Redis or DynamoDB outage ' +
    'does not fail it): check the ECS stopped tasks (stop reason, exit code), CPU and memory, and the last log ' +
    'lines of the task. Every new task failing: the last deployment, or a secret or image it needs, is bad.',
  'queue-depth':
    'First steps: the worker is not keeping up or not running: check the worker Lambda errors and throttles, ' +
    'worker.maxConcurrency (a deliberate cap) and provider rate limits in the worker logs. Legitimate demand: ' +
    "raise worker.maxConcurrency within the provider's limits.",
  'oldest-message-age':
    'First steps: the causes of queue depth; with a small depth, one message is retried again and again and ' +
    'reaches the DLQ after 5 receives: find its jobId and the error it met in the worker logs.',
  'dlq-not-empty':
    'First steps: a job failed 5 times and the DLQ handler marked it failed: find why in the worker logs by ' +
    'jobId. Messages staying in the DLQ mean the DLQ handler fails: check its logs. Once fixed, redrive from ' +
    'the SQS console if the jobs should run again.',
  'worker-errors':
    'First steps: whole invocations failed (unhandled error, timeout, out of memory): search the worker log ' +
    "group for the error or 'Task timed out'. Timeouts: lower worker.batchSize or raise worker.timeoutSeconds. " +
    'Failed batches are retried, then end in the DLQ.',
  'llm-cost-per-hour':
    "First steps: 'LLM cost per hour by model' on the dashboard says which model, the usage table (rows by " +
    'owner) says who. A runaway client: revoke or limit its key (PATCH /admin/keys/{id}). Legitimate: raise ' +
    'alarms.costPerHourUsd or monthlyLlmBudgetUsd.',
  'llm-cost-per-day':
    'First steps: at this pace the month overruns monthlyLlmBudgetUsd. Investigate as for the hourly alarm; if ' +
    'the growth is expected, raise monthlyLlmBudgetUsd and deploy so the thresholds follow.',
  'cache-memory':
    'First steps: the cache holds limits, budgets and the response cache, and evicts when full (Evictions ' +
    'graph). Lower the response cache TTL or entry size in the service config, or move to a larger ' +
    'cache.nodeType (or raise cache.serverlessMaxStorageGb).',
};

/** Alarm thresholds. Every field defaults to the small profile's value. */
export interface AlarmThresholds {
  /**
   * Visible messages in the jobs queue, sustained 15 minutes.
   * @default 100
   */
  readonly queueDepth?: number;
  /**
   * Age of the oldest job message (seconds), sustained 15 minutes.
   * @default 900
   */
  readonly oldestMessageAgeSeconds?: number;
  /**
   * p99 of the API's `Latency` (ms), sustained 15 minutes.
   * @default 60000
   */
  readonly p99LatencyMs?: number;
  /**
   * Share of ALB requests answered 5xx (target or load balancer), in percent, sustained 15 minutes.
   * @default 5
   */
  readonly error5xxRatePercent?: number;
  /**
   * Unhealthy targets tolerated (the alarm fires above this), sustained 15 minutes.
   * @default 0
   */
  readonly unhealthyHosts?: number;
  /**
   * Cache memory in percent, sustained 15 minutes.
   * @default 80
   */
  readonly redisMemoryPercent?: number;
  /**
   * Worker invocation errors tolerated per 5 minutes (the alarm fires above this).
   * @default 0
   */
  readonly workerErrors?: number;
  /**
   * LLM spend (USD) in one hour, API and worker together.
   * @default - 5x the average hour of `monthlyLlmBudgetUsd`
   */
  readonly costPerHourUsd?: number;
  /**
   * LLM spend (USD) in 24 hours, API and worker together.
   * @default - 1.5x a day's share of `monthlyLlmBudgetUsd`
   */
  readonly costPerDayUsd?: number;
}

/** Props for {@link Observability}. */
export interface ObservabilityProps {
  /** Prefix of the dashboard and alarm names, e.g. `Tollgate-dev`. */
  readonly name: string;
  readonly chatService: ChatService;
  readonly asyncWorker: AsyncWorker;
  readonly cache: Cache;
  readonly data: Data;
  /**
   * Namespace of the runtime's EMF metrics.
   * @default DEFAULT_METRICS_NAMESPACE
   */
  readonly metricsNamespace?: string;
  /**
   * The monthly LLM budget the cost alarm thresholds derive from.
   * @default 100
   */
  readonly monthlyLlmBudgetUsd?: number;
  /**
   * Alarm thresholds.
   * @default - the small profile's thresholds
   */
  readonly thresholds?: AlarmThresholds;
  /**
   * E-mail address subscribed to the alarm topic (confirm the subscription mail).
   * @default - no subscription
   */
  readonly alarmEmail?: string;
  /**
   * An existing SNS topic (on-call tooling, AWS Chatbot) every alarm also notifies.
   * @default - none
   */
  readonly alarmTopicArn?: string;
  /**
   * Where the README is published (e.g. https://github.com/acme/tollgate/blob/main/README.md):
   * each alarm then links its runbook section. Relative links mean nothing in a notification.
   * @default - no link; the description carries the first steps
   */
  readonly runbookUrl?: string;
}

const FIVE_MINUTES = Duration.minutes(5);
const ONE_HOUR = Duration.hours(1);
const ONE_DAY = Duration.days(1);

/**
 * Dashboard and alarms. AWS service widgets and most alarms come from cdklabs'
 * `cdk-monitoring-constructs`; the runtime's EMF metrics (latency, time to first token,
 * tokens, cost by model, cache hit ratio) and the metric-math alarms (5xx rate, LLM cost,
 * DLQ arrivals, cache memory) are custom segments on the same facade, so every alarm shares
 * one naming scheme and one SNS action.
 */
export class Observability extends Construct {
  readonly topic: sns.Topic;
  readonly monitoring: MonitoringFacade;
  readonly dashboard: cloudwatch.Dashboard;
  /** Console URL of the dashboard. */
  readonly dashboardUrl: string;

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const defaults = PROFILES.small.alarms;
    const cost = costThresholds(props.monthlyLlmBudgetUsd ?? PROFILES.small.monthlyLlmBudgetUsd);
    const t = {
      ...defaults,
      costPerHourUsd: cost.perHourUsd,
      costPerDayUsd: cost.perDayUsd,
      ...stripUndefined(props.thresholds ?? {}),
    };
    const namespace = props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE;

    // No SSE: alarm notifications carry metric names and thresholds only, CloudWatch cannot
    // publish under the AWS managed SNS key, and a customer managed key costs $1/month.
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `${props.name} alarms`,
      enforceSSL: true,
    });
    if (props.alarmEmail !== undefined) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    const topics = [this.topic];
    if (props.alarmTopicArn !== undefined) {
      topics.push(sns.Topic.fromTopicArn(this, 'ExistingAlarmTopic', props.alarmTopicArn) as sns.Topic);
    }
    if (props.alarmEmail === undefined && props.alarmTopicArn === undefined) {
      Annotations.of(this).addWarningV2(
        '@tollgate/no-alarm-target',
        'NO ONE WILL BE NOTIFIED: no alarms.email and no alarms.topicArn, so every alarm goes to an SNS ' +
          'topic without subscribers. Set one of them (or subscribe to the AlarmTopicArn output).',
      );
    }
    const runbook = (slug: string, what: string) => ({
      alarmDescriptionOverride: `${what} ${FIRST_STEPS[slug] ?? ''}`.trim(),
      ...(props.runbookUrl !== undefined && { runbookLink: `${props.runbookUrl}#runbook-${slug}` }),
    });

    const dashboardFactory = new DefaultDashboardFactory(this, 'Dashboards', {
      dashboardNamePrefix: `${props.name}-${Aws.REGION}`,
      createDashboard: true,
      createSummaryDashboard: false,
      createAlarmDashboard: false,
      detailDashboardRange: Duration.hours(8),
    });
    this.monitoring = new MonitoringFacade(this, 'Monitoring', {
      alarmFactoryDefaults: {
        alarmNamePrefix: props.name,
        actionsEnabled: true,
        action: multipleActions(
          ...topics.map((topic) => new SnsAlarmActionStrategy({ onAlarmTopic: topic, onOkTopic: topic })),
        ),
        datapointsToAlarm: 3,
        evaluationPeriods: 3,
      },
      metricFactoryDefaults: { namespace, period: FIVE_MINUTES },
      dashboardFactory,
    });
    const dashboard = dashboardFactory.dashboard;
    if (!dashboard) throw new Error('the dashboard factory created no dashboard');
    this.dashboard = dashboard;
    this.dashboardUrl =
      `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}` +
      `#dashboards:name=${dashboard.dashboardName}`;

    const app = (
      metricName: string,
      statistic: string,
      service: string = SERVICE_NAMES.api,
      label?: string,
    ) =>
      new cloudwatch.Metric({
        namespace,
        metricName,
        dimensionsMap: { service },
        statistic,
        period: FIVE_MINUTES,
        ...(label !== undefined && { label }),
      });
    // Sum of a metric over both services. Expression ids must be unique per graph/alarm.
    const bothServices = (metricName: string, period: Duration, label: string) => {
      const suffix = `${metricName}${period.toSeconds()}`;
      return new cloudwatch.MathExpression({
        expression: `FILL(api${suffix}, 0) + FILL(worker${suffix}, 0)`,
        usingMetrics: {
          [`api${suffix}`]: app(metricName, cloudwatch.Stats.SUM, SERVICE_NAMES.api).with({ period }),
          [`worker${suffix}`]: app(metricName, cloudwatch.Stats.SUM, SERVICE_NAMES.worker).with({ period }),
        },
        label,
        period,
      });
    };
    const above = (
      threshold: number,
      extra: Partial<CustomThreshold> = {},
    ): Record<string, CustomThreshold> => ({
      Critical: {
        threshold,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingDataOverride: cloudwatch.TreatMissingData.NOT_BREACHING,
        ...extra,
      },
    });
    const once = { datapointsToAlarm: 1, evaluationPeriods: 1 };

    this.monitoring.addLargeHeader(`Tollgate: ${props.name}`);

    // --- The runtime's EMF metrics -------------------------------------------------------
    const apiGroups: CustomMetricGroup[] = [
      {
        title: 'Requests and errors',
        metrics: [
          app(METRICS.requests, cloudwatch.Stats.SUM, SERVICE_NAMES.api, 'Requests'),
          app(METRICS.errors4xx, cloudwatch.Stats.SUM, SERVICE_NAMES.api, '4xx'),
          app(METRICS.errors5xx, cloudwatch.Stats.SUM, SERVICE_NAMES.api, '5xx'),
          app(METRICS.rateLimited, cloudwatch.Stats.SUM, SERVICE_NAMES.api, 'Rate limited'),
        ],
      },
      {
        title: 'Latency (ms)',
        metrics: [
          app(METRICS.latency, cloudwatch.Stats.p(50), SERVICE_NAMES.api, 'p50'),
          app(METRICS.latency, cloudwatch.Stats.p(90), SERVICE_NAMES.api, 'p90'),
          {
            metric: app(METRICS.latency, cloudwatch.Stats.p(99), SERVICE_NAMES.api, 'p99'),
            alarmFriendlyName: 'ApiLatencyP99',
            addAlarm: above(t.p99LatencyMs, {
              ...runbook('p99-latency', `p99 request latency above ${t.p99LatencyMs} ms for 15 minutes.`),
            }),
          },
        ],
      },
      {
        title: 'Time to first token (ms)',
        metrics: [
          app(METRICS.timeToFirstToken, cloudwatch.Stats.p(50), SERVICE_NAMES.api, 'p50'),
          app(METRICS.timeToFirstToken, cloudwatch.Stats.p(90), SERVICE_NAMES.api, 'p90'),
          app(METRICS.timeToFirstToken, cloudwatch.Stats.p(99), SERVICE_NAMES.api, 'p99'),
        ],
      },
      {
        title: 'Dependencies',
        metrics: [
          app(METRICS.upstreamErrors, cloudwatch.Stats.SUM, SERVICE_NAMES.api, 'Upstream errors'),
          app(METRICS.limiterFailOpen, cloudwatch.Stats.SUM, SERVICE_NAMES.api, 'Limiter fail-open'),
          app(METRICS.usageWriteFailures, cloudwatch.Stats.SUM, SERVICE_NAMES.api, 'Usage write failures'),
          app(METRICS.keyLookupFailures, cloudwatch.Stats.SUM, SERVICE_NAMES.api, 'Key table read failures'),
          app(
            METRICS.catalogueDiscoveryFailures,
            cloudwatch.Stats.SUM,
            SERVICE_NAMES.api,
            'Model discovery failures',
          ),
          app(
            METRICS.secretRefreshFailures,
            cloudwatch.Stats.SUM,
            SERVICE_NAMES.api,
            'Secret refresh failures',
          ),
        ],
      },
      {
        title: 'Response cache hit ratio (%)',
        graphWidgetAxis: { min: 0, max: 100 },
        metrics: [
          new cloudwatch.MathExpression({
            expression: '100 * FILL(hits, 0) / (FILL(hits, 0) + FILL(misses, 0))',
            usingMetrics: {
              hits: app(METRICS.cacheHits, cloudwatch.Stats.SUM),
              misses: app(METRICS.cacheMisses, cloudwatch.Stats.SUM),
            },
            label: 'Hit ratio',
            period: FIVE_MINUTES,
          }),
        ],
      },
      {
        title: 'Tokens (API + worker)',
        metrics: [
          bothServices(METRICS.tokensIn, FIVE_MINUTES, 'Tokens in'),
          bothServices(METRICS.tokensOut, FIVE_MINUTES, 'Tokens out'),
        ],
      },
      {
        title: 'LLM cost per hour by model (USD)',
        graphWidgetType: GraphWidgetType.STACKED_AREA,
        metrics: [
          new cloudwatch.MathExpression({
            expression: `SEARCH('{${namespace},model,service} MetricName="${METRICS.costUsdByModel}"', 'Sum', 3600)`,
            usingMetrics: {},
            label: '',
            period: ONE_HOUR,
          }),
        ],
      },
      {
        title: 'LLM cost (USD, API + worker)',
        metrics: [
          {
            metric: bothServices(METRICS.costUsd, ONE_HOUR, 'Per hour'),
            alarmFriendlyName: 'LlmCostPerHour',
            addAlarm: above(t.costPerHourUsd, {
              ...once,
              period: ONE_HOUR,
              ...runbook('llm-cost-per-hour', `LLM spend above $${t.costPerHourUsd} in one hour.`),
            }),
          },
          {
            metric: bothServices(METRICS.costUsd, ONE_DAY, 'Per 24 h'),
            alarmFriendlyName: 'LlmCostPerDay',
            position: AxisPosition.RIGHT,
            addAlarm: above(t.costPerDayUsd, {
              ...once,
              period: ONE_DAY,
              ...runbook('llm-cost-per-day', `LLM spend above $${t.costPerDayUsd} in 24 hours.`),
            }),
          },
        ],
      },
    ];
    this.monitoring.monitorCustom({
      humanReadableName: 'Chat API (runtime metrics)',
      alarmFriendlyName: 'Api',
      metricGroups: apiGroups,
    });

    // --- Load balancer --------------------------------------------------------------------
    const lb = props.chatService.loadBalancer;
    const tg = props.chatService.targetGroup;
    const requests = lb.metrics.requestCount({ statistic: cloudwatch.Stats.SUM, period: FIVE_MINUTES });
    const target5xx = lb.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
      statistic: cloudwatch.Stats.SUM,
      period: FIVE_MINUTES,
    });
    const elb5xx = lb.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, {
      statistic: cloudwatch.Stats.SUM,
      period: FIVE_MINUTES,
    });
    const errorRate = new cloudwatch.MathExpression({
      expression: `IF(requests >= ${FIXED.min5xxRateRequests}, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)`,
      usingMetrics: { requests, target5xx, elb5xx },
      label: '5xx rate (%)',
      period: FIVE_MINUTES,
    });
    this.monitoring.monitorCustom({
      humanReadableName: 'Load balancer',
      alarmFriendlyName: 'LoadBalancer',
      metricGroups: [
        {
          title: 'Requests and 5xx',
          metrics: [
            requests.with({ label: 'Requests' }),
            target5xx.with({ label: 'Target 5xx' }),
            elb5xx.with({ label: 'ELB 5xx' }),
          ],
        },
        {
          title: '5xx rate (%)',
          metrics: [
            {
              metric: errorRate,
              alarmFriendlyName: 'Http5xxRate',
              addAlarm: above(t.error5xxRatePercent, {
                ...runbook(
                  '5xx-rate',
                  `More than ${t.error5xxRatePercent}% of requests answered 5xx for 15 minutes.`,
                ),
              }),
            },
          ],
        },
        {
          title: 'Target response time (s)',
          metrics: [50, 90, 99].map((p) =>
            tg.metrics.targetResponseTime({
              statistic: cloudwatch.Stats.p(p),
              period: FIVE_MINUTES,
              label: `p${p}`,
            }),
          ),
        },
      ],
    });

    // --- ECS service (CPU, memory, task count, healthy/unhealthy hosts) ---------------------
    this.monitoring.monitorFargateService({
      fargateService: props.chatService.service,
      humanReadableName: 'Chat service (ECS)',
      alarmFriendlyName: 'ChatService',
      invertLoadBalancerTaskCountMetricsStatistics: true,
      addUnhealthyTaskCountAlarm: {
        Critical: {
          maxUnhealthyTasks: t.unhealthyHosts,
          ...runbook('unhealthy-hosts', 'Load balancer targets failing GET /health for 15 minutes.'),
        },
      },
    });

    // --- Async path ------------------------------------------------------------------------
    const w = props.asyncWorker;
    this.monitoring.monitorSqsQueueWithDlq({
      queue: w.queue,
      deadLetterQueue: w.deadLetterQueue,
      humanReadableName: 'Jobs queue',
      alarmFriendlyName: 'JobsQueue',
      addQueueMaxSizeAlarm: {
        Warning: {
          maxMessageCount: t.queueDepth,
          ...runbook('queue-depth', `More than ${t.queueDepth} jobs waiting for 15 minutes.`),
        },
      },
      addQueueMaxMessageAgeAlarm: {
        Warning: {
          maxAgeInSeconds: t.oldestMessageAgeSeconds,
          ...runbook(
            'oldest-message-age',
            `The oldest job has waited more than ${t.oldestMessageAgeSeconds} s.`,
          ),
        },
      },
    });
    const dlqArrivals = new cloudwatch.MathExpression({
      expression: 'FILL(visible, 0) + FILL(received, 0)',
      usingMetrics: {
        visible: w.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          statistic: cloudwatch.Stats.MAXIMUM,
          period: FIVE_MINUTES,
        }),
        received: w.deadLetterQueue.metricNumberOfMessagesReceived({
          statistic: cloudwatch.Stats.SUM,
          period: FIVE_MINUTES,
        }),
      },
      label: 'Dead letters (waiting + handled)',
      period: FIVE_MINUTES,
    });
    this.monitoring.monitorCustom({
      humanReadableName: 'Dead letters',
      alarmFriendlyName: 'JobsDlq',
      metricGroups: [
        {
          title: 'Jobs that reached the DLQ',
          metrics: [
            {
              metric: dlqArrivals,
              alarmFriendlyName: 'JobsDlqNotEmpty',
              addAlarm: above(0, {
                ...once,
                ...runbook(
                  'dlq-not-empty',
                  'Job messages reached the dead-letter queue (5 failed receives) or are waiting there.',
                ),
              }),
            },
          ],
        },
      ],
    });
    this.monitoring.monitorLambdaFunction({
      lambdaFunction: w.worker,
      humanReadableName: 'Async worker (Lambda)',
      alarmFriendlyName: 'Worker',
      addFaultCountAlarm: {
        Critical: {
          maxErrorCount: t.workerErrors,
          ...once,
          ...runbook('worker-errors', 'The worker Lambda failed whole invocations (not single records).'),
        },
      },
    });
    this.monitoring.monitorLambdaFunction({
      lambdaFunction: w.dlqHandler,
      humanReadableName: 'DLQ handler (Lambda)',
      alarmFriendlyName: 'DlqHandler',
    });

    // --- Cache -----------------------------------------------------------------------------
    const cache = props.cache;
    if (cache.serverlessCacheName !== undefined) {
      this.monitoring.monitorServerlessElastiCache({
        clusterId: cache.serverlessCacheName,
        humanReadableName: 'Cache (ElastiCache Serverless)',
        alarmFriendlyName: 'Cache',
      });
    } else {
      cache.memberClusterIds.forEach((clusterId, i) => {
        this.monitoring.monitorElastiCacheCluster({
          clusterId,
          clusterType: ElastiCacheClusterType.REDIS,
          humanReadableName: `Cache node ${i + 1}`,
          alarmFriendlyName: `CacheNode${i + 1}`,
        });
      });
    }
    this.monitoring.monitorCustom({
      humanReadableName: 'Cache memory',
      alarmFriendlyName: 'Cache',
      metricGroups: [
        {
          title: 'Memory used (%)',
          graphWidgetAxis: { min: 0, max: 100 },
          metrics: [
            {
              metric: cache.metricMemoryUsagePercent(FIVE_MINUTES),
              alarmFriendlyName: 'CacheMemory',
              addAlarm: above(t.redisMemoryPercent, {
                ...runbook('cache-memory', `Cache memory above ${t.redisMemoryPercent}% for 15 minutes.`),
              }),
            },
          ],
        },
      ],
    });

    // --- Tables ----------------------------------------------------------------------------
    for (const [name, table] of Object.entries(props.data.tables)) {
      this.monitoring.monitorDynamoTable({
        table,
        humanReadableName: `Table ${name}`,
        alarmFriendlyName: `Table${name[0]?.toUpperCase()}${name.slice(1)}`,
      });
    }
  }

  /** Every alarm the facade created. */
  get alarms(): AlarmWithAnnotation[] {
    return this.monitoring.createdAlarms();
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
