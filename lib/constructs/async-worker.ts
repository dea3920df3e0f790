import * as path from 'node:path';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  DEFAULT_METRICS_NAMESPACE,
  ENV,
  SECRET_ARN_SUFFIX,
  SERVICE_NAMES,
  TABLES,
  TOKENIZER_RANKS,
} from '../../container/src/contract';
import { FIXED } from '../defaults';
import type { LogLevel, RuntimeProps } from './runtime-props';

/** Where the worker and DLQ handler entries live, relative to the source root. */
export const LAMBDA_ENTRIES = { worker: 'lambda/worker.ts', dlqHandler: 'lambda/dlq.ts' } as const;

/**
 * Name of the variable carrying the ARN of the secret for `variable` (Lambda has no native
 * secret injection; the handler reads the secret at cold start).
 */
export function secretArnVariable(variable: string): string {
  return `${variable}${SECRET_ARN_SUFFIX}`;
}

/** Where the service config file lands inside the Lambda bundle. */
const BUNDLED_CONFIG_BASENAME = 'tollgate.config';

/** Props for {@link AsyncWorker}. */
export interface AsyncWorkerProps extends RuntimeProps {
  /**
   * The service config file (catalogue, tiers), copied into the bundle.
   * @default - none (the runtime's built-in catalogue)
   */
  readonly serviceConfigFile?: string;
  /**
   * Worker timeout; the queue's visibility timeout is six times this.
   * @default Duration.minutes(5)
   */
  readonly timeout?: Duration;
  /**
   * Worker memory.
   * @default 512
   */
  readonly memorySize?: number;
  /**
   * Messages per worker invocation (the timeout must cover a whole batch).
   * @default 5
   */
  readonly batchSize?: number;
  /**
   * Most concurrent worker invocations the event source starts: the upstream's protection.
   * @default 5
   */
  readonly maxConcurrency?: number;
  /**
   * CPU architecture of both functions.
   * @default lambda.Architecture.ARM_64
   */
  readonly architecture?: lambda.Architecture;
}

/**
 * The async path: the jobs queue (SSE, TLS only) with its DLQ (3 receives), the worker
 * Lambda on the queue with partial batch responses and a concurrency cap, and the DLQ
 * handler that marks dead jobs failed.
 */
