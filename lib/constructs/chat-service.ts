import { Annotations, Duration, IgnoreMode, RemovalPolicy, Size, Validations } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as ecsPatterns from 'aws-cdk-lib/aws-ecs-patterns';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  CONTAINER_PORT,
  DEFAULT_METRICS_NAMESPACE,
  ENV,
  HEALTH_PATH,
  SERVICE_NAMES,
} from '../../container/src/contract';
import { FIXED, stopSequence } from '../defaults';
import { secretArnVariable } from './async-worker';
import type { Cache } from './cache';
import type { RuntimeProps } from './runtime-props';
import { ApiWebAcl } from './web-acl';

/**
 * The image's build context, as an allowlist (Docker ignore syntax, relative to the source root):
 * exactly what `container/Dockerfile` copies. The context's content is the image asset's hash, so
 * anything else here (README.md, cdk.json, biome.json, jest.config.js...) would rebuild the image
 * and roll the service on an unrelated edit. `.dockerignore` holds the same list for builds by hand.
 */
export const IMAGE_EXCLUDES: readonly string[] = [
  '*',
  '!package.json',
  '!package-lock.json',
  '!tsconfig.json',
  '!tsconfig.build.json',
  '!container/Dockerfile',
  '!container/src',
  '**/*.test.ts',
  '**/.DS_Store',
];

/** HTTPS for the API. */
export interface ChatServiceDomain {
  /** The API's host name, covered by the certificate. */
  readonly domainName: string;
  /** ACM certificate in the stack's region. */
  readonly certificateArn: string;
  /**
   * Route 53 hosted zone for an alias record `domainName` -> load balancer.
   * @default - no record; point a CNAME at the load balancer yourself
   */
  readonly hostedZone?: { readonly id: string; readonly name: string };
}

/** Props for {@link ChatService}. */
export interface ChatServiceProps extends RuntimeProps {
  readonly vpc: ec2.IVpc;
  /** Subnets of the internet-facing load balancer. */
  readonly loadBalancerSubnets: ec2.SubnetSelection;
  /** Subnets of the tasks (private; tasks never get public IPs). */
  readonly taskSubnets: ec2.SubnetSelection;
  /** The jobs queue (send + attributes) and its DLQ (attributes, for GET /admin/queue). */
  readonly queue: sqs.IQueue;
  readonly deadLetterQueue: sqs.IQueue;
  /** The cache; its security group admits the tasks. */
  readonly cache: Cache;
  /** The admin API key. */
  readonly adminApiKey: secretsmanager.ISecret;
  /**
   * The service config file's content (compact JSON), passed inline.
   * @default - none (the runtime's built-in catalogue)
   */
  readonly serviceConfigJson?: string;
  /**
   * What the rate limiter does when the cache is down.
   * @default - the runtime's default
   */
  readonly limiterFailureMode?: 'open' | 'closed';
  /**
   * Visible jobs above which POST /v1/chat/async answers 503 queue_full
   * (`TOLLGATE_QUEUE_MAX_DEPTH`).
   * @default the runtime's default (10,000)
   */
  readonly queueMaxDepth?: number;
  /**
   * The worker's maximum concurrency, reported by GET /admin/queue
   * (`TOLLGATE_WORKER_CONCURRENCY`).
   * @default the runtime's default (5)
   */
  readonly workerConcurrency?: number;
  /**
   * Task CPU units.
   * @default 256
   */
  readonly cpu?: number;
  /**
   * Task memory (MiB).
   * @default 512
   */
  readonly memoryLimitMiB?: number;
  /**
   * CPU architecture of the task and the image.
   * @default ecs.CpuArchitecture.ARM64
   */
  readonly cpuArchitecture?: ecs.CpuArchitecture;
  /**
   * Fewest tasks: autoscaling's minimum (no desired count in the template, so a deploy keeps a scale-out).
   * @default 1
   */
  readonly minTasks?: number;
  /**
   * Most tasks.
   * @default 2
   */
  readonly maxTasks?: number;
  /**
   * Target average CPU for scaling.
   * @default 60
   */
  readonly cpuTargetPercent?: number;
  /**
   * Target ALB requests per task per minute for scaling.
   * @default 600
   */
  readonly requestsPerTargetPerMinute?: number;
  /**
   * The longest response (stream) a task stop must let finish: the deregistration delay, the
   * stop timeout and the app's drain timeout derive from it (`stopSequence`).
   * @default Duration.seconds(300)
   */
  readonly longestStream?: Duration;
  /**
   * Container Insights on the cluster (task count, per-task metrics; costs extra).
   * @default false
   */
  readonly containerInsights?: boolean;
  /**
   * HTTPS settings.
   * @default - HTTP on port 80 (with a synth-time warning)
   */
  readonly domain?: ChatServiceDomain;
  /**
   * ALB access logs to a new S3 bucket (kept when the stack is deleted).
   * @default false
   */
  readonly accessLogs?: boolean;
  /**
   * A WAF web ACL on the load balancer.
   * @default - none
   */
  readonly waf?: { readonly rateLimitPer5Minutes: number };
  /**
   * Deletion protection on the load balancer.
   * @default false
   */
  readonly deletionProtection?: boolean;
}

