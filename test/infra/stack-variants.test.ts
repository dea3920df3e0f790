/**
 * Config variants users ask for: an imported VPC, no NAT with VPC endpoints and a serverless
 * cache. Lambdas are
 * not bundled here (the default and production suites cover bundling).
 * Also: x86 with Redis OSS, access logs and WAF in a region-only (account-agnostic) stack.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { ENV } from '../../container/src/contract';
import { parseConfig } from '../../lib/config';
import { ChatService } from '../../lib/constructs/chat-service';
import { Network } from '../../lib/constructs/network';
import { TollgateAsyncStack } from '../../lib/tollgate-async-stack';
import {
  alarmsByName,
  type Built,
  buildStack,
  cdkJsonContext,
  containerEnvironment,
  logicalId,
  nagFindings,
  resourcesOf,
  SOURCE_ROOT,
  vpcLookupContext,
  warnings,
} from './helpers';

describe('an imported VPC', () => {
  let built: Built;
  let template: Template;
  beforeAll(() => {
    built = buildStack(
      { account: '123456789012', region: 'eu-west-1', vpc: { vpcId: 'vpc-0123456789abcdef0' } },
      { bundle: false, context: vpcLookupContext('123456789012', 'eu-west-1', 'vpc-0123456789abcdef0') },
    );
    template = built.template;
  });

  it('creates no VPC, subnets or NAT of its own', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Instance', 0);
    template.resourceCountIs('AWS::EC2::FlowLog', 0);
  });

  it('puts the load balancer in the public and the tasks and cache in the private subnets', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Subnets: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0aaaaaaaaaaaaaaa2'],
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: {
        AwsvpcConfiguration: Match.objectLike({
          AssignPublicIp: 'DISABLED',
          Subnets: ['subnet-0bbbbbbbbbbbbbbb1', 'subnet-0bbbbbbbbbbbbbbb2'],
        }),
      },
    });
    template.hasResourceProperties('AWS::ElastiCache::SubnetGroup', {
      SubnetIds: ['subnet-0bbbbbbbbbbbbbbb1', 'subnet-0bbbbbbbbbbbbbbb2'],
    });
  });

  it('passes cdk-nag', () => {
    expect(nagFindings(built.app, 'error')).toEqual([]);
  });

  it('refuses an environment-agnostic stack', () => {
    const stack = new Stack(new App(), 'Agnostic');
    expect(() => new Network(stack, 'Network', { vpcId: 'vpc-0123456789abcdef0' })).toThrow(
      /explicit account and region/,
    );
  });
});

describe('no NAT, VPC endpoints and a serverless cache', () => {
  let built: Built;
  let template: Template;
  beforeAll(() => {
    built = buildStack(
      { vpc: { natGateways: 0 }, cache: { mode: 'serverless', serverlessMaxStorageGb: 2 } },
      { bundle: false },
    );
    template = built.template;
  });

  it('isolates the app subnets and adds interface endpoints for ECR, Logs, Secrets Manager and SQS', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Instance', 0);
    const endpoints = Object.values(resourcesOf(template, 'AWS::EC2::VPCEndpoint'));
    const names = endpoints.map((e) => JSON.stringify(e.Properties?.['ServiceName']));
    for (const service of ['ecr.api', 'ecr.dkr', 'logs', 'secretsmanager', 'sqs', 'dynamodb', 's3']) {
      expect(names.some((n) => n.includes(`.${service}`))).toBe(true);
    }
    template.resourcePropertiesCountIs(
      'AWS::EC2::Route',
      { DestinationCidrBlock: '0.0.0.0/0', NatGatewayId: Match.anyValue() },
      0,
    );
  });

  it('warns that the upstream must be reachable without the internet', () => {
    expect(warnings(built.stack).map((w) => w.message)).toEqual(
      expect.arrayContaining([expect.stringContaining('natGateways is 0')]),
    );
  });

  it('creates ElastiCache Serverless with a password user, a storage cap and the task-only security group', () => {
    template.resourceCountIs('AWS::ElastiCache::ReplicationGroup', 0);
    template.hasResourceProperties('AWS::ElastiCache::ServerlessCache', {
      Engine: 'valkey',
      CacheUsageLimits: { DataStorage: { Maximum: 2, Unit: 'GB' } },
      UserGroupId: Match.anyValue(),
    });
    template.hasResourceProperties('AWS::ElastiCache::User', {
      UserName: 'default',
      AuthenticationMode: {
        Type: 'password',
        Passwords: [
          { 'Fn::Join': ['', ['{{resolve:secretsmanager:', Match.anyValue(), ':SecretString:::}}']] },
        ],
      },
    });
    const s = built.stack;
    const taskSg = logicalId(s, s.chatService.service.service.connections.securityGroups[0]!);
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      FromPort: 6379,
      ToPort: 6380,
      SourceSecurityGroupId: { 'Fn::GetAtt': [taskSg, 'GroupId'] },
    });
    expect(JSON.stringify(containerEnvironment(template)[ENV.redisHost])).toMatch(
      /CacheServerless.*Endpoint\.Address/,
    );
  });

  it('alarms on storage used against the cap', () => {
    const memory = alarmsByName(template)['Tollgate-dev-Cache-CacheMemory-Critical']!;
    expect(JSON.stringify(memory['Metrics'])).toContain('BytesUsedForCache');
  });

  it('passes cdk-nag', () => {
    expect(nagFindings(built.app, 'error')).toEqual([]);
  });
});

describe('x86, Redis OSS, access logs and WAF', () => {
  let built: Built;
  let template: Template;
  beforeAll(() => {
    built = buildStack(
      {
        environment: 'staging',
        // Access logs need a region (the bucket policy names the regional ELB principal).
        region: 'us-east-2',
        service: { architecture: 'x86_64', cpu: 512, memoryMiB: 1024 },
        cache: { engine: 'redis' },
        loadBalancer: { accessLogs: true },
        waf: { enabled: true, rateLimitPer5Minutes: 500 },
      },
      { bundle: false },
    );
    template = built.template;
  });

  it('builds x86 tasks and functions', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RuntimePlatform: Match.objectLike({ CpuArchitecture: 'X86_64' }),
      Cpu: '512',
      Memory: '1024',
    });
    const functions = resourcesOf(template, 'AWS::Lambda::Function');
    for (const fn of [built.stack.asyncWorker.worker, built.stack.asyncWorker.dlqHandler]) {
      expect(functions[logicalId(built.stack, fn)]?.Properties?.['Architectures']).toEqual(['x86_64']);
    }
  });

  it('runs Redis OSS with TLS and AUTH', () => {
    template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      Engine: 'redis',
      TransitEncryptionEnabled: true,
      AuthToken: Match.anyValue(),
    });
  });

  it('enables access logs and the WAF rate limit', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'access_logs.s3.enabled', Value: 'true' }]),
    });
    template.hasResourceProperties('AWS::WAFv2::WebACL', {
      Rules: Match.arrayWith([
        Match.objectLike({ Statement: { RateBasedStatement: { AggregateKeyType: 'IP', Limit: 500 } } }),
      ]),
    });
  });

  it('passes cdk-nag', () => {
    expect(nagFindings(built.app, 'error')).toEqual([]);
  });
});

describe('the async-only stack (LocalStack)', () => {
  let app: App;
  let stack: TollgateAsyncStack;
  let template: Template;
  beforeAll(() => {
    app = new App({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } });
    stack = new TollgateAsyncStack(app, 'Tollgate-dev-async', {
      config: parseConfig({}),
      sourceRoot: SOURCE_ROOT,
    });
    template = Template.fromStack(stack);
  });

  it('holds only tables, secrets, queues and Lambdas', () => {
    const types = new Set(
      Object.values(template.toJSON().Resources as Record<string, { Type: string }>).map((r) => r.Type),
    );
    for (const absent of [
      'AWS::EC2::VPC',
      'AWS::ECS::Service',
      'AWS::ElasticLoadBalancingV2::LoadBalancer',
    ]) {
      expect(types.has(absent)).toBe(false);
    }
    expect([...types].some((t) => t.startsWith('AWS::ElastiCache::'))).toBe(false);
    template.resourceCountIs('AWS::DynamoDB::Table', 5);
    template.resourceCountIs('AWS::SQS::Queue', 2);
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 2);
  });

  it('outputs what the integration tests need', () => {
    for (const name of [
      'JobsQueueUrl',
      'JobsDlqUrl',
      'WorkerFunctionName',
      'TableJobs',
      'TableUsage',
      'TableApiKeys',
    ]) {
      template.hasOutput(name, { Value: Match.anyValue() });
    }
  });

  it('passes cdk-nag', () => {
    expect(nagFindings(app, 'error')).toEqual([]);
  });
});

describe('construct prop checks', () => {
  it('names every conflicting ChatService prop in one error', () => {
    const built = buildStack({}, { bundle: false });
    const s = built.stack;
    expect(
      () =>
        new ChatService(s, 'Conflicting', {
          vpc: s.network.vpc,
          loadBalancerSubnets: s.network.publicSubnets,
          taskSubnets: s.network.appSubnets,
          sourceRoot: SOURCE_ROOT,
          data: s.data,
          queue: s.asyncWorker.queue,
          deadLetterQueue: s.asyncWorker.deadLetterQueue,
          cache: s.cache,
          adminApiKey: s.secrets.adminApiKey,
          longestStream: Duration.seconds(4000),
          minTasks: 3,
          maxTasks: 2,
        }),
    ).toThrow(/longestStream \(4000 s\).*; minTasks \(3\)/);
  });
});
