/**
 * The faults an audit of the synthesized templates found (issue 12) and the Bedrock grants
 * (issue 11 §5): each invariant asserted on the template the CDK app really produces.
 */
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FileSystem, IgnoreMode } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { parse as parseYaml } from 'yaml';
import { loadServiceConfig } from '../../container/src/config/service-config';
import { ENV } from '../../container/src/contract';
import { ConfigError, parseConfig, resolveServiceConfig, type ServiceConfigBundle } from '../../lib/config';
import { IMAGE_EXCLUDES } from '../../lib/constructs/chat-service';
import { COUNTED_BODY_RULES } from '../../lib/constructs/web-acl';
import { FIXED, stopSequence } from '../../lib/defaults';
import { type CatalogueEntryFields, providerNeeds } from '../../lib/provider-grants';
import {
  alarmsByName,
  type Built,
  buildStack,
  containerEnvironment,
  functionEnvironment,
  logicalId,
  nagFindings,
  onlyResource,
  resourcesOf,
  SOURCE_ROOT,
  statementsOf,
  warnings,
} from './helpers';

const OPENAI_CONFIG = {
  upstream: { baseUrl: 'https://api.openai.com/v1' },
  models: [{ id: 'gpt-4o-mini', pricing: { input: 0.15, output: 0.6 } }],
  alarms: { email: 'oncall@example.com' },
};

function badFields(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => i.path);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

function secretsOfTask(built: Built): Record<string, string> {
  const { Properties } = onlyResource(built.template, 'AWS::ECS::TaskDefinition');
  const container = (Properties['ContainerDefinitions'] as Array<Record<string, unknown>>)[0]!;
  return Object.fromEntries(
    (container['Secrets'] as Array<{ Name: string; ValueFrom: unknown }>).map((x) => [
      x.Name,
      JSON.stringify(x.ValueFrom),
    ]),
  );
}

function stagedFiles(built: Built, fn: IConstruct): string[] {
  const resource = resourcesOf(built.template, 'AWS::Lambda::Function')[logicalId(built.stack, fn)]!;
  const code = resource.Properties?.['Code'] as { S3Key?: unknown } | undefined;
  return readdirSync(path.join(built.app.outdir, `asset.${String(code?.S3Key).replace(/\.zip$/, '')}`));
}

