import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import {
  applyTags,
  asyncWorkerProps,
  bedrockEndpointOf,
  logRetentionOf,
  providerNeedsOf,
  providerStatementsOf,
  removalPolicyOf,
  runtimeProps,
  secretsProps,
} from './compose';
import type { ServiceConfigBundle, TollgateConfig } from './config';
import { AsyncWorker } from './constructs/async-worker';
import { Cache } from './constructs/cache';
import { ChatService } from './constructs/chat-service';
import { Data } from './constructs/data';
import { Network } from './constructs/network';
import { Observability } from './constructs/observability';
import { AppSecrets } from './constructs/secrets';
import { manageHelperLogGroups } from './helper-log-groups';
import type { ProviderNeeds } from './provider-grants';

/** Props for {@link TollgateStack}. */
export interface TollgateStackProps extends StackProps {
  /** The validated deployment config (`parseConfig`). */
  readonly config: TollgateConfig;
  /** Absolute path of the repository root (Docker build context, Lambda entries, lock file). */
  readonly sourceRoot: string;
  /**
   * The service config (`serviceConfigFile` with the config's `models`), validated at synth time
   * (`resolveServiceConfig`).
   * @default - none: the runtime's defaults (discovery via upstream.baseUrl, else the simulator)
   */
  readonly serviceConfig?: ServiceConfigBundle;
}

/** The stack's name for an environment. */
export function stackName(environment: string): string {
  return `Tollgate-${environment}`;
}

/**
 * Tollgate in one stack. Composition only: each concern is a construct in
 * `lib/constructs/`, wired here from the validated config.
 */
export class TollgateStack extends Stack {
  readonly network: Network;
  readonly data: Data;
  readonly secrets: AppSecrets;
  readonly cache: Cache;
  readonly asyncWorker: AsyncWorker;
  readonly chatService: ChatService;
  readonly observability: Observability;
  /** What the catalogue needs from AWS (the grants seam). */
  readonly providerNeeds: ProviderNeeds;

