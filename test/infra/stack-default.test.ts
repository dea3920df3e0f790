/**
 * The default (small profile) stack: synthesised once, then a snapshot, cdk-nag, and one
 * assertion per invariant the deployment promises.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import {
  CONTAINER_PORT,
  ENV,
  HEALTH_PATH,
  METRICS,
  SERVICE_NAMES,
  TABLES,
} from '../../container/src/contract';
import { FIRST_STEPS } from '../../lib/constructs/observability';
import { FIXED } from '../../lib/defaults';
import {
  alarmsByName,
  type Built,
  buildStack,
  containerEnvironment,
  logicalId,
  nagFindings,
  normalizedTemplate,
  onlyResource,
  resourcesOf,
  warnings,
} from './helpers';

let built: Built;
let template: Template;

beforeAll(() => {
  built = buildStack({});
  template = built.template;
});

describe('default stack', () => {
  it('matches the snapshot', () => {
    expect(normalizedTemplate(template)).toMatchSnapshot();
  });

  it('has no unacknowledged cdk-nag AwsSolutions findings', () => {
    expect(nagFindings(built.app, 'error')).toEqual([]);
    expect(nagFindings(built.app, 'warning')).toEqual([]);
  });

  it('warns at synth time that the API is HTTP only and that alarms notify nobody', () => {
    expect(warnings(built.stack)).toEqual([
      { path: 'Tollgate-dev/ChatService', message: expect.stringContaining('plain HTTP') },
      { path: 'Tollgate-dev/Observability', message: expect.stringContaining('NO ONE WILL BE NOTIFIED') },
    ]);
  });
});

describe('network', () => {
  it('spans two AZs with public, app and data subnets; none assigns public IPs on launch', () => {
    const subnets = Object.values(resourcesOf(template, 'AWS::EC2::Subnet'));
    expect(subnets).toHaveLength(6);
    expect(subnets.filter((s) => s.Properties?.['MapPublicIpOnLaunch'] === true)).toHaveLength(0);
    // The NAT instance asks for its own address.
    template.hasResourceProperties('AWS::EC2::Instance', {
      NetworkInterfaces: [Match.objectLike({ AssociatePublicIpAddress: true })],
    });
  });

  it('has a DynamoDB gateway endpoint', () => {
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      ServiceName: Match.objectLike({
        'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('dynamodb')])],
      }),
      VpcEndpointType: 'Gateway',
    });
  });

  it('uses one t4g.nano NAT instance (small profile) with an encrypted root volume and IMDSv2', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Instance', 1);
    template.hasResourceProperties('AWS::EC2::Instance', {
      InstanceType: 't4g.nano',
      SourceDestCheck: false,
      BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true }) })],
      MetadataOptions: Match.objectLike({ HttpTokens: 'required' }),
    });
  });

  it('logs rejected flows', () => {
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'REJECT' });
  });

  it('chains security groups: internet -> ALB -> tasks -> cache, and worker -> cache', () => {
    const s = built.stack;
    const albSg = logicalId(s, s.chatService.loadBalancer.connections.securityGroups[0]!);
    const taskSg = logicalId(s, s.chatService.service.service.connections.securityGroups[0]!);
    const cacheSg = logicalId(s, s.cache.connections.securityGroups[0]!);
    const workerSg = logicalId(s, s.asyncWorker.securityGroup!);
    const ingress = Object.values(resourcesOf(template, 'AWS::EC2::SecurityGroupIngress')).map(
      (r) => r.Properties!,
    );

    const into = (sg: string) => ingress.filter((i) => JSON.stringify(i['GroupId']).includes(sg));
    expect(into(taskSg)).toEqual([
      expect.objectContaining({
        FromPort: CONTAINER_PORT,
        ToPort: CONTAINER_PORT,
        SourceSecurityGroupId: { 'Fn::GetAtt': [albSg, 'GroupId'] },
      }),
    ]);
    expect(into(cacheSg)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          FromPort: 6379,
          ToPort: 6379,
          SourceSecurityGroupId: { 'Fn::GetAtt': [taskSg, 'GroupId'] },
        }),
        expect.objectContaining({
          FromPort: 6379,
          ToPort: 6379,
          SourceSecurityGroupId: { 'Fn::GetAtt': [workerSg, 'GroupId'] },
        }),
      ]),
    );
    expect(into(cacheSg)).toHaveLength(2);
    // The cache's own security group carries no inline ingress from anywhere else.
    const cacheGroup = resourcesOf(template, 'AWS::EC2::SecurityGroup')[cacheSg]!;
    expect(cacheGroup.Properties?.['SecurityGroupIngress']).toBeUndefined();
    // The ALB is the only thing open to the internet.
    const albGroup = resourcesOf(template, 'AWS::EC2::SecurityGroup')[albSg]!;
    expect(albGroup.Properties?.['SecurityGroupIngress']).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', FromPort: 80, ToPort: 80 }),
    ]);
  });
});

describe('chat service', () => {
  it('runs on Fargate ARM64 with the configured size', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '256',
      Memory: '512',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      RequiresCompatibilities: ['FARGATE'],
    });
  });

  it('leaves the task count to autoscaling: no DesiredCount a deploy would reset (aws/aws-cdk#3919)', () => {
    const { Properties } = onlyResource(template, 'AWS::ECS::Service');
    expect(Properties).not.toHaveProperty('DesiredCount');
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: built.config.service.minTasks,
    });
  });

  it('deploys with circuit breaker rollback, 100% min healthy and no public IPs', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DeploymentConfiguration: {
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
        MinimumHealthyPercent: 100,
        MaximumPercent: 200,
      },
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }) },
    });
  });

  it('has a container health check on the liveness path, a 120 s stop timeout and a read-only root filesystem', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          PortMappings: [Match.objectLike({ ContainerPort: CONTAINER_PORT })],
          HealthCheck: Match.objectLike({
            Command: Match.arrayWith([
              Match.stringLikeRegexp(`127\\.0\\.0\\.1:${CONTAINER_PORT}${HEALTH_PATH}`),
            ]),
          }),
          StopTimeout: 120,
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
          ReadonlyRootFilesystem: true,
          MountPoints: [{ ContainerPath: '/tmp', SourceVolume: 'tmp', ReadOnly: false }],
        }),
      ],
      Volumes: [{ Name: 'tmp' }],
    });
  });

  it('lets a stream of service.longestStreamSeconds finish on a stop: deregistration delay, stop timeout and drain from it', () => {
    const longest = built.config.service.longestStreamSeconds;
    expect(longest).toBe(300);
    const tg = onlyResource(template, 'AWS::ElasticLoadBalancingV2::TargetGroup').Properties;
    const attrs = tg['TargetGroupAttributes'] as Array<{ Key: string; Value: string }>;
    const delay = Number(attrs.find((a) => a.Key === 'deregistration_delay.timeout_seconds')?.Value);
    // ECS sends SIGTERM only after the delay: the load balancer keeps the stream that long.
    expect(delay).toBeGreaterThanOrEqual(longest);
    expect(delay).toBe(longest + FIXED.deregistrationMarginSeconds);
    const { Properties } = onlyResource(template, 'AWS::ECS::TaskDefinition');
    const container = (Properties['ContainerDefinitions'] as Array<Record<string, unknown>>)[0]!;
    const stopTimeout = Number(container['StopTimeout']);
    const drainMs = Number(containerEnvironment(template)[ENV.drainTimeoutMs]);
    // After SIGTERM: the grace, the drain and the usage flush fit before the SIGKILL.
    expect(FIXED.drainGraceSeconds + drainMs / 1000 + FIXED.usageFlushReserveSeconds).toBeLessThanOrEqual(
      stopTimeout,
    );
    expect(stopTimeout).toBeLessThanOrEqual(FIXED.stopTimeoutSeconds);
  });

  it('keeps idle connections open longer than the load balancer does (the same constant)', () => {
    const keepAliveMs = Number(containerEnvironment(template)[ENV.keepAliveTimeoutMs]);
    const lb = onlyResource(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer').Properties;
    const idle = Number(
      (lb['LoadBalancerAttributes'] as Array<{ Key: string; Value: string }>).find(
        (a) => a.Key === 'idle_timeout.timeout_seconds',
      )?.Value,
    );
    expect(idle).toBe(600);
    expect(keepAliveMs).toBeGreaterThanOrEqual(605_000);
    expect(keepAliveMs).toBeGreaterThan(idle * 1000);
  });

  it('passes secrets from Secrets Manager, never as plain environment values', () => {
    const { Properties } = onlyResource(template, 'AWS::ECS::TaskDefinition');
    const container = (Properties['ContainerDefinitions'] as Array<Record<string, unknown>>)[0]!;
    const secrets = container['Secrets'] as Array<{ Name: string; ValueFrom: unknown }>;
    // The default catalogue is the simulator: no provider key, so no provider secret at all.
    expect(secrets.map((s) => s.Name).sort()).toEqual([ENV.redisAuthToken, ENV.adminApiKey].sort());
    expect(built.stack.secrets.providerKeys).toEqual({});
    for (const s of secrets) expect(JSON.stringify(s.ValueFrom)).toMatch(/"Ref":"(Secrets|Cache)/);
    const env = containerEnvironment(template);
    for (const name of [ENV.openaiApiKey, ENV.redisAuthToken, ENV.adminApiKey])
      expect(env).not.toHaveProperty(name);
    // Generated secrets only: no literal secret value anywhere in the template.
    for (const secret of Object.values(resourcesOf(template, 'AWS::SecretsManager::Secret'))) {
      expect(secret.Properties).not.toHaveProperty('SecretString');
      expect(secret.Properties).toHaveProperty('GenerateSecretString');
    }
  });

  it('wires tables, queues and the cache through the contract variables', () => {
    const env = containerEnvironment(template);
    const s = built.stack;
    expect(env).toMatchObject({
      [ENV.port]: String(CONTAINER_PORT),
      [ENV.serviceName]: SERVICE_NAMES.api,
      [ENV.tableApiKeys]: { Ref: logicalId(s, s.data.apiKeys) },
      [ENV.tableUsage]: { Ref: logicalId(s, s.data.usage) },
      [ENV.tableJobs]: { Ref: logicalId(s, s.data.jobs) },
      [ENV.tableConversations]: { Ref: logicalId(s, s.data.conversations) },
      [ENV.tableResponses]: { Ref: logicalId(s, s.data.responses) },
      [ENV.jobsQueueUrl]: { Ref: logicalId(s, s.asyncWorker.queue) },
      [ENV.jobsDlqUrl]: { Ref: logicalId(s, s.asyncWorker.deadLetterQueue) },
      [ENV.redisTls]: 'true',
      [ENV.redisPort]: '6379',
    });
  });

  it('scales on CPU and on ALB requests per target', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: built.config.service.minTasks,
      MaxCapacity: built.config.service.maxTasks,
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
        TargetValue: built.config.service.cpuTargetPercent,
      }),
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        PredefinedMetricSpecification: Match.objectLike({ PredefinedMetricType: 'ALBRequestCountPerTarget' }),
        TargetValue: built.config.service.requestsPerTargetPerMinute,
      }),
    });
  });

  it('keeps container logs with a retention', () => {
    const s = built.stack;
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      RetentionInDays: built.config.service.logRetentionDays,
    });
    expect(
      resourcesOf(template, 'AWS::Logs::LogGroup')[logicalId(s, s.chatService.logGroup)]?.Properties,
    ).toEqual(expect.objectContaining({ RetentionInDays: 14 }));
  });
});

describe('load balancer', () => {
  it('keeps quiet streams open for 600 s and drops invalid header fields', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'idle_timeout.timeout_seconds', Value: '600' },
        { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
      ]),
    });
  });

  it('health-checks GET /health every 15 s (healthy 2, unhealthy 3)', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: HEALTH_PATH,
      HealthCheckIntervalSeconds: 15,
      HealthyThresholdCount: 2,
      UnhealthyThresholdCount: 3,
      Matcher: { HttpCode: '200' },
      TargetGroupAttributes: Match.arrayWith([
        { Key: 'load_balancing.algorithm.type', Value: 'least_outstanding_requests' },
      ]),
    });
  });

  it('listens on plain HTTP without a certificate, with no WAF', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'HTTP' });
    template.resourceCountIs('AWS::WAFv2::WebACL', 0);
  });
});

describe('cache', () => {
  it('is a single small node with TLS, encryption at rest and an AUTH token from Secrets Manager', () => {
    template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      Engine: 'valkey',
      CacheNodeType: 'cache.t4g.micro',
      NumCacheClusters: 1,
      MultiAZEnabled: false,
      TransitEncryptionEnabled: true,
      TransitEncryptionMode: 'required',
      AtRestEncryptionEnabled: true,
      AuthToken: {
        'Fn::Join': ['', ['{{resolve:secretsmanager:', { Ref: Match.anyValue() }, ':SecretString:::}}']],
      },
    });
  });

  it('lives in the isolated data subnets', () => {
    const { Properties } = onlyResource(template, 'AWS::ElastiCache::SubnetGroup');
    expect(JSON.stringify(Properties['SubnetIds'])).toMatch(/dataSubnet1.*dataSubnet2/);
  });
});

describe('data', () => {
  it.each(Object.entries(TABLES))('creates the %s table on demand with PITR and encryption', (name, spec) => {
    const s = built.stack;
    const table = resourcesOf(template, 'AWS::DynamoDB::Table')[
      logicalId(s, s.data.tables[name as keyof typeof TABLES])
    ]!;
    expect(table.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      KeySchema: expect.arrayContaining([{ AttributeName: spec.partitionKey, KeyType: 'HASH' }]),
    });
    if ('ttlAttribute' in spec) {
      expect(table.Properties).toMatchObject({
        TimeToLiveSpecification: { AttributeName: spec.ttlAttribute, Enabled: true },
      });
    }
    // Small profile: tables go with the stack.
    expect(table['DeletionPolicy']).toBe('Delete');
  });

  it('indexes api keys by id and by owner', () => {
    const s = built.stack;
    const apiKeys = resourcesOf(template, 'AWS::DynamoDB::Table')[logicalId(s, s.data.apiKeys)]!;
    expect(apiKeys.Properties?.['GlobalSecondaryIndexes']).toEqual([
      expect.objectContaining({ IndexName: TABLES.apiKeys.byIdIndex.name }),
      expect.objectContaining({ IndexName: TABLES.apiKeys.byOwnerIndex.name }),
    ]);
  });

  it('keys stored responses by response id and chunk, expiring by TTL', () => {
    const s = built.stack;
    const t = TABLES.responses;
    const responses = resourcesOf(template, 'AWS::DynamoDB::Table')[logicalId(s, s.data.responses)]!;
    expect(responses.Properties).toMatchObject({
      KeySchema: [
        { AttributeName: t.partitionKey, KeyType: 'HASH' },
        { AttributeName: t.sortKey, KeyType: 'RANGE' },
      ],
      TimeToLiveSpecification: { AttributeName: t.ttlAttribute, Enabled: true },
    });
  });

  it('indexes unfinished jobs by age, keys only (the oldest message age of GET /admin/queue), and failed jobs by time', () => {
    const s = built.stack;
    const jobs = resourcesOf(template, 'AWS::DynamoDB::Table')[logicalId(s, s.data.jobs)]!;
    const idx = TABLES.jobs.pendingIndex;
    const failed = TABLES.jobs.failedIndex;
    expect(jobs.Properties?.['GlobalSecondaryIndexes']).toEqual([
      {
        IndexName: idx.name,
        KeySchema: [
          { AttributeName: idx.partitionKey, KeyType: 'HASH' },
          { AttributeName: idx.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
      // GET /admin/jobs/failed (the console's queue page): what the list shows, never the request.
      {
        IndexName: failed.name,
        KeySchema: [
          { AttributeName: failed.partitionKey, KeyType: 'HASH' },
          { AttributeName: failed.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...failed.projected] },
      },
    ]);
  });
});

describe('least privilege', () => {
  function statementsOf(roleConstruct: Parameters<typeof logicalId>[1]): Array<Record<string, unknown>> {
    const s = built.stack;
    const role = logicalId(s, roleConstruct);
    return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
      .filter((p) => JSON.stringify(p.Properties?.['Roles']).includes(role))
      .flatMap(
        (p) =>
          (p.Properties?.['PolicyDocument'] as { Statement: Array<Record<string, unknown>> } | undefined)
            ?.Statement ?? [],
      );
  }
  const tableRefs = (statements: Array<Record<string, unknown>>) => JSON.stringify(statements);

  it('lets the worker touch jobs, usage and (read-only) api keys, never conversations', () => {
    const s = built.stack;
    const text = tableRefs(statementsOf(s.asyncWorker.worker.role!));
    expect(text).toContain(logicalId(s, s.data.jobs));
    expect(text).toContain(logicalId(s, s.data.usage));
    expect(text).toContain(logicalId(s, s.data.apiKeys));
    expect(text).not.toContain(logicalId(s, s.data.conversations));
    const apiKeyStatement = statementsOf(s.asyncWorker.worker.role!).find((st) =>
      JSON.stringify(st['Resource']).includes(logicalId(s, s.data.apiKeys)),
    );
    expect(apiKeyStatement?.['Action']).not.toContain('dynamodb:PutItem');
  });

  it('lets the service read and write stored responses, and the worker never', () => {
    const s = built.stack;
    const responses = logicalId(s, s.data.responses);
    const service = statementsOf(s.chatService.service.taskDefinition.taskRole).find((st) =>
      JSON.stringify(st['Resource']).includes(responses),
    );
    expect(service?.['Action']).toEqual(
      expect.arrayContaining(['dynamodb:Query', 'dynamodb:BatchWriteItem']),
    );
    expect(tableRefs(statementsOf(s.asyncWorker.worker.role!))).not.toContain(responses);
  });

  it('lets the DLQ handler only get and update jobs', () => {
    const s = built.stack;
    const dynamo = statementsOf(s.asyncWorker.dlqHandler.role!).filter((st) =>
      JSON.stringify(st['Action']).includes('dynamodb:'),
    );
    expect(dynamo).toEqual([
      expect.objectContaining({
        Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        Resource: { 'Fn::GetAtt': [logicalId(s, s.data.jobs), 'Arn'] },
      }),
    ]);
  });

  it('names index ARNs instead of index wildcards', () => {
    expect(JSON.stringify(resourcesOf(template, 'AWS::IAM::Policy'))).not.toContain('/index/*');
  });

  it('lets the service send jobs and read both queue depths', () => {
    const s = built.stack;
    const text = JSON.stringify(statementsOf(s.chatService.service.taskDefinition.taskRole));
    expect(text).toContain('sqs:SendMessage');
    expect(text).toContain(logicalId(s, s.asyncWorker.deadLetterQueue));
    expect(text).not.toContain('sqs:ReceiveMessage');
  });
});

describe('async path', () => {
  it('encrypts both queues and denies non-TLS access', () => {
    for (const queue of Object.values(resourcesOf(template, 'AWS::SQS::Queue'))) {
      expect(queue.Properties).toMatchObject({ SqsManagedSseEnabled: true });
    }
    const policies = Object.values(resourcesOf(template, 'AWS::SQS::QueuePolicy'));
    expect(policies).toHaveLength(2);
    for (const policy of policies) {
      expect(policy.Properties?.['PolicyDocument']).toMatchObject({
        Statement: expect.arrayContaining([
          expect.objectContaining({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      });
    }
  });

  it('redrives to the DLQ after 5 receives (AWS: at least 5 for Lambda), with visibility >= 6x the worker timeout', () => {
    const s = built.stack;
    const queue = resourcesOf(template, 'AWS::SQS::Queue')[logicalId(s, s.asyncWorker.queue)]!.Properties!;
    expect(queue['RedrivePolicy']).toEqual({
      deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(s, s.asyncWorker.deadLetterQueue), 'Arn'] },
      maxReceiveCount: 5,
    });
    const worker = resourcesOf(template, 'AWS::Lambda::Function')[logicalId(s, s.asyncWorker.worker)]!
      .Properties!;
    expect(Number(queue['VisibilityTimeout'])).toBeGreaterThanOrEqual(6 * Number(worker['Timeout']));
  });

  it('runs both functions on nodejs24.x ARM64 with Powertools settings', () => {
    const s = built.stack;
    const worker = resourcesOf(template, 'AWS::Lambda::Function')[logicalId(s, s.asyncWorker.worker)]!
      .Properties!;
    expect(worker).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      LoggingConfig: expect.objectContaining({ LogFormat: 'JSON' }),
      Environment: {
        Variables: expect.objectContaining({
          [ENV.serviceName]: SERVICE_NAMES.worker,
          [ENV.metricsNamespace]: 'Tollgate',
          NODE_OPTIONS: '--enable-source-maps',
        }),
      },
    });
    expect(worker['Environment']).not.toHaveProperty(['Variables', ENV.openaiApiKey]);
    const dlq = resourcesOf(template, 'AWS::Lambda::Function')[logicalId(s, s.asyncWorker.dlqHandler)]!
      .Properties!;
    expect(dlq['Runtime']).toBe('nodejs24.x');
  });

  it('runs the worker and the DLQ handler beside the cache, with its connection settings', () => {
    const s = built.stack;
    const functions = resourcesOf(template, 'AWS::Lambda::Function');
    for (const fn of [s.asyncWorker.worker, s.asyncWorker.dlqHandler]) {
      const p = functions[logicalId(s, fn)]!.Properties!;
      expect(p['VpcConfig']).toEqual({
        SecurityGroupIds: [{ 'Fn::GetAtt': [logicalId(s, s.asyncWorker.securityGroup!), 'GroupId'] }],
        SubnetIds: expect.arrayContaining([{ Ref: expect.stringMatching(/appSubnet1/) }]),
      });
      expect(p['Environment']).toMatchObject({
        Variables: expect.objectContaining({
          [ENV.redisHost]: {
            'Fn::GetAtt': [expect.stringMatching(/ReplicationGroup/), 'PrimaryEndPoint.Address'],
          },
          [ENV.redisPort]: '6379',
          [ENV.redisTls]: 'true',
          [`${ENV.redisAuthToken}_SECRET_ARN`]: { Ref: logicalId(s, s.cache.authToken) },
        }),
      });
    }
  });

  it('reports partial batch failures and caps concurrency on both event sources', () => {
    const s = built.stack;
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(s, s.asyncWorker.queue), 'Arn'] },
      FunctionName: { Ref: logicalId(s, s.asyncWorker.worker) },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: built.config.worker.maxConcurrency },
      BatchSize: built.config.worker.batchSize,
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(s, s.asyncWorker.deadLetterQueue), 'Arn'] },
      FunctionName: { Ref: logicalId(s, s.asyncWorker.dlqHandler) },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });
});

describe('observability', () => {
  let alarms: Record<string, Record<string, unknown>>;
  beforeAll(() => {
    alarms = alarmsByName(template);
  });
  const topicRef = () => ({ Ref: logicalId(built.stack, built.stack.observability.topic) });

  it('creates exactly the documented alarms, each notifying the SNS topic with its first runbook steps', () => {
    expect(Object.keys(alarms).sort()).toEqual(
      [
        'Tollgate-dev-Api-ApiLatencyP99-Critical',
        'Tollgate-dev-Api-LlmCostPerDay-Critical',
        'Tollgate-dev-Api-LlmCostPerHour-Critical',
        'Tollgate-dev-Cache-CacheMemory-Critical',
        'Tollgate-dev-ChatService-Unhealthy-Tasks-Critical',
        'Tollgate-dev-JobsDlq-JobsDlqNotEmpty-Critical',
        'Tollgate-dev-JobsQueue-Queue-Message-Age-Max-Warning',
        'Tollgate-dev-JobsQueue-Queue-Message-Count-Max-Warning',
        'Tollgate-dev-LoadBalancer-Http5xxRate-Critical',
        'Tollgate-dev-Worker-Fault-Count-Critical',
      ].sort(),
    );
    const steps = new Set(Object.values(FIRST_STEPS));
    for (const alarm of Object.values(alarms)) {
      expect(alarm['AlarmActions']).toEqual([topicRef()]);
      expect(alarm['OKActions']).toEqual([topicRef()]);
      const description = String(alarm['AlarmDescription']);
      // What an inbox can use: the steps themselves, no link relative to a repository.
      expect([...steps].some((s) => description.includes(s))).toBe(true);
      expect(description).not.toMatch(/README\.md#/);
      expect(description.length).toBeLessThanOrEqual(1024);
    }
  });

  it('has first steps for every runbook of the README, and a runbook for every set of steps', () => {
    const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    const anchors = [...readme.matchAll(/^#+ Runbook: (.+)$/gm)].map((m) =>
      (m[1] as string)
        .toLowerCase()
        .replace(/[^a-z0-9 -]/g, '')
        .replace(/ /g, '-'),
    );
    expect(anchors.sort()).toEqual(Object.keys(FIRST_STEPS).sort());
  });

  it('alarms on the 5xx rate above 5% with metric math over target and ELB 5xx', () => {
    const alarm = alarms['Tollgate-dev-LoadBalancer-Http5xxRate-Critical']!;
    expect(alarm['Threshold']).toBe(5);
    const text = JSON.stringify(alarm['Metrics']);
    expect(text).toContain('HTTPCode_Target_5XX_Count');
    expect(text).toContain('HTTPCode_ELB_5XX_Count');
    expect(text).toContain('RequestCount');
    expect(text).toContain('100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests');
  });

  it('alarms on p99 latency from the EMF metric', () => {
    const alarm = alarms['Tollgate-dev-Api-ApiLatencyP99-Critical']!;
    expect(alarm['Threshold']).toBe(60_000);
    expect(JSON.stringify(alarm)).toContain(`"MetricName":"${METRICS.latency}"`);
    expect(JSON.stringify(alarm)).toContain('"Stat":"p99"');
  });

  it('alarms on LLM cost per hour and per day across API and worker', () => {
    const perHour = alarms['Tollgate-dev-Api-LlmCostPerHour-Critical']!;
    const perDay = alarms['Tollgate-dev-Api-LlmCostPerDay-Critical']!;
    expect(perHour['Threshold']).toBe(built.config.alarms.costPerHourUsd);
    expect(perDay['Threshold']).toBe(built.config.alarms.costPerDayUsd);
    for (const [alarm, period] of [
      [perHour, 3600],
      [perDay, 86400],
    ] as const) {
      const text = JSON.stringify(alarm['Metrics']);
      expect(text).toContain(`"MetricName":"${METRICS.costUsd}"`);
      expect(text).toContain(SERVICE_NAMES.api);
      expect(text).toContain(SERVICE_NAMES.worker);
      expect(text).toContain(`"Period":${period}`);
    }
  });

  it('alarms on queue depth, oldest message age, DLQ arrivals and worker errors', () => {
    expect(alarms['Tollgate-dev-JobsQueue-Queue-Message-Count-Max-Warning']!['Threshold']).toBe(100);
    expect(alarms['Tollgate-dev-JobsQueue-Queue-Message-Age-Max-Warning']!['Threshold']).toBe(900);
    const dlq = alarms['Tollgate-dev-JobsDlq-JobsDlqNotEmpty-Critical']!;
    expect(dlq).toMatchObject({
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 1,
    });
    expect(JSON.stringify(dlq['Metrics'])).toContain('ApproximateNumberOfMessagesVisible');
    expect(JSON.stringify(dlq['Metrics'])).toContain('NumberOfMessagesReceived');
    const worker = alarms['Tollgate-dev-Worker-Fault-Count-Critical']!;
    expect(worker).toMatchObject({ Threshold: 0, EvaluationPeriods: 1 });
    expect(JSON.stringify(worker)).toContain('"MetricName":"Errors"');
  });

  it('alarms on unhealthy hosts and cache memory above 80%', () => {
    expect(JSON.stringify(alarms['Tollgate-dev-ChatService-Unhealthy-Tasks-Critical'])).toContain(
      'UnHealthyHostCount',
    );
    const memory = alarms['Tollgate-dev-Cache-CacheMemory-Critical']!;
    expect(memory).toMatchObject({ Threshold: 80, MetricName: 'DatabaseMemoryUsagePercentage' });
  });

  it('builds one dashboard with the runtime, ALB, ECS, queue, Lambda and cache widgets', () => {
    const { Properties } = onlyResource(template, 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(Properties['DashboardBody']);
    for (const needle of [
      METRICS.timeToFirstToken,
      METRICS.rateLimited,
      METRICS.upstreamErrors,
      METRICS.tokensOut,
      METRICS.cacheHits,
      `MetricName=\\\\\\"${METRICS.costUsdByModel}\\\\\\"`,
      'TargetResponseTime',
      'HealthyHostCount',
      'CPUUtilization',
      'MemoryUtilization',
      'ApproximateAgeOfOldestMessage',
      'Throttles',
      'Evictions',
    ]) {
      expect(body).toContain(needle);
    }
  });

  it('has no e-mail subscription unless configured (and warns: see the synth warnings)', () => {
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });
});

describe('outputs', () => {
  it('exports the API URL, dashboard URL and admin key secret name', () => {
    template.hasOutput('ApiUrl', {
      Value: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith(['http://'])] }),
    });
    template.hasOutput('DashboardUrl', { Value: Match.anyValue() });
    template.hasOutput('AdminKeySecretName', { Value: Match.anyValue() });
    // The simulator needs no provider key: no placeholder secret to fill in.
    expect(template.findOutputs('UpstreamKeySecretName')).toEqual({});
  });
});