describe('fault 2: the catalogue comes from the deployment config', () => {
  describe('an OpenAI-compatible upstream', () => {
    let built: Built;
    beforeAll(() => {
      built = buildStack(OPENAI_CONFIG);
    });

    it('passes the catalogue to the service, in the form the runtime loads', () => {
      const env = containerEnvironment(built.template);
      expect(env[ENV.openaiBaseUrl]).toBe('https://api.openai.com/v1');
      const runtimeConfig = loadServiceConfig({ inline: String(env[ENV.configJson]) });
      expect(runtimeConfig.models.map((m) => m.id)).toEqual(['gpt-4o-mini']);
    });

    it('bundles the same catalogue with the worker', () => {
      const s = built.stack;
      expect(functionEnvironment(built, s.asyncWorker.worker)[ENV.configPath]).toBe(
        '/var/task/tollgate.config.json',
      );
      expect(stagedFiles(built, s.asyncWorker.worker)).toContain('tollgate.config.json');
      const resource = resourcesOf(built.template, 'AWS::Lambda::Function')[
        logicalId(s, s.asyncWorker.worker)
      ]!;
      const key = String((resource.Properties?.['Code'] as { S3Key?: string } | undefined)?.S3Key).replace(
        /\.zip$/,
        '',
      );
      const bundled = readFileSync(
        path.join(built.app.outdir, `asset.${key}`, 'tollgate.config.json'),
        'utf8',
      );
      expect(bundled).toBe(containerEnvironment(built.template)[ENV.configJson]);
    });

    it('creates the provider key secret (a placeholder to fill in), injected and refreshable', () => {
      const s = built.stack;
      const secret = s.secrets.placeholderProviderKey!;
      expect(secret).toBeDefined();
      expect(secretsOfTask(built)[ENV.openaiApiKey]).toContain(logicalId(s, secret));
      // The ARN too, and the task role may read it: a rotated key is picked up without a deploy.
      expect(containerEnvironment(built.template)[`${ENV.openaiApiKey}_SECRET_ARN`]).toEqual({
        Ref: logicalId(s, secret),
      });
      const taskStatements = JSON.stringify(
        statementsOf(built, s.chatService.service.taskDefinition.taskRole),
      );
      expect(taskStatements).toContain('secretsmanager:GetSecretValue');
      expect(taskStatements).toContain(logicalId(s, secret));
      expect(functionEnvironment(built, s.asyncWorker.worker)[`${ENV.openaiApiKey}_SECRET_ARN`]).toEqual({
        Ref: logicalId(s, secret),
      });
      built.template.hasOutput('UpstreamKeySecretName', { Value: Match.anyValue() });
    });

    it('passes cdk-nag and warns about nothing but plain HTTP', () => {
      expect(nagFindings(built.app, 'error')).toEqual([]);
      expect(nagFindings(built.app, 'warning')).toEqual([]);
      expect(warnings(built.stack).map((w) => w.message)).toEqual([expect.stringContaining('plain HTTP')]);
    });
  });

  it('refuses, at synth, a catalogue the runtime would refuse, naming the field', () => {
    const bad = parseConfig({
      models: [
        { id: 'x', pricing: { input: -1 } },
        { id: 'y', provider: 'nope' },
      ],
    });
    expect(badFields(() => resolveServiceConfig(bad, SOURCE_ROOT))).toEqual([
      'models.0.pricing.input',
      'models.1.provider',
    ]);
    const reserved = parseConfig({ models: [{ id: 'auto' }] });
    expect(badFields(() => resolveServiceConfig(reserved, SOURCE_ROOT))).toEqual(['models.0.id']);
  });

  it('refuses a catalogue given both inline and in serviceConfigFile', () => {
    const config = parseConfig({
      serviceConfigFile: 'test/infra/fixtures/tollgate.config.yaml',
      models: [{ id: 'a' }],
    });
    expect(badFields(() => resolveServiceConfig(config, SOURCE_ROOT))).toEqual(['models']);
  });

  it('keeps tiers from serviceConfigFile and the catalogue from models', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-cfg-'));
    try {
      writeFileSync(
        path.join(dir, 'tiers.yaml'),
        'defaultTier: team\ntiers:\n  team:\n    limits: { rpm: 5 }\n',
      );
      const config = parseConfig({ serviceConfigFile: path.join(dir, 'tiers.yaml'), models: [{ id: 'm' }] });
      const bundle = resolveServiceConfig(config, SOURCE_ROOT);
      expect(JSON.parse(String(bundle.json))).toEqual({
        defaultTier: 'team',
        tiers: { team: { limits: { rpm: 5 } } },
        models: [{ id: 'm' }],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('asks for a secret for every key variable the catalogue names', () => {
    const config = parseConfig({
      models: [{ id: 'claude', baseUrl: 'https://api.anthropic.com/v1', apiKeyEnv: 'ANTHROPIC_API_KEY' }],
    });
    expect(badFields(() => resolveServiceConfig(config, SOURCE_ROOT))).toEqual(['models.0.apiKeyEnv']);
  });
});

describe("the deploy guide's own configs", () => {
  /** The YAML blocks of README.md's deploy guide that start with `# config/dev.yaml`. */
  const guideConfigs = () =>
    [
      ...readFileSync(path.join(SOURCE_ROOT, 'README.md'), 'utf8').matchAll(
        /```yaml\n# config\/dev\.yaml\n([\s\S]*?)```/g,
      ),
    ].map((m) => parseYaml(m[1] as string) as Record<string, unknown>);

  it('has one for an OpenAI-compatible upstream and one for Bedrock', () => {
    const [openai, bedrock] = guideConfigs();
    expect(openai?.['models']).toEqual([expect.objectContaining({ id: 'gpt-4o-mini' })]);
    expect(bedrock?.['models']).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: 'claude-sonnet', provider: 'bedrock' })]),
    );
  });

  it('synthesizes the OpenAI-compatible one into a stack serving gpt-4o-mini, with a key secret and an alarm e-mail', () => {
    const [openai] = guideConfigs();
    const b = buildStack(openai as Parameters<typeof buildStack>[0], { bundle: false });
    const env = containerEnvironment(b.template);
    expect(loadServiceConfig({ inline: String(env[ENV.configJson]) }).models.map((m) => m.id)).toEqual([
      'gpt-4o-mini',
    ]);
    expect(b.stack.secrets.placeholderProviderKey).toBeDefined();
    b.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email' });
    expect(nagFindings(b.app, 'error')).toEqual([]);
  });

  it('grants the Bedrock one exactly its models, with no provider secret', () => {
    const [, bedrock] = guideConfigs();
    const config = parseConfig(bedrock);
    const needs = providerNeeds(config.models as CatalogueEntryFields[], {
      partition: 'aws',
      region: String(config.region),
      account: '123456789012',
      profileRegions: config.bedrock.profileRegions,
    });
    expect(needs.keyVariables).toEqual([]);
    expect(needs.bedrockResources).toEqual(
      expect.arrayContaining([
        'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0',
        'arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0',
        'arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0',
      ]),
    );
  });
});

