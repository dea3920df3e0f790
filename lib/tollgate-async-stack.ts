import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import {
  applyTags,
  asyncWorkerProps,
  providerNeedsOf,
  providerStatementsOf,
  removalPolicyOf,
  runtimeProps,
  secretsProps,
} from './compose';
import type { ServiceConfigBundle, TollgateConfig } from './config';
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
   * The service config, validated at synth time (`resolveServiceConfig`).
   * @default - none: the runtime's defaults
   */
  readonly serviceConfig?: ServiceConfigBundle;
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
    const serviceConfig = props.serviceConfig ?? { models: [] };
    applyTags(this, c);
    const needs = providerNeedsOf(this, c, serviceConfig);
    this.data = new Data(this, 'Data', {
      removalPolicy: removalPolicyOf(c),
      deletionProtection: c.production,
    });
    this.secrets = new AppSecrets(this, 'Secrets', secretsProps(c, needs));
    // No VPC and no cache here: reservations of async jobs are not reconciled on this stack.
    this.asyncWorker = new AsyncWorker(
      this,
      'AsyncWorker',
      asyncWorkerProps(
        c,
        runtimeProps(c, {
          sourceRoot: props.sourceRoot,
          data: this.data,
          secrets: this.secrets,
          serviceConfig,
          providerStatements: providerStatementsOf(needs),
        }),
      ),
    );

    const outputs: Record<string, string> = {
      JobsQueueUrl: this.asyncWorker.queue.queueUrl,
      JobsDlqUrl: this.asyncWorker.deadLetterQueue.queueUrl,
      WorkerFunctionName: this.asyncWorker.worker.functionName,
      DlqHandlerFunctionName: this.asyncWorker.dlqHandler.functionName,
    };
    const defaultKey = this.secrets.providerKeys['OPENAI_API_KEY'];
    if (defaultKey) outputs['UpstreamKeySecretName'] = defaultKey.secretName;
    for (const [name, table] of Object.entries(this.data.tables)) {
      outputs[`Table${name[0]?.toUpperCase()}${name.slice(1)}`] = table.tableName;
    }
    for (const [id, value] of Object.entries(outputs)) new CfnOutput(this, id, { value });
  }
}
