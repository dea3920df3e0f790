/**
 * A production-like stack: HTTPS with a hosted zone, WAF, access logs, a cache replica,
 * NAT gateways, retained data, alarm e-mail, an imported upstream key and a service config.
 */
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { ENV, TOKENIZER_RANKS } from '../../container/src/contract';
import {
  alarmsByName,
  type Built,
  buildStack,
  containerEnvironment,
  logicalId,
  nagFindings,
  normalizedTemplate,
  onlyResource,
  PRODUCTION_CONFIG,
  resourcesOf,
  warnings,
} from './helpers';

let built: Built;
let template: Template;

beforeAll(() => {
  built = buildStack(PRODUCTION_CONFIG);
  template = built.template;
});

describe('production stack', () => {
  it('matches the snapshot', () => {
    expect(normalizedTemplate(template)).toMatchSnapshot();
  });

  it('has no unacknowledged cdk-nag AwsSolutions findings', () => {
    expect(nagFindings(built.app, 'error')).toEqual([]);
    expect(nagFindings(built.app, 'warning')).toEqual([]);
  });

  it('emits no synth-time warnings', () => {
    expect(warnings(built.stack)).toEqual([]);
  });
});

describe('HTTPS', () => {
  it('terminates TLS with a TLS 1.3 policy and the configured certificate', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'HTTPS',
      SslPolicy: Match.stringLikeRegexp('^ELBSecurityPolicy-TLS13-'),
      Certificates: [{ CertificateArn: PRODUCTION_CONFIG.domain?.certificateArn }],
    });
  });

  it('redirects HTTP to HTTPS', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80,
      Protocol: 'HTTP',
      DefaultActions: [
        Match.objectLike({
          Type: 'redirect',
          RedirectConfig: Match.objectLike({ Protocol: 'HTTPS', Port: '443' }),
        }),
      ],
    });
  });

  it('points the domain at the load balancer and reports it as the API URL', () => {
    template.hasResourceProperties('AWS::Route53::RecordSet', {
      Name: 'api.example.com.',
      Type: 'A',
      HostedZoneId: 'Z0123456789ABCDEFGHIJ',
    });
    template.hasOutput('ApiUrl', { Value: 'https://api.example.com' });
  });
});

describe('edge protection and audit', () => {
  it('attaches a WAF with common rules and bad inputs (body rules only counted) and a rate limit', () => {
    const { Properties } = onlyResource(template, 'AWS::WAFv2::WebACL');
    expect(Properties).toMatchObject({ Scope: 'REGIONAL', DefaultAction: { Allow: {} } });
    const rules = Properties['Rules'] as Array<Record<string, unknown>>;
    expect(rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Statement: { RateBasedStatement: { AggregateKeyType: 'IP', Limit: 2000 } },
          Action: { Block: {} },
        }),
        expect.objectContaining({
          Statement: {
            ManagedRuleGroupStatement: {
              Name: 'AWSManagedRulesCommonRuleSet',
              VendorName: 'AWS',
              RuleActionOverrides: expect.arrayContaining([
                { Name: 'SizeRestrictions_BODY', ActionToUse: { Count: {} } },
                { Name: 'CrossSiteScripting_BODY', ActionToUse: { Count: {} } },
              ]),
            },
          },
        }),
        expect.objectContaining({
          Statement: {
            ManagedRuleGroupStatement: {
              Name: 'AWSManagedRulesKnownBadInputsRuleSet',
              VendorName: 'AWS',
              RuleActionOverrides: expect.arrayContaining([
                { Name: 'Log4JRCE_BODY', ActionToUse: { Count: {} } },
              ]),
            },
          },
        }),
      ]),
    );
    const s = built.stack;
    template.hasResourceProperties('AWS::WAFv2::WebACLAssociation', {
      ResourceArn: { Ref: logicalId(s, s.chatService.loadBalancer) },
    });
  });

  it('writes ALB access logs to an encrypted, TLS-only, retained bucket', () => {
    for (const attribute of [
      { Key: 'access_logs.s3.enabled', Value: 'true' },
      { Key: 'deletion_protection.enabled', Value: 'true' },
    ]) {
      template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
        LoadBalancerAttributes: Match.arrayWith([attribute]),
      });
    }
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: Match.objectLike({
          BlockPublicAcls: true,
          RestrictPublicBuckets: true,
        }),
      }),
    });
  });
});

