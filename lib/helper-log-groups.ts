import { type CfnResource, CustomResourceProviderBase, type RemovalPolicy, type Stack } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';

/**
 * Give every CDK helper Lambda (custom resource providers such as the one that empties the VPC's
 * default security group) a log group of the stack, with the stack's retention and removal
 * policy. Without one, Lambda creates `/aws/lambda/<name>` on first use: it never expires and
 * survives `cdk destroy`. The function writes to the stack's group (`LoggingConfig`), which is
 * deleted after the function itself, so no late log line re-creates it. Call once, after every
 * construct was added.
 */
export function manageHelperLogGroups(
  stack: Stack,
  opts: { readonly retention: logs.RetentionDays; readonly removalPolicy: RemovalPolicy },
): logs.LogGroup[] {
  const groups: logs.LogGroup[] = [];
  for (const c of stack.node.findAll()) {
    if (!(c instanceof CustomResourceProviderBase)) continue;
    const handler = c.node.tryFindChild('Handler') as CfnResource | undefined;
    if (handler?.cfnResourceType !== 'AWS::Lambda::Function') continue;
    const group = new logs.LogGroup(c, 'Logs', {
      retention: opts.retention,
      removalPolicy: opts.removalPolicy,
    });
    handler.addPropertyOverride('LoggingConfig.LogGroup', group.logGroupName);
    groups.push(group);
  }
  return groups;
}
