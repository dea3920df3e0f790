#!/usr/bin/env node
/**
 * The CDK app: load the deployment config, validate it once, build the stack.
 *
 * Config layers (later wins): profile defaults (lib/defaults.ts) < the `tollgate` object in
 * cdk.json context (or `-c tollgate='{"environment":"prod"}'`) < the file named by
 * `-c configFile=path/to/config.json|yaml` (relative to the repository root).
 *
 * `-c asyncOnly=true` builds only the async path (tables, queues, Lambdas) as
 * `Tollgate-<env>-async`, for LocalStack's community edition.
 */
import * as path from 'node:path';
import { Annotations, App, type Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import {
  ConfigError,
  mergeConfigLayers,
  parseConfig,
  readConfigFile,
  resolveServiceConfig,
  resolveStackEnvironment,
} from '../lib/config';
import { TollgateAsyncStack } from '../lib/tollgate-async-stack';
import { stackName, TollgateStack } from '../lib/tollgate-stack';

const sourceRoot = path.resolve(__dirname, '..');
const app = new App();

try {
  const fromContext = contextObject(app.node.tryGetContext('tollgate'));
  const configFile: unknown = app.node.tryGetContext('configFile');
  const fromFile =
    typeof configFile === 'string' && configFile !== ''
      ? readConfigFile(path.resolve(sourceRoot, configFile))
      : undefined;
  const config = parseConfig(mergeConfigLayers(fromContext, fromFile));
  const env = resolveStackEnvironment(config, process.env);
  const serviceConfig = resolveServiceConfig(config, sourceRoot);

  const common = { env, config, sourceRoot, serviceConfig };
  let stack: Stack;
  if (isTrue(app.node.tryGetContext('asyncOnly'))) {
    // Only tables, queues and Lambdas: for LocalStack's community edition (cdklocal).
    stack = new TollgateAsyncStack(app, `${stackName(config.environment)}-async`, {
      ...common,
      description: `Tollgate async path only (${config.environment})`,
    });
  } else {
    stack = new TollgateStack(app, stackName(config.environment), {
      ...common,
      description: `Tollgate OpenAI-compatible LLM API (${config.environment}, ${config.profile} profile)`,
      terminationProtection: config.production,
    });
  }
  if (config.region === undefined && env.region !== undefined) {
    // The CDK CLI always sets CDK_DEFAULT_REGION: the region of the AWS profile, else us-east-1.
    Annotations.of(stack).addWarningV2(
      '@tollgate/implicit-region',
      `The stack is pinned to ${env.region}, taken from the CDK CLI (CDK_DEFAULT_REGION: your AWS ` +
        'profile\'s region, or us-east-1 when it names none). Set "region" in the config to choose it.',
    );
  }
  // cdk-nag: synthesis fails on any AwsSolutions finding that is not acknowledged with a reason.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}

function isTrue(value: unknown): boolean {
  return value === true || value === 'true';
}

/** Context values given on the command line arrive as strings. */
function contextObject(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    throw new ConfigError([
      { path: 'tollgate', message: 'context value -c tollgate=... must be a JSON object' },
    ]);
  }
}