describe('Bedrock models (issue 11 §5): exactly the configured ARNs, from one seam', () => {
  // The catalogue as the runtime's schema returns it (the bedrock family lands on its own branch).
  const bedrockCatalogue = (): ServiceConfigBundle => {
    const models = [
      { id: 'claude', provider: 'bedrock', upstreamModel: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0' },
      { id: 'nova', provider: 'bedrock', upstreamModel: 'amazon.nova-lite-v1:0', region: 'us-west-2' },
      { id: 'haiku', provider: 'bedrock', upstreamModel: 'global.anthropic.claude-haiku-4-5-20251001-v1:0' },
      { id: 'sim', provider: 'simulator' },
    ];
    return { models, json: JSON.stringify({ models }) };
  };
  const env = { account: '123456789012', region: 'us-east-1' };
  const FM = 'arn:aws:bedrock:%r::foundation-model/%m';
  const fm = (r: string, m: string) => FM.replace('%r', r).replace('%m', m);
  const sonnet = 'anthropic.claude-sonnet-4-5-20250929-v1:0';
  const haiku = 'anthropic.claude-haiku-4-5-20251001-v1:0';
  const expected = [
    'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0',
    fm('us-east-1', sonnet),
    fm('us-east-2', sonnet),
    fm('us-west-1', sonnet),
    fm('us-west-2', sonnet),
    fm('us-west-2', 'amazon.nova-lite-v1:0'),
    'arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-haiku-4-5-20251001-v1:0',
    fm('us-east-1', haiku),
    `arn:aws:bedrock:::foundation-model/${haiku}`,
  ];

  let built: Built;
  beforeAll(() => {
    built = buildStack(
      { ...env, alarms: { email: 'oncall@example.com' } },
      { bundle: false, serviceConfig: bedrockCatalogue() },
    );
  });

  /** The Bedrock statements of a role, with tokens resolved to this stack's partition. */
  const bedrockStatements = (role: IConstruct) =>
    statementsOf(built, role)
      .filter((st) => JSON.stringify(st['Action']).includes('bedrock:'))
      .map((st) =>
        JSON.parse(
          JSON.stringify(st).replace(
            /\{"Fn::Join":\["",\["arn:",\{"Ref":"AWS::Partition"\},"([^"]*)"\]\]\}/g,
            '"arn:aws$1"',
          ),
        ),
      );

  it.each([
    ['the task role', (b: Built) => b.stack.chatService.service.taskDefinition.taskRole],
    ['the worker role', (b: Built) => b.stack.asyncWorker.worker.role!],
  ])('lets %s invoke exactly the configured models and profiles', (_name, roleOf) => {
    expect(bedrockStatements(roleOf(built))).toEqual([
      {
        Sid: 'InvokeConfiguredBedrockModels',
        Effect: 'Allow',
        Action: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
        // Sorted by the CDK's policy minimization.
        Resource: [...expected].sort(),
      },
    ]);
  });

  it('gives the DLQ handler (which calls no model) no Bedrock access', () => {
    expect(bedrockStatements(built.stack.asyncWorker.dlqHandler.role!)).toEqual([]);
  });

  it('creates no provider secret when no OpenAI-compatible model needs one', () => {
    expect(built.stack.secrets.providerKeys).toEqual({});
    expect(Object.keys(secretsOfTask(built)).sort()).toEqual([ENV.adminApiKey, ENV.redisAuthToken].sort());
    // Two secrets: the admin key and the cache's AUTH token.
    built.template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    expect(JSON.stringify(functionEnvironment(built, built.stack.asyncWorker.worker))).not.toContain(
      `${ENV.openaiApiKey}_SECRET_ARN`,
    );
  });

  it('builds no bedrock-runtime endpoint in the small profile, and passes cdk-nag', () => {
    expect(JSON.stringify(resourcesOf(built.template, 'AWS::EC2::VPCEndpoint'))).not.toContain(
      'bedrock-runtime',
    );
    expect(nagFindings(built.app, 'error')).toEqual([]);
    expect(nagFindings(built.app, 'warning')).toEqual([]);
  });

  it('builds the bedrock-runtime interface endpoint when asked (and in production by default)', () => {
    for (const input of [
      { ...env, vpc: { bedrockEndpoint: true } },
      { ...env, environment: 'prod' },
    ]) {
      const b = buildStack(input, { bundle: false, serviceConfig: bedrockCatalogue() });
      const endpoints = Object.values(resourcesOf(b.template, 'AWS::EC2::VPCEndpoint')).filter((e) =>
        JSON.stringify(e.Properties?.['ServiceName']).includes('bedrock-runtime'),
      );
      expect(endpoints).toHaveLength(1);
      expect(endpoints[0]?.Properties).toMatchObject({
        VpcEndpointType: 'Interface',
        PrivateDnsEnabled: true,
      });
    }
  });

  it('keeps an environment-agnostic stack agnostic: ARNs in the deploy-time region and account', () => {
    const b = buildStack({}, { bundle: false, serviceConfig: bedrockCatalogue() });
    const text = JSON.stringify(statementsOf(b, b.stack.chatService.service.taskDefinition.taskRole));
    expect(text).toContain(
      '{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":inference-profile/us.anthropic',
    );
    // An entry with its own region keeps it.
    expect(text).toContain(':bedrock:us-west-2::foundation-model/amazon.nova-lite-v1:0"');
  });
});

describe('fault 3: async jobs reconcile their reservation', () => {
  let built: Built;
  beforeAll(() => {
    built = buildStack(OPENAI_CONFIG, { bundle: false });
  });

  it('runs the worker and the DLQ handler in the app subnets with the cache settings and access', () => {
    const s = built.stack;
    const cacheSg = logicalId(s, s.cache.connections.securityGroups[0]!);
    const workerSg = logicalId(s, s.asyncWorker.securityGroup!);
    {
      const ingress = Object.values(resourcesOf(built.template, 'AWS::EC2::SecurityGroupIngress')).map(
        (r) => r.Properties!,
      );
      expect(ingress).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            GroupId: { 'Fn::GetAtt': [cacheSg, 'GroupId'] },
            SourceSecurityGroupId: { 'Fn::GetAtt': [workerSg, 'GroupId'] },
            FromPort: 6379,
          }),
        ]),
      );
    }
    for (const fn of [s.asyncWorker.worker, s.asyncWorker.dlqHandler]) {
      const vars = functionEnvironment(built, fn);
      for (const name of [ENV.redisHost, ENV.redisPort, ENV.redisTls, `${ENV.redisAuthToken}_SECRET_ARN`])
        expect(vars).toHaveProperty([name]);
      expect(JSON.stringify(statementsOf(built, fn.role!))).toContain(logicalId(s, s.cache.authToken));
    }
  });

  it('has egress for the functions: NAT (small profile) or the endpoints (no NAT)', () => {
    // Small profile: the app subnets route through the NAT instance.
    built.template.resourceCountIs('AWS::EC2::Instance', 1);
    const noNat = buildStack({ vpc: { natGateways: 0 } }, { bundle: false });
    const services = JSON.stringify(resourcesOf(noNat.template, 'AWS::EC2::VPCEndpoint'));
    for (const service of ['secretsmanager', 'sqs', 'dynamodb']) expect(services).toContain(service);
  });
});

