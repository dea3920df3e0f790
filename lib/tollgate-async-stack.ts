import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { applyTags, asyncWorkerProps, removalPolicyOf, secretsProps } from './compose';
import type { ServiceConfigFile, TollgateConfig } from './config';
import { AsyncWorker } from './constructs/async-worker';
import { Data } from './constructs/data';
import { AppSecrets } from './constructs/secrets';

/** Props for {@link TollgateAsyncStack}. */
export interface TollgateAsyncStackProps extends StackProps {
  /** The validated deployment config (`parseConfig`). */
  readonly config: TollgateConfig;
  /** Absolute path of the repository root (Lambda entries, lock file). */
  readonly sourceRoot: string;
  /**
   * The service config file named by `config.serviceConfigFile`, read at synth time.
   * @default - none
   */
  readonly serviceConfig?: ServiceConfigFile;
}

/**
 * Only the async path: tables, secrets, the jobs queue with its DLQ, the worker and the DLQ
 * handler. No VPC, ECS, load balancer or ElastiCache, so it deploys where those are
 * missing, e.g. LocalStack's community edition (`cdklocal deploy -c asyncOnly=true`).
 */
export class TollgateAsyncStack extends Stack {
  readonly data: Data;
  readonly secrets: AppSecrets;
  readonly asyncWorker: AsyncWorker;

  constructor(scope: Construct, id: string, props: TollgateAsyncStackProps) {
    super(scope, id, props);
    const c = props.config;
    applyTags(this, c);
    this.data = new Data(this, 'Data', {
      removalPolicy: removalPolicyOf(c),
      deletionProtection: c.production,
    });
    this.secrets = new AppSecrets(this, 'Secrets', secretsProps(c));
    this.asyncWorker = new AsyncWorker(
      this,
      'AsyncWorker',
      asyncWorkerProps(c, {
        sourceRoot: props.sourceRoot,
        data: this.data,
        secrets: this.secrets,
        ...(props.serviceConfig !== undefined && { serviceConfig: props.serviceConfig }),
      }),
    );

    const outputs: Record<string, string> = {
      JobsQueueUrl: this.asyncWorker.queue.queueUrl,
      JobsDlqUrl: this.asyncWorker.deadLetterQueue.queueUrl,
      WorkerFunctionName: this.asyncWorker.worker.functionName,
      DlqHandlerFunctionName: this.asyncWorker.dlqHandler.functionName,
      UpstreamKeySecretName: this.secrets.upstreamApiKey.secretName,
    };
    for (const [name, table] of Object.entries(this.data.tables)) {
      outputs[`Table${name[0]?.toUpperCase()}${name.slice(1)}`] = table.tableName;
    }
    for (const [id, value] of Object.entries(outputs)) new CfnOutput(this, id, { value });
  }
}
