import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import {
  ConfigError,
  configInputSchema,
  mergeConfigLayers,
  parseConfig,
  resolveServiceConfig,
  resolveStackEnvironment,
} from '../../lib/config';
import { PROFILES } from '../../lib/defaults';
import { SOURCE_ROOT } from './helpers';

/** The paths named by the ConfigError `fn` throws. */
function badFields(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => i.path);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig defaults', () => {
  it('gives an empty config the small profile', () => {
    const c = parseConfig({});
    expect(c.environment).toBe('dev');
    expect(c.production).toBe(false);
    expect(c.profile).toBe('small');
    expect(c.service).toEqual(PROFILES.small.service);
    expect(c.vpc).toMatchObject({
      natGateways: 1,
      natType: 'instance',
      maxAzs: 2,
      interfaceEndpoints: false,
    });
    expect(c.cache).toMatchObject({
      mode: 'node',
      engine: 'valkey',
      nodeType: 'cache.t4g.micro',
      replicas: 0,
    });
    expect(c.removalPolicy).toBe('destroy');
    expect(c.domain).toBeUndefined();
    expect(c.waf.enabled).toBe(false);
  });

  it('selects the production profile for environment "prod"', () => {
    const c = parseConfig({ environment: 'prod' });
    expect(c.production).toBe(true);
    expect(c.removalPolicy).toBe('retain');
    expect(c.service.minTasks).toBe(2);
    expect(c.service.architecture).toBe('arm64');
    expect(c.cache.replicas).toBe(1);
    expect(c.vpc).toMatchObject({ natGateways: 2, natType: 'gateway' });
    expect(c.waf.enabled).toBe(true);
  });

  it('lets explicit values win over the profile', () => {
    const c = parseConfig({
      environment: 'prod',
      removalPolicy: 'destroy',
      service: { minTasks: 3, maxTasks: 4 },
    });
    expect(c.removalPolicy).toBe('destroy');
    expect(c.service.minTasks).toBe(3);
    expect(c.service.cpu).toBe(PROFILES.production.service.cpu);
  });

  it('derives the cost alarm thresholds from the monthly budget', () => {
    const c = parseConfig({ monthlyLlmBudgetUsd: 730 });
    expect(c.alarms.costPerHourUsd).toBe(5);
    expect(c.alarms.costPerDayUsd).toBe(36.5);
    expect(parseConfig({ alarms: { costPerHourUsd: 2 } }).alarms.costPerHourUsd).toBe(2);
  });

  it('accepts a provider key secret by name or by complete ARN', () => {
    const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:tollgate/openai-AbCdEf';
    expect(parseConfig({ upstream: { apiKeySecretName: arn } }).upstream.apiKeySecretName).toBe(arn);
    expect(parseConfig({ upstream: { apiKeySecretName: 'tollgate/openai' } }).upstream.apiKeySecretName).toBe(
      'tollgate/openai',
    );
    expect(badFields(() => parseConfig({ upstream: { apiKeySecretName: 'has spaces' } }))).toEqual([
      'upstream.apiKeySecretName',
    ]);
  });

  it('turns interface endpoints on when there is no NAT', () => {
    expect(parseConfig({ vpc: { natGateways: 0 } }).vpc.interfaceEndpoints).toBe(true);
  });
});

