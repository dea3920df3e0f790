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
 * Rules of the AWS managed groups that inspect the request body, counted instead of blocking.
 * Every body this API accepts is a prompt or a chat history: users paste HTML, JavaScript, file
 * paths, URLs, log lines (a `${jndi:...}` string asking about Log4Shell) and bodies over 8 KB all
 * the time, and these rules would answer them 403 with no OpenAI error a client understands. The
 * gateway never renders, includes, fetches or deserializes what a prompt contains, so what these
 * rules protect against has no target here; counting keeps them visible in the WAF metrics.
 * Header, URI, query string and cookie rules still block.
 */
export const COUNTED_BODY_RULES = {
  AWSManagedRulesCommonRuleSet: [
    'SizeRestrictions_BODY',
    'CrossSiteScripting_BODY',
    'GenericLFI_BODY',
    'GenericRFI_BODY',
    'EC2MetaDataSSRF_BODY',
  ],
  AWSManagedRulesKnownBadInputsRuleSet: ['JavaDeserializationRCE_BODY', 'Log4JRCE_BODY'],
} as const;

/**
 * A regional WAFv2 web ACL for the API's load balancer: AWS managed common rules and known bad
 * inputs, with their body rules only counted ({@link COUNTED_BODY_RULES}), and a per-IP rate limit.
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
      name: keyof typeof COUNTED_BODY_RULES,
    ): wafv2.CfnWebACL.RuleProperty => {
      const overrides = COUNTED_BODY_RULES[name].map((rule) => ({ name: rule, actionToUse: { count: {} } }));
      return {
        name,
        priority,
        overrideAction: { none: {} },
        statement: { managedRuleGroupStatement: { vendorName: 'AWS', name, ruleActionOverrides: overrides } },
        visibilityConfig: visibility(name),
      };
    };

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
        managed(1, 'AWSManagedRulesCommonRuleSet'),
        managed(2, 'AWSManagedRulesKnownBadInputsRuleSet'),
      ],
    });
    new wafv2.CfnWebACLAssociation(this, 'Association', {
      resourceArn: props.loadBalancerArn,
      webAclArn: this.webAcl.attrArn,
    });
  }
}
