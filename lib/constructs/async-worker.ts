import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
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
import type { Cache } from './cache';
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

/** Where the service config lands inside the worker's bundle. */
const BUNDLED_CONFIG_NAME = 'tollgate.config.json';

/** The Lambda runtime of both functions: the same Node major as the container image. */
export const LAMBDA_RUNTIME = lambda.Runtime.NODEJS_24_X;

/** Where the functions run to reach the cache (the limiter's counters). */
export interface AsyncWorkerNetwork {
  readonly vpc: ec2.IVpc;
  /** Subnets with a route to the AWS APIs and the provider (NAT or endpoints). */
  readonly subnets: ec2.SubnetSelection;
  /** The cache; its security group admits the functions. */
  readonly cache: Cache;
}

/** Props for {@link AsyncWorker}. */
export interface AsyncWorkerProps extends RuntimeProps {
  /**
   * Run both functions in this VPC with the cache's connection settings, so a job's reservation
   * (made at submission) is reconciled with its real usage, and a dead job's is given back.
   * @default - outside any VPC, without the cache: reservations stay charged until their windows
   *   expire (for stacks without a cache, e.g. LocalStack's async-only stack)
   */
  readonly network?: AsyncWorkerNetwork;
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
 * The async path: the jobs queue (SSE, TLS only) with its DLQ (5 receives), the worker
 * Lambda on the queue with partial batch responses and a concurrency cap, and the DLQ
 * handler that marks dead jobs failed.
 */
export class AsyncWorker extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly worker: nodejs.NodejsFunction;
  readonly dlqHandler: nodejs.NodejsFunction;
  /** The functions' security group (when in a VPC). */
  readonly securityGroup?: ec2.SecurityGroup;

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

    const providerKeys = props.providerKeys ?? {};
    const redisEnv: Record<string, string> = {};
    if (props.network) {
      const c = props.network.cache;
      Object.assign(redisEnv, {
        [ENV.redisHost]: c.host,
        [ENV.redisPort]: String(c.port),
        [ENV.redisTls]: 'true',
        ...(c.mode === 'serverless' && { [ENV.redisCluster]: 'true' }),
        [secretArnVariable(ENV.redisAuthToken)]: c.authToken.secretArn,
      });
      this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
        vpc: props.network.vpc,
        description: 'Tollgate worker and DLQ handler: the cache, AWS APIs and the provider',
        // The provider lives at an arbitrary HTTPS host (and port, for self-hosted ones).
        allowAllOutbound: true,
      });
      c.connections.allowDefaultPortFrom(this.securityGroup, 'Async worker and DLQ handler');
    }
    const vpcPlacement = props.network &&
      this.securityGroup && {
        vpc: props.network.vpc,
        vpcSubnets: props.network.subnets,
        securityGroups: [this.securityGroup],
      };
    const refresh: Record<string, string> =
      props.secretRefreshInterval !== undefined
        ? { [ENV.secretRefreshMs]: String(props.secretRefreshInterval.toMilliseconds()) }
        : {};
    const workerEnv: Record<string, string> = {
      [ENV.serviceName]: SERVICE_NAMES.worker,
      [ENV.metricsNamespace]: namespace,
      [ENV.tableJobs]: props.data.jobs.tableName,
      [ENV.tableUsage]: props.data.usage.tableName,
      [ENV.tableApiKeys]: props.data.apiKeys.tableName,
      ...redisEnv,
      ...refresh,
      ...(props.openAiCompatibleBaseUrl !== undefined && {
        [ENV.openaiBaseUrl]: props.openAiCompatibleBaseUrl,
      }),
      ...(props.serviceConfigJson !== undefined && { [ENV.configPath]: `/var/task/${BUNDLED_CONFIG_NAME}` }),
    };
    for (const [variable, secret] of Object.entries(providerKeys)) {
      workerEnv[secretArnVariable(variable)] = secret.secretArn;
    }

    this.worker = createFunction(this, 'Worker', {
      ...common,
      entry: LAMBDA_ENTRIES.worker,
      description: 'Tollgate async worker: runs queued chat completions',
      timeout,
      memorySize: props.memorySize ?? 512,
      environment: workerEnv,
      ...(vpcPlacement && { placement: vpcPlacement }),
      copyIntoBundle: [
        tokenizerRanks,
        ...(props.serviceConfigJson !== undefined
          ? [{ from: stagedFile(props.serviceConfigJson), to: BUNDLED_CONFIG_NAME }]
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
    for (const secret of Object.values(providerKeys)) secret.grantRead(this.worker);
    for (const statement of props.providerStatements ?? []) this.worker.addToRolePolicy(statement);
    props.network?.cache.authToken.grantRead(this.worker);

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
        // To give a dead job's reservation back.
        ...redisEnv,
      },
      ...(vpcPlacement && { placement: vpcPlacement }),
    });
    this.dlqHandler.addEventSource(
      new SqsEventSource(this.deadLetterQueue, {
        batchSize: 10,
        maxConcurrency: FIXED.dlqHandlerMaxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    props.data.grant(this.dlqHandler, 'jobs', ['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    props.network?.cache.authToken.grantRead(this.dlqHandler);
  }
}

/**
 * The service config as a file the bundling step copies into the worker's bundle. Named by its
 * content, so synthesizing twice writes one file and the bundle (hashed by its output) changes
 * only with the config.
 */
function stagedFile(content: string): string {
  const dir = path.join(tmpdir(), 'tollgate-synth');
  mkdirSync(dir, { recursive: true });
  const file = path.join(
    dir,
    `config-${createHash('sha256').update(content).digest('hex').slice(0, 16)}.json`,
  );
  writeFileSync(file, content);
  return file;
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
  /** A VPC to run in. @default - none */
  readonly placement?: {
    readonly vpc: ec2.IVpc;
    readonly vpcSubnets: ec2.SubnetSelection;
    readonly securityGroups: ec2.ISecurityGroup[];
  };
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
    // The same Node major as the container image (node:24), so both run the same code.
    runtime: LAMBDA_RUNTIME,
    architecture: o.architecture,
    description: o.description,
    timeout: o.timeout,
    memorySize: o.memorySize,
    logGroup,
    ...o.placement,
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
      target: 'node24',
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
  if (o.placement) {
    v.acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      reason:
        'The AWS managed VPC access policy only manages the network interfaces Lambda needs to run in the VPC.',
    });
  }
  return fn;
}
