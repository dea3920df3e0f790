/**
 * Shared factories for the infrastructure suites: build the stack from a config the way
 * bin/app.ts does, with the same feature flags (cdk.json context), and normalise a
 * template for snapshots.
 */
import * as path from 'node:path';
import { App, CfnElement, type Environment, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import {
  parseConfig,
  resolveServiceConfig,
  resolveStackEnvironment,
  type ServiceConfigBundle,
  type TollgateConfig,
  type TollgateConfigInput,
} from '../../lib/config';
import { stackName, TollgateStack } from '../../lib/tollgate-stack';

export const SOURCE_ROOT = path.resolve(__dirname, '..', '..');

/** A production-like config: HTTPS with a hosted zone, imported provider keys, a service config. */
export const PRODUCTION_CONFIG: TollgateConfigInput = {
  environment: 'prod',
  account: '123456789012',
  region: 'eu-west-1',
  domain: {
    domainName: 'api.example.com',
    certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555',
    hostedZoneId: 'Z0123456789ABCDEFGHIJ',
    hostedZoneName: 'example.com',
  },
  upstream: {
    baseUrl: 'https://api.openai.com/v1',
    apiKeySecretName: 'tollgate/prod/openai-api-key',
    extraApiKeySecrets: { ANTHROPIC_API_KEY: 'tollgate/prod/anthropic-api-key' },
  },
  serviceConfigFile: 'test/infra/fixtures/tollgate.config.yaml',
  monthlyLlmBudgetUsd: 2000,
  alarms: { email: 'oncall@example.com', p99LatencyMs: 45_000 },
  tags: { team: 'platform' },
};

/** The feature flags of cdk.json (without the deployment config itself). */
export function cdkJsonContext(): Record<string, unknown> {
  const { context } = require(path.join(SOURCE_ROOT, 'cdk.json')) as { context: Record<string, unknown> };
  const { tollgate: _ignored, ...flags } = context;
  return flags;
}

export interface BuildOptions {
  /**
   * Stack environment.
   * @default - what bin/app.ts derives from the config (`resolveStackEnvironment`)
   */
  readonly env?: Environment;
  /** Bundle the Lambdas with esbuild (slower; off for variant suites). @default true */
  readonly bundle?: boolean;
  /** Extra context, e.g. cached lookups. @default {} */
  readonly context?: Record<string, unknown>;
  /**
   * The service config as `resolveServiceConfig` would give it, for catalogues the runtime's
   * schema on this branch does not know yet.
   * @default - resolveServiceConfig(config)
   */
  readonly serviceConfig?: ServiceConfigBundle;
  /** An output directory (to read staged assets afterwards). @default - a temporary one */
  readonly outdir?: string;
}

/** A cached `Vpc.fromLookup` answer: two AZs with public and private subnets. */
export function vpcLookupContext(account: string, region: string, vpcId: string): Record<string, unknown> {
  const key = `vpc-provider:account=${account}:filter.vpc-id=${vpcId}:region=${region}:returnAsymmetricSubnets=true`;
  const subnet = (id: string, az: string, rt: string, cidr: string) => ({
    subnetId: id,
    availabilityZone: `${region}${az}`,
    routeTableId: rt,
    cidr,
  });
  return {
    [key]: {
      vpcId,
      vpcCidrBlock: '10.20.0.0/16',
      availabilityZones: [],
      subnetGroups: [
        {
          name: 'Public',
          type: 'Public',
          subnets: [
            subnet('subnet-0aaaaaaaaaaaaaaa1', 'a', 'rtb-0aaaaaaaaaaaaaaa1', '10.20.0.0/24'),
            subnet('subnet-0aaaaaaaaaaaaaaa2', 'b', 'rtb-0aaaaaaaaaaaaaaa1', '10.20.1.0/24'),
          ],
        },
        {
          name: 'Private',
          type: 'Private',
          subnets: [
            subnet('subnet-0bbbbbbbbbbbbbbb1', 'a', 'rtb-0bbbbbbbbbbbbbbb1', '10.20.16.0/20'),
            subnet('subnet-0bbbbbbbbbbbbbbb2', 'b', 'rtb-0bbbbbbbbbbbbbbb2', '10.20.32.0/20'),
          ],
        },
      ],
    },
  };
}

export interface Built {
  readonly app: App;
  readonly stack: TollgateStack;
  readonly config: TollgateConfig;
  readonly template: Template;
}

/** Validate `input`, build the stack and synthesise it once. */
export function buildStack(input: TollgateConfigInput, options: BuildOptions = {}): Built {
  const config = parseConfig(input);
  const app = new App({
    ...(options.outdir !== undefined && { outdir: options.outdir }),
    context: {
      ...cdkJsonContext(),
      ...(options.bundle === false && { 'aws:cdk:bundling-stacks': [] }),
      ...options.context,
    },
  });
  const stack = new TollgateStack(app, stackName(config.environment), {
    config,
    sourceRoot: SOURCE_ROOT,
    env: options.env ?? resolveStackEnvironment(config, {}),
    serviceConfig: options.serviceConfig ?? resolveServiceConfig(config, SOURCE_ROOT),
  });
  // The validation report repeats synth warnings on stderr; tests assert on them instead.
  const quiet = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    return { app, stack, config, template: Template.fromStack(stack) };
  } finally {
    quiet.mockRestore();
  }
}