describe('fault 5: deploys keep the task count', () => {
  it.each([{}, { environment: 'prod', account: '123456789012', region: 'eu-west-1' }])(
    'sets no DesiredCount alongside autoscaling (%j)',
    (input) => {
      const b = buildStack(input, { bundle: false });
      expect(onlyResource(b.template, 'AWS::ECS::Service').Properties).not.toHaveProperty('DesiredCount');
      b.template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
        MinCapacity: b.config.service.minTasks,
      });
    },
  );
});

describe('fault 6: alarms notify someone', () => {
  it('notifies the stack topic and an existing topic, and links absolute runbooks when told where they are', () => {
    const topicArn = 'arn:aws:sns:us-east-1:123456789012:oncall';
    const runbookUrl = 'https://github.com/acme/tollgate/blob/main/README.md';
    const b = buildStack({ alarms: { topicArn, runbookUrl } }, { bundle: false });
    const ours = { Ref: logicalId(b.stack, b.stack.observability.topic) };
    for (const alarm of Object.values(alarmsByName(b.template))) {
      expect(alarm['AlarmActions']).toEqual([ours, topicArn]);
      expect(alarm['OKActions']).toEqual([ours, topicArn]);
      expect(String(alarm['AlarmDescription'])).toMatch(
        /First steps: .+ \r\nRunbook: https:\/\/github\.com\/.+#runbook-[a-z0-9-]+$/s,
      );
    }
    expect(
      warnings(b.stack)
        .map((w) => w.message)
        .join('\n'),
    ).not.toContain('NO ONE WILL BE NOTIFIED');
  });

  it('refuses a topic that is not an SNS topic ARN', () => {
    expect(() => parseConfig({ alarms: { topicArn: 'oncall' } })).toThrow(/alarms\.topicArn/);
  });
});