export class AsyncWorker extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly worker: nodejs.NodejsFunction;
  readonly dlqHandler: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: AsyncWorkerProps) {
    super(scope, id);
    const timeout = props.timeout ?? Duration.minutes(5);
    const dlqHandlerTimeout = Duration.seconds(30);
    const logLevel = props.logLevel ?? 'INFO';
    const namespace = props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      visibilityTimeout: Duration.seconds(dlqHandlerTimeout.toSeconds() * FIXED.visibilityTimeoutFactor),
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(TABLES.jobs.queueRetentionDays),
      // AWS guidance for Lambda consumers: at least 6x the function timeout, so a message is
      // not redelivered while a throttled or retried invocation still holds it.
      visibilityTimeout: Duration.seconds(timeout.toSeconds() * FIXED.visibilityTimeoutFactor),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: FIXED.maxReceiveCount },
    });

    // Both functions build the runtime, whose token counting reads this file on first use.
    const tokenizerRanks = {
      from: require.resolve(TOKENIZER_RANKS.packageFile),
      to: TOKENIZER_RANKS.bundledName,
    };
    const common = {
      sourceRoot: props.sourceRoot,
      architecture: props.architecture ?? lambda.Architecture.ARM_64,
      logLevel,
      logRetention: props.logRetention ?? logs.RetentionDays.TWO_WEEKS,
      removalPolicy,
    };

    // The service config file's name inside the bundle (same extension: JSON or YAML).
    const bundledConfig = props.serviceConfigFile
      ? `${BUNDLED_CONFIG_BASENAME}${path.extname(props.serviceConfigFile) || '.json'}`
      : undefined;
    const workerEnv: Record<string, string> = {
      [ENV.serviceName]: SERVICE_NAMES.worker,
      [ENV.metricsNamespace]: namespace,
      [ENV.tableJobs]: props.data.jobs.tableName,
      [ENV.tableUsage]: props.data.usage.tableName,
      [ENV.tableApiKeys]: props.data.apiKeys.tableName,
      [secretArnVariable(ENV.openaiApiKey)]: props.upstreamApiKey.secretArn,
      ...(props.openaiBaseUrl !== undefined && { [ENV.openaiBaseUrl]: props.openaiBaseUrl }),
      ...(bundledConfig !== undefined && { [ENV.configPath]: `/var/task/${bundledConfig}` }),
    };
    for (const [variable, secret] of Object.entries(props.extraApiKeys ?? {})) {
      workerEnv[secretArnVariable(variable)] = secret.secretArn;
    }

    this.worker = createFunction(this, 'Worker', {
      ...common,
      entry: LAMBDA_ENTRIES.worker,
      description: 'Tollgate async worker: runs queued chat completions',
      timeout,
      memorySize: props.memorySize ?? 512,
      environment: workerEnv,
      copyIntoBundle: [
        tokenizerRanks,
        ...(props.serviceConfigFile !== undefined && bundledConfig !== undefined
          ? [{ from: props.serviceConfigFile, to: bundledConfig }]
          : []),
      ],
    });
    this.worker.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: props.batchSize ?? 5,
        maxConcurrency: props.maxConcurrency ?? 5,
        reportBatchItemFailures: true,
      }),
    );
    props.data.grant(this.worker, 'jobs', 'readWrite');
    props.data.grant(this.worker, 'usage', 'readWrite');
    props.data.grant(this.worker, 'apiKeys', 'read');
    props.upstreamApiKey.grantRead(this.worker);
    for (const secret of Object.values(props.extraApiKeys ?? {})) secret.grantRead(this.worker);

    this.dlqHandler = createFunction(this, 'DlqHandler', {
      ...common,
      entry: LAMBDA_ENTRIES.dlqHandler,
      description: 'Tollgate DLQ handler: marks jobs whose messages died as failed',
      copyIntoBundle: [tokenizerRanks],
      timeout: dlqHandlerTimeout,
      memorySize: 256,
      environment: {
        [ENV.serviceName]: SERVICE_NAMES.worker,
        [ENV.metricsNamespace]: namespace,
        [ENV.tableJobs]: props.data.jobs.tableName,
      },
    });
    this.dlqHandler.addEventSource(
      new SqsEventSource(this.deadLetterQueue, {
        batchSize: 10,
        maxConcurrency: FIXED.dlqHandlerMaxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    props.data.grant(this.dlqHandler, 'jobs', ['dynamodb:GetItem', 'dynamodb:UpdateItem']);
  }
}

interface FunctionOptions {
  readonly sourceRoot: string;
  readonly entry: string;
  readonly description: string;
  readonly timeout: Duration;
  readonly memorySize: number;
  readonly architecture: lambda.Architecture;
  readonly environment: Record<string, string>;
  readonly logLevel: LogLevel;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  /** Files the bundle needs beside the code (read at run time, not imported). */
  readonly copyIntoBundle?: readonly { readonly from: string; readonly to: string }[];
}

const LAMBDA_LOG_LEVEL: Record<FunctionOptions['logLevel'], lambda.ApplicationLogLevel> = {
  DEBUG: lambda.ApplicationLogLevel.DEBUG,
  INFO: lambda.ApplicationLogLevel.INFO,
  WARN: lambda.ApplicationLogLevel.WARN,
  ERROR: lambda.ApplicationLogLevel.ERROR,
};

/** One shell word, whatever the path holds. */
function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function createFunction(scope: Construct, id: string, o: FunctionOptions): nodejs.NodejsFunction {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: o.logRetention,
    removalPolicy: o.removalPolicy,
  });
  const copy = o.copyIntoBundle;
  const fn = new nodejs.NodejsFunction(scope, id, {
    entry: path.join(o.sourceRoot, o.entry),
    handler: 'handler',
    projectRoot: o.sourceRoot,
    depsLockFilePath: path.join(o.sourceRoot, 'package-lock.json'),
    // The same Node major as the container image (node:22), so both run the same code.
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: o.architecture,
    description: o.description,
    timeout: o.timeout,
    memorySize: o.memorySize,
    logGroup,
    loggingFormat: lambda.LoggingFormat.JSON,
    applicationLogLevelV2: LAMBDA_LOG_LEVEL[o.logLevel],
    systemLogLevelV2: lambda.SystemLogLevel.WARN,
    environment: {
      ...o.environment,
      [ENV.logLevel]: o.logLevel,
      NODE_OPTIONS: '--enable-source-maps',
    },
    bundling: {
      minify: true,
      sourceMap: true,
      sourcesContent: false,
      target: 'node22',
      // Bundle the AWS SDK too: the versions in package-lock.json are the ones tested,
      // not whatever the managed runtime ships this month.
      externalModules: [],
      // Synthesis must work offline without Docker: always use the local esbuild.
      forceDockerBundling: false,
      logLevel: nodejs.LogLevel.WARNING,
      ...(copy &&
        copy.length > 0 && {
          commandHooks: {
            beforeBundling: () => [],
            beforeInstall: () => [],
            // Relative to the input directory where possible: with Docker bundling that is the
            // project mounted in the container, where host paths do not exist.
            afterBundling: (inputDir: string, outputDir: string) =>
              copy.map(({ from, to }) => {
                const rel = path.relative(o.sourceRoot, from);
                const src =
                  rel.startsWith('..') || path.isAbsolute(rel)
                    ? from
                    : path.posix.join(inputDir, ...rel.split(path.sep));
                return `cp ${shellQuote(src)} ${shellQuote(path.posix.join(outputDir, to))}`;
              }),
          },
        }),
    },
  });
  const v = Validations.of(fn);
  v.acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    reason: 'The AWS managed basic execution policy only lets the function write its own logs.',
  });
  v.acknowledge({
    id: 'AwsSolutions-L1',
    reason:
      'Pinned to nodejs22.x on purpose: the chat service container runs node:22 and both run ' +
      'the same runtime modules; they move to the next LTS together.',
  });
  return fn;
}