describe('production sizing and resilience', () => {
  it('uses two NAT gateways', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 2);
    template.resourceCountIs('AWS::EC2::Instance', 0);
  });

  it('runs at least two tasks of 1 vCPU / 2 GiB with Container Insights', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 2 });
    template.hasResourceProperties('AWS::ECS::TaskDefinition', { Cpu: '1024', Memory: '2048' });
    template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
  });

  it('runs the cache Multi-AZ with a replica and keeps a final snapshot', () => {
    template.hasResource('AWS::ElastiCache::ReplicationGroup', {
      DeletionPolicy: 'Snapshot',
      Properties: Match.objectLike({
        NumCacheClusters: 2,
        MultiAZEnabled: true,
        AutomaticFailoverEnabled: true,
        TransitEncryptionEnabled: true,
        SnapshotRetentionLimit: 7,
      }),
    });
  });

  it('retains the tables with deletion protection', () => {
    const tables = Object.values(resourcesOf(template, 'AWS::DynamoDB::Table'));
    expect(tables).toHaveLength(5);
    for (const table of tables) {
      expect(table['DeletionPolicy']).toBe('Retain');
      expect(table.Properties).toMatchObject({ DeletionProtectionEnabled: true });
    }
  });

  it('watches both cache nodes for memory', () => {
    const memory = alarmsByName(template)['Tollgate-prod-Cache-CacheMemory-Critical']!;
    expect(JSON.stringify(memory['Metrics'])).toMatch(/MAX\(\[node0, node1\]\)/);
  });
});

describe('configuration reaches the runtime', () => {
  it('passes the service config inline to the service and bundles it with the worker', () => {
    const env = containerEnvironment(template);
    expect(JSON.parse(String(env[ENV.configJson]))).toMatchObject({
      models: [{ id: 'gpt-4o-mini' }, { id: 'sim-small' }],
    });
    expect(env[ENV.openaiBaseUrl]).toBe('https://api.openai.com/v1');
    const s = built.stack;
    const worker = resourcesOf(template, 'AWS::Lambda::Function')[logicalId(s, s.asyncWorker.worker)]!;
    expect(worker.Properties).toMatchObject({
      Environment: {
        Variables: expect.objectContaining({ [ENV.configPath]: '/var/task/tollgate.config.json' }),
      },
    });
  });

  it('ships the tokenizer rank file beside both bundled Lambdas, and the service config beside the worker', () => {
    const s = built.stack;
    const staged = (fn: IConstruct) => {
      const resource = resourcesOf(template, 'AWS::Lambda::Function')[logicalId(s, fn)]!;
      const code = resource.Properties?.['Code'] as { S3Key?: unknown } | undefined;
      return readdirSync(path.join(built.app.outdir, `asset.${String(code?.S3Key).replace(/\.zip$/, '')}`));
    };
    expect(staged(s.asyncWorker.worker)).toEqual(
      expect.arrayContaining(['index.js', TOKENIZER_RANKS.bundledName, 'tollgate.config.json']),
    );
    expect(staged(s.asyncWorker.dlqHandler)).toEqual(
      expect.arrayContaining(['index.js', TOKENIZER_RANKS.bundledName]),
    );
  });

  it('imports the upstream keys by name, for the service and the worker', () => {
    const { Properties } = onlyResource(template, 'AWS::ECS::TaskDefinition');
    const container = (Properties['ContainerDefinitions'] as Array<Record<string, unknown>>)[0]!;
    const secrets = Object.fromEntries(
      (container['Secrets'] as Array<{ Name: string; ValueFrom: unknown }>).map((x) => [
        x.Name,
        JSON.stringify(x.ValueFrom),
      ]),
    );
    expect(secrets[ENV.openaiApiKey]).toContain(':secret:tollgate/prod/openai-api-key');
    expect(secrets['ANTHROPIC_API_KEY']).toContain(':secret:tollgate/prod/anthropic-api-key');
    // Two secrets created here (admin key, cache token); the provider keys are imported.
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    const s = built.stack;
    const worker = resourcesOf(template, 'AWS::Lambda::Function')[logicalId(s, s.asyncWorker.worker)]!;
    const vars =
      (worker.Properties?.['Environment'] as { Variables: Record<string, unknown> } | undefined)?.Variables ??
      {};
    expect(JSON.stringify(vars[`${ENV.openaiApiKey}_SECRET_ARN`])).toContain(
      ':secret:tollgate/prod/openai-api-key',
    );
    expect(JSON.stringify(vars['ANTHROPIC_API_KEY_SECRET_ARN'])).toContain(
      ':secret:tollgate/prod/anthropic-api-key',
    );
  });

  it('subscribes the alarm e-mail and applies the configured thresholds', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
    const alarms = alarmsByName(template);
    expect(alarms['Tollgate-prod-Api-ApiLatencyP99-Critical']!['Threshold']).toBe(45_000);
    expect(alarms['Tollgate-prod-Api-LlmCostPerHour-Critical']!['Threshold']).toBe(13.7);
    expect(alarms['Tollgate-prod-Api-LlmCostPerDay-Critical']!['Threshold']).toBe(100);
  });

  it('tags every taggable resource', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      Tags: Match.arrayWith([
        { Key: 'app', Value: 'tollgate' },
        { Key: 'environment', Value: 'prod' },
        { Key: 'team', Value: 'platform' },
      ]),
    });
  });
});