describe('parseConfig errors', () => {
  it('names every bad field in one error', () => {
    const fields = badFields(() =>
      parseConfig({
        environment: 'Not_Valid',
        service: { cpu: 300, minTasks: 0 },
        vpc: { natGateways: -1 },
        alarms: { email: 'not-an-email' },
        worker: { timeoutSeconds: 5000 },
      }),
    );
    expect(fields).toEqual(
      expect.arrayContaining([
        'environment',
        'service.cpu',
        'service.minTasks',
        'vpc.natGateways',
        'alarms.email',
        'worker.timeoutSeconds',
      ]),
    );
  });

  it('puts every field name in the message', () => {
    expect(() => parseConfig({ environment: 'X', cache: { replicas: 9 } })).toThrow(
      /environment:[\s\S]*cache\.replicas:/,
    );
  });

  it('names unknown fields', () => {
    expect(badFields(() => parseConfig({ natGateways: 1, service: { cpus: 1 } })).sort()).toEqual([
      'natGateways',
      'service.cpus',
    ]);
  });

  it('reports conflicts together with invalid values', () => {
    const fields = badFields(() =>
      parseConfig({
        region: 'nowhere',
        domain: { domainName: 'api.example.com' },
        service: { minTasks: 5, maxTasks: 2 },
      }),
    );
    expect(fields).toEqual(expect.arrayContaining(['region', 'domain.certificateArn', 'service.minTasks']));
  });

  it.each([
    [
      'a domain without a certificate',
      { domain: { domainName: 'api.example.com' } },
      'domain.certificateArn',
    ],
    [
      'a certificate without a domain',
      { domain: { certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc-123' } },
      'domain.domainName',
    ],
    [
      'a domain outside its hosted zone',
      {
        domain: {
          domainName: 'api.example.org',
          certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc-123',
          hostedZoneId: 'Z0123456789ABC',
          hostedZoneName: 'example.com',
        },
      },
      'domain.domainName',
    ],
    [
      'a certificate from another region',
      {
        region: 'us-east-1',
        domain: {
          domainName: 'api.example.com',
          certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc-123',
        },
      },
      'domain.certificateArn',
    ],
    ['more NAT gateways than AZs', { vpc: { natGateways: 3, maxAzs: 2 } }, 'vpc.natGateways'],
    [
      'new-VPC settings with an imported VPC',
      { vpc: { vpcId: 'vpc-0123456789abcdef0', cidr: '10.1.0.0/16' } },
      'vpc.cidr',
    ],
    ['a memory size Fargate does not offer', { service: { cpu: 256, memoryMiB: 4096 } }, 'service.memoryMiB'],
    ['more min than max tasks', { service: { minTasks: 3, maxTasks: 2 } }, 'service.minTasks'],
    [
      'a node type with a serverless cache',
      { cache: { mode: 'serverless', nodeType: 'cache.t4g.small' } },
      'cache.nodeType',
    ],
    [
      'a serverless limit with a node cache',
      { cache: { serverlessMaxStorageGb: 5 } },
      'cache.serverlessMaxStorageGb',
    ],
    ['a WAF rate without WAF', { waf: { rateLimitPer5Minutes: 500 } }, 'waf.rateLimitPer5Minutes'],
    [
      'a drain longer than the stop timeout allows',
      { service: { drainTimeoutSeconds: 119 } },
      'service.drainTimeoutSeconds',
    ],
    ['an unsupported log retention', { service: { logRetentionDays: 10 } }, 'service.logRetentionDays'],
  ] as const)('rejects %s', (_what, input, field) => {
    expect(badFields(() => parseConfig(input))).toContain(field);
  });
});

describe('resolveStackEnvironment', () => {
  it('stays environment-agnostic without account, region or imported VPC', () => {
    expect(resolveStackEnvironment(parseConfig({}), { CDK_DEFAULT_ACCOUNT: '111111111111' })).toEqual({});
  });

  it('uses the configured account and region', () => {
    const config = parseConfig({ account: '123456789012', region: 'eu-west-1' });
    expect(resolveStackEnvironment(config, {})).toEqual({ account: '123456789012', region: 'eu-west-1' });
  });

  it("falls back to the CLI's account and region to import a VPC", () => {
    const config = parseConfig({ vpc: { vpcId: 'vpc-0123456789abcdef0' } });
    expect(
      resolveStackEnvironment(config, {
        CDK_DEFAULT_ACCOUNT: '123456789012',
        CDK_DEFAULT_REGION: 'eu-west-1',
      }),
    ).toEqual({ account: '123456789012', region: 'eu-west-1' });
  });

  it('needs a region for ALB access logs (on in the production profile)', () => {
    expect(badFields(() => resolveStackEnvironment(parseConfig({ environment: 'prod' }), {}))).toEqual([
      'region',
    ]);
    expect(
      resolveStackEnvironment(parseConfig({ environment: 'prod' }), { CDK_DEFAULT_REGION: 'eu-west-1' }),
    ).toEqual({
      region: 'eu-west-1',
    });
  });

  it('fails naming account and region when a VPC import has neither', () => {
    const config = parseConfig({ vpc: { vpcId: 'vpc-0123456789abcdef0' } });
    expect(badFields(() => resolveStackEnvironment(config, {}))).toEqual(['account', 'region']);
    expect(() => resolveStackEnvironment(config, {})).toThrow(/Vpc\.fromLookup/);
  });
});

describe('config files', () => {
  it('reads a YAML service config as compact JSON', () => {
    const config = parseConfig({ serviceConfigFile: 'test/infra/fixtures/tollgate.config.yaml' });
    const file = resolveServiceConfig(config, SOURCE_ROOT);
    expect(JSON.parse(String(file.json))).toMatchObject({
      models: [{ id: 'gpt-4o-mini' }, { id: 'sim-small' }],
    });
    expect(file.json).not.toContain('\n');
  });

  it('names serviceConfigFile when the file is missing', () => {
    const config = parseConfig({ serviceConfigFile: 'test/infra/fixtures/missing.json' });
    expect(badFields(() => resolveServiceConfig(config, SOURCE_ROOT))).toEqual(['serviceConfigFile']);
  });

  it('merges layers key by key, later layers winning', () => {
    expect(
      mergeConfigLayers({ environment: 'dev', service: { cpu: 256, minTasks: 1 } }, undefined, {
        service: { minTasks: 2 },
      }),
    ).toEqual({ environment: 'dev', service: { cpu: 256, minTasks: 2 } });
  });
});

describe('bin/app.ts', () => {
  let synths = 0;
  /** The CDK app as the CLI runs it, without AWS settings in the environment (no bundling). */
  function synth(context: Record<string, unknown>, env: Record<string, string> = {}) {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) =>
          !/^(AWS_REGION|AWS_DEFAULT_REGION|AWS_PROFILE|CDK_DEFAULT_REGION|CDK_DEFAULT_ACCOUNT)$/.test(k),
      ),
    );
    const outdir = path.join(SOURCE_ROOT, 'cdk.out', `test-synth-${process.pid}-${++synths}`);
    rmSync(outdir, { recursive: true, force: true });
    const result = spawnSync(process.execPath, [require.resolve('tsx/cli'), 'bin/app.ts'], {
      cwd: SOURCE_ROOT,
      encoding: 'utf8',
      env: {
        ...clean,
        ...env,
        CDK_OUTDIR: outdir,
        CDK_CONTEXT_JSON: JSON.stringify({ 'aws:cdk:bundling-stacks': [], ...context }),
      },
    });
    return { ...result, outdir };
  }

  it('synthesizes the default small profile with no region anywhere (fault 13)', () => {
    const r = synth({ tollgate: { environment: 'dev' } });
    expect(r.stderr).not.toContain('Invalid Tollgate deployment config');
    expect(r.status).toBe(0);
    const template = JSON.parse(readFileSync(path.join(r.outdir, 'Tollgate-dev.template.json'), 'utf8'));
    expect(template.Resources).toBeDefined();
    // Environment-agnostic: no region was invented.
    expect(readFileSync(path.join(r.outdir, 'Tollgate-dev.metadata.json'), 'utf8')).not.toContain(
      'implicit-region',
    );
  }, 120_000);

  it('says so when a region-bound feature takes the region the CLI chose', () => {
    const r = synth({ tollgate: { environment: 'prod' } }, { CDK_DEFAULT_REGION: 'us-east-1' });
    expect(r.status).toBe(0);
    // The CLI prints the assembly's warnings: here is one.
    const metadata = readFileSync(path.join(r.outdir, 'Tollgate-prod.metadata.json'), 'utf8');
    expect(metadata).toContain('pinned to us-east-1, taken from the CDK CLI');
  }, 120_000);

  it('fails synth with one message naming every bad field', () => {
    const result = spawnSync(process.execPath, [require.resolve('tsx/cli'), 'bin/app.ts'], {
      cwd: SOURCE_ROOT,
      encoding: 'utf8',
      env: {
        ...process.env,
        CDK_OUTDIR: path.join(SOURCE_ROOT, 'cdk.out', 'test-bad-config'),
        CDK_CONTEXT_JSON: JSON.stringify({ tollgate: { environment: 'BAD', service: { maxTasks: 0 } } }),
      },
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('Invalid Tollgate deployment config (2 problems)');
    expect(result.stderr).toContain('environment:');
    expect(result.stderr).toContain('service.maxTasks:');
  });
});

describe('README.md', () => {
  /** Dotted paths of every leaf field of the schema (records count as leaves). */
  function fieldPaths(schema: z.ZodType, prefix = ''): string[] {
    const inner = schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : schema;
    if (!(inner instanceof z.ZodObject)) return [prefix];
    return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([key, child]) =>
      fieldPaths(child, prefix ? `${prefix}.${key}` : key),
    );
  }

  it('documents every config field in the configuration table', () => {
    const doc = readFileSync(path.join(SOURCE_ROOT, 'README.md'), 'utf8');
    const rows = new Set([...doc.matchAll(/^\| `([a-zA-Z0-9.]+)` \|/gm)].map((m) => m[1]));
    const fields = fieldPaths(configInputSchema);
    expect(fields.length).toBeGreaterThan(50);
    expect(fields.filter((f) => !rows.has(f))).toEqual([]);
  });
});