/** Synth-time warnings (construct path and message) recorded anywhere in `scope`. */
export function warnings(scope: IConstruct): Array<{ path: string; message: string }> {
  return scope.node
    .findAll()
    .flatMap((c) =>
      c.node.metadata
        .filter((m) => m.type === 'aws:cdk:warning')
        .map((m) => ({ path: c.node.path, message: String(m.data) })),
    );
}

/** Unacknowledged cdk-nag AwsSolutions findings of an already synthesised app, as readable lines. */
export function nagFindings(app: App, severity: 'error' | 'warning'): string[] {
  const report = new AwsSolutionsChecks().validateScope(app);
  return report.violations
    .filter((v) => v.severity === severity)
    .flatMap((v) =>
      v.violatingResources.map(
        (r) => `${v.ruleName} at ${r.resourceLogicalId || r.locations?.join(',')}: ${v.description}`,
      ),
    );
}

/** The template with every asset hash replaced, so snapshots survive source changes. */
export function normalizedTemplate(template: Template): unknown {
  const json = JSON.stringify(template.toJSON());
  return JSON.parse(json.replace(/[0-9a-f]{64}/g, '[ASSET_HASH]'));
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown>; [k: string]: unknown }>;

/** Resources of one type, by logical id. */
export function resourcesOf(template: Template, type: string): Resources {
  return template.findResources(type) as Resources;
}

/** The only resource of a type (fails if there is not exactly one). */
export function onlyResource(
  template: Template,
  type: string,
): { id: string; Properties: Record<string, unknown> } {
  const found = Object.entries(resourcesOf(template, type));
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  const [id, resource] = found[0]!;
  return { id, Properties: resource.Properties ?? {} };
}

/** The logical id of a construct's CloudFormation resource (an L1, or an L2's default child). */
export function logicalId(stack: Stack, construct: IConstruct): string {
  const cfn = CfnElement.isCfnElement(construct) ? construct : construct.node.defaultChild;
  if (!cfn || !CfnElement.isCfnElement(cfn))
    throw new Error(`${construct.node.path} has no CloudFormation resource`);
  return stack.resolve(stack.getLogicalId(cfn)) as string;
}

/** Statements of every IAM policy attached to a role (by the role's construct). */
export function statementsOf(built: Built, role: IConstruct): Array<Record<string, unknown>> {
  const id = logicalId(built.stack, role);
  return Object.values(resourcesOf(built.template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties?.['Roles']).includes(id))
    .flatMap(
      (p) =>
        (p.Properties?.['PolicyDocument'] as { Statement: Array<Record<string, unknown>> } | undefined)
          ?.Statement ?? [],
    );
}

/** Environment variables of a Lambda function (by its construct). */
export function functionEnvironment(built: Built, fn: IConstruct): Record<string, unknown> {
  const f = resourcesOf(built.template, 'AWS::Lambda::Function')[logicalId(built.stack, fn)];
  return (
    (f?.Properties?.['Environment'] as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {}
  );
}

/** Container environment of the chat service as a name -> value map. */
export function containerEnvironment(template: Template): Record<string, unknown> {
  const { Properties } = onlyResource(template, 'AWS::ECS::TaskDefinition');
  const container = (Properties['ContainerDefinitions'] as Array<Record<string, unknown>>)[0]!;
  const env = container['Environment'] as Array<{ Name: string; Value: unknown }>;
  return Object.fromEntries(env.map((e) => [e.Name, e.Value]));
}

/** Alarms by name. */
export function alarmsByName(template: Template): Record<string, Record<string, unknown>> {
  return Object.fromEntries(
    Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm')).map((a) => [
      String(a.Properties?.['AlarmName']),
      a.Properties ?? {},
    ]),
  );
}