/**
 * The chat API: an internet-facing ALB (600 s idle timeout for quiet streams, invalid
 * headers dropped, TLS 1.3 policy and HTTP->HTTPS redirect when a certificate is given)
 * in front of a Fargate service built from `container/Dockerfile`, with circuit breaker
 * rollback, 100% minimum healthy, a container health check, a read-only root filesystem, a stop
 * sequence sized for the longest stream, secrets from Secrets Manager, and scaling on CPU and
 * requests per target (which alone sets the task count).
 */
export class ChatService extends Construct {
  readonly cluster: ecs.Cluster;
  readonly service: ecsPatterns.ApplicationLoadBalancedFargateService;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly logGroup: logs.LogGroup;
  /** The API's base URL (without `/v1`). */
  readonly url: string;
  readonly webAcl?: ApiWebAcl;
  readonly accessLogBucket?: s3.Bucket;

  constructor(scope: Construct, id: string, props: ChatServiceProps) {
    super(scope, id);
    const longestStream = props.longestStream ?? Duration.seconds(300);
    const minTasks = props.minTasks ?? 1;
    const maxTasks = props.maxTasks ?? 2;
    const conflicts: string[] = [];
    const maxStream = FIXED.maxDeregistrationDelaySeconds - FIXED.deregistrationMarginSeconds;
    if (longestStream.toSeconds() > maxStream) {
      conflicts.push(`longestStream (${longestStream.toSeconds()} s) must be at most ${maxStream} s`);
    }
    const stop = stopSequence(longestStream.toSeconds());
    if (minTasks < 1 || minTasks > maxTasks) {
      conflicts.push(`minTasks (${minTasks}) must be at least 1 and at most maxTasks (${maxTasks})`);
    }
    if (conflicts.length > 0) throw new Error(`ChatService: ${conflicts.join('; ')}`);
    const architecture = props.cpuArchitecture ?? ecs.CpuArchitecture.ARM64;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.vpc,
      containerInsightsV2: props.containerInsights
        ? ecs.ContainerInsights.ENABLED
        : ecs.ContainerInsights.DISABLED,
    });
    if (!props.containerInsights) {
      Validations.of(this.cluster).acknowledge({
        id: 'AwsSolutions-ECS4',
        reason:
          'Container Insights is off in the small profile to keep idle cost down; CPU and memory ' +
          'come from the free AWS/ECS metrics (service.containerInsights turns it on).',
      });
    }

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.TWO_WEEKS,
      removalPolicy,
    });

    const taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      cpu: props.cpu ?? 256,
      memoryLimitMiB: props.memoryLimitMiB ?? 512,
      runtimePlatform: {
        cpuArchitecture: architecture,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    Validations.of(taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason:
        'Environment variables carry only non-secret settings (table names, queue URLs, cache ' +
        'host); every secret is an ECS secret from Secrets Manager.',
    });

    const environment: Record<string, string> = {
      [ENV.port]: String(CONTAINER_PORT),
      [ENV.host]: '0.0.0.0',
      [ENV.serviceName]: SERVICE_NAMES.api,
      [ENV.metricsNamespace]: props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE,
      [ENV.logLevel]: props.logLevel ?? 'INFO',
      [ENV.drainTimeoutMs]: String(stop.drainTimeoutSeconds * 1000),
      // Longer than the load balancer's idle timeout, from the same constant: they cannot drift.
      [ENV.keepAliveTimeoutMs]: String((FIXED.idleTimeoutSeconds + FIXED.keepAliveMarginSeconds) * 1000),
      [ENV.tableApiKeys]: props.data.apiKeys.tableName,
      [ENV.tableUsage]: props.data.usage.tableName,
      [ENV.tableJobs]: props.data.jobs.tableName,
      [ENV.tableConversations]: props.data.conversations.tableName,
      [ENV.tableResponses]: props.data.responses.tableName,
      [ENV.jobsQueueUrl]: props.queue.queueUrl,
      [ENV.jobsDlqUrl]: props.deadLetterQueue.queueUrl,
      [ENV.redisHost]: props.cache.host,
      [ENV.redisPort]: String(props.cache.port),
      [ENV.redisTls]: 'true',
      ...(props.cache.mode === 'serverless' && { [ENV.redisCluster]: 'true' }),
      ...(props.openAiCompatibleBaseUrl !== undefined && {
        [ENV.openaiBaseUrl]: props.openAiCompatibleBaseUrl,
      }),
      ...(props.secretRefreshInterval !== undefined && {
        [ENV.secretRefreshMs]: String(props.secretRefreshInterval.toMilliseconds()),
      }),
      ...(props.serviceConfigJson !== undefined && { [ENV.configJson]: props.serviceConfigJson }),
      ...(props.limiterFailureMode !== undefined && { [ENV.limiterFailureMode]: props.limiterFailureMode }),
      ...(props.queueMaxDepth !== undefined && { [ENV.queueMaxDepth]: String(props.queueMaxDepth) }),
      ...(props.workerConcurrency !== undefined && {
        [ENV.workerConcurrency]: String(props.workerConcurrency),
      }),
    };
    const secrets: Record<string, ecs.Secret> = {
      [ENV.adminApiKey]: ecs.Secret.fromSecretsManager(props.adminApiKey),
      [ENV.redisAuthToken]: ecs.Secret.fromSecretsManager(props.cache.authToken),
    };
    // A provider key is injected at start and read again by the app (its ARN, the task role's
    // read grant below): a rotated key reaches running tasks without a deployment.
    for (const [variable, secret] of Object.entries(props.providerKeys ?? {})) {
      secrets[variable] = ecs.Secret.fromSecretsManager(secret);
      environment[secretArnVariable(variable)] = secret.secretArn;
    }

    const healthUrl = `http://127.0.0.1:${CONTAINER_PORT}${HEALTH_PATH}`;
    const container = taskDefinition.addContainer('api', {
      image: ecs.ContainerImage.fromAsset(props.sourceRoot, {
        file: 'container/Dockerfile',
        platform: architecture === ecs.CpuArchitecture.ARM64 ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64,
        exclude: [...IMAGE_EXCLUDES],
        ignoreMode: IgnoreMode.DOCKER,
      }),
      portMappings: [{ containerPort: CONTAINER_PORT, name: 'http' }],
      environment,
      secrets,
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: 'api',
        logGroup: this.logGroup,
        // A CloudWatch hiccup must not block the event loop mid-stream.
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
        maxBufferSize: Size.mebibytes(25),
      }),
      healthCheck: {
        // node:24-slim has no curl; Node's fetch does the probe.
        command: [
          'CMD',
          'node',
          '-e',
          `fetch('${healthUrl}').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`,
        ],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      stopTimeout: Duration.seconds(stop.stopTimeoutSeconds),
      ulimits: [{ name: ecs.UlimitName.NOFILE, softLimit: 65536, hardLimit: 65536 }],
      // The app writes nothing but temporary files; /tmp is a task volume.
      readonlyRootFilesystem: true,
      // The image's unprivileged user, stated in the task definition too (CT.ECS.PR.3).
      user: 'node',
      // The task's memory as the container's hard limit (CT.ECS.PR.7).
      memoryLimitMiB: props.memoryLimitMiB ?? 512,
    });
    taskDefinition.addVolume({ name: 'tmp' });
    container.addMountPoints({ sourceVolume: 'tmp', containerPath: '/tmp', readOnly: false });

    const loadBalancerSecurityGroup = new ec2.SecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc: props.vpc,
      description: 'Tollgate load balancer: the public API listener',
      allowAllOutbound: false,
    });
    Validations.of(loadBalancerSecurityGroup).acknowledge({
      id: 'AwsSolutions-EC23',
      reason: 'The internet-facing API listener is public by design; clients authenticate with API keys.',
    });
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      vpcSubnets: props.loadBalancerSubnets,
      internetFacing: true,
      securityGroup: loadBalancerSecurityGroup,
      idleTimeout: Duration.seconds(FIXED.idleTimeoutSeconds),
      dropInvalidHeaderFields: true,
      http2Enabled: true,
      deletionProtection: props.deletionProtection ?? false,
    });

    if (props.accessLogs) {
      this.accessLogBucket = new s3.Bucket(this, 'AccessLogs', {
        // ALB access logs support SSE-S3 only (not SSE-KMS).
        encryption: s3.BucketEncryption.S3_MANAGED,
        enforceSSL: true,
        // Log objects are never overwritten: versioning only guards against deletion.
        versioned: true,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycleRules: [{ expiration: Duration.days(90), noncurrentVersionExpiration: Duration.days(1) }],
        // Access logs are audit evidence: they outlive the stack.
        removalPolicy: RemovalPolicy.RETAIN,
      });
      Validations.of(this.accessLogBucket).acknowledge({
        id: 'AwsSolutions-S1',
        reason:
          'This bucket only receives ALB access logs; logging access to it would need another log bucket.',
      });
      this.loadBalancer.logAccessLogs(this.accessLogBucket, 'alb');
    } else {
      Validations.of(this.loadBalancer).acknowledge({
        id: 'AwsSolutions-ELB2',
        reason: 'Access logs are off in the small profile (loadBalancer.accessLogs turns them on).',
      });
    }

    const taskSecurityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: props.vpc,
      description: 'Tollgate chat service tasks: reachable only from the load balancer',
      // Upstream providers live at arbitrary HTTPS hosts (and ports, for self-hosted ones).
      allowAllOutbound: true,
    });

    const https = props.domain !== undefined;
    const hostedZone = props.domain?.hostedZone
      ? route53.HostedZone.fromHostedZoneAttributes(this, 'HostedZone', {
          hostedZoneId: props.domain.hostedZone.id,
          zoneName: props.domain.hostedZone.name,
        })
      : undefined;

    this.service = new ecsPatterns.ApplicationLoadBalancedFargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition,
      loadBalancer: this.loadBalancer,
      publicLoadBalancer: true,
      openListener: true,
      taskSubnets: props.taskSubnets,
      assignPublicIp: false,
      securityGroups: [taskSecurityGroup],
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      healthCheckGracePeriod: Duration.seconds(60),
      propagateTags: ecs.PropagatedTagSource.SERVICE,
      enableECSManagedTags: true,
      enableExecuteCommand: false,
      ...(https
        ? {
            protocol: elbv2.ApplicationProtocol.HTTPS,
            certificate: acm.Certificate.fromCertificateArn(this, 'Certificate', props.domain.certificateArn),
            sslPolicy: elbv2.SslPolicy.TLS13_RES,
            redirectHTTP: true,
            ...(hostedZone && { domainName: props.domain.domainName, domainZone: hostedZone }),
          }
        : { protocol: elbv2.ApplicationProtocol.HTTP }),
    });
    this.targetGroup = this.service.targetGroup;

    const hc = FIXED.healthCheck;
    this.targetGroup.configureHealthCheck({
      path: HEALTH_PATH,
      healthyHttpCodes: '200',
      interval: Duration.seconds(hc.intervalSeconds),
      timeout: Duration.seconds(hc.timeoutSeconds),
      healthyThresholdCount: hc.healthyThreshold,
      unhealthyThresholdCount: hc.unhealthyThreshold,
    });
    // ECS deregisters a stopping task, waits this long for its streams, then sends SIGTERM.
    this.targetGroup.setAttribute(
      'deregistration_delay.timeout_seconds',
      String(stop.deregistrationDelaySeconds),
    );
    // Streams hold a connection for minutes; send new ones to the least busy task.
    this.targetGroup.setAttribute('load_balancing.algorithm.type', 'least_outstanding_requests');

    props.cache.connections.allowDefaultPortFrom(taskSecurityGroup, 'Chat service tasks');

    const scaling = this.service.service.autoScaleTaskCount({ minCapacity: minTasks, maxCapacity: maxTasks });
    scaling.scaleOnCpuUtilization('CpuScaling', {
      targetUtilizationPercent: props.cpuTargetPercent ?? 60,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.seconds(300),
    });
    scaling.scaleOnRequestCount('RequestScaling', {
      targetGroup: this.targetGroup,
      requestsPerTarget: props.requestsPerTargetPerMinute ?? 600,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.seconds(300),
    });

    // Autoscaling owns the task count: a DesiredCount in the template would reset it to the
    // minimum on every deploy (aws/aws-cdk#3919). A new service starts one task and scaling
    // raises it to minTasks.
    (this.service.service.node.defaultChild as ecs.CfnService).addPropertyDeletionOverride('DesiredCount');

    const taskRole = taskDefinition.taskRole;
    for (const table of ['apiKeys', 'usage', 'jobs', 'conversations', 'responses'] as const) {
      props.data.grant(taskRole, table, 'readWrite');
    }
    for (const secret of Object.values(props.providerKeys ?? {})) secret.grantRead(taskRole);
    for (const statement of props.providerStatements ?? []) taskRole.addToPrincipalPolicy(statement);
    // Send jobs; read both queues' depth for GET /admin/queue (sending includes attributes).
    props.queue.grantSendMessages(taskRole);
    props.deadLetterQueue.grant(taskRole, 'sqs:GetQueueAttributes');

    if (props.waf) {
      this.webAcl = new ApiWebAcl(this, 'WebAcl', {
        loadBalancerArn: this.loadBalancer.loadBalancerArn,
        rateLimitPer5Minutes: props.waf.rateLimitPer5Minutes,
      });
    }

    const executionRolePolicy = taskDefinition.obtainExecutionRole().node.tryFindChild('DefaultPolicy');
    if (executionRolePolicy) {
      Validations.of(executionRolePolicy).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'ecr:GetAuthorizationToken has no resource-level permissions; image pulls are scoped to the repository.',
      });
    }

    if (https) {
      this.url = `https://${props.domain.domainName}`;
    } else {
      this.url = `http://${this.loadBalancer.loadBalancerDnsName}`;
      Annotations.of(this).addWarningV2(
        '@tollgate/http-only',
        'No domain.domainName/domain.certificateArn: the API listens on plain HTTP, so API keys ' +
          'and prompts cross the internet unencrypted. Fine for a first try; set both for HTTPS.',
      );
    }
  }
}