describe('fault 7: the stop sequence comes from the longest stream', () => {
  it.each([
    [60, { deregistrationDelaySeconds: 70, drainTimeoutSeconds: 60, stopTimeoutSeconds: 95 }],
    [300, { deregistrationDelaySeconds: 310, drainTimeoutSeconds: 85, stopTimeoutSeconds: 120 }],
    [3590, { deregistrationDelaySeconds: 3600, drainTimeoutSeconds: 85, stopTimeoutSeconds: 120 }],
  ])('derives deregistration delay, drain and stop timeout for %i s', (longest, sequence) => {
    expect(stopSequence(longest)).toEqual(sequence);
    expect(sequence.deregistrationDelaySeconds).toBeGreaterThanOrEqual(longest);
    expect(
      FIXED.drainGraceSeconds + sequence.drainTimeoutSeconds + FIXED.usageFlushReserveSeconds,
    ).toBeLessThanOrEqual(sequence.stopTimeoutSeconds);
  });

  it('applies service.longestStreamSeconds to the target group and the task', () => {
    const b = buildStack({ service: { longestStreamSeconds: 900 } }, { bundle: false });
    b.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '910' }]),
    });
    expect(containerEnvironment(b.template)[ENV.drainTimeoutMs]).toBe('85000');
  });

  it('refuses a longest stream the target group cannot wait for', () => {
    expect(() => parseConfig({ service: { longestStreamSeconds: 3600 } })).toThrow(
      /service\.longestStreamSeconds/,
    );
  });
});

