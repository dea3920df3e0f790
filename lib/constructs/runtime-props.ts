import type { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Data } from './data';

/** Powertools log level (POWERTOOLS_LOG_LEVEL) of the service and the Lambdas. */
export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

/**
 * What the chat service and the async worker both run with: the same runtime code, tables,
 * service config, provider access and telemetry settings.
 */
export interface RuntimeProps {
  /** Absolute path of the repository root (the image's build context, the Lambdas' bundling root). */
  readonly sourceRoot: string;
  /** The tables. */
  readonly data: Data;
  /**
   * Provider keys by environment variable (OPENAI_API_KEY, and each `apiKeyEnv` of the
   * catalogue): the variable gets the secret's value, `<VAR>_SECRET_ARN` its ARN (read again
   * every `secretRefreshInterval`), and the runtime role may read it.
   * @default {} (no OpenAI-compatible model)
   */
  readonly providerKeys?: Readonly<Record<string, secretsmanager.ISecret>>;
  /**
   * What the runtime roles may do at the providers (Bedrock: invoke the configured models).
   * @default [] (none)
   */
  readonly providerStatements?: readonly iam.PolicyStatement[];
  /**
   * Base URL of OpenAI-compatible entries that name none (OPENAI_BASE_URL); with no catalogue,
   * the models it lists are served.
   * @default - the runtime's default
   */
  readonly openAiCompatibleBaseUrl?: string;
  /**
   * The service config (catalogue, tiers) as compact JSON.
   * @default - none (the runtime's defaults)
   */
  readonly serviceConfigJson?: string;
  /**
   * How often the runtime reads provider keys again (TOLLGATE_SECRET_REFRESH_MS).
   * @default - the runtime's default (5 minutes)
   */
  readonly secretRefreshInterval?: Duration;
  /**
   * CloudWatch namespace of the EMF metrics.
   * @default DEFAULT_METRICS_NAMESPACE
   */
  readonly metricsNamespace?: string;
  /**
   * Log level.
   * @default 'INFO'
   */
  readonly logLevel?: LogLevel;
  /**
   * Retention of the log groups.
   * @default logs.RetentionDays.TWO_WEEKS
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the log groups when the stack is deleted.
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}
