/**
 * Config -> construct props mappings shared by the stacks, so the full stack and the
 * async-only stack wire the same constructs the same way.
 */
import { Aws, Duration, RemovalPolicy, type Stack, Tags } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { ServiceConfigBundle, TollgateConfig } from './config';
import type { AsyncWorkerNetwork, AsyncWorkerProps } from './constructs/async-worker';
import type { Data } from './constructs/data';
import type { RuntimeProps } from './constructs/runtime-props';
import type { AppSecrets, AppSecretsProps } from './constructs/secrets';
import { BEDROCK_INVOKE_ACTIONS, type ProviderNeeds, providerNeeds } from './provider-grants';

/** RETAIN for `removalPolicy: retain`, else DESTROY. */
export function removalPolicyOf(config: TollgateConfig): RemovalPolicy {
  return config.removalPolicy === 'retain' ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
}

/** Log retention (validated to be a CloudWatch retention value). */
export function logRetentionOf(config: TollgateConfig): logs.RetentionDays {
  return config.service.logRetentionDays as logs.RetentionDays;
}

/** `app`, `environment` and the configured tags on every taggable resource. */
export function applyTags(stack: Stack, config: TollgateConfig): void {
  Tags.of(stack).add('app', 'tollgate');
  Tags.of(stack).add('environment', config.environment);
  for (const [key, value] of Object.entries(config.tags)) Tags.of(stack).add(key, value);
}

/**
 * What the catalogue needs, with ARNs in the stack's partition, region and account (tokens when
 * the stack is environment-agnostic).
 */
export function providerNeedsOf(
  stack: Stack,
  config: TollgateConfig,
  serviceConfig: ServiceConfigBundle,
): ProviderNeeds {
  return providerNeeds(
    serviceConfig.models,
    {
      partition: Aws.PARTITION,
      region: stack.region,
      account: stack.account,
      profileRegions: config.bedrock.profileRegions,
    },
    { discovery: serviceConfig.models.length === 0 && config.upstream.baseUrl !== undefined },
  );
}

/** The provider permissions of the runtime roles (task role, worker role). */
export function providerStatementsOf(needs: ProviderNeeds): iam.PolicyStatement[] {
  if (needs.bedrockResources.length === 0) return [];
  return [
    new iam.PolicyStatement({
      sid: 'InvokeConfiguredBedrockModels',
      actions: [...BEDROCK_INVOKE_ACTIONS],
      resources: [...needs.bedrockResources],
    }),
  ];
}

/** Whether the bedrock-runtime endpoint is built (explicit, else Bedrock models with a production or NAT-less VPC). */
export function bedrockEndpointOf(config: TollgateConfig, needs: ProviderNeeds): boolean {
  return (
    config.vpc.bedrockEndpoint ?? (needs.usesBedrock && (config.production || config.vpc.natGateways === 0))
  );
}

export function secretsProps(config: TollgateConfig, needs: ProviderNeeds): AppSecretsProps {
  return {
    providerKeyVariables: needs.keyVariables,
    ...(config.upstream.apiKeySecretName !== undefined && {
      defaultProviderKeySecretName: config.upstream.apiKeySecretName,
    }),
    extraProviderKeySecrets: config.upstream.extraApiKeySecrets,
    removalPolicy: removalPolicyOf(config),
  };
}

/** What the service and the worker both get: config, provider access, telemetry. */
export function runtimeProps(
  config: TollgateConfig,
  deps: {
    readonly sourceRoot: string;
    readonly data: Data;
    readonly secrets: AppSecrets;
    readonly serviceConfig: ServiceConfigBundle;
    readonly providerStatements: readonly iam.PolicyStatement[];
  },
): RuntimeProps {
  return {
    sourceRoot: deps.sourceRoot,
    data: deps.data,
    providerKeys: deps.secrets.providerKeys,
    providerStatements: deps.providerStatements,
    ...(config.upstream.baseUrl !== undefined && { openAiCompatibleBaseUrl: config.upstream.baseUrl }),
    ...(deps.serviceConfig.json !== undefined && { serviceConfigJson: deps.serviceConfig.json }),
    metricsNamespace: config.metricsNamespace,
    logLevel: config.service.logLevel,
    logRetention: logRetentionOf(config),
    removalPolicy: removalPolicyOf(config),
  };
}

export function asyncWorkerProps(
  config: TollgateConfig,
  runtime: RuntimeProps,
  network?: AsyncWorkerNetwork,
): AsyncWorkerProps {
  const c = config;
  return {
    ...runtime,
    ...(network !== undefined && { network }),
    timeout: Duration.seconds(c.worker.timeoutSeconds),
    memorySize: c.worker.memoryMiB,
    batchSize: c.worker.batchSize,
    maxConcurrency: c.worker.maxConcurrency,
    architecture:
      c.service.architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
  };
}