describe('fault 9: the image does not change with unrelated files', () => {
  it('has .dockerignore list the same build context as the CDK app', () => {
    const lines = readFileSync(path.join(SOURCE_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(lines).toEqual([...IMAGE_EXCLUDES]);
  });

  it('hashes the same context whatever README.md, cdk.json, biome.json or jest.config.js say', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-ctx-'));
    try {
      for (const f of [
        'package.json',
        'package-lock.json',
        'tsconfig.json',
        'tsconfig.build.json',
        '.dockerignore',
        'README.md',
        'cdk.json',
        'biome.json',
        'jest.config.js',
      ])
        cpSync(path.join(SOURCE_ROOT, f), path.join(dir, f));
      cpSync(path.join(SOURCE_ROOT, 'container'), path.join(dir, 'container'), { recursive: true });
      cpSync(path.join(SOURCE_ROOT, 'lib'), path.join(dir, 'lib'), { recursive: true });
      const hash = () =>
        FileSystem.fingerprint(dir, { exclude: [...IMAGE_EXCLUDES], ignoreMode: IgnoreMode.DOCKER });
      const before = hash();
      for (const f of ['README.md', 'cdk.json', 'biome.json', 'jest.config.js', 'lib/config.ts'])
        writeFileSync(path.join(dir, f), `${readFileSync(path.join(dir, f), 'utf8')}\n// edited\n`);
      expect(hash()).toBe(before);
      writeFileSync(path.join(dir, 'container/src/app.ts'), '// a real change\n', { flag: 'a' });
      expect(hash()).not.toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fault 11: nothing outlives cdk destroy; current runtimes', () => {
  let built: Built;
  beforeAll(() => {
    built = buildStack({}, { bundle: false });
  });

  it('gives every Lambda, the CDK helper one included, a stack log group with a retention that is deleted with the stack', () => {
    const groups = resourcesOf(built.template, 'AWS::Logs::LogGroup');
    const functions = Object.entries(resourcesOf(built.template, 'AWS::Lambda::Function'));
    expect(functions.length).toBe(3);
    for (const [, fn] of functions) {
      const ref = (fn.Properties?.['LoggingConfig'] as { LogGroup?: { Ref?: string } } | undefined)?.LogGroup
        ?.Ref;
      expect(ref).toBeDefined();
      const group = groups[ref as string];
      expect(group?.Properties?.['RetentionInDays']).toBe(14);
      expect(group?.['DeletionPolicy']).toBe('Delete');
    }
  });

  it('runs every function on nodejs24.x', () => {
    for (const fn of Object.values(resourcesOf(built.template, 'AWS::Lambda::Function')))
      expect(fn.Properties?.['Runtime']).toBe('nodejs24.x');
  });

  it('builds the container from node:24', () => {
    const dockerfile = readFileSync(path.join(SOURCE_ROOT, 'container', 'Dockerfile'), 'utf8');
    const bases = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(bases.length).toBeGreaterThan(0);
    for (const base of bases) expect(base).toMatch(/node:24-slim/);
  });
});

describe('fault 12: the WAF lets prompts through', () => {
  it('counts, not blocks, the managed rules that inspect the body', () => {
    const b = buildStack({ waf: { enabled: true } }, { bundle: false });
    const rules = onlyResource(b.template, 'AWS::WAFv2::WebACL').Properties['Rules'] as Array<{
      Name: string;
      Statement: { ManagedRuleGroupStatement?: { Name: string; RuleActionOverrides?: unknown[] } };
    }>;
    for (const [group, counted] of Object.entries(COUNTED_BODY_RULES)) {
      const rule = rules.find((r) => r.Statement.ManagedRuleGroupStatement?.Name === group);
      expect(rule?.Statement.ManagedRuleGroupStatement?.RuleActionOverrides).toEqual(
        counted.map((name) => ({ Name: name, ActionToUse: { Count: {} } })),
      );
    }
    expect(COUNTED_BODY_RULES.AWSManagedRulesCommonRuleSet).toContain('CrossSiteScripting_BODY');
  });
});

describe('stack outputs and the staged image', () => {
  it('stages only the allowlisted files as the image context', () => {
    const outdir = mkdtempSync(path.join(tmpdir(), 'tollgate-out-'));
    try {
      const b = buildStack({}, { bundle: false, outdir });
      const images = readdirSync(b.app.outdir).filter((d) => {
        const p = path.join(b.app.outdir, d);
        return (
          d.startsWith('asset.') &&
          statSync(p).isDirectory() &&
          existsSync(path.join(p, 'container', 'Dockerfile'))
        );
      });
      expect(images).toHaveLength(1);
      const top = readdirSync(path.join(b.app.outdir, images[0] as string)).sort();
      expect(top).toEqual(
        [
          '.dockerignore',
          'container',
          'package-lock.json',
          'package.json',
          'tsconfig.build.json',
          'tsconfig.json',
        ].sort(),
      );
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
