import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';

/** Props for {@link ApiWebAcl}. */
export interface ApiWebAclProps {
  /** ARN of the load balancer to protect. */
  readonly loadBalancerArn: string;
  /**
   * Requests one client IP may send in any 5-minute window before it is blocked.
   * @default 2000
   */
  readonly rateLimitPer5Minutes?: number;
  /**
   * Prefix of the CloudWatch metric names of the rules.
   * @default 'tollgate'
   */
  readonly metricPrefix?: string;
}

/**
 * A regional WAFv2 web ACL for the API's load balancer: AWS managed common rules (with
 * `SizeRestrictions_BODY` only counted, because chat bodies legitimately exceed 8 KB),
 * known bad inputs, and a per-IP rate limit.
 */
export class ApiWebAcl extends Construct {
  readonly webAcl: wafv2.CfnWebACL;

  constructor(scope: Construct, id: string, props: ApiWebAclProps) {
    super(scope, id);
    const prefix = props.metricPrefix ?? 'tollgate';
    const visibility = (name: string): wafv2.CfnWebACL.VisibilityConfigProperty => ({
      cloudWatchMetricsEnabled: true,
      sampledRequestsEnabled: true,
      metricName: `${prefix}-${name}`,
    });
    const managed = (
      priority: number,
      name: string,
      overrides: wafv2.CfnWebACL.RuleActionOverrideProperty[] = [],
    ): wafv2.CfnWebACL.RuleProperty => ({
      name,
      priority,
      overrideAction: { none: {} },
      statement: {
        managedRuleGroupStatement: {
          vendorName: 'AWS',
          name,
          ...(overrides.length > 0 && { ruleActionOverrides: overrides }),
        },
      },
      visibilityConfig: visibility(name),
    });

    this.webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: visibility('web-acl'),
      rules: [
        {
          name: 'RateLimitPerIp',
          priority: 0,
          action: { block: {} },
          statement: {
            rateBasedStatement: { limit: props.rateLimitPer5Minutes ?? 2000, aggregateKeyType: 'IP' },
          },
          visibilityConfig: visibility('rate-limit'),
        },
        managed(1, 'AWSManagedRulesCommonRuleSet', [
          { name: 'SizeRestrictions_BODY', actionToUse: { count: {} } },
        ]),
        managed(2, 'AWSManagedRulesKnownBadInputsRuleSet'),
      ],
    });
    new wafv2.CfnWebACLAssociation(this, 'Association', {
      resourceArn: props.loadBalancerArn,
      webAclArn: this.webAcl.attrArn,
    });
  }
}