  constructor(scope: Construct, id: string, props: TollgateStackProps) {
    super(scope, id, props);
    const c = props.config;
    const removalPolicy = removalPolicyOf(c);
    const logRetention = logRetentionOf(c);
    const serviceConfig = props.serviceConfig ?? { models: [] };
    applyTags(this, c);
    this.providerNeeds = providerNeedsOf(this, c, serviceConfig);

    this.network = new Network(this, 'Network', {
      ...(c.vpc.vpcId !== undefined && { vpcId: c.vpc.vpcId }),
      cidr: c.vpc.cidr,
      maxAzs: c.vpc.maxAzs,
      natGateways: c.vpc.natGateways,
      natType: c.vpc.natType,
      natInstanceType: c.vpc.natInstanceType,
      interfaceEndpoints: c.vpc.interfaceEndpoints,
      bedrockEndpoint: bedrockEndpointOf(c, this.providerNeeds),
      flowLogs: c.vpc.flowLogs,
      flowLogRetention: logRetention,
      removalPolicy,
    });

    this.data = new Data(this, 'Data', { removalPolicy, deletionProtection: c.production });

    this.secrets = new AppSecrets(this, 'Secrets', secretsProps(c, this.providerNeeds));

    this.cache = new Cache(this, 'Cache', {
      vpc: this.network.vpc,
      subnets: this.network.dataSubnets,
      mode: c.cache.mode,
      engine: c.cache.engine,
      nodeType: c.cache.nodeType,
      replicas: c.cache.replicas,
      serverlessMaxStorageGb: c.cache.serverlessMaxStorageGb,
      snapshotRetentionDays: c.cache.snapshotRetentionDays,
      removalPolicy,
    });

    const runtime = runtimeProps(c, {
      sourceRoot: props.sourceRoot,
      data: this.data,
      secrets: this.secrets,
      serviceConfig,
      providerStatements: providerStatementsOf(this.providerNeeds),
    });
    // In the VPC, beside the cache: a job's reservation is reconciled with its real usage.
    this.asyncWorker = new AsyncWorker(
      this,
      'AsyncWorker',
      asyncWorkerProps(c, runtime, {
        vpc: this.network.vpc,
        subnets: this.network.appSubnets,
        cache: this.cache,
      }),
    );

    this.chatService = new ChatService(this, 'ChatService', {
      ...runtime,
      vpc: this.network.vpc,
      loadBalancerSubnets: this.network.publicSubnets,
      taskSubnets: this.network.appSubnets,
      queue: this.asyncWorker.queue,
      deadLetterQueue: this.asyncWorker.deadLetterQueue,
      cache: this.cache,
      adminApiKey: this.secrets.adminApiKey,
      ...(c.service.limiterFailureMode !== undefined && { limiterFailureMode: c.service.limiterFailureMode }),
      queueMaxDepth: c.worker.queueMaxDepth,
      workerConcurrency: c.worker.maxConcurrency,
      cpu: c.service.cpu,
      memoryLimitMiB: c.service.memoryMiB,
      cpuArchitecture:
        c.service.architecture === 'arm64' ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64,
      minTasks: c.service.minTasks,
      maxTasks: c.service.maxTasks,
      cpuTargetPercent: c.service.cpuTargetPercent,
      requestsPerTargetPerMinute: c.service.requestsPerTargetPerMinute,
      longestStream: Duration.seconds(c.service.longestStreamSeconds),
      containerInsights: c.service.containerInsights,
      ...(c.domain !== undefined && {
        domain: {
          domainName: c.domain.domainName,
          certificateArn: c.domain.certificateArn,
          ...(c.domain.hostedZoneId !== undefined &&
            c.domain.hostedZoneName !== undefined && {
              hostedZone: { id: c.domain.hostedZoneId, name: c.domain.hostedZoneName },
            }),
        },
      }),
      accessLogs: c.loadBalancer.accessLogs,
      ...(c.waf.enabled && { waf: { rateLimitPer5Minutes: c.waf.rateLimitPer5Minutes } }),
      deletionProtection: c.production,
    });

    this.observability = new Observability(this, 'Observability', {
      name: stackName(c.environment),
      chatService: this.chatService,
      asyncWorker: this.asyncWorker,
      cache: this.cache,
      data: this.data,
      metricsNamespace: c.metricsNamespace,
      monthlyLlmBudgetUsd: c.monthlyLlmBudgetUsd,
      thresholds: c.alarms,
      ...(c.alarms.email !== undefined && { alarmEmail: c.alarms.email }),
      ...(c.alarms.topicArn !== undefined && { alarmTopicArn: c.alarms.topicArn }),
      ...(c.alarms.runbookUrl !== undefined && { runbookUrl: c.alarms.runbookUrl }),
    });
    manageHelperLogGroups(this, { retention: logRetention, removalPolicy });

    new CfnOutput(this, 'ApiUrl', {
      description: 'Base URL of the API (OpenAI clients: <ApiUrl>/v1)',
      value: this.chatService.url,
    });
    new CfnOutput(this, 'DashboardUrl', {
      description: 'CloudWatch dashboard',
      value: this.observability.dashboardUrl,
    });
    new CfnOutput(this, 'AdminKeySecretName', {
      description: 'Secrets Manager secret holding the admin API key',
      value: this.secrets.adminApiKey.secretName,
    });
    const defaultKey = this.secrets.providerKeys['OPENAI_API_KEY'];
    if (defaultKey) {
      new CfnOutput(this, 'UpstreamKeySecretName', {
        description: this.secrets.placeholderProviderKey
          ? 'Secret for the upstream provider key: put the real key here after the first deploy'
          : 'Secret holding the upstream provider key',
        value: defaultKey.secretName,
      });
    }
    new CfnOutput(this, 'ClusterName', {
      description: 'ECS cluster (for `aws ecs update-service --force-new-deployment` after a secret changes)',
      value: this.chatService.cluster.clusterName,
    });
    new CfnOutput(this, 'ServiceName', {
      description: 'ECS service of the chat API',
      value: this.chatService.service.service.serviceName,
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      description: 'SNS topic of all alarms',
      value: this.observability.topic.topicArn,
    });
    new CfnOutput(this, 'VpcId', { description: 'VPC of the service', value: this.network.vpc.vpcId });
  }
}
