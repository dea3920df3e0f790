import type { RemovalPolicy } from 'aws-cdk-lib';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Data } from './data';

/** Powertools log level (POWERTOOLS_LOG_LEVEL) of the service and the Lambdas. */
export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

/**
 * What the chat service and the async worker both run with: the same runtime code, tables,
 * upstream credentials and telemetry settings.
 */
export interface RuntimeProps {
  /** Absolute path of the repository root (the image's build context, the Lambdas' bundling root). */
  readonly sourceRoot: string;
  /** The tables. */
  readonly data: Data;
  /** The upstream provider key. */
  readonly upstreamApiKey: secretsmanager.ISecret;
  /**
   * Extra upstream keys by environment variable name.
   * @default {}
   */
  readonly extraApiKeys?: Readonly<Record<string, secretsmanager.ISecret>>;
  /**
   * Upstream base URL (OPENAI_BASE_URL).
   * @default - the runtime's default
   */
  readonly openaiBaseUrl?: string;
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
