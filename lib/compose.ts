/**
 * Config -> construct props mappings shared by the stacks, so the full stack and the
 * async-only stack wire the same constructs the same way.
 */
import { Duration, RemovalPolicy, type Stack, Tags } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { ServiceConfigFile, TollgateConfig } from './config';
import type { AsyncWorkerProps } from './constructs/async-worker';
import type { Data } from './constructs/data';
import type { AppSecrets, AppSecretsProps } from './constructs/secrets';

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

export function secretsProps(config: TollgateConfig): AppSecretsProps {
  return {
    ...(config.upstream.apiKeySecretName !== undefined && {
      upstreamApiKeySecretName: config.upstream.apiKeySecretName,
    }),
    extraApiKeySecrets: config.upstream.extraApiKeySecrets,
    removalPolicy: removalPolicyOf(config),
  };
}

export function asyncWorkerProps(
  config: TollgateConfig,
  deps: {
    readonly sourceRoot: string;
    readonly data: Data;
    readonly secrets: AppSecrets;
    readonly serviceConfig?: ServiceConfigFile;
  },
): AsyncWorkerProps {
  const c = config;
  return {
    sourceRoot: deps.sourceRoot,
    data: deps.data,
    upstreamApiKey: deps.secrets.upstreamApiKey,
    extraApiKeys: deps.secrets.extraApiKeys,
    ...(c.upstream.baseUrl !== undefined && { openaiBaseUrl: c.upstream.baseUrl }),
    ...(deps.serviceConfig !== undefined && { serviceConfigFile: deps.serviceConfig.path }),
    metricsNamespace: c.metricsNamespace,
    logLevel: c.service.logLevel,
    timeout: Duration.seconds(c.worker.timeoutSeconds),
    memorySize: c.worker.memoryMiB,
    batchSize: c.worker.batchSize,
    maxConcurrency: c.worker.maxConcurrency,
    architecture:
      c.service.architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
    logRetention: logRetentionOf(c),
    removalPolicy: removalPolicyOf(c),
  };
}
